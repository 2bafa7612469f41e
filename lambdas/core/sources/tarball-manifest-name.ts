/**
 * The `name` in a local `.tar.gz` file's plugin.yaml, read before the workflow starts so the
 * execution can be named `<workspace>-<plugin>-<stamp>` (docs/workflows.md). Best effort and
 * bounded: it reads at most MAX_ENTRIES headers, MAX_UNPACKED_BYTES of unpacked data and
 * MAX_MANIFEST_BYTES of manifest, stops at the manifest, and any fault (not a tarball, hostile, unreadable) gives undefined. Prepare's
 * validation is what counts; this only labels the execution.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { parse } from 'yaml';

const MAX_ENTRIES = 10_000;
const MAX_MANIFEST_BYTES = 64 * 1024;
/** Past this much unpacked data without a manifest, give up (a bomb costs Prepare, not this). */
const MAX_UNPACKED_BYTES = 16 * 1024 * 1024;

/** `plugin.yaml` at the top, or under one top directory (the layouts the validator accepts). */
function isManifestPath(name: string): boolean {
  const parts = name.replace(/^(\.\/)+/, '').split('/').filter(Boolean);
  return (parts.length === 1 || parts.length === 2) && parts.at(-1) === 'plugin.yaml';
}

async function readCapped(entry: Readable): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of entry) {
    size += (chunk as Buffer).length;
    if (size > MAX_MANIFEST_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function tarballManifestName(path: string): Promise<string | undefined> {
  const file = createReadStream(path);
  const gunzip = createGunzip();
  const tar = extract();
  file.on('error', (err) => tar.destroy(err));
  gunzip.on('error', (err) => tar.destroy(err));
  let unpacked = 0;
  gunzip.on('data', (chunk: Buffer) => {
    unpacked += chunk.length;
    if (unpacked > MAX_UNPACKED_BYTES) tar.destroy(new Error('too much data before plugin.yaml'));
  });
  file.pipe(gunzip).pipe(tar);
  let seen = 0;
  try {
    for await (const entry of tar) {
      if (++seen > MAX_ENTRIES) return undefined;
      if ((entry.header.type ?? 'file') === 'file' && isManifestPath(entry.header.name)) {
        const text = await readCapped(entry as unknown as Readable);
        const manifest: unknown = text === undefined ? undefined : parse(text);
        if (manifest && typeof manifest === 'object' && 'name' in manifest && typeof manifest.name === 'string') return manifest.name;
        return undefined;
      }
      entry.resume();
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    file.destroy();
    gunzip.destroy();
    tar.destroy();
  }
}
