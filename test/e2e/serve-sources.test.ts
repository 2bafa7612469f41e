/**
 * `pluginctl serve` over real HTTP, on what sources it accepts and what external workspaces
 * download. Filesystem paths are served only under `--sources-dir`: /etc, ../.., a symlink out
 * of it, file:// outside it answer 400 (InvalidInput, naming why) at POST time and no execution starts;
 * without --sources-dir no path is served at all. An external workspace's download is a 302 to
 * a signed link of the catalog's validated tarball (latest or ?version=), 404 listing the
 * versions for one the catalog lacks; on other workspaces ?version= must be the installed one.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../bin/cli/serve.ts';
import { DirectoryPluginCatalog } from '../../lambdas/core/catalog/directory-plugin-catalog.ts';
import { packTarGz } from '../fixtures/hostile-tarballs.ts';
import { writeCatalog } from '../helpers/catalog-versions.ts';
import { writePluginDir } from '../helpers/plugin-versions.ts';

const TOKEN = 'test-token-0123456789abcdef0123456789';
let tmp: string;
let confined: RunningServer;
let open: RunningServer;
let catalogDir: string;
let sourcesDir: string;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function call(server: RunningServer, method: string, path: string, body?: unknown) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    redirect: 'manual',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

async function finished(server: RunningServer, statusUrl: string) {
  await server.engine.idle();
  return (await call(server, 'GET', statusUrl)).json!;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'serve-sources-'));
  catalogDir = await writeCatalog(join(tmp, 'catalog'), 'cat-p', ['1.0.0', '1.10.0', '1.9.0']);
  // A catalog entry that must not be served: an entry leaving the tree.
  await mkdir(join(catalogDir, 'cat-bad'), { recursive: true });
  await writeFile(join(catalogDir, 'cat-bad', '1.0.0.tar.gz'), await packTarGz([{ name: 'plugin.yaml', body: 'name: cat-bad\nversion: 1.0.0\n' }, { name: '../escape.md', body: 'x' }]));
  sourcesDir = join(tmp, 'sources');
  await writePluginDir(sourcesDir, { name: 'served', version: '1.0.0' });
  const outside = await writePluginDir(join(tmp, 'outside'), { name: 'secret', version: '1.0.0' });
  await symlink(outside, join(sourcesDir, 'escape'));
  const homes = [join(tmp, 'home-confined'), join(tmp, 'home-open')];
  for (const home of homes) {
    await mkdir(home, { recursive: true });
    await writeFile(join(home, 'workspaces.json'), JSON.stringify({ workspaces: { ws1: { runtime: 'claude-code' }, ext: { runtime: 'external' } } }));
  }
  confined = await startServer({ home: homes[0]!, catalogDir, sourcesDir, token: TOKEN, port: 0, retryDelayMs: 5 });
  open = await startServer({ home: homes[1]!, catalogDir, token: TOKEN, port: 0, retryDelayMs: 5 });
}, 120_000);
afterAll(async () => {
  await confined?.close();
  await open?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('pluginctl serve --sources-dir', () => {
  it('refuses /etc, ../.., a symlink out of the directory and file:// outside it with 400, starting no execution', async () => {
    for (const source of ['/etc/passwd', '/etc', '../../etc', 'escape', join(tmp, 'outside', 'secret-1.0.0'), 'file:///etc/passwd', `file://${join(tmp, 'outside')}`]) {
      const r = await call(confined, 'POST', '/workspaces/ws1/plugins', { source });
      expect(r.status, source).toBe(400);
      expect(r.json, source).toMatchObject({ error: { code: 'InvalidInput', message: expect.stringMatching(/is outside the sources directory$/), hint: expect.stringContaining('--sources-dir') } });
    }
    expect(confined.engine.ids()).toEqual([]);
  });

  it('refuses every other source that cannot be had at POST time (400/422), starting no execution', async () => {
    for (const [source, status, code] of [
      ['local://cat-p@9.9.9', 400, 'SourceNotFound'],
      ['local://no-such-plugin', 400, 'SourceNotFound'],
      ['local://Bad_Name', 400, 'InvalidInput'],
      ['ftp://example.com/p.tar.gz', 400, 'InvalidInput'],
      ['https://example.com/p.tar.gz', 422, 'UnpinnedSource'],
      ['missing-dir', 400, 'SourceNotFound'],
    ] as const) {
      const r = await call(confined, 'POST', '/workspaces/ws1/plugins', { source });
      expect({ source, status: r.status, code: (r.json?.error as { code?: string } | undefined)?.code }).toEqual({ source, status, code });
    }
    expect(confined.engine.ids()).toEqual([]);
  });

  it('installs a plugin directory under --sources-dir (relative to it)', async () => {
    const r = await call(confined, 'POST', '/workspaces/ws1/plugins', { source: 'served-1.0.0' });
    expect(r.status, JSON.stringify(r.json)).toBe(202);
    expect((await finished(confined, String(r.json!.statusUrl))).status).toBe('SUCCEEDED');
  });

  it('without --sources-dir serves no path at all, and local:// still works', async () => {
    for (const source of [join(sourcesDir, 'served-1.0.0'), '/etc/passwd', '../../etc']) {
      const r = await call(open, 'POST', '/workspaces/ws1/plugins', { source });
      expect(r.status, source).toBe(400);
      expect(r.json, source).toMatchObject({ error: { message: expect.stringContaining('filesystem path sources are not served here') } });
    }
    expect(open.engine.ids()).toEqual([]);
    const r = await call(open, 'POST', '/workspaces/ws1/plugins', { source: 'local://cat-p@1.0.0' });
    expect(r.status).toBe(202);
    expect((await finished(open, String(r.json!.statusUrl))).status).toBe('SUCCEEDED');
  });
});

describe('GET …/download', () => {
  const catalogSha = async (version: string) => sha256(await collect(await new DirectoryPluginCatalog(catalogDir).open('cat-p', version)));

  it('an external workspace gets a 302 to the catalog\'s latest version; following it gives bytes of that sha256', async () => {
    const r = await call(open, 'GET', '/workspaces/ext/plugins/cat-p/download');
    expect(r.status, JSON.stringify(r.json)).toBe(302);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const location = r.headers.get('location')!;
    const expected = await catalogSha('1.10.0');
    expect(location).toContain(`/artifacts/sha256/${expected}.tar.gz?`);
    const res = await fetch(location);
    expect(res.status).toBe(200);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(expected);
  });

  it('?version= picks a version; one the catalog lacks is 404 listing those there; a bad one 400', async () => {
    const r = await call(open, 'GET', '/workspaces/ext/plugins/cat-p/download?version=1.9.0');
    expect(r.status).toBe(302);
    expect(sha256(Buffer.from(await (await fetch(r.headers.get('location')!)).arrayBuffer()))).toBe(await catalogSha('1.9.0'));
    const missing = await call(open, 'GET', '/workspaces/ext/plugins/cat-p/download?version=2.0.0');
    expect(missing).toMatchObject({ status: 404, json: { error: { code: 'SourceNotFound', hint: 'available: 1.0.0, 1.9.0, 1.10.0' } } });
    expect((await call(open, 'GET', '/workspaces/ext/plugins/nothing/download')).status).toBe(404);
    expect((await call(open, 'GET', '/workspaces/ext/plugins/cat-p/download?version=%2E%2E%2Fx')).status).toBe(400);
  });

  it('a catalog tarball that does not validate is 422 with a clear message', async () => {
    const r = await call(open, 'GET', '/workspaces/ext/plugins/cat-bad/download');
    expect(r.status).toBe(422);
    expect(r.json).toMatchObject({ error: { code: 'HostileTarball', message: expect.stringContaining("the catalog's cat-bad 1.0.0 cannot be served") } });
  });

  it('on an installed workspace ?version= must name the installed version (else 404 naming it)', async () => {
    // ws1 on `open` has cat-p 1.0.0 installed (above).
    const ok = await call(open, 'GET', '/workspaces/ws1/plugins/cat-p/download?version=1.0.0');
    expect(ok.status).toBe(302);
    const other = await call(open, 'GET', '/workspaces/ws1/plugins/cat-p/download?version=1.9.0');
    expect(other).toMatchObject({ status: 404, json: { error: { code: 'NotInstalled', message: expect.stringContaining('(1.0.0 is)') } } });
  });
});
