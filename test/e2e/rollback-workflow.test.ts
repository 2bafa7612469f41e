/**
 * statemachine/rollback.asl.json and uninstall.asl.json end to end on the embedded default:
 * rollback swaps live with the newest snapshot (so it can be undone by another rollback), and an
 * uninstall can be rolled back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { hostState } from '../helpers/host-state.ts';
import { contentOnly, judgeLive } from '../helpers/live-tree.ts';
import { DECISIVE_COMMAND, faultShims } from '../helpers/fault-shims.ts';
import { expectedTree, makeWorld, type World } from '../helpers/world.ts';

const NAME = 'roller';
const V1 = { name: NAME, version: '1.0.0', files: 4 };
const V2 = { name: NAME, version: '2.0.0', files: 7 };
const V3 = { name: NAME, version: '3.0.0', files: 3 };
const VERSIONS = { '1.0.0': expectedTree(V1), '2.0.0': expectedTree(V2), '3.0.0': expectedTree(V3) };

let world: World;
afterEach(async () => world?.cleanup());

function liveVersion(w: World) {
  return judgeLive(w.liveTree(NAME), VERSIONS);
}

describe('rollback workflow', () => {
  it('install v1, v2, rollback gives v1 byte-for-byte; rollback again gives v2', async () => {
    world = await makeWorld();
    expect((await world.install(await world.source(V1))).status).toBe('SUCCEEDED');
    const v1Tree = world.liveTree(NAME)!;
    expect((await world.install(await world.source(V2))).status).toBe('SUCCEEDED');
    const v2Tree = world.liveTree(NAME)!;

    const first = await world.run('rollback', NAME);
    expect(first.status).toBe('SUCCEEDED');
    expect(first.steps.map((s) => s.name)).toEqual(['Prepare', 'AcquireLock', 'StageSnapshot', 'SwapIntoPlace', 'SnapshotLive', 'ReleaseLock', 'Notify', 'RolledBack']);
    expect(contentOnly(world.liveTree(NAME)!)).toEqual(contentOnly(v1Tree));
    // The marker still describes the content: v1 as it was installed.
    expect(world.liveTree(NAME)!['.complete']).toEqual(v1Tree['.complete']);

    expect((await world.run('rollback', NAME)).status).toBe('SUCCEEDED');
    expect(contentOnly(world.liveTree(NAME)!)).toEqual(contentOnly(v2Tree));
    expect(world.liveTree(NAME)!['.complete']).toEqual(v2Tree['.complete']);
    expect(hostState(world.root, NAME)).toMatchObject({ staging: [], locked: false });
  });

  it('with v1, v2, v3 installed, rollbacks toggle between v3 and v2 (the newest snapshot)', async () => {
    world = await makeWorld();
    for (const v of [V1, V2, V3]) expect((await world.install(await world.source(v))).status).toBe('SUCCEEDED');
    const seen: (string | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      expect((await world.run('rollback', NAME)).status).toBe('SUCCEEDED');
      seen.push(liveVersion(world).version);
    }
    expect(seen).toEqual(['2.0.0', '3.0.0', '2.0.0']);
  });

  it('with nothing to roll back to, fails with NothingToRestore and leaves live alone', async () => {
    world = await makeWorld();
    await world.install(await world.source(V1));
    const outcome = await world.run('rollback', NAME);
    expect(outcome.status).toBe('FAILED');
    expect(outcome.error).toBe('NothingToRestore');
    expect(liveVersion(world)).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    expect(hostState(world.root, NAME)).toMatchObject({ staging: [], locked: false });
  });

  for (const op of ['restore', 'snapshot', 'swap'] as const) {
    it(`a failing ${op} inside a rollback leaves live and the snapshots as they were`, async () => {
      world = await makeWorld();
      await world.install(await world.source(V1));
      await world.install(await world.source(V2));
      const before = hostState(world.root, NAME);
      const shims = faultShims({ op, command: DECISIVE_COMMAND[op]!, mode: 'fail' });
      try {
        expect((await world.withHostEnv(shims.env).run('rollback', NAME)).status).toBe('FAILED');
      } finally {
        shims.cleanup();
      }
      expect(liveVersion(world)).toMatchObject({ state: 'whole', version: '2.0.0', markedVersion: '2.0.0' });
      expect(hostState(world.root, NAME)).toEqual(before);
      // And the snapshot is still usable.
      expect((await world.run('rollback', NAME)).status).toBe('SUCCEEDED');
      expect(liveVersion(world).version).toBe('1.0.0');
    });
  }
});

describe('uninstall workflow', () => {
  it('moves live to .previous, and a rollback restores it byte-for-byte', async () => {
    world = await makeWorld();
    await world.install(await world.source(V1));
    const before = world.liveTree(NAME)!;
    const outcome = await world.run('uninstall', NAME);
    expect(outcome.status).toBe('SUCCEEDED');
    expect(world.liveTree(NAME)).toBeNull();
    expect(hostState(world.root, NAME).previous).toHaveLength(1);
    expect((await world.run('rollback', NAME)).status).toBe('SUCCEEDED');
    expect(contentOnly(world.liveTree(NAME)!)).toEqual(contentOnly(before));
  });

  it('of a plugin that is not installed fails with NotInstalled', async () => {
    world = await makeWorld();
    await world.install(await world.source(V1));
    const outcome = await world.run('uninstall', 'other-plugin');
    expect(outcome.status).toBe('FAILED');
    expect(outcome.error).toBe('NotInstalled');
  });
});
