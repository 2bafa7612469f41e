/**
 * The health check's runtime in the host script (`verify`, docs/host-layout.md), beyond what the
 * transport conformance suite holds every adapter to: the built-in structural checks (modes that
 * lock the owner out fail; what the agent plants in its own directory does not), the output
 * cap, idempotency by stamp, and the process-group fallback on a host that allows no PID
 * namespace (simulated with an `unshare` that fails, first on the script's PATH). Run with `sh`
 * through HostSteps + LocalHost as root, the check as uid 1000.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import type { HealthcheckSpec } from '../../lambdas/core/healthcheck.ts';
import { AGENT_OWNER } from '../../lambdas/core/host/host-resolver.ts';
import { HostSteps, type PluginRef } from '../../lambdas/core/host/host-steps.ts';
import { LocalHost } from '../../lambdas/core/host/local-host.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { uniqueSleep, untilNoProcessRuns } from '../helpers/processes.ts';

const NAME = 'probe';
const FILES = { 'plugin.yaml': `name: ${NAME}\nversion: 1.0.0\n`, 'bin/run.sh': 'echo run\n' };
const asRoot = process.getuid?.() === 0;

let base: string;
let root: string;
let tarball: Buffer;

beforeAll(async () => {
  tarball = await goodTarball(FILES);
});

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'health-check-'));
  root = join(base, 'configs', 'plugins');
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

function stepsOn(host: LocalHost): HostSteps {
  return new HostSteps({ host, root, ownerSpec: asRoot ? AGENT_OWNER : '-' }, 30_000);
}

/** lock → stage → swap → snapshot: the new version is live, ready to be verified. */
async function live(steps: HostSteps): Promise<PluginRef> {
  const ref = { name: NAME, stamp: newStamp() };
  await steps.lock(ref, 'health-check-test', 0, 600);
  await steps.stage(ref, createHash('sha256').update(tarball).digest('hex'), 0, { stream: Readable.from([tarball]) });
  await steps.swap(ref);
  await steps.snapshot(ref);
  return ref;
}

async function failure(p: Promise<unknown>): Promise<PluginError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PluginError) return err;
    throw err;
  }
  throw new Error('expected the step to fail');
}

const check = (command: string, timeoutSeconds = 30): HealthcheckSpec => ({ command, timeoutSeconds });
const stagingOf = () => readdirSync(join(root, '.staging')).filter((e) => e.startsWith(`${NAME}.`));

describe.runIf(asRoot)('verify: built-in checks', () => {
  const host = new LocalHost({ timeoutMs: 30_000 });
  let steps: HostSteps;
  beforeEach(() => {
    steps = stepsOn(host);
  });

  it('with no command declared, the structural checks alone decide; a repeat after a pass does nothing', async () => {
    const ref = await live(steps);
    expect(await steps.verify(ref, '1.0.0', null)).toEqual({ result: 'passed', check: 'built-in' });
    expect(await steps.verify(ref, '1.0.0', check('exit 1'))).toEqual({ result: 'already' });
    expect(readFileSync(join(root, '.meta', `${NAME}.${ref.stamp}`), 'utf8')).toMatch(/^verified=passed$/m);
  });

  it.each([
    // What a tarball can get wrong: modes (tar keeps them) that lock the owner out.
    ['a plugin.yaml the owner cannot read (mode 0000)', () => chmodSync(join(root, NAME, 'plugin.yaml'), 0o000)],
    ['a live directory the owner cannot list (mode 0311)', () => chmodSync(join(root, NAME), 0o311)],
  ])('%s: HealthCheckFailed before the command runs, nothing left behind', async (_what, spoil) => {
    const ref = await live(steps);
    spoil();
    const err = await failure(steps.verify(ref, '1.0.0', check('touch ./ran')));
    expect(err.code).toBe('HealthCheckFailed');
    expect(err.message).toBe(`built-in check: the plugin's owner (1000:1000) cannot list live ${NAME} or read its plugin.yaml (check the modes in the tarball)`);
    expect(existsSync(join(root, NAME, 'ran'))).toBe(false);
    expect(stagingOf()).toEqual([]);
    // Not recorded as passed: a retry checks again.
    expect(readFileSync(join(root, '.meta', `${NAME}.${ref.stamp}`), 'utf8')).not.toContain('verified=');
  });

  it.each([
    // What the agent does to its own directory is its business (docs/host-layout.md, the
    // ownership model): a plugin.yaml it replaced or removed trips no built-in check.
    ['a symbolic link to a root-only file', () => {
      unlinkSync(join(root, NAME, 'plugin.yaml'));
      symlinkSync('/etc/shadow', join(root, NAME, 'plugin.yaml'));
    }],
    ['a fifo', () => {
      unlinkSync(join(root, NAME, 'plugin.yaml'));
      execFileSync('mkfifo', [join(root, NAME, 'plugin.yaml')]);
    }],
    ['nothing (it removed the file)', () => unlinkSync(join(root, NAME, 'plugin.yaml'))],
  ])('plugin.yaml replaced by the agent with %s: the built-in checks pass (and open nothing)', async (_what, plant) => {
    const ref = await live(steps);
    plant();
    expect(await steps.verify(ref, '1.0.0', null)).toEqual({ result: 'passed', check: 'built-in' });
  });
});

describe.runIf(asRoot)('verify on a host whose setpriv does not work', () => {
  it('is HostToolMissing (the host\'s fault, not the plugin\'s), naming setpriv and what it said', async () => {
    const shims = mkdtempSync(join(tmpdir(), 'bad-setpriv-'));
    try {
      writeFileSync(join(shims, 'setpriv'), '#!/bin/sh\necho "setpriv: unrecognized option \'--inh-caps=-all\'" >&2\nexit 1\n');
      chmodSync(join(shims, 'setpriv'), 0o755);
      const steps = stepsOn(new LocalHost({ timeoutMs: 30_000, env: { PATH: `${shims}:${process.env.PATH ?? '/usr/bin:/bin'}` } }));
      const ref = await live(stepsOn(new LocalHost({ timeoutMs: 30_000 })));
      const err = await failure(steps.verify(ref, '1.0.0', check('true')));
      expect(err.code).toBe('HostToolMissing');
      expect(err.message).toContain('setpriv');
      expect(err.message).toContain('unrecognized option');
    } finally {
      rmSync(shims, { recursive: true, force: true });
    }
  });
});

describe.runIf(asRoot)('verify: the check\'s output', () => {
  const host = new LocalHost({ timeoutMs: 60_000 });
  let steps: HostSteps;
  beforeEach(() => {
    steps = stepsOn(host);
  });

  it('is capped on the host: 8 MiB of output, then failure: the message quotes only the last lines, nothing big stays', async () => {
    const ref = await live(steps);
    const err = await failure(steps.verify(ref, '1.0.0', check(`head -c 8388608 /dev/zero | tr '\\0' 'x' | fold -w 100; echo; echo 'the very end'; exit 2`)));
    expect(err.code).toBe('HealthCheckFailed');
    expect(err.message).toContain('exit status 2');
    expect(err.message.endsWith('the very end')).toBe(true);
    // 20 lines of at most 200 characters each, and the first line.
    expect(err.message.length).toBeLessThan(21 * 210);
    expect(stagingOf()).toEqual([]);
  });

  it('a check that prints nothing says so; one killed by a signal says which', async () => {
    const ref = await live(steps);
    expect((await failure(steps.verify(ref, '1.0.0', check('exit 1')))).message).toMatch(/exit status 1; it printed nothing$/);
    expect((await failure(steps.verify(ref, '1.0.0', check('echo dying; kill -TERM $$')))).message).toMatch(/killed by signal 15; last lines of its output:\ndying$/);
  });
});

describe.runIf(asRoot)('verify without a PID namespace (an unshare that fails): its own process group', () => {
  let shims: string;
  let host: LocalHost;
  let steps: HostSteps;

  beforeAll(() => {
    shims = mkdtempSync(join(tmpdir(), 'no-unshare-'));
    writeFileSync(join(shims, 'unshare'), '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n');
    chmodSync(join(shims, 'unshare'), 0o755);
    host = new LocalHost({ timeoutMs: 60_000, env: { PATH: `${shims}:${process.env.PATH ?? '/usr/bin:/bin'}` } });
  });
  beforeEach(() => {
    steps = stepsOn(host);
  });
  afterAll(() => rmSync(shims, { recursive: true, force: true }));

  it('passes a check and kills the child it left behind', async () => {
    const ref = await live(steps);
    // The child would sleep for minutes: the step returning at all shows it did not wait for
    // it, and the child's process being gone shows the process group was killed.
    const child = uniqueSleep();
    expect(await steps.verify(ref, '1.0.0', check(`(${child}; touch ./late) & echo ok`))).toEqual({ result: 'passed', check: 'command', isolation: 'process-group' });
    await untilNoProcessRuns(child);
    expect(existsSync(join(root, NAME, 'late'))).toBe(false);
  }, 180_000);

  it('kills a check at its timeout with its process group, and reports it', async () => {
    const ref = await live(steps);
    const child = uniqueSleep();
    const err = await failure(steps.verify(ref, '1.0.0', check(`echo begun; (${child}; touch ./late) & sleep 600`, 1)));
    expect(err.code).toBe('HealthCheckFailed');
    expect(err.message).toContain('timed out after 1s');
    expect(err.message).toContain('begun');
    await untilNoProcessRuns(child);
    expect(existsSync(join(root, NAME, 'late'))).toBe(false);
    expect(stagingOf()).toEqual([]);
  }, 180_000);
});
