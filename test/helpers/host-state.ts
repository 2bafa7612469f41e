/** What a test asserts about a plugins root after a workflow: leftovers, lock, snapshots. */
import { existsSync, readdirSync } from 'node:fs';
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
