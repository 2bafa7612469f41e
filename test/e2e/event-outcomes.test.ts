/**
 * Every failure event says in one typed field what became of the workspace (docs/events.md):
 * `nothing-changed` (failed before live was touched), `rolled-back` (live had changed and was put
 * back), `rollback-failed` (left as found for an operator), `marker-failed` (the new version is
 * live but unmarked). Each case is produced for real: a refused source, and host commands made to
 * fail by fault shims on the host script's PATH.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { faultShims, type Fault } from '../helpers/fault-shims.ts';
import { makeWorld, type World } from '../helpers/world.ts';

let world: World | undefined;
afterEach(async () => {
  await world?.cleanup();
  world = undefined;
});

type PluginEvent = { detailType: string; detail: Record<string, unknown> };

function lastEvent(w: World): PluginEvent {
  const lines = readFileSync(join(w.home, 'events.jsonl'), 'utf8').trim().split('\n');
  return JSON.parse(lines.at(-1)!) as PluginEvent;
}

async function installWithFault(w: World, version: string, fault?: Fault) {
  const source = await w.source({ name: 'p', version });
  if (!fault) return w.install(source);
  const shims = faultShims(fault);
  try {
    return await w.withHostEnv(shims.env).install(source);
  } finally {
    shims.cleanup();
  }
}

describe('the outcome of a failed install, in its event', () => {
  it('nothing-changed: refused before any host step', async () => {
    world = await makeWorld();
    const r = await world.install(join(world.home, 'no-such-source'));
    expect(r.status).toBe('FAILED');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Install Failed', detail: { outcome: 'nothing-changed', changed: false } });
  });

  it('rolled-back: the swap happened, then a step failed and the previous version came back', async () => {
    world = await makeWorld();
    await installWithFault(world, '1.0.0');
    const r = await installWithFault(world, '2.0.0', { op: 'snapshot', command: 'mv', mode: 'fail' });
    expect(r.status).toBe('FAILED');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Install Failed', detail: { outcome: 'rolled-back', rolledBack: true } });
  });

  it('rollback-failed: the rollback itself could not finish', async () => {
    world = await makeWorld();
    await installWithFault(world, '1.0.0');
    const r = await installWithFault(world, '2.0.0', { op: ['snapshot', 'rollback'], command: 'mv', mode: 'fail' });
    expect(r.error).toBe('RollbackFailed');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Install Failed', detail: { outcome: 'rollback-failed' } });
  });

  it('marker-failed: the new version is live, its marker could not be written', async () => {
    world = await makeWorld();
    const r = await installWithFault(world, '1.0.0', { op: 'mark', command: 'mv', mode: 'fail' });
    expect(r.error).toBe('MarkerWriteFailed');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Install Failed', detail: { outcome: 'marker-failed', version: '1.0.0' } });
  });
});

describe('the outcome of a failed rollback or uninstall, in its event', () => {
  it('nothing-changed: nothing to restore', async () => {
    world = await makeWorld();
    await installWithFault(world, '1.0.0');
    const r = await world.run('rollback', 'p');
    expect(r.error).toBe('NothingToRestore');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Operation Failed', detail: { outcome: 'nothing-changed', changed: false } });
  });
});
