/**
 * LoadRollout: the first state of a continued execution (continue-as-new): the rollout's state is
 * in the store, so the new execution only takes over the record (its name, a fresh history
 * budget) and the lock.
 */
import type { StepDeps } from '../steps/step-deps.ts';
import { START_EVENTS } from './history-budget.ts';
import { ROLLOUT_LEASE_SECONDS } from './plan-rollout.ts';
import { readRecord, rolloutStore, writeRecord } from './rollout-documents.ts';
import { renewRolloutLock } from './rollout-lock.ts';
import { refOf, type RolloutRef } from './rollout-record.ts';

export async function loadRollout(deps: StepDeps, input: { rolloutId: string; execution: string }): Promise<RolloutRef> {
  const store = rolloutStore(deps);
  const record = await readRecord(store, input.rolloutId);
  const now = deps.clock();
  await renewRolloutLock(store, { plugin: record.plugin, rolloutId: record.rolloutId, pid: deps.lockOwnerPid, leaseSeconds: Math.max(ROLLOUT_LEASE_SECONDS, deps.leaseSeconds), now });
  if (record.execution.name !== input.execution) record.execution = { name: input.execution, seq: record.execution.seq + 1, events: START_EVENTS };
  await writeRecord(store, record, now);
  return refOf(record);
}
