/**
 * One PLUGINCTL_HOME per test, all below one temporary directory that the file's afterAll removes.
 * Call at a test file's top level: it registers the file's beforeAll/afterAll.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

export function freshHomes(prefix: string): () => string {
  let base: string | undefined;
  let counter = 0;
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(() => {
    if (base) rmSync(base, { recursive: true, force: true });
  });
  return () => {
    if (!base) throw new Error('freshHomes: call a home only inside a test or hook (beforeAll has not run yet)');
    const home = join(base, `home-${counter++}`);
    mkdirSync(home, { recursive: true });
    return home;
  };
}
