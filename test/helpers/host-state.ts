/** What a test asserts about a plugins root after a workflow: leftovers, lock, snapshots. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export function hostState(root: string, name: string) {
  return {
    staging: list(join(root, '.staging')).filter((e) => e.startsWith(`${name}.`)),
    previous: list(join(root, '.previous')).filter((e) => e.startsWith(`${name}.`)).sort(),
    failed: list(join(root, '.failed')).filter((e) => e.startsWith(`${name}.`)),
    locked: existsSync(join(root, '.locks', name)),
  };
}

/**
 * The live version of a plugin as its files say it: plugin.yaml's version, with " (incomplete)"
 * unless `.complete` vouches for that same version; "absent" when there is no live directory.
 */
export function liveVersion(root: string, name: string): string {
  const live = join(root, name);
  if (!existsSync(join(live, 'plugin.yaml'))) return 'absent';
  const version = /^version: (.+)$/m.exec(readFileSync(join(live, 'plugin.yaml'), 'utf8'))?.[1]?.trim() ?? '?';
  let marked: unknown;
  try {
    marked = (JSON.parse(readFileSync(join(live, '.complete'), 'utf8')) as { version?: unknown }).version;
  } catch {
    marked = undefined;
  }
  return marked === version ? version : `${version} (incomplete)`;
}
