/**
 * The fleet sweep on AWS: ONE SSM Run Command of the stack's own document (operation
 * `fleet-sweep`, see lambdas/core/host/ssm-document.sh) targeted by tag at every workspace
 * instance, rate-controlled by SSM itself (`MaxConcurrency`, `MaxErrors`); on each instance it
 * runs the host script's `sweep` on each runtime's plugins root present there and prints one
 * compact summary line per root. Then `ListCommandInvocations({CommandId, Details: true})`,
 * paginated, with backoff until every invocation is terminal.
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
import { SendCommandCommand, ListCommandInvocationsCommand, type CommandInvocation, type SSMClient } from '@aws-sdk/client-ssm';
import { PluginError } from '../errors.ts';
import { DOCUMENT_ROOTS, documentParameters } from '../host/ssm-document.ts';
import type { SweepReport, SweepRules } from '../host/host-steps.ts';

export type SweepCounts = SweepReport['counts'];

export interface FleetRootResult {
  root: string;
  counts: SweepCounts;
  bytes: number;
}

export interface FleetHostResult {
  instanceId: string;
  /** SSM's invocation status: Success, Failed, TimedOut, Cancelled, or Pending/InProgress/Delayed when the sweeper stopped waiting. */
  status: string;
  /** One per plugins root found on the instance and swept (or, failed, reported). */
  roots: FleetRootResult[];
  error?: string;
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
  totals: { counts: SweepCounts; bytes: number; hosts: number; failed: number };
  /** ListCommandInvocations rounds and pages (API calls), for the log. */
  polls: number;
  pages: number;
  /** Why the sweeper stopped waiting early (poll errors), if it did. */
  error?: string;
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
  /** Default '5%'. */
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
/** Where plugins live on a workspace instance, whatever its runtime: what the document sweeps. */
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

const ZERO = (): SweepCounts => ({ previous: 0, staging: 0, failed: 0, locks: 0 });

function addCounts(into: SweepCounts, add: SweepCounts): void {
  into.previous += add.previous;
  into.staging += add.staging;
  into.failed += add.failed;
  into.locks += add.locks;
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

function hostResult(inv: CommandInvocation): FleetHostResult {
  const status = inv.Status ?? 'Pending';
  const details = inv.StatusDetails ?? status;
  const plugin = inv.CommandPlugins?.[0];
  const output = plugin?.Output ?? '';
  const { roots, errors, ended } = parseFleetOutput(output);
  const result: FleetHostResult = { instanceId: inv.InstanceId ?? '?', status, roots };
  if (!TERMINAL.has(status)) {
    result.error = `still ${status} when the sweeper stopped waiting (the sweep may still finish on the host)`;
  } else if (status === 'Success') {
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
  if (!result.error && errors.length) result.error = errors.join('; ');
  return result;
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

/** Sends the one Run Command, waits for every invocation, and sums up what each host swept. */
export async function fleetSweep(options: FleetSweepOptions): Promise<FleetSweepSummary> {
  const rules = checkRules(options.rules);
  const targets = checkTargets(options.targets ?? DEFAULT_TARGETS);
  const maxConcurrency = options.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  const maxErrors = options.maxErrors ?? DEFAULT_MAX_ERRORS;
  if (!CONCURRENCY.test(maxConcurrency)) throw invalid(`invalid MaxConcurrency ${JSON.stringify(maxConcurrency)}`, 'a number (e.g. 50) or a percentage (e.g. 10%)');
  if (!ERRORS.test(maxErrors)) throw invalid(`invalid MaxErrors ${JSON.stringify(maxErrors)}`, 'a number (e.g. 0, 5) or a percentage (e.g. 5%)');
  const timeoutSeconds = checkInt(options.timeoutSeconds ?? 600, 30, 2_592_000, 'delivery timeout (s)');
  const executionSeconds = checkInt(options.executionTimeoutSeconds ?? 600, 1, 172_800, 'execution timeout (s)');
  const comment = (options.comment ?? `plugin sweep${rules.dryRun ? ' (dry run)' : ''} before ${rules.previousBefore}`).slice(0, 100);
  const sleep = options.sleep ?? defaultSleep;
  const clock = options.clock ?? Date.now;
  const pollInitial = Math.max(1, options.pollInitialMs ?? 2_000);
  const pollMax = Math.max(pollInitial, options.pollMaxMs ?? 15_000);
  const maxPollErrors = options.maxPollErrors ?? 5;
  const deadline = clock() + (options.maxWaitMs ?? 13 * 60_000);

  let commandId: string;
  let targetCount = 0;
  try {
    const sent = await options.client.send(
      new SendCommandCommand({
        DocumentName: options.documentName,
        Targets: targets,
        MaxConcurrency: maxConcurrency,
        MaxErrors: maxErrors,
        TimeoutSeconds: timeoutSeconds,
        Comment: comment,
        Parameters: fleetSweepParameters(rules, executionSeconds),
      }),
    );
    if (!sent.Command?.CommandId) throw new PluginError('HostProtocolError', 'SendCommand returned no command id', 'check the SSM endpoint configuration');
    commandId = sent.Command.CommandId;
    targetCount = sent.Command.TargetCount ?? 0;
  } catch (err) {
    if (err instanceof PluginError) throw err;
    throw new PluginError(
      isTransient(err) ? 'HostUnreachable' : 'HostStepFailed',
      `the fleet sweep could not be sent: SendCommand failed (${describe(err)})`,
      isTransient(err) ? 'the SSM API is throttling or unavailable; the next scheduled run will try again' : "check the role's ssm:SendCommand permission (the stack's plugin-host document, instances with the target tag) and SSM_DOCUMENT_NAME",
      { cause: err },
    );
  }

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
  const totals = { counts: ZERO(), bytes: 0, hosts: hosts.length, failed: 0 };
  for (const host of hosts) {
    for (const root of host.roots) {
      addCounts(totals.counts, root.counts);
      totals.bytes += root.bytes;
    }
    if (host.error) totals.failed++;
  }
  const summary: FleetSweepSummary = { commandId, dryRun: rules.dryRun, keepNewest: rules.keepNewest, rules, complete, hosts, totals, polls, pages };
  if (error) summary.error = error;
  else if (!complete) summary.error = `stopped waiting after ${Math.round((options.maxWaitMs ?? 13 * 60_000) / 1000)}s with invocations still running`;
  return summary;
}

/** A host's counts summed over its roots. */
export function hostTotals(host: FleetHostResult): { counts: SweepCounts; bytes: number } {
  const counts = ZERO();
  let bytes = 0;
  for (const root of host.roots) {
    addCounts(counts, root.counts);
    bytes += root.bytes;
  }
  return { counts, bytes };
}
