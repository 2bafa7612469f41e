/** How a PluginError answers over HTTP (the design's API table). */
import type { ErrorCode } from '../errors.ts';

export const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  InvalidInput: 400,
  InvalidManifest: 400,
  HostileTarball: 400,
  SourceNotFound: 400,
  WorkspaceNotFound: 404,
  NotInstalled: 404,
  WorkspaceNotRunning: 409,
  LockBusy: 409,
  RolloutBusy: 409,
  NothingToRestore: 409,
  ExternalRuntime: 422,
  TransportUnavailable: 422,
  ChecksumMismatch: 422,
  UnpinnedSource: 422,
  RuntimeMismatch: 422,
  HostUnreachable: 503,
  HostTimeout: 503,
  HostStepInterrupted: 503,
};

export function statusOf(code: ErrorCode): number {
  return STATUS_BY_CODE[code] ?? 500;
}
