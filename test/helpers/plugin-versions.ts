/**
 * Plugin trees for tests: every file of version N carries N in its content, so a directory that
 * mixes versions is detectable from its bytes alone.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface PluginVersionSpec {
  name: string;
  version: string;
  files?: number;
  /** Bytes per file (padding), default ~64. */
  size?: number;
  /** plugin.yaml's `healthcheck` (docs/plugin-format.md), run on the host after the swap. */
  healthcheck?: { command: string; timeoutSeconds?: number };
}

export function versionFiles(spec: PluginVersionSpec): Record<string, string> {
  const check = spec.healthcheck;
  // A JSON string is a valid YAML double-quoted scalar: any command survives the round trip.
  const healthcheck = check
    ? `healthcheck:\n  command: ${JSON.stringify(check.command)}\n${check.timeoutSeconds === undefined ? '' : `  timeoutSeconds: ${check.timeoutSeconds}\n`}`
    : '';
  const files: Record<string, string> = {
    'plugin.yaml': `name: ${spec.name}\nversion: ${spec.version}\ndescription: test plugin\n${healthcheck}`,
  };
  const n = spec.files ?? 5;
  const pad = 'x'.repeat(Math.max(0, (spec.size ?? 64) - 40));
  for (let i = 0; i < n; i++) {
    files[`skills/s${i % 7}/file-${i}.md`] = `version=${spec.version} file=${i} ${pad}\n`;
  }
  return files;
}

export async function writePluginDir(root: string, spec: PluginVersionSpec): Promise<string> {
  const dir = join(root, `${spec.name}-${spec.version}`);
  for (const [rel, content] of Object.entries(versionFiles(spec))) {
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await writeFile(join(dir, rel), content);
  }
  return dir;
}
