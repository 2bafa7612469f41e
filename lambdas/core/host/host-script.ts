/** The host-step script: one file, the same bytes for every transport. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const HOST_SCRIPT_PATH = fileURLToPath(new URL('./plugin-host.sh', import.meta.url));

let cached: string | undefined;

/** Script text, for transports that ship it with the command (SSH, SSM). */
export function hostScriptText(): string {
  cached ??= readFileSync(HOST_SCRIPT_PATH, 'utf8');
  return cached;
}
