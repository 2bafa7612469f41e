/**
 * Turns an install `source` into a byte stream of a `.tar.gz`. Nothing is buffered whole.
 *
 * - `local://name[@version]`: a version from the plugin catalog (`SourceOptions.catalog`: a
 *   directory locally, `catalog/<name>/<version>.tar.gz` in the artifact bucket on AWS; latest =
 *   the highest version);
 * - a filesystem path (a tarball, or a plugin directory packed deterministically), also as
 *   `file://`: only where `SourceOptions.localPaths` allows it (the CLI: anywhere;
 *   `pluginctl serve`: under its `--sources-dir`; the AWS deployment: never). Refused with
 *   InvalidInput ("not served here") otherwise;
 * - `s3://bucket/key`: GetObject through `SourceOptions.s3` (absent in embedded mode: refused);
 * - `https://…`: streamed with `SourceOptions.fetch` (absent in embedded mode: refused). Needs a
 *   pinned sha256 (checked by Prepare, see `assertSourcePinned`). Redirects are followed by hand
 *   (at most 5), each hop held to the same scheme rule. `http://` only for hosts listed in
 *   `SourceOptions.allowHttpHosts` (internal mirrors);
 * - `github://owner/repo#ref`: GitHub's tarball of that ref
 *   (`https://codeload.github.com/<owner>/<repo>/tar.gz/<ref>`), fetched like any https:// source;
 * - `artifact://sha256/<hex>`: a tarball already validated and stored in the artifact store
 *   (`SourceOptions.artifacts`), by its digest. A fleet rollout validates its source once and
 *   hands each install this reference, so every target gets exactly the bytes checked at the
 *   start, however the original source changes meanwhile.
 *
 * Errors: absent → SourceNotFound; throttling, 5xx, network failures (also mid-stream) →
 * HostUnreachable (Prepare retries it); malformed → InvalidInput; a filesystem path this
 * deployment does not serve → InvalidInput (400), naming why.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { S3Client } from '@aws-sdk/client-s3';
import { awsErrorName, awsStatus, describeAwsError, isTransientAwsError } from '../aws-errors.ts';
import { s3BodyStream } from '../artifacts/s3-body-stream.ts';
import { PluginError } from '../errors.ts';
import { artifactKey, type ArtifactStore } from '../artifacts/artifact-store.ts';
import { chooseVersion, type PluginCatalog } from '../catalog/plugin-catalog.ts';
import { packDirectory } from '../tarball/pack-directory.ts';

export interface ResolvedSource {
  stream: Readable;
  /** What was resolved, for logs and error messages (never contains secrets). */
  description: string;
}

export interface SourceOptions {
  /** Where `local://name[@version]` resolves (absent: such sources are not found). */
  catalog?: PluginCatalog;
  /**
   * Which filesystem paths may be sources: `any` (the CLI, run by the person whose files they
   * are), `{ under }` (a directory an operator named: `pluginctl serve --sources-dir`), absent:
   * none (the api Lambda and Prepare on AWS have no filesystem of the caller's to read).
   */
  localPaths?: 'any' | { under: string };
  /** Relative paths resolve against this (the CLI's working directory). */
  cwd?: string;
  /** Enables `s3://bucket/key` sources (the AWS composition root passes its client). */
  s3?: S3Client;
  /**
   * Enables `https://` and `github://` sources (the AWS composition root passes
   * `globalThis.fetch`). Absent, they are refused as unavailable in embedded mode, so nothing
   * reaches the network unless a composition root asked for it.
   */
  fetch?: typeof fetch;
  /**
   * Host names (as in the URL, e.g. `mirror.internal` or `127.0.0.1`) whose plain `http://` URLs
   * are accepted: for internal mirrors. Default none: `http://` is refused.
   */
  allowHttpHosts?: readonly string[];
  /** Enables `artifact://sha256/<hex>` sources (Prepare passes its artifact store). */
  artifacts?: Pick<ArtifactStore, 'open'>;
}

const ARTIFACT_REF = /^artifact:\/\/sha256\/([0-9a-f]{64})$/;

/** The source naming a stored, validated tarball by its digest. */
export function artifactSource(sha256: string): string {
  return `artifact://sha256/${sha256}`;
}

const LOCAL_REF = /^local:\/\/([^@/]+)(?:@([^@/]+))?$/;

export { compareVersions } from '../catalog/plugin-catalog.ts';

async function openPath(path: string, description: string): Promise<ResolvedSource> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new PluginError('SourceNotFound', `source ${description} does not exist`, 'give a path to a plugin directory or .tar.gz, or local://name[@version]');
  }
  if (st.isDirectory()) return { stream: packDirectory(path), description };
  if (st.isFile()) return { stream: createReadStream(path), description };
  throw new PluginError('InvalidInput', `source ${description} is neither a file nor a directory`, 'give a plugin directory or a .tar.gz file');
}

async function resolveCatalog(name: string, version: string | undefined, catalog: PluginCatalog | undefined): Promise<ResolvedSource> {
  if (!catalog) throw new PluginError('SourceNotFound', 'no plugin catalog is configured', 'set PLUGINCTL_CATALOG to a catalog directory');
  const chosen = await chooseVersion(catalog, name, version);
  return { stream: await catalog.open(name, chosen), description: `local://${name}@${chosen}` };
}

const PATHS_HINT = 'use local://name[@version] (the catalog), s3://, https:// or github:// sources';

/**
 * The absolute path a filesystem source names, if this deployment serves it. Symbolic links are
 * resolved first, so a link inside the allowed directory that leads out of it is refused.
 */
async function allowedPath(source: string, path: string, options: SourceOptions): Promise<string> {
  const policy = options.localPaths;
  if (!policy) {
    throw new PluginError('InvalidInput', `filesystem path sources are not served here: ${JSON.stringify(source.slice(0, 200))}`, PATHS_HINT);
  }
  const base = policy === 'any' ? (options.cwd ?? process.cwd()) : policy.under;
  const absolute = isAbsolute(path) ? path : resolve(base, path);
  if (policy === 'any') return absolute;
  const root = await realpath(policy.under).catch(() => resolve(policy.under));
  let real: string;
  try {
    real = await realpath(absolute);
  } catch {
    // Missing: judged by its name, so a path outside is refused, not reported as absent.
    real = absolute;
  }
  const rel = relative(root, real);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('..')) {
    throw new PluginError('InvalidInput', `source ${JSON.stringify(source.slice(0, 200))} is outside the sources directory`, `put the plugin under ${policy.under} (pluginctl serve --sources-dir), or ${PATHS_HINT}`);
  }
  return real;
}

export async function resolveSource(source: string, options: SourceOptions = {}): Promise<ResolvedSource> {
  if (typeof source !== 'string' || source.length === 0 || source.length > 4096 || /[\0\n\r]/.test(source)) {
    throw new PluginError('InvalidInput', 'source must be a non-empty path or URL on one line', 'give a path, local://name[@version], s3://bucket/key or https://…');
  }
  const local = LOCAL_REF.exec(source);
  if (local) return resolveCatalog(local[1]!, local[2], options.catalog);
  const stored = ARTIFACT_REF.exec(source);
  if (stored && options.artifacts) return { stream: await options.artifacts.open(artifactKey(stored[1]!)), description: source };
  const scheme = schemeOf(source);
  if (scheme === 's3' && options.s3) return resolveS3(source, options.s3);
  if ((scheme === 'https' || scheme === 'http' || scheme === 'github') && options.fetch) {
    const url = scheme === 'github' ? githubTarballUrl(source) : source;
    return resolveHttp(url, scheme === 'github' ? source : safeDescription(url), options.fetch, options.allowHttpHosts ?? []);
  }
  if (scheme && scheme !== 'file') {
    throw new PluginError('InvalidInput', `source scheme ${scheme}:// is not available here`, 'use local://name[@version]; s3://, https:// and github:// sources need the AWS deployment; plain paths need the CLI (or pluginctl serve --sources-dir)');
  }
  const path = scheme === 'file' ? fileUrlPath(source) : source;
  return openPath(await allowedPath(source, path, options), source);
}

function fileUrlPath(source: string): string {
  try {
    return decodeURIComponent(new URL(source).pathname);
  } catch {
    throw new PluginError('InvalidInput', `invalid file URL ${JSON.stringify(source.slice(0, 200))}`, 'use file:///absolute/path');
  }
}

function schemeOf(source: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):\/\//i.exec(source)?.[1]?.toLowerCase();
}

/**
 * Sources fetched over HTTP(S) from outside (https://, http:// mirrors, github://) must come
 * with a pinned sha256: the bytes are not ours until they match it. Prepare calls this before
 * fetching; the HTTP API answers 422 for it.
 */
export function assertSourcePinned(source: string, sha256: string | null | undefined): void {
  const scheme = schemeOf(source);
  if ((scheme === 'https' || scheme === 'http' || scheme === 'github') && !sha256) {
    throw new PluginError('UnpinnedSource', `${scheme}:// sources need a pinned sha256`, 'pass --sha256 / sha256 with the tarball\'s SHA-256');
  }
}

// --- s3:// --------------------------------------------------------------------------------------

const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** `s3://bucket/key` → bucket and key (taken literally, as the AWS CLI does). */
export function parseS3Source(source: string): { bucket: string; key: string } {
  const match = /^s3:\/\/([^/]+)\/(.+)$/i.exec(source);
  const bucket = match?.[1];
  const key = match?.[2];
  if (!bucket || !key || !S3_BUCKET.test(bucket) || Buffer.byteLength(key) > 1024) {
    throw new PluginError('InvalidInput', `invalid S3 source ${JSON.stringify(source.slice(0, 200))}`, 'use s3://<bucket>/<key>');
  }
  return { bucket, key };
}

async function resolveS3(source: string, client: S3Client): Promise<ResolvedSource> {
  const { bucket, key } = parseS3Source(source);
  // Loaded on demand: the embedded CLI never pays for the S3 client's module graph.
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  let body: unknown;
  try {
    body = (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body;
  } catch (err) {
    const name = awsErrorName(err);
    const status = awsStatus(err);
    if (name === 'NoSuchKey' || name === 'NoSuchBucket' || name === 'NotFound' || name === 'AccessDenied' || status === 404 || status === 403) {
      throw new PluginError('SourceNotFound', `source ${source} cannot be read: ${describeAwsError(err)}`, 'check the bucket and key, and that the installer may read them', { cause: err });
    }
    if (isTransientAwsError(err)) {
      throw new PluginError('HostUnreachable', `source ${source}: S3 failed: ${describeAwsError(err)}`, 'S3 was throttling or unreachable; the step is retried', { cause: err });
    }
    throw err;
  }
  const stream = s3BodyStream(body);
  if (!stream) throw new PluginError('SourceNotFound', `source ${source} has no body`, 'check the object');
  return { stream: transientOnError(stream, `source ${source}`), description: source };
}

// --- https://, http:// (allow-listed), github:// ---------------------------------------------------

const GITHUB_OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const GITHUB_REPO = /^[A-Za-z0-9._-]{1,100}$/;
/** A conservative subset of git ref names: no `..`, no `//`, no leading or trailing `/` or `.`. */
const GIT_REF = /^(?!.*\.\.)(?!.*\/\/)(?![/.-])[A-Za-z0-9._/-]{1,200}(?<![/.])$/;
const GITHUB_HINT = 'use github://<owner>/<repo>#<ref> (a tag, branch or commit) with a pinned sha256';

/** `github://owner/repo#ref` → the URL of GitHub's tarball of that ref. */
export function githubTarballUrl(source: string): string {
  const match = /^github:\/\/([^/#]*)\/([^/#]*)(?:#(.*))?$/i.exec(source);
  if (!match) throw new PluginError('InvalidInput', `invalid GitHub source ${JSON.stringify(source.slice(0, 200))}`, GITHUB_HINT);
  const [, owner = '', repo = '', ref] = match;
  if (!GITHUB_OWNER.test(owner) || !GITHUB_REPO.test(repo) || repo === '.' || repo === '..') {
    throw new PluginError('InvalidInput', `invalid GitHub repository ${JSON.stringify(`${owner}/${repo}`.slice(0, 200))}`, GITHUB_HINT);
  }
  if (!ref) throw new PluginError('InvalidInput', 'github sources need a ref', GITHUB_HINT);
  if (!GIT_REF.test(ref)) throw new PluginError('InvalidInput', `invalid git ref ${JSON.stringify(ref.slice(0, 200))}`, GITHUB_HINT);
  const path = ref.split('/').map(encodeURIComponent).join('/');
  return `https://codeload.github.com/${owner}/${repo}/tar.gz/${path}`;
}

/** Scheme, host and path only: query strings (signatures, tokens) never reach logs. */
function safeDescription(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url.replace(/[?#].*$/, '');
  }
}

function checkUrl(raw: string, allowHttpHosts: readonly string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new PluginError('InvalidInput', `invalid URL ${JSON.stringify(safeDescription(raw).slice(0, 200))}`, 'give a full https:// URL');
  }
  if (url.username || url.password) {
    throw new PluginError('InvalidInput', 'source URLs must not carry credentials', 'use a presigned or public URL');
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:') {
    if (allowHttpHosts.includes(url.hostname)) return url;
    throw new PluginError('InvalidInput', `plain http:// is refused for ${url.hostname}: sources must use https://`, 'use an https:// URL (http:// is only for internal mirrors listed in allowHttpHosts)');
  }
  throw new PluginError('InvalidInput', `source scheme ${url.protocol}// is not allowed here`, 'use an https:// URL');
}

const MAX_REDIRECTS = 5;

/** Why a fetch() call failed before any answer: DNS says "no such host", or a transient failure. */
function fetchFailure(err: unknown, description: string): PluginError {
  const codes: string[] = [];
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  const detail = `${err instanceof Error ? err.message : String(err)}${codes.length ? ` (${codes.join(', ')})` : ''}`;
  if (codes.includes('ENOTFOUND')) {
    return new PluginError('SourceNotFound', `source ${description}: host not found: ${detail}`, 'check the URL', { cause: err });
  }
  return new PluginError('HostUnreachable', `source ${description} could not be fetched: ${detail}`, 'the server was unreachable; the step is retried', { cause: err });
}

async function resolveHttp(raw: string, description: string, fetchImpl: typeof fetch, allowHttpHosts: readonly string[]): Promise<ResolvedSource> {
  let url = checkUrl(raw, allowHttpHosts);
  for (let hop = 0; ; hop++) {
    let response: Response;
    try {
      response = await fetchImpl(url, { redirect: 'manual', headers: { accept: 'application/gzip, application/octet-stream, */*' } });
    } catch (err) {
      throw fetchFailure(err, description);
    }
    const status = response.status;
    if (status >= 300 && status < 400 && status !== 304) {
      await response.body?.cancel().catch(() => undefined);
      const location = response.headers.get('location');
      if (!location) throw new PluginError('SourceNotFound', `source ${description} redirected (HTTP ${status}) without a location`, 'check the URL');
      if (hop >= MAX_REDIRECTS) throw new PluginError('SourceNotFound', `source ${description} redirected more than ${MAX_REDIRECTS} times`, 'check the URL');
      // Each hop obeys the same rule: no downgrade to http:// outside the allow-list.
      url = checkUrl(new URL(location, url).href, allowHttpHosts);
      continue;
    }
    if (status >= 200 && status < 300) {
      if (!response.body) throw new PluginError('SourceNotFound', `source ${description} answered without a body`, 'check the URL');
      const stream = Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>);
      return { stream: transientOnError(stream, `source ${description}`), description };
    }
    await response.body?.cancel().catch(() => undefined);
    if (status === 408 || status === 429 || status >= 500) {
      throw new PluginError('HostUnreachable', `source ${description} answered HTTP ${status}`, 'the server was unavailable; the step is retried');
    }
    const what = status === 404 || status === 410 ? 'does not exist' : status === 401 || status === 403 ? 'is not accessible' : 'cannot be fetched';
    throw new PluginError('SourceNotFound', `source ${description} ${what} (HTTP ${status})`, 'check the URL');
  }
}

/**
 * The body of a remote source, with a broken connection mid-stream reported as HostUnreachable
 * (retried) instead of a bare socket error. Destroying the result stops the download.
 */
function transientOnError(source: Readable, what: string): Readable {
  const out = new PassThrough();
  source.on('error', (err) => {
    out.destroy(new PluginError('HostUnreachable', `${what} broke off while downloading: ${err.message}`, 'the connection failed; the step is retried', { cause: err }));
  });
  out.on('close', () => {
    if (!source.destroyed) source.destroy();
  });
  source.pipe(out);
  return out;
}
