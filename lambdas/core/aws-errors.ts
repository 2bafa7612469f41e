/**
 * Telling a transient AWS (or plain network) failure apart from a definitive answer, for the
 * adapters that call AWS APIs inside a workflow step. Transient ones become
 * PluginError('HostUnreachable'), which the workflows retry and the HTTP API answers with 503.
 */

/** Error codes AWS services use for throttling or brief unavailability (S3, EC2, the JSON APIs). */
const TRANSIENT_NAMES = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'SlowDown',
  'RequestTimeout',
  'RequestTimeoutException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'Unavailable',
  'InternalError',
  'InternalFailure',
  'InternalServerError',
  'PriorRequestNotComplete',
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'TimeoutError',
]);

/** Socket-level failures (Node, undici): the service was not reached or the connection broke. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

interface AwsLikeError {
  name?: unknown;
  code?: unknown;
  Code?: unknown;
  cause?: unknown;
  errors?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/** The error itself, its `cause` chain and an AggregateError's members (bounded). */
function* related(err: unknown, depth = 0): Generator<AwsLikeError> {
  if (!err || typeof err !== 'object' || depth > 5) return;
  const e = err as AwsLikeError;
  yield e;
  if (e.cause) yield* related(e.cause, depth + 1);
  if (Array.isArray(e.errors)) for (const inner of e.errors.slice(0, 5)) yield* related(inner, depth + 1);
}

/** HTTP status of an SDK error (`$metadata.httpStatusCode`), if the service answered at all. */
export function awsStatus(err: unknown): number | undefined {
  for (const e of related(err)) {
    const status = e.$metadata?.httpStatusCode;
    if (typeof status === 'number') return status;
  }
  return undefined;
}

/** The service's error code (SDK errors carry it as `name`), or a socket error's `code`. */
export function awsErrorName(err: unknown): string {
  const e = err && typeof err === 'object' ? (err as AwsLikeError) : undefined;
  for (const v of [e?.name, e?.Code, e?.code]) if (typeof v === 'string' && v && v !== 'Error') return v;
  return 'Error';
}

/** Throttling, 5xx, 429 or a network failure: worth retrying. */
export function isTransientAwsError(err: unknown): boolean {
  for (const e of related(err)) {
    const status = e.$metadata?.httpStatusCode;
    if (typeof status === 'number' && (status >= 500 || status === 429)) return true;
    if (e.$retryable) return true;
    for (const v of [e.name, e.Code, e.code]) {
      if (typeof v === 'string' && (TRANSIENT_NAMES.has(v) || NETWORK_CODES.has(v))) return true;
    }
  }
  return false;
}

/** `<name>: <message>`, one line, bounded: for PluginError messages. */
export function describeAwsError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const name = awsErrorName(err);
  const text = message && message !== name && message !== 'UnknownError' ? `${name}: ${message}` : name;
  return text.replace(/\s+/g, ' ').slice(0, 300);
}
