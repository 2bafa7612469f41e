/**
 * A best-effort plugin name for the execution name (`<workspace>-<plugin>-<stamp>`), known
 * before Prepare has read the manifest: the manifest's name for `local://`, a directory or a
 * local `.tar.gz` file; for a source the caller cannot read before Prepare fetches it (`s3://`,
 * `https://`, `github://`), its last path segment without `.tar.gz`/`.tgz` and a trailing
 * version (docs/workflows.md). Prepare's manifest check is what counts; this only labels the
 * execution.
 */
import { readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { tarballManifestName } from './tarball-manifest-name.ts';

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

/** pluginNameHint, reading a local `.tar.gz`/`.tgz` file's manifest too (that needs I/O). */
export async function pluginNameForExecution(source: string, cwd = process.cwd()): Promise<string> {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(source) || source.startsWith('file://')) {
    const path = resolve(cwd, source.replace(/^file:\/\//, ''));
    try {
      if (statSync(path).isFile()) {
        const name = await tarballManifestName(path);
        if (name) return name;
      }
    } catch {
      // Not there: Prepare says so; the file name labels the execution meanwhile.
    }
  }
  return pluginNameHint(source, cwd);
}
