/**
 * A stage that fails at its very end (the rename of `.partial` onto the staging slot) leaves
 * nothing behind, like every other stage failure: no `.partial`, no `.work`, no stage lock and
 * no operation record naming the discarded directory. Found by the chaos campaign (seed 1000,
 * run 846): with CleanUp failing too, the leftovers stayed until the sweeper's cutoff.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { HostSteps } from '../../lambdas/core/host/host-steps.ts';
import { LocalHost } from '../../lambdas/core/host/local-host.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { chaosShims, type ChaosShims } from '../helpers/chaos-shims.ts';
import { versionFiles } from '../helpers/plugin-versions.ts';

const NAME = 'cleaned';
let base: string;
let shims: ChaosShims;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'stage-cleanup-'));
  shims = chaosShims(base);
});
afterAll(async () => {
  shims?.cleanup();
  if (base) await rm(base, { recursive: true, force: true });
});

const list = (dir: string) => readdirSync(dir).sort();

it('the final rename of stage fails: HostIoError, and nothing of the stage is left', async () => {
  const root = join(base, 'plugins');
  const buf = await goodTarball(versionFiles({ name: NAME, version: '1.0.0', files: 5 }));
  const sha = createHash('sha256').update(buf).digest('hex');
  const armed = shims.arm([{ op: 'stage', command: 'mv', mode: 'fail' }]);
  const steps = new HostSteps({ host: new LocalHost({ timeoutMs: 60_000, env: armed.env }), root, ownerSpec: '-' }, 60_000);
  const ref = { name: NAME, stamp: newStamp() };
  await steps.lock(ref, 'holder', process.pid, 600);

  const error = await steps.stage(ref, sha, 0, { stream: Readable.from([buf]) }, 0).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(PluginError);
  expect((error as PluginError).code).toBe('HostIoError');
  expect((error as PluginError).message).toMatch(/cannot move partial staging of cleaned into place/);
  // The shim really failed the rename (and only that).
  expect(armed.fired()).toEqual([1]);

  expect(list(join(root, '.staging'))).toEqual([]);
  expect(list(join(root, '.locks')).filter((e) => e !== '.mutex')).toEqual([NAME]);
  expect(list(join(root, '.meta')).filter((e) => e.includes(ref.stamp))).toEqual([]);
  expect(list(root).filter((e) => !e.startsWith('.'))).toEqual([]);
});
