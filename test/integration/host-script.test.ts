/**
 * The host-step script itself (lambdas/core/host/plugin-host.sh), run for real with `sh` through
 * HostSteps + LocalHost against a throw-away plugins root: locks and fencing, staging, the swap
 * (exchange) and the snapshot of what it displaced, the health check's arguments, the marker, the rollback table, restore,
 * uninstall, list, sweep, unsafe layouts, and hostile arguments handed straight to the transport
 * (bypassing the TypeScript validation). Which directory is "ours" is decided by inode against the
 * root-owned records under `.meta/`, so the tests compare inodes (`ino`) where they used to read
 * the installer's files inside plugin directories.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { HostSteps, type PluginRef } from '../../lambdas/core/host/host-steps.ts';
import { LocalHost } from '../../lambdas/core/host/local-host.ts';
import type { HostOp } from '../../lambdas/core/host/remote-host.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { goodTarball, packTarGz } from '../fixtures/hostile-tarballs.ts';
import { expectCode } from '../helpers/plugin-error.ts';

const host = new LocalHost({ timeoutMs: 30_000 });
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');
const NAME = 'demo';

let base: string;
let root: string;
let steps: HostSteps;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'host-script-'));
  root = join(base, 'plugins');
  expect(root).toMatch(/^\/[A-Za-z0-9._/-]+$/);
  steps = new HostSteps({ host, root, ownerSpec: '-' });
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

// --- helpers ------------------------------------------------------------------------------------

/** Stamps with a chosen time part, so "newest" and "older than" are under the test's control. */
function stampAt(time: string, suffix = randomBytes(2).toString('hex')): string {
  return `${time}-${suffix}`;
}

const ref = (stamp: string, name = NAME): PluginRef => ({ name, stamp });

function versionFiles(version: string): Record<string, string> {
  return {
    'plugin.yaml': `name: ${NAME}\nversion: ${version}\ndescription: test\n`,
    'skills/greet/SKILL.md': `greet v${version}\n`,
    'config/settings.yaml': `version: ${version}\n`,
  };
}

interface Tarball {
  buf: Buffer;
  sha: string;
}

async function tarball(version: string, opts: { prefix?: string } = {}): Promise<Tarball> {
  const buf = await goodTarball(versionFiles(version), opts);
  return { buf, sha: sha256(buf) };
}

function stage(plugin: PluginRef, tb: Tarball, strip: 0 | 1 = 0, sha = tb.sha, on = steps, unpackedBytes = 0) {
  return on.stage(plugin, sha, strip, { stream: Readable.from([tb.buf]) }, unpackedBytes);
}

function marker(stamp: string, version = '1.0.0', sha = 'a'.repeat(64)) {
  return { version, sha256: sha, execution: executionName('ws1', NAME, stamp), installedAt: new Date().toISOString() };
}

/** The ways this host exchanges two directories in one system call (never the two-renames fallback here). */
const EXCHANGED = /^(mv-exchange|exch|perl-renameat2:(316|276)|python3-renameat2)$/;

/** A whole install through the host steps, as the workflow runs them: lock → stage → swap → snapshot → mark → unlock. */
async function install(version: string, stamp = newStamp(), name = NAME): Promise<string> {
  const plugin = ref(stamp, name);
  const tb = await tarball(version);
  const first = !existsSync(live(name));
  expect((await steps.lock(plugin, 'test', process.pid, 600)).result).toBe('acquired');
  expect((await stage(plugin, tb)).result).toBe('staged');
  const swapped = await steps.swap(plugin);
  if (first) expect(swapped).toEqual({ result: 'renamed', how: 'rename' });
  else expect(swapped).toEqual({ result: 'exchanged', how: expect.stringMatching(EXCHANGED) });
  expect(await steps.snapshot(plugin)).toBe(first ? 'none' : 'moved');
  expect(await steps.mark(plugin, marker(stamp, version, tb.sha))).toBe('marked');
  expect(await steps.unlock(plugin)).toBe('released');
  return stamp;
}

const live = (name = NAME) => join(root, name);
const stagingOf = (stamp: string, name = NAME) => join(root, '.staging', `${name}.${stamp}`);
const previousOf = (stamp: string, name = NAME) => join(root, '.previous', `${name}.${stamp}`);
const failedOf = (stamp: string, name = NAME) => join(root, '.failed', `${name}.${stamp}`);

/** The content files of a directory (relative path → text), the marker `.complete` excluded unless `all`. */
function tree(dir: string, all = false): Record<string, string> | null {
  if (!existsSync(dir)) return null;
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(dir, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  if (!all) delete out['.complete'];
  return out;
}

function entries(sub: string): string[] {
  try {
    return readdirSync(join(root, sub)).sort();
  } catch {
    return [];
  }
}

/** The identity the script records for a directory: `<dev>-<ino>`, as `stat -c %d-%i` prints it (no link followed). */
function ino(path: string): string {
  const st = lstatSync(path, { bigint: true });
  return `${st.dev}-${st.ino}`;
}

/** A root-owned `key=value` record under `.meta/` (null when absent). */
function record(file: string): Record<string, string> | null {
  const path = join(root, '.meta', file);
  if (!existsSync(path)) return null;
  return Object.fromEntries(
    readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/** What one operation recorded: `.meta/<name>.<stamp>`. */
const opRecord = (stamp: string, name = NAME) => record(`${name}.${stamp}`);

function lockFile(name = NAME): Record<string, string> | null {
  const path = join(root, '.locks', name);
  if (!existsSync(path)) return null;
  return Object.fromEntries(
    readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/** Stage locks a stage left behind (a finished or failed stage leaves none). */
const stageLocks = () => entries('.locks').filter((e) => e.startsWith('.stage.'));

async function writeLock(fields: Record<string, string | number>, name = NAME): Promise<void> {
  await mkdir(join(root, '.locks'), { recursive: true });
  await writeFile(join(root, '.locks', name), Object.entries(fields).map(([k, v]) => `${k}=${v}\n`).join(''));
}

/** A pid that existed and has exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  const pid = child.pid!;
  await new Promise((resolve) => child.on('close', resolve));
  return pid;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Whether some process is blocked in flock(2) on the file with this inode (Linux /proc/locks: "-> FLOCK"). */
function flockWaiter(inode: number | bigint): boolean {
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .some((l) => / -> FLOCK /.test(l) && l.split(/\s+/).some((f) => f.endsWith(`:${inode}`)));
}

// --- lock ---------------------------------------------------------------------------------------

describe('lock', () => {
  it('acquires, writes a lease naming stamp, owner, pid, host and expiry', async () => {
    const s = newStamp();
    const before = nowSeconds();
    const r = await steps.lock(ref(s), 'exec-1', 4242, 600);
    expect(r.result).toBe('acquired');
    expect(r.expires).toBeGreaterThanOrEqual(before + 600);
    expect(r.expires).toBeLessThanOrEqual(nowSeconds() + 600);
    expect(lockFile()).toEqual({ stamp: s, owner: 'exec-1', pid: '4242', host: hostname(), expires: String(r.expires) });
  });

  it('is idempotent for the same stamp: "held", and the lease is not rewritten', async () => {
    const s = newStamp();
    const first = await steps.lock(ref(s), 'exec-1', process.pid, 600);
    const path = join(root, '.locks', NAME);
    const before = { text: readFileSync(path, 'utf8'), ino: statSync(path).ino, mtime: statSync(path).mtimeMs };
    await new Promise((r) => setTimeout(r, 1100));
    const again = await steps.lock(ref(s), 'exec-2', 1, 5);
    expect(again).toEqual({ result: 'held', expires: first.expires });
    expect(readFileSync(path, 'utf8')).toBe(before.text);
    expect(statSync(path).ino).toBe(before.ino);
    expect(statSync(path).mtimeMs).toBe(before.mtime);
  });

  it('refuses another stamp while the holder is alive: LockBusy, lease unchanged', async () => {
    const s1 = newStamp();
    await steps.lock(ref(s1), 'exec-1', process.pid, 600);
    const error = await expectCode(steps.lock(ref(newStamp()), 'exec-2', process.pid, 600), 'LockBusy');
    expect(error.message).toContain('exec-1');
    expect(error.hint).not.toBe('');
    expect(lockFile()?.stamp).toBe(s1);
  });

  it('takes over a lease that has expired (real 1 s lease)', async () => {
    await steps.lock(ref(newStamp()), 'exec-1', process.pid, 1);
    await new Promise((r) => setTimeout(r, 2100));
    const s2 = newStamp();
    expect((await steps.lock(ref(s2), 'exec-2', process.pid, 600)).result).toBe('took-over-expired');
    expect(lockFile()).toMatchObject({ stamp: s2, owner: 'exec-2' });
  });

  it('takes over a lease written with an expiry in the past, or a corrupt one', async () => {
    await writeLock({ stamp: newStamp(), owner: 'old', pid: process.pid, host: hostname(), expires: nowSeconds() - 10 });
    expect((await steps.lock(ref(newStamp()), 'exec-2', process.pid, 600)).result).toBe('took-over-expired');
    await writeLock({ stamp: newStamp(), owner: 'old', pid: process.pid, host: hostname(), expires: 'garbage' });
    expect((await steps.lock(ref(newStamp()), 'exec-3', process.pid, 600)).result).toBe('took-over-expired');
  });

  it('takes over an unexpired lease whose owner process on this host is gone', async () => {
    const pid = await deadPid();
    await steps.lock(ref(newStamp()), 'exec-1', pid, 600);
    const s2 = newStamp();
    expect((await steps.lock(ref(s2), 'exec-2', process.pid, 600)).result).toBe('took-over-dead-owner');
    expect(lockFile()).toMatchObject({ stamp: s2, pid: String(process.pid) });
  });

  it('does not take over when the owner is alive, on another host, or unknown (pid 0)', async () => {
    await steps.lock(ref(newStamp()), 'exec-1', process.pid, 600);
    await expectCode(steps.lock(ref(newStamp()), 'exec-2', process.pid, 600), 'LockBusy');
    // A dead pid proves nothing about a lock taken on another machine.
    const pid = await deadPid();
    await writeLock({ stamp: newStamp(), owner: 'remote', pid, host: 'some-other-host', expires: nowSeconds() + 600 });
    await expectCode(steps.lock(ref(newStamp()), 'exec-3', process.pid, 600), 'LockBusy');
    await writeLock({ stamp: newStamp(), owner: 'lambda', pid: 0, host: hostname(), expires: nowSeconds() + 600 });
    await expectCode(steps.lock(ref(newStamp()), 'exec-4', process.pid, 600), 'LockBusy');
  });

  it('unlock by a stamp that does not hold the lock is "not-held" and the lock stays', async () => {
    const s1 = newStamp();
    await steps.lock(ref(s1), 'exec-1', process.pid, 600);
    expect(await steps.unlock(ref(newStamp()))).toBe('not-held');
    expect(lockFile()?.stamp).toBe(s1);
    expect(await steps.unlock(ref(s1))).toBe('released');
    expect(lockFile()).toBeNull();
    expect(await steps.unlock(ref(s1))).toBe('not-held');
  });

  it('serialises concurrent acquisitions: exactly one of eight wins', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => steps.lock(ref(newStamp()), `exec-${i}`, process.pid, 600)),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as PluginError).code).toBe('LockBusy');
  });
});

// --- fencing ------------------------------------------------------------------------------------

describe('fencing', () => {
  it('snapshot, swap, stage, mark, restore and uninstall refuse a stamp that does not hold the lock', async () => {
    const holder = newStamp();
    const other = ref(newStamp());
    const tb = await tarball('1.0.0');
    // No lock at all yet.
    await expectCode(steps.snapshot(other), 'LockLost');
    await steps.lock(ref(holder), 'exec-1', process.pid, 600);
    await expectCode(stage(other, tb), 'LockLost');
    await expectCode(steps.snapshot(other), 'LockLost');
    await expectCode(steps.swap(other), 'LockLost');
    await expectCode(steps.mark(other, marker(other.stamp)), 'LockLost');
    await expectCode(steps.restore(other), 'LockLost');
    await expectCode(steps.uninstall(other), 'LockLost');
    expect(entries('.staging')).toEqual([]);
    expect(lockFile()?.stamp).toBe(holder);
  });

  it('a step of an install whose lease was taken over fails with LockLost', async () => {
    const s1 = newStamp();
    await steps.lock(ref(s1), 'exec-1', await deadPid(), 600);
    await stage(ref(s1), await tarball('1.0.0'));
    await steps.lock(ref(newStamp()), 'exec-2', process.pid, 600);
    const error = await expectCode(steps.swap(ref(s1)), 'LockLost');
    expect(error.hint).not.toBe('');
    expect(existsSync(live())).toBe(false);
  });
});

// --- stage --------------------------------------------------------------------------------------

describe('stage', () => {
  it('extracts into .staging/<name>.<stamp>, records its identity in .meta/<name>.<stamp>, then reports already-staged', async () => {
    const s = newStamp();
    const tb = await tarball('1.0.0');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    const r = await stage(ref(s), tb, 0, tb.sha, steps, tb.buf.length * 10);
    const dir = stagingOf(s);
    expect(r.result).toBe('staged');
    // Exactly the tarball's files: nothing of the installer's goes inside the directory.
    expect(tree(dir, true)).toEqual(versionFiles('1.0.0'));
    expect(r.files).toBe(Object.keys(versionFiles('1.0.0')).length);
    expect(entries('.staging')).toEqual([`${NAME}.${s}`]);
    expect(statSync(join(dir, 'skills/greet/SKILL.md')).mode & 0o777).toBe(0o644);
    expect(statSync(join(dir, 'skills')).mode & 0o777).toBe(0o755);
    // Which directory the stamp staged is recorded by inode, in the root-owned .meta/.
    expect(opRecord(s)).toEqual({ staged: ino(dir) });
    expect(statSync(join(root, '.meta', `${NAME}.${s}`)).uid).toBe(process.getuid!());
    // No stage lock, fifo or work directory left behind.
    expect(entries('.locks')).toEqual(['.mutex', NAME]);

    const before = ino(dir);
    expect((await stage(ref(s), tb)).result).toBe('already-staged');
    expect(tree(dir, true)).toEqual(versionFiles('1.0.0'));
    expect(ino(dir)).toBe(before);
  });

  it('hands every file to ownerSpec uid:gid', async () => {
    const owned = new HostSteps({ host, root, ownerSpec: '1000:1000' });
    const s = newStamp();
    await owned.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), await tarball('1.0.0'), 0, undefined, owned);
    const dir = stagingOf(s);
    const paths = [dir, join(dir, 'plugin.yaml'), join(dir, 'skills'), join(dir, 'skills/greet/SKILL.md'), join(dir, 'config/settings.yaml')];
    for (const p of paths) expect({ p, uid: statSync(p).uid, gid: statSync(p).gid }).toEqual({ p, uid: 1000, gid: 1000 });
    // The record of what was staged stays the installer's.
    const rec = statSync(join(root, '.meta', `${NAME}.${s}`));
    expect({ uid: rec.uid, gid: rec.gid }).toEqual({ uid: process.getuid!(), gid: process.getgid!() });
  });

  it('refuses bytes whose sha256 differs: TransferCorrupted, no staging, .partial or .work left', async () => {
    const s = newStamp();
    const tb = await tarball('1.0.0');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    const error = await expectCode(stage(ref(s), tb, 0, 'f'.repeat(64)), 'TransferCorrupted');
    expect(error.message).toContain(tb.sha);
    expect(entries('.staging')).toEqual([]);
    expect(stageLocks()).toEqual([]);
    expect(opRecord(s)).toBeNull();
  });

  it('refuses a truncated gzip stream whose sha256 matches: ExtractFailed, nothing left', async () => {
    const s = newStamp();
    const full = await tarball('1.0.0');
    const cut = full.buf.subarray(0, Math.floor(full.buf.length / 2));
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await expectCode(stage(ref(s), { buf: cut, sha: sha256(cut) }), 'ExtractFailed');
    expect(entries('.staging')).toEqual([]);
    expect(stageLocks()).toEqual([]);
  });

  it('refuses a disk without room for the unpacked bytes: HostDiskFull before a byte is written, nothing left', async () => {
    const s = newStamp();
    const tb = await tarball('1.0.0');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    // 1 TB short of 1 byte: the largest size the script takes (12 digits).
    const error = await expectCode(stage(ref(s), tb, 0, tb.sha, steps, 999_999_999_999), 'HostDiskFull');
    expect(error.message).toContain('999999999999 bytes');
    expect(error.hint).not.toBe('');
    expect(entries('.staging')).toEqual([]);
    expect(stageLocks()).toEqual([]);
    expect(opRecord(s)).toBeNull();
    // The lease stays: the workflow's rollback (or a retry) still holds the plugin.
    expect(lockFile()?.stamp).toBe(s);
    expect((await stage(ref(s), tb)).result).toBe('staged');
  });

  it('tells a corrupt stream (ExtractFailed) from corruption in transit (TransferCorrupted) even when gzip gives up early', async () => {
    // Several MiB, so gzip stops reading long before the end of the stream.
    const big = await goodTarball({ 'data.txt': randomBytes(3 * 1024 * 1024).toString('base64') });
    const corrupt = Buffer.from(big);
    corrupt.fill(0xff, 200, 100_000);
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    // The bytes arrived as sent, but they are not a valid gzip stream.
    await expectCode(stage(ref(s), { buf: corrupt, sha: sha256(corrupt) }), 'ExtractFailed');
    // The bytes differ from the validated tarball: the whole stream must still be hashed.
    const error = await expectCode(stage(ref(s), { buf: corrupt, sha: sha256(big) }), 'TransferCorrupted');
    expect(error.message).toContain(sha256(corrupt));
    expect(entries('.staging')).toEqual([]);
    expect(stageLocks()).toEqual([]);
  });

  it('with strip 1 lands the single top directory flat, whether spelled dir/ or ./dir/', async () => {
    for (const prefix of ['myplugin', './myplugin']) {
      const s = newStamp();
      await steps.lock(ref(s), 'exec-1', process.pid, 600);
      const tb = await tarball('1.0.0', { prefix });
      expect((await stage(ref(s), tb, 1)).result).toBe('staged');
      const dir = join(root, '.staging', `${NAME}.${s}`);
      expect(tree(dir)).toEqual(versionFiles('1.0.0'));
      expect(existsSync(join(dir, 'plugin.yaml'))).toBe(true);
      await steps.rollback(ref(s));
    }
  });

  it('clears an earlier interrupted extraction (.partial, .work) before extracting again', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await mkdir(join(root, '.staging', `${NAME}.${s}.partial`, 'stale'), { recursive: true });
    await writeFile(join(root, '.staging', `${NAME}.${s}.partial`, 'stale', 'junk'), 'junk');
    await mkdir(join(root, '.staging', `${NAME}.${s}.work`), { recursive: true });
    expect((await stage(ref(s), await tarball('1.0.0'))).result).toBe('staged');
    expect(tree(join(root, '.staging', `${NAME}.${s}`))).toEqual(versionFiles('1.0.0'));
    expect(entries('.staging')).toEqual([`${NAME}.${s}`]);
  });

  it('defence in depth: a link in the tarball is refused, setuid/setgid/sticky bits are cleared, other permission bits kept', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    const linked = await packTarGz([
      { name: 'plugin.yaml', body: 'name: demo\nversion: 1.0.0\n' },
      { name: 'passwd', type: 'symlink', linkname: '/etc/passwd' },
    ]);
    const error = await expectCode(stage(ref(s), { buf: linked, sha: sha256(linked) }), 'ExtractFailed');
    expect(error.message).toContain('passwd');
    expect(entries('.staging')).toEqual([]);
    expect(stageLocks()).toEqual([]);

    const setuid = await packTarGz([
      { name: 'plugin.yaml', body: 'name: demo\nversion: 1.0.0\n' },
      { name: 'run', mode: 0o6755, body: '#!/bin/sh\n' },
      { name: 'secret', mode: 0o600, body: 'token\n' },
      { name: 'shared', type: 'directory', mode: 0o1777 },
      { name: 'private', type: 'directory', mode: 0o700 },
      { name: 'private/key', mode: 0o640, body: 'key\n' },
    ]);
    expect((await stage(ref(s), { buf: setuid, sha: sha256(setuid) })).result).toBe('staged');
    const staged = join(root, '.staging', `${NAME}.${s}`);
    const mode = (rel: string) => (statSync(join(staged, rel)).mode & 0o7777).toString(8);
    expect({ run: mode('run'), secret: mode('secret'), shared: mode('shared'), private: mode('private'), key: mode('private/key') }).toEqual({ run: '755', secret: '600', shared: '755', private: '700', key: '640' });
  });

  it('a retry that waited for an earlier attempt still running on the host, which then succeeds: already-staged, the staging intact', async () => {
    const s = newStamp();
    const tb = await tarball('1.0.0');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    // The first attempt (its connection dropped, say) still runs on the host, its bytes trickling in.
    const slow = new PassThrough();
    const first = steps.stage(ref(s), tb.sha, 0, { stream: slow });
    slow.write(tb.buf.subarray(0, 10));
    const stageLock = join(root, '.locks', `.stage.${NAME}.${s}`);
    await waitFor('the first attempt to extract', () => existsSync(stageLock) && existsSync(`${stagingOf(s)}.work`));
    const lockIno = statSync(stageLock).ino;
    const retry = stage(ref(s), tb);
    await waitFor('the retry to wait for the stage lock', () => flockWaiter(lockIno));
    slow.end(tb.buf.subarray(10));
    expect((await first).result).toBe('staged');
    const staged = ino(stagingOf(s));
    expect((await retry).result).toBe('already-staged');
    expect(opRecord(s)).toEqual({ staged });
    expect(entries('.staging')).toEqual([`${NAME}.${s}`]);
    expect(stageLocks()).toEqual([]);
    expect(await steps.swap(ref(s))).toEqual({ result: 'renamed', how: 'rename' });
    expect(ino(live())).toBe(staged);
    expect(tree(live(), true)).toEqual(versionFiles('1.0.0'));
  });

  it('is a no-op once the stamp is live (a retry after the swap)', async () => {
    const s = newStamp();
    const tb = await tarball('1.0.0');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), tb);
    await steps.swap(ref(s));
    const before = ino(live());
    expect((await stage(ref(s), tb)).result).toBe('already-live');
    expect(entries('.staging')).toEqual([]);
    expect(ino(live())).toBe(before);
    expect(stageLocks()).toEqual([]);
  });
});

// --- swap and snapshot ----------------------------------------------------------------------------

describe('swap and snapshot', () => {
  it('first install: swap renames staging onto live (how "rename"), already on repeat; snapshot has nothing to file: none', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), await tarball('2.0.0'));
    const staged = ino(stagingOf(s));
    expect(await steps.swap(ref(s))).toEqual({ result: 'renamed', how: 'rename' });
    expect(tree(live(), true)).toEqual(versionFiles('2.0.0'));
    // Live is the very directory this stamp staged, as recorded.
    expect(ino(live())).toBe(staged);
    expect(opRecord(s)).toEqual({ staged });
    expect(entries('.staging')).toEqual([]);
    expect(await steps.swap(ref(s))).toEqual({ result: 'already' });
    expect(await steps.snapshot(ref(s))).toBe('none');
    expect(await steps.snapshot(ref(s))).toBe('none');
    expect(entries('.previous')).toEqual([]);
    expect(ino(live())).toBe(staged);
  });

  it('upgrade: swap exchanges staging and live in one call, the displaced version waits in the staging slot; snapshot files it under .previous', async () => {
    await install('1.0.0');
    const v1 = ino(live());
    const v1Complete = readFileSync(join(live(), '.complete'), 'utf8');
    const s = newStamp();
    await steps.lock(ref(s), 'exec-2', process.pid, 600);
    await stage(ref(s), await tarball('2.0.0'));
    const v2 = ino(stagingOf(s));
    // Before the swap live is not ours: there is nothing of ours to snapshot.
    await expectCode(steps.snapshot(ref(s)), 'LiveNotOurs');
    expect(ino(live())).toBe(v1);
    expect(ino(stagingOf(s))).toBe(v2);

    const swapped = await steps.swap(ref(s));
    expect(swapped).toEqual({ result: 'exchanged', how: expect.stringMatching(EXCHANGED) });
    // The method was probed once and is remembered by the host.
    expect(record('exchange')).toEqual({ method: swapped.how });
    expect(ino(live())).toBe(v2);
    expect(tree(live(), true)).toEqual(versionFiles('2.0.0'));
    // The exchanged-out version, marker and all, sits in the staging slot.
    expect(ino(stagingOf(s))).toBe(v1);
    expect(tree(stagingOf(s))).toEqual(versionFiles('1.0.0'));
    expect(readFileSync(join(stagingOf(s), '.complete'), 'utf8')).toBe(v1Complete);
    expect(await steps.swap(ref(s))).toEqual({ result: 'already' });
    expect(ino(stagingOf(s))).toBe(v1);

    expect(await steps.snapshot(ref(s))).toBe('moved');
    const snap = previousOf(s);
    expect(ino(snap)).toBe(v1);
    expect(tree(snap)).toEqual(versionFiles('1.0.0'));
    expect(entries('.staging')).toEqual([]);
    expect(await steps.snapshot(ref(s))).toBe('already');
    expect(entries('.previous')).toEqual([`${NAME}.${s}`]);
    expect(ino(live())).toBe(v2);
  });

  it('snapshot without swap or staging: LiveNotOurs, nothing moved', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await expectCode(steps.snapshot(ref(s)), 'LiveNotOurs');
    await steps.unlock(ref(s));
    await install('1.0.0');
    const before = ino(live());
    const s2 = newStamp();
    await steps.lock(ref(s2), 'exec-2', process.pid, 600);
    await expectCode(steps.snapshot(ref(s2)), 'LiveNotOurs');
    expect(ino(live())).toBe(before);
    expect(entries('.previous')).toEqual([]);
  });

  it('swap without staging: StagingMissing', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await expectCode(steps.swap(ref(s)), 'StagingMissing');
  });

  it('a directory at the staging slot that this stamp did not stage (no record) is not staged: StagingMissing, live untouched', async () => {
    await install('1.0.0');
    const before = ino(live());
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    // What an older layout would have taken for ours: a directory tagged with .install-stamp.
    await mkdir(stagingOf(s), { recursive: true });
    await writeFile(join(stagingOf(s), '.install-stamp'), `${s}\n`);
    await expectCode(steps.swap(ref(s)), 'StagingMissing');
    expect(ino(live())).toBe(before);
    expect(opRecord(s)).toBeNull();
  });

  it('on a host that cannot exchange: two renames in one step; LivePresent (both untouched) when .previous/<name>.<stamp> is taken', async () => {
    await install('1.0.0');
    const v1 = ino(live());
    // The host probed as unable to exchange (old kernel, or a filesystem without RENAME_EXCHANGE).
    await writeFile(join(root, '.meta', 'exchange'), 'method=two-renames\n');
    const s = newStamp();
    await steps.lock(ref(s), 'exec-2', process.pid, 600);
    await stage(ref(s), await tarball('2.0.0'));
    const v2 = ino(stagingOf(s));
    await mkdir(previousOf(s));
    await expectCode(steps.swap(ref(s)), 'LivePresent');
    expect(ino(live())).toBe(v1);
    expect(ino(stagingOf(s))).toBe(v2);
    await rm(previousOf(s), { recursive: true });

    expect(await steps.swap(ref(s))).toEqual({ result: 'renamed', how: 'two-renames' });
    expect(ino(live())).toBe(v2);
    // The displaced version went straight to its snapshot slot.
    expect(ino(previousOf(s))).toBe(v1);
    expect(entries('.staging')).toEqual([]);
    expect(await steps.swap(ref(s))).toEqual({ result: 'already' });
    expect(await steps.snapshot(ref(s))).toBe('already');
    expect(await steps.mark(ref(s), marker(s, '2.0.0'))).toBe('marked');

    // Its undo: nothing to exchange with, so ours goes to .failed and the snapshot is renamed back.
    expect(await steps.rollback(ref(s))).toEqual({ live: 'restored', changed: true, actions: ['moved-ours-to-failed', 'renamed-back'], lock: 'released' });
    expect(ino(live())).toBe(v1);
    expect(ino(failedOf(s))).toBe(v2);
    expect(entries('.previous')).toEqual([]);
  });
});

// --- mark ---------------------------------------------------------------------------------------

describe('mark', () => {
  it('writes the marker record in .meta/ and .complete with exactly the marker fields, then "already"; no temp file anywhere', async () => {
    const s = newStamp();
    const tb = await tarball('1.2.3');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), tb);
    await steps.swap(ref(s));
    expect(await steps.snapshot(ref(s))).toBe('none');
    const m = marker(s, '1.2.3', tb.sha);
    expect(await steps.mark(ref(s), m)).toBe('marked');
    const written = JSON.parse(readFileSync(join(live(), '.complete'), 'utf8')) as Record<string, unknown>;
    expect(written).toStrictEqual({ name: NAME, version: '1.2.3', sha256: tb.sha, stamp: s, installedAt: m.installedAt, execution: m.execution });
    expect(readdirSync(live()).sort()).toEqual(['.complete', 'config', 'plugin.yaml', 'skills']);
    expect(lstatSync(join(live(), '.complete')).isFile()).toBe(true);
    // What list reports: the root-owned record of this directory, keyed by its inode.
    const markerRecord = `${NAME}@${ino(live())}`;
    expect(record(markerRecord)).toEqual({ stamp: s, version: '1.2.3', sha256: tb.sha, installedAt: m.installedAt, execution: m.execution });
    expect(entries('.meta').sort()).toEqual([`${NAME}.${s}`, markerRecord].sort());
    expect(entries('.staging')).toEqual([]);

    const before = readFileSync(join(live(), '.complete'), 'utf8');
    expect(await steps.mark(ref(s), { ...m, installedAt: new Date(0).toISOString() })).toBe('already');
    expect(readFileSync(join(live(), '.complete'), 'utf8')).toBe(before);
    expect(record(markerRecord)).toMatchObject({ installedAt: m.installedAt });
    expect(entries('.staging')).toEqual([]);
  });

  it('a .complete the agent removed is written again on a retry', async () => {
    const s = await install('1.0.0');
    await rm(join(live(), '.complete'));
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    expect(await steps.mark(ref(s), marker(s, '1.0.0'))).toBe('marked');
    expect(JSON.parse(readFileSync(join(live(), '.complete'), 'utf8'))).toMatchObject({ stamp: s, version: '1.0.0' });
  });

  it('a directory where .complete belongs: HostIoError naming it, live otherwise untouched', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), await tarball('1.0.0'));
    await steps.swap(ref(s));
    await mkdir(join(live(), '.complete', 'x'), { recursive: true });
    const error = await expectCode(steps.mark(ref(s), marker(s)), 'HostIoError');
    expect(error.message).toContain('.complete');
    expect(error.hint).not.toBe('');
    expect(tree(live(), true)).toEqual({ ...versionFiles('1.0.0') });
    expect(entries('.staging')).toEqual([]);
  });

  it('refuses a live copy placed by another stamp, or no live copy: LiveNotOurs', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await expectCode(steps.mark(ref(s), marker(s)), 'LiveNotOurs');
    await steps.unlock(ref(s));

    await install('1.0.0');
    const before = readFileSync(join(live(), '.complete'), 'utf8');
    const s2 = newStamp();
    await steps.lock(ref(s2), 'exec-2', process.pid, 600);
    await expectCode(steps.mark(ref(s2), marker(s2, '9.9.9')), 'LiveNotOurs');
    expect(readFileSync(join(live(), '.complete'), 'utf8')).toBe(before);
  });

  it('a live directory made by hand (an older layout\'s .install-stamp inside) is never "ours": mark and snapshot refuse, rollback leaves it', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await mkdir(live());
    await writeFile(join(live(), '.install-stamp'), `${s}\n`);
    await writeFile(join(live(), 'plugin.yaml'), 'name: demo\n');
    const before = ino(live());
    await expectCode(steps.mark(ref(s), marker(s)), 'LiveNotOurs');
    await expectCode(steps.snapshot(ref(s)), 'LiveNotOurs');
    expect(await steps.rollback(ref(s))).toEqual({ live: 'untouched', changed: false, actions: [], lock: 'released' });
    expect(ino(live())).toBe(before);
    expect(tree(live(), true)).toEqual({ '.install-stamp': `${s}\n`, 'plugin.yaml': 'name: demo\n' });
    expect(existsSync(join(live(), '.complete'))).toBe(false);
    expect(entries('.failed')).toEqual([]);
  });
});

// --- rollback -----------------------------------------------------------------------------------

describe('rollback', () => {
  /** v1 installed and marked; then an upgrade to v2 under a new stamp, up to `step`. */
  async function upgradeUntil(step: 'stage' | 'swap' | 'snapshot' | 'mark'): Promise<{ s: string; v1: string; v1Tree: Record<string, string> | null }> {
    await install('1.0.0');
    const v1 = ino(live());
    const v1Tree = tree(live(), true);
    const s = newStamp();
    await steps.lock(ref(s), 'exec-2', process.pid, 600);
    await stage(ref(s), await tarball('2.0.0'));
    if (step === 'stage') return { s, v1, v1Tree };
    expect(await steps.swap(ref(s))).toMatchObject({ result: 'exchanged' });
    if (step === 'swap') return { s, v1, v1Tree };
    expect(await steps.snapshot(ref(s))).toBe('moved');
    if (step === 'snapshot') return { s, v1, v1Tree };
    expect(await steps.mark(ref(s), marker(s, '2.0.0'))).toBe('marked');
    return { s, v1, v1Tree };
  }

  it('after stage only: staging removed, live untouched (changed false), lock released', async () => {
    const { s, v1, v1Tree } = await upgradeUntil('stage');
    expect(await steps.rollback(ref(s))).toEqual({ live: 'untouched', changed: false, actions: ['removed-staging'], lock: 'released' });
    expect(tree(live(), true)).toEqual(v1Tree);
    expect(ino(live())).toBe(v1);
    expect(entries('.staging')).toEqual([]);
    expect(lockFile()).toBeNull();
  });

  it.each(['swap', 'snapshot', 'mark'] as const)('after %s: the displaced version is exchanged back, ours goes to .failed/<name>.<stamp>', async (step) => {
    const { s, v1, v1Tree } = await upgradeUntil(step);
    expect(await steps.rollback(ref(s))).toEqual({ live: 'restored', changed: true, actions: ['exchanged-back', 'moved-ours-to-failed'], lock: 'released' });
    // The very directory that was live before, marker and all.
    expect(ino(live())).toBe(v1);
    expect(tree(live(), true)).toEqual(v1Tree);
    expect(entries('.failed')).toEqual([`${NAME}.${s}`]);
    expect(tree(failedOf(s))).toEqual(versionFiles('2.0.0'));
    expect(existsSync(join(failedOf(s), '.complete'))).toBe(step === 'mark');
    expect(entries('.previous')).toEqual([]);
    expect(entries('.staging')).toEqual([]);
    expect(lockFile()).toBeNull();
    // list reports v1 again, from v1's own marker record.
    const listed = await steps.list();
    expect(listed.plugins).toEqual([{ name: NAME, complete: true, stamp: expect.any(String), marker: expect.objectContaining({ version: '1.0.0' }) }]);
  });

  it.each(['swap', 'snapshot'] as const)('fresh install rolled back after %s: ours goes to .failed, live is absent afterwards', async (step) => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), await tarball('1.0.0'));
    const ours = ino(stagingOf(s));
    expect(await steps.swap(ref(s))).toEqual({ result: 'renamed', how: 'rename' });
    if (step === 'snapshot') expect(await steps.snapshot(ref(s))).toBe('none');
    expect(await steps.rollback(ref(s))).toEqual({ live: 'absent', changed: true, actions: ['moved-ours-to-failed'], lock: 'released' });
    expect(existsSync(live())).toBe(false);
    expect(entries('.failed')).toEqual([`${NAME}.${s}`]);
    expect(ino(failedOf(s))).toBe(ours);
  });

  it('after the agent removed our live copy: the displaced version waiting in the staging slot is put back', async () => {
    const { s, v1 } = await upgradeUntil('swap');
    await rm(live(), { recursive: true });
    expect(await steps.rollback(ref(s))).toEqual({ live: 'restored', changed: true, actions: ['restored-displaced'], lock: 'released' });
    expect(ino(live())).toBe(v1);
    expect(tree(live())).toEqual(versionFiles('1.0.0'));
    expect(entries('.staging')).toEqual([]);
  });

  it('when another stamp holds the lock: cleans its own staging only, live and lock untouched', async () => {
    await install('1.0.0');
    const s1 = newStamp();
    await steps.lock(ref(s1), 'exec-1', await deadPid(), 600);
    await stage(ref(s1), await tarball('2.0.0'));
    const s2 = newStamp();
    expect((await steps.lock(ref(s2), 'exec-2', process.pid, 600)).result).toBe('took-over-dead-owner');
    const before = tree(live(), true);
    const liveIno = ino(live());
    expect(await steps.rollback(ref(s1))).toEqual({ live: 'untouched', changed: false, actions: ['removed-staging'], lock: 'held-by-other' });
    expect(tree(live(), true)).toEqual(before);
    expect(ino(live())).toBe(liveIno);
    expect(entries('.staging')).toEqual([]);
    expect(lockFile()?.stamp).toBe(s2);
  });

  it('is idempotent: a second run changes nothing', async () => {
    const { s } = await upgradeUntil('snapshot');
    await steps.rollback(ref(s));
    const snapshot = () => ({ live: tree(live(), true), ino: ino(live()), failed: entries('.failed'), previous: entries('.previous'), staging: entries('.staging'), lock: lockFile() });
    const after = snapshot();
    expect(await steps.rollback(ref(s))).toEqual({ live: 'untouched', changed: false, actions: [], lock: 'free' });
    expect(snapshot()).toEqual(after);
  });

  it('a rollback retried after another stamp installed never touches that install, even when its directory reuses the inode of the staging the rollback removed', async () => {
    await install('1.0.0');
    const s1 = newStamp();
    await steps.lock(ref(s1), 'exec-1', process.pid, 600);
    await stage(ref(s1), await tarball('2.0.0'));
    expect(await steps.rollback(ref(s1))).toEqual({ live: 'untouched', changed: false, actions: ['removed-staging'], lock: 'released' });
    const s2 = await install('3.0.0');
    const v3 = ino(live());
    // Inode numbers are reused (ext4 hands a freed one out again at once): if anything of s1 still
    // names a directory identity, make it name live's, as a reuse would.
    const stale = join(root, '.meta', `${NAME}.${s1}`);
    if (existsSync(stale)) await writeFile(stale, readFileSync(stale, 'utf8').replace(/^staged=\d+-\d+$/m, `staged=${v3}`));
    // Step Functions retries a rollback step whose Lambda died after the host did the work.
    expect(await steps.rollback(ref(s1))).toEqual({ live: 'untouched', changed: false, actions: [], lock: 'free' });
    expect(ino(live())).toBe(v3);
    expect(tree(live())).toEqual(versionFiles('3.0.0'));
    expect(entries('.failed')).toEqual([]);
    expect((await steps.list()).plugins).toEqual([expect.objectContaining({ name: NAME, complete: true, stamp: s2 })]);
  });
});

// --- restore ------------------------------------------------------------------------------------

describe('restore', () => {
  const T1 = stampAt('20260101T000000Z', 'aaaa');
  const T2 = stampAt('20260102T000000Z', 'aaaa');
  const T3 = stampAt('20260103T000000Z', 'aaaa');

  /** v1 (T1), v2 (T2, displacing v1), v3 (T3, displacing v2): snapshots .previous/demo.T2 = v1, .T3 = v2. */
  async function threeVersions(): Promise<Record<string, string>> {
    await install('1.0.0', T1);
    const v1 = ino(live());
    await install('2.0.0', T2);
    const v2 = ino(live());
    await install('3.0.0', T3);
    expect(entries('.previous')).toEqual([`${NAME}.${T2}`, `${NAME}.${T3}`]);
    expect(ino(previousOf(T2))).toBe(v1);
    expect(ino(previousOf(T3))).toBe(v2);
    return { v1, v2, v3: ino(live()) };
  }

  it('NothingToRestore without a snapshot', async () => {
    await install('1.0.0');
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    const error = await expectCode(steps.restore(ref(s)), 'NothingToRestore');
    expect(error.hint).not.toBe('');
    expect(opRecord(s)).toBeNull();
  });

  it('stages the newest snapshot (recorded in .meta/, nothing written into it); swap + snapshot finish the job', async () => {
    const { v2, v3 } = await threeVersions();
    // Neither a file nor a badly named directory counts as a snapshot.
    await writeFile(join(root, '.previous', `${NAME}.20990101T000000Z-zzzz`), 'not a directory');
    await mkdir(join(root, '.previous', `${NAME}.not-a-stamp`));
    const r = newStamp();
    await steps.lock(ref(r), 'exec-1', process.pid, 600);
    expect(await steps.restore(ref(r))).toEqual({ result: 'staged', from: T3 });
    expect(ino(stagingOf(r))).toBe(v2);
    expect(opRecord(r)).toEqual({ staged: v2, from: T3 });
    expect(tree(stagingOf(r))).toEqual(versionFiles('2.0.0'));
    expect(existsSync(join(stagingOf(r), '.restored-from'))).toBe(false);
    expect(await steps.restore(ref(r))).toEqual({ result: 'already', from: T3 });
    await expectCode(steps.snapshot(ref(r)), 'LiveNotOurs');

    expect(await steps.swap(ref(r))).toEqual({ result: 'exchanged', how: expect.stringMatching(EXCHANGED) });
    expect(await steps.snapshot(ref(r))).toBe('moved');
    expect(ino(live())).toBe(v2);
    expect(tree(live())).toEqual(versionFiles('2.0.0'));
    expect(readdirSync(live()).sort()).toEqual(['.complete', 'config', 'plugin.yaml', 'skills']);
    expect(ino(previousOf(r))).toBe(v3);
    expect(tree(previousOf(r))).toEqual(versionFiles('3.0.0'));
    expect(entries('.previous').filter((e) => /^demo\.\d{8}T\d{6}Z-[a-z0-9]{4}$/.test(e) && !e.includes('20990101'))).toEqual([`${NAME}.${T2}`, `${NAME}.${r}`].sort());
    expect(await steps.restore(ref(r))).toEqual({ result: 'already-live', from: T3 });
    // v2's own marker record still describes it.
    expect((await steps.list()).plugins).toEqual([expect.objectContaining({ name: NAME, complete: true, stamp: T2, marker: expect.objectContaining({ version: '2.0.0' }) })]);
  });

  it('picks the newest snapshot by whole stamp, also among snapshots of the same second', async () => {
    await install('1.0.0', stampAt('20260101T000000Z', '00aa'));
    // Two upgrades minted in the same second: the suffix (its first two characters are the millisecond) orders them.
    const early = stampAt('20260102T000000Z', '0aaa');
    const late = stampAt('20260102T000000Z', 'rzzz');
    await install('2.0.0', early);
    await install('3.0.0', late);
    // .previous/demo.<early> = v1, .previous/demo.<late> = v2: the newest is <late>.
    const r = newStamp();
    await steps.lock(ref(r), 'exec-1', process.pid, 600);
    expect(await steps.restore(ref(r))).toEqual({ result: 'staged', from: late });
    expect(tree(stagingOf(r))).toEqual(versionFiles('2.0.0'));
  });

  it('rolled back before the swap, the snapshot returns to .previous/<name>.<T>', async () => {
    const { v2, v3 } = await threeVersions();
    const r = newStamp();
    await steps.lock(ref(r), 'exec-1', process.pid, 600);
    await steps.restore(ref(r));
    expect(existsSync(previousOf(T3))).toBe(false);
    expect(await steps.rollback(ref(r))).toEqual({ live: 'untouched', changed: false, actions: ['returned-snapshot'], lock: 'released' });
    expect(entries('.previous')).toEqual([`${NAME}.${T2}`, `${NAME}.${T3}`]);
    expect(ino(previousOf(T3))).toBe(v2);
    expect(tree(previousOf(T3))).toEqual(versionFiles('2.0.0'));
    expect(ino(live())).toBe(v3);
    expect(tree(live())).toEqual(versionFiles('3.0.0'));
    expect(entries('.staging')).toEqual([]);
  });

  it.each(['swap', 'snapshot'] as const)('rolled back after the %s, the displaced live copy comes back and the snapshot returns to its slot', async (step) => {
    const { v2, v3 } = await threeVersions();
    const r = newStamp();
    await steps.lock(ref(r), 'exec-1', process.pid, 600);
    await steps.restore(ref(r));
    await steps.swap(ref(r));
    if (step === 'snapshot') expect(await steps.snapshot(ref(r))).toBe('moved');
    expect(await steps.rollback(ref(r))).toEqual({ live: 'restored', changed: true, actions: ['exchanged-back', 'returned-snapshot'], lock: 'released' });
    expect(ino(live())).toBe(v3);
    expect(tree(live())).toEqual(versionFiles('3.0.0'));
    expect(entries('.previous')).toEqual([`${NAME}.${T2}`, `${NAME}.${T3}`]);
    expect(ino(previousOf(T3))).toBe(v2);
    expect(tree(previousOf(T3))).toEqual(versionFiles('2.0.0'));
    expect(entries('.failed')).toEqual([]);
    expect(entries('.staging')).toEqual([]);
  });
});

// --- uninstall ----------------------------------------------------------------------------------

describe('uninstall', () => {
  it('NotInstalled without live; moves live to .previous; already on repeat', async () => {
    const s0 = newStamp();
    await steps.lock(ref(s0), 'exec-1', process.pid, 600);
    await expectCode(steps.uninstall(ref(s0)), 'NotInstalled');
    await steps.unlock(ref(s0));

    await install('1.0.0');
    const v1 = ino(live());
    const s = newStamp();
    await steps.lock(ref(s), 'exec-2', process.pid, 600);
    expect(await steps.uninstall(ref(s))).toBe('moved');
    expect(existsSync(live())).toBe(false);
    expect(ino(previousOf(s))).toBe(v1);
    expect(tree(previousOf(s))).toEqual(versionFiles('1.0.0'));
    expect(await steps.uninstall(ref(s))).toBe('already');
    expect(entries('.previous')).toEqual([`${NAME}.${s}`]);
  });

  it('rolled back, the uninstalled copy is live again', async () => {
    await install('1.0.0');
    const v1 = ino(live());
    const v1Tree = tree(live(), true);
    const s = newStamp();
    await steps.lock(ref(s), 'exec-2', process.pid, 600);
    await steps.uninstall(ref(s));
    expect(await steps.rollback(ref(s))).toEqual({ live: 'restored', changed: true, actions: ['restored-previous'], lock: 'released' });
    expect(ino(live())).toBe(v1);
    expect(tree(live(), true)).toEqual(v1Tree);
    expect(entries('.previous')).toEqual([]);
    expect((await steps.list()).plugins).toEqual([expect.objectContaining({ name: NAME, complete: true })]);
  });
});

// --- list ---------------------------------------------------------------------------------------

describe('list', () => {
  it('an absent root lists nothing', async () => {
    expect(await steps.list()).toEqual({ plugins: [], previous: [], locks: [] });
  });

  it('lists unexpired locks (operations in progress) and leaves expired ones out', async () => {
    const stamp = newStamp();
    await steps.lock({ name: 'busy', stamp }, 'exec-1', 0, 600);
    await steps.lock({ name: 'stale', stamp: newStamp() }, 'exec-2', 0, 0);
    const { locks } = await steps.list();
    expect(locks.map((l) => l.name)).toEqual(['busy']);
    expect(locks[0]!.stamp).toBe(stamp);
  });

  it('reports live plugins with their markers (from .meta/), snapshots with pinned (.meta/<entry>.pin), and skips invalid names', async () => {
    const a1 = await install('1.0.0', newStamp(), 'alpha');
    const alpha1 = ino(live('alpha'));
    const a2 = await install('1.1.0', newStamp(), 'alpha');
    // beta: swapped but never marked.
    const b = newStamp();
    await steps.lock(ref(b, 'beta'), 'exec-b', process.pid, 600);
    await stage(ref(b, 'beta'), await tarball('0.1.0'));
    await steps.swap(ref(b, 'beta'));
    // gamma: made by hand, with a forged marker: not the installer's.
    await mkdir(live('gamma'));
    await writeFile(join(live('gamma'), '.complete'), JSON.stringify({ name: 'gamma', version: '6.6.6', sha256: 'b'.repeat(64), stamp: a2, installedAt: new Date().toISOString(), execution: 'x' }));
    // Not plugins: names the validator refuses, and a plain file.
    for (const bad of ['Bad Name', 'UPPER', '-dash', 'semi;colon']) await mkdir(join(root, bad));
    await writeFile(join(root, 'afile'), 'x');
    await mkdir(join(root, '.previous', 'junk'), { recursive: true });
    await mkdir(join(root, '.previous', 'BAD.20260101T000000Z-abcd'), { recursive: true });
    // A legacy pin inside the snapshot pins nothing (nothing inside a plugin directory is read) ...
    await writeFile(join(previousOf(a2, 'alpha'), '.pinned'), '');
    expect((await steps.list()).previous).toEqual([{ name: 'alpha', stamp: a2, pinned: false }]);
    // ... the root-owned pin does.
    await writeFile(join(root, '.meta', `alpha.${a2}.pin`), '');

    const listed = await steps.list();
    const byName = Object.fromEntries(listed.plugins.map((p) => [p.name, p]));
    expect(Object.keys(byName).sort()).toEqual(['alpha', 'beta', 'gamma']);
    expect(byName.alpha).toMatchObject({ name: 'alpha', complete: true, stamp: a2 });
    expect(byName.alpha!.marker).toStrictEqual({
      name: 'alpha',
      version: '1.1.0',
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      stamp: a2,
      installedAt: expect.any(String),
      execution: executionName('ws1', NAME, a2),
    });
    expect(byName.beta).toEqual({ name: 'beta', complete: false, stamp: '' });
    expect(byName.gamma).toEqual({ name: 'gamma', complete: false, stamp: '' });
    expect(listed.previous).toEqual([{ name: 'alpha', stamp: a2, pinned: true }]);
    // The snapshot a2 took is a1's live copy.
    expect(ino(previousOf(a2, 'alpha'))).toBe(alpha1);
    expect(opRecord(a1, 'alpha')).toEqual({ staged: alpha1 });
  });

  it('what the agent writes into .complete changes nothing listed; complete needs a regular .complete and a marker record', async () => {
    const s = await install('1.0.0');
    const recorded = (await steps.list()).plugins;
    expect(recorded).toEqual([{ name: NAME, complete: true, stamp: s, marker: expect.objectContaining({ version: '1.0.0', stamp: s }) }]);
    // Garbage, or a forged marker, in the agent's .complete: the record is what is reported.
    await writeFile(join(live(), '.complete'), '{not json');
    expect((await steps.list()).plugins).toEqual(recorded);
    await writeFile(join(live(), '.complete'), JSON.stringify({ name: NAME, version: '6.6.6', stamp: newStamp() }));
    expect((await steps.list()).plugins).toEqual(recorded);
    // .complete gone, or not a regular file: not complete (the marker is still what was installed).
    await rm(join(live(), '.complete'));
    expect((await steps.list()).plugins).toEqual([{ ...recorded[0]!, complete: false }]);
    await mkdir(join(live(), '.complete'));
    expect((await steps.list()).plugins).toEqual([{ ...recorded[0]!, complete: false }]);
    await rm(join(live(), '.complete'), { recursive: true });
    await symlink('/etc/hostname', join(live(), '.complete'));
    expect((await steps.list()).plugins).toEqual([{ ...recorded[0]!, complete: false }]);
    await rm(join(live(), '.complete'));
    await writeFile(join(live(), '.complete'), '{}');
    expect((await steps.list()).plugins).toEqual(recorded);
    // An unreadable marker record: listed as incomplete, without a marker.
    await writeFile(join(root, '.meta', `${NAME}@${ino(live())}`), 'stamp=garbage\nversion=1.0 x\n');
    expect((await steps.list()).plugins).toEqual([{ name: NAME, complete: false, stamp: '' }]);
  });
});

// --- sweep --------------------------------------------------------------------------------------

describe('sweep', () => {
  const OLD = (d: string, sfx = 'aaaa') => `202001${d}T000000Z-${sfx}`;
  const NEW = (sfx = 'aaaa') => `20300101T000000Z-${sfx}`;
  const CUTOFF = '20250101T000000Z';

  async function entry(sub: string, name: string, file = 'content'): Promise<void> {
    await mkdir(join(root, sub, name), { recursive: true });
    await writeFile(join(root, sub, name, 'data.txt'), 'x'.repeat(5000));
    if (file !== 'content') await writeFile(join(root, sub, name, file), '');
  }

  async function meta(name: string, content = ''): Promise<void> {
    await writeFile(join(root, '.meta', name), content);
  }

  async function world(): Promise<void> {
    for (const d of ['.previous', '.staging', '.failed', '.locks', '.meta']) await mkdir(join(root, d), { recursive: true, mode: 0o700 });
    // Live copies: never touched.
    await entry('', 'p');
    await entry('', 'q');
    // p: four old snapshots (newest two kept), one of the others pinned by .meta/<entry>.pin, one
    // with a legacy .pinned inside (no pin); one new one.
    await entry('.previous', `p.${OLD('01')}`);
    await entry('.previous', `p.${OLD('02')}`);
    await meta(`p.${OLD('02')}.pin`);
    await entry('.previous', `p.${OLD('03')}`, '.pinned');
    await entry('.previous', `p.${OLD('04')}`);
    await entry('.previous', `p.${NEW()}`);
    // q: a single old snapshot, the newest, so kept.
    await entry('.previous', `q.${OLD('01')}`);
    // Staging and failures: q's lease is active (kept), r's has expired (swept).
    await entry('.staging', `q.${OLD('05')}`);
    await entry('.staging', `r.${OLD('05')}`);
    await entry('.staging', `r.${OLD('06')}.partial`);
    await entry('.staging', `r.${OLD('06')}.work`);
    await entry('.staging', `r.${NEW()}`);
    await entry('.failed', `q.${OLD('07')}`);
    await entry('.failed', `r.${OLD('07')}`);
    await entry('.failed', `r.${NEW()}`);
    // What a killed mark or stage leaves: marker temp files and stage locks, judged as staging.
    await writeFile(join(root, '.staging', `.complete.q.${OLD('08')}.tmp`), '{}'.repeat(100));
    await writeFile(join(root, '.staging', `.complete.r.${OLD('08')}.tmp`), '{}'.repeat(100));
    await writeFile(join(root, '.staging', `.complete.r.${NEW()}.tmp`), '{}'.repeat(100));
    await writeFile(join(root, '.locks', `.stage.q.${OLD('08')}`), '');
    await writeFile(join(root, '.locks', `.stage.r.${OLD('08')}`), '');
    await writeFile(join(root, '.locks', `.stage.r.${NEW()}`), '');
    await writeLock({ stamp: NEW('qqqq'), owner: 'x', pid: 0, host: 'h', expires: nowSeconds() + 600 }, 'q');
    await writeLock({ stamp: OLD('09'), owner: 'x', pid: 0, host: 'h', expires: nowSeconds() - 600 }, 'r');
    // Operation records: of entries that stay, of entries swept, of a leased plugin, orphans old and
    // new; marker records and the exchange method are never the sweep's.
    for (const e of [`p.${OLD('04')}`, `p.${OLD('03')}`, `r.${OLD('05')}`, `q.${OLD('11')}`, `r.${OLD('11')}`, `r.${NEW('rrrr')}`]) await meta(e, 'staged=1-2\n');
    await meta('p@2049-12', `stamp=${OLD('04')}\n`);
    await meta('exchange', 'method=two-renames\n');
    // Not ours to judge: badly named entries stay.
    await entry('.previous', 'not-a-snapshot');
    await entry('.staging', 'junk');
  }

  const rules = (dryRun: boolean) => ({
    previousBefore: CUTOFF,
    keepNewest: 2,
    stagingBefore: CUTOFF,
    failedBefore: CUTOFF,
    nowEpochSeconds: nowSeconds(),
    dryRun,
  });

  const EXPECTED = [
    `.previous/p.${OLD('03')}`,
    `.previous/p.${OLD('01')}`,
    `.staging/r.${OLD('05')}`,
    `.staging/r.${OLD('06')}.partial`,
    `.staging/r.${OLD('06')}.work`,
    `.staging/.complete.r.${OLD('08')}.tmp`,
    `.failed/r.${OLD('07')}`,
    '.locks/r',
    `.locks/.stage.r.${OLD('08')}`,
  ].sort();
  /** Removed on a real sweep, unreported: old operation records with nothing of theirs left. */
  const RECORDS = [`.meta/p.${OLD('03')}`, `.meta/r.${OLD('05')}`, `.meta/r.${OLD('11')}`].sort();

  function allEntries(): string[] {
    return ['', '.previous', '.staging', '.failed', '.locks', '.meta']
      .flatMap((sub) => entries(sub).map((e) => (sub ? `${sub}/${e}` : e)))
      .filter((e) => e !== '.locks/.mutex')
      .sort();
  }

  it('deletes what the rules say and nothing else; dry-run reports the same and deletes nothing', async () => {
    await world();
    const before = allEntries();
    const dry = await steps.sweep(rules(true));
    expect(dry.dryRun).toBe(true);
    expect(dry.deleted.map((d) => d.path).sort()).toEqual(EXPECTED);
    expect(allEntries()).toEqual(before);

    const real = await steps.sweep(rules(false));
    expect(real.dryRun).toBe(false);
    expect(real.deleted.map((d) => d.path).sort()).toEqual(EXPECTED);
    expect(real.counts).toEqual({ previous: 2, staging: 4, failed: 1, locks: 2 });
    expect(real.deleted.filter((d) => d.kind !== 'locks').every((d) => d.bytes > 0)).toBe(true);
    expect(real.bytes).toBe(real.deleted.reduce((n, d) => n + d.bytes, 0));
    expect(real.bytes).toBeGreaterThan(0);
    expect(dry.bytes).toBe(real.bytes);
    expect(allEntries()).toEqual(before.filter((e) => !EXPECTED.includes(e) && !RECORDS.includes(e)));
    expect(tree(live('p'))).toEqual({ 'data.txt': 'x'.repeat(5000) });
    expect(tree(live('q'))).toEqual({ 'data.txt': 'x'.repeat(5000) });

    // Nothing left to do.
    const again = await steps.sweep(rules(false));
    expect(again.deleted).toEqual([]);
    expect(again.bytes).toBe(0);
  });

  it('keepNewest 0 still keeps pinned snapshots (a legacy .pinned inside is no pin), and an absent root is an empty report', async () => {
    await world();
    const r = await steps.sweep({ ...rules(false), keepNewest: 0 });
    expect(r.deleted.filter((d) => d.kind === 'previous').map((d) => d.path).sort()).toEqual(
      [`.previous/p.${OLD('01')}`, `.previous/p.${OLD('03')}`, `.previous/p.${OLD('04')}`, `.previous/q.${OLD('01')}`].sort(),
    );
    expect(existsSync(previousOf(OLD('02'), 'p'))).toBe(true);
    expect(existsSync(previousOf(NEW(), 'p'))).toBe(true);
    // The sweep never removes a pin.
    expect(existsSync(join(root, '.meta', `p.${OLD('02')}.pin`))).toBe(true);

    const empty = new HostSteps({ host, root: join(base, 'nowhere'), ownerSpec: '-' });
    expect(await empty.sweep(rules(false))).toEqual({ dryRun: false, deleted: [], counts: { previous: 0, staging: 0, failed: 0, locks: 0 }, bytes: 0 });
    expect(existsSync(join(base, 'nowhere'))).toBe(false);
  });

  it('a planted name with a space does not count against keepNewest', async () => {
    for (const d of ['01', '02', '03']) await entry('.previous', `p.${OLD(d)}`);
    // Split on the space, it would read as a newer snapshot p.OLD(09) that does not exist.
    await entry('.previous', `p.${OLD('09')} x`);
    const r = await steps.sweep(rules(false));
    expect(r.deleted.map((d) => d.path)).toEqual([`.previous/p.${OLD('01')}`]);
    expect(entries('.previous')).toEqual([`p.${OLD('02')}`, `p.${OLD('03')}`, `p.${OLD('09')} x`]);
  });

  it('refuses a malformed cutoff before touching the host', async () => {
    await expectCode(steps.sweep({ ...rules(false), previousBefore: '2025-01-01' }), 'InvalidInput');
  });
});

// --- hostile arguments ----------------------------------------------------------------------------

describe('hostile arguments straight to the transport', () => {
  const pwned = join(tmpdir(), `pwned-${randomBytes(6).toString('hex')}`);
  const touch = `touch ${pwned}`;
  const STAMP = '20260101T000000Z-abcd';
  const SHA = 'a'.repeat(64);
  const TIME = '2026-01-01T00:00:00Z';

  function cases(rootDir: string): [string, HostOp, string[]][] {
    const out: [string, HostOp, string[]][] = [];
    for (const r of ['relative/path', '/', '', '/tmp/../etc', '/tmp/x/..', '/tmp/./x', `/tmp/x;${touch}`, `/tmp/$(${touch})`, '/tmp/a\nb', '/tmp/`' + touch + '`']) {
      out.push([`root ${JSON.stringify(r)}`, 'list', [r]]);
      out.push([`root ${JSON.stringify(r)} (lock)`, 'lock', [r, NAME, STAMP, 'o', '1', '60']]);
    }
    for (const n of ['../x', `a;${touch}`, `$(${touch})`, 'a\nb', '`' + touch + '`', '', '.', '..', 'A', '-a', '.a', 'a/b', 'a b', 'x'.repeat(129)]) {
      out.push([`name ${JSON.stringify(n)}`, 'lock', [rootDir, n, STAMP, 'o', '1', '60']]);
      out.push([`name ${JSON.stringify(n)} (rollback)`, 'rollback', [rootDir, n, STAMP]]);
    }
    for (const s of [`$(${touch})`, '20260101T000000Z-ab;d', '20260101T000000Z-ABCD', '20260101T000000Z-abcd\n']) {
      out.push([`stamp ${JSON.stringify(s)}`, 'snapshot', [rootDir, NAME, s]]);
    }
    out.push(['lock owner with a space', 'lock', [rootDir, NAME, STAMP, 'a b', '1', '60']]);
    out.push(['lock owner substitution', 'lock', [rootDir, NAME, STAMP, `$(${touch})`, '1', '60']]);
    out.push(['lock pid', 'lock', [rootDir, NAME, STAMP, 'o', `1;${touch}`, '60']]);
    out.push(['lock negative lease', 'lock', [rootDir, NAME, STAMP, 'o', '1', '-1']]);
    out.push(['stage sha', 'stage', [rootDir, NAME, STAMP, `$(${touch})`, '-', '0']]);
    out.push(['stage owner spec', 'stage', [rootDir, NAME, STAMP, SHA, `0:0;${touch}`, '0']]);
    out.push(['stage owner name', 'stage', [rootDir, NAME, STAMP, SHA, 'root', '0']]);
    out.push(['stage strip 2', 'stage', [rootDir, NAME, STAMP, SHA, '-', '2']]);
    out.push(['stage file url', 'stage', [rootDir, NAME, STAMP, SHA, '-', '0', 'file:///etc/passwd']]);
    out.push(['stage url with a space', 'stage', [rootDir, NAME, STAMP, SHA, '-', '0', `http://x/ ${touch}`]]);
    out.push(['mark version', 'mark', [rootDir, NAME, STAMP, `1.0;${touch}`, SHA, 'exec', TIME, '-']]);
    out.push(['mark execution', 'mark', [rootDir, NAME, STAMP, '1.0.0', SHA, `$(${touch})`, TIME, '-']]);
    out.push(['mark time', 'mark', [rootDir, NAME, STAMP, '1.0.0', SHA, 'exec', 'yesterday', '-']]);
    out.push(['mark json in version', 'mark', [rootDir, NAME, STAMP, '1","x":"y', SHA, 'exec', TIME, '-']]);
    out.push(['verify version', 'verify', [rootDir, NAME, STAMP, `1.0;${touch}`, '1000:1000', '30']]);
    out.push(['verify owner spec', 'verify', [rootDir, NAME, STAMP, '1.0.0', `1000:1000;${touch}`, '30']]);
    out.push(['verify timeout 0', 'verify', [rootDir, NAME, STAMP, '1.0.0', '1000:1000', '0']]);
    out.push(['verify timeout 301', 'verify', [rootDir, NAME, STAMP, '1.0.0', '1000:1000', '301']]);
    out.push(['verify timeout substitution', 'verify', [rootDir, NAME, STAMP, '1.0.0', '1000:1000', `30;${touch}`]]);
    out.push(['verify command with a control character', 'verify', [rootDir, NAME, STAMP, '1.0.0', '1000:1000', '30', `echo;${touch}`]]);
    out.push(['verify command over 2048 bytes', 'verify', [rootDir, NAME, STAMP, '1.0.0', '1000:1000', '30', `${touch};${'#'.repeat(2048)}`]]);
    if (process.getuid?.() === 0) {
      // Running as root, the check must run as somebody else: never as root, never "as is".
      out.push(['verify as root', 'verify', [rootDir, NAME, STAMP, '1.0.0', '0:0', '30', touch]]);
      out.push(['verify without an owner, as root', 'verify', [rootDir, NAME, STAMP, '1.0.0', '-', '30', touch]]);
      out.push(['verify as group root', 'verify', [rootDir, NAME, STAMP, '1.0.0', '1000:0', '30', touch]]);
      out.push(['verify as root, spelt 00', 'verify', [rootDir, NAME, STAMP, '1.0.0', '00:1000', '30', touch]]);
    }
    out.push(['sweep cutoff', 'sweep', [rootDir, `$(${touch})`, '1', '20250101T000000Z', '20250101T000000Z', '1', '0']]);
    out.push(['sweep keep', 'sweep', [rootDir, '20250101T000000Z', '-1', '20250101T000000Z', '20250101T000000Z', '1', '0']]);
    out.push(['sweep dry flag', 'sweep', [rootDir, '20250101T000000Z', '1', '20250101T000000Z', '20250101T000000Z', '1', 'yes']]);
    out.push(['unknown operation', `$(${touch})` as HostOp, [rootDir]]);
    out.push(['unknown operation with quotes', 'x"y\nz' as HostOp, [rootDir]]);
    return out;
  }

  it('every one exits 10 with {"ok":false,"code":"InvalidInput"}, runs nothing and creates nothing', async () => {
    await mkdir(root);
    const all = cases(root);
    expect(all.length).toBeGreaterThan(50);
    const results = [];
    // A few at a time: each is one short sh process.
    for (let i = 0; i < all.length; i += 8) {
      results.push(
        ...(await Promise.all(
          all.slice(i, i + 8).map(async ([label, op, args]) => {
            const raw = await host.run({ op, args });
            const lines = raw.stdout.trim().split('\n');
            return { label, exit: raw.exitCode, lines: lines.length, last: JSON.parse(lines.at(-1)!) as Record<string, unknown> };
          }),
        )),
      );
    }
    for (const r of results) {
      expect(r, r.label).toMatchObject({ exit: 10, lines: 1, last: { ok: false, code: 'InvalidInput' } });
    }
    expect(existsSync(pwned)).toBe(false);
    expect(await readdir(root)).toEqual([]);
  });

  it('values are checked by HostSteps before the host is reached', async () => {
    await expectCode(steps.lock(ref(STAMP, '../x'), 'o', 1, 60), 'InvalidInput');
    await expectCode(steps.lock(ref('not-a-stamp'), 'o', 1, 60), 'InvalidInput');
    await expectCode(steps.lock(ref(STAMP), 'a b', 1, 60), 'InvalidInput');
    await expectCode(steps.mark(ref(STAMP), { ...marker(STAMP), version: '1.0 x' }), 'InvalidInput');
    await expectCode(steps.verify(ref(STAMP), '1.0 x', null), 'InvalidInput');
    await expectCode(steps.verify(ref(STAMP), '1.0.0', { command: 'true', timeoutSeconds: 301 }), 'InvalidInput');
    await expectCode(steps.verify(ref(STAMP), '1.0.0', { command: 'a\u0007b', timeoutSeconds: 5 }), 'InvalidInput');
    await expectCode(steps.verify(ref(STAMP), '1.0.0', { command: 'x'.repeat(2049), timeoutSeconds: 5 }), 'InvalidInput');
    expect(existsSync(root)).toBe(false);
  });
});

// --- unsafe layouts and I/O failures ------------------------------------------------------------------

describe('unsafe layouts and I/O failures', () => {
  it('lock creates the root 0755 and the management directories 0700, owned by the running user', async () => {
    await steps.lock(ref(newStamp()), 'o', process.pid, 60);
    expect(statSync(root).mode & 0o777).toBe(0o755);
    expect(entries('').sort()).toEqual(['.failed', '.locks', '.meta', '.previous', '.staging']);
    for (const d of ['.staging', '.previous', '.failed', '.locks', '.meta']) {
      const st = statSync(join(root, d));
      expect({ d, mode: st.mode & 0o777, uid: st.uid }).toEqual({ d, mode: 0o700, uid: process.getuid!() });
    }
  });

  it('lock takes the write bits of group and others off the root and the management directories', async () => {
    await steps.lock(ref(newStamp()), 'o', process.pid, 60);
    await chmod(root, 0o777);
    await chmod(join(root, '.staging'), 0o777);
    await chmod(join(root, '.meta'), 0o722);
    expect((await steps.lock(ref(newStamp(), 'other'), 'o', process.pid, 60)).result).toBe('acquired');
    expect(statSync(root).mode & 0o777).toBe(0o755);
    expect(statSync(join(root, '.staging')).mode & 0o777).toBe(0o755);
    expect(statSync(join(root, '.meta')).mode & 0o777).toBe(0o700);
  });

  it('a plugins root that is a regular file: UnsafeHostLayout (exit 26) naming it, with a hint; the file untouched', async () => {
    await writeFile(root, 'not a directory');
    const error = await expectCode(steps.lock(ref(newStamp()), 'o', process.pid, 60), 'UnsafeHostLayout');
    expect(error.message).toContain(root);
    expect(error.hint).not.toBe('');
    expect(readFileSync(root, 'utf8')).toBe('not a directory');
    const raw = await host.run({ op: 'lock', args: [root, NAME, newStamp(), 'o', '1', '60'] });
    expect(raw.exitCode).toBe(26);
    expect(JSON.parse(raw.stdout.trim().split('\n').at(-1)!)).toMatchObject({ ok: false, op: 'lock', code: 'UnsafeHostLayout' });
  });

  it('a plugins root or a management directory that is a symbolic link: UnsafeHostLayout, nothing created behind the link', async () => {
    const elsewhere = join(base, 'elsewhere');
    await mkdir(elsewhere);
    await symlink(elsewhere, root);
    await expectCode(steps.lock(ref(newStamp()), 'o', process.pid, 60), 'UnsafeHostLayout');
    await expectCode(steps.sweep({ previousBefore: '20250101T000000Z', keepNewest: 1, stagingBefore: '20250101T000000Z', failedBefore: '20250101T000000Z', nowEpochSeconds: nowSeconds(), dryRun: false }), 'UnsafeHostLayout');
    expect(await readdir(elsewhere)).toEqual([]);
    await rm(root);

    for (const d of ['.locks', '.meta', '.staging']) {
      await rm(root, { recursive: true, force: true });
      await mkdir(root);
      await symlink(elsewhere, join(root, d));
      const error = await expectCode(steps.lock(ref(newStamp()), 'o', process.pid, 60), 'UnsafeHostLayout');
      expect(error.message).toContain(join(root, d));
      expect(await readdir(elsewhere)).toEqual([]);
    }
  });

  it('a management directory owned by another user: UnsafeHostLayout, its content untouched', async () => {
    if (process.getuid!() !== 0) return;
    await steps.lock(ref(newStamp()), 'o', process.pid, 60);
    await chown(join(root, '.staging'), 1000, 1000);
    await writeFile(join(root, '.staging', 'planted'), 'x');
    const error = await expectCode(steps.lock(ref(newStamp(), 'other'), 'o', process.pid, 60), 'UnsafeHostLayout');
    expect(error.message).toContain('.staging');
    expect(await readdir(join(root, '.staging'))).toEqual(['planted']);
  });
});
