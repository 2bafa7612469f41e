/**
 * FinishRollout: the attempt's verdict, and the lock released.
 *   succeeded  every target succeeded or was skipped
 *   failed     it ran to the end, but some targets failed (no more than maxErrors)
 *   halted     a canary failed, or failures exceeded maxErrors (what was left never started)
 */
import type { StepDeps } from '../steps/step-deps.ts';
import type { HaltReason } from './halt-rules.ts';
import { readRecord, rolloutStore, writeRecord } from './rollout-documents.ts';
import { releaseRolloutLock } from './rollout-lock.ts';
import { countsOf, type RolloutCounts } from './rollout-record.ts';

export interface RolloutVerdict {
  status: 'succeeded' | 'failed' | 'halted';
  haltReason: HaltReason | null;
  counts: RolloutCounts;
}

export async function finishRollout(deps: StepDeps, input: { rolloutId: string }): Promise<RolloutVerdict> {
  const store = rolloutStore(deps);
  const record = await readRecord(store, input.rolloutId);
  if (record.status === 'running') record.status = record.counts.failed > 0 ? 'failed' : 'succeeded';
  record.phase = 'done';
  await writeRecord(store, record, deps.clock());
  await releaseRolloutLock(store, record.plugin, record.rolloutId);
  return { status: record.status, haltReason: record.haltReason, counts: countsOf(record) };
}
