/**
 * One fault, one code (docs/host-layout.md, "Exit codes"): real faults of the host, each mapped
 * to its typed failure class on every transport where the harness makes the fault cheap —
 * local `sh`, EC2 Instance Connect (real sshd, `sudo -n`) and SSM Run Command (the stand-in) —
 * and, at the workflow level, what `pluginctl` and the events report for them.
 *
 * - a full disk during stage (a 2 MiB tmpfs as the plugins' filesystem) → HostDiskFull, whether
 *   the precheck catches it (unpacked bytes passed) or extraction runs into it (bytes 0); the
 *   message names the bytes needed and free; nothing is left in .staging or .locks;
 * - a read-only filesystem (the tmpfs remounted ro) → HostPermissionDenied;
 * - a missing tool (PATH without flock; over SSM also without curl and wget) → HostToolMissing
 *   naming it;
 * - a download cut off (SSM: an HTTP server that announces a Content-Length and closes early) →
 *   TransferCorrupted, retried, the same code as a stdin stream dropped locally or over EIC;
 * - workflows: an install whose AcquireLock cannot run ends `failed` with `changed: false`; one
 *   that fails after the swap ends `rolled-back` with the old version live and `changed: true`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { categoryOf } from '../../lambdas/core/errors.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { HostSteps, type PluginRef } from '../../lambdas/core/host/host-steps.ts';
import { LocalHost } from '../../lambdas/core/host/local-host.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { runWorkflow } from '../../lambdas/core/workflow/local-runner.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { startAwsWorld } from '../helpers/aws-world.ts';
import { pluginctl } from '../helpers/cli.ts';
import { faultShims } from '../helpers/fault-shims.ts';
import { judgeLive, readTree } from '../helpers/live-tree.ts';
import { expectCode } from '../helpers/plugin-error.ts';
import { versionFiles, writePluginDir } from '../helpers/plugin-versions.ts';
import { canMount, mountTmpfs, remount, unmount } from '../helpers/tmpfs.ts';
import { startEicHarness } from '../servers/eic-harness.ts';
import { instanceIdFor, startSsmHarness } from '../servers/ssm-harness.ts';
import { startTarballServer } from '../servers/tarball-server.ts';

const MiB = 1024 * 1024;
const NAME = 'faulty';
const FS_SIZE = '2m';

if (!canMount()) throw new Error('failure-classes needs to mount a tmpfs (run the suite as root, as .ci/run does)');

// --- tarballs -----------------------------------------------------------------------------------

interface Tarball {
  buf: Buffer;
  sha: string;
  /** Bytes of file content once unpacked (what validation reports as the plan's `bytes`). */
  unpacked: number;
}

async function tarball(files: Record<string, string>): Promise<Tarball> {
  const buf = await goodTarball(files);
  const unpacked = Object.values(files).reduce((sum, body) => sum + Buffer.byteLength(body), 0);
  return { buf, sha: createHash('sha256').update(buf).digest('hex'), unpacked };
}

/** `bytes` characters that gzip cannot shrink much (base64 of random bytes). */
const noise = (bytes: number): string => randomBytes(Math.ceil((bytes * 3) / 4) + 3).toString('base64').slice(0, bytes);

let small: Tarball;
/** One 3 MiB file: more than the 2 MiB filesystem holds. */
let oneBigFile: Tarball;
/** Forty files of 100 KiB: more than the filesystem holds, a file at a time. */
let manyFiles: Tarball;

beforeAll(async () => {
  small = await tarball(versionFiles({ name: NAME, version: '1.0.0', files: 5 }));
  oneBigFile = await tarball({ 'plugin.yaml': `name: ${NAME}\nversion: 9.0.0\n`, 'data/blob.txt': noise(3 * MiB) });
  const many: Record<string, string> = { 'plugin.yaml': `name: ${NAME}\nversion: 9.1.0\n` };
  for (let i = 0; i < 40; i++) many[`data/f${i}.txt`] = noise(100 * 1024);
  manyFiles = await tarball(many);
  expect(oneBigFile.unpacked).toBeGreaterThan(2 * MiB);
  expect(manyFiles.unpacked).toBeGreaterThan(2 * MiB);
}, 180_000);

// --- a PATH without some tools ------------------------------------------------------------------

const pathDirs: string[] = [];
afterAll(() => {
  for (const d of pathDirs) rmSync(d, { recursive: true, force: true });
});

/** A directory of symlinks to every program of the usual PATH directories except `without`. */
function pathWithout(...without: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), `path-without-${without.join('-')}-`));
  pathDirs.push(dir);
  for (const source of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    let names: string[];
    try {
      names = readdirSync(source);
    } catch {
      continue;
    }
    for (const name of names) {
      if (without.includes(name) || existsSync(join(dir, name))) continue;
      symlinkSync(join(source, name), join(dir, name));
    }
  }
  return dir;
}

// --- transports ---------------------------------------------------------------------------------

type Body = { stream: Readable } | { url: string };

interface Transport {
  steps: HostSteps;
  /** The tmpfs mount point; the plugins root is `<mnt>/plugins`. */
  mnt: string;
  /** This machine's path of the plugins root. */
  root: string;
  body(t: Tarball): Body;
  /** The tarball's bytes, broken off halfway: a stream dropped, a download cut off. */
  cutOff(t: Tarball): Body;
  /** The same host with a PATH of our choosing, where the transport lets us set one. */
  withPath?(path: string): HostSteps;
  stop(): Promise<void>;
}

const streamBodies = {
  body: (t: Tarball): Body => ({ stream: Readable.from([t.buf]) }),
  cutOff: (t: Tarball): Body => {
    const stream = new Readable({ read() {} });
    stream.push(t.buf.subarray(0, t.buf.length >> 1));
    setTimeout(() => stream.destroy(new Error('connection dropped')), 50);
    return { stream };
  },
};

const ownerSpec = process.getuid?.() === 0 ? '1000:1000' : '-';

const TRANSPORTS: [string, () => Promise<Transport>][] = [
  [
    'local',
    async () => {
      const base = mkdtempSync(join(tmpdir(), 'failure-local-'));
      const mnt = join(base, 'configs');
      mountTmpfs(mnt, FS_SIZE);
      const root = join(mnt, 'plugins');
      const on = (env?: Record<string, string>) => new HostSteps({ host: new LocalHost({ timeoutMs: 60_000, env }), root, ownerSpec }, 60_000);
      return {
        steps: on(),
        mnt,
        root,
        ...streamBodies,
        withPath: (path) => on({ PATH: path }),
        stop: async () => {
          unmount(mnt);
          rmSync(base, { recursive: true, force: true });
        },
      };
    },
  ],
  [
    'eic',
    async () => {
      const h = await startEicHarness();
      // The plugins root of a claude-code workspace is <hostRoot>/configs/plugins.
      const mnt = join(h.hostRoot, 'configs');
      mountTmpfs(mnt, FS_SIZE);
      return {
        steps: new HostSteps(h.resolver(h.workspace('faults')), 60_000),
        mnt,
        root: join(mnt, 'plugins'),
        ...streamBodies,
        // sudo's secure_path replaces any PATH we could send: no cheap way to hide a tool.
        stop: async () => {
          unmount(mnt);
          await h.stop();
        },
      };
    },
  ],
  [
    'ssm',
    async () => {
      const h = await startSsmHarness();
      const files = await startTarballServer();
      const mnt = join(h.hostRoot, 'configs');
      mountTmpfs(mnt, FS_SIZE);
      let n = 0;
      return {
        steps: new HostSteps(h.resolver(h.workspace('faults')), 60_000),
        mnt,
        root: join(mnt, 'plugins'),
        body: (t) => files.ok(t.buf),
        cutOff: (t) => files.cut(t.buf),
        withPath: (path) => {
          // Another fake instance on the same host filesystem, whose commands get this PATH.
          const id = `faults-path-${n++}`;
          const record = h.workspace(id);
          h.api.instances[instanceIdFor(id)]!.env = { TMPDIR: h.tmpDir, PATH: path };
          return new HostSteps(h.resolver(record), 60_000);
        },
        stop: async () => {
          await files.close();
          unmount(mnt);
          await h.stop();
        },
      };
    },
  ],
];

/** The error codes the install workflow's StageOnHost retries. */
function stageRetries(): string[] {
  const asl = JSON.parse(readFileSync(new URL('../../statemachine/install.asl.json', import.meta.url), 'utf8')) as {
    States: Record<string, { Retry?: { ErrorEquals: string[] }[] }>;
  };
  return (asl.States.StageOnHost?.Retry ?? []).flatMap((r) => r.ErrorEquals);
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

describe.each(TRANSPORTS)('one fault, one code: %s', (transport, start) => {
  let t: Transport;
  beforeAll(async () => {
    t = await start();
  }, 120_000);
  afterAll(async () => t?.stop());
  beforeEach(() => {
    // Each case on an empty, writable filesystem.
    remount(t.mnt, 'rw');
    rmSync(t.root, { recursive: true, force: true });
  });
  afterEach(() => remount(t.mnt, 'rw'));

  const ref = (): PluginRef => ({ name: NAME, stamp: newStamp() });

  /** What a failed stage may leave: nothing in .staging, no stage lock; live untouched. */
  function expectStageLeftNothing(): void {
    expect(list(join(t.root, '.staging'))).toEqual([]);
    expect(list(join(t.root, '.locks')).filter((e) => e.startsWith('.stage.'))).toEqual([]);
    expect(existsSync(join(t.root, NAME))).toBe(false);
  }

  const freeBytes = (message: string): number => Number(/(\d+) bytes (?:are )?free/.exec(message)?.[1] ?? NaN);

  describe('full disk during stage → HostDiskFull', () => {
    it('caught by the precheck (the unpacked size is passed): names the bytes needed and free', async () => {
      const plugin = ref();
      await t.steps.lock(plugin, 'faults', 0, 600);
      const error = await expectCode(t.steps.stage(plugin, oneBigFile.sha, 0, t.body(oneBigFile), oneBigFile.unpacked), 'HostDiskFull');
      expect(error.message).toContain(`${oneBigFile.unpacked} bytes`);
      const free = freeBytes(error.message);
      expect(free, error.message).toBeGreaterThan(0);
      expect(free).toBeLessThan(oneBigFile.unpacked);
      expect(error.hint).not.toBe('');
      expectStageLeftNothing();
      expect(await t.steps.rollback(plugin)).toMatchObject({ changed: false, lock: 'released' });
    });

    for (const [shape, tb] of [
      ['one file larger than the disk', () => oneBigFile],
      ['many files that together overflow it', () => manyFiles],
    ] as const) {
      it(`discovered during extraction (bytes 0), ${shape}: names the bytes needed and free`, async () => {
        const plugin = ref();
        const tarball = tb();
        await t.steps.lock(plugin, 'faults', 0, 600);
        const error = await expectCode(t.steps.stage(plugin, tarball.sha, 0, t.body(tarball), 0), 'HostDiskFull');
        expect(freeBytes(error.message), error.message).toBeGreaterThanOrEqual(0);
        // The host did not know the unpacked size: "needs 0 bytes" would tell the operator nothing.
        expect(error.message).toMatch(/needs? (?:at least |more than )?\d+ bytes/);
        expect(error.message).not.toMatch(/needs? 0 bytes/);
        expectStageLeftNothing();
        expect(await t.steps.rollback(plugin)).toMatchObject({ changed: false, lock: 'released' });
      });
    }
  });

  describe('read-only filesystem → HostPermissionDenied', () => {
    it('lock on a host whose layout exists (the lock mutex is there, not writable)', async () => {
      const plugin = ref();
      await t.steps.lock(plugin, 'faults', 0, 600);
      await t.steps.unlock(plugin);
      remount(t.mnt, 'ro');
      await expectCode(t.steps.lock(ref(), 'faults', 0, 600), 'HostPermissionDenied');
    });

    it('lock on a host without the layout yet (nothing can be created)', async () => {
      remount(t.mnt, 'ro');
      await expectCode(t.steps.lock(ref(), 'faults', 0, 600), 'HostPermissionDenied');
    });

    it('stage after the filesystem went read-only under a held lease', async () => {
      const plugin = ref();
      await t.steps.lock(plugin, 'faults', 0, 600);
      remount(t.mnt, 'ro');
      await expectCode(t.steps.stage(plugin, small.sha, 0, t.body(small), small.unpacked), 'HostPermissionDenied');
      remount(t.mnt, 'rw');
      expectStageLeftNothing();
    });
  });

  describe('a download cut off / a stream dropped → TransferCorrupted (retried)', () => {
    it('fails with TransferCorrupted, leaves nothing, and the retry stages', async () => {
      const plugin = ref();
      await t.steps.lock(plugin, 'faults', 0, 600);
      const error = await expectCode(t.steps.stage(plugin, small.sha, 0, t.cutOff(small), small.unpacked), 'TransferCorrupted');
      // Retried: a transient code, and one StageOnHost's Retry clause names.
      expect(error.retryable).toBe(true);
      expect(stageRetries()).toContain('TransferCorrupted');
      expectStageLeftNothing();
      expect(await t.steps.stage(plugin, small.sha, 0, t.body(small), small.unpacked)).toMatchObject({ result: 'staged' });
      expect(await t.steps.rollback(plugin)).toMatchObject({ changed: false, lock: 'released' });
    });
  });

  describe('a tool missing → HostToolMissing naming it', () => {
    it.skipIf(transport === 'eic')('flock missing: lock and stage say so (not LockBusy)', async () => {
      const steps = t.withPath!(pathWithout('flock'));
      const lockError = await expectCode(steps.lock(ref(), 'faults', 0, 600), 'HostToolMissing');
      expect(lockError.message).toMatch(/\bflock\b/);
      expect(lockError.message).toMatch(/util-linux/);
      const plugin = ref();
      await t.steps.lock(plugin, 'faults', 0, 600);
      const stageError = await expectCode(steps.stage(plugin, small.sha, 0, t.body(small), small.unpacked), 'HostToolMissing');
      expect(stageError.message).toMatch(/\bflock\b/);
      expectStageLeftNothing();
    });

    it.runIf(transport === 'ssm')('neither curl nor wget: stage from a URL says so', async () => {
      const steps = t.withPath!(pathWithout('curl', 'wget'));
      const plugin = ref();
      await t.steps.lock(plugin, 'faults', 0, 600);
      const error = await expectCode(steps.stage(plugin, small.sha, 0, t.body(small), small.unpacked), 'HostToolMissing');
      expect(error.message).toMatch(/curl/);
      expectStageLeftNothing();
    });
  });
});

// --- the workflow level -------------------------------------------------------------------------

interface EventLine {
  detailType: string;
  detail: Record<string, unknown>;
}

function events(file: string): EventLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as EventLine);
}

describe('workflows: a failure before live was touched is `failed`, one after the swap `rolled-back`', () => {
  let base: string;
  let n = 0;
  const mounts: string[] = [];
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'failure-workflows-'));
    // The homes on a tmpfs of their own: the steps' flushes cost nothing there.
    mountTmpfs(base, '256m');
  });
  afterAll(() => {
    for (const m of mounts.reverse()) unmount(m);
    unmount(base);
    rmSync(base, { recursive: true, force: true });
  });

  async function home(): Promise<{ home: string; root: string; v1: string; v2: string; env: Record<string, string>; eventsFile: string }> {
    const home = join(base, `home-${n++}`);
    mkdirSync(home, { recursive: true });
    const v1 = await writePluginDir(join(home, 'sources'), { name: NAME, version: '1.0.0', files: 4 });
    const v2 = await writePluginDir(join(home, 'sources'), { name: NAME, version: '2.0.0', files: 6 });
    return {
      home,
      root: join(home, 'workspaces/ws1/root/configs/plugins'),
      v1,
      v2,
      env: { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' },
      eventsFile: join(home, 'events.jsonl'),
    };
  }
  const install = (source: string, env: Record<string, string>) => pluginctl(['install', source, '--workspace', 'ws1', '--json'], env);
  const stepNames = (json: Record<string, unknown> | undefined) => ((json?.steps as { name: string }[] | undefined) ?? []).map((s) => s.name);
  const V = { '1.0.0': versionFiles({ name: NAME, version: '1.0.0', files: 4 }), '2.0.0': versionFiles({ name: NAME, version: '2.0.0', files: 6 }) };

  function expectFailedUntouched(r: Awaited<ReturnType<typeof install>>, code: string, eventsFile: string): void {
    expect(r.code, r.stderr).toBe(3);
    expect(r.json?.status).toBe('failed');
    expect((r.json?.error as { code?: string } | undefined)?.code).toBe(code);
    expect(stepNames(r.json)).not.toContain('RollBack');
    const failed = events(eventsFile).filter((e) => e.detailType === 'Plugin Install Failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.detail.changed).toBe(false);
    expect((failed[0]!.detail.error as { Error?: string }).Error).toBe(code);
  }

  it('AcquireLock cannot run (the plugins root is a regular file): failed, UnsafeHostLayout, changed false, the file untouched', async () => {
    const h = await home();
    // The workspace's first install: its plugins root is a file.
    mkdirSync(join(h.root, '..'), { recursive: true });
    writeFileSync(h.root, 'not a directory\n');
    const r = await install(h.v2, h.env);
    expectFailedUntouched(r, 'UnsafeHostLayout', h.eventsFile);
    expect(readFileSync(h.root, 'utf8')).toBe('not a directory\n');
  });

  it('AcquireLock cannot run (flock missing): failed, HostToolMissing, changed false, v1 still live', async () => {
    const h = await home();
    expect((await install(h.v1, h.env)).code).toBe(0);
    const r = await install(h.v2, { ...h.env, PATH: pathWithout('flock') });
    expectFailedUntouched(r, 'HostToolMissing', h.eventsFile);
    expect(judgeLive(readTree(join(h.root, NAME)), V)).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
  });

  it('StageOnHost on a full disk: failed, HostDiskFull, changed false, v1 still live and nothing staged', async () => {
    const h = await home();
    const mnt = join(h.home, 'workspaces/ws1/root/configs');
    mountTmpfs(mnt, FS_SIZE);
    mounts.push(mnt);
    expect((await install(h.v1, h.env)).code).toBe(0);
    const big = await writePluginDir(join(h.home, 'sources'), { name: NAME, version: '3.0.0', files: 3 });
    writeFileSync(join(big, 'blob.txt'), noise(3 * MiB));
    const r = await install(big, h.env);
    expectFailedUntouched(r, 'HostDiskFull', h.eventsFile);
    expect(judgeLive(readTree(join(h.root, NAME)), V)).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    expect(list(join(h.root, '.staging'))).toEqual([]);
  });

  it('SnapshotLive fails after the swap: rolled-back, the old version live and complete, changed true', async () => {
    const h = await home();
    expect((await install(h.v1, h.env)).code).toBe(0);
    const shims = faultShims({ op: 'snapshot', command: 'mv', mode: 'fail' });
    let r;
    try {
      r = await install(h.v2, { ...h.env, ...shims.env });
    } finally {
      shims.cleanup();
    }
    expect(r.code, r.stderr).toBe(3);
    expect(r.json?.status).toBe('rolled-back');
    const code = (r.json?.error as { code?: string } | undefined)?.code ?? '';
    expect(categoryOf(code)).toBe('failed');
    expect(stepNames(r.json)).toContain('SwapIntoPlace');
    expect(stepNames(r.json)).toContain('RollBack');
    expect(judgeLive(readTree(join(h.root, NAME)), V)).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    const failed = events(h.eventsFile).filter((e) => e.detailType === 'Plugin Install Failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.detail).toMatchObject({ changed: true, rolledBack: true });
    expect((failed[0]!.detail.error as { Error?: string }).Error).toBe(code);
  });

  it('over EIC, sudo refused: every step fails HostPermissionDenied, the install ends failed with changed false', async () => {
    const eic = await startEicHarness();
    const world = await startAwsWorld([{ id: 'eic-nosudo', transport: 'eic' }], {
      eic: {
        // The OS user may not run the step as root:<group>: sudo -n answers "a password is required".
        resolver: eic.resolverWith({ privilege: 'sudo -n -g daemon' }),
        hostRoot: eic.hostRoot,
        register: () => ({ instanceId: eic.instanceId, privateIp: '127.0.0.1' }),
      },
    });
    try {
      const stamp = newStamp();
      const outcome = await runWorkflow({
        workflow: 'install',
        input: { workspace: 'eic-nosudo', source: 'local://hello-skills@1.0.0', sha256: null, runtime: null, stamp },
        executionName: executionName('eic-nosudo', 'hello-skills', stamp),
        deps: world.deps,
        retryDelayMs: 0,
      });
      expect(outcome.status).toBe('FAILED');
      expect(outcome.error).toBe('HostPermissionDenied');
      expect(categoryOf(outcome.error!)).toBe('failed');
      const names = outcome.steps.map((s) => s.name);
      expect(names).toContain('CleanUp');
      expect(names).not.toContain('RollBack');
      expect(names).not.toContain('NotifyRollbackFailed');
      const failed = events(world.eventsFile).filter((e) => e.detailType === 'Plugin Install Failed');
      expect(failed).toHaveLength(1);
      expect(failed[0]!.detail.changed).toBe(false);
      // Nothing ran on the host.
      expect(existsSync(join(eic.hostRoot, 'configs'))).toBe(false);
    } finally {
      await world.stop();
      await eic.stop();
    }
  }, 120_000);
});
