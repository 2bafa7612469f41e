/**
 * What a hostile agent (uid 1000) can plant on a workspace host, and how a test checks that the
 * host script (running as root) never followed it.
 *
 * - `makeSentinel` puts, next to the plugins root, a root-only canary file (0600, a secret in it)
 *   and a root-only directory outside the root (another canary, a `.complete` and an
 *   `.install-stamp` holding the secret, a subdirectory). Every entry of the scope (the
 *   workspace's filesystem minus the plugins root) gets fixed times with atime < mtime, so under
 *   `relatime` (and `strictatime`) any read of a file, or listing of a directory, moves its atime.
 * - `snapshotOutside` records every entry of the scope (type, mode, owner, size, mtime, content
 *   hash, link target, and whether it was read since the last snapshot) and then puts the atimes
 *   back, so each snapshot sees only what happened since the previous one.
 * - `plantAt` replaces one path with a plant, as the agent would (idempotent; owned by 1000).
 * - `describeTree` and `filesContaining` look at a plugin tree with lstat only: they never follow
 *   a link and never open anything but a regular file (readTree from live-tree.ts follows links
 *   and would block on a fifo, so it must not be pointed at a planted tree).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';

export const AGENT_UID = 1000;
export const AGENT_GID = 1000;

/** Fixed times of every sentinel entry (whole seconds, so resetting them is exact). */
const FIXED_ATIME = 1_700_000_000;
const FIXED_MTIME = 1_700_086_400;

export const PLANTS = ['link-to-canary', 'link-to-outside-dir', 'fifo', 'wrong-type'] as const;
export type Plant = (typeof PLANTS)[number];

/** What belongs at a path: a file, or a directory. A wrong-typed plant is the other one. */
export type Belongs = 'file' | 'dir';

export function plantLabel(plant: Plant, belongs: Belongs): string {
  switch (plant) {
    case 'link-to-canary':
      return 'symlink to a root-only canary file';
    case 'link-to-outside-dir':
      return 'symlink to a directory outside the root';
    case 'fifo':
      return 'fifo';
    case 'wrong-type':
      return belongs === 'file' ? 'a directory where a file belongs' : 'a regular file where a directory belongs';
  }
}

export interface Sentinel {
  /** The directory (next to the plugins root) holding the canaries. */
  dir: string;
  /** Root-only file (root:root 0600) holding `secret`. */
  canary: string;
  /** Root-only directory outside the plugins root (a symlink target). */
  outsideDir: string;
  secret: string;
  /** A fifo (agent-owned, outside the scope) that fifo plants are hard links of. */
  fifo: string;
  /** What `snapshotOutside` covers: `scope` minus the `exclude`d paths (the plugins root). */
  scope: string;
  exclude: string[];
}

function isDirectory(st: Stats | undefined): boolean {
  return st !== undefined && st.isDirectory() && !st.isSymbolicLink();
}

function tryLstat(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function walkScope(scope: string, exclude: string[], visit: (path: string, rel: string, st: Stats) => void): void {
  const walk = (path: string, rel: string): void => {
    const st = lstatSync(path);
    visit(path, rel, st);
    if (!isDirectory(st)) return;
    for (const name of readdirSync(path).sort()) {
      const child = join(path, name);
      if (exclude.includes(child)) continue;
      walk(child, rel ? `${rel}/${name}` : name);
    }
  };
  walk(scope, '');
}

function resetTimes(path: string, st: Stats, atime = FIXED_ATIME, mtime = st.mtimeMs / 1000): void {
  if (st.isSymbolicLink()) lutimesSync(path, atime, mtime);
  else utimesSync(path, atime, mtime);
}

/**
 * Creates the sentinel under `dir` (which must be inside `scope` and outside every `exclude`d
 * path), then fixes the times of every entry of the scope.
 */
export function makeSentinel(dir: string, scope: string, exclude: string[], fifoDir: string): Sentinel {
  const fifo = join(fifoDir, 'agent-fifo');
  rmSync(fifo, { force: true });
  execFileSync('mkfifo', ['-m', '0644', '--', fifo]);
  lchownSync(fifo, AGENT_UID, AGENT_GID);
  const secret = `CANARY-SECRET-${randomBytes(12).toString('hex')}`;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const canary = join(dir, 'root-only-canary');
  writeFileSync(canary, `${secret}\nstamp=20260101T000000Z-abcd\nexpires=99999999999\n`, { mode: 0o600 });
  const outsideDir = join(dir, 'outside');
  mkdirSync(join(outsideDir, 'sub'), { recursive: true, mode: 0o700 });
  chmodSync(outsideDir, 0o700);
  writeFileSync(join(outsideDir, 'canary-in-dir'), `${secret}\n`, { mode: 0o600 });
  // What a careless root would take for a plugin directory's metadata.
  writeFileSync(join(outsideDir, '.complete'), JSON.stringify({ name: 'hello', version: secret, sha256: secret }) + '\n', { mode: 0o600 });
  writeFileSync(join(outsideDir, '.install-stamp'), `${secret}\n`, { mode: 0o600 });
  writeFileSync(join(outsideDir, 'sub', 'note'), 'root-only note\n', { mode: 0o600 });
  for (const p of [canary, outsideDir, join(outsideDir, 'sub'), join(outsideDir, 'canary-in-dir'), join(outsideDir, '.complete'), join(outsideDir, '.install-stamp'), join(outsideDir, 'sub', 'note')]) {
    chownSync(p, 0, 0);
  }
  // Listing a directory moves its atime: collect first, then fix the times.
  const entries: [string, Stats][] = [];
  walkScope(scope, exclude, (path, _rel, st) => entries.push([path, st]));
  for (const [path, st] of entries) resetTimes(path, st, FIXED_ATIME, FIXED_MTIME);
  return { dir, canary, outsideDir, secret, fifo, scope, exclude };
}

export interface EntryState {
  type: string;
  mode: string;
  owner: string;
  size: number;
  mtimeMs: number;
  /** Read (a file's content, a directory's listing, a link's target) since the last snapshot. */
  read: boolean;
  target?: string;
  sha256?: string;
}

function typeOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'other';
}

/** Every entry of the sentinel's scope; resets the atimes afterwards (see the module comment). */
export function snapshotOutside(sentinel: Pick<Sentinel, 'scope' | 'exclude'>): Record<string, EntryState> {
  const seen: [string, string, Stats][] = [];
  // lstat first (records atimes), then listings, then contents: our own reads come after.
  walkScope(sentinel.scope, sentinel.exclude, (path, rel, st) => seen.push([path, rel || '.', st]));
  const out: Record<string, EntryState> = {};
  for (const [path, rel, st] of seen) {
    const state: EntryState = {
      type: typeOf(st),
      mode: (st.mode & 0o7777).toString(8),
      owner: `${st.uid}:${st.gid}`,
      size: st.isDirectory() ? 0 : st.size,
      mtimeMs: st.mtimeMs,
      read: st.atimeMs !== FIXED_ATIME * 1000,
    };
    if (st.isSymbolicLink()) state.target = readlinkSync(path);
    if (st.isFile()) state.sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
    out[rel] = state;
  }
  for (const [path, , st] of seen) resetTimes(path, st);
  return out;
}

/** What differs between two snapshots: entries created, removed or changed, and entries read. */
export function outsideChanges(before: Record<string, EntryState>, after: Record<string, EntryState>): { changed: string[]; read: string[] } {
  const changed: string[] = [];
  for (const rel of Object.keys(before)) {
    if (!(rel in after)) changed.push(`${rel} removed`);
  }
  for (const [rel, state] of Object.entries(after)) {
    const was = before[rel];
    if (!was) {
      changed.push(`${rel} created (${state.type} ${state.mode} ${state.owner})`);
      continue;
    }
    const fields = (Object.keys(state) as (keyof EntryState)[]).filter((k) => k !== 'read' && state[k] !== was[k]);
    if (fields.length) changed.push(`${rel}: ${fields.map((k) => `${k} ${String(was[k])} -> ${String(state[k])}`).join(', ')}`);
  }
  // (A created entry is reported as created: its atime says nothing.)
  const read = Object.entries(after)
    .filter(([rel, state]) => state.read && rel in before)
    .map(([rel, state]) => `${rel} (${state.type === 'dir' ? 'listed' : 'read'})`);
  return { changed, read };
}

/** The description of one entry, never following it and never opening anything but a file. */
function describeEntry(path: string, st: Stats): string {
  const owner = `${st.uid}:${st.gid}`;
  const mode = (st.mode & 0o7777).toString(8);
  if (st.isSymbolicLink()) return `symlink -> ${readlinkSync(path)} ${owner}`;
  if (st.isFIFO()) return `fifo ${mode} ${owner}`;
  if (st.isDirectory()) return `dir ${mode} ${owner}`;
  if (st.isFile()) return `file ${mode} ${owner} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
  return `${typeOf(st)} ${mode} ${owner}`;
}

/** `path` and everything under it (lstat only), or null when it does not exist. */
export function describeTree(path: string): Record<string, string> | null {
  const top = tryLstat(path);
  if (!top) return null;
  const out: Record<string, string> = {};
  const walk = (p: string, rel: string, st: Stats): void => {
    out[rel] = describeEntry(p, st);
    if (!isDirectory(st)) return;
    for (const name of readdirSync(p).sort()) {
      const child = join(p, name);
      walk(child, rel === '.' ? name : `${rel}/${name}`, lstatSync(child));
    }
  };
  walk(path, '.', top);
  return out;
}

/** Regular files under `dir` (no link followed, nothing else opened) whose bytes contain `needle`. */
export function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (p: string): void => {
    const st = tryLstat(p);
    if (!st) return;
    if (st.isFile()) {
      if (readFileSync(p).includes(needle)) hits.push(p);
    } else if (isDirectory(st)) {
      for (const name of readdirSync(p)) walk(join(p, name));
    }
  };
  walk(dir);
  return hits;
}

/** Whether `path` already holds `plant` (so planting again changes nothing). */
function holds(path: string, plant: Plant, belongs: Belongs, sentinel: Sentinel): boolean {
  const st = tryLstat(path);
  if (!st) return false;
  switch (plant) {
    case 'link-to-canary':
      return st.isSymbolicLink() && readlinkSync(path) === sentinel.canary;
    case 'link-to-outside-dir':
      return st.isSymbolicLink() && readlinkSync(path) === sentinel.outsideDir;
    case 'fifo':
      return st.isFIFO();
    case 'wrong-type':
      return belongs === 'file' ? isDirectory(st) : st.isFile();
  }
}

/**
 * Puts `plant` at `path`, replacing whatever is there (as the agent, who owns the directory
 * holding `path`, can). Does nothing when the plant is already there. Returns whether it planted.
 */
export function plantAt(path: string, plant: Plant, belongs: Belongs, sentinel: Sentinel): boolean {
  if (holds(path, plant, belongs, sentinel)) return false;
  rmSync(path, { recursive: true, force: true });
  switch (plant) {
    case 'link-to-canary':
      symlinkSync(sentinel.canary, path);
      break;
    case 'link-to-outside-dir':
      symlinkSync(sentinel.outsideDir, path);
      break;
    case 'fifo':
      // A hard link to the sentinel's fifo: a fifo without a process per plant.
      linkSync(sentinel.fifo, path);
      break;
    case 'wrong-type':
      if (belongs === 'file') {
        mkdirSync(path, { mode: 0o755 });
        writeFileSync(join(path, 'agent-file'), 'planted by the agent\n');
        lchownSync(join(path, 'agent-file'), AGENT_UID, AGENT_GID);
      } else {
        writeFileSync(path, 'planted by the agent\n');
      }
      break;
  }
  lchownSync(path, AGENT_UID, AGENT_GID);
  return true;
}

/** The plugin directories of `name` directly under `dir` (e.g. `.previous/<name>.<stamp>`), real directories only. */
export function pluginDirsIn(dir: string, name: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.startsWith(`${name}.`))
    .map((e) => join(dir, e))
    .filter((p) => isDirectory(tryLstat(p)));
}

export function isRealDirectory(path: string): boolean {
  return isDirectory(tryLstat(path));
}

/** A plugin directory the product would have left (agent-owned content), e.g. under `.failed/`. */
export function seedPluginDir(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [rel, content] of Object.entries(files)) {
    const path = join(dir, rel);
    mkdirSync(join(path, '..'), { recursive: true, mode: 0o755 });
    writeFileSync(path, content);
  }
  execFileSync('chown', ['-R', '-h', `${AGENT_UID}:${AGENT_GID}`, '--', dir]);
}
