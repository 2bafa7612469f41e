/**
 * Typed errors shared by every layer.
 *
 * The error's `name` is its code: a Lambda's thrown error surfaces in Step Functions as
 * `Error: <name>`, so the ASL's Retry/Catch clauses and the CLI's exit-code mapping both key
 * on these strings. Renaming one is a contract change.
 */

/** How the CLI and the API treat an error (drives exit codes and HTTP statuses). */
export type ErrorCategory =
  /** Bad input: nothing was touched. CLI exit 2. */
  | 'refused'
  /** Another operation holds the plugin's lock. CLI exit 4. */
  | 'busy'
  /** Worth retrying: the host or a service was briefly unavailable. */
  | 'transient'
  /** The operation failed; the workflow rolls back. CLI exit 3. */
  | 'failed'
  /** A person must act (rollback failed, marker not written). CLI exit 5. */
  | 'operator';

export const ERROR_CATEGORIES = {
  InvalidInput: 'refused',
  HostileTarball: 'refused',
  InvalidManifest: 'refused',
  RuntimeMismatch: 'refused',
  ChecksumMismatch: 'refused',
  UnpinnedSource: 'refused',
  SourceNotFound: 'refused',
  WorkspaceNotFound: 'refused',
  WorkspaceNotRunning: 'refused',
  ExternalRuntime: 'refused',
  TransportUnavailable: 'refused',
  NotInstalled: 'refused',
  NothingToRestore: 'refused',
  LockBusy: 'busy',
  /** Another rollout holds the plugin's rollout lock (lambdas/core/rollout/rollout-lock.ts). */
  RolloutBusy: 'busy',
  HostUnreachable: 'transient',
  HostStepInterrupted: 'transient',
  HostTimeout: 'transient',
  TransferCorrupted: 'transient',
  LockLost: 'failed',
  StagingMissing: 'failed',
  LivePresent: 'failed',
  LiveNotOurs: 'failed',
  ExtractFailed: 'failed',
  FetchFailed: 'failed',
  HostIoError: 'failed',
  HostDiskFull: 'failed',
  HostPermissionDenied: 'failed',
  HostToolMissing: 'failed',
  UnsafeHostLayout: 'failed',
  HostStepFailed: 'failed',
  HostProtocolError: 'failed',
  /** The new version's health check (or a built-in check) failed on the host: rolled back. */
  HealthCheckFailed: 'failed',
  RollbackFailed: 'operator',
  MarkerWriteFailed: 'operator',
} as const satisfies Record<string, ErrorCategory>;

export type ErrorCode = keyof typeof ERROR_CATEGORIES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATEGORIES, value);
}

export function categoryOf(code: string): ErrorCategory {
  return isErrorCode(code) ? ERROR_CATEGORIES[code] : 'failed';
}

/** Error codes the workflows retry (see statemachine/*.asl.json Retry clauses). */
export const RETRYABLE_CODES: readonly ErrorCode[] = (Object.keys(ERROR_CATEGORIES) as ErrorCode[]).filter(
  (code) => ERROR_CATEGORIES[code] === 'transient',
);

export class PluginError extends Error {
  readonly code: ErrorCode;
  /** What the caller should do about it, in one sentence. */
  readonly hint: string;

  constructor(code: ErrorCode, message: string, hint = '', options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = code;
    this.hint = hint;
  }

  get category(): ErrorCategory {
    return ERROR_CATEGORIES[this.code];
  }

  get retryable(): boolean {
    return this.category === 'transient';
  }

  /** Shape used in `--json` output, HTTP bodies and Step Functions `Cause`. */
  toJSON(): { code: ErrorCode; message: string; hint: string } {
    return { code: this.code, message: this.message, hint: this.hint };
  }
}

export function refused(message: string, hint: string): PluginError {
  return new PluginError('InvalidInput', message, hint);
}

/**
 * Reads an error back out of what Step Functions reports (`Error` + `Cause`). Locally `Cause` is
 * the thrown error's message; on AWS it is the Lambda's JSON error document. Our handlers put the
 * JSON form of the PluginError in the message so both carry code, message and hint.
 */
export function errorFromFailure(error: string | undefined, cause: string | undefined): PluginError {
  const code: ErrorCode = isErrorCode(error) ? error : 'HostStepFailed';
  let text = cause ?? '';
  try {
    const outer: unknown = JSON.parse(text);
    if (outer && typeof outer === 'object' && 'errorMessage' in outer && typeof outer.errorMessage === 'string') {
      text = outer.errorMessage;
    }
  } catch {
    // Not the Lambda error document: the message itself.
  }
  try {
    const inner: unknown = JSON.parse(text);
    if (inner && typeof inner === 'object' && 'message' in inner && typeof inner.message === 'string') {
      const hint = 'hint' in inner && typeof inner.hint === 'string' ? inner.hint : '';
      const innerCode = 'code' in inner && isErrorCode(inner.code) ? inner.code : code;
      return new PluginError(innerCode, inner.message, hint);
    }
  } catch {
    // Plain text message.
  }
  return new PluginError(code, text || `${error ?? 'Error'} (no details)`);
}
