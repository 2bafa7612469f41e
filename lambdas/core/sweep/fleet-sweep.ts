/**
 * The fleet sweep on AWS: ONE SSM Run Command of the stack's own document (operation
 * `fleet-sweep`, see lambdas/core/host/ssm-document.sh) targeted by tag at every workspace
 * instance, rate-controlled by SSM itself (`MaxConcurrency`, `MaxErrors`); on each instance it
 * runs the host script's `sweep` on each runtime's plugins root present there and prints one
 * compact summary line per root. Then `ListCommandInvocations`, paginated, until every invocation
 * is terminal, and once more with details to say what each host did.
 *
 * Two drivers of the same pieces: the deployed sweeper runs `startFleetSweep`, `checkFleetSweep`
 * (cheap: statuses only, stopping at the first running invocation) and `reportFleetSweep`
 * (bounded pages) as separate Lambda invocations from statemachine/sweep.asl.json, so no Lambda
 * timeout bounds how long the fleet may take; `fleetSweep` does it all in one process (tests).
 * A host still running when the sweeper stops waiting is `unfinished`, never `failed`.
 *
 * API calls: one SendCommand, and per poll ceil(instances / 50) ListCommandInvocations pages.
 * Nothing is called per instance, so a fleet of 1,000 costs the same number of polls as a fleet of
 * 10, only with more pages each.
 *
 * ListCommandInvocations keeps 2,500 characters of each invocation's output, so the command prints
 * counts and bytes only (no list of deleted paths): about 120 characters per root.
 *
 * The command sends only the sweep's six rule values, validated here first (and again by the host
 * script); which roots are swept is the document's to say, not the caller's.
 */
import { SendCommandCommand, ListCommandInvocationsCommand, type CommandInvocation, type SendCommandCommandInput, type SSMClient } from '@aws-sdk/client-ssm';
import { PluginError } from '../errors.ts';
import { DOCUMENT_ROOTS, documentParameters } from '../host/ssm-document.ts';
import type { SweepRules } from '../host/host-steps.ts';
import { addCounts, zeroCounts, type SweepCounts } from './sweep-counts.ts';

export interface FleetRootResult {
  root: string;
  counts: SweepCounts;
  bytes: number;
}

export interface FleetHostResult {
  instanceId: string;
  /** SSM's invocation status: Success, Failed, TimedOut, Cancelled, or Pending/InProgress/Delayed when the sweeper stopped waiting. */
  status: string;
  /**
   * `swept`: the host finished its sweep; `failed`: it ended badly (its error says how);
   * `unfinished`: still Pending/InProgress/Delayed when the sweeper stopped waiting. An unfinished
   * host is not a failed one: its sweep may well finish on its own (SSM ends it at the command's
   * timeouts at the latest), so it is reported as such, never counted in SweepHostsFailed.
   */
  outcome: 'swept' | 'failed' | 'unfinished';
  /** One per plugins root found on the instance and swept (or, failed, reported). */
  roots: FleetRootResult[];
  /** Why a failed host failed. */
  error?: string;
  /** What an unfinished host was doing. */
  note?: string;
}

export interface FleetSweepSummary {
  commandId: string;
  dryRun: boolean;
  keepNewest: number;
  /** The cutoffs the hosts applied. */
  rules: SweepRules;
  /** Every invocation reached a terminal status before the sweeper stopped waiting. */
  complete: boolean;
  hosts: FleetHostResult[];
  totals: FleetTotals;
  /** ListCommandInvocations rounds and pages (API calls), for the log. */
  polls: number;
  pages: number;
  /** Why the sweeper stopped waiting early (poll errors), if it did. */
  error?: string;
}

export interface FleetTotals {
  counts: SweepCounts;
  bytes: number;
  hosts: number;
  failed: number;
  unfinished: number;
}

export interface SsmTarget {
  Key: string;
  Values: string[];
}

export interface FleetSweepOptions {
  client: SSMClient;
  /** The stack's plugin-host Command document (SSM_DOCUMENT_NAME). */
  documentName: string;
  rules: SweepRules;
  /** Default `[{Key: 'tag-key', Values: ['WorkspaceId']}]`: every instance carrying the tag. */
  targets?: SsmTarget[];
  /** SSM's rate control. Default '10%'. */
  maxConcurrency?: string;
  /**
   * SSM's MaxErrors. Default '5%', passed on as is: mind that SSM takes a percentage of the target
   * count, so 5% of a fleet under 20 hosts allows no error at all (test/servers/ssm-api.ts). The
   * sweeper Lambda sends counts instead (fleet-size.ts).
   */
  maxErrors?: string;
  /** Delivery timeout: an agent that has not picked the command up by then never runs it. Default 600 (SSM: 30-2592000). */
  timeoutSeconds?: number;
  /** Per-instance execution timeout (`executionTimeout`). Default 600. */
  executionTimeoutSeconds?: number;
  comment?: string;
  /** First pause before polling; doubles up to pollMaxMs. Default 2 s. */
  pollInitialMs?: number;
  /** Default 15 s. */
  pollMaxMs?: number;
  /** Stop waiting after this long (the Lambda passes what its own timeout leaves). Default 13 min. */
  maxWaitMs?: number;
  /** Consecutive failed polls tolerated before giving up waiting. Default 5. */
  maxPollErrors?: number;
  sleep?: (ms: number) => Promise<void>;
  clock?: () => number;
}

export const DEFAULT_TARGETS: SsmTarget[] = [{ Key: 'tag-key', Values: ['WorkspaceId'] }];
export const DEFAULT_MAX_CONCURRENCY = '10%';
export const DEFAULT_MAX_ERRORS = '5%';
/** Where plugins live on a workspace instance, whatever its runtime. */
export const FLEET_ROOTS: readonly string[] = DOCUMENT_ROOTS;

const PAGE_SIZE = 50;
const TERMINAL = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);
const CUTOFF = /^\d{8}T\d{6}Z$/;
const CONCURRENCY = /^([1-9][0-9]{0,5}|[1-9][0-9]?%|100%)$/;
const ERRORS = /^([1-9][0-9]{0,5}|0|[1-9]?[0-9]%|100%)$/;
const TARGET_KEY = /^(tag-key|tag:[A-Za-z0-9 _.:/=+@-]{1,128}|InstanceIds|resource-groups:Name)$/;
const TARGET_VALUE = /^[A-Za-z0-9 _.:/=+@-]{1,256}$/;
const LINE = /^PLUGINSWEEP (\{.*?)\s*$/;
const END = /^PLUGINSWEEP-END (\{.*\})\s*$/;

function invalid(message: string, hint: string): PluginError {
  return new PluginError('InvalidInput', message, hint);
}

function checkInt(value: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) throw invalid(`invalid ${what} ${String(value)}`, `a whole number from ${min} to ${max}`);
  return value;
}

function checkTargets(targets: SsmTarget[]): SsmTarget[] {
  if (targets.length < 1 || targets.length > 5) throw invalid('SSM targets: give 1 to 5', 'e.g. [{Key: "tag-key", Values: ["WorkspaceId"]}]');
  for (const t of targets) {
    if (!TARGET_KEY.test(t.Key)) throw invalid(`invalid SSM target key ${JSON.stringify(t.Key)}`, 'use tag-key, tag:<name>, InstanceIds or resource-groups:Name');
    if (!Array.isArray(t.Values) || t.Values.length < 1 || t.Values.length > 50 || !t.Values.every((v) => typeof v === 'string' && TARGET_VALUE.test(v))) {
      throw invalid(`invalid SSM target values for ${t.Key}`, '1 to 50 values of [A-Za-z0-9 _.:/=+@-], up to 256 characters each');
    }
  }
  return targets.map((t) => ({ Key: t.Key, Values: [...t.Values] }));
}

function checkRules(rules: SweepRules): SweepRules {
  for (const cutoff of [rules.previousBefore, rules.stagingBefore, rules.failedBefore]) {
    if (!CUTOFF.test(cutoff)) throw invalid(`invalid cutoff ${JSON.stringify(cutoff)}`, 'cutoffs look like 20261125T080000Z');
  }
  checkInt(rules.keepNewest, 0, 1_000_000, 'keep count');
  checkInt(rules.nowEpochSeconds, 0, 999_999_999_999, 'sweep time');
  return rules;
}

/** The SendCommand `Parameters` of a fleet sweep: the rules, validated, for the document. */
export function fleetSweepParameters(rules: SweepRules, executionSeconds: number): Record<string, string[]> {
  checkRules(rules);
  const args = [rules.previousBefore, String(rules.keepNewest), rules.stagingBefore, rules.failedBefore, String(rules.nowEpochSeconds), rules.dryRun ? '1' : '0'];
  return documentParameters('fleet-sweep', args, executionSeconds);
}

function isCounts(v: unknown): v is SweepCounts {
  if (!v || typeof v !== 'object') return false;
  const c = v as Record<string, unknown>;
  return ['previous', 'staging', 'failed', 'locks'].every((k) => Number.isInteger(c[k]) && (c[k] as number) >= 0);
}

/** An invocation's output (as ListCommandInvocations reports it) → per-root results and errors. */
export function parseFleetOutput(output: string): { roots: FleetRootResult[]; errors: string[]; ended: boolean } {
  const roots: FleetRootResult[] = [];
  const errors: string[] = [];
  let ended = false;
  for (const raw of output.split('\n')) {
    if (END.test(raw)) {
      ended = true;
      continue;
    }
    const m = LINE.exec(raw);
    if (!m) continue;
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(m[1]!) as Record<string, unknown>;
    } catch {
      errors.push(`unreadable summary line ${JSON.stringify(raw.slice(0, 120))}`);
      continue;
    }
    // The root as the command was given it (without the test prefix).
    const shown = typeof line.root === 'string' ? line.root : '?';
    if (line.ok === true && isCounts(line.counts) && Number.isInteger(line.bytes)) {
      roots.push({ root: shown, counts: { ...line.counts }, bytes: line.bytes as number });
    } else {
      errors.push(`${shown}: ${String(line.code ?? 'HostStepFailed')}: ${String(line.message ?? 'sweep failed')}`);
    }
  }
  return { roots, errors, ended };
}

/** One invocation as ListCommandInvocations (with Details) reports it → what that host did. */
export function hostResult(inv: CommandInvocation): FleetHostResult {
  const status = inv.Status ?? 'Pending';
  const details = inv.StatusDetails ?? status;
  const plugin = inv.CommandPlugins?.[0];
  const output = plugin?.Output ?? '';
  const { roots, errors, ended } = parseFleetOutput(output);
  if (!TERMINAL.has(status)) {
    return { instanceId: inv.InstanceId ?? '?', status, outcome: 'unfinished', roots, note: `still ${status} when the sweeper stopped waiting (the sweep may still finish on the host)` };
  }
  if (status === 'Success') {
    if (!ended) errors.push('the summary is incomplete: its last line is missing from the command output');
  } else if (status === 'TimedOut') {
    errors.unshift(details === 'Delivery Timed Out' ? 'the SSM agent did not pick the command up in time' : 'the sweep ran longer than its execution timeout and was stopped');
  } else if (status === 'Cancelled') {
    errors.unshift('the command was cancelled');
  } else if (details === 'Terminated') {
    errors.unshift('not run: the command reached its MaxErrors before this instance');
  } else if (details === 'Undeliverable') {
    errors.unshift('undeliverable: the instance is gone or its SSM agent is not registered');
  } else if (errors.length === 0) {
    errors.push(`failed (exit ${plugin?.ResponseCode ?? '?'}): ${output.replace(/\s+/g, ' ').trim().slice(0, 200) || details}`);
  }
  const result: FleetHostResult = { instanceId: inv.InstanceId ?? '?', status, outcome: errors.length ? 'failed' : 'swept', roots };
  if (errors.length) result.error = errors.join('; ');
  return result;
}

export const zeroTotals = (): FleetTotals => ({ counts: zeroCounts(), bytes: 0, hosts: 0, failed: 0, unfinished: 0 });

/** Adds hosts to running totals (in place). */
export function addToTotals(totals: FleetTotals, hosts: readonly FleetHostResult[]): FleetTotals {
  for (const host of hosts) {
    for (const root of host.roots) {
      addCounts(totals.counts, root.counts);
      totals.bytes += root.bytes;
    }
    totals.hosts++;
    if (host.outcome === 'failed') totals.failed++;
    if (host.outcome === 'unfinished') totals.unfinished++;
  }
  return totals;
}

const THROTTLING = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded']);

function describe(err: unknown): string {
  const e = (err ?? {}) as { name?: string; message?: string };
  return `${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${e.message ?? String(err)}`;
}

function isTransient(err: unknown): boolean {
  const e = (err ?? {}) as { name?: string; $fault?: string; $metadata?: { httpStatusCode?: number }; code?: string };
  return THROTTLING.has(e.name ?? '') || e.$fault === 'server' || (e.$metadata?.httpStatusCode ?? 0) >= 500 || ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'TimeoutError'].includes(e.code ?? e.name ?? '');
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export type FleetSweepStartOptions = Pick<
  FleetSweepOptions,
  'client' | 'documentName' | 'rules' | 'targets' | 'maxConcurrency' | 'maxErrors' | 'timeoutSeconds' | 'executionTimeoutSeconds' | 'comment' | 'clock'
> & {
  /** Longest the sweeper follows the command, whatever its timeouts say (default MAX_SWEEP_MS). */
  maxSweepMs?: number;
};

/** What a sent fleet sweep is, for the steps that follow it (small, JSON: it travels in the sweep state machine's state). */
export interface FleetSweepStarted {
  commandId: string;
  /** SendCommand's TargetCount; 0 while SSM is still resolving tag targets. */
  targetCount: number;
  dryRun: boolean;
  keepNewest: number;
  rules: SweepRules;
  maxConcurrency: string;
  maxErrors: string;
  /** Epoch ms: when the command was sent. */
  requestedAt: number;
  /**
   * Epoch ms: when the sweeper stops waiting and reports what is still running as unfinished:
   * SSM's own end of the command (ExpiresAfter, from the delivery and execution timeouts) plus
   * EXPIRY_GRACE_MS for SSM to record it, and never later than maxSweepMs after sending.
   */
  deadline: number;
}

/** SSM records an expired command's last statuses shortly after ExpiresAfter; wait that long past it. */
export const EXPIRY_GRACE_MS = 5 * 60_000;
/** The longest a sweep is followed (48 h): bounds the sweep state machine's history (docs/deploy.md, quotas). */
export const MAX_SWEEP_MS = 48 * 3_600_000;

/** The one SendCommand of a fleet sweep (kept in one place: the document and its parameters are decided here only). */
function sweepCommandInput(c: { documentName: string; rules: SweepRules; targets: SsmTarget[]; maxConcurrency: string; maxErrors: string; timeoutSeconds: number; comment: string; executionSeconds: number }): SendCommandCommandInput {
  return {
    DocumentName: c.documentName,
    Targets: c.targets,
    MaxConcurrency: c.maxConcurrency,
    MaxErrors: c.maxErrors,
    TimeoutSeconds: c.timeoutSeconds,
    Comment: c.comment,
    Parameters: fleetSweepParameters(c.rules, c.executionSeconds),
  };
}

/** Validates everything, then sends the one Run Command. Nothing is sent when a value is bad. */
export async function startFleetSweep(options: FleetSweepStartOptions): Promise<FleetSweepStarted> {
  const rules = checkRules(options.rules);
  const targets = checkTargets(options.targets ?? DEFAULT_TARGETS);
  const maxConcurrency = options.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  const maxErrors = options.maxErrors ?? DEFAULT_MAX_ERRORS;
  if (!CONCURRENCY.test(maxConcurrency)) throw invalid(`invalid MaxConcurrency ${JSON.stringify(maxConcurrency)}`, 'a number (e.g. 50) or a percentage (e.g. 10%)');
  if (!ERRORS.test(maxErrors)) throw invalid(`invalid MaxErrors ${JSON.stringify(maxErrors)}`, 'a number (e.g. 0, 5) or a percentage (e.g. 5%)');
  const timeoutSeconds = checkInt(options.timeoutSeconds ?? 600, 30, 2_592_000, 'delivery timeout (s)');
  const executionSeconds = checkInt(options.executionTimeoutSeconds ?? 600, 1, 172_800, 'execution timeout (s)');
  const comment = (options.comment ?? `plugin sweep${rules.dryRun ? ' (dry run)' : ''} before ${rules.previousBefore}`).slice(0, 100);
  const maxSweepMs = Math.max(1, options.maxSweepMs ?? MAX_SWEEP_MS);
  const clock = options.clock ?? Date.now;

  const requestedAt = clock();
  let commandId: string;
  let targetCount = 0;
  let expiresAt: number;
  try {
    const sent = await options.client.send(new SendCommandCommand(sweepCommandInput({ documentName: options.documentName, rules, targets, maxConcurrency, maxErrors, timeoutSeconds, comment, executionSeconds })));
    if (!sent.Command?.CommandId) throw new PluginError('HostProtocolError', 'SendCommand returned no command id', 'check the SSM endpoint configuration');
    commandId = sent.Command.CommandId;
    targetCount = sent.Command.TargetCount ?? 0;
    const expires = sent.Command.ExpiresAfter?.getTime();
    expiresAt = expires !== undefined && Number.isFinite(expires) ? expires : requestedAt + (timeoutSeconds + executionSeconds) * 1000;
  } catch (err) {
    if (err instanceof PluginError) throw err;
    throw new PluginError(
      isTransient(err) ? 'HostUnreachable' : 'HostStepFailed',
      `the fleet sweep could not be sent: SendCommand failed (${describe(err)})`,
      isTransient(err) ? 'the SSM API is throttling or unavailable; the next scheduled run will try again' : "check the role's ssm:SendCommand permission (the stack's plugin-host document, instances with the target tag) and SSM_DOCUMENT_NAME",
      { cause: err },
    );
  }
  const deadline = Math.min(Math.max(expiresAt, requestedAt) + EXPIRY_GRACE_MS, requestedAt + maxSweepMs);
  return { commandId, targetCount, dryRun: rules.dryRun, keepNewest: rules.keepNewest, rules, maxConcurrency, maxErrors, requestedAt, deadline };
}

/** Where a followed sweep stands (JSON: it travels in the sweep state machine's state). */
export interface FleetSweepCheck {
  /** Stop waiting: every invocation is terminal (and the listing complete), or the deadline passed. */
  done: boolean;
  /** The deadline passed first: whatever still runs is reported unfinished. */
  deadlinePassed: boolean;
  /** Checks so far, this one included. */
  checks: number;
  /** Invocations listed when all were terminal, else -1 (tag targets resolve late: a listing must be stable over two checks). */
  terminalListed: number;
  /** ListCommandInvocations pages this check read. */
  pages: number;
  /** How long to wait before the next check (SweepWaitSeconds). */
  waitSeconds: number;
}

/** Shortest and longest pause between checks; in between, a quarter of the time the sweep has run. */
export const MIN_CHECK_WAIT_SECONDS = 15;
export const MAX_CHECK_WAIT_SECONDS = 300;

/**
 * The pause before the next check: a quarter of the elapsed time, between 15 s and 5 min, never
 * (much) past the deadline. Small fleets are seen done within seconds of finishing; a 48 h sweep
 * costs about 600 checks (test/unit/sweep-fleet-steps.test.ts counts the history events).
 */
export function checkWaitSeconds(elapsedMs: number, remainingMs: number): number {
  const wait = Math.min(MAX_CHECK_WAIT_SECONDS, Math.max(MIN_CHECK_WAIT_SECONDS, Math.floor(elapsedMs / 4000)));
  return Math.max(1, Math.min(wait, Math.ceil(remainingMs / 1000)));
}

export const firstCheck = (started: Pick<FleetSweepStarted, 'requestedAt' | 'deadline'>, now: number): FleetSweepCheck => ({
  done: false,
  deadlinePassed: false,
  checks: 0,
  terminalListed: -1,
  pages: 0,
  waitSeconds: checkWaitSeconds(now - started.requestedAt, started.deadline - now),
});

/**
 * One cheap look at the command: ListCommandInvocations without details, stopping at the first
 * invocation still running (so a busy fleet costs one page per check), paging through all of them
 * only when every one seen is terminal. Transient API errors throw HostUnreachable (the state
 * machine retries the check); others HostStepFailed.
 */
export async function checkFleetSweep(options: {
  client: SSMClient;
  started: Pick<FleetSweepStarted, 'commandId' | 'targetCount' | 'requestedAt' | 'deadline'>;
  previous?: FleetSweepCheck;
  clock?: () => number;
}): Promise<FleetSweepCheck> {
  const { started } = options;
  const now = (options.clock ?? Date.now)();
  const checks = (options.previous?.checks ?? 0) + 1;
  const base = { checks, pages: 0, terminalListed: -1, deadlinePassed: false };
  if (now >= started.deadline) return { ...base, done: true, deadlinePassed: true, waitSeconds: 1 };
  let listed = 0;
  let running = false;
  let token: string | undefined;
  try {
    do {
      base.pages++;
      const page = await options.client.send(new ListCommandInvocationsCommand({ CommandId: started.commandId, MaxResults: PAGE_SIZE, NextToken: token }));
      for (const inv of page.CommandInvocations ?? []) {
        if (!TERMINAL.has(inv.Status ?? '')) {
          running = true;
          break;
        }
        listed++;
      }
      token = page.NextToken;
    } while (token && !running);
  } catch (err) {
    throw apiError(err, 'ListCommandInvocations', 'check the role\'s ssm:ListCommandInvocations permission');
  }
  let done = false;
  if (!running) {
    base.terminalListed = listed;
    // Tag targets resolve asynchronously: without a count from SendCommand, the listing must be
    // the same over two checks before "all terminal" means "done". Nothing targeted at all: SSM
    // never lists an invocation; give it a few checks.
    const countKnown = started.targetCount > 0 ? listed >= started.targetCount : listed > 0 && listed === (options.previous?.terminalListed ?? -1);
    done = countKnown || (started.targetCount === 0 && listed === 0 && checks >= 4);
  }
  return { ...base, done, waitSeconds: checkWaitSeconds(now - started.requestedAt, started.deadline - now) };
}

export interface FleetSweepReportPage {
  /** Each host once: the pages follow SSM's NextToken, so consecutive calls never repeat a host. */
  hosts: FleetHostResult[];
  /** Where the next call starts; null when every host has been reported. */
  nextToken: string | null;
  pages: number;
}

/**
 * Reads up to `maxPages` pages of ListCommandInvocations with details from `nextToken` on and
 * says what each host on them did: a bounded amount of work per call, whatever the fleet size.
 */
export async function reportFleetSweep(options: { client: SSMClient; commandId: string; nextToken?: string | null; pageSize?: number; maxPages?: number }): Promise<FleetSweepReportPage> {
  const pageSize = checkInt(options.pageSize ?? PAGE_SIZE, 1, PAGE_SIZE, 'page size');
  const maxPages = checkInt(options.maxPages ?? 10, 1, 1000, 'pages per report');
  const hosts: FleetHostResult[] = [];
  let token = options.nextToken ?? undefined;
  let pages = 0;
  try {
    do {
      pages++;
      const page = await options.client.send(new ListCommandInvocationsCommand({ CommandId: options.commandId, Details: true, MaxResults: pageSize, NextToken: token }));
      for (const inv of page.CommandInvocations ?? []) if (inv.InstanceId) hosts.push(hostResult(inv));
      token = page.NextToken;
    } while (token && pages < maxPages);
  } catch (err) {
    throw apiError(err, 'ListCommandInvocations', 'check the role\'s ssm:ListCommandInvocations permission');
  }
  return { hosts, nextToken: token ?? null, pages };
}

function apiError(err: unknown, action: string, hint: string): PluginError {
  if (err instanceof PluginError) return err;
  return isTransient(err)
    ? new PluginError('HostUnreachable', `${action} failed (${describe(err)})`, 'the SSM API is throttling or unavailable; the step is retried', { cause: err })
    : new PluginError('HostStepFailed', `${action} failed (${describe(err)})`, hint, { cause: err });
}

/**
 * Sends the one Run Command, waits for every invocation in this process, and sums up what each
 * host swept: for callers that can wait for the whole fleet (tests, benchmarks). The deployed
 * sweeper follows the same command from a state machine instead (startFleetSweep,
 * checkFleetSweep, reportFleetSweep; statemachine/sweep.asl.json), so no Lambda timeout bounds it.
 */
export async function fleetSweep(options: FleetSweepOptions): Promise<FleetSweepSummary> {
  const sleep = options.sleep ?? defaultSleep;
  const clock = options.clock ?? Date.now;
  const pollInitial = Math.max(1, options.pollInitialMs ?? 2_000);
  const pollMax = Math.max(pollInitial, options.pollMaxMs ?? 15_000);
  const maxPollErrors = options.maxPollErrors ?? 5;
  const started = await startFleetSweep(options);
  const { commandId, targetCount, rules } = started;
  const deadline = clock() + (options.maxWaitMs ?? 13 * 60_000);

  let invocations = new Map<string, CommandInvocation>();
  let polls = 0;
  let pages = 0;
  let pollErrors = 0;
  let previousSize = -1;
  let error: string | undefined;
  let delay = pollInitial;
  let complete = false;
  for (;;) {
    const remaining = deadline - clock();
    if (remaining <= 0) break;
    await sleep(Math.min(delay, remaining));
    delay = Math.min(delay * 2, pollMax);
    polls++;
    const seen = new Map<string, CommandInvocation>();
    try {
      let token: string | undefined;
      do {
        pages++;
        const page = await options.client.send(new ListCommandInvocationsCommand({ CommandId: commandId, Details: true, MaxResults: PAGE_SIZE, NextToken: token }));
        for (const inv of page.CommandInvocations ?? []) if (inv.InstanceId) seen.set(inv.InstanceId, inv);
        token = page.NextToken;
      } while (token);
    } catch (err) {
      pollErrors++;
      if (!isTransient(err) || pollErrors > maxPollErrors) {
        error = `stopped waiting: ListCommandInvocations failed (${describe(err)})`;
        break;
      }
      continue;
    }
    pollErrors = 0;
    invocations = seen;
    const allTerminal = [...seen.values()].every((inv) => TERMINAL.has(inv.Status ?? ''));
    // Tag targets resolve asynchronously: SendCommand may not know the count yet (0). Then the
    // listing must be stable over two polls before "all terminal" means "done".
    const countKnown = targetCount > 0 ? seen.size >= targetCount : seen.size > 0 && seen.size === previousSize;
    previousSize = seen.size;
    if (allTerminal && countKnown) {
      complete = true;
      break;
    }
    // Nothing targeted at all: SSM never lists an invocation. Give it a few polls.
    if (targetCount === 0 && seen.size === 0 && polls >= 4) {
      complete = true;
      break;
    }
  }

  const hosts = [...invocations.values()].map((inv) => hostResult(inv)).sort((a, b) => (a.instanceId < b.instanceId ? -1 : 1));
  const totals = addToTotals(zeroTotals(), hosts);
  const summary: FleetSweepSummary = { commandId, dryRun: rules.dryRun, keepNewest: rules.keepNewest, rules, complete, hosts, totals, polls, pages };
  if (error) summary.error = error;
  else if (!complete) summary.error = `stopped waiting after ${Math.round((options.maxWaitMs ?? 13 * 60_000) / 1000)}s with invocations still running`;
  return summary;
}

/** A host's counts summed over its roots. */
export function hostTotals(host: FleetHostResult): { counts: SweepCounts; bytes: number } {
  const counts = zeroCounts();
  let bytes = 0;
  for (const root of host.roots) {
    addCounts(counts, root.counts);
    bytes += root.bytes;
  }
  return { counts, bytes };
}
