/**
 * PlanRollout: everything checked once, before any install starts (a refusal here leaves every
 * workspace untouched; pluginctl exits 2, or 4 for RolloutBusy):
 * - the request the caller stored (rollout-request.ts) is well formed, maxErrors parses;
 * - the source is validated once and stored once, by sha256 (each install then gets
 *   `artifact://sha256/<hex>`: exactly these bytes);
 * - the targets resolve: named workspaces must exist, `all` / a tag selector list them through the
 *   WorkspaceDirectory; each must be a runtime the plugin supports (and not `external`);
 * - a rollout id used before must have been a rollout of the same plugin and sha256: running it
 *   again starts the next attempt, which finishes what is left;
 * - the plugin's rollout lock is taken.
 * Then the attempt's target pages and the record are written. The state gets a small reference.
 */
import { PluginError } from '../errors.ts';
import { assertRuntimeSupported } from '../manifest.ts';
import { artifactSource } from '../sources/resolve-source.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import { storeValidatedSource } from '../steps/store-validated-source.ts';
import type { WorkspaceRecord } from '../workspaces/workspace-directory.ts';
import { START_EVENTS } from './history-budget.ts';
import { errorBudget, parseMaxErrors } from './max-errors.ts';
import { rolloutStore, writeRecord } from './rollout-documents.ts';
import { MAX_TARGETS, PAGE_SIZE } from './rollout-limits.ts';
import { acquireRolloutLock } from './rollout-lock.ts';
import { pageCount, pageKey, recordKey, refOf, requestKey, RolloutRequestSchema, type ResultPage, type RolloutRecord, type RolloutRef } from './rollout-record.ts';

/** How long the rollout lock lasts without a wave renewing it (a dead Lambda chain frees it). */
export const ROLLOUT_LEASE_SECONDS = 3600;
const LOOKUP_CONCURRENCY = 16;

export interface PlanInput {
  rolloutId: string;
  /** This execution's name ($$.Execution.Name). */
  execution: string;
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

function listed(ids: string[]): string {
  return ids.slice(0, 5).join(', ') + (ids.length > 5 ? ` and ${ids.length - 5} more` : '');
}

export async function planRollout(deps: StepDeps, input: PlanInput): Promise<RolloutRef> {
  const store = rolloutStore(deps);
  const stored = await store.get<unknown>(requestKey(input.rolloutId));
  if (!stored) throw new PluginError('InvalidInput', `rollout ${input.rolloutId} has no request in the store`, 'start rollouts with pluginctl rollout or POST /rollouts, which store the request first');
  const parsed = RolloutRequestSchema.safeParse(stored.value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'request'}: ${i.message}`).join('; ');
    throw new PluginError('InvalidInput', `invalid rollout request: ${issues}`, 'fix the request and start the rollout again');
  }
  const request = parsed.data;
  const maxErrors = parseMaxErrors(request.maxErrors);

  // The source first: a bad source is the likeliest refusal and needs no workspace lookup.
  const source = await storeValidatedSource(deps, request.source, request.sha256);
  const { manifest } = source;

  const ids = 'workspaces' in request.targets
    ? [...new Set(request.targets.workspaces)]
    : await deps.workspaces.list('selector' in request.targets ? request.targets.selector : undefined);
  if (ids.length === 0) {
    throw new PluginError('InvalidInput', 'the rollout has no targets: no workspace matched', 'register workspaces first, or check the tag selector');
  }
  if (ids.length > MAX_TARGETS) {
    throw new PluginError('InvalidInput', `the rollout has ${ids.length} targets, more than ${MAX_TARGETS}`, `split it into rollouts of at most ${MAX_TARGETS} workspaces (e.g. by tag)`);
  }
  const lookups = await mapLimit(ids, LOOKUP_CONCURRENCY, async (id) => ({ id, found: await deps.workspaces.lookup(id) }));
  const unknown = lookups.filter((l) => l.found.status === 'not-found').map((l) => l.id);
  if (unknown.length) throw new PluginError('WorkspaceNotFound', `unknown workspace${unknown.length > 1 ? 's' : ''} ${listed(unknown)}`, 'check the ids (pluginctl rollout --all takes every registered workspace)');
  const unfit: string[] = [];
  for (const { id, found } of lookups) {
    const ws: WorkspaceRecord | undefined = found.status === 'not-found' ? undefined : found.workspace;
    // A stopped workspace is a target all the same: its install fails and counts against maxErrors.
    if (!ws) continue;
    try {
      if (ws.runtime === 'external') throw new PluginError('ExternalRuntime', 'external', '');
      assertRuntimeSupported(manifest, ws.runtime);
    } catch {
      unfit.push(`${id} (${ws.runtime})`);
    }
  }
  if (unfit.length) {
    throw new PluginError('RuntimeMismatch', `${manifest.name} ${manifest.version} cannot go to ${listed(unfit)}`, 'leave those workspaces out of the rollout (external workspaces pull plugins through the download route)');
  }

  const previous = await store.get<RolloutRecord>(recordKey(request.rolloutId));
  if (previous && (previous.value.plugin !== manifest.name || previous.value.sha256 !== source.upload.sha256)) {
    const p = previous.value;
    throw new PluginError('InvalidInput', `rollout ${request.rolloutId} is a rollout of ${p.plugin} ${p.version} (sha256 ${p.sha256.slice(0, 12)}…), not of ${manifest.name} ${manifest.version} (sha256 ${source.upload.sha256.slice(0, 12)}…)`, 'use a new --rollout-id for another version, or the same source to finish that rollout');
  }

  const now = deps.clock();
  await acquireRolloutLock(store, { plugin: manifest.name, rolloutId: request.rolloutId, pid: deps.lockOwnerPid, leaseSeconds: Math.max(ROLLOUT_LEASE_SECONDS, deps.leaseSeconds), now });

  const attempt = (previous?.value.attempt ?? 0) + 1;
  for (let p = 0; p < pageCount(ids.length); p++) {
    const page: ResultPage = { targets: ids.slice(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), entries: {} };
    await store.put(pageKey(request.rolloutId, attempt, p), page);
  }
  const record: RolloutRecord = {
    rolloutId: request.rolloutId,
    plugin: manifest.name,
    version: manifest.version,
    sha256: source.upload.sha256,
    source: artifactSource(source.upload.sha256),
    requestedSource: request.source,
    maxConcurrency: request.maxConcurrency,
    maxErrors: maxErrors.spec,
    budget: errorBudget(maxErrors, ids.length),
    canary: request.canary,
    rollbackOnHalt: request.rollbackOnHalt,
    targetCount: ids.length,
    attempt,
    status: 'running',
    haltReason: null,
    phase: 'install',
    cursor: 0,
    canaryStarted: 0,
    rollbackCursor: 0,
    waves: 0,
    execution: { name: input.execution, seq: 0, events: START_EVENTS },
    counts: { succeeded: 0, failed: 0, skipped: 0, rolledBack: 0 },
    startedAt: now.toISOString(),
    updatedAt: now.toISOString(),
  };
  await writeRecord(store, record, now);
  return refOf(record);
}
