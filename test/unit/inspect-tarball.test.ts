import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { DEFAULT_TARBALL_LIMITS, inspectTarball, type TarballReport } from '../../lambdas/core/tarball/inspect-tarball.ts';
import { flushedPrefix, goodTarball, hostileCorpus, MANIFEST, packTar, packTarGz, rawTar } from '../fixtures/hostile-tarballs.ts';

const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

/** Feeds a buffer in small pieces, as a network stream would. */
async function* chunked(buf: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function refusal(promise: Promise<unknown>): Promise<PluginError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(PluginError);
    return error as PluginError;
  }
  throw new Error('expected a refusal, but the tarball was accepted');
}

describe('hostile corpus', () => {
  const corpus = hostileCorpus();

  it('has at least 30 cases with distinct names', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(30);
    expect(new Set(corpus.map((c) => c.name)).size).toBe(corpus.length);
  });

  it.each(corpus.map((c) => [c.name, c] as const))('refuses %s', async (_name, c) => {
    const error = await refusal(inspectTarball(Readable.from([c.tarball]), c.limits));
    expect(error.code).toBe(c.expect);
    expect(error.message).toContain(c.mentions);
    expect(error.hint).not.toBe('');
  });

  it.each(corpus.filter((c) => c.tarball.length > 0).map((c) => [c.name, c] as const))('refuses %s fed in 997-byte chunks', async (_name, c) => {
    const error = await refusal(inspectTarball(chunked(c.tarball, 997), c.limits));
    expect(error.code).toBe(c.expect);
  });
});

describe('valid tarballs', () => {
  const files = { 'skills/alpha/SKILL.md': '# alpha\n', 'skills/beta/SKILL.md': '# beta\n'.repeat(100), 'README.md': 'hello\n' };
  const fileBytes = Buffer.byteLength(MANIFEST) + Object.values(files).reduce((sum, body) => sum + Buffer.byteLength(body), 0);

  it('reports a flat layout', async () => {
    const tarball = await goodTarball(files);
    const report = await inspectTarball(Readable.from([tarball]));
    expect(report).toEqual<TarballReport>({
      sha256: sha256(tarball),
      compressedBytes: tarball.length,
      unpackedBytes: fileBytes,
      // dirs skills/, skills/alpha/, skills/beta/ + 4 files
      entries: 7,
      files: 4,
      manifestText: MANIFEST,
      stripComponents: 0,
    });
  });

  it('reports a single-top-directory layout', async () => {
    const tarball = await goodTarball(files, { prefix: 'myplugin' });
    const report = await inspectTarball(chunked(tarball, 13));
    expect(report).toMatchObject({ sha256: sha256(tarball), compressedBytes: tarball.length, unpackedBytes: fileBytes, entries: 8, files: 4, stripComponents: 1 });
    expect(report.manifestText).toBe(MANIFEST);
  });

  it('accepts the ./ root entry and ./-prefixed names, like tar czf -C dir . writes', async () => {
    const tarball = await packTarGz([
      { name: './', type: 'directory' },
      { name: './plugin.yaml', body: MANIFEST },
      { name: './skills/', type: 'directory' },
      { name: './skills/a.md', body: 'a' },
    ]);
    const report = await inspectTarball(Readable.from([tarball]));
    expect(report).toMatchObject({ entries: 4, files: 2, stripComponents: 0, manifestText: MANIFEST });
  });

  it('accepts a bare "." root entry', async () => {
    const tarball = await packTarGz([{ name: '.', type: 'directory' }, { name: 'plugin.yaml', body: MANIFEST }]);
    await expect(inspectTarball(Readable.from([tarball]))).resolves.toMatchObject({ entries: 2, stripComponents: 0 });
  });

  it('treats a lone top-level plugin.yaml as a flat layout', async () => {
    const tarball = await packTarGz([{ name: 'plugin.yaml', body: MANIFEST }]);
    await expect(inspectTarball(Readable.from([tarball]))).resolves.toMatchObject({ entries: 1, files: 1, stripComponents: 0 });
  });

  it('finds plugin.yaml under a single top directory that has no entry of its own', async () => {
    const tarball = await packTarGz([{ name: 'p/plugin.yaml', body: MANIFEST }, { name: 'p/a', body: 'x' }]);
    await expect(inspectTarball(Readable.from([tarball]))).resolves.toMatchObject({ stripComponents: 1, manifestText: MANIFEST });
  });

  it('allows installer-reserved names below the top of the plugin', async () => {
    const tarball = await goodTarball({ 'docs/.complete': 'not a marker here' });
    await expect(inspectTarball(Readable.from([tarball]))).resolves.toMatchObject({ files: 2 });
  });

  it('accepts a git archive style pax global header carrying only a comment', async () => {
    const tarball = await import('node:zlib').then(({ gzipSync }) =>
      gzipSync(
        Buffer.concat([
          rawTar([{ name: 'pax_global_header', typeflag: 'g', body: '52 comment=0123456789abcdef0123456789abcdef01234567\n' }], { end: false }),
          rawTar([{ name: 'plugin.yaml', body: MANIFEST }]),
        ]),
      ),
    );
    await expect(inspectTarball(Readable.from([tarball]))).resolves.toMatchObject({ entries: 1 });
  });

  it('accepts a tarball at exactly the limits', async () => {
    const tarball = await goodTarball({ a: 'x'.repeat(100) });
    const unpacked = Buffer.byteLength(MANIFEST) + 100;
    const report = await inspectTarball(Readable.from([tarball]), { maxEntries: 2, maxUnpackedBytes: unpacked, maxCompressedBytes: tarball.length, maxManifestBytes: Buffer.byteLength(MANIFEST) });
    expect(report).toMatchObject({ entries: 2, unpackedBytes: unpacked });
  });

  it('exposes sensible defaults', () => {
    expect(DEFAULT_TARBALL_LIMITS).toEqual({
      maxEntries: 10_000,
      maxUnpackedBytes: 100 * 1024 * 1024,
      maxCompressedBytes: 100 * 1024 * 1024,
      maxCompressionRatio: 200,
      maxManifestBytes: 64 * 1024,
    });
  });

  it('refuses nonsense limits', async () => {
    const tarball = await goodTarball({});
    await expect(inspectTarball(Readable.from([tarball]), { maxEntries: -1 })).rejects.toMatchObject({ code: 'InvalidInput' });
  });
});

describe('stream hygiene', () => {
  it('destroys a Node source stream it refuses', async () => {
    const source = Readable.from([Buffer.from('PK\u0003\u0004 definitely not gzip')]);
    const error = await refusal(inspectTarball(source));
    expect(error.message).toContain('not gzip');
    await new Promise((resolve) => setImmediate(resolve));
    expect(source.destroyed).toBe(true);
  });

  it('stops pulling from an endless source once it has refused', async () => {
    const hostile = await packTarGz([{ name: '../escape', body: 'x' }]);
    let pulled = 0;
    let closed = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        yield hostile.subarray(0, hostile.length - 8); // everything but the gzip trailer
        for (;;) {
          pulled += 1;
          yield Buffer.alloc(1024);
        }
      } finally {
        closed = true;
      }
    }
    const error = await refusal(inspectTarball(endless()));
    expect(error.message).toContain('"../escape"');
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(true);
    expect(pulled).toBeLessThan(100);
  });

  it('refuses without waiting for a source that stalls after a hostile entry', async () => {
    const prefix = flushedPrefix(await packTar([{ name: 'link', type: 'symlink', linkname: '/etc/passwd' }]));
    let release: () => void = () => {};
    const stall = new Promise<void>((resolve) => {
      release = resolve;
    });
    const source: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]() {
        let sent = false;
        return {
          async next() {
            if (!sent) {
              sent = true;
              return { value: prefix, done: false };
            }
            await stall; // the rest of the upload never comes
            return { value: undefined, done: true };
          },
        };
      },
    };
    const error = await refusal(inspectTarball(source));
    expect(error.message).toContain('"link"');
    release();
  });

  it('reports a failing source as FetchFailed, not as a hostile tarball', async () => {
    const good = await goodTarball({});
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield good.subarray(0, 10);
      throw new Error('socket hang up');
    }
    const error = await refusal(inspectTarball(broken()));
    expect(error.code).toBe('FetchFailed');
    expect(error.message).toContain('socket hang up');
  });

  it('refuses a text stream', async () => {
    const good = await goodTarball({});
    const source = Readable.from([good]);
    source.setEncoding('latin1');
    await expect(inspectTarball(source)).rejects.toMatchObject({ code: 'InvalidInput' });
  });

  it('leaves no unhandled rejection or stray error event behind after refusals', async () => {
    const stray: unknown[] = [];
    const onStray = (error: unknown): void => {
      stray.push(error);
    };
    process.on('unhandledRejection', onStray);
    process.on('uncaughtException', onStray);
    try {
      for (const c of hostileCorpus()) {
        await inspectTarball(chunked(c.tarball, 4096), c.limits).catch(() => {});
      }
      // Give late 'error' and 'close' events from destroyed streams a chance to fire.
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('unhandledRejection', onStray);
      process.off('uncaughtException', onStray);
    }
    expect(stray).toEqual([]);
  });

  it('stops a gzip bomb after little output', async () => {
    const bomb = hostileCorpus().find((c) => c.name.startsWith('gzip bomb: 300 MiB'));
    expect(bomb).toBeDefined();
    const error = await refusal(inspectTarball(Readable.from([bomb!.tarball]), bomb!.limits));
    // "<n> bytes out of <m> compressed": n is what was inflated before we stopped.
    const inflated = Number(/\((\d+) bytes out of/.exec(error.message)?.[1]);
    expect(inflated).toBeGreaterThan(1024 * 1024);
    expect(inflated).toBeLessThan(8 * 1024 * 1024);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const segment = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,11}$/).filter((s) => s !== 'plugin.yaml');
const relPath = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('/'));

/** Random file trees with no path both a file and a parent of another file. */
const tree = fc
  .dictionary(relPath, fc.string({ unit: 'binary', maxLength: 300 }), { maxKeys: 12 })
  .map((files) => {
    const paths = Object.keys(files);
    const kept: Record<string, string> = {};
    for (const path of paths) {
      if (!paths.some((other) => other.startsWith(`${path}/`))) kept[path] = files[path]!;
    }
    return kept;
  });

describe('properties', () => {
  it('accepts every well-formed tree and reports its exact size', async () => {
    await fc.assert(
      fc.asyncProperty(tree, fc.option(segment, { nil: undefined }), fc.integer({ min: 1, max: 4096 }), async (files, prefix, chunk) => {
        const tarball = await goodTarball(files, prefix === undefined ? {} : { prefix });
        const report = await inspectTarball(chunked(tarball, chunk));
        const expectedBytes = Buffer.byteLength(MANIFEST) + Object.values(files).reduce((sum, body) => sum + Buffer.byteLength(body), 0);
        expect(report.unpackedBytes).toBe(expectedBytes);
        expect(report.files).toBe(Object.keys(files).length + 1);
        expect(report.sha256).toBe(sha256(tarball));
        expect(report.compressedBytes).toBe(tarball.length);
        expect(report.manifestText).toBe(MANIFEST);
        expect(report.stripComponents).toBe(prefix === undefined ? 0 : 1);
        // Every header in the archive is an entry (no pax headers for these short names).
        const headers = countHeaders(gunzipSync(tarball));
        expect(report.entries).toBe(headers);
      }),
      { numRuns: 150 },
    );
  });

  it('either accepts or refuses with a PluginError when one byte is corrupted', async () => {
    const base = await goodTarball({ 'skills/a/SKILL.md': '# a\n'.repeat(40), 'bin/run.sh': '#!/bin/sh\necho hi\n' }, { prefix: 'p' });
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: base.length - 1 }), fc.integer({ min: 1, max: 255 }), async (index, xor) => {
        const damaged = Buffer.from(base);
        damaged[index] = damaged[index]! ^ xor;
        try {
          await inspectTarball(Readable.from([damaged]));
        } catch (error) {
          expect(error).toBeInstanceOf(PluginError);
          expect(['HostileTarball', 'InvalidManifest']).toContain((error as PluginError).code);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('either accepts or refuses with a PluginError when one byte of the tar inside is corrupted', async () => {
    const tar = await packTar([
      { name: 'p/', type: 'directory' },
      { name: 'p/plugin.yaml', body: MANIFEST },
      { name: 'p/a.txt', body: 'hello\n' },
    ]);
    const { gzipSync } = await import('node:zlib');
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: tar.length - 1 }), fc.integer({ min: 1, max: 255 }), async (index, xor) => {
        const damaged = Buffer.from(tar);
        damaged[index] = damaged[index]! ^ xor;
        try {
          await inspectTarball(Readable.from([gzipSync(damaged)]));
        } catch (error) {
          expect(error).toBeInstanceOf(PluginError);
          expect(['HostileTarball', 'InvalidManifest']).toContain((error as PluginError).code);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/** Counts non-zero 512-byte header blocks by walking the ustar framing. */
function countHeaders(tar: Buffer): number {
  let count = 0;
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const block = tar.subarray(offset, offset + 512);
    if (block.every((b) => b === 0)) break;
    const size = parseInt(block.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
    count += 1;
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return count;
}
