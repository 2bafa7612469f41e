/**
 * One conformance suite, run unchanged against every RemoteHost adapter — local (sh), EIC (real
 * OpenSSH sshd after SendSSHPublicKey to the EIC API stand-in), SSM (the SSM API stand-in running
 * the command) — through HostSteps: every host operation, the faults (non-zero exit, the byte
 * stream dropped mid-stage, step timeout, step repeated after success), hostile names, and the
 * invariant that live is absent or one whole version.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { localHostResolver } from '../../lambdas/core/host/host-resolver.ts';
import { HostSteps } from '../../lambdas/core/host/host-steps.ts';
import type { HostOp, HostRawResult, HostTarget } from '../../lambdas/core/host/remote-host.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import type { WorkspaceRecord } from '../../lambdas/core/workspaces/workspace-directory.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { judgeLive, readTree } from '../helpers/live-tree.ts';
import { startEicHarness } from '../servers/eic-harness.ts';
import { startSsmHarness } from '../servers/ssm-harness.ts';

type Body = { stream: Readable } | { url: string };

interface Transport {
  target: HostTarget;
  /** This machine's path of the plugins root the target addresses. */
  root: string;
  body(tarball: Buffer): Body;
  /** A body whose bytes never finish arriving. */
  stalling(): Body;
  /** A body that breaks off halfway, as a connection dropped mid-stage does. */
  dropping(tarball: Buffer): Body;
  stop(): Promise<void>;
}

/** Serves tarballs over loopback HTTP for the SSM transport, which pulls instead of streaming. */
async function tarballServer() {
  const blobs = new Map<string, Buffer>();
  const server: Server = createServer((req, res) => {
    const [, kind, id] = (req.url ?? '').split('/');
    const blob = blobs.get(id ?? '');
    if (!blob) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': String(blob.length) });
    if (kind === 'ok') res.end(blob);
    else if (kind === 'drop') res.write(blob.subarray(0, blob.length >> 1), () => setTimeout(() => res.destroy(), 20));
    else res.write(blob.subarray(0, 10)); // stall: never finish
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const put = (blob: Buffer) => {
    const id = createHash('sha256').update(blob).update(String(Math.random())).digest('hex').slice(0, 16);
    blobs.set(id, blob);
    return id;
  };
  return {
    ok: (blob: Buffer) => ({ url: `${base}/ok/${put(blob)}` }),
    drop: (blob: Buffer) => ({ url: `${base}/drop/${put(blob)}` }),
    stall: () => ({ url: `${base}/stall/${put(Buffer.alloc(100))}` }),
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const streamBodies = {
  body: (t: Buffer): Body => ({ stream: Readable.from([t]) }),
  stalling: (): Body => ({ stream: new Readable({ read() {} }) }),
  dropping: (t: Buffer): Body => {
    const stream = new Readable({ read() {} });
    stream.push(t.subarray(0, t.length >> 1));
    setTimeout(() => stream.destroy(new Error('connection dropped')), 50);
    return { stream };
  },
};

const TRANSPORTS: [string, () => Promise<Transport>][] = [
  [
    'local',
    async () => {
      const home = await mkdtemp(join(tmpdir(), 'conf-local-'));
      const ws: WorkspaceRecord = { id: 'conf', runtime: 'claude-code', transport: 'local', localRoot: home };
      const target = localHostResolver()(ws);
      return { target, root: target.root, ...streamBodies, stop: () => rm(home, { recursive: true, force: true }) };
    },
  ],
  [
    'eic',
    async () => {
      const h = await startEicHarness();
      const target = h.resolver(h.workspace('conf'));
      return { target, root: join(h.hostRoot, 'configs/plugins'), ...streamBodies, stop: () => h.stop() };
    },
  ],
  [
    'ssm',
    async () => {
      const h = await startSsmHarness();
      const files = await tarballServer();
      const target = h.resolver(h.workspace('conf'));
      return {
        target,
        root: join(h.hostRoot, 'configs/plugins'),
        body: files.ok,
        stalling: files.stall,
        dropping: files.drop,
        stop: async () => {
          await files.close();
          await h.stop();
        },
      };
    },
  ],
];

const NAME = 'conformance';
const V1 = { 'plugin.yaml': `name: ${NAME}\nversion: 1.0.0\n`, 'skills/a.md': 'v1 a\n', 'skills/b.md': 'v1 b\n' };
const V2 = { 'plugin.yaml': `name: ${NAME}\nversion: 2.0.0\n`, 'skills/a.md': 'v2 a\n', 'skills/c/d.md': 'v2 d\n' };

/**
 * The workflows retry a step that ends without an exit status (HostStepInterrupted: a dropped
 * channel, a session the host could not finish under load) — every host step is idempotent. The
 * suite holds each transport to that same contract: such a result is retried, at most twice,
 * exactly as Step Functions would. Timeouts and typed failures are never retried here.
 */
function withInterruptRetry(target: HostTarget): HostTarget {
  const host = target.host;
  return {
    ...target,
    host: {
      transport: host.transport,
      streamsStdin: host.streamsStdin,
      run: async (invocation) => {
        let raw = await host.run(invocation);
        for (let attempt = 0; attempt < 2 && raw.exitCode === null && !invocation.stdin; attempt++) raw = await host.run(invocation);
        return raw;
      },
    },
  };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof PluginError) return err.code;
    throw err;
  }
}

describe.each(TRANSPORTS)('RemoteHost conformance: %s', (_name, start) => {
  let t: Transport;
  let steps: HostSteps;
  let tar1: Buffer;
  let tar2: Buffer;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const live = () => judgeLive(readTree(join(t.root, NAME)), { '1.0.0': V1, '2.0.0': V2 });

  async function install(tarball: Buffer, version: string, stamp = newStamp()) {
    const ref = { name: NAME, stamp };
    await steps.lock(ref, 'conformance', 0, 600);
    await steps.stage(ref, sha(tarball), 0, t.body(tarball));
    await steps.snapshot(ref);
    await steps.swap(ref);
    await steps.mark(ref, { version, sha256: sha(tarball), execution: 'conf-exec', installedAt: new Date().toISOString() });
    await steps.unlock(ref);
    return ref;
  }

  beforeAll(async () => {
    t = await start();
    steps = new HostSteps(withInterruptRetry(t.target), 30_000);
    tar1 = await goodTarball(V1);
    tar2 = await goodTarball(V2);
  }, 60_000);
  afterAll(async () => t?.stop());

  it('runs every operation: lock, stage, snapshot, swap, mark, unlock, list, restore, uninstall, rollback, sweep', async () => {
    await install(tar1, '1.0.0');
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    await install(tar2, '2.0.0');
    expect(live()).toMatchObject({ state: 'whole', version: '2.0.0', markedVersion: '2.0.0' });

    const listed = await steps.list();
    expect(listed.plugins).toMatchObject([{ name: NAME, complete: true, marker: { version: '2.0.0', sha256: sha(tar2) } }]);
    expect(listed.previous.filter((p) => p.name === NAME)).toHaveLength(1);

    const r = { name: NAME, stamp: newStamp() };
    await steps.lock(r, 'conformance', 0, 600);
    expect((await steps.restore(r)).from).toBeDefined();
    await steps.snapshot(r);
    await steps.swap(r);
    await steps.unlock(r);
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0' });

    const u = { name: NAME, stamp: newStamp() };
    await steps.lock(u, 'conformance', 0, 600);
    expect(await steps.uninstall(u)).toBe('moved');
    expect(live().state).toBe('absent');
    // The catch branch's undo puts it back.
    expect(await steps.rollback(u)).toMatchObject({ live: 'restored', lock: 'released' });
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0' });

    const sweep = await steps.sweep({ previousBefore: '29991231T000000Z', keepNewest: 0, stagingBefore: '29991231T000000Z', failedBefore: '29991231T000000Z', nowEpochSeconds: Math.floor(Date.now() / 1000), dryRun: true });
    expect(sweep.dryRun).toBe(true);
    expect(sweep.counts.previous).toBeGreaterThanOrEqual(1);
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0' });
  });

  it('reports non-zero exits as typed errors: busy lock, fencing, missing staging, wrong checksum', async () => {
    const a = { name: NAME, stamp: newStamp() };
    await steps.lock(a, 'holder', 0, 600);
    expect(await codeOf(steps.lock({ name: NAME, stamp: newStamp() }, 'other', 0, 600))).toBe('LockBusy');
    expect(await codeOf(steps.snapshot({ name: NAME, stamp: newStamp() }))).toBe('LockLost');
    expect(await codeOf(steps.swap(a))).toBe('StagingMissing');
    expect(await codeOf(steps.stage(a, '0'.repeat(64), 0, t.body(tar2)))).toBe('TransferCorrupted');
    expect(await steps.rollback(a)).toMatchObject({ lock: 'released' });
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
  });

  it('a byte stream dropped mid-stage fails the step, stages nothing, and a retry succeeds', async () => {
    const a = { name: NAME, stamp: newStamp() };
    await steps.lock(a, 'conformance', 0, 600);
    const code = await codeOf(steps.stage(a, sha(tar2), 0, t.dropping(tar2)));
    expect(['TransferCorrupted', 'FetchFailed', 'ExtractFailed', 'HostStepInterrupted']).toContain(code);
    expect(existsSync(join(t.root, '.staging', `${NAME}.${a.stamp}`))).toBe(false);
    expect(await steps.stage(a, sha(tar2), 0, t.body(tar2))).toMatchObject({ result: 'staged' });
    await steps.rollback(a);
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0' });
  });

  it('a step that exceeds its timeout fails with HostTimeout and live stays whole', async () => {
    const a = { name: NAME, stamp: newStamp() };
    await steps.lock(a, 'conformance', 0, 600);
    const quick = new HostSteps(t.target, 1_500);
    expect(await codeOf(quick.stage(a, sha(tar2), 0, t.stalling()))).toBe('HostTimeout');
    await steps.rollback(a);
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0' });
  }, 30_000);

  it('every operation repeated after it succeeded succeeds again without redoing it', async () => {
    const a = { name: NAME, stamp: newStamp() };
    expect((await steps.lock(a, 'conformance', 0, 600)).result).toBe('acquired');
    expect((await steps.lock(a, 'conformance', 0, 600)).result).toBe('held');
    expect((await steps.stage(a, sha(tar2), 0, t.body(tar2))).result).toBe('staged');
    expect((await steps.stage(a, sha(tar2), 0, t.body(tar2))).result).toBe('already-staged');
    expect(await steps.snapshot(a)).toBe('moved');
    expect(await steps.snapshot(a)).toBe('already');
    expect(await steps.swap(a)).toBe('swapped');
    expect(await steps.swap(a)).toBe('already');
    const marker = { version: '2.0.0', sha256: sha(tar2), execution: 'conf-exec', installedAt: new Date().toISOString() };
    expect(await steps.mark(a, marker)).toBe('marked');
    expect(await steps.mark(a, marker)).toBe('already');
    expect(await steps.unlock(a)).toBe('released');
    expect(await steps.unlock(a)).toBe('not-held');
    expect(live()).toMatchObject({ state: 'whole', version: '2.0.0', markedVersion: '2.0.0' });
  });

  it('refuses hostile names: in TypeScript before the transport, and in the script when sent raw', async () => {
    const hostile = ['../x', 'a;touch /tmp/pwned-conformance', '$(touch /tmp/pwned-conformance)', 'a\nb', '`id`', 'A', ''];
    for (const name of hostile) {
      expect(await codeOf(steps.lock({ name, stamp: newStamp() }, 'x', 0, 60))).toBe('InvalidInput');
      const raw: HostRawResult = await t.target.host.run({ op: 'lock' as HostOp, args: [t.target.root, name, newStamp(), 'x', '0', '60'] });
      expect({ name, exit: raw.exitCode }).toEqual({ name, exit: 10 });
      expect(raw.stdout).toContain('"code":"InvalidInput"');
    }
    const raw = await t.target.host.run({ op: 'list', args: ['relative/root'] });
    expect(raw.exitCode).toBe(10);
    expect(existsSync('/tmp/pwned-conformance')).toBe(false);
  });
});
