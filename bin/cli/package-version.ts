/**
 * The version `pluginctl --version` prints: package.json's, found by walking up from this file
 * (so it is right whether this runs from bin/cli/ or from a compiled copy one level deeper).
 */
import { readFileSync } from 'node:fs';

const PACKAGE_NAME = 'workspace-plugin-installer';

export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not here: try one level up.
    }
  }
  return 'unknown';
}
