/**
 * RecordWave: writes what each target's child execution came to into the rollout's pages, updates
 * the counts, applies the halt rules (halt-rules.ts) and the history budget (history-budget.ts).
 * Idempotent: a retried call finds the entries already settled and changes nothing twice.
 */
import { PluginError } from '../errors.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import { haltAfterWave, type HaltReason } from './halt-rules.ts';
import { mustContinueAsNew, waveEvents } from './history-budget.ts';
import type { TargetWorkflow } from './next-wave.ts';
import { PageCache, readRecord, rolloutStore, writeRecord } from './rollout-documents.ts';
import { PAGE_SIZE } from './rollout-limits.ts';
import { countsOf, pageOf, type RolloutCounts, type RolloutPhase, type RolloutStatus, type TargetError } from './rollout-record.ts';
import { newStamp } from '../stamp.ts';

export interface TargetResult {
  item: { index: number; workspace: string; workflow: TargetWorkflow; execution: string };
  outcome: 'succeeded' | 'failed';
  error?: TargetError;
}

export interface RecordWaveInput {
  rolloutId: string;
  wave: { number: number; phase: RolloutPhase; canary: boolean; results: TargetResult[] };
}

export interface WaveRecorded {
  number: number;
  phase: RolloutPhase;
  status: RolloutStatus;
  haltReason: HaltReason | null;
  counts: RolloutCounts;
  /** This wave's own tally. */
  succeeded: number;
  failed: number;
  continueAsNew: boolean;
  /** Name of the execution that continues this rollout (set when continueAsNew). */
  nextExecution: string;
}

export async function recordWave(deps: StepDeps, input: RecordWaveInput): Promise<WaveRecorded> {
  const store = rolloutStore(deps);
  const record = await readRecord(store, input.rolloutId);
  const pages = new PageCache(store, record.rolloutId, record.attempt);
  const { results, phase, canary } = input.wave;
  let succeeded = 0;
  let failed = 0;
  for (const r of results) {
    const page = await pages.page(pageOf(r.item.index));
    const slot = String(r.item.index % PAGE_SIZE);
    const entry = page.entries[slot];
    if (page.targets[r.item.index % PAGE_SIZE] !== r.item.workspace || !entry) {
      throw new PluginError('HostStepFailed', `wave ${input.wave.number} of rollout ${record.rolloutId} reports target ${r.item.index} as ${r.item.workspace}, which the rollout did not start there`, 're-run the rollout with the same id: it starts a fresh attempt');
    }
    if (r.outcome === 'succeeded') succeeded++;
    else failed++;
    if (r.item.workflow === 'install') {
      if (entry.status !== 'in-flight' || entry.execution !== r.item.execution) continue;
      entry.status = r.outcome;
      if (r.error) entry.error = r.error;
      if (r.outcome === 'succeeded') record.counts.succeeded++;
      else record.counts.failed++;
    } else {
      if (entry.status !== 'succeeded' || entry.rollbackExecution !== r.item.execution || entry.error) continue;
      if (r.outcome === 'succeeded') {
        entry.status = 'rolled-back';
        record.counts.succeeded--;
        record.counts.rolledBack++;
      } else {
        // The new version stays live: say so on the target, and that its rollback failed.
        const e = r.error ?? { code: 'HostStepFailed', message: 'the rollback failed', hint: '' };
        entry.error = { code: e.code, message: `rolling back failed: ${e.message}`, hint: e.hint || `roll ${record.plugin} back on ${r.item.workspace} by hand: pluginctl rollback ${record.plugin} --workspace ${r.item.workspace}` };
      }
    }
    pages.touch(pageOf(r.item.index));
  }
  await pages.flush();

  record.waves = Math.max(record.waves, input.wave.number);
  if (phase === 'install' && record.status === 'running') {
    const halt = haltAfterWave({ canary, waveFailed: failed, totalFailed: record.counts.failed, budget: record.budget });
    if (halt) {
      record.status = 'halted';
      record.haltReason = halt;
      record.phase = record.rollbackOnHalt ? 'rollback' : 'done';
    }
  }
  record.execution.events += waveEvents(results.length);
  const continueAsNew = record.phase !== 'done' && mustContinueAsNew(record.execution.events);
  const now = deps.clock();
  const nextExecution = continueAsNew ? `${record.rolloutId}-${newStamp(now)}` : '';
  await writeRecord(store, record, now);
  return { number: input.wave.number, phase: record.phase, status: record.status, haltReason: record.haltReason, counts: countsOf(record), succeeded, failed, continueAsNew, nextExecution };
}
