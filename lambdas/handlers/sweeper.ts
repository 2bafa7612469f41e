/**
 * The sweeper Lambda (EventBridge schedule): one fleet sweep over every workspace instance with
 * SSM Run Command (lambdas/core/sweep/fleet-sweep.ts). Thin: settings from the environment →
 * core → metrics, one log line per host, and the summary as the result.
 *
 * Environment (set by infra/):
 *   SWEEP_OLDER_THAN_DAYS   snapshots and failed installs older than this go (default 7)
 *   SWEEP_KEEP              the newest N snapshots of each plugin always stay (default 1)
 *   SWEEP_TARGET_TAG        instances carrying this tag key are swept (default WorkspaceId)
 *   SWEEP_MAX_CONCURRENCY   SSM MaxConcurrency (default 10%)
 *   SWEEP_MAX_ERRORS        SSM MaxErrors (default 5%)
 *   SWEEP_DRY_RUN           "true": report only (an event with detail.dryRun = true does the same)
 *   SSM_DOCUMENT_NAME       the stack's plugin-host Command document (required)
 *
 * Metrics (no dimension besides the service, one value per host): SweptSnapshots (Count),
 * SweptBytes (Bytes), SweepHostsFailed (Count, 0 or 1: its Sum is the failed hosts).
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import { SSMClient } from '@aws-sdk/client-ssm';
import * as z from '../core/zod.ts';
import { logger, metrics } from '../commons/logger.ts';
import { PluginError } from '../core/errors.ts';
import { fleetSweep, hostTotals, type FleetSweepOptions, type FleetSweepSummary } from '../core/sweep/fleet-sweep.ts';
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
  if (!/^[A-Za-z0-9_.-]{3,128}$/.test(documentName)) throw new PluginError('InvalidInput', `SSM_DOCUMENT_NAME=${JSON.stringify(env.SSM_DOCUMENT_NAME ?? '')} is not a document name`, "deploy with infra/: it creates the plugin-host document and sets SSM_DOCUMENT_NAME to its name");
  const dry = (env.SWEEP_DRY_RUN ?? '').toLowerCase();
  if (!['', 'true', 'false', '1', '0'].includes(dry)) throw new PluginError('InvalidInput', `SWEEP_DRY_RUN=${JSON.stringify(env.SWEEP_DRY_RUN)} is not true or false`, 'set SWEEP_DRY_RUN to true or false');
  return {
    olderThanDays: wholeNumber(env, 'SWEEP_OLDER_THAN_DAYS', 7, 36_500),
    keepNewest: wholeNumber(env, 'SWEEP_KEEP', 1, 1_000_000),
    targetTag,
    maxConcurrency: env.SWEEP_MAX_CONCURRENCY || '10%',
    maxErrors: env.SWEEP_MAX_ERRORS || '5%',
    dryRun: dry === 'true' || dry === '1',
    documentName,
  };
}

/** A scheduled event (`detail: {}`), or a manual invocation asking for `{detail: {dryRun: true}}`. */
const EventSchema = z
  .object({ time: z.string().optional(), detail: z.object({ dryRun: z.boolean().optional() }).loose().optional() })
  .loose();

export interface SweeperResult extends FleetSweepSummary {
  olderThanDays: number;
  targetTag: string;
}

export interface SweeperOptions {
  /** The SSM client, created once per container. */
  client: () => SSMClient;
  env?: NodeJS.ProcessEnv;
  clock?: () => Date;
  /** Test seams of the core (root prefix, poll timings). */
  fleet?: Pick<FleetSweepOptions, 'pollInitialMs' | 'pollMaxMs' | 'sleep' | 'timeoutSeconds' | 'executionTimeoutSeconds'>;
}

export function sweeperHandler(options: SweeperOptions) {
  return async (event: unknown, context?: Context): Promise<SweeperResult> => {
    if (context) logger.addContext(context);
    const settings = sweeperSettingsFromEnv(options.env ?? process.env);
    const parsed = EventSchema.safeParse(event ?? {});
    if (!parsed.success) throw new PluginError('InvalidInput', `the sweeper's event is not an object: ${parsed.error.issues[0]?.message ?? ''}`, 'invoke it from the schedule, or with {"detail": {"dryRun": true}}');
    const dryRun = settings.dryRun || parsed.data.detail?.dryRun === true;
    const rules = sweepRules({ now: (options.clock ?? (() => new Date()))(), olderThanMs: settings.olderThanDays * DAY_MS, keepNewest: settings.keepNewest, dryRun });
    // Leave the function time to log and publish metrics before its own timeout.
    const maxWaitMs = context ? Math.max(10_000, context.getRemainingTimeInMillis() - 30_000) : undefined;

    const summary = await fleetSweep({
      client: options.client(),
      documentName: settings.documentName,
      rules,
      targets: [{ Key: 'tag-key', Values: [settings.targetTag] }],
      maxConcurrency: settings.maxConcurrency,
      maxErrors: settings.maxErrors,
      maxWaitMs,
      ...options.fleet,
    });

    for (const host of summary.hosts) {
      const { counts, bytes } = hostTotals(host);
      metrics.addMetric('SweptSnapshots', MetricUnit.Count, counts.previous);
      metrics.addMetric('SweptBytes', MetricUnit.Bytes, bytes);
      metrics.addMetric('SweepHostsFailed', MetricUnit.Count, host.error ? 1 : 0);
      const line = { instanceId: host.instanceId, status: host.status, counts, bytes, roots: host.roots, dryRun, commandId: summary.commandId };
      if (host.error) logger.warn('sweep failed on host', { ...line, error: host.error });
      else logger.info('swept host', line);
    }
    metrics.publishStoredMetrics();
    const log = { commandId: summary.commandId, dryRun, hosts: summary.totals.hosts, failed: summary.totals.failed, counts: summary.totals.counts, bytes: summary.totals.bytes, polls: summary.polls, pages: summary.pages, complete: summary.complete };
    if (summary.error) logger.error('fleet sweep incomplete', { ...log, error: summary.error });
    else logger.info('fleet sweep done', log);
    return { ...summary, olderThanDays: settings.olderThanDays, targetTag: settings.targetTag };
  };
}

let client: SSMClient | undefined;

export const handler = sweeperHandler({ client: () => (client ??= new SSMClient({})) });
