/**
 * GET /rollouts/{id}: the rollout's report (rollout-report.ts, the `pluginctl rollout --json`
 * object) from the store, with the status its execution chain gives it while the record alone
 * cannot say:
 *   running    the record's phase is not `done` and the execution it names runs (or has just
 *              continued as a new one), or the request is stored and PlanRollout is still at it
 *              (then plugin, version, sha256 and counts are null and workspaces empty: nothing is
 *              known before the source is read). A halted rollout still rolling back is running.
 *   failed     the execution stopped before the record reached `done` (a rollout step failed
 *              after its retries, the execution was aborted or timed out, or the process that ran
 *              it is gone): the report as it stood, plus `error`
 *   refused / busy   PlanRollout refused the rollout (nothing started): as `pluginctl rollout
 *              --json` prints a refusal, with `error`
 * Once the record's phase is `done`, the record's own status (succeeded, failed, halted) stands.
 */
import { categoryOf } from '../errors.ts';
import type { WorkflowEngine } from '../workflow/workflow-engine.ts';
import { executionId } from '../workflow/workflow-engine.ts';
import { ROLLOUT_DEFINITION } from '../workflow/workflow-files.ts';
import { holdsRolloutLock } from './rollout-lock.ts';
import { recordKey, requestKey, type RolloutRecord } from './rollout-record.ts';
import { contractReport, readRolloutReport } from './rollout-report.ts';
import type { RolloutStore } from './rollout-store.ts';

type ErrorJson = { code: string; message: string; hint: string };

/** The name POST /rollouts gives a rollout's first execution: its id, so a retry meets it. */
export const firstExecutionName = (rolloutId: string): string => rolloutId;

function stopped(rolloutId: string, how: string): ErrorJson {
  return {
    code: 'HostStepFailed',
    message: `rollout ${rolloutId} stopped before it finished: ${how}`,
    hint: 'start it again (POST /rollouts with the same source and targets, or pluginctl rollout --rollout-id): targets already at the version are skipped',
  };
}

export async function describeRollout(store: RolloutStore, engine: WorkflowEngine, rolloutId: string, now: Date): Promise<Record<string, unknown> | undefined> {
  const record = (await store.get<RolloutRecord>(recordKey(rolloutId)))?.value;
  if (!record) {
    if (!(await store.get(requestKey(rolloutId)))) return undefined;
    const pending = { rollout: rolloutId, plugin: null, version: null, sha256: null, counts: null, workspaces: [] };
    const execution = await engine.describe(executionId(ROLLOUT_DEFINITION, firstExecutionName(rolloutId)), { steps: false });
    if (execution?.status === 'RUNNING') return { status: 'running', ...pending };
    const error = execution?.error ?? stopped(rolloutId, execution ? `its execution ended ${execution.status}` : 'no execution of it is running');
    const category = categoryOf(error.code);
    return { status: category === 'refused' ? 'refused' : category === 'busy' ? 'busy' : 'failed', ...pending, error };
  }

  const report = contractReport(await readRolloutReport(store, rolloutId));
  if (record.phase === 'done') return report;
  const execution = await engine.describe(executionId(ROLLOUT_DEFINITION, record.execution.name), { steps: false });
  // SUCCEEDED: it continued as a new execution that has not taken the record over yet.
  if (execution && (execution.status === 'RUNNING' || execution.status === 'SUCCEEDED')) return { ...report, status: 'running' };
  // Not this engine's execution (a `pluginctl rollout` on the same home): its live lock says it runs.
  if (!execution && (await holdsRolloutLock(store, record.plugin, rolloutId, now))) return { ...report, status: 'running' };
  return { ...report, status: 'failed', error: execution?.error ?? stopped(rolloutId, execution ? `its execution ${record.execution.name} ended ${execution.status}` : `its execution ${record.execution.name} is gone`) };
}
