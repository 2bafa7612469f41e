/**
 * What a rollout came to, per workspace: the `pluginctl rollout --json` object and the body of
 * GET /rollouts/{id}, read from the store. While the rollout runs, `status` is `running` and
 * targets being installed are `in-flight`; a target NextWave picked but no execution reached
 * (a retried NextWave) reads `not-started` once the rollout has ended.
 */
import type { RolloutStore } from './rollout-store.ts';
import { PluginError } from '../errors.ts';
import { countsOf, pageCount, pageKey, recordKey, type ResultPage, type RolloutCounts, type RolloutRecord, type RolloutStatus, type TargetError } from './rollout-record.ts';

export type WorkspaceOutcome = 'succeeded' | 'failed' | 'skipped' | 'not-started' | 'rolled-back' | 'in-flight';

export interface WorkspaceReport {
  workspace: string;
  status: WorkspaceOutcome;
  execution?: string;
  error?: TargetError;
}

export interface RolloutReport {
  status: RolloutStatus;
  rollout: string;
  plugin: string;
  version: string;
  sha256: string;
  counts: RolloutCounts;
  workspaces: WorkspaceReport[];
}

export async function readRolloutReport(store: RolloutStore, rolloutId: string): Promise<RolloutReport & { record: RolloutRecord }> {
  const found = await store.get<RolloutRecord>(recordKey(rolloutId));
  if (!found) throw new PluginError('InvalidInput', `rollout ${rolloutId} does not exist`, 'check the rollout id');
  const record = found.value;
  const running = record.status === 'running';
  const workspaces: WorkspaceReport[] = [];
  let inFlight = 0;
  for (let p = 0; p < pageCount(record.targetCount); p++) {
    const page = (await store.get<ResultPage>(pageKey(rolloutId, record.attempt, p)))?.value;
    if (!page) throw new PluginError('HostStepFailed', `page ${p} of rollout ${rolloutId} is missing`, 're-run the rollout with the same id');
    page.targets.forEach((workspace, i) => {
      const entry = page.entries[String(i)];
      const w: WorkspaceReport = { workspace, status: 'not-started' };
      if (entry && !(entry.status === 'in-flight' && !running)) {
        w.status = entry.status;
        if (entry.status === 'in-flight') inFlight++;
        if (entry.execution) w.execution = entry.execution;
        if (entry.error) w.error = entry.error;
      }
      workspaces.push(w);
    });
  }
  return {
    status: record.status,
    rollout: record.rolloutId,
    plugin: record.plugin,
    version: record.version,
    sha256: record.sha256,
    counts: countsOf(record, inFlight),
    workspaces,
    record,
  };
}

/**
 * The contract's object (README, "Fleet rollouts"), exactly its fields in its order: what
 * `pluginctl rollout --json` prints and GET /rollouts/{id} answers.
 */
export function contractReport(r: RolloutReport): Record<string, unknown> {
  return {
    status: r.status,
    rollout: r.rollout,
    plugin: r.plugin,
    version: r.version,
    sha256: r.sha256,
    counts: r.counts,
    workspaces: r.workspaces.map((w) => ({ workspace: w.workspace, status: w.status, ...(w.execution ? { execution: w.execution } : {}), ...(w.error ? { error: w.error } : {}) })),
  };
}
