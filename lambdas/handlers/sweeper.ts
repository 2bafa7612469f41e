/**
 * The sweeper Lambda: the three Task states of the sweep state machine (statemachine/sweep.asl.json,
 * started by the EventBridge schedule), one fleet sweep over every workspace instance with ONE SSM
 * Run Command (lambdas/core/sweep/fleet-sweep.ts). Each invocation does a bounded amount of work,
 * so a fleet that takes hours to sweep never meets the Lambda timeout:
 *
 *   {action: 'start', event}            settings from the environment → SendCommand → the state
 *                                       `{sweep, check, report}` the machine carries (a few hundred bytes)
 *   {action: 'check', sweep, check}     one cheap look at the command (fleet-sweep.ts checkFleetSweep)
 *                                       → the next `check`: done? how long to wait?
 *   {action: 'report', sweep, report}   up to SWEEP_REPORT_PAGES pages of invocations from
 *                                       `report.nextToken` on: one log line and one value of each
 *                                       metric per host, running totals → the next `report`; the
 *                                       machine loops while `report.more`. Each host is on exactly
 *                                       one page, so it is reported exactly once.
 *
 * Environment (set by infra/):
 *   SWEEP_OLDER_THAN_DAYS   snapshots and failed installs older than this go (default 7)
 *   SWEEP_KEEP              the newest N snapshots of each plugin always stay (default 1)
 *   SWEEP_TARGET_TAG        instances carrying this tag key are swept (default WorkspaceId)
 *   SWEEP_MAX_CONCURRENCY   SSM MaxConcurrency (default 10%)
 *   SWEEP_MAX_ERRORS        SSM MaxErrors (default 5%): failed hosts tolerated before SSM stops
 *                           sending the command to the hosts it has not started.
 *   Both go to SSM as counts: `start` counts the tagged instances (EC2 DescribeInstances) and
 *   turns a percentage into max(1, floor(p% × fleet)) (lambdas/core/sweep/fleet-size.ts), so 5%
 *   of a 3-host fleet tolerates one failed host instead of none.
 *   SWEEP_DRY_RUN           "true": report only (an input with detail.dryRun = true does the same)
 *   SSM_DOCUMENT_NAME       the stack's plugin-host Command document (required)
 *
 * Metrics (no dimension besides the service, one value per host, published by `report`):
 * SweptSnapshots (Count), SweptBytes (Bytes), SweepHostsFailed (Count, 0 or 1: its Sum is the
 * failed hosts), SweepHostsUnfinished (Count, 0 or 1: still running when the sweep stopped
 * waiting; not a failure).
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import * as z from '../core/zod.ts';
import { logger, metrics } from '../commons/logger.ts';
import { PluginError } from '../core/errors.ts';
import { isDocumentName } from '../core/host/ssm-document.ts';
import {
  addToTotals,
  checkFleetSweep,
  firstCheck,
  hostTotals,
  reportFleetSweep,
  startFleetSweep,
  zeroTotals,
  type FleetSweepCheck,
  type FleetSweepStarted,
  type FleetSweepStartOptions,
  type FleetTotals,
} from '../core/sweep/fleet-sweep.ts';
import { countTaggedInstances, rateControlCount } from '../core/sweep/fleet-size.ts';
import { DAY_MS, sweepRules } from '../core/sweep/sweep-rules.ts';

export interface SweeperSettings {
  olderThanDays: number;
  keepNewest: number;
  targetTag: string;
  maxConcurrency: string;
  maxErrors: string;
  dryRun: boolean;
  documentName: string;
}

/** Default SSM rate controls of the sweep, resolved against the fleet size before sending. */
export const DEFAULT_SWEEP_MAX_ERRORS = '5%';
export const DEFAULT_SWEEP_MAX_CONCURRENCY = '10%';
/** Metric names, as the alarms and the dashboard read them (infra/constructs/snapshot-sweeper.ts). */
export const SWEEP_METRICS = { snapshots: 'SweptSnapshots', bytes: 'SweptBytes', failed: 'SweepHostsFailed', unfinished: 'SweepHostsUnfinished' } as const;

const TAG_KEY = /^[A-Za-z0-9 _.:/=+@-]{1,128}$/;

function wholeNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = /^\d{1,7}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n > max) throw new PluginError('InvalidInput', `${name}=${JSON.stringify(raw)} is not a whole number from 0 to ${max}`, `fix the sweeper function's ${name} environment variable`);
  return n;
}

/** The sweeper's settings; a bad value fails the invocation loudly rather than sweeping with a guess. */
export function sweeperSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): SweeperSettings {
  const targetTag = env.SWEEP_TARGET_TAG || 'WorkspaceId';
  if (!TAG_KEY.test(targetTag)) throw new PluginError('InvalidInput', `SWEEP_TARGET_TAG=${JSON.stringify(targetTag)} is not a valid tag key`, 'a tag key of up to 128 characters: letters, digits, spaces and _ . : / = + - @');
  const documentName = env.SSM_DOCUMENT_NAME ?? '';
  if (!isDocumentName(documentName)) throw new PluginError('InvalidInput', `SSM_DOCUMENT_NAME=${JSON.stringify(env.SSM_DOCUMENT_NAME ?? '')} is not a document name`, "deploy with infra/: it creates the plugin-host document and sets SSM_DOCUMENT_NAME to its name");
  const dry = (env.SWEEP_DRY_RUN ?? '').toLowerCase();
  if (!['', 'true', 'false', '1', '0'].includes(dry)) throw new PluginError('InvalidInput', `SWEEP_DRY_RUN=${JSON.stringify(env.SWEEP_DRY_RUN)} is not true or false`, 'set SWEEP_DRY_RUN to true or false');
  const maxConcurrency = env.SWEEP_MAX_CONCURRENCY || DEFAULT_SWEEP_MAX_CONCURRENCY;
  const maxErrors = env.SWEEP_MAX_ERRORS || DEFAULT_SWEEP_MAX_ERRORS;
  // Checked here (any fleet size will do), so a bad value fails before anything is counted or sent.
  rateControlCount(maxConcurrency, 1, 'SWEEP_MAX_CONCURRENCY');
  rateControlCount(maxErrors, 1, 'SWEEP_MAX_ERRORS');
  return {
    olderThanDays: wholeNumber(env, 'SWEEP_OLDER_THAN_DAYS', 7, 36_500),
    keepNewest: wholeNumber(env, 'SWEEP_KEEP', 1, 1_000_000),
    targetTag,
    maxConcurrency,
    maxErrors,
    dryRun: dry === 'true' || dry === '1',
    documentName,
  };
}

/** A scheduled event (`detail: {}`), or a manual start asking for `{detail: {dryRun: true}}`. */
const EventSchema = z
  .object({ time: z.string().optional(), detail: z.object({ dryRun: z.boolean().optional() }).loose().optional() })
  .loose();

const Counts = z.object({ previous: z.number(), staging: z.number(), failed: z.number(), locks: z.number() });
const SweepSchema = z
  .object({
    commandId: z.string().min(1),
    targetCount: z.number(),
    dryRun: z.boolean(),
    keepNewest: z.number(),
    requestedAt: z.number(),
    deadline: z.number(),
  })
  .loose();
const CheckSchema = z.object({
  done: z.boolean(),
  deadlinePassed: z.boolean(),
  checks: z.number(),
  terminalListed: z.number(),
  pages: z.number(),
  waitSeconds: z.number(),
});
const ReportSchema = z.object({
  nextToken: z.union([z.string(), z.literal(null)]),
  more: z.boolean(),
  calls: z.number(),
  totals: z.object({ counts: Counts, bytes: z.number(), hosts: z.number(), failed: z.number(), unfinished: z.number() }),
});
const StartInput = z.object({ action: z.literal('start') }).loose();
const CheckInput = z.object({ action: z.literal('check'), sweep: SweepSchema, check: CheckSchema }).loose();
const ReportInput = z.object({ action: z.literal('report'), sweep: SweepSchema, report: ReportSchema }).loose();

export interface SweepReportState {
  /** Where the next report starts; null before the first and after the last. */
  nextToken: string | null;
  /** Another report call is needed. */
  more: boolean;
  /** Report calls so far. */
  calls: number;
  totals: FleetTotals;
}

/** The sweep state machine's state between Tasks. */
export interface SweepState {
  sweep: FleetSweepStarted & { olderThanDays: number; targetTag: string };
  check: FleetSweepCheck;
  report: SweepReportState;
}

export interface SweeperOptions {
  /** The SSM client, created once per container. */
  client: () => SSMClient;
  /** How many instances carry the tag key (resolves percentage rate controls; fleet-size.ts). */
  fleetSize: (tagKey: string) => Promise<number>;
  env?: NodeJS.ProcessEnv;
  clock?: () => Date;
  /** Test seams of the core (root prefix, timeouts, how long the sweep is followed, report paging). */
  fleet?: Pick<FleetSweepStartOptions, 'timeoutSeconds' | 'executionTimeoutSeconds' | 'maxSweepMs'> & { pageSize?: number; pagesPerReport?: number };
}

function badInput(what: string, error: { issues: { message: string; path: PropertyKey[] }[] }): PluginError {
  const issue = error.issues[0];
  return new PluginError(
    'InvalidInput',
    `the sweeper's ${what} input is not what the sweep state machine sends: ${issue ? `${issue.path.map(String).join('.')}: ${issue.message}` : ''}`,
    'start the sweep state machine (input {} or {"detail": {"dryRun": true}}) rather than invoking the function directly',
  );
}

export function sweeperHandler(options: SweeperOptions) {
  const now = () => (options.clock ?? (() => new Date()))().getTime();

  async function start(event: unknown): Promise<SweepState> {
    const settings = sweeperSettingsFromEnv(options.env ?? process.env);
    const parsed = EventSchema.safeParse(event ?? {});
    if (!parsed.success) throw badInput('start', parsed.error);
    const dryRun = settings.dryRun || parsed.data.detail?.dryRun === true;
    const rules = sweepRules({ now: new Date(now()), olderThanMs: settings.olderThanDays * DAY_MS, keepNewest: settings.keepNewest, dryRun });
    const percentages = settings.maxConcurrency.endsWith('%') || settings.maxErrors.endsWith('%');
    const fleetSize = percentages ? await options.fleetSize(settings.targetTag) : undefined;
    const started = await startFleetSweep({
      client: options.client(),
      documentName: settings.documentName,
      rules,
      targets: [{ Key: 'tag-key', Values: [settings.targetTag] }],
      maxConcurrency: rateControlCount(settings.maxConcurrency, fleetSize ?? 0, 'SWEEP_MAX_CONCURRENCY'),
      maxErrors: rateControlCount(settings.maxErrors, fleetSize ?? 0, 'SWEEP_MAX_ERRORS'),
      clock: now,
      ...options.fleet,
    });
    logger.info('fleet sweep sent', {
      commandId: started.commandId,
      targetCount: started.targetCount,
      fleetSize,
      dryRun,
      maxConcurrency: started.maxConcurrency,
      maxErrors: started.maxErrors,
      deadline: new Date(started.deadline).toISOString(),
    });
    return {
      sweep: { ...started, olderThanDays: settings.olderThanDays, targetTag: settings.targetTag },
      check: firstCheck(started, now()),
      report: { nextToken: null, more: true, calls: 0, totals: zeroTotals() },
    };
  }

  async function check(input: z.infer<typeof CheckInput>): Promise<FleetSweepCheck> {
    const result = await checkFleetSweep({ client: options.client(), started: input.sweep, previous: input.check, clock: now });
    const line = { commandId: input.sweep.commandId, checks: result.checks, done: result.done, pages: result.pages, waitSeconds: result.waitSeconds };
    if (result.deadlinePassed) logger.warn('fleet sweep deadline passed: hosts still running are reported unfinished', { ...line, deadline: new Date(input.sweep.deadline).toISOString() });
    else logger.info('fleet sweep checked', line);
    return result;
  }

  async function report(input: z.infer<typeof ReportInput>): Promise<SweepReportState> {
    const { sweep } = input;
    const page = await reportFleetSweep({ client: options.client(), commandId: sweep.commandId, nextToken: input.report.nextToken, pageSize: options.fleet?.pageSize, maxPages: options.fleet?.pagesPerReport });
    for (const host of page.hosts) {
      const { counts, bytes } = hostTotals(host);
      metrics.addMetric(SWEEP_METRICS.snapshots, MetricUnit.Count, counts.previous);
      metrics.addMetric(SWEEP_METRICS.bytes, MetricUnit.Bytes, bytes);
      metrics.addMetric(SWEEP_METRICS.failed, MetricUnit.Count, host.outcome === 'failed' ? 1 : 0);
      metrics.addMetric(SWEEP_METRICS.unfinished, MetricUnit.Count, host.outcome === 'unfinished' ? 1 : 0);
      const line = { instanceId: host.instanceId, status: host.status, outcome: host.outcome, counts, bytes, roots: host.roots, dryRun: sweep.dryRun, commandId: sweep.commandId };
      if (host.outcome === 'failed') logger.warn('sweep failed on host', { ...line, error: host.error });
      else if (host.outcome === 'unfinished') logger.info('sweep unfinished on host', { ...line, note: host.note });
      else logger.info('swept host', line);
    }
    if (page.hosts.length) metrics.publishStoredMetrics();
    const totals = addToTotals(structuredClone(input.report.totals), page.hosts);
    const next: SweepReportState = { nextToken: page.nextToken, more: page.nextToken !== null, calls: input.report.calls + 1, totals };
    if (!next.more) {
      const log = { commandId: sweep.commandId, dryRun: sweep.dryRun, hosts: totals.hosts, failed: totals.failed, unfinished: totals.unfinished, counts: totals.counts, bytes: totals.bytes, reports: next.calls };
      if (totals.unfinished) logger.warn('fleet sweep done, some hosts unfinished', log);
      else logger.info('fleet sweep done', log);
    }
    return next;
  }

  return async (event: unknown, context?: Context): Promise<unknown> => {
    if (context) logger.addContext(context);
    const action = (event as { action?: unknown } | null)?.action;
    switch (action) {
      case 'start': {
        const parsed = StartInput.safeParse(event);
        if (!parsed.success) throw badInput('start', parsed.error);
        return start((parsed.data as { event?: unknown }).event);
      }
      case 'check': {
        const parsed = CheckInput.safeParse(event);
        if (!parsed.success) throw badInput('check', parsed.error);
        return check(parsed.data);
      }
      case 'report': {
        const parsed = ReportInput.safeParse(event);
        if (!parsed.success) throw badInput('report', parsed.error);
        return report(parsed.data);
      }
      default:
        throw new PluginError(
          'InvalidInput',
          `the sweeper was invoked without an action (start, check or report): ${JSON.stringify(action ?? null)}`,
          'start the sweep state machine (input {} or {"detail": {"dryRun": true}}) rather than invoking the function directly',
        );
    }
  };
}

let client: SSMClient | undefined;
let ec2: EC2Client | undefined;

export const handler = sweeperHandler({
  client: () => (client ??= new SSMClient({})),
  fleetSize: (tagKey) => countTaggedInstances((ec2 ??= new EC2Client({})), tagKey),
});
