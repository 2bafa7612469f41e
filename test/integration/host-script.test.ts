/**
 * The host-step script itself (lambdas/core/host/plugin-host.sh), run for real with `sh` through
 * HostSteps + LocalHost against a throw-away plugins root: locks and fencing, staging, the swap,
 * the marker, the rollback table, restore, uninstall, list, sweep, and hostile arguments handed
 * straight to the transport (bypassing the TypeScript validation).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
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

function stage(plugin: PluginRef, tb: Tarball, strip: 0 | 1 = 0, sha = tb.sha, on = steps) {
  return on.stage(plugin, sha, strip, { stream: Readable.from([tb.buf]) });
}

function marker(stamp: string, version = '1.0.0', sha = 'a'.repeat(64)) {
  return { version, sha256: sha, execution: executionName('ws1', NAME, stamp), installedAt: new Date().toISOString() };
}

/** A whole install through the host steps, as the workflow runs them. */
async function install(version: string, stamp = newStamp(), name = NAME): Promise<string> {
  const plugin = ref(stamp, name);
  const tb = await tarball(version);
  expect((await steps.lock(plugin, 'test', process.pid, 600)).result).toBe('acquired');
  expect((await stage(plugin, tb)).result).toBe('staged');
  await steps.snapshot(plugin);
  expect(await steps.swap(plugin)).toBe('swapped');
  expect(await steps.mark(plugin, marker(stamp, version, tb.sha))).toBe('marked');
  expect(await steps.unlock(plugin)).toBe('released');
  return stamp;
}

const live = (name = NAME) => join(root, name);

/** The content files of a directory (relative path → text), the installer's metadata excluded. */
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
  if (!all) for (const k of ['.complete', '.install-stamp', '.restored-from', '.pinned']) delete out[k];
  return out;
}

function entries(sub: string): string[] {
  try {
    return readdirSync(join(root, sub)).sort();
  } catch {
    return [];
  }
}

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
  it('extracts into .staging/<name>.<stamp> with .install-stamp, then reports already-staged', async () => {
    const s = newStamp();
    const tb = await tarball('1.0.0');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    const r = await stage(ref(s), tb);
    const dir = join(root, '.staging', `${NAME}.${s}`);
    expect(r.result).toBe('staged');
    expect(tree(dir)).toEqual(versionFiles('1.0.0'));
    expect(readFileSync(join(dir, '.install-stamp'), 'utf8')).toBe(`${s}\n`);
    expect(r.files).toBe(Object.keys(tree(dir, true)!).length);
    expect(entries('.staging')).toEqual([`${NAME}.${s}`]);
    expect(statSync(join(dir, 'skills/greet/SKILL.md')).mode & 0o777).toBe(0o644);
    expect(statSync(join(dir, 'skills')).mode & 0o777).toBe(0o755);

    expect((await stage(ref(s), tb)).result).toBe('already-staged');
    expect(tree(dir)).toEqual(versionFiles('1.0.0'));
  });

  it('hands every file to ownerSpec uid:gid', async () => {
    const owned = new HostSteps({ host, root, ownerSpec: '1000:1000' });
    const s = newStamp();
    await owned.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), await tarball('1.0.0'), 0, undefined, owned);
    const dir = join(root, '.staging', `${NAME}.${s}`);
    const paths = [dir, join(dir, '.install-stamp'), join(dir, 'plugin.yaml'), join(dir, 'skills'), join(dir, 'skills/greet/SKILL.md')];
    for (const p of paths) expect({ p, uid: statSync(p).uid, gid: statSync(p).gid }).toEqual({ p, uid: 1000, gid: 1000 });
  });

  it('refuses bytes whose sha256 differs: TransferCorrupted, no staging, .partial or .work left', async () => {
    const s = newStamp();
    const tb = await tarball('1.0.0');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    const error = await expectCode(stage(ref(s), tb, 0, 'f'.repeat(64)), 'TransferCorrupted');
    expect(error.message).toContain(tb.sha);
    expect(entries('.staging')).toEqual([]);
  });

  it('refuses a truncated gzip stream whose sha256 matches: ExtractFailed, nothing left', async () => {
    const s = newStamp();
    const full = await tarball('1.0.0');
    const cut = full.buf.subarray(0, Math.floor(full.buf.length / 2));
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await expectCode(stage(ref(s), { buf: cut, sha: sha256(cut) }), 'ExtractFailed');
    expect(entries('.staging')).toEqual([]);
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

  it('defence in depth: a link in the tarball is refused, setuid bits are cleared', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    const linked = await packTarGz([
      { name: 'plugin.yaml', body: 'name: demo\nversion: 1.0.0\n' },
      { name: 'passwd', type: 'symlink', linkname: '/etc/passwd' },
    ]);
    const error = await expectCode(stage(ref(s), { buf: linked, sha: sha256(linked) }), 'ExtractFailed');
    expect(error.message).toContain('passwd');
    expect(entries('.staging')).toEqual([]);

    const setuid = await packTarGz([
      { name: 'plugin.yaml', body: 'name: demo\nversion: 1.0.0\n' },
      { name: 'run', mode: 0o6755, body: '#!/bin/sh\n' },
    ]);
    expect((await stage(ref(s), { buf: setuid, sha: sha256(setuid) })).result).toBe('staged');
    expect(statSync(join(root, '.staging', `${NAME}.${s}`, 'run')).mode & 0o7000).toBe(0);
  });

  it('is a no-op once the stamp is live (a retry after the swap)', async () => {
    const s = newStamp();
    const tb = await tarball('1.0.0');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), tb);
    await steps.snapshot(ref(s));
    await steps.swap(ref(s));
    expect((await stage(ref(s), tb)).result).toBe('already-live');
    expect(entries('.staging')).toEqual([]);
  });
});

// --- snapshot and swap ----------------------------------------------------------------------------

describe('snapshot and swap', () => {
  it('snapshot: none without live, moved with live, already on repeat', async () => {
    const fresh = newStamp();
    await steps.lock(ref(fresh), 'exec-1', process.pid, 600);
    expect(await steps.snapshot(ref(fresh))).toBe('none');
    await steps.unlock(ref(fresh));

    const v1 = await install('1.0.0');
    const s = newStamp();
    await steps.lock(ref(s), 'exec-2', process.pid, 600);
    expect(await steps.snapshot(ref(s))).toBe('moved');
    expect(existsSync(live())).toBe(false);
    const snap = join(root, '.previous', `${NAME}.${s}`);
    expect(tree(snap)).toEqual(versionFiles('1.0.0'));
    expect(readFileSync(join(snap, '.install-stamp'), 'utf8').trim()).toBe(v1);
    expect(await steps.snapshot(ref(s))).toBe('already');
    expect(entries('.previous')).toEqual([`${NAME}.${s}`]);
  });

  it('swap: staged → live, already on repeat', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), await tarball('2.0.0'));
    await steps.snapshot(ref(s));
    expect(await steps.swap(ref(s))).toBe('swapped');
    expect(tree(live())).toEqual(versionFiles('2.0.0'));
    expect(readFileSync(join(live(), '.install-stamp'), 'utf8').trim()).toBe(s);
    expect(entries('.staging')).toEqual([]);
    expect(await steps.swap(ref(s))).toBe('already');
    expect(await steps.snapshot(ref(s))).toBe('already-swapped');
  });

  it('swap without staging: StagingMissing', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await expectCode(steps.swap(ref(s)), 'StagingMissing');
  });

  it('swap onto a live copy that is not ours: LivePresent, both untouched', async () => {
    await install('1.0.0');
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), await tarball('2.0.0'));
    await expectCode(steps.swap(ref(s)), 'LivePresent');
    expect(tree(live())).toEqual(versionFiles('1.0.0'));
    expect(tree(join(root, '.staging', `${NAME}.${s}`))).toEqual(versionFiles('2.0.0'));
  });
});

// --- mark ---------------------------------------------------------------------------------------

describe('mark', () => {
  it('writes .complete with exactly the marker fields, then "already"; no temp file anywhere', async () => {
    const s = newStamp();
    const tb = await tarball('1.2.3');
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), tb);
    await steps.snapshot(ref(s));
    await steps.swap(ref(s));
    const m = marker(s, '1.2.3', tb.sha);
    expect(await steps.mark(ref(s), m)).toBe('marked');
    const written = JSON.parse(readFileSync(join(live(), '.complete'), 'utf8')) as Record<string, unknown>;
    expect(written).toStrictEqual({ name: NAME, version: '1.2.3', sha256: tb.sha, stamp: s, installedAt: m.installedAt, execution: m.execution });
    expect(readdirSync(live()).sort()).toEqual(['.complete', '.install-stamp', 'config', 'plugin.yaml', 'skills']);
    expect(entries('.staging')).toEqual([]);

    const before = readFileSync(join(live(), '.complete'), 'utf8');
    expect(await steps.mark(ref(s), { ...m, installedAt: new Date(0).toISOString() })).toBe('already');
    expect(readFileSync(join(live(), '.complete'), 'utf8')).toBe(before);
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
});

// --- rollback -----------------------------------------------------------------------------------

describe('rollback', () => {
  async function upgradeUntil(step: 'stage' | 'snapshot' | 'swap'): Promise<string> {
    await install('1.0.0');
    const s = newStamp();
    await steps.lock(ref(s), 'exec-2', process.pid, 600);
    await stage(ref(s), await tarball('2.0.0'));
    if (step === 'stage') return s;
    expect(await steps.snapshot(ref(s))).toBe('moved');
    if (step === 'snapshot') return s;
    expect(await steps.swap(ref(s))).toBe('swapped');
    return s;
  }

  it('after stage only: staging removed, live untouched, lock released', async () => {
    const s = await upgradeUntil('stage');
    const before = tree(live(), true);
    expect(await steps.rollback(ref(s))).toEqual({ live: 'untouched', actions: ['removed-staging'], lock: 'released' });
    expect(tree(live(), true)).toEqual(before);
    expect(entries('.staging')).toEqual([]);
    expect(lockFile()).toBeNull();
  });

  it('after snapshot: the snapshot goes back to live', async () => {
    const s = await upgradeUntil('snapshot');
    expect(await steps.rollback(ref(s))).toEqual({ live: 'restored', actions: ['removed-staging', 'restored-previous'], lock: 'released' });
    expect(tree(live())).toEqual(versionFiles('1.0.0'));
    expect(existsSync(join(live(), '.complete'))).toBe(true);
    expect(entries('.previous')).toEqual([]);
    expect(entries('.staging')).toEqual([]);
  });

  it('after swap: ours goes to .failed/<name>.<stamp>, the previous copy comes back', async () => {
    const s = await upgradeUntil('swap');
    expect(await steps.rollback(ref(s))).toEqual({ live: 'restored', actions: ['moved-live-to-failed', 'restored-previous'], lock: 'released' });
    expect(tree(live())).toEqual(versionFiles('1.0.0'));
    expect(entries('.failed')).toEqual([`${NAME}.${s}`]);
    expect(tree(join(root, '.failed', `${NAME}.${s}`))).toEqual(versionFiles('2.0.0'));
    expect(entries('.previous')).toEqual([]);
    expect(lockFile()).toBeNull();
  });

  it('fresh install after swap: live is absent afterwards', async () => {
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    await stage(ref(s), await tarball('1.0.0'));
    expect(await steps.snapshot(ref(s))).toBe('none');
    await steps.swap(ref(s));
    expect(await steps.rollback(ref(s))).toEqual({ live: 'absent', actions: ['moved-live-to-failed'], lock: 'released' });
    expect(existsSync(live())).toBe(false);
    expect(entries('.failed')).toEqual([`${NAME}.${s}`]);
  });

  it('when another stamp holds the lock: cleans its own staging only, live and lock untouched', async () => {
    await install('1.0.0');
    const s1 = newStamp();
    await steps.lock(ref(s1), 'exec-1', await deadPid(), 600);
    await stage(ref(s1), await tarball('2.0.0'));
    const s2 = newStamp();
    expect((await steps.lock(ref(s2), 'exec-2', process.pid, 600)).result).toBe('took-over-dead-owner');
    const before = tree(live(), true);
    expect(await steps.rollback(ref(s1))).toEqual({ live: 'untouched', actions: ['removed-staging'], lock: 'held-by-other' });
    expect(tree(live(), true)).toEqual(before);
    expect(entries('.staging')).toEqual([]);
    expect(lockFile()?.stamp).toBe(s2);
  });

  it('is idempotent: a second run changes nothing', async () => {
    const s = await upgradeUntil('swap');
    await steps.rollback(ref(s));
    const snapshot = () => ({ live: tree(live(), true), failed: entries('.failed'), previous: entries('.previous'), staging: entries('.staging'), lock: lockFile() });
    const after = snapshot();
    expect(await steps.rollback(ref(s))).toEqual({ live: 'untouched', actions: [], lock: 'free' });
    expect(snapshot()).toEqual(after);
  });
});

// --- restore ------------------------------------------------------------------------------------

describe('restore', () => {
  const T1 = stampAt('20260101T000000Z', 'aaaa');
  const T2 = stampAt('20260102T000000Z', 'aaaa');
  const T3 = stampAt('20260103T000000Z', 'aaaa');

  /** v1 (T1), v2 (T2, displacing v1), v3 (T3, displacing v2): snapshots .previous/demo.T2 = v1, .T3 = v2. */
  async function threeVersions(): Promise<void> {
    await install('1.0.0', T1);
    await install('2.0.0', T2);
    await install('3.0.0', T3);
    expect(entries('.previous')).toEqual([`${NAME}.${T2}`, `${NAME}.${T3}`]);
  }

  it('NothingToRestore without a snapshot', async () => {
    await install('1.0.0');
    const s = newStamp();
    await steps.lock(ref(s), 'exec-1', process.pid, 600);
    const error = await expectCode(steps.restore(ref(s)), 'NothingToRestore');
    expect(error.hint).not.toBe('');
  });

  it('stages the newest snapshot; snapshot + swap finish the job', async () => {
    await threeVersions();
    // Neither a file nor a badly named directory counts as a snapshot.
    await writeFile(join(root, '.previous', `${NAME}.20990101T000000Z-zzzz`), 'not a directory');
    await mkdir(join(root, '.previous', `${NAME}.not-a-stamp`));
    const r = newStamp();
    await steps.lock(ref(r), 'exec-1', process.pid, 600);
    expect(await steps.restore(ref(r))).toEqual({ result: 'staged', from: T3 });
    expect(await steps.restore(ref(r))).toEqual({ result: 'already', from: T3 });
    expect(await steps.snapshot(ref(r))).toBe('moved');
    expect(await steps.swap(ref(r))).toBe('swapped');
    expect(tree(live())).toEqual(versionFiles('2.0.0'));
    expect(readFileSync(join(live(), '.restored-from'), 'utf8').trim()).toBe(T3);
    expect(tree(join(root, '.previous', `${NAME}.${r}`))).toEqual(versionFiles('3.0.0'));
    expect(await steps.restore(ref(r))).toEqual({ result: 'already-live' });
  });

  it('rolled back before the swap, the snapshot returns to .previous/<name>.<T>', async () => {
    await threeVersions();
    const r = newStamp();
    await steps.lock(ref(r), 'exec-1', process.pid, 600);
    await steps.restore(ref(r));
    expect(existsSync(join(root, '.previous', `${NAME}.${T3}`))).toBe(false);
    expect(await steps.rollback(ref(r))).toEqual({ live: 'untouched', actions: ['returned-staged-snapshot'], lock: 'released' });
    expect(entries('.previous')).toEqual([`${NAME}.${T2}`, `${NAME}.${T3}`]);
    expect(tree(join(root, '.previous', `${NAME}.${T3}`))).toEqual(versionFiles('2.0.0'));
    expect(existsSync(join(root, '.previous', `${NAME}.${T3}`, '.restored-from'))).toBe(false);
    expect(tree(live())).toEqual(versionFiles('3.0.0'));
  });

  it('rolled back after the swap, the snapshot returns and the displaced live copy comes back', async () => {
    await threeVersions();
    const r = newStamp();
    await steps.lock(ref(r), 'exec-1', process.pid, 600);
    await steps.restore(ref(r));
    await steps.snapshot(ref(r));
    await steps.swap(ref(r));
    expect(await steps.rollback(ref(r))).toEqual({ live: 'restored', actions: ['returned-live-snapshot', 'restored-previous'], lock: 'released' });
    expect(tree(live())).toEqual(versionFiles('3.0.0'));
    expect(entries('.previous')).toEqual([`${NAME}.${T2}`, `${NAME}.${T3}`]);
    expect(tree(join(root, '.previous', `${NAME}.${T3}`))).toEqual(versionFiles('2.0.0'));
    expect(entries('.failed')).toEqual([]);
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
    const s = newStamp();
    await steps.lock(ref(s), 'exec-2', process.pid, 600);
    expect(await steps.uninstall(ref(s))).toBe('moved');
    expect(existsSync(live())).toBe(false);
    expect(tree(join(root, '.previous', `${NAME}.${s}`))).toEqual(versionFiles('1.0.0'));
    expect(await steps.uninstall(ref(s))).toBe('already');
    expect(entries('.previous')).toEqual([`${NAME}.${s}`]);
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

  it('reports live plugins with their markers, snapshots with pinned, and skips invalid names', async () => {
    const a1 = await install('1.0.0', newStamp(), 'alpha');
    const a2 = await install('1.1.0', newStamp(), 'alpha');
    // beta: swapped but never marked.
    const b = newStamp();
    await steps.lock(ref(b, 'beta'), 'exec-b', process.pid, 600);
    await stage(ref(b, 'beta'), await tarball('0.1.0'));
    await steps.swap(ref(b, 'beta'));
    // Not plugins: names the validator refuses, and a plain file.
    for (const bad of ['Bad Name', 'UPPER', '-dash', 'semi;colon']) await mkdir(join(root, bad));
    await writeFile(join(root, 'afile'), 'x');
    await mkdir(join(root, '.previous', 'junk'), { recursive: true });
    await mkdir(join(root, '.previous', 'BAD.20260101T000000Z-abcd'), { recursive: true });
    await writeFile(join(root, '.previous', `alpha.${a2}`, '.pinned'), '');

    const listed = await steps.list();
    const byName = Object.fromEntries(listed.plugins.map((p) => [p.name, p]));
    expect(Object.keys(byName).sort()).toEqual(['alpha', 'beta']);
    expect(byName.alpha).toMatchObject({ name: 'alpha', complete: true, stamp: a2 });
    expect(byName.alpha!.marker).toMatchObject({ name: 'alpha', version: '1.1.0', stamp: a2, execution: executionName('ws1', NAME, a2) });
    expect(byName.beta).toEqual({ name: 'beta', complete: false, stamp: b });
    expect(listed.previous).toEqual([{ name: 'alpha', stamp: a2, pinned: true }]);
    // The snapshot a2 took is a1's live copy.
    expect(readFileSync(join(root, '.previous', `alpha.${a2}`, '.install-stamp'), 'utf8').trim()).toBe(a1);
  });

  it('an unreadable marker is listed as incomplete', async () => {
    await install('1.0.0');
    await writeFile(join(live(), '.complete'), '{not json');
    const listed = await steps.list();
    expect(listed.plugins).toEqual([expect.objectContaining({ name: NAME, complete: false })]);
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

  async function world(): Promise<void> {
    // Live copies: never touched.
    await entry('', 'p');
    await entry('', 'q');
    // p: four old snapshots (newest two kept), one of the others pinned; one new one.
    await entry('.previous', `p.${OLD('01')}`);
    await entry('.previous', `p.${OLD('02')}`, '.pinned');
    await entry('.previous', `p.${OLD('03')}`);
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
    await writeLock({ stamp: NEW('qqqq'), owner: 'x', pid: 0, host: 'h', expires: nowSeconds() + 600 }, 'q');
    await writeLock({ stamp: OLD('09'), owner: 'x', pid: 0, host: 'h', expires: nowSeconds() - 600 }, 'r');
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
    `.failed/r.${OLD('07')}`,
    '.locks/r',
  ].sort();

  function allEntries(): string[] {
    return ['', '.previous', '.staging', '.failed', '.locks'].flatMap((sub) => entries(sub).map((e) => (sub ? `${sub}/${e}` : e))).sort();
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
    expect(real.counts).toEqual({ previous: 2, staging: 3, failed: 1, locks: 1 });
    expect(real.deleted.filter((d) => d.kind !== 'locks').every((d) => d.bytes > 0)).toBe(true);
    expect(real.bytes).toBe(real.deleted.reduce((n, d) => n + d.bytes, 0));
    expect(real.bytes).toBeGreaterThan(0);
    expect(dry.bytes).toBe(real.bytes);
    expect(allEntries()).toEqual(before.filter((e) => !EXPECTED.includes(e)));
    expect(tree(live('p'))).toEqual({ 'data.txt': 'x'.repeat(5000) });
    expect(tree(live('q'))).toEqual({ 'data.txt': 'x'.repeat(5000) });

    // Nothing left to do.
    const again = await steps.sweep(rules(false));
    expect(again.deleted).toEqual([]);
    expect(again.bytes).toBe(0);
  });

  it('keepNewest 0 still keeps pinned snapshots, and an absent root is an empty report', async () => {
    await world();
    const r = await steps.sweep({ ...rules(false), keepNewest: 0 });
    expect(r.deleted.filter((d) => d.kind === 'previous').map((d) => d.path).sort()).toEqual(
      [`.previous/p.${OLD('01')}`, `.previous/p.${OLD('03')}`, `.previous/p.${OLD('04')}`, `.previous/q.${OLD('01')}`].sort(),
    );
    expect(existsSync(join(root, '.previous', `p.${OLD('02')}`))).toBe(true);
    expect(existsSync(join(root, '.previous', `p.${NEW()}`))).toBe(true);

    const empty = new HostSteps({ host, root: join(base, 'nowhere'), ownerSpec: '-' });
    expect(await empty.sweep(rules(false))).toEqual({ dryRun: false, deleted: [], counts: { previous: 0, staging: 0, failed: 0, locks: 0 }, bytes: 0 });
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
    expect(existsSync(root)).toBe(false);
  });
});

// --- I/O failures ------------------------------------------------------------------------------------

describe('I/O failures', () => {
  it('a plugins root that is not a directory: HostIoError, with a hint', async () => {
    await writeFile(root, 'not a directory');
    const error = await expectCode(steps.lock(ref(newStamp()), 'o', process.pid, 60), 'HostIoError');
    expect(error.message).toContain('.locks');
    expect(error.hint).not.toBe('');
    expect(readFileSync(root, 'utf8')).toBe('not a directory');
  });
});
