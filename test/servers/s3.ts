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
  http.removeAllListeners('request');
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    requests++;
    const fault = faults.shift();
    if (!fault) return serve(req, res);
    req.resume();
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${fault.code}</Code><Message>injected ${fault.code}</Message><RequestId>stand-in-${requests}</RequestId></Error>`;
    res.writeHead(fault.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), ...(fault.status === 503 ? { 'retry-after': '1' } : {}) });
    res.end(body);
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
