/**
 * Turns what the host script printed into a typed result or a typed error.
 *
 * The script's last stdout line is one JSON object: `{"ok":true,"op":...}` or
 * `{"ok":false,"code":...,"message":...}`. Its exit code backs that up, so a result line lost to
 * output truncation still maps to the right error.
 */
import { PluginError, isErrorCode, type ErrorCode } from '../errors.ts';
import type { HostOp, HostRawResult } from './remote-host.ts';

/** Exit codes of lambdas/core/host/plugin-host.sh (keep in sync with its EX_* constants). */
export const HOST_EXIT_CODES: Record<number, ErrorCode> = {
  10: 'InvalidInput',
  11: 'LockBusy',
  12: 'LockLost',
  13: 'TransferCorrupted',
  14: 'ExtractFailed',
  15: 'StagingMissing',
  16: 'LivePresent',
  17: 'NotInstalled',
  18: 'NothingToRestore',
  19: 'LiveNotOurs',
  20: 'FetchFailed',
  21: 'HostIoError',
  22: 'HostToolMissing',
  23: 'HostDiskFull',
  24: 'HostPermissionDenied',
  25: 'HostToolMissing',
  26: 'UnsafeHostLayout',
  27: 'RollbackFailed',
  28: 'HealthCheckFailed',
};

const HINTS: Partial<Record<ErrorCode, string>> = {
  LockBusy: 'another operation holds this plugin; retry when it finishes',
  LockLost: 'the lease expired and another operation took the plugin; retry the install',
  TransferCorrupted: 'the bytes that reached the host differ from the validated tarball; retry, and check the artifact store',
  ExtractFailed: 'the tarball could not be unpacked on the host; check disk space and the tarball',
  NotInstalled: 'check the plugin name with `pluginctl list`',
  NothingToRestore: 'there is no earlier snapshot of this plugin; install the version you want instead',
  FetchFailed: 'the host could not download the tarball; check its network path to the artifact store',
  HostIoError: 'check disk space and permissions under the plugins root on the host',
  HostDiskFull: 'free space on the host (old snapshots: `pluginctl sweep`), then retry; live is as it was',
  HostPermissionDenied: 'the step could not write on the host: check that the filesystem is mounted read-write and that the connecting user may run `sudo -n` (EIC) or that the SSM agent runs as root',
  HostToolMissing: 'install the named package on the host (the image needs coreutils, util-linux, tar, gzip, findutils), then retry',
  UnsafeHostLayout: 'the plugins root or one of its management directories is a link or owned by another user; fix it as the message says, then retry',
  RollbackFailed: 'inspect the plugins root on the host (live, .staging, .previous, .failed) and finish the rollback by hand',
  HealthCheckFailed: 'the new version did not pass its health check on the host and is rolled back; fix the plugin (or its healthcheck in plugin.yaml) and install again',
};

/** sudo refusing to run the step (EIC's non-root user without passwordless sudo). */
const SUDO_REFUSED = /^sudo: (a password is required|a terminal is required|.*is not in the sudoers file|.*not allowed to execute|sorry, you must have a tty)/m;

export type HostResult = Record<string, unknown> & { ok: true; op: HostOp };

function lastJsonLine(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line) continue;
    if (!line.startsWith('{')) return undefined;
    try {
      const value: unknown = JSON.parse(line);
      return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export function interpretHostResult(op: HostOp, raw: HostRawResult): HostResult {
  const line = lastJsonLine(raw.stdout);
  if (raw.exitCode === 0 && line?.ok === true) return line as HostResult;
  if (raw.signal || raw.exitCode === null) {
    throw new PluginError(
      'HostStepInterrupted',
      `host step ${op} was interrupted (${raw.signal ?? 'no exit status'})`,
      'the step is idempotent and will be retried',
    );
  }
  const tail = raw.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 400);
  if (!line && SUDO_REFUSED.test(raw.stderr)) {
    throw new PluginError(
      'HostPermissionDenied',
      `host step ${op} could not start: sudo refused (${tail})`,
      'give the EIC user passwordless sudo for sh (e.g. a sudoers.d entry with NOPASSWD), or connect as root',
    );
  }
  if (line?.ok === false) {
    const code = isErrorCode(line.code) ? line.code : (HOST_EXIT_CODES[raw.exitCode] ?? 'HostStepFailed');
    const message = typeof line.message === 'string' ? line.message : `host step ${op} failed`;
    throw new PluginError(code, message, HINTS[code] ?? '');
  }
  const code = HOST_EXIT_CODES[raw.exitCode] ?? 'HostStepFailed';
  throw new PluginError(
    code,
    `host step ${op} exited ${raw.exitCode} without a result line${tail ? `: ${tail}` : ''}`,
    HINTS[code] ?? 'look at the host step\'s stderr in the logs',
  );
}
