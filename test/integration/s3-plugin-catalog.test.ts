/**
 * The plugin catalog in the artifact bucket (`catalog/<name>/<version>.tar.gz`), through the real
 * S3Client against s3rver: the S3 adapter (ListObjectsV2 listing, GetObject, publish with
 * If-None-Match so a version is never replaced), and the AWS composition (test/helpers/
 * aws-world.ts, the api Lambda's handler): `local://` resolves against the bucket's catalog,
 * filesystem paths and versions the catalog lacks are refused before any execution starts, and
 * an external workspace downloads the catalog's validated, content-addressed tarball.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3PluginCatalog } from '../../lambdas/core/catalog/s3-plugin-catalog.ts';
import { listPlugins } from '../../lambdas/core/steps/list-plugins.ts';
import { LocalWorkflowEngine } from '../../lambdas/core/workflow/local-workflow-engine.ts';
import { apiHandler } from '../../lambdas/handlers/api.ts';
import { goodTarball, packTarGz } from '../fixtures/hostile-tarballs.ts';
import { startAwsWorld, type AwsWorld } from '../helpers/aws-world.ts';
import { failure } from '../helpers/plugin-error.ts';

let world: AwsWorld;
let engine: LocalWorkflowEngine;
let handler: ReturnType<typeof apiHandler>;
let catalog: S3PluginCatalog;
let tmp: string;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const tarballs: Record<string, Buffer> = {};
async function publish(name: string, version: string, data?: Buffer) {
  const bytes = data ?? (await goodTarball({ 'plugin.yaml': `name: ${name}\nversion: ${version}\ndescription: catalog test\n`, 'skills/a/SKILL.md': `${name} ${version}\n` }));
  const path = join(tmp, `${name}-${version}-${sha256(bytes).slice(0, 8)}.tar.gz`);
  await writeFile(path, bytes);
  tarballs[`${name}@${version}`] = bytes;
  return { outcome: await catalog.publish(name, version, { path, sha256: sha256(bytes), bytes: bytes.length }), sha256: sha256(bytes) };
}

function fixture(name: string, change: (e: APIGatewayProxyEvent) => void): APIGatewayProxyEvent {
  const event = JSON.parse(readFileSync(new URL(`../fixtures/events/${name}.json`, import.meta.url), 'utf8')) as APIGatewayProxyEvent;
  change(event);
  return event;
}

async function call(event: APIGatewayProxyEvent) {
  const r = await handler(event);
  return { status: r.statusCode, headers: r.headers ?? {}, json: r.body ? (JSON.parse(r.body) as Record<string, unknown>) : undefined };
}

const install = (workspace: string, source: string) =>
  call(fixture('post-install', (e) => {
    e.path = `/workspaces/${workspace}/plugins`;
    e.pathParameters = { id: workspace };
    e.body = JSON.stringify({ source });
    delete e.headers['Idempotency-Key'];
    delete e.multiValueHeaders['Idempotency-Key'];
  }));

/** As a client honouring Retry-After would: a 503 (a stand-in slow on a loaded machine) is asked again, a few times. */
async function download(workspace: string, plugin: string, query: Record<string, string> | null = null) {
  const event = () => fixture('get-download', (e) => {
    e.path = `/workspaces/${workspace}/plugins/${plugin}/download`;
    e.pathParameters = { id: workspace, name: plugin };
    e.queryStringParameters = query;
    e.multiValueQueryStringParameters = query && Object.fromEntries(Object.entries(query).map(([k, v]) => [k, [v]]));
  });
  let r = await call(event());
  for (let retry = 0; r.status === 503 && retry < 3; retry++) r = await call(event());
  return r;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 's3-catalog-'));
  world = await startAwsWorld([{ id: 'ws-cat' }, { id: 'ws-ext', runtime: 'external' }], { catalog: 'bucket' });
  catalog = new S3PluginCatalog({ client: world.s3.client, bucket: world.s3.bucket });
  engine = new LocalWorkflowEngine(world.deps, { retryDelayMs: 5 });
  handler = apiHandler(async () => ({ steps: world.deps, engine, downloadUrlSeconds: 60 }));
}, 180_000);
afterAll(async () => {
  await engine?.idle();
  await world?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('S3PluginCatalog against s3rver', () => {
  it('publishes a version once: same bytes again are unchanged, other bytes refused and the stored object kept', async () => {
    const first = await publish('cat-a', '1.0.0');
    expect(first.outcome).toBe('created');
    expect((await publish('cat-a', '1.0.0', tarballs['cat-a@1.0.0'])).outcome).toBe('unchanged');
    const other = await goodTarball({ 'plugin.yaml': 'name: cat-a\nversion: 1.0.0\n', 'x.md': 'other bytes\n' });
    const refused = await failure(publish('cat-a', '1.0.0', other));
    expect(refused.code).toBe('InvalidInput');
    expect(refused.message).toContain('is already in the catalog (s3://');
    expect(sha256(await collect(await catalog.open('cat-a', '1.0.0')))).toBe(first.sha256);
  });

  it('lists catalog/<name>/ in numeric version order, ignoring other keys; opens a version; SourceNotFound for a missing one', async () => {
    for (const v of ['1.9.0', '1.10.0', '1.2.0']) await publish('cat-b', v);
    await world.s3.client.send(new PutObjectCommand({ Bucket: world.s3.bucket, Key: 'catalog/cat-b/nested/3.0.0.tar.gz', Body: 'x' }));
    await world.s3.client.send(new PutObjectCommand({ Bucket: world.s3.bucket, Key: 'catalog/cat-bb/9.0.0.tar.gz', Body: 'x' }));
    expect(await catalog.versions('cat-b')).toEqual(['1.2.0', '1.9.0', '1.10.0']);
    expect(await catalog.versions('nothing-here')).toEqual([]);
    expect(sha256(await collect(await catalog.open('cat-b', '1.10.0')))).toBe(sha256(tarballs['cat-b@1.10.0']!));
    expect((await failure(catalog.open('cat-b', '4.0.0'))).code).toBe('SourceNotFound');
  });
});

describe('the AWS composition: local:// from catalog/ in the bucket', () => {
  it('installs local://name (the highest version in the bucket) through the api Lambda', async () => {
    await publish('cat-p', '1.0.0');
    await publish('cat-p', '2.0.0');
    const r = await install('ws-cat', 'local://cat-p');
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    await engine.idle();
    const listing = await listPlugins(world.deps, 'ws-cat');
    expect(listing.plugins).toMatchObject([{ name: 'cat-p', version: '2.0.0', sha256: sha256(tarballs['cat-p@2.0.0']!), complete: true }]);
  });

  it('refuses at once, starting nothing: a version not in the catalog (400, naming those there), filesystem paths (400)', async () => {
    const before = engine.ids();
    const missing = await install('ws-cat', 'local://cat-p@9.9.9');
    expect(missing).toMatchObject({ status: 400, json: { error: { code: 'SourceNotFound', hint: 'available: 1.0.0, 2.0.0' } } });
    expect((await install('ws-cat', 'local://never-published')).status).toBe(400);
    for (const path of ['/etc/passwd', '../../etc', 'file:///etc/passwd', '/tmp']) {
      const r = await install('ws-cat', path);
      expect(r.status, path).toBe(400);
      expect(r.json, path).toMatchObject({ error: { code: 'InvalidInput', message: expect.stringContaining('filesystem path sources are not served here') } });
    }
    expect(engine.ids()).toEqual(before);
  });

  it('an external workspace downloads the catalog version (latest or ?version=) by a presigned URL of its sha256', async () => {
    const latest = await download('ws-ext', 'cat-p');
    expect(latest.status, JSON.stringify(latest.json)).toBe(302);
    expect(latest.headers['cache-control']).toBe('no-store');
    const url = String(latest.headers.location);
    expect(url).toContain(`artifacts/sha256/${sha256(tarballs['cat-p@2.0.0']!)}.tar.gz`);
    expect(url).toContain('X-Amz-Expires=60');
    expect(sha256(Buffer.from(await (await fetch(url)).arrayBuffer()))).toBe(sha256(tarballs['cat-p@2.0.0']!));

    const v1 = await download('ws-ext', 'cat-p', { version: '1.0.0' });
    expect(v1.status, JSON.stringify(v1.json)).toBe(302);
    expect(sha256(Buffer.from(await (await fetch(String(v1.headers.location))).arrayBuffer()))).toBe(sha256(tarballs['cat-p@1.0.0']!));

    expect(await download('ws-ext', 'cat-p', { version: '3.0.0' })).toMatchObject({ status: 404, json: { error: { code: 'SourceNotFound', hint: 'available: 1.0.0, 2.0.0' } } });
    expect((await download('ws-ext', 'not-published')).status).toBe(404);
    expect((await download('ws-ext', 'cat-p', { version: '../x' })).status).toBe(400);
  });

  it('a catalog entry that does not validate is 422, stored nowhere', async () => {
    const hostile = await packTarGz([{ name: 'plugin.yaml', body: 'name: cat-bad\nversion: 1.0.0\n' }, { name: '../escape.md', body: 'x' }]);
    await world.s3.client.send(new PutObjectCommand({ Bucket: world.s3.bucket, Key: 'catalog/cat-bad/1.0.0.tar.gz', Body: hostile }));
    const r = await download('ws-ext', 'cat-bad');
    expect(r.status).toBe(422);
    expect(r.json).toMatchObject({ error: { code: 'HostileTarball', message: expect.stringContaining("the catalog's cat-bad 1.0.0 cannot be served") } });
    const misnamed = await goodTarball({ 'plugin.yaml': 'name: someone-else\nversion: 1.0.0\n' });
    await world.s3.client.send(new PutObjectCommand({ Bucket: world.s3.bucket, Key: 'catalog/cat-misnamed/1.0.0.tar.gz', Body: misnamed }));
    expect(await download('ws-ext', 'cat-misnamed')).toMatchObject({ status: 422, json: { error: { code: 'InvalidManifest' } } });
  });
});
