/**
 * NextWave: the next batch of targets, from the rollout's record and pages (never from the state).
 * - install phase: scans targets from the cursor in order; a target whose live copy is already
 *   the rollout's sha256 (complete) is `skipped`, the others fill the wave up to its size
 *   (wave-plan.ts), each with a fresh stamp and its execution name. At most SCAN_LIMIT targets
 *   are looked at per call, so a mostly-skipped re-run advances in bounded steps (a wave may
 *   then be empty). A host that cannot be listed is not skipped: its install decides.
 * - rollback phase (halted with rollbackOnHalt): the targets this attempt upgraded, each back to
 *   what it had: the rollback workflow (newest snapshot: the version the install displaced), or
 *   the uninstall workflow where nothing was installed before.
 * - done: `done: true`, and FinishRollout follows.
 * Renews the rollout lock on every call.
 */
import { executionName } from '../execution-name.ts';
import { newStamp } from '../stamp.ts';
import { listPlugins } from '../steps/list-plugins.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import { PageCache, readRecord, rolloutStore, writeRecord } from './rollout-documents.ts';
import { PAGE_SIZE, SCAN_LIMIT } from './rollout-limits.ts';
import { renewRolloutLock } from './rollout-lock.ts';
import { ROLLOUT_LEASE_SECONDS } from './plan-rollout.ts';
import { pageOf, type RolloutPhase, type RolloutRecord } from './rollout-record.ts';
import { nextWaveShape } from './wave-plan.ts';

export type TargetWorkflow = 'install' | 'rollback' | 'uninstall';

/** One Map item: what a target's child execution needs (~200 bytes). */
export interface WaveItem {
  index: number;
  workspace: string;
  workflow: TargetWorkflow;
  execution: string;
  stamp: string;
}

export interface Wave {
  done: boolean;
  /** Waves recorded before this one + 1. */
  number: number;
  phase: RolloutPhase;
  canary: boolean;
  concurrency: number;
  items: WaveItem[];
}

/** Hosts listed at once by the skip check; a scan of SCAN_LIMIT targets is SCAN_LIMIT / this rounds of listings. */
export const SKIP_CHECK_CONCURRENCY = 8;

function finished(record: RolloutRecord): Wave {
  return { done: true, number: record.waves, phase: 'done', canary: false, concurrency: 1, items: [] };
}

/** Whether the workspace already runs the rollout's version, and whether it has the plugin at all. */
async function liveState(deps: StepDeps, workspace: string, record: RolloutRecord): Promise<{ atTarget: boolean; hadPrevious: boolean }> {
  try {
    const listing = await listPlugins(deps, workspace);
    const live = listing.plugins.find((p) => p.name === record.plugin);
    return { atTarget: Boolean(live && live.complete && live.sha256 === record.sha256), hadPrevious: Boolean(live) };
  } catch {
    // Unknown: install, and let the install's own checks say what is wrong with the host.
    return { atTarget: false, hadPrevious: true };
  }
}

function item(record: RolloutRecord, index: number, workspace: string, workflow: TargetWorkflow, now: Date): WaveItem {
  const stamp = newStamp(now);
  return { index, workspace, workflow, stamp, execution: executionName(workspace, record.plugin, stamp) };
}

async function installWave(deps: StepDeps, record: RolloutRecord, pages: PageCache): Promise<Wave> {
  const shape = nextWaveShape(record);
  const items: WaveItem[] = [];
  const end = Math.min(record.targetCount, record.cursor + SCAN_LIMIT);
  let cursor = record.cursor;
  scan: while (cursor < end && items.length < shape.size) {
    const batch: { index: number; workspace: string }[] = [];
    for (let i = cursor; i < end && batch.length < SKIP_CHECK_CONCURRENCY; i++) {
      const page = await pages.page(pageOf(i));
      batch.push({ index: i, workspace: page.targets[i % PAGE_SIZE]! });
    }
    const states = await Promise.all(batch.map((t) => liveState(deps, t.workspace, record)));
    for (let k = 0; k < batch.length; k++) {
      const t = batch[k]!;
      const state = states[k]!;
      const page = await pages.page(pageOf(t.index));
      if (state.atTarget) {
        page.entries[String(t.index % PAGE_SIZE)] = { status: 'skipped' };
        record.counts.skipped++;
      } else {
        if (items.length === shape.size) break scan;
        const it = item(record, t.index, t.workspace, 'install', deps.clock());
        items.push(it);
        page.entries[String(t.index % PAGE_SIZE)] = { status: 'in-flight', execution: it.execution, hadPrevious: state.hadPrevious };
      }
      pages.touch(pageOf(t.index));
      cursor = t.index + 1;
    }
  }
  record.cursor = cursor;
  if (shape.canary) record.canaryStarted += items.length;
  if (items.length === 0 && cursor >= record.targetCount) {
    record.phase = 'done';
    return finished(record);
  }
  return { done: false, number: record.waves + 1, phase: 'install', canary: shape.canary, concurrency: Math.max(1, Math.min(items.length, shape.concurrency)), items };
}

async function rollbackWave(deps: StepDeps, record: RolloutRecord, pages: PageCache): Promise<Wave> {
  const items: WaveItem[] = [];
  let cursor = record.rollbackCursor;
  while (cursor < record.targetCount && items.length < record.maxConcurrency) {
    const page = await pages.page(pageOf(cursor));
    const entry = page.entries[String(cursor % PAGE_SIZE)];
    // Only what this attempt upgraded and has not rolled back (a retried wave finds it done).
    if (entry?.status === 'succeeded' && !entry.rollbackExecution) {
      const it = item(record, cursor, page.targets[cursor % PAGE_SIZE]!, entry.hadPrevious === false ? 'uninstall' : 'rollback', deps.clock());
      items.push(it);
      entry.rollbackExecution = it.execution;
      pages.touch(pageOf(cursor));
    }
    cursor++;
  }
  record.rollbackCursor = cursor;
  if (items.length === 0) {
    record.phase = 'done';
    return finished(record);
  }
  return { done: false, number: record.waves + 1, phase: 'rollback', canary: false, concurrency: Math.min(items.length, record.maxConcurrency), items };
}

export async function nextWave(deps: StepDeps, input: { rolloutId: string }): Promise<Wave> {
  const store = rolloutStore(deps);
  const record = await readRecord(store, input.rolloutId);
  const now = deps.clock();
  await renewRolloutLock(store, { plugin: record.plugin, rolloutId: record.rolloutId, pid: deps.lockOwnerPid, leaseSeconds: Math.max(ROLLOUT_LEASE_SECONDS, deps.leaseSeconds), now });
  if (record.phase === 'done') return finished(record);
  const pages = new PageCache(store, record.rolloutId, record.attempt);
  const wave = record.phase === 'install' ? await installWave(deps, record, pages) : await rollbackWave(deps, record, pages);
  // Pages first: a record that points past entries never written would lose targets.
  await pages.flush();
  await writeRecord(store, record, now);
  return wave;
}
