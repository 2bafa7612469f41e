/**
 * The directory adapter of the PluginCatalog port (versions, open, publish: created, unchanged,
 * refused for other bytes), how `local://` chooses a version through it, and which filesystem
 * paths resolveSource serves under each policy (`localPaths`): anywhere, under a directory (no
 * `..`, no absolute path elsewhere, no symlink out, no `file://` outside), or none.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryPluginCatalog } from '../../lambdas/core/catalog/directory-plugin-catalog.ts';
import { chooseVersion } from '../../lambdas/core/catalog/plugin-catalog.ts';
import { resolveSource, type SourceOptions } from '../../lambdas/core/sources/resolve-source.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { failure } from '../helpers/plugin-error.ts';

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'catalog-unit-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
const manifest = (version: string, extra = '') => ({ 'plugin.yaml': `name: p\nversion: ${version}\n`, 'skills/a.md': `v${version}${extra}\n` });

async function tarballFile(version: string, extra = ''): Promise<{ path: string; sha256: string; bytes: number; data: Buffer }> {
  const data = await goodTarball(manifest(version, extra));
  const path = join(tmp, `p-${version}${extra ? '-' + sha256(Buffer.from(extra)).slice(0, 6) : ''}.tar.gz`);
  await writeFile(path, data);
  return { path, sha256: sha256(data), bytes: data.length, data };
}

describe('DirectoryPluginCatalog', () => {
  it('lists tarballs and plugin trees in numeric order, none for an unknown plugin, and opens either kind', async () => {
    const dir = join(tmp, 'catalog');
    await mkdir(join(dir, 'p', '1.10.0'), { recursive: true });
    await writeFile(join(dir, 'p', '1.10.0', 'plugin.yaml'), 'name: p\nversion: 1.10.0\n');
    const v19 = await tarballFile('1.9.0');
    await writeFile(join(dir, 'p', '1.9.0.tar.gz'), v19.data);
    await writeFile(join(dir, 'p', 'README'), 'not a version');
    const catalog = new DirectoryPluginCatalog(dir);
    expect(await catalog.versions('p')).toEqual(['1.9.0', '1.10.0']);
    expect(await catalog.versions('nope')).toEqual([]);
    expect(sha256(await collect(await catalog.open('p', '1.9.0')))).toBe(v19.sha256);
    expect((await collect(await catalog.open('p', '1.10.0'))).length).toBeGreaterThan(0);
    expect((await failure(catalog.open('p', '2.0.0'))).code).toBe('SourceNotFound');
    expect((await failure(catalog.versions('../etc'))).code).toBe('InvalidInput');
  });

  it('publishes a new version, accepts the same bytes again, refuses other bytes for it', async () => {
    const catalog = new DirectoryPluginCatalog(join(tmp, 'catalog'));
    const v1 = await tarballFile('1.0.0');
    expect(await catalog.publish('p', '1.0.0', v1)).toBe('created');
    expect(sha256(await readFile(join(tmp, 'catalog', 'p', '1.0.0.tar.gz')))).toBe(v1.sha256);
    expect(await catalog.publish('p', '1.0.0', v1)).toBe('unchanged');
    const other = await tarballFile('1.0.0', 'changed');
    const refused = await failure(catalog.publish('p', '1.0.0', other));
    expect(refused.code).toBe('InvalidInput');
    expect(refused.message).toContain('is already in the catalog');
    expect(refused.message).toContain(v1.sha256);
    expect(refused.hint).toContain('bump the version');
    // The published bytes are untouched.
    expect(sha256(await readFile(join(tmp, 'catalog', 'p', '1.0.0.tar.gz')))).toBe(v1.sha256);
  });

  it('chooseVersion: the highest, or the one asked for; SourceNotFound naming what is there', async () => {
    const catalog = new DirectoryPluginCatalog(join(tmp, 'catalog'));
    for (const v of ['1.2.0', '1.10.0']) await catalog.publish('p', v, await tarballFile(v));
    expect(await chooseVersion(catalog, 'p', undefined)).toBe('1.10.0');
    expect(await chooseVersion(catalog, 'p', '1.2.0')).toBe('1.2.0');
    const missing = await failure(chooseVersion(catalog, 'p', '9.9.9'));
    expect(missing).toMatchObject({ code: 'SourceNotFound', hint: 'available: 1.2.0, 1.10.0' });
    expect((await failure(chooseVersion(catalog, 'q', undefined))).code).toBe('SourceNotFound');
  });
});

describe('filesystem path sources (SourceOptions.localPaths)', () => {
  async function layout() {
    const sources = join(tmp, 'sources');
    await mkdir(join(sources, 'plugin'), { recursive: true });
    await writeFile(join(sources, 'plugin', 'plugin.yaml'), 'name: p\nversion: 1.0.0\n');
    const outside = join(tmp, 'outside');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'plugin.yaml'), 'name: secret\nversion: 1.0.0\n');
    await symlink(outside, join(sources, 'escape'));
    await symlink(join(sources, 'plugin'), join(sources, 'inner-link'));
    return { sources, outside };
  }

  it('under a directory: paths inside it (relative ones against it, links that stay inside) are served', async () => {
    const { sources } = await layout();
    const options: SourceOptions = { localPaths: { under: sources }, cwd: sources };
    for (const s of ['plugin', join(sources, 'plugin'), `file://${join(sources, 'plugin')}`, 'inner-link']) {
      const r = await resolveSource(s, options);
      expect((await collect(r.stream)).length, s).toBeGreaterThan(0);
    }
    expect((await failure(resolveSource('missing', options))).code).toBe('SourceNotFound');
  });

  it('under a directory: /etc, ../.., a symlink out of it and file:// outside it are refused (InvalidInput: outside the sources directory)', async () => {
    const { sources, outside } = await layout();
    const options: SourceOptions = { localPaths: { under: sources }, cwd: sources };
    for (const s of ['/etc/passwd', '/etc', '../../etc', '../outside', outside, 'escape', `file://${outside}`, 'file:///etc/passwd', `${sources}/../outside`]) {
      const e = await failure(resolveSource(s, options));
      expect(e.code, s).toBe('InvalidInput');
      expect(e.message, s).toContain('is outside the sources directory');
      expect(e.hint, s).toContain('--sources-dir');
    }
  });

  it('without a policy (the AWS composition) every path is refused; with `any` (the CLI) a path anywhere is served', async () => {
    const { outside } = await layout();
    for (const s of ['/etc/passwd', 'relative', `file://${outside}`]) {
      expect((await failure(resolveSource(s, {}))).message, s).toContain('filesystem path sources are not served here');
    }
    expect((await collect((await resolveSource(outside, { localPaths: 'any' })).stream)).length).toBeGreaterThan(0);
  });
});
