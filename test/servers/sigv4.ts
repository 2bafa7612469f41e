/**
 * SigV4 verification for the AWS stand-ins, with the temporary credentials a Lambda function
 * really has: an `ASIA…` access key, its secret, and a session token. AWS refuses a request signed
 * with temporary credentials unless the token travels with it (header `X-Amz-Security-Token`, or
 * the query parameter of a presigned URL) and is covered by the signature; so do these checks.
 *
 * The expected signature is recomputed with AWS's own signer (@smithy/signature-v4) over the
 * request as received, at the instant it claims, with the credentials the stand-in knows.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';

export interface TestCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/**
 * What every stand-in and every test client uses: temporary credentials as Lambda's environment
 * carries them. The token has `/`, `+` and `=` so its URI encoding is exercised.
 */
export const TEST_CREDENTIALS = {
  accessKeyId: 'ASIALOCALTEST0000001',
  secretAccessKey: 'local-secret/with+specials',
  sessionToken: 'IQoJb3JpZ2luX2VjELocal/Session+Token//test==',
} as const satisfies TestCredentials;

export const TEST_REGION = 'us-east-1';

const CLOCK_SKEW_MS = 5 * 60_000;

export interface SigV4Scope {
  readonly service: string;
  readonly region: string;
  readonly credentials: TestCredentials;
}

function parseAmzDate(value: string | undefined): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  if (!m) return undefined;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

export function parseAuthorization(header: string | undefined): { accessKeyId: string; date: string; region: string; service: string; signedHeaders: string[]; signature: string } | undefined {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return undefined;
  return { accessKeyId: m[1]!, date: m[2]!, region: m[3]!, service: m[4]!, signedHeaders: m[5]!.split(';'), signature: m[6]! };
}

function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return value === undefined ? undefined : Array.isArray(value) ? value.join(',') : value;
}

/** Checks an `Authorization: AWS4-HMAC-SHA256 …` request; returns why it is refused, if it is. */
export async function verifyHeaderSignature(req: IncomingMessage, body: string, scope: SigV4Scope): Promise<string | undefined> {
  const auth = parseAuthorization(headerValue(req, 'authorization'));
  if (!auth) return 'missing or malformed SigV4 Authorization header';
  if (auth.service !== scope.service) return `signed for service ${auth.service}, expected ${scope.service}`;
  if (auth.region !== scope.region) return `signed for region ${auth.region}, expected ${scope.region}`;
  if (auth.accessKeyId !== scope.credentials.accessKeyId) return `unknown access key ${auth.accessKeyId}`;
  const amzDate = headerValue(req, 'x-amz-date') ?? '';
  const signingDate = parseAmzDate(amzDate);
  if (!signingDate || !amzDate.startsWith(auth.date)) return 'missing or inconsistent X-Amz-Date';
  if (Math.abs(Date.now() - signingDate.getTime()) > CLOCK_SKEW_MS) return 'signature date is more than 5 minutes off';
  if (!auth.signedHeaders.includes('host') || !auth.signedHeaders.includes('x-amz-date')) return 'host and x-amz-date must be signed';
  if (scope.credentials.sessionToken !== undefined) {
    const token = headerValue(req, 'x-amz-security-token');
    if (token === undefined) return 'temporary credentials: X-Amz-Security-Token is missing';
    if (token !== scope.credentials.sessionToken) return 'the security token included in the request is invalid';
    if (!auth.signedHeaders.includes('x-amz-security-token')) return 'X-Amz-Security-Token must be signed';
  }
  const headers: Record<string, string> = {};
  for (const name of auth.signedHeaders) {
    const value = headerValue(req, name);
    if (value === undefined) return `signed header ${name} is missing`;
    headers[name] = value;
  }
  const [path, rawQuery = ''] = (req.url ?? '/').split('?', 2) as [string, string?];
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(rawQuery)) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const signer = new SignatureV4({ service: scope.service, region: scope.region, credentials: scope.credentials, sha256: Sha256, applyChecksum: false, uriEscapePath: true });
  const signed = await signer.sign(
    { method: req.method ?? 'POST', protocol: 'http:', hostname: headers.host ?? '', path, query, headers, body },
    { signingDate },
  );
  const expected = parseAuthorization(String(signed.headers.authorization ?? signed.headers.Authorization ?? ''));
  if (!expected) return 'cannot recompute the signature';
  return sameHex(expected.signature, auth.signature) ? undefined : 'signature does not match';
}

export interface PresignLimits {
  /** Longest X-Amz-Expires accepted, seconds. */
  readonly maxExpires: number;
}

/**
 * Checks a presigned query (`X-Amz-Algorithm`, `-Credential`, `-Date`, `-Expires`,
 * `-SignedHeaders`, `-Security-Token`, `-Signature`); returns why it is refused, if it is.
 */
export async function verifyPresignedQuery(req: IncomingMessage, protocol: string, scope: SigV4Scope & PresignLimits): Promise<string | undefined> {
  const url = new URL(req.url ?? '/', 'http://stand-in');
  const q = url.searchParams;
  for (const name of q.keys()) {
    if (q.getAll(name).length > 1) return `parameter ${name} repeated`;
  }
  const get = (name: string): string | undefined => q.get(name) ?? undefined;
  if (get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return 'X-Amz-Algorithm must be AWS4-HMAC-SHA256';
  const credential = /^([^/]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request$/.exec(get('X-Amz-Credential') ?? '');
  if (!credential) return 'malformed X-Amz-Credential';
  const [, accessKeyId, day, region, service] = credential;
  if (accessKeyId !== scope.credentials.accessKeyId) return `unknown access key ${accessKeyId}`;
  if (service !== scope.service) return `signed for service ${service}`;
  if (region !== scope.region) return `signed for region ${region}`;
  const amzDate = get('X-Amz-Date');
  const signedAt = parseAmzDate(amzDate);
  if (!signedAt || !amzDate!.startsWith(day!)) return 'malformed X-Amz-Date';
  const expires = Number(get('X-Amz-Expires'));
  if (!Number.isInteger(expires) || expires < 1 || expires > scope.maxExpires) return `X-Amz-Expires must be 1..${scope.maxExpires}`;
  const now = Date.now();
  if (signedAt.getTime() > now + CLOCK_SKEW_MS) return 'X-Amz-Date is in the future';
  if (now > signedAt.getTime() + expires * 1000) return 'the presigned URL has expired';
  if (scope.credentials.sessionToken !== undefined) {
    const token = get('X-Amz-Security-Token');
    if (token === undefined) return 'temporary credentials: X-Amz-Security-Token is missing';
    if (token !== scope.credentials.sessionToken) return 'the security token included in the request is invalid';
  }
  const signature = get('X-Amz-Signature');
  if (!signature || !/^[0-9a-f]{64}$/.test(signature)) return 'missing X-Amz-Signature';
  const signedHeaders = (get('X-Amz-SignedHeaders') ?? '').split(';');
  if (!signedHeaders.includes('host')) return 'host must be signed';
  if (!req.headers.host) return 'no Host header';

  // The same request, unsigned, presigned at the same instant with the known credentials: the
  // signer puts the session token back into the query it signs, so a URL whose token was not
  // part of its signature does not match.
  const query: Record<string, string> = {};
  for (const [name, value] of q) {
    if (!/^X-Amz-/i.test(name)) query[name] = value;
  }
  const headers: Record<string, string> = {};
  for (const name of signedHeaders) {
    const value = headerValue(req, name);
    if (value === undefined) return `signed header ${name} is missing`;
    headers[name] = value;
  }
  const signer = new SignatureV4({ service: scope.service, region: scope.region, credentials: scope.credentials, sha256: Sha256 });
  const presigned = await signer.presign(
    { method: req.method ?? 'GET', protocol, hostname: req.headers.host, path: url.pathname, query, headers },
    { signingDate: signedAt, expiresIn: expires },
  );
  const expected = presigned.query?.['X-Amz-Signature'];
  if (typeof expected !== 'string') return 'cannot recompute the signature';
  return sameHex(expected, signature) ? undefined : 'signature does not match';
}
