/**
 * Reading a live plugin directory the way a careful loader does: open the directory once and
 * read every file relative to that handle (/proc/self/fd/N/...), so a concurrent rename cannot
 * make one read straddle two versions. Then judge what was read.
 */
import { closeSync, constants, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type Tree = Record<string, string>;

const METADATA = new Set(['.complete', '.install-stamp', '.restored-from']);

function walk(base: string, rel: string, out: Tree): void {
  for (const entry of readdirSync(join(base, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) walk(base, path, out);
    else out[path] = readFileSync(join(base, path), 'utf8');
  }
}

/** The whole tree under `dir` (metadata files included), or null if it does not exist. */
export function readTree(dir: string): Tree | null {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch {
    return null;
  }
  try {
    const out: Tree = {};
    walk(`/proc/self/fd/${fd}`, '', out);
    return out;
  } finally {
    closeSync(fd);
  }
}

export function contentOnly(tree: Tree): Tree {
  return Object.fromEntries(Object.entries(tree).filter(([k]) => !METADATA.has(k)));
}

export interface LiveVerdict {
  state: 'absent' | 'whole' | 'mixed';
  version?: string;
  markedVersion?: string;
  problem?: string;
}

/**
 * Live is absent, or exactly one version's files (compared against the expected trees), and a
 * marker, if present, names that same version.
 */
export function judgeLive(tree: Tree | null, versions: Record<string, Tree>): LiveVerdict {
  if (tree === null) return { state: 'absent' };
  const content = contentOnly(tree);
  let marked: string | undefined;
  if (tree['.complete']) marked = (JSON.parse(tree['.complete']) as { version: string }).version;
  for (const [version, expected] of Object.entries(versions)) {
    if (JSON.stringify(sortKeys(content)) === JSON.stringify(sortKeys(expected))) {
      if (marked !== undefined && marked !== version) return { state: 'mixed', version, markedVersion: marked, problem: `files are ${version} but .complete names ${marked}` };
      return { state: 'whole', version, markedVersion: marked };
    }
  }
  return { state: 'mixed', markedVersion: marked, problem: `files match no single version: ${Object.keys(content).length} files` };
}

function sortKeys(t: Tree): Tree {
  return Object.fromEntries(Object.entries(t).sort(([a], [b]) => a.localeCompare(b)));
}

export function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}
