/**
 * Directory sources: packDirectory is deterministic (same tree → same sha256, whatever the mtimes
 * and non-exec mode bits) and produces what the validator accepts; resolveSource picks catalog
 * versions numerically and refuses what embedded mode cannot serve.
 */
import { createHash } from 'node:crypto';
import { chmod, cp, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BUNDLED_CATALOG } from '../../lambdas/commons/local-deps.ts';
import { parseManifest } from '../../lambdas/core/manifest.ts';
import { DirectoryPluginCatalog } from '../../lambdas/core/catalog/directory-plugin-catalog.ts';
import { compareVersions, resolveSource } from '../../lambdas/core/sources/resolve-source.ts';
import { inspectTarball } from '../../lambdas/core/tarball/inspect-tarball.ts';
import { packDirectory } from '../../lambdas/core/tarball/pack-directory.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { failure } from '../helpers/plugin-error.ts';

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'pack-dir-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');


const FILES: Record<string, string> = {
  'plugin.yaml': 'name: packed\nversion: 1.0.0\ndescription: packed from a directory\n',
  'skills/b/SKILL.md': 'b\n',
  'skills/a/SKILL.md': 'a\n',
  'bin/run.sh': '#!/bin/sh\necho hi\n',
  'README.md': 'readme\n',
};

/** Gives every directory of FILES' tree (and `empty`) the same mode, whatever the umask. */
async function dirModes(dir: string, mode: number): Promise<void> {
  for (const d of ['bin', 'empty', 'skills', 'skills/a', 'skills/b']) await chmod(join(dir, d), mode);
}

/** Writes FILES under `dir` with the given modes and mtime. */
async function writeTree(dir: string, modes: { file: number; exec: number }, mtime: Date): Promise<void> {
  // Creation order differs from sorted order on purpose.
  for (const [rel, body] of Object.entries(FILES).reverse()) {
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await writeFile(join(dir, rel), body);
    await chmod(join(dir, rel), rel.endsWith('.sh') ? modes.exec : modes.file);
    await utimes(join(dir, rel), mtime, mtime);
  }
  await mkdir(join(dir, 'empty'), { recursive: true });
}

interface Listed {
  name: string;
  type: string;
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
  body: string;
}

async function listTarball(buf: Buffer): Promise<Listed[]> {
  const ex = extract();
  const out: Listed[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      const body = await collect(entry as unknown as Readable);
      const h = entry.header;
      out.push({ name: h.name, type: h.type ?? '', mode: h.mode ?? -1, mtime: h.mtime?.getTime() ?? -1, uid: h.uid ?? -1, gid: h.gid ?? -1, body: body.toString() });
    }
  })();
  const gunzip = createGunzip();
  gunzip.pipe(ex);
  gunzip.end(buf);
  await done;
  return out;
}

describe('packDirectory', () => {
  it('is deterministic: same tree twice, and a copy with other mtimes', async () => {
    const a = join(tmp, 'a');
    const b = join(tmp, 'b');
    await writeTree(a, { file: 0o644, exec: 0o755 }, new Date('2020-01-01T00:00:00Z'));
    await writeTree(b, { file: 0o644, exec: 0o755 }, new Date('2025-06-15T12:34:56Z'));
    await dirModes(a, 0o755);
    await dirModes(b, 0o755);
    const first = await collect(packDirectory(a));
    const second = await collect(packDirectory(a));
    const copy = await collect(packDirectory(b));
    expect(sha256(second)).toBe(sha256(first));
    expect(sha256(copy)).toBe(sha256(first));
    expect(copy.equals(first)).toBe(true);
  });

  it('changes when content or a permission bit changes', async () => {
    const a = join(tmp, 'a');
    await writeTree(a, { file: 0o644, exec: 0o755 }, new Date(0));
    const base = sha256(await collect(packDirectory(a)));
    await chmod(join(a, 'README.md'), 0o744);
    const exec = sha256(await collect(packDirectory(a)));
    expect(exec).not.toBe(base);
    await chmod(join(a, 'README.md'), 0o600);
    expect(sha256(await collect(packDirectory(a)))).not.toBe(base);
    await chmod(join(a, 'README.md'), 0o644);
    expect(sha256(await collect(packDirectory(a)))).toBe(base);
    await writeFile(join(a, 'README.md'), 'readme!\n');
    expect(sha256(await collect(packDirectory(a)))).not.toBe(base);
  });

  it('writes sorted entries with owner 0 and mtime 0, keeping each permission bit and clearing setuid/setgid/sticky', async () => {
    const a = join(tmp, 'a');
    await writeTree(a, { file: 0o640, exec: 0o750 }, new Date('2024-01-01T00:00:00Z'));
    await dirModes(a, 0o750);
    await chmod(join(a, 'plugin.yaml'), 0o600);
    await chmod(join(a, 'skills/a/SKILL.md'), 0o4755);
    await chmod(join(a, 'skills/b/SKILL.md'), 0o2604);
    await chmod(join(a, 'empty'), 0o1777);
    const entries = await listTarball(await collect(packDirectory(a)));
    expect(entries.map((e) => e.name)).toEqual([
      'README.md', 'bin', 'bin/run.sh', 'empty', 'plugin.yaml', 'skills', 'skills/a', 'skills/a/SKILL.md', 'skills/b', 'skills/b/SKILL.md',
    ]);
    const modes: Record<string, number> = { 'README.md': 0o640, bin: 0o750, 'bin/run.sh': 0o750, empty: 0o777, 'plugin.yaml': 0o600, skills: 0o750, 'skills/a': 0o750, 'skills/a/SKILL.md': 0o755, 'skills/b': 0o750, 'skills/b/SKILL.md': 0o604 };
    for (const e of entries) {
      expect(e).toMatchObject({ mtime: 0, uid: 0, gid: 0 });
      expect(e.mode.toString(8), e.name).toBe(modes[e.name]!.toString(8));
      if (e.type === 'file') expect(e.body).toBe(FILES[e.name]);
    }
    // The validator takes what the packer makes.
    await expect(inspectTarball(packDirectory(a))).resolves.toBeDefined();
  });

  it('produces a tarball inspectTarball accepts, with the right files and manifest', async () => {
    const a = join(tmp, 'a');
    await writeTree(a, { file: 0o644, exec: 0o755 }, new Date(0));
    const buf = await collect(packDirectory(a));
    const report = await inspectTarball(packDirectory(a));
    expect(report).toMatchObject({ sha256: sha256(buf), compressedBytes: buf.length, files: Object.keys(FILES).length, stripComponents: 0, manifestText: FILES['plugin.yaml'] });
    expect(report.unpackedBytes).toBe(Object.values(FILES).reduce((n, s) => n + Buffer.byteLength(s), 0));
  });

  it('refuses a symlink inside the directory with HostileTarball', async () => {
    const a = join(tmp, 'a');
    await writeTree(a, { file: 0o644, exec: 0o755 }, new Date(0));
    await symlink('/etc/passwd', join(a, 'skills', 'passwd'));
    const error = await failure(collect(packDirectory(a)));
    expect(error.code).toBe('HostileTarball');
    expect(error.message).toContain('"skills/passwd"');
    expect(error.hint).not.toBe('');
  });

  it('a missing directory fails the stream instead of hanging', async () => {
    await expect(collect(packDirectory(join(tmp, 'nope')))).rejects.toThrow(/ENOENT/);
  });
});

/** The CLI's policy: a filesystem path anywhere is a source. */
const ANY_PATH = { localPaths: 'any' } as const;

describe('resolveSource', () => {
  async function manifestOf(stream: Readable) {
    return parseManifest((await inspectTarball(stream)).manifestText);
  }

  it('local://hello-skills picks the latest version of the bundled catalog, 1.1.0', async () => {
    const r = await resolveSource('local://hello-skills', { catalog: new DirectoryPluginCatalog(BUNDLED_CATALOG) });
    expect(r.description).toBe('local://hello-skills@1.1.0');
    expect(await manifestOf(r.stream)).toMatchObject({ name: 'hello-skills', version: '1.1.0' });
  });

  it('local://hello-skills@1.0.0 picks that version', async () => {
    const r = await resolveSource('local://hello-skills@1.0.0', { catalog: new DirectoryPluginCatalog(BUNDLED_CATALOG) });
    expect(r.description).toBe('local://hello-skills@1.0.0');
    expect(await manifestOf(r.stream)).toMatchObject({ name: 'hello-skills', version: '1.0.0' });
  });

  it('an unknown plugin or version is SourceNotFound; the latter lists what is available', async () => {
    expect((await failure(resolveSource('local://no-such-plugin', { catalog: new DirectoryPluginCatalog(BUNDLED_CATALOG) }))).code).toBe('SourceNotFound');
    const e = await failure(resolveSource('local://hello-skills@9.9.9', { catalog: new DirectoryPluginCatalog(BUNDLED_CATALOG) }));
    expect(e.code).toBe('SourceNotFound');
    expect(e.hint).toContain('1.0.0, 1.1.0');
    expect((await failure(resolveSource('local://hello-skills'))).code).toBe('SourceNotFound');
  });

  it('a malformed catalog reference is InvalidInput', async () => {
    for (const s of ['local://Hello', 'local://hello-skills@1 0', 'local://..']) {
      expect((await failure(resolveSource(s, { catalog: new DirectoryPluginCatalog(BUNDLED_CATALOG) }))).code, s).toBe('InvalidInput');
    }
  });

  it('s3://, https:// and github:// are refused in embedded mode (no S3 client, no fetch)', async () => {
    for (const s of ['s3://x/y', 'https://example.com/p.tar.gz', 'github://o/r']) {
      const e = await failure(resolveSource(s));
      expect(e.code).toBe('InvalidInput');
      expect(e.message).toContain('is not available here');
    }
  });

  it('refuses empty, multi-line and missing sources', async () => {
    expect((await failure(resolveSource(''))).code).toBe('InvalidInput');
    expect((await failure(resolveSource('a\nb'))).code).toBe('InvalidInput');
    expect((await failure(resolveSource(join(tmp, 'missing'), ANY_PATH))).code).toBe('SourceNotFound');
  });

  it('orders catalog versions numerically, serves tarballs and directories, resolves relative paths', async () => {
    const catalog = join(tmp, 'catalog');
    for (const v of ['1.9.0', '1.10.0', '1.2.0']) {
      await mkdir(join(catalog, 'p', v), { recursive: true });
      await writeFile(join(catalog, 'p', v, 'plugin.yaml'), `name: p\nversion: ${v}\n`);
    }
    const latest = await resolveSource('local://p', { catalog: new DirectoryPluginCatalog(catalog) });
    expect(latest.description).toBe('local://p@1.10.0');
    expect((await manifestOf(latest.stream)).version).toBe('1.10.0');

    const tarball = await goodTarball({ 'plugin.yaml': 'name: p\nversion: 2.0.0\n' });
    await writeFile(join(catalog, 'p', '2.0.0.tar.gz'), tarball);
    const fromTarball = await resolveSource('local://p', { catalog: new DirectoryPluginCatalog(catalog) });
    expect(fromTarball.description).toBe('local://p@2.0.0');
    expect(sha256(await collect(fromTarball.stream))).toBe(sha256(tarball));

    const relative = await resolveSource('catalog/p/2.0.0.tar.gz', { cwd: tmp, localPaths: 'any' });
    expect(sha256(await collect(relative.stream))).toBe(sha256(tarball));
    const fileUrl = await resolveSource(`file://${join(catalog, 'p', '1.9.0')}`, ANY_PATH);
    expect((await manifestOf(fileUrl.stream)).version).toBe('1.9.0');
  });

  it('a directory source is packed deterministically: same tree, same sha256 as packDirectory', async () => {
    const dir = join(tmp, 'src');
    await cp(join(BUNDLED_CATALOG, 'hello-skills', '1.0.0'), dir, { recursive: true });
    const viaSource = await collect((await resolveSource(dir, ANY_PATH)).stream);
    const direct = await collect(packDirectory(join(BUNDLED_CATALOG, 'hello-skills', '1.0.0')));
    expect(sha256(viaSource)).toBe(sha256(direct));
  });
});

describe('compareVersions', () => {
  it('orders 1.10.0 after 1.9.0, numerically per component', () => {
    expect(compareVersions('1.10.0', '1.9.0')).toBeGreaterThan(0);
    expect(compareVersions('1.9.0', '1.10.0')).toBeLessThan(0);
    expect(compareVersions('2.0.0', '2.0.0')).toBe(0);
    expect(['1.10.0', '1.2.0', '10.0.0', '1.9.0', '1.0.0'].sort(compareVersions)).toEqual(['1.0.0', '1.2.0', '1.9.0', '1.10.0', '10.0.0']);
  });
});
