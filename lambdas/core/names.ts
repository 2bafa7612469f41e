/**
 * Every value that ends up in a host path or a shell argument is checked here, in TypeScript,
 * before any host is touched. The host-step script re-checks the same patterns (defence in
 * depth), but this is where a user gets a readable error.
 */
import { PluginError } from './errors.ts';

export const PLUGIN_NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
/** Workspace ids come from the control plane; they name a directory locally and an EC2 tag. */
export const WORKSPACE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** `YYYYMMDDTHHMMSSZ-xxxx`: UTC second plus a random suffix so two installs in a second differ. */
export const STAMP = /^[0-9]{8}T[0-9]{6}Z-[a-z0-9]{4}$/;
/** Versions are free-form in manifests but land in JSON and paths: keep them boring. */
export const VERSION = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;
export const SHA256 = /^[0-9a-f]{64}$/;
/** Step Functions execution names: 1-80 chars of [A-Za-z0-9_-]. */
export const EXECUTION_NAME = /^[A-Za-z0-9_-]{1,80}$/;

function check(pattern: RegExp, value: unknown, what: string, hint: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : String(value);
    throw new PluginError('InvalidInput', `invalid ${what} ${shown}`, hint);
  }
  return value;
}

export function assertPluginName(value: unknown): string {
  if (value === '.' || value === '..') throw new PluginError('InvalidInput', `invalid plugin name ${JSON.stringify(value)}`, 'plugin names match ^[a-z0-9][a-z0-9._-]{0,127}$');
  return check(PLUGIN_NAME, value, 'plugin name', 'plugin names match ^[a-z0-9][a-z0-9._-]{0,127}$ (lower-case letters, digits, ".", "_", "-")');
}

export function assertWorkspaceId(value: unknown): string {
  return check(WORKSPACE_ID, value, 'workspace id', 'workspace ids match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$');
}

export function assertStamp(value: unknown): string {
  return check(STAMP, value, 'stamp', 'stamps look like 20261125T080000Z-ab12');
}

export function assertVersion(value: unknown): string {
  return check(VERSION, value, 'version', 'versions match ^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$, e.g. 1.2.0');
}

export function assertSha256(value: unknown): string {
  return check(SHA256, value, 'sha256', 'give the 64 lower-case hex digits of the tarball\'s SHA-256');
}

export function assertExecutionName(value: unknown): string {
  return check(EXECUTION_NAME, value, 'execution name', 'execution names are 1-80 characters of [A-Za-z0-9_-]');
}
