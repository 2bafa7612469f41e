/**
 * A real S3 protocol endpoint on loopback: `s3rver` (v3.7, files in a temporary directory, one
 * bucket created up front), with a real `S3Client` pointed at it.
 *
 * Stand-in notes, checked against @aws-sdk/client-s3 3.1175:
 * - Path-style addressing (`forcePathStyle: true`): s3rver's virtual-host mode needs DNS names.
 * - The SDK's default flexible checksums (`requestChecksumCalculation`/`responseChecksumValidation`
 *   = WHEN_SUPPORTED) work for what the adapters use: lib-storage sends every part as a Buffer
 *   (a CRC32 header s3rver ignores, no `aws-chunked` trailer), and s3rver returns no checksum
 *   headers, so nothing is validated on the way back. A plain PutObject with a *stream* body of
 *   unknown length would be sent `aws-chunked` and stored with its framing by s3rver: pass
 *   `{ requestChecksumCalculation: 'WHEN_REQUIRED' }` through `clientConfig` for such a test.
 * - s3rver checks no signatures against real credentials (any key pair is accepted), has no
 *   lifecycle rules, and copies objects up to any size in one CopyObject.
 * - s3rver 3.7 ignores the conditional-write headers of PutObject (`If-None-Match: *`,
 *   `If-Match: <etag>`) and DeleteObject (`If-Match`): it would overwrite or delete regardless.
 *   This stand-in checks them in front of s3rver, as S3 does: 412 PreconditionFailed when an
 *   object exists (If-None-Match) or its ETag differs (If-Match), 404 NoSuchKey for If-Match on
 *   a missing key. Writes and deletes of one key are served one at a time (the check and the
 *   write are atomic, as in S3), so racing conditional writes get exactly one winner.
 *
 * Faults: `failNext(code, status, times)` answers the next `times` requests with an S3 XML error
 * (e.g. `SlowDown`, 503) before s3rver sees them. `requests` counts what reached the endpoint.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  /** s3rver's FilesystemStore; `getMetadata` throws when the object does not exist. */
  store: { getMetadata(bucket: string, key: string): Promise<{ etag: string }> };
  close(): Promise<void>;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  httpServer?: Server;
}
type S3rverConstructor = new (options: Record<string, unknown>) => S3rverInstance;

// s3rver ships CommonJS without type definitions.
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

export interface S3StandIn {
  endpoint: string;
  client: S3Client;
  bucket: string;
  /** s3rver's storage directory (objects live under `<dir>/<bucket>/`). */
  directory: string;
  /** Requests that reached the endpoint (failed ones included). */
  readonly requests: number;
  /** Answer the next `times` requests with an S3 error document instead of serving them. */
  failNext(code: string, status: number, times?: number): void;
  /** A fresh client on this endpoint (e.g. `{ maxAttempts: 1 }` for fault tests). */
  newClient(config?: Partial<S3ClientConfig>): S3Client;
  stop(): Promise<void>;
}

/** A PutObject (not a copy, not a multipart part) or DeleteObject of one key, path-style. */
interface ObjectWrite {
  bucket: string;
  key: string;
  method: 'PUT' | 'DELETE';
}

function objectWrite(req: IncomingMessage): ObjectWrite | undefined {
  if (req.method !== 'PUT' && req.method !== 'DELETE') return undefined;
  const url = new URL(req.url ?? '/', 'http://stand-in');
  if (url.searchParams.has('uploadId') || url.searchParams.has('partNumber') || req.headers['x-amz-copy-source']) return undefined;
  const [bucket, ...rest] = url.pathname.slice(1).split('/');
  if (!bucket || rest.length === 0 || rest.join('') === '') return undefined;
  // Bucket subresources (?tagging, ?cors…) have no key; object subresources are not served here.
  if ([...url.searchParams.keys()].some((k) => k !== 'x-id')) return undefined;
  return { bucket, key: rest.map(decodeURIComponent).join('/'), method: req.method };
}

const unquote = (etag: string): string => etag.replace(/^W\//, '').replace(/^"|"$/g, '');

/** S3's answer when the request's If-None-Match / If-Match does not hold; undefined when it does. */
async function checkPreconditions(server: S3rverInstance, target: ObjectWrite, req: IncomingMessage): Promise<{ status: number; code: string; message: string } | undefined> {
  const ifNoneMatch = target.method === 'PUT' ? req.headers['if-none-match'] : undefined;
  const ifMatch = req.headers['if-match'];
  if (ifNoneMatch === undefined && ifMatch === undefined) return undefined;
  const current = await server.store.getMetadata(target.bucket, target.key).then((m) => unquote(m.etag), () => undefined);
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch !== '*') return { status: 501, code: 'NotImplemented', message: 'If-None-Match accepts only *' };
    if (current !== undefined) return { status: 412, code: 'PreconditionFailed', message: 'At least one of the pre-conditions you specified did not hold' };
  }
  if (ifMatch !== undefined) {
    if (current === undefined) return { status: 404, code: 'NoSuchKey', message: 'The specified key does not exist.' };
    if (unquote(ifMatch) !== current) return { status: 412, code: 'PreconditionFailed', message: 'At least one of the pre-conditions you specified did not hold' };
  }
  return undefined;
}

export interface StartS3Options {
  bucket?: string;
  /** Extra S3Client settings for `client` (e.g. `maxAttempts`, checksum behaviour). */
  clientConfig?: Partial<S3ClientConfig>;
}

export async function startS3(options: StartS3Options = {}): Promise<S3StandIn> {
  const bucket = options.bucket ?? 'plugin-artifacts';
  const directory = await mkdtemp(join(tmpdir(), 's3rver-'));
  const server = new S3rver({
    silent: true,
    address: '127.0.0.1',
    port: 0,
    directory,
    configureBuckets: [{ name: bucket }],
    // Path-style only; the default service endpoint would route *.amazonaws.com hosts as vhosts.
    vhostBuckets: false,
  });
  const { port } = await server.run();
  const http = server.httpServer;
  if (!http) throw new Error('s3rver did not start an HTTP server');

  let requests = 0;
  const faults: Array<{ code: string; status: number }> = [];
  const serve = server.callback();
  const answer = (res: ServerResponse, status: number, code: string, message: string): void => {
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>stand-in-${requests}</RequestId></Error>`;
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), ...(status === 503 ? { 'retry-after': '1' } : {}) });
    res.end(body);
  };
  const keyLocks = new Map<string, Promise<void>>();
  http.removeAllListeners('request');
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    requests++;
    const fault = faults.shift();
    if (fault) {
      req.resume();
      answer(res, fault.status, fault.code, `injected ${fault.code}`);
      return;
    }
    const target = objectWrite(req);
    if (!target) return serve(req, res);
    // One write or delete of a key at a time: the precondition holds until the write is done.
    const lockKey = `${target.bucket}/${target.key}`;
    const previous = keyLocks.get(lockKey) ?? Promise.resolve();
    const done = new Promise<void>((resolve) => res.once('close', resolve));
    const mine = previous.then(() => done);
    keyLocks.set(lockKey, mine);
    void mine.then(() => {
      if (keyLocks.get(lockKey) === mine) keyLocks.delete(lockKey);
    });
    void previous.then(async () => {
      const refusal = await checkPreconditions(server, target, req);
      if (!refusal) return serve(req, res);
      req.resume();
      answer(res, refusal.status, refusal.code, refusal.message);
    }).catch((err: unknown) => {
      req.resume();
      answer(res, 500, 'InternalError', `stand-in precondition check failed: ${String(err)}`);
    });
  });

  const endpoint = `http://127.0.0.1:${port}`;
  const clients: S3Client[] = [];
  const newClient = (config: Partial<S3ClientConfig> = {}): S3Client => {
    const client = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      ...options.clientConfig,
      ...config,
    });
    clients.push(client);
    return client;
  };
  const client = newClient();

  let stopped = false;
  return {
    endpoint,
    client,
    bucket,
    directory,
    get requests() {
      return requests;
    },
    failNext(code: string, status: number, times = 1) {
      for (let i = 0; i < times; i++) faults.push({ code, status });
    },
    newClient,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const c of clients) c.destroy();
      http.closeAllConnections();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
