/**
 * A failure inside the uninstall and inside the rollback workflow, on every transport (local,
 * SSM, EIC), ends in the state the rollback table promises: live exactly as it was, snapshots
 * intact, no lock or staging left. The fault is real: a file squats the path the step needs
 * (`.previous` for uninstall's move, `.staging` for rollback's staging of the snapshot), so the
 * host script's own mkdir/mv fails.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventSink } from '../../lambdas/core/events/event-sink.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import type { StepDeps } from '../../lambdas/core/steps/step-deps.ts';
import { runWorkflow } from '../../lambdas/core/workflow/local-runner.ts';
import type { WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { startAwsWorld, type AwsWorld } from '../helpers/aws-world.ts';
import { hostState } from '../helpers/host-state.ts';
import { readTree } from '../helpers/live-tree.ts';
import { makeWorld, type World } from '../helpers/world.ts';
import { startEicHarness, type EicHarness } from '../servers/eic-harness.ts';

interface Setup {
  deps: StepDeps & { events: EventSink };
  workspace: string;
  root: string;
  stop(): Promise<void>;
}

const SETUPS: [string, () => Promise<Setup>][] = [
  [
    'local',
    async () => {
      const w: World = await makeWorld();
      await w.deps.workspaces.ensure(w.workspace);
      return { deps: w.deps, workspace: w.workspace, root: w.root, stop: () => w.cleanup() };
    },
  ],
  [
    'ssm',
    async () => {
      const a: AwsWorld = await startAwsWorld([{ id: 'life-ssm' }]);
      return { deps: a.deps, workspace: 'life-ssm', root: a.pluginsRoot('life-ssm'), stop: () => a.stop() };
    },
  ],
  [
    'eic',
    async () => {
      const eic: EicHarness = await startEicHarness();
      const a = await startAwsWorld([{ id: 'life-eic', transport: 'eic' }], {
        eic: { resolver: eic.resolver, hostRoot: eic.hostRoot, register: () => ({ instanceId: eic.instanceId, privateIp: '127.0.0.1' }) },
      });
      return {
        deps: a.deps,
        workspace: 'life-eic',
        root: a.pluginsRoot('life-eic'),
        stop: async () => {
          await a.stop();
          await eic.stop();
        },
      };
    },
  ],
];

/** Puts a plain file where the host script needs a directory; returns the undo. */
function squat(path: string): () => void {
  const aside = `${path}.aside`;
  let moved = false;
  try {
    renameSync(path, aside);
    moved = true;
  } catch {
    // Nothing there yet.
  }
  writeFileSync(path, 'not a directory\n');
  return () => {
    rmSync(path, { force: true });
    if (moved) renameSync(aside, path);
    else mkdirSync(path, { recursive: true });
  };
}

describe.each(SETUPS)('lifecycle failures over %s', (_name, setup) => {
  let s: Setup;
  const run = (workflow: WorkflowName, input: Record<string, unknown>) => {
    const stamp = newStamp();
    return runWorkflow({ workflow, input: { workspace: s.workspace, ...input, stamp }, executionName: executionName(s.workspace, 'hello-skills', stamp), deps: s.deps, retryDelayMs: 5 });
  };

  beforeAll(async () => {
    s = await setup();
    for (const v of ['1.0.0', '1.1.0']) {
      const r = await run('install', { source: `local://hello-skills@${v}`, sha256: null, runtime: null });
      expect(r.status, r.cause).toBe('SUCCEEDED');
    }
  }, 120_000);
  afterAll(async () => s?.stop());

  it('an unusable management directory stops uninstall at the lock, before live is touched: plain failure, plugin live and complete', async () => {
    const before = readTree(join(s.root, 'hello-skills'));
    const snapshots = hostState(s.root, 'hello-skills').previous;
    const undo = squat(join(s.root, '.previous'));
    let outcome;
    try {
      outcome = await run('uninstall', { plugin: 'hello-skills' });
    } finally {
      undo();
    }
    expect(outcome.status).toBe('FAILED');
    expect(outcome.error).toBe('UnsafeHostLayout');
    expect(outcome.cause).toContain('.previous exists and is not a directory');
    expect(outcome.steps.map((x) => x.name)).toEqual(['Prepare', 'AcquireLock', 'CleanUp', 'NotifyFailure', 'Failed']);
    expect(readTree(join(s.root, 'hello-skills'))).toEqual(before);
    expect(hostState(s.root, 'hello-skills')).toMatchObject({ staging: [], previous: snapshots, locked: false });
  }, 180_000);

  it('an unusable staging directory stops a rollback at the lock: live and the snapshots as they were, and a later rollback works', async () => {
    const before = readTree(join(s.root, 'hello-skills'));
    const snapshots = hostState(s.root, 'hello-skills').previous;
    const undo = squat(join(s.root, '.staging'));
    let outcome;
    try {
      outcome = await run('rollback', { plugin: 'hello-skills' });
    } finally {
      undo();
    }
    expect(outcome.status).toBe('FAILED');
    expect(outcome.error).toBe('UnsafeHostLayout');
    expect(outcome.steps.map((x) => x.name)).toEqual(['Prepare', 'AcquireLock', 'CleanUp', 'NotifyFailure', 'Failed']);
    expect(readTree(join(s.root, 'hello-skills'))).toEqual(before);
    expect(hostState(s.root, 'hello-skills')).toMatchObject({ staging: [], previous: snapshots, locked: false });

    const again = await run('rollback', { plugin: 'hello-skills' });
    expect(again.status, again.cause).toBe('SUCCEEDED');
    expect(JSON.parse(readTree(join(s.root, 'hello-skills'))!['.complete']!)).toMatchObject({ version: '1.0.0' });
  }, 180_000);
});
