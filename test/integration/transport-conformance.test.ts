/**
 * One conformance suite, run unchanged against every RemoteHost adapter — local (sh), EIC (real
 * OpenSSH sshd after SendSSHPublicKey to the EIC API stand-in), SSM (the SSM API stand-in running
 * the command) — through HostSteps: every host operation in the workflows' order (lock → stage →
 * swap → snapshot → mark → unlock), the faults (non-zero exit, the byte stream dropped mid-stage,
 * step timeout, step repeated after success), hostile names, the root-owned records under `.meta/`
 * (docs/host-layout.md), and the invariant that live is absent or one whole version. One fault
 * gets one code on every transport: the suite asserts the exact code.
 *
 * The health check (`verify`, between snapshot and mark) runs the same script bytes on every
 * transport, and the suite holds each to its contract: a check that passes, one that fails (its
 * last lines quoted), one that times out, one that forks a child that outlives it (killed with
 * it), and one that tries to write outside the plugin (it runs unprivileged: it cannot). A failed
 * check is rolled back: the previous version live again, the new one kept under .failed/.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
import { uniqueSleep, untilNoProcessRuns } from '../helpers/processes.ts';
import type { HealthcheckSpec } from '../../lambdas/core/healthcheck.ts';
import { withRun } from '../helpers/wrap-host.ts';
import { startEicHarness } from '../servers/eic-harness.ts';
import { startSsmHarness } from '../servers/ssm-harness.ts';
import { startTarballServer } from '../servers/tarball-server.ts';

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
      const files = await startTarballServer();
      const target = h.resolver(h.workspace('conf'));
      return {
        target,
        root: join(h.hostRoot, 'configs/plugins'),
        body: files.ok,
        stalling: files.stall,
        dropping: files.cut,
        stop: async () => {
          await files.close();
          await h.stop();
        },
      };
    },
  ],
];

const NAME = 'conformance';
/** The exchange methods that replace live in one system call (docs/host-layout.md); never `two-renames` on this machine. */
const ATOMIC_EXCHANGE = /^(mv-exchange|exch|perl-renameat2:(316|276)|python3-renameat2)$/;
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
    host: withRun(host, async (invocation) => {
      let raw = await host.run(invocation);
      for (let attempt = 0; attempt < 2 && raw.exitCode === null && !invocation.stdin; attempt++) raw = await host.run(invocation);
      return raw;
    }),
  };
}

/** Waits until `predicate` holds (polling), or fails after `ms`. */
async function until(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
  /** Live holds the version's files and `.complete`, nothing else (no metadata of ours inside it). */
  const liveEntries = () => Object.keys(readTree(join(t.root, NAME)) ?? {}).sort();
  const entriesOf = (files: Record<string, string>) => [...Object.keys(files), '.complete'].sort();
  const unpacked = (files: Record<string, string>) => Object.values(files).reduce((n, f) => n + Buffer.byteLength(f), 0);
  const inode = (path: string) => {
    const st = statSync(path);
    return `${st.dev}-${st.ino}`;
  };
  const meta = (entry: string) => readFileSync(join(t.root, '.meta', entry), 'utf8');
  const exchangeMethod = () => /^method=(.*)$/m.exec(meta('exchange'))?.[1];

  /** One install in the workflows' order: lock → stage → swap → snapshot → mark → unlock. */
  async function install(tarball: Buffer, files: Record<string, string>, version: string, stamp = newStamp()) {
    const ref = { name: NAME, stamp };
    const results: unknown[] = [];
    results.push((await steps.lock(ref, 'conformance', 0, 600)).result);
    results.push((await steps.stage(ref, sha(tarball), 0, t.body(tarball), unpacked(files))).result);
    results.push(await steps.swap(ref));
    results.push(await steps.snapshot(ref));
    results.push(await steps.mark(ref, { version, sha256: sha(tarball), execution: 'conf-exec', installedAt: new Date().toISOString() }));
    results.push(await steps.unlock(ref));
    return { ref, results };
  }

  beforeAll(async () => {
    t = await start();
    // A step budget that bounds a hang, not speed: one step over SSM polls a stand-in that runs
    // the real script, seconds at load 15.
    steps = new HostSteps(withInterruptRetry(t.target), 60_000);
    tar1 = await goodTarball(V1);
    tar2 = await goodTarball(V2);
  }, 180_000);
  afterAll(async () => t?.stop());

  it('runs every operation: lock, stage, swap, snapshot, mark, unlock, list, restore, uninstall, rollback, sweep', async () => {
    // A first install renames staging onto live; nothing was displaced, so there is no snapshot.
    const one = await install(tar1, V1, '1.0.0');
    expect(one.results).toEqual(['acquired', 'staged', { result: 'renamed', how: 'rename' }, 'none', 'marked', 'released']);
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    expect(liveEntries()).toEqual(entriesOf(V1));
    // The plugins root and its management directories belong to the user running the script
    // (root on every transport here: sudo -n over EIC, the SSM agent), writable by nobody else;
    // the plugin's files belong to the agent.
    const mode = (path: string) => {
      const st = statSync(path);
      return { path, uid: st.uid, mode: (st.mode & 0o7777).toString(8) };
    };
    expect(mode(t.root)).toEqual({ path: t.root, uid: 0, mode: '755' });
    for (const dir of ['.staging', '.previous', '.failed', '.locks', '.meta']) {
      expect(mode(join(t.root, dir))).toEqual({ path: join(t.root, dir), uid: 0, mode: '700' });
    }
    expect(statSync(join(t.root, NAME, 'skills/a.md')).uid).toBe(t.target.ownerSpec === '-' ? process.getuid!() : 1000);
    const v1Inode = inode(join(t.root, NAME));
    // What the operation staged is recorded by inode, and the marker record is keyed by it.
    expect(meta(`${NAME}.${one.ref.stamp}`)).toMatch(new RegExp(`^staged=${v1Inode}$`, 'm'));
    expect(meta(`${NAME}@${v1Inode}`)).toMatch(new RegExp(`^stamp=${one.ref.stamp}$`, 'm'));

    // An upgrade exchanges staging and live in one system call; the displaced v1 becomes the snapshot.
    const two = await install(tar2, V2, '2.0.0');
    expect(two.results).toEqual(['acquired', 'staged', { result: 'exchanged', how: expect.stringMatching(ATOMIC_EXCHANGE) }, 'moved', 'marked', 'released']);
    expect((two.results[2] as { how: string }).how).toBe(exchangeMethod());
    expect(live()).toMatchObject({ state: 'whole', version: '2.0.0', markedVersion: '2.0.0' });
    expect(liveEntries()).toEqual(entriesOf(V2));
    expect(inode(join(t.root, '.previous', `${NAME}.${two.ref.stamp}`))).toBe(v1Inode);
    expect(judgeLive(readTree(join(t.root, '.previous', `${NAME}.${two.ref.stamp}`)), { '1.0.0': V1 })).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    expect(readdirSync(join(t.root, '.staging')).filter((e) => e.startsWith(`${NAME}.`))).toEqual([]);

    const listed = await steps.list();
    expect(listed.plugins).toEqual([
      { name: NAME, complete: true, stamp: two.ref.stamp, marker: { name: NAME, version: '2.0.0', sha256: sha(tar2), stamp: two.ref.stamp, installedAt: expect.any(String), execution: 'conf-exec' } },
    ]);
    expect(listed.previous.filter((p) => p.name === NAME)).toEqual([{ name: NAME, stamp: two.ref.stamp, pinned: false }]);

    // A rollback workflow: restore stages the newest snapshot, swap + snapshot finish as for an install.
    const r = { name: NAME, stamp: newStamp() };
    await steps.lock(r, 'conformance', 0, 600);
    expect(await steps.restore(r)).toEqual({ result: 'staged', from: two.ref.stamp });
    expect(await steps.restore(r)).toEqual({ result: 'already', from: two.ref.stamp });
    expect(await steps.swap(r)).toEqual({ result: 'exchanged', how: exchangeMethod() });
    expect(await steps.snapshot(r)).toBe('moved');
    expect(await steps.unlock(r)).toBe('released');
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    expect(inode(join(t.root, NAME))).toBe(v1Inode);
    expect(meta(`${NAME}.${r.stamp}`)).toMatch(new RegExp(`^from=${two.ref.stamp}$`, 'm'));
    // The restored directory carries its own marker record: list reports v1 again.
    expect((await steps.list()).plugins).toMatchObject([{ name: NAME, complete: true, stamp: one.ref.stamp, marker: { version: '1.0.0', sha256: sha(tar1) } }]);
    expect((await steps.list()).previous.filter((p) => p.name === NAME)).toEqual([{ name: NAME, stamp: r.stamp, pinned: false }]);

    const u = { name: NAME, stamp: newStamp() };
    await steps.lock(u, 'conformance', 0, 600);
    expect(await steps.uninstall(u)).toBe('moved');
    expect(await steps.uninstall(u)).toBe('already');
    expect(live().state).toBe('absent');
    // The catch branch's undo puts it back.
    expect(await steps.rollback(u)).toEqual({ live: 'restored', changed: true, actions: ['restored-previous'], lock: 'released' });
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    expect(inode(join(t.root, NAME))).toBe(v1Inode);

    const sweep = await steps.sweep({ previousBefore: '29991231T000000Z', keepNewest: 0, stagingBefore: '29991231T000000Z', failedBefore: '29991231T000000Z', nowEpochSeconds: Math.floor(Date.now() / 1000), dryRun: true });
    expect(sweep.dryRun).toBe(true);
    expect(sweep.counts.previous).toBeGreaterThanOrEqual(1);
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0' });
  });

  it('reports non-zero exits as typed errors: busy lock, fencing, missing staging, wrong checksum, live not ours', async () => {
    const a = { name: NAME, stamp: newStamp() };
    await steps.lock(a, 'holder', 0, 600);
    expect(await codeOf(steps.lock({ name: NAME, stamp: newStamp() }, 'other', 0, 600))).toBe('LockBusy');
    expect(await codeOf(steps.snapshot({ name: NAME, stamp: newStamp() }))).toBe('LockLost');
    expect(await codeOf(steps.swap(a))).toBe('StagingMissing');
    expect(await codeOf(steps.stage(a, '0'.repeat(64), 0, t.body(tar2)))).toBe('TransferCorrupted');
    // A failed stage removes what it wrote.
    expect(readdirSync(join(t.root, '.staging')).filter((e) => e.startsWith(`${NAME}.${a.stamp}`))).toEqual([]);
    expect(await steps.stage(a, sha(tar2), 0, t.body(tar2))).toMatchObject({ result: 'staged' });
    // Snapshot and mark act only on a live copy this stamp placed: not before the swap.
    expect(await codeOf(steps.snapshot(a))).toBe('LiveNotOurs');
    expect(await codeOf(steps.mark(a, { version: '2.0.0', sha256: sha(tar2), execution: 'conf-exec', installedAt: new Date().toISOString() }))).toBe('LiveNotOurs');
    // The undo removes our staging and our lease, and leaves live alone.
    expect(await steps.rollback(a)).toEqual({ live: 'untouched', changed: false, actions: ['removed-staging'], lock: 'released' });
    expect(existsSync(join(t.root, '.staging', `${NAME}.${a.stamp}`))).toBe(false);
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
  });

  it('a byte stream dropped mid-stage fails the step, stages nothing, and a retry succeeds', async () => {
    const a = { name: NAME, stamp: newStamp() };
    await steps.lock(a, 'conformance', 0, 600);
    // A stdin stream that breaks off (local, EIC) and a download cut off (SSM: curl exit 18) are
    // one fault with one code on every transport: TransferCorrupted, which the workflows retry.
    const code = await codeOf(steps.stage(a, sha(tar2), 0, t.dropping(tar2)));
    expect(code).toBe('TransferCorrupted');
    // Nothing staged and nothing left of the attempt.
    expect(readdirSync(join(t.root, '.staging')).filter((e) => e.startsWith(`${NAME}.${a.stamp}`))).toEqual([]);
    expect(existsSync(join(t.root, '.meta', `${NAME}.${a.stamp}`))).toBe(false);
    expect(await steps.stage(a, sha(tar2), 0, t.body(tar2))).toMatchObject({ result: 'staged' });
    expect(await steps.rollback(a)).toEqual({ live: 'untouched', changed: false, actions: ['removed-staging'], lock: 'released' });
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
  });

  it('a step that exceeds its timeout fails with HostTimeout and live stays whole', async () => {
    const a = { name: NAME, stamp: newStamp() };
    await steps.lock(a, 'conformance', 0, 600);
    const quick = new HostSteps(t.target, 1_500);
    expect(await codeOf(quick.stage(a, sha(tar2), 0, t.stalling()))).toBe('HostTimeout');
    expect(await steps.rollback(a)).toMatchObject({ live: 'untouched', changed: false, lock: 'released' });
    // The killed attempt may still be winding down on the host (its stdin closed): it cleans up
    // after itself, and nothing of it stays.
    await until(() => readdirSync(join(t.root, '.staging')).every((e) => !e.startsWith(`${NAME}.${a.stamp}`)), 60_000, 'the timed-out stage to leave nothing in .staging');
    expect(live()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
  }, 180_000);

  it('every operation repeated after it succeeded succeeds again without redoing it', async () => {
    const a = { name: NAME, stamp: newStamp() };
    expect((await steps.lock(a, 'conformance', 0, 600)).result).toBe('acquired');
    expect((await steps.lock(a, 'conformance', 0, 600)).result).toBe('held');
    expect((await steps.stage(a, sha(tar2), 0, t.body(tar2))).result).toBe('staged');
    expect((await steps.stage(a, sha(tar2), 0, t.body(tar2))).result).toBe('already-staged');
    expect(await steps.swap(a)).toEqual({ result: 'exchanged', how: exchangeMethod() });
    expect(await steps.swap(a)).toEqual({ result: 'already' });
    // A stage retried after the swap finds its directory live.
    expect((await steps.stage(a, sha(tar2), 0, t.body(tar2))).result).toBe('already-live');
    expect(await steps.snapshot(a)).toBe('moved');
    expect(await steps.snapshot(a)).toBe('already');
    const marker = { version: '2.0.0', sha256: sha(tar2), execution: 'conf-exec', installedAt: new Date().toISOString() };
    expect(await steps.mark(a, marker)).toBe('marked');
    expect(await steps.mark(a, marker)).toBe('already');
    expect(await steps.unlock(a)).toBe('released');
    expect(await steps.unlock(a)).toBe('not-held');
    expect(live()).toMatchObject({ state: 'whole', version: '2.0.0', markedVersion: '2.0.0' });
    expect(liveEntries()).toEqual(entriesOf(V2));
    expect((await steps.list()).plugins).toMatchObject([{ name: NAME, complete: true, stamp: a.stamp, marker: { version: '2.0.0', stamp: a.stamp } }]);
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

  describe('health check (verify)', () => {
    const CHECKED = 'checked';
    const C1 = { 'plugin.yaml': `name: ${CHECKED}\nversion: 1.0.0\n`, 'bin/ok.sh': 'echo fine\n' };
    const C2 = { 'plugin.yaml': `name: ${CHECKED}\nversion: 2.0.0\n`, 'bin/ok.sh': 'echo finer\n', 'bin/new.sh': 'echo new\n' };
    const checkedLive = () => join(t.root, CHECKED);
    const checkedVerdict = () => judgeLive(readTree(checkedLive()), { '1.0.0': C1, '2.0.0': C2 });
    let c1: Buffer;
    let c2: Buffer;

    /** The workflow's order up to the check: lock → stage → swap → snapshot, then verify. */
    async function upTo(tarball: Buffer, files: Record<string, string>) {
      const ref = { name: CHECKED, stamp: newStamp() };
      await steps.lock(ref, 'conformance', 0, 600);
      await steps.stage(ref, sha(tarball), 0, t.body(tarball), unpacked(files));
      await steps.swap(ref);
      await steps.snapshot(ref);
      return ref;
    }

    /** Stage C2 over C1 and verify it with `check`: what verify said (or threw). */
    async function upgradeChecked(check: HealthcheckSpec) {
      const ref = await upTo(c2, C2);
      try {
        const result = await steps.verify(ref, '2.0.0', check);
        return { ref, result, error: undefined };
      } catch (err) {
        if (!(err instanceof PluginError)) throw err;
        return { ref, result: undefined, error: err };
      }
    }

    /** After a failed check: the workflow's RollBack puts C1 back and keeps C2 under .failed/. */
    async function expectRolledBack(ref: { name: string; stamp: string }) {
      expect(await steps.rollback(ref)).toMatchObject({ live: 'restored', changed: true, lock: 'released' });
      expect(checkedVerdict()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
      const failed = join(t.root, '.failed', `${CHECKED}.${ref.stamp}`);
      expect(readFileSync(join(failed, 'plugin.yaml'), 'utf8')).toBe(C2['plugin.yaml']);
      // Nothing of the check is left in .staging (its work directory and fifo are gone).
      expect(readdirSync(join(t.root, '.staging')).filter((e) => e.startsWith(`${CHECKED}.`))).toEqual([]);
    }

    beforeAll(async () => {
      c1 = await goodTarball(C1);
      c2 = await goodTarball(C2);
      const ref = await upTo(c1, C1);
      expect(await steps.verify(ref, '1.0.0', null)).toEqual({ result: 'passed', check: 'built-in' });
      expect(await steps.verify(ref, '1.0.0', null)).toEqual({ result: 'already' });
      await steps.mark(ref, { version: '1.0.0', sha256: sha(c1), execution: 'conf-exec', installedAt: new Date().toISOString() });
      await steps.unlock(ref);
    }, 180_000);

    it('passes a check that exits 0; it ran as the plugin\'s owner (no groups, no capabilities, no new privileges) in live, in a minimal environment, stdin at end of file', async () => {
      const probe = [
        'if read -r line; then echo "stdin had: $line"; exit 9; fi',
        'id -u > ./probe.uid; id -G > ./probe.groups; pwd -P > ./probe.pwd; env > ./probe.env',
        "grep -E '^(NoNewPrivs|CapEff|CapPrm):' /proc/self/status > ./probe.status",
        'echo checked',
      ].join('\n');
      const r = await upgradeChecked({ command: probe, timeoutSeconds: 30 });
      expect(r.error).toBeUndefined();
      expect(r.result).toEqual({ result: 'passed', check: 'command', isolation: 'pid-namespace' });
      const probe_ = (f: string) => readFileSync(join(checkedLive(), f), 'utf8').trim();
      const owner = t.target.ownerSpec === '-' ? String(process.getuid!()) : '1000';
      expect(probe_('probe.uid')).toBe(owner);
      expect(probe_('probe.groups')).toBe(t.target.ownerSpec === '-' ? probe_('probe.groups') : '1000');
      expect(probe_('probe.pwd')).toBe(checkedLive());
      expect(probe_('probe.status')).toMatch(/^NoNewPrivs:\s+1$/m);
      expect(probe_('probe.status')).toMatch(/^CapEff:\s+0+$/m);
      const env = Object.fromEntries(probe_('probe.env').split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      // Only what the runtime gives (and the PWD sh sets itself): nothing of the transport's or root's environment.
      expect(Object.keys(env).sort()).toEqual(['LC_ALL', 'PATH', 'PLUGIN_DIR', 'PLUGIN_NAME', 'PLUGIN_VERSION', 'PWD']);
      expect(env).toMatchObject({ PLUGIN_DIR: checkedLive(), PLUGIN_NAME: CHECKED, PLUGIN_VERSION: '2.0.0', LC_ALL: 'C' });
      // The probe files belong to the owner: the check wrote them itself.
      if (t.target.ownerSpec !== '-') expect(statSync(join(checkedLive(), 'probe.uid')).uid).toBe(1000);
      await steps.mark(r.ref, { version: '2.0.0', sha256: sha(c2), execution: 'conf-exec', installedAt: new Date().toISOString() });
      await steps.unlock(r.ref);
      // Put C1 back for the next case (a rollback to the snapshot, as pluginctl rollback does).
      const back = { name: CHECKED, stamp: newStamp() };
      await steps.lock(back, 'conformance', 0, 600);
      await steps.restore(back);
      await steps.swap(back);
      await steps.snapshot(back);
      await steps.unlock(back);
      expect(checkedVerdict()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    });

    it('a check that fails is HealthCheckFailed with the last lines of its output; rolled back, the new version kept under .failed/', async () => {
      const lines = Array.from({ length: 25 }, (_, i) => `echo "line ${i + 1}"`).join('; ');
      const r = await upgradeChecked({ command: `${lines}; echo 'bad "quote" \\ back' >&2; printf 'tab\\there\\001\\n'; exit 7`, timeoutSeconds: 30 });
      expect(r.error?.code).toBe('HealthCheckFailed');
      const message = r.error!.message;
      expect(message).toContain(`health check of ${CHECKED} 2.0.0 failed: exit status 7`);
      // The last 20 lines, in order, stderr included; quotes and backslashes survive, control characters do not.
      expect(message).toContain('line 25');
      expect(message).toContain('bad "quote" \\ back');
      expect(message).toContain('tab here');
      expect(message).not.toContain('\u0001');
      expect(message).not.toMatch(/line 5\n/);
      expect(message.split('\n').slice(1)).toHaveLength(20);
      expect(message.split('\n').slice(1)[0]).toBe('line 8');
      await expectRolledBack(r.ref);
    });

    it('a check that outlives its timeout is killed with every process it started: HealthCheckFailed, rolled back', async () => {
      // Children that would sleep for minutes: killed means their processes are gone (waited
      // for, not timed), so they never write into the new version (now in .failed/).
      const child = uniqueSleep();
      const session = uniqueSleep();
      const r = await upgradeChecked({ command: `echo started; (${child}; touch ./late-child) & setsid sh -c "${session}; touch ./late-session" & sleep 600`, timeoutSeconds: 2 });
      expect(r.error?.code).toBe('HealthCheckFailed');
      expect(r.error!.message).toContain('timed out after 2s');
      expect(r.error!.message).toContain('started');
      await expectRolledBack(r.ref);
      await untilNoProcessRuns(child);
      await untilNoProcessRuns(session);
      const failed = join(t.root, '.failed', `${CHECKED}.${r.ref.stamp}`);
      expect(existsSync(join(failed, 'late-child'))).toBe(false);
      expect(existsSync(join(failed, 'late-session'))).toBe(false);
    }, 180_000);

    it('a check that passes but leaves a child running: the child is killed, the step does not wait for it', async () => {
      // The children sleep for minutes: verify returning at all shows it did not wait for them.
      const child = uniqueSleep();
      const session = uniqueSleep();
      const r = await upgradeChecked({ command: `(${child}; touch ./late-child) & setsid sh -c "${session}; touch ./late-session" & sleep 1; echo done`, timeoutSeconds: 30 });
      expect(r.error).toBeUndefined();
      expect(r.result).toMatchObject({ result: 'passed', check: 'command' });
      await untilNoProcessRuns(child);
      await untilNoProcessRuns(session);
      expect(existsSync(join(checkedLive(), 'late-child'))).toBe(false);
      expect(existsSync(join(checkedLive(), 'late-session'))).toBe(false);
      // Not marked: undo it as the workflow would after a later failure, back to C1.
      expect(await steps.rollback(r.ref)).toMatchObject({ live: 'restored', changed: true });
      expect(checkedVerdict()).toMatchObject({ state: 'whole', version: '1.0.0' });
    }, 180_000);

    it('a check that tries to write outside the plugin cannot (it runs unprivileged); nothing outside live changes', async () => {
      const canary = join(t.root, '..', 'canary-health');
      writeFileSync(canary, 'untouched\n');
      chmodSync(canary, 0o644);
      const before = readdirSync(t.root).sort();
      const metaBefore = readdirSync(join(t.root, '.meta')).sort();
      const attempts = [
        'touch ../planted',
        'echo pwned > ../../canary-health',
        'touch ../.meta/planted',
        'mv ../.previous ../moved',
        'rm -rf ../.locks',
        'chmod 777 ..',
        'touch /etc/planted-by-healthcheck',
        'sudo -n touch /etc/planted-by-sudo',
      ];
      const r = await upgradeChecked({ command: `${attempts.map((a) => `${a} 2>&1 && echo "WROTE: ${a}"`).join('\n')}\nexit 1`, timeoutSeconds: 30 });
      expect(r.error?.code).toBe('HealthCheckFailed');
      expect(r.error!.message).not.toContain('WROTE:');
      expect(readFileSync(canary, 'utf8')).toBe('untouched\n');
      expect(readdirSync(t.root).sort()).toEqual(before);
      expect(readdirSync(join(t.root, '.meta')).filter((e) => !metaBefore.includes(e) && !e.startsWith(`${CHECKED}.`) && !e.startsWith(`${CHECKED}@`))).toEqual([]);
      expect((statSync(t.root).mode & 0o777).toString(8)).toBe('755');
      expect(existsSync('/etc/planted-by-healthcheck')).toBe(false);
      expect(existsSync('/etc/planted-by-sudo')).toBe(false);
      await expectRolledBack(r.ref);
    });

    it('built-in checks: a plugin.yaml the owner cannot read fails before any command runs', async () => {
      const unreadable = await goodTarball(C2);
      const ref = await upTo(unreadable, C2);
      // As if the tarball had shipped plugin.yaml with mode 0000 (root can still stat it).
      chmodSync(join(checkedLive(), 'plugin.yaml'), 0o000);
      const code = await codeOf(steps.verify(ref, '2.0.0', { command: 'touch ./ran', timeoutSeconds: 5 }));
      expect(code).toBe('HealthCheckFailed');
      expect(existsSync(join(checkedLive(), 'ran'))).toBe(false);
      await expectRolledBack(ref);
    });

    it('verify acts only on a live copy this stamp placed, and only under its lease', async () => {
      const ref = { name: CHECKED, stamp: newStamp() };
      await steps.lock(ref, 'conformance', 0, 600);
      expect(await codeOf(steps.verify(ref, '2.0.0', null))).toBe('LiveNotOurs');
      expect(await codeOf(steps.verify({ name: CHECKED, stamp: newStamp() }, '2.0.0', null))).toBe('LockLost');
      await steps.unlock(ref);
      expect(checkedVerdict()).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    });
  });
});
