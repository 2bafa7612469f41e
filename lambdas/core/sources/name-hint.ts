/**
 * A best-effort plugin name for the execution name (`<workspace>-<plugin>-<stamp>`), known
 * before Prepare has read the manifest. Prepare's manifest check is what counts; this only
 * labels the execution.
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parse } from 'yaml';

export function pluginNameHint(source: string, cwd = process.cwd()): string {
  const local = /^local:\/\/([^@/]+)/.exec(source);
  if (local) return local[1]!;
  try {
    const path = resolve(cwd, source.replace(/^file:\/\//, ''));
    if (statSync(path).isDirectory()) {
      const manifest: unknown = parse(readFileSync(join(path, 'plugin.yaml'), 'utf8'));
      if (manifest && typeof manifest === 'object' && 'name' in manifest && typeof manifest.name === 'string') return manifest.name;
    }
  } catch {
    // Fall through to the file name.
  }
  return basename(source).replace(/(\.tar\.gz|\.tgz)$/, '').replace(/[-_]v?\d+(\.\d+)*$/, '');
}
