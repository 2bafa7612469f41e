/**
 * Remote install sources: `s3://` through the real S3Client against s3rver, `http://` from a
 * loopback server allowed through `allowHttpHosts` (the internal-mirror escape hatch), `https://`
 * and `github://` through an injected fetch (no network here: GitHub is never contacted), the
 * pinned-sha256 rule enforced by Prepare before any byte is fetched, and the error mapping
 * (404 → SourceNotFound, 5xx / refused connection / broken stream → HostUnreachable).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { localDeps, type LocalDeps } from '../../lambdas/commons/local-deps.ts';
import { PluginError } from '../../lambdas/core/errors.ts';
import { assertSourcePinned, githubTarballUrl, parseS3Source, resolveSource, type SourceOptions } from '../../lambdas/core/sources/resolve-source.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { prepareInstall } from '../../lambdas/core/steps/prepare-install.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { startS3, type S3StandIn } from '../servers/s3.ts';
import { failure } from '../helpers/plugin-error.ts';

const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}


function syncFailure(fn: () => unknown): PluginError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PluginError);
    return error as PluginError;
  }
  throw new Error('expected a failure');
}

// --- a loopback HTTP server with scripted routes ------------------------------------------------

type Route = (req: IncomingMessage, res: ServerResponse) => void;
interface Web {
  base: string;
  port: number;
  hits: string[];
  routes: Map<string, Route>;
  server: Server;
}

async function startWeb(): Promise<Web> {
  const hits: string[] = [];
  const routes = new Map<string, Route>();
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const route = routes.get((req.url ?? '').replace(/\?.*$/, ''));
    if (route) return route(req, res);
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, port, hits, routes, server };
}

let s3: S3StandIn;
let web: Web;
let tarball: Buffer;
let tmp: string;

beforeAll(async () => {
  [s3, web, tarball] = await Promise.all([startS3(), startWeb(), goodTarball({ 'skills/remote/SKILL.md': 'remote\n' })]);
  web.routes.set('/plugin.tar.gz', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': String(tarball.length) }).end(tarball);
  });
});
afterAll(async () => {
  web?.server.closeAllConnections();
  await new Promise<void>((resolve) => (web ? web.server.close(() => resolve()) : resolve()));
  await s3?.stop();
});
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'remote-src-'));
  web.hits.length = 0;
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const httpOptions = (): SourceOptions => ({ fetch: globalThis.fetch, allowHttpHosts: ['127.0.0.1'] });

/** A fetch that never touches the network: records the URL and answers from `answer`. */
function fakeFetch(answer: (url: string) => Response): { fetch: typeof fetch; urls: string[] } {
  const urls: string[] = [];
  const fn = (input: string | URL | Request) => {
    const url = input instanceof Request ? input.url : String(input);
    urls.push(url);
    return Promise.resolve(answer(url));
  };
  return { fetch: fn as typeof fetch, urls };
}

describe('s3:// sources', () => {
  it('stream the object through the given S3 client', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'catalog/remote/1.0.0.tar.gz', Body: tarball }));
    const r = await resolveSource(`s3://${s3.bucket}/catalog/remote/1.0.0.tar.gz`, { s3: s3.client });
    expect(r.description).toBe(`s3://${s3.bucket}/catalog/remote/1.0.0.tar.gz`);
    expect(sha256(await collect(r.stream))).toBe(sha256(tarball));
  });

  it('a missing key or bucket is SourceNotFound; a malformed URL is InvalidInput; no client is the embedded refusal', async () => {
    expect((await failure(resolveSource(`s3://${s3.bucket}/nope.tar.gz`, { s3: s3.client }))).code).toBe('SourceNotFound');
    expect((await failure(resolveSource('s3://no-such-bucket/x.tar.gz', { s3: s3.client }))).code).toBe('SourceNotFound');
    for (const bad of ['s3://', 's3://bucket', 's3://bucket/', 's3://UPPER/key', 's3://a/key']) {
      expect((await failure(resolveSource(bad, { s3: s3.client }))).code, bad).toBe('InvalidInput');
    }
    expect(parseS3Source('s3://my.bucket-1/a/b c+d.tar.gz')).toEqual({ bucket: 'my.bucket-1', key: 'a/b c+d.tar.gz' });
    const e = await failure(resolveSource(`s3://${s3.bucket}/x.tar.gz`));
    expect(e.code).toBe('InvalidInput');
    expect(e.message).toContain('s3:// is not available here');
    expect(e.hint).toContain('need the AWS deployment');
  });

  it('SlowDown is HostUnreachable (retried by the workflow)', async () => {
    s3.failNext('SlowDown', 503);
    const e = await failure(resolveSource(`s3://${s3.bucket}/catalog/remote/1.0.0.tar.gz`, { s3: s3.newClient({ maxAttempts: 1 }) }));
    expect(e.code).toBe('HostUnreachable');
  });

  it('Prepare installs from s3:// without a pinned sha256 (the bucket is ours)', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'p.tar.gz', Body: tarball }));
    const deps = await embedded({ s3: s3.client });
    const plan = await prepareInstall(deps, { workspace: 'ws', source: `s3://${s3.bucket}/p.tar.gz`, stamp: newStamp(), execution: 'ex' });
    expect(plan.sha256).toBe(sha256(tarball));
  });
});

async function embedded(sources: SourceOptions): Promise<LocalDeps> {
  const deps = localDeps({ home: tmp });
  await deps.workspaces.ensure('ws');
  return { ...deps, sources: { ...deps.sources, ...sources } };
}

describe('http(s):// sources', () => {
  it('http://127.0.0.1 streams when the host is in allowHttpHosts (internal mirror)', async () => {
    const r = await resolveSource(`${web.base}/plugin.tar.gz?token=secret`, httpOptions());
    expect(sha256(await collect(r.stream))).toBe(sha256(tarball));
    // Query strings (signatures, tokens) stay out of descriptions and logs.
    expect(r.description).toBe(`${web.base}/plugin.tar.gz`);
  });

  it('http:// is refused without the allow-list, before any request', async () => {
    for (const options of [{ fetch: globalThis.fetch }, { fetch: globalThis.fetch, allowHttpHosts: ['localhost'] }]) {
      const e = await failure(resolveSource(`${web.base}/plugin.tar.gz`, options));
      expect(e.code).toBe('InvalidInput');
      expect(e.message).toContain('https://');
      expect(e.hint).toContain('internal mirrors');
    }
    expect(web.hits).toEqual([]);
  });

  it('without a fetch (embedded mode) https:// and github:// keep the embedded refusal', async () => {
    for (const s of ['https://example.com/p.tar.gz', 'github://o/r#v1', `${web.base}/plugin.tar.gz`]) {
      const e = await failure(resolveSource(s));
      expect(e.message, s).toContain('is not available here');
      expect(e.hint, s).toContain('need the AWS deployment');
    }
  });

  it('redirects are followed, each hop held to the same rule (no downgrade outside the allow-list)', async () => {
    web.routes.set('/moved', (_req, res) => res.writeHead(302, { location: '/plugin.tar.gz' }).end());
    web.routes.set('/elsewhere', (_req, res) => res.writeHead(301, { location: `http://localhost:${web.port}/plugin.tar.gz` }).end());
    web.routes.set('/loop', (_req, res) => res.writeHead(302, { location: '/loop' }).end());
    expect(sha256(await collect((await resolveSource(`${web.base}/moved`, httpOptions())).stream))).toBe(sha256(tarball));
    const e = await failure(resolveSource(`${web.base}/elsewhere`, httpOptions()));
    expect(e.code).toBe('InvalidInput');
    expect(e.message).toContain('localhost');
    expect((await failure(resolveSource(`${web.base}/loop`, httpOptions()))).message).toContain('redirected more than');
    const fake = fakeFetch(() => new Response(null, { status: 302, headers: { location: 'http://mirror.internal/p.tar.gz' } }));
    expect((await failure(resolveSource('https://example.com/p.tar.gz', { fetch: fake.fetch }))).code).toBe('InvalidInput');
    expect(fake.urls).toEqual(['https://example.com/p.tar.gz']);
  });

  it('404 is SourceNotFound; 403 SourceNotFound; 500/503/429 HostUnreachable; nothing listening HostUnreachable', async () => {
    expect((await failure(resolveSource(`${web.base}/missing.tar.gz`, httpOptions()))).code).toBe('SourceNotFound');
    for (const [status, code] of [[403, 'SourceNotFound'], [410, 'SourceNotFound'], [500, 'HostUnreachable'], [503, 'HostUnreachable'], [429, 'HostUnreachable']] as const) {
      web.routes.set(`/status-${status}`, (_req, res) => res.writeHead(status).end('no'));
      const e = await failure(resolveSource(`${web.base}/status-${status}`, httpOptions()));
      expect(e.code, String(status)).toBe(code);
      expect(e.message).toContain(`HTTP ${status}`);
    }
    const closed = await startWeb();
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    const e = await failure(resolveSource(`${closed.base}/plugin.tar.gz`, httpOptions()));
    expect(e.code).toBe('HostUnreachable');
    expect(e.retryable).toBe(true);
  });

  it('a connection that breaks mid-body fails the stream with HostUnreachable, and Prepare reports that', async () => {
    web.routes.set('/broken.tar.gz', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': String(tarball.length) });
      res.write(tarball.subarray(0, Math.floor(tarball.length / 2)), () => res.socket?.destroy());
    });
    const r = await resolveSource(`${web.base}/broken.tar.gz`, httpOptions());
    const e = await failure(collect(r.stream));
    expect(e.code).toBe('HostUnreachable');

    const deps = await embedded(httpOptions());
    const viaPrepare = await failure(prepareInstall(deps, { workspace: 'ws', source: `${web.base}/broken.tar.gz`, sha256: sha256(tarball), stamp: newStamp(), execution: 'ex' }));
    expect(viaPrepare.code).toBe('HostUnreachable');
  });

  it('https:// streams through the injected fetch; credentials in the URL are refused', async () => {
    const fake = fakeFetch(() => new Response(new Blob([tarball]).stream(), { status: 200 }));
    const r = await resolveSource('https://plugins.example.com/p/1.0.0.tar.gz', { fetch: fake.fetch });
    expect(sha256(await collect(r.stream))).toBe(sha256(tarball));
    expect(fake.urls).toEqual(['https://plugins.example.com/p/1.0.0.tar.gz']);
    expect((await failure(resolveSource('https://user:pw@plugins.example.com/p.tar.gz', { fetch: fake.fetch }))).code).toBe('InvalidInput');
  });
});

describe('the pinned sha256 rule (Prepare, before fetching)', () => {
  it('https://, http:// and github:// sources without sha256 are UnpinnedSource and nothing is fetched', async () => {
    const fake = fakeFetch(() => new Response('unexpected', { status: 500 }));
    const deps = await embedded({ ...httpOptions(), fetch: fake.fetch });
    for (const [source, scheme] of [['https://plugins.example.com/p.tar.gz', 'https'], [`${web.base}/plugin.tar.gz`, 'http'], ['github://acme/plugins#v1.0.0', 'github']] as const) {
      const e = await failure(prepareInstall(deps, { workspace: 'ws', source, stamp: newStamp(), execution: 'ex', sha256: null }));
      expect(e.code, source).toBe('UnpinnedSource');
      expect(e.message).toBe(`${scheme}:// sources need a pinned sha256`);
      expect(e.hint).toContain('--sha256');
    }
    expect(fake.urls).toEqual([]);
    expect(web.hits).toEqual([]);
    // Local paths, the catalog and s3:// need no pin.
    for (const s of ['local://x', './p.tar.gz', 's3://b/k', 'file:///p.tar.gz']) expect(() => assertSourcePinned(s, undefined), s).not.toThrow();
  });

  it('with the right sha256 Prepare installs from the mirror; with a wrong one it is ChecksumMismatch', async () => {
    const deps = await embedded(httpOptions());
    const plan = await prepareInstall(deps, { workspace: 'ws', source: `${web.base}/plugin.tar.gz`, sha256: sha256(tarball), stamp: newStamp(), execution: 'ex' });
    expect(plan.sha256).toBe(sha256(tarball));
    expect(await deps.artifacts.exists(plan.artifactKey)).toBe(true);
    const e = await failure(prepareInstall(deps, { workspace: 'ws', source: `${web.base}/plugin.tar.gz`, sha256: 'a'.repeat(64), stamp: newStamp(), execution: 'ex' }));
    expect(e.code).toBe('ChecksumMismatch');
  });
});

describe('github:// sources', () => {
  it('map owner/repo#ref to the codeload tarball URL', () => {
    expect(githubTarballUrl('github://acme/plugins#v1.2.0')).toBe('https://codeload.github.com/acme/plugins/tar.gz/v1.2.0');
    expect(githubTarballUrl('github://Acme-Co/my.plugins_x#refs/tags/v2')).toBe('https://codeload.github.com/Acme-Co/my.plugins_x/tar.gz/refs/tags/v2');
    expect(githubTarballUrl('github://acme/plugins#0123456789abcdef0123456789abcdef01234567')).toBe('https://codeload.github.com/acme/plugins/tar.gz/0123456789abcdef0123456789abcdef01234567');
  });

  it('refuse a missing ref and malformed owners, repos and refs', () => {
    for (const s of ['github://acme/plugins', 'github://acme/plugins#']) {
      const e = syncFailure(() => githubTarballUrl(s));
      expect(e.code, s).toBe('InvalidInput');
      expect(e.message).toBe('github sources need a ref');
    }
    for (const s of ['github://acme#v1', 'github://acme/plugins/sub#v1', 'github://-acme/plugins#v1', 'github://acme/..#v1', 'github://acme/plugins#../../x', 'github://acme/plugins#/v1', 'github://acme/plugins#v1/', 'github://acme/plugins#a b', 'github://acme/plugins#v1?x=1', 'github:///plugins#v1']) {
      expect(syncFailure(() => githubTarballUrl(s)).code, s).toBe('InvalidInput');
    }
  });

  it('resolve through the https path (a fake fetch: GitHub is never contacted)', async () => {
    const fake = fakeFetch(() => new Response('Not Found', { status: 404 }));
    const e = await failure(resolveSource('github://acme/plugins#v9.9.9', { fetch: fake.fetch }));
    expect(fake.urls).toEqual(['https://codeload.github.com/acme/plugins/tar.gz/v9.9.9']);
    expect(e.code).toBe('SourceNotFound');
    expect(e.message).toContain('github://acme/plugins#v9.9.9');
    expect((await failure(resolveSource('github://acme/plugins', { fetch: fake.fetch }))).message).toBe('github sources need a ref');
    expect(fake.urls).toHaveLength(1);
  });
});
