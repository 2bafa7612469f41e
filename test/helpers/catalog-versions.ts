/**
 * A plugin catalog directory (`<dir>/<name>/<version>/`, what `local://name@version` resolves
 * to) holding test versions of one plugin (plugin-versions.ts: each file carries its version),
 * for workflows run with AWS adapters, where a source is a catalog reference, not a local path.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { versionFiles } from './plugin-versions.ts';

export async function writeCatalog(dir: string, name: string, versions: readonly string[]): Promise<string> {
  for (const version of versions) {
    for (const [rel, content] of Object.entries(versionFiles({ name, version }))) {
      const path = join(dir, name, version, rel);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
    }
  }
  return dir;
}
