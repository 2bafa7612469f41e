/**
 * The install workflow (statemachine/install.asl.json, real handlers, real host script) under
 * injected faults: every host step × {non-zero exit, killed mid-step (always / once), repeated
 * after it already succeeded}. Each case must end in the state the design's rollback table
 * promises, with no leftover staging and the lock released.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { errorFromFailure, categoryOf } from '../../lambdas/core/errors.ts';
import type { HostOp } from '../../lambdas/core/host/remote-host.ts';
import { DECISIVE_COMMAND, faultShims, type FaultMode } from '../helpers/fault-shims.ts';
import { hostState } from '../helpers/host-state.ts';
import { judgeLive } from '../helpers/live-tree.ts';
import { repeatAfterSuccess } from '../helpers/repeating-host.ts';
import { expectedTree, makeWorld, type World } from '../helpers/world.ts';

const NAME = 'matrix';
const V1 = { name: NAME, version: '1.0.0', files: 6 };
const V2 = { name: NAME, version: '2.0.0', files: 9 };
const VERSIONS = { '1.0.0': expectedTree(V1), '2.0.0': expectedTree(V2) };

/** failed: stopped before live was touched (CleanUp); rolled-back: RollBack ran. */
type Expect = 'installed' | 'failed' | 'rolled-back' | 'unmarked';
type Mode = Exclude<FaultMode, 'fail-once'> | 'repeat';

/**
 * Expected end state per (step, fault). "kill" runs the step's decisive command and then kills
 * the step, every attempt: idempotent steps then succeed on retry because their effect is
 * already there; staging redoes its extraction every time and so runs out of retries.
 */
const MATRIX: [HostOp, string, Record<Mode, Expect>][] = [
  ['lock', 'AcquireLock', { fail: 'failed', kill: 'installed', 'kill-once': 'installed', repeat: 'installed' }],
  ['stage', 'StageOnHost', { fail: 'failed', kill: 'failed', 'kill-once': 'installed', repeat: 'installed' }],
  ['swap', 'SwapIntoPlace', { fail: 'rolled-back', kill: 'installed', 'kill-once': 'installed', repeat: 'installed' }],
  ['snapshot', 'SnapshotLive', { fail: 'rolled-back', kill: 'installed', 'kill-once': 'installed', repeat: 'installed' }],
  // VerifyLive changes nothing on the host until it records its pass, so a step killed every time
  // never passes: the retries run out and the install is rolled back.
  ['verify', 'VerifyLive', { fail: 'rolled-back', kill: 'rolled-back', 'kill-once': 'installed', repeat: 'installed' }],
  ['mark', 'WriteMarker', { fail: 'unmarked', kill: 'installed', 'kill-once': 'installed', repeat: 'installed' }],
  ['unlock', 'ReleaseLock', { fail: 'installed', kill: 'installed', 'kill-once': 'installed', repeat: 'installed' }],
];

let world: World | undefined;
afterEach(async () => {
  await world?.cleanup();
  world = undefined;
});

async function upgradeUnder(op: HostOp, mode: Mode) {
  const base = await makeWorld();
  world = base;
  const v1 = await base.source(V1);
  const v2 = await base.source(V2);
  expect((await base.install(v1)).status).toBe('SUCCEEDED');
  let faulty: World;
  let cleanup = () => {};
  if (mode === 'repeat') {
    faulty = base;
    faulty.deps.hosts = repeatAfterSuccess(base.deps.hosts, op);
  } else {
    const shims = faultShims({ op, command: DECISIVE_COMMAND[op]!, mode });
    faulty = base.withHostEnv(shims.env);
    cleanup = shims.cleanup;
  }
  try {
    return { outcome: await faulty.install(v2), world: base };
  } finally {
    cleanup();
  }
}

describe('install fault matrix (upgrade v1 → v2)', () => {
  for (const [op, state, expectations] of MATRIX) {
    for (const [mode, expected] of Object.entries(expectations) as [Mode, Expect][]) {
      it(`${state} × ${mode} → ${expected}`, async () => {
        const { outcome, world: w } = await upgradeUnder(op, mode);
        const verdict = judgeLive(w.liveTree(NAME), VERSIONS);
        const host = hostState(w.root, NAME);
        expect(verdict.state, verdict.problem).toBe('whole');
        expect(host.staging).toEqual([]);
        // A lock whose release itself is what fails stays until its lease expires: that is the
        // only case allowed to leave one.
        if (!(op === 'unlock' && mode === 'fail')) expect(host.locked).toBe(false);
        if (expected === 'installed') {
          expect(outcome.status).toBe('SUCCEEDED');
          expect(verdict).toMatchObject({ version: '2.0.0', markedVersion: '2.0.0' });
        } else if (expected === 'rolled-back' || expected === 'failed') {
          expect(outcome.status).toBe('FAILED');
          expect(categoryOf(errorFromFailure(outcome.error, outcome.cause).code)).not.toBe('operator');
          expect(verdict).toMatchObject({ version: '1.0.0', markedVersion: '1.0.0' });
          const names = outcome.steps.map((s) => s.name);
          expect(names).toContain(expected === 'failed' ? 'CleanUp' : 'RollBack');
          expect(names).not.toContain(expected === 'failed' ? 'RollBack' : 'CleanUp');
          expect(names).not.toContain('RollbackFailed');
        } else {
          expect(outcome.status).toBe('FAILED');
          expect(outcome.error).toBe('MarkerWriteFailed');
          expect(verdict).toMatchObject({ version: '2.0.0', markedVersion: undefined });
          expect(errorFromFailure(outcome.error, outcome.cause).hint).toContain('.complete');
          expect(outcome.steps.map((s) => s.name)).not.toContain('RollBack');
        }
      });
    }
  }
});

describe('fresh install faults', () => {
  for (const op of ['stage', 'swap', 'verify'] as const) {
    it(`${op} failing on a fresh install leaves no live copy`, async () => {
      world = await makeWorld();
      const v1 = await world.source(V1);
      // Nothing is live yet: the swap of a first install is a plain rename.
      const shims = faultShims({ op, command: op === 'swap' ? 'mv' : DECISIVE_COMMAND[op]!, mode: 'fail' });
      try {
        const outcome = await world.withHostEnv(shims.env).install(v1);
        expect(outcome.status).toBe('FAILED');
      } finally {
        shims.cleanup();
      }
      expect(judgeLive(world.liveTree(NAME), VERSIONS).state).toBe('absent');
      expect(hostState(world.root, NAME)).toMatchObject({ staging: [], previous: [], locked: false });
    });
  }
});

describe('rollback that fails', () => {
  it('ends the execution with RollbackFailed and leaves the state for an operator', async () => {
    world = await makeWorld();
    await world.install(await world.source(V1));
    const v2 = await world.source(V2);
    // SnapshotLive fails after the exchange; RollBack exchanges v1 back, then cannot move v2 away.
    const shims = faultShims({ op: ['snapshot', 'rollback'], command: 'mv', mode: 'fail' });
    let outcome;
    try {
      outcome = await world.withHostEnv(shims.env).install(v2);
    } finally {
      shims.cleanup();
    }
    expect(outcome.status).toBe('FAILED');
    expect(outcome.error).toBe('RollbackFailed');
    const error = errorFromFailure(outcome.error, outcome.cause);
    expect(categoryOf(error.code)).toBe('operator');
    expect(error.hint).toMatch(/\.previous\/matrix\./);
    expect(error.message).toContain('exchanged-back');
    // As found: v1 live again and complete (the exchange back happened), v2 still in the staging
    // slot, the lock still held for the operator.
    const host = hostState(world.root, NAME);
    expect(host.previous).toHaveLength(0);
    expect(host.staging).toHaveLength(1);
    expect(host.locked).toBe(true);
    expect(judgeLive(world.liveTree(NAME), VERSIONS)).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
  });
});
