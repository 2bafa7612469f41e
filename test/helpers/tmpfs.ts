/**
 * Small tmpfs mounts for tests that need a real filesystem fault (full, read-only) or flushes
 * that cost nothing. Needs root (CAP_SYS_ADMIN); `canMount()` says whether this process may.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function run(command: string, args: string[]): { ok: boolean; err: string } {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  return { ok: r.status === 0, err: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim() };
}

let probed: boolean | undefined;

/** Whether this process can mount a tmpfs (probed once, on a throw-away directory). */
export function canMount(): boolean {
  if (probed !== undefined) return probed;
  const dir = mkdtempSync(join(tmpdir(), 'tmpfs-probe-'));
  probed = run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]).ok;
  if (probed) run('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
  return probed;
}

/** Mounts a tmpfs of `size` (e.g. `2m`) at `dir` (created if missing), owned by root, mode 0755. */
export function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  const r = run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  if (!r.ok) throw new Error(`cannot mount a tmpfs at ${dir}: ${r.err}`);
}

/** Remounts the tmpfs at `dir` read-only or read-write. */
export function remount(dir: string, mode: 'ro' | 'rw'): void {
  const r = run('mount', ['-o', `remount,${mode}`, dir]);
  if (!r.ok) throw new Error(`cannot remount ${dir} ${mode}: ${r.err}`);
}

/** Unmounts `dir` if something is mounted there (lazily, so a straggling process cannot block it). */
export function unmount(dir: string): void {
  if (run('mountpoint', ['-q', dir]).ok) run('umount', ['-l', dir]);
}
