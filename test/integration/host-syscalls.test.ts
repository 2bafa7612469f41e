/**
 * "Durable before visible" and the agent-proof rule, checked from the system calls the host
 * script really makes (docs/host-layout.md, "Durable before visible: the flush order" and "Who
 * controls what"). A first install and an upgrade run through HostSteps, every step under
 * `strace -f` (test/helpers/strace.ts), and each assertion reads the order of calls:
 *
 * - stage: a syncfs of the staging filesystem after the last write into the staging tree
 *   (extraction, chmod, chown) and before `<name>.<stamp>.partial` is renamed to `<name>.<stamp>`;
 * - swap (upgrade): one renameat2(RENAME_EXCHANGE) of staging and live, made by the tool the
 *   result's `how` names, then an fsync of the plugins root;
 * - mark: an fsync of the marker's temp file before it is renamed onto `<name>/.complete`, then
 *   an fsync of the live directory;
 * - no step (all run as root here) opens a path inside a plugin directory: the live directory
 *   itself is opened only to fsync it.
 *
 * On every transport (test/servers/host-transports.ts), traced on the host side: locally the
 * script under strace; over EIC strace inside `sudo -n` after a real sshd login; over SSM strace
 * around the SSM stand-in agent's shell, so the trace also holds the SSM wrapper and its curl.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostSteps, type PluginRef } from '../../lambdas/core/host/host-steps.ts';
import type { HostOp } from '../../lambdas/core/host/remote-host.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { judgeLive, readTree } from '../helpers/live-tree.ts';
import { versionFiles } from '../helpers/plugin-versions.ts';
import { HOST_TRANSPORTS, startHostTransport, type HostTransportName } from '../servers/host-transports.ts';
import {
  OPENS,
  inside,
  isWrite,
  openFlags,
  pathsOf,
  programOf,
  hostStepTraces,
  straceBinary,
  traceFiles,
  within,
  type Syscall,
} from '../helpers/strace.ts';

const NAME = 'traced';
const V1 = { name: NAME, version: '1.0.0', files: 8 };
const V2 = { name: NAME, version: '2.0.0', files: 11 };
const STRACE = straceBinary();

interface Install {
  stamp: string;
  /** Parsed trace of each step, by operation. */
  calls: Partial<Record<HostOp, Syscall[]>>;
  swapHow?: string;
}

/** A first install and an upgrade over one transport, every step traced on the host. */
async function tracedInstalls(name: HostTransportName): Promise<{ root: string; ownerSpec: string; installs: Install[]; stop(): Promise<void> }> {
  if (!STRACE) {
    throw new Error('strace is missing (or ptrace is not permitted): install the strace package (.ci/run must add it to the packages it installs)');
  }
  const traces = await mkdtemp(join(tmpdir(), `host-syscalls-${name}-`));
  const t = await startHostTransport(name, { strace: { binary: STRACE, dir: traces } });
  const steps = new HostSteps(t.target, 60_000);
  const install = async (spec: typeof V1): Promise<Install> => {
    const stamp = newStamp();
    const plugin: PluginRef = { name: NAME, stamp };
    const tarball = await goodTarball(versionFiles(spec));
    const sha = createHash('sha256').update(tarball).digest('hex');
    const first = traceFiles(traces).length;
    expect((await steps.lock(plugin, 'syscalls', 0, 600)).result).toBe('acquired');
    expect((await steps.stage(plugin, sha, 0, t.body(tarball), 0)).result).toBe('staged');
    const swap = await steps.swap(plugin);
    expect(swap.result).toMatch(/^(renamed|exchanged)$/);
    expect(['moved', 'none']).toContain(await steps.snapshot(plugin));
    expect(await steps.mark(plugin, { version: spec.version, sha256: sha, execution: `syscalls-${stamp}`, installedAt: new Date().toISOString() })).toBe('marked');
    expect(await steps.unlock(plugin)).toBe('released');
    const made = hostStepTraces(traces, first);
    // One traced run per step, in the workflow's order: the trace is of these steps, not others.
    expect(made.map((s) => s.op)).toEqual(['lock', 'stage', 'swap', 'snapshot', 'mark', 'unlock']);
    return { stamp, calls: Object.fromEntries(made.map((s) => [s.op, s.calls])), swapHow: swap.how };
  };
  try {
    const installs = [await install(V1), await install(V2)];
    return {
      root: t.root,
      ownerSpec: t.target.ownerSpec,
      installs,
      stop: async () => {
        await t.stop();
        await rm(traces, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await t.stop();
    throw err;
  }
}

describe.each(HOST_TRANSPORTS)('host steps under strace over %s', (transport) => {
  let root: string;
  let live: string;
  let OWNER: string;
  let installs: Install[] = [];
  let stop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    const traced = await tracedInstalls(transport);
    ({ root, installs, stop } = traced);
    OWNER = traced.ownerSpec;
    live = join(root, NAME);
  }, 180_000);

  afterAll(async () => {
    await stop?.();
  });

  function callsOf(install: Install, op: HostOp): Syscall[] {
    const calls = install.calls[op];
    expect(calls, `trace of ${op}`).toBeDefined();
    expect(calls!.length, `${op} trace is empty`).toBeGreaterThan(0);
    return calls!;
  }

  const RENAMES = new Set(['rename', 'renameat', 'renameat2']);

  function renamesOf(calls: Syscall[], from: string, to: string): Syscall[] {
    return calls.filter((c) => RENAMES.has(c.name) && c.ok && pathsOf(c)[0] === from && pathsOf(c)[1] === to);
  }


  describe('the installs under strace', () => {
    it('installed v1 and then v2, whole and marked', () => {
      expect(installs).toHaveLength(2);
      expect(judgeLive(readTree(live), { '1.0.0': versionFiles(V1), '2.0.0': versionFiles(V2) })).toMatchObject({ state: 'whole', version: '2.0.0', markedVersion: '2.0.0' });
      expect(readdirSync(join(root, '.previous'))).toEqual([`${NAME}.${installs[1]!.stamp}`]);
    });
  });

  describe('stage: syncfs after the last write into staging, before the staging is renamed into place', () => {
    for (const which of [0, 1]) {
      it(`${which === 0 ? 'first install' : 'upgrade'}`, () => {
        const install = installs[which]!;
        const calls = callsOf(install, 'stage');
        const partial = join(root, '.staging', `${NAME}.${install.stamp}.partial`);
        const staged = join(root, '.staging', `${NAME}.${install.stamp}`);

        const renames = renamesOf(calls, partial, staged);
        expect(renames, 'one rename of .partial to the staging name').toHaveLength(1);
        const rename = renames[0]!;

        const writes = calls.filter((c) => c.ok && isWrite(c) && pathsOf(c).some((p) => within(p, partial)));
        // The extraction (files created and written), the chmod and, as root, the chown all count.
        expect(writes.some((c) => OPENS.has(c.name) && /O_CREAT/.test(openFlags(c)) && pathsOf(c).some((p) => inside(p, partial)))).toBe(true);
        expect(writes.some((c) => /^(write|writev|pwrite64)$/.test(c.name))).toBe(true);
        expect(writes.some((c) => /chmod/.test(c.name))).toBe(true);
        if (OWNER !== '-') expect(writes.some((c) => /chown/.test(c.name))).toBe(true);
        const lastWrite = writes.reduce((a, b) => (b.exit > a.exit ? b : a));

        const syncfs = calls.filter((c) => c.name === 'syncfs' && c.ok);
        expect(syncfs.length, 'a syncfs in stage').toBeGreaterThan(0);
        // The flush that makes the tree durable: after every write into it, before it is renamed.
        const flush = syncfs.find((c) => c.entry > lastWrite.exit && c.exit < rename.entry);
        expect(flush, `syncfs between the last write (${lastWrite.raw}) and the rename (${rename.raw})`).toBeDefined();
        // It flushes the staging tree's filesystem (the descriptor is the .partial directory).
        expect(pathsOf(flush!)[0]).toBe(partial);
        // And nothing writes into the tree after the flush.
        expect(writes.filter((c) => c.exit > flush!.entry)).toEqual([]);
      });
    }
  });

  describe('swap of the upgrade: one renameat2(RENAME_EXCHANGE) of staging and live, then fsync of the root', () => {
    it('exchanges with the tool `how` names and flushes the plugins root after it', () => {
      const install = installs[1]!;
      const calls = callsOf(install, 'swap');
      const staged = join(root, '.staging', `${NAME}.${install.stamp}`);

      const exchanges = calls.filter((c) => c.name === 'renameat2' && /RENAME_EXCHANGE/.test(c.args[4] ?? ''));
      expect(exchanges, 'exactly one exchange').toHaveLength(1);
      const exchange = exchanges[0]!;
      expect(exchange.ok, exchange.raw).toBe(true);
      expect(new Set(pathsOf(exchange))).toEqual(new Set([staged, live]));
      // Live is never renamed away on its own: no other rename touches it.
      expect(calls.filter((c) => RENAMES.has(c.name) && c !== exchange && pathsOf(c).includes(live))).toEqual([]);

      // The swap says how it exchanged, and the process that made the call ran that tool.
      const program = programOf(calls, exchange.pid, exchange.entry);
      const how = install.swapHow ?? '';
      expect(how).toMatch(/^(perl-renameat2:\d+|python3-renameat2|mv-exchange|exch)$/);
      const expected = { perl: /\/perl[0-9.]*$/, python3: /\/python3[0-9.]*$/, mv: /\/mv$/, exch: /\/exch$/ }[how.split(/[-:]/)[0] as 'perl' | 'python3' | 'mv' | 'exch'];
      expect(program).toMatch(expected);

      const rootFsync = calls.find((c) => c.name === 'fsync' && c.ok && pathsOf(c)[0] === root && c.entry > exchange.exit);
      expect(rootFsync, 'fsync of the plugins root after the exchange').toBeDefined();
    });

    it('the first install is one plain rename of staging onto live, then fsync of the root', () => {
      const install = installs[0]!;
      expect(install.swapHow).toBe('rename');
      const calls = callsOf(install, 'swap');
      const renames = renamesOf(calls, join(root, '.staging', `${NAME}.${install.stamp}`), live);
      expect(renames).toHaveLength(1);
      expect(calls.find((c) => c.name === 'fsync' && c.ok && pathsOf(c)[0] === root && c.entry > renames[0]!.exit)).toBeDefined();
    });
  });

  describe('mark: fsync of the temp marker, rename onto .complete, fsync of live', () => {
    for (const which of [0, 1]) {
      it(`${which === 0 ? 'first install' : 'upgrade'}`, () => {
        const install = installs[which]!;
        const calls = callsOf(install, 'mark');
        const tmp = join(root, '.staging', `.complete.${NAME}.${install.stamp}.tmp`);
        const marker = join(live, '.complete');

        const renames = renamesOf(calls, tmp, marker);
        expect(renames, 'one rename of the temp marker onto .complete').toHaveLength(1);
        const rename = renames[0]!;

        const tmpWrites = calls.filter((c) => c.ok && isWrite(c) && pathsOf(c)[0] === tmp && !/chown/.test(c.name));
        expect(tmpWrites.length).toBeGreaterThan(0);
        const lastWrite = tmpWrites.reduce((a, b) => (b.exit > a.exit ? b : a));
        const tmpSync = calls.find((c) => /^(fsync|fdatasync)$/.test(c.name) && c.ok && pathsOf(c)[0] === tmp && c.entry > lastWrite.exit && c.exit < rename.entry);
        expect(tmpSync, 'fsync of the temp marker after it was written, before the rename').toBeDefined();

        const liveSync = calls.find((c) => c.name === 'fsync' && c.ok && pathsOf(c)[0] === live && c.entry > rename.exit);
        expect(liveSync, 'fsync of the live directory after the rename').toBeDefined();
        expect(existsSync(marker)).toBe(true);
      });
    }
  });

  describe('the agent-proof rule, from the calls made', () => {
    it('no step opens a path inside the live directory; live itself is opened only read-only (to fsync it)', () => {
      const violations: string[] = [];
      for (const install of installs) {
        for (const [op, calls] of Object.entries(install.calls) as [HostOp, Syscall[]][]) {
          for (const c of calls) {
            if (!OPENS.has(c.name)) continue;
            const path = pathsOf(c)[0];
            if (path === undefined) continue;
            if (inside(path, live)) violations.push(`${op}: ${c.raw}`);
            if (path === live && /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(openFlags(c))) violations.push(`${op} (live opened for writing): ${c.raw}`);
          }
        }
      }
      expect(violations).toEqual([]);
    });

    it('no step opens a path inside any other plugin directory either (the displaced version, snapshots)', () => {
      // After the swap the staging slot holds the displaced, agent-owned version; after snapshot it
      // is under .previous. The only tree root opens is the one it is extracting (.partial).
      const violations: string[] = [];
      for (const install of installs) {
        const slot = join(root, '.staging', `${NAME}.${install.stamp}`);
        for (const [op, calls] of Object.entries(install.calls) as [HostOp, Syscall[]][]) {
          for (const c of calls) {
            if (!OPENS.has(c.name)) continue;
            const path = pathsOf(c)[0];
            if (path === undefined) continue;
            const inPrevious = /^\.previous\/[^/]+\/./.test(path.startsWith(`${root}/`) ? path.slice(root.length + 1) : '');
            const inFailed = /^\.failed\/[^/]+\/./.test(path.startsWith(`${root}/`) ? path.slice(root.length + 1) : '');
            if (inside(path, slot) || inPrevious || inFailed) violations.push(`${op}: ${c.raw}`);
          }
        }
      }
      expect(violations).toEqual([]);
    });
  });
});
