/**
 * What the chaos runner reads from a host's file system, without ever following a link or
 * opening anything but a regular file (the agent plants links to root-only files and fifos that
 * block whoever opens them): plugin directories, leftovers under the plugins root, and the
 * state of everything outside it.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';

/** The file of a plugin directory that the product writes besides the plugin's own (the rest of its records live in the root-owned .meta/). */
export const METADATA = new Set(['.complete']);

export interface DirSnapshot {
  /** Every entry by relative path: kind, mode, owner, and content or link target. */
  entries: Record<string, string>;
  /** Regular files' contents by relative path. */
  files: Record<string, string>;
  /** Links, fifos and other non-regular, non-directory entries: the agent's plants. */
  planted: string[];
}

function describe(st: Stats): string {
  return `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
}

function walk(base: string, rel: string, out: DirSnapshot, excluded: (rel: string) => boolean): void {
  let names: string[];
  try {
    names = readdirSync(join(base, rel)).sort();
  } catch (err) {
    out.entries[rel || '.'] = `unreadable ${(err as NodeJS.ErrnoException).code ?? ''}`;
    return;
  }
  for (const name of names) {
    const path = rel ? `${rel}/${name}` : name;
    if (excluded(path)) continue;
    let st: Stats;
    try {
      st = lstatSync(join(base, path));
    } catch {
      continue; // gone meanwhile
    }
    if (st.isDirectory()) {
      out.entries[path] = `d ${describe(st)}`;
      walk(base, path, out, excluded);
    } else if (st.isFile()) {
      let content: string;
      try {
        content = readFileSync(join(base, path), 'utf8');
      } catch (err) {
        content = `<unreadable ${(err as NodeJS.ErrnoException).code ?? ''}>`;
      }
      out.entries[path] = `f ${describe(st)} ${JSON.stringify(content)}`;
      out.files[path] = content;
    } else if (st.isSymbolicLink()) {
      let target = '?';
      try {
        target = readlinkSync(join(base, path));
      } catch {
        // gone meanwhile
      }
      out.entries[path] = `l -> ${target}`;
      out.planted.push(path);
    } else {
      out.entries[path] = `${st.isFIFO() ? 'p' : '?'} ${describe(st)}`;
      out.planted.push(path);
    }
  }
}

/** The tree under `dir` (null when `dir` does not exist; a link in its place counts as a plant). */
export function snapshotDir(dir: string, excluded: (rel: string) => boolean = () => false): DirSnapshot | null {
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch {
    return null;
  }
  const out: DirSnapshot = { entries: {}, files: {}, planted: [] };
  if (!st.isDirectory()) {
    out.entries['.'] = st.isSymbolicLink() ? `l -> ${readlinkSync(dir)}` : `not a directory ${describe(st)}`;
    out.planted.push('.');
    return out;
  }
  out.entries['.'] = `d ${describe(st)}`;
  walk(dir, '', out, excluded);
  return out;
}

export function sameSnapshot(a: DirSnapshot | null, b: DirSnapshot | null): boolean {
  return JSON.stringify(a?.entries ?? null) === JSON.stringify(b?.entries ?? null);
}

/** The entries that differ between two snapshots (for violation messages). */
export function snapshotDiff(before: DirSnapshot | null, after: DirSnapshot | null, limit = 6): string {
  if (!before || !after) return before ? 'directory disappeared' : after ? 'directory appeared' : 'same';
  const out: string[] = [];
  for (const key of new Set([...Object.keys(before.entries), ...Object.keys(after.entries)])) {
    const a = before.entries[key];
    const b = after.entries[key];
    if (a === b) continue;
    if (a === undefined) out.push(`+${key}`);
    else if (b === undefined) out.push(`-${key}`);
    else if (a.startsWith('f ') && b.startsWith('f ') && before.files[key] !== after.files[key]) {
      out.push(`~${key} (content now ${JSON.stringify((after.files[key] ?? '').slice(0, 48))})`);
    } else out.push(`~${key} (${a.slice(0, 40)} → ${b.slice(0, 40)})`);
  }
  return out.length > limit ? `${out.slice(0, limit).join(' ')} (+${out.length - limit} more)` : out.join(' ');
}

export interface Verdict {
  state: 'absent' | 'whole' | 'mixed';
  /** The version whose files live holds (state whole). */
  version?: string;
  /** The version `.complete` names; 'tampered' when the agent replaced it by a link or fifo. */
  marker?: string;
  problem?: string;
}

/** Live is absent, or one version's files exactly (plants and metadata aside), and what its marker says. */
export function judge(snap: DirSnapshot | null, versions: Record<string, Record<string, string>>): Verdict {
  if (!snap) return { state: 'absent' };
  if (snap.planted.includes('.')) return { state: 'mixed', problem: 'live is not a directory' };
  let marker: string | undefined;
  const completeEntry = snap.entries['.complete'];
  if (completeEntry !== undefined) {
    if (!completeEntry.startsWith('f ')) marker = 'tampered';
    else {
      try {
        marker = String((JSON.parse(snap.files['.complete']!) as { version?: unknown }).version);
      } catch {
        marker = 'unreadable';
      }
    }
  }
  const content = Object.keys(snap.files)
    .filter((k) => !METADATA.has(k))
    .sort();
  for (const [version, expected] of Object.entries(versions)) {
    const keys = Object.keys(expected).sort();
    if (keys.length === content.length && keys.every((k, i) => k === content[i] && snap.files[k] === expected[k])) {
      if (marker !== undefined && marker !== 'tampered' && marker !== version) {
        return { state: 'mixed', version, marker, problem: `files are ${version} but .complete names ${marker}` };
      }
      return { state: 'whole', version, marker };
    }
  }
  return { state: 'mixed', marker, problem: `files match no single version (${content.length} files: ${content.slice(0, 4).join(', ')}${content.length > 4 ? ', …' : ''})` };
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/**
 * What an operation on plugin `name` may not leave behind when it ends: staging entries (also
 * the marker's temp file), its lease, its stage mutex, a lock temp file.
 */
export function leftovers(root: string, name: string): string[] {
  const out: string[] = [];
  for (const e of list(join(root, '.staging'))) {
    if (e.startsWith(`${name}.`) || e.startsWith(`.complete.${name}.`)) out.push(`.staging/${e}`);
  }
  for (const e of list(join(root, '.locks'))) {
    if (e === name || e.startsWith(`.stage.${name}.`) || (e.startsWith(`.${name}.`) && e.endsWith('.tmp'))) out.push(`.locks/${e}`);
  }
  return out;
}

/** `.previous/<name>.<stamp>` entries of a plugin, oldest first (by whole stamp, as `restore` orders them). */
export function snapshotsOf(root: string, name: string): string[] {
  return list(join(root, '.previous'))
    .filter((e) => e.startsWith(`${name}.`) && /^\d{8}T\d{6}Z-[a-z0-9]{4}$/.test(e.slice(name.length + 1)))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
