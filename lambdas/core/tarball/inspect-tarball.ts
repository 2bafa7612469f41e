/**
 * Streaming validation of a plugin tarball (`.tar.gz` with `plugin.yaml` at its top).
 *
 * This runs before any workspace host is touched, so it is the gate that keeps hostile archives
 * away from `tar` running as root on a host. It reads the stream once, never holds the archive
 * in memory (only plugin.yaml, capped, and one normalized path per entry), and refuses anything
 * whose extraction could write outside the plugin directory, create something other than plain
 * files and directories, forge the installer's markers, or exhaust the host.
 *
 * The host extracts with GNU tar, so where tar readers could read the same bytes differently
 * (pax global headers, GNU sparse files, directories with a body) we refuse instead of guessing
 * which reading the host would pick.
 */
import { createHash } from 'node:crypto';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract, type Header } from 'tar-stream';
import { PluginError } from '../errors.ts';

export interface TarballLimits {
  /** Every header that produces an entry counts, directories and the `./` root included. */
  maxEntries: number;
  /** Sum of the declared sizes of regular files. */
  maxUnpackedBytes: number;
  maxCompressedBytes: number;
  /**
   * Decompressed bytes / compressed bytes consumed, checked on every decompressed chunk once more
   * than 1 MiB has come out, so a gzip bomb is stopped after ~1 MiB rather than at the size limit.
   */
  maxCompressionRatio: number;
  maxManifestBytes: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_TARBALL_LIMITS: TarballLimits = Object.freeze({
  maxEntries: 10_000,
  maxUnpackedBytes: 100 * MiB,
  maxCompressedBytes: 100 * MiB,
  maxCompressionRatio: 200,
  maxManifestBytes: 64 * 1024,
});

export interface TarballReport {
  /** Hex SHA-256 of the compressed bytes exactly as received (what a user checksums). */
  sha256: string;
  compressedBytes: number;
  /** Sum of regular file sizes. */
  unpackedBytes: number;
  entries: number;
  files: number;
  /** plugin.yaml, decoded as UTF-8. */
  manifestText: string;
  /** 1 when every entry sits under one single top-level directory, else 0. */
  stripComponents: 0 | 1;
}

/** Linux PATH_MAX; GNU tar and the host's tools choke beyond it anyway. */
const MAX_NAME_BYTES = 4096;
/** Linux NAME_MAX: refusing here gives a readable error instead of a failed extraction later. */
const MAX_SEGMENT_BYTES = 255;
/** The ratio is meaningless on tiny inputs (headers of a small tarball compress very well). */
const RATIO_GRACE_BYTES = 1 * MiB;
/**
 * Tar framing per entry (header, pax/long-name headers, padding) is not counted in
 * maxUnpackedBytes, so without a cap on the raw tar stream an archive of endless pax global
 * headers or zero blocks could keep us inflating at just under maxCompressionRatio for minutes.
 * 8 KiB covers a 4096-byte name in a pax header plus the ustar header and padding.
 */
const FRAMING_BYTES_PER_ENTRY = 8 * 1024;
const FRAMING_SLACK_BYTES = 1 * MiB;

/** Written by the installer next to the plugin; shipping them would forge an install. */
const RESERVED_TOP_NAMES = new Set(['.complete', '.install-stamp', '.restored-from']);

const MANIFEST_NAME = 'plugin.yaml';

const REBUILD_HINT = 'rebuild the tarball from inside the plugin directory (tar czf plugin.tar.gz -C <dir> .)';
const CORRUPT_HINT = 'rebuild the tarball with tar czf and upload it again; if it was downloaded, download it again';

type Kind = 'file' | 'dir';

/**
 * Quotes an entry name for a message, cut short so a 4 KiB name does not swamp the log, with DEL
 * and C1 controls escaped too (JSON leaves them raw, and a terminal would act on them).
 */
function quote(name: string): string {
  const quoted = JSON.stringify(name.length > 200 ? name.slice(0, 200) : name).replace(
    /[\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return name.length > 200 ? `${quoted}…` : quoted;
}

function hostile(message: string, hint: string): PluginError {
  return new PluginError('HostileTarball', message, hint);
}

function resolveLimits(overrides: Partial<TarballLimits> | undefined): TarballLimits {
  const limits: TarballLimits = { ...DEFAULT_TARBALL_LIMITS };
  for (const [key, value] of Object.entries(overrides ?? {})) {
    if (!Object.hasOwn(DEFAULT_TARBALL_LIMITS, key)) {
      throw new PluginError('InvalidInput', `unknown tarball limit ${JSON.stringify(key)}`, `limits are ${Object.keys(DEFAULT_TARBALL_LIMITS).join(', ')}`);
    }
    if (value === undefined) continue;
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      throw new PluginError('InvalidInput', `tarball limit ${key} must be a positive number, got ${String(value)}`, 'pass positive finite numbers as limits');
    }
    limits[key as keyof TarballLimits] = value;
  }
  return limits;
}

/**
 * Checks an entry name and returns it normalized (`./a`, `a/`, `a//b` → `a`, `a`, `a/b`; the
 * root entry `./` → ''). Normalizing is what makes duplicate detection meaningful: GNU tar would
 * write `a` and `./a` to the same place.
 */
function normalizeName(name: string): string {
  if (name === '') throw hostile('tarball entry "" has an empty name', REBUILD_HINT);
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) {
    throw hostile(`tarball entry ${quote(name)} has a name of ${Buffer.byteLength(name)} bytes (limit ${MAX_NAME_BYTES})`, 'shorten the paths inside the plugin and rebuild the tarball');
  }
  // C0, DEL and C1 controls: they make names ambiguous in logs and terminals (C1 0x9b is CSI).
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) {
    throw hostile(`tarball entry ${quote(name)} has a control character in its name`, 'rename the file without control characters (newlines, tabs, escapes) and rebuild the tarball');
  }
  // Backslashes are separators to some tools and not to others; either reading is a surprise.
  if (name.includes('\\')) {
    throw hostile(`tarball entry ${quote(name)} has a backslash in its name`, 'use forward slashes only and rebuild the tarball');
  }
  // tar-stream decodes names as UTF-8 and substitutes U+FFFD for invalid bytes, so the name we
  // check would not be the name the host writes.
  if (name.includes('\uFFFD')) {
    throw hostile(`tarball entry ${quote(name)} has a name that is not valid UTF-8`, 'rename the file to valid UTF-8 and rebuild the tarball');
  }
  if (name.startsWith('/')) {
    throw hostile(`tarball entry ${quote(name)} has an absolute path`, REBUILD_HINT);
  }
  const segments = name.split('/');
  if (segments.includes('..')) {
    throw hostile(`tarball entry ${quote(name)} has a ".." path segment (path traversal)`, REBUILD_HINT);
  }
  const kept = segments.filter((segment) => segment !== '' && segment !== '.');
  for (const segment of kept) {
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
      throw hostile(`tarball entry ${quote(name)} has a path component over ${MAX_SEGMENT_BYTES} bytes`, 'shorten the file names inside the plugin and rebuild the tarball');
    }
  }
  return kept.join('/');
}

/** Refuses every entry type but regular files and directories, with a hint for each. */
function checkType(header: Header, name: string): Kind {
  // tar-stream reports unknown typeflags as null although its types do not say so.
  const type = header.type as Header['type'] | null;
  if (type === 'file') return 'file';
  if (type === 'directory') return 'dir';
  // Links are refused outright rather than resolved: deciding whether a target stays inside the
  // plugin depends on the order of extraction and on what already exists on the host, which is
  // exactly the kind of reasoning that goes wrong. Plugins ship plain files.
  if (type === 'symlink' || type === 'link') {
    const what = type === 'symlink' ? 'a symlink' : 'a hardlink';
    const target = header.linkname ? ` to ${quote(header.linkname)}` : '';
    throw hostile(
      `tarball entry ${quote(name)} is ${what}${target}; links are not allowed`,
      'rebuild the tarball without symlinks or hardlinks: copy the target files in instead (GNU tar: --dereference --hard-dereference)',
    );
  }
  const described: Record<string, string> = {
    'character-device': 'a character device',
    'block-device': 'a block device',
    fifo: 'a fifo',
    'contiguous-file': 'a contiguous file',
  };
  // tar-stream maps typeflags it does not know (GNU 'S' sparse, 'V' volume label, ...) to null.
  const what = (type && described[type]) ?? (type ? `of unsupported type ${JSON.stringify(type)}` : 'of an unknown type');
  throw hostile(`tarball entry ${quote(name)} is ${what}; only regular files and directories are allowed`, 'rebuild the tarball with only regular files and directories');
}

/** What we track per archive while it streams. Kept flat so memory is one string per entry. */
interface Walk {
  entries: number;
  files: number;
  unpackedBytes: number;
  /** Normalized path → kind, for duplicates and the end-of-stream tree checks. */
  paths: Map<string, Kind>;
  /** First path segment of the first non-root entry, and whether every entry since shares it. */
  firstTop: string | null;
  singleTop: boolean;
  /** Bodies of files that may turn out to be the manifest, or the declared size when too big. */
  manifestCandidates: Map<string, Buffer[] | number>;
  /** Name of the entry being read, for messages about stream-level failures. */
  current: string | null;
}

type Chunk = Uint8Array | string;

/** What `until` needs from both Node's and streamx's event emitters. */
interface Listenable {
  on(event: 'drain', listener: () => void): unknown;
  off(event: 'drain', listener: () => void): unknown;
}

/**
 * pax keywords GNU tar acts on that tar-stream ignores (or that would change what lands on the
 * host in ways we do not check). `path`, `linkpath` and `size` in a per-entry header are fine:
 * tar-stream applies them exactly like GNU tar.
 */
function riskyPaxKey(key: string): boolean {
  return key.startsWith('GNU.sparse.')
    || key.startsWith('GNU.volume.')
    || key === 'GNU.dumpdir'
    || key === 'SCHILY.realsize'
    // File capabilities and trusted xattrs would be restored by a host running tar --xattrs.
    || /^(SCHILY|LIBARCHIVE)\.xattr\.(security|trusted)\./.test(key);
}

/** Keywords a global pax header may carry (git archive writes `comment` with the commit id). */
const HARMLESS_GLOBAL_PAX_KEYS = new Set(['comment', 'mtime', 'atime', 'ctime', 'charset', 'hdrcharset']);

export async function inspectTarball(
  input: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
  limits?: Partial<TarballLimits>,
): Promise<TarballReport> {
  const lim = resolveLimits(limits);
  const rawLimit = lim.maxUnpackedBytes + lim.maxEntries * FRAMING_BYTES_PER_ENTRY + FRAMING_SLACK_BYTES;

  const hash = createHash('sha256');
  const gunzip = createGunzip();
  const extract = tarExtract();
  const walk: Walk = {
    entries: 0,
    files: 0,
    unpackedBytes: 0,
    paths: new Map(),
    firstTop: null,
    singleTop: true,
    manifestCandidates: new Map(),
    current: null,
  };

  let compressedBytes = 0;
  let rawBytes = 0;
  const magic: number[] = [];

  // One failure wins; everything else is torn down and later errors are swallowed by the
  // listeners below, so no stream is left emitting 'error' into the void.
  let failure: PluginError | null = null;
  const wakers = new Set<() => void>();
  let extractSettled!: () => void;
  const extracted = new Promise<void>((resolve) => {
    extractSettled = resolve;
  });

  const fail = (error: unknown): void => {
    if (failure) return;
    failure = error instanceof PluginError
      ? error
      : hostile(`tarball could not be read: ${error instanceof Error ? error.message : String(error)}`, CORRUPT_HINT);
    gunzip.destroy();
    extract.destroy();
    const destroyable = input as { destroy?: unknown };
    if (typeof destroyable.destroy === 'function') (destroyable.destroy as () => void).call(input);
    for (const wake of [...wakers]) wake();
    extractSettled();
  };

  /** Resolves on `event`, or at once when the inspection fails, leaving no listener behind. */
  const until = (emitter: Listenable, event: 'drain'): Promise<void> => {
    if (failure) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        emitter.off(event, done);
        wakers.delete(done);
        resolve();
      };
      emitter.on(event, done);
      wakers.add(done);
    });
  };

  /** Races a promise against failure, so a stalled source cannot hold a refused inspection. */
  const orFailure = <T>(promise: Promise<T>): Promise<T | null> => {
    promise.catch(() => {});
    if (failure) return Promise.resolve(null);
    return new Promise<T | null>((resolve, reject) => {
      const wake = (): void => resolve(null);
      wakers.add(wake);
      promise.then(
        (value) => {
          wakers.delete(wake);
          resolve(value);
        },
        (error: unknown) => {
          wakers.delete(wake);
          reject(error);
        },
      );
    });
  };

  gunzip.on('error', (error: NodeJS.ErrnoException) => {
    const truncated = error.code === 'Z_BUF_ERROR';
    fail(hostile(`tarball's gzip stream is ${truncated ? 'truncated' : 'corrupt'} (${error.message})`, CORRUPT_HINT));
  });
  gunzip.on('data', (chunk: Buffer) => {
    if (failure) return;
    rawBytes += chunk.length;
    const at = walk.current === null ? '' : ` (while reading ${quote(walk.current)})`;
    // bytesWritten is what inflate has consumed so far, not what we have fed it, so the ratio
    // is accurate even when a whole bomb arrives in one chunk.
    const consumed = Math.max(1, gunzip.bytesWritten);
    if (rawBytes > RATIO_GRACE_BYTES && rawBytes / consumed > lim.maxCompressionRatio) {
      fail(hostile(
        `tarball expands more than ${lim.maxCompressionRatio}x (${rawBytes} bytes out of ${consumed} compressed)${at}; refusing a likely gzip bomb`,
        'plugins should not contain huge runs of repetitive data; ship such data another way or compress it less',
      ));
      return;
    }
    if (rawBytes > rawLimit) {
      fail(hostile(`tarball's tar stream exceeds ${rawLimit} bytes including headers and padding${at}`, 'make the plugin smaller and rebuild the tarball'));
      return;
    }
    if (!extract.write(chunk)) {
      gunzip.pause();
      void until(extract, 'drain').then(() => {
        if (!failure) gunzip.resume();
      });
    }
  });
  gunzip.on('end', () => {
    if (!failure) extract.end(undefined);
  });

  extract.on('error', (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    if (/unexpected end/i.test(message)) {
      fail(hostile(`tarball's tar stream is truncated${walk.current === null ? '' : ` inside entry ${quote(walk.current)}`}`, CORRUPT_HINT));
    } else {
      fail(hostile(`tarball's tar stream is corrupt (${message})`, CORRUPT_HINT));
    }
  });
  extract.on('finish', () => {
    extractSettled();
  });
  extract.on('entry', (header, body, next) => {
    // tar-stream re-emits the parent's error on the body; the parent's handler reports it.
    body.on('error', () => {});
    if (failure) return;
    try {
      const candidate = onEntry(header, walk, lim, extract);
      if (candidate === null) {
        body.on('end', () => next());
        body.resume();
        return;
      }
      const chunks: Buffer[] = [];
      body.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
      body.on('end', () => {
        walk.manifestCandidates.set(candidate, chunks);
        next();
      });
    } catch (error) {
      fail(error);
    }
  });

  // Feed the compressed input, hashing exactly the bytes received.
  const iterator = (input as AsyncIterable<Chunk>)[Symbol.asyncIterator]();
  let exhausted = false;
  try {
    while (!failure) {
      const step = await orFailure(iterator.next());
      if (step === null || failure) break;
      if (step.done) {
        exhausted = true;
        break;
      }
      const chunk: unknown = step.value;
      if (!(chunk instanceof Uint8Array)) {
        // Text means someone called setEncoding: the bytes are already mangled.
        fail(new PluginError('InvalidInput', `tarball stream yields ${typeof chunk === 'string' ? 'text' : typeof chunk} instead of bytes`, 'pass the raw byte stream (do not call setEncoding on it)'));
        break;
      }
      const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (bytes.length === 0) continue;
      compressedBytes += bytes.length;
      if (compressedBytes > lim.maxCompressedBytes) {
        fail(hostile(`tarball is larger than ${lim.maxCompressedBytes} bytes compressed`, 'make the plugin smaller; large data does not belong in a plugin'));
        break;
      }
      hash.update(bytes);
      // Checking the gzip magic ourselves gives "not gzip" instead of zlib's "incorrect header check".
      for (let i = 0; magic.length < 2 && i < bytes.length; i++) magic.push(bytes[i]!);
      if (magic.length === 2 && (magic[0] !== 0x1f || magic[1] !== 0x8b)) {
        const shown = magic.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ');
        fail(hostile(`tarball is not gzip-compressed (it starts with ${shown})`, 'upload a .tar.gz (tar czf plugin.tar.gz -C <dir> .)'));
        break;
      }
      if (!gunzip.write(bytes)) await until(gunzip, 'drain');
    }
  } catch (error) {
    // The source itself failed (network, disk): not the tarball's fault, so not HostileTarball.
    fail(error instanceof PluginError
      ? error
      : new PluginError('FetchFailed', `reading the tarball failed: ${error instanceof Error ? error.message : String(error)}`, 'retry; if it keeps failing, check the tarball source', { cause: error }));
  } finally {
    if (!exhausted) {
      // Stops a Node stream or generator we walked away from; not awaited, a stalled source
      // must not hold the refusal.
      void Promise.resolve()
        .then(() => iterator.return?.())
        .catch(() => {});
    }
  }

  if (!failure) {
    if (compressedBytes === 0) {
      fail(hostile('tarball is empty (0 bytes): the stream is truncated', CORRUPT_HINT));
    } else {
      gunzip.end();
    }
  }
  await extracted;
  if (failure) throw failure;

  const report = finish(walk, lim);
  return { sha256: hash.digest('hex'), compressedBytes, ...report };
}

/**
 * Validates one header and records it. Returns the normalized path when the body may be the
 * manifest (so the caller keeps it), else null.
 */
function onEntry(header: Header, walk: Walk, lim: TarballLimits, extract: unknown): string | null {
  const name = header.name;
  walk.current = name;
  walk.entries += 1;
  if (walk.entries > lim.maxEntries) {
    throw hostile(`tarball has more than ${lim.maxEntries} entries (entry ${quote(name)} is one too many)`, `keep plugins under ${lim.maxEntries} files and directories`);
  }

  const path = normalizeName(name);
  const kind = checkType(header, name);

  const mode = header.mode ?? 0;
  if (!Number.isSafeInteger(mode) || mode < 0) {
    throw hostile(`tarball entry ${quote(name)} has an unreadable mode field (corrupt header)`, CORRUPT_HINT);
  }
  if ((mode & 0o7000) !== 0) {
    const bits = [mode & 0o4000 ? 'setuid' : '', mode & 0o2000 ? 'setgid' : '', mode & 0o1000 ? 'sticky' : ''].filter(Boolean).join(', ');
    throw hostile(
      `tarball entry ${quote(name)} has mode ${(mode & 0o7777).toString(8)} with ${bits} set`,
      'clear the bits (chmod -R u-s,g-s,-t <dir>) and rebuild the tarball',
    );
  }

  // GNU tar applies a pax global header to every later entry while tar-stream merges it only into
  // entries that carry their own pax header, so a global `path` or `size` would make the host
  // read a different archive from the one we checked. tar-stream keeps the last global header in
  // the internal `_paxGlobal`; the corpus has a case that fails if that internal ever moves.
  const paxGlobal = (extract as { _paxGlobal?: Record<string, string> | null })._paxGlobal;
  const globalKey = paxGlobal ? Object.keys(paxGlobal).find((key) => !HARMLESS_GLOBAL_PAX_KEYS.has(key)) : undefined;
  if (globalKey !== undefined) {
    throw hostile(
      `tarball entry ${quote(name)} follows a pax global header setting ${JSON.stringify(globalKey)}, which tar implementations apply differently`,
      'rebuild the tarball with GNU tar or bsdtar defaults (no global extended headers)',
    );
  }
  // e.g. GNU tar rebuilds a sparse file under GNU.sparse.name, a name we would not have checked.
  const pax = (header as { pax?: Record<string, string> | null }).pax;
  const paxKey = pax ? Object.keys(pax).find(riskyPaxKey) : undefined;
  if (paxKey !== undefined) {
    throw hostile(`tarball entry ${quote(name)} carries the pax keyword ${JSON.stringify(paxKey)}, which is not allowed`, 'rebuild the tarball without --sparse, --xattrs or multi-volume options');
  }

  const size = header.size ?? 0;
  // Whether a directory's declared size is followed by a body is not settled between tar
  // readers (tar-stream and GNU tar 1.34 read the next header right after it; readers that honour
  // the size skip those bytes), so such a header lets an archive show different entries to
  // different tools. Nothing legitimate writes one.
  if (kind === 'dir' && size !== 0) {
    throw hostile(`tarball entry ${quote(name)} is a directory that declares ${size} bytes of content`, CORRUPT_HINT);
  }

  if (path === '') {
    // `./` or `.`: the root directory entry many tar tools emit. Only as a directory.
    if (kind !== 'dir') throw hostile(`tarball entry ${quote(name)} is the plugin root but not a directory`, REBUILD_HINT);
    return null;
  }

  const previous = walk.paths.get(path);
  if (previous !== undefined) {
    if (previous !== kind) {
      throw hostile(
        `tarball entry ${quote(name)} is a ${kind === 'file' ? 'file' : 'directory'} but an earlier entry made ${quote(path)} a ${previous === 'file' ? 'file' : 'directory'}`,
        'rebuild the tarball from a clean directory tree',
      );
    }
    throw hostile(`tarball entry ${quote(name)} duplicates an earlier entry for ${quote(path)}`, 'rebuild the tarball from a clean directory tree (do not append to an existing tarball)');
  }
  walk.paths.set(path, kind);

  const slash = path.indexOf('/');
  const top = slash === -1 ? path : path.slice(0, slash);
  if (walk.firstTop === null) walk.firstTop = top;
  else if (top !== walk.firstTop) walk.singleTop = false;

  if (kind === 'file') {
    walk.files += 1;
    walk.unpackedBytes += size;
    if (walk.unpackedBytes > lim.maxUnpackedBytes) {
      throw hostile(
        `tarball entry ${quote(name)} (${size} bytes) takes the unpacked size to ${walk.unpackedBytes} bytes, over the limit of ${lim.maxUnpackedBytes}`,
        'make the plugin smaller; large data does not belong in a plugin',
      );
    }
  }

  // Only two paths can end up being the manifest: `plugin.yaml`, or `<top>/plugin.yaml` while
  // every entry still shares one top directory. Keeping just those bounds manifest memory.
  const candidate = path === MANIFEST_NAME || (walk.singleTop && path === `${walk.firstTop}/${MANIFEST_NAME}`);
  if (!candidate || kind !== 'file') return null;
  if (size > lim.maxManifestBytes) {
    if (path === MANIFEST_NAME) {
      // A top-level plugin.yaml file is the manifest whatever follows: fail before reading it.
      throw manifestTooBig(name, size, lim);
    }
    walk.manifestCandidates.set(path, size);
    return null;
  }
  return path;
}

function manifestTooBig(name: string, size: number, lim: TarballLimits): PluginError {
  return new PluginError('InvalidManifest', `${quote(name)} is ${size} bytes, over the plugin.yaml limit of ${lim.maxManifestBytes}`, 'keep plugin.yaml small: it describes the plugin, it does not carry it');
}

/** Checks that need the whole listing: tree conflicts, layout, reserved names, the manifest. */
function finish(walk: Walk, lim: TarballLimits): Omit<TarballReport, 'sha256' | 'compressedBytes'> {
  const top = walk.firstTop;
  const stripComponents: 0 | 1 = top !== null && walk.singleTop && walk.paths.get(top) !== 'file' ? 1 : 0;
  const manifestPath = stripComponents === 1 ? `${top}/${MANIFEST_NAME}` : MANIFEST_NAME;

  // Sorting with '/' mapped to '\0' puts every path right before its own descendants, so "a file
  // used as a directory" shows up between neighbours, in O(n log n) and one string per entry.
  // Checking ancestors per entry instead would cost O(depth x length) each, a CPU bomb with
  // deep 4 KiB names.
  const keys = [...walk.paths.keys()].map((path) => path.replaceAll('/', '\0')).sort();
  const manifestKey = manifestPath.replaceAll('/', '\0');
  let manifestIsDir = walk.paths.get(manifestPath) === 'dir';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const path = key.replaceAll('\0', '/');
    const prev = i > 0 ? keys[i - 1]! : null;
    if (prev !== null && key.startsWith(`${prev}\0`) && walk.paths.get(prev.replaceAll('\0', '/')) === 'file') {
      const parent = prev.replaceAll('\0', '/');
      throw hostile(`tarball entry ${quote(path)} sits under ${quote(parent)}, which is a file`, 'rebuild the tarball from a clean directory tree');
    }
    if (key.startsWith(`${manifestKey}\0`)) manifestIsDir = true;
    if (stripComponents === 1 && !path.includes('/')) continue; // the top directory being stripped
    const inPlugin = stripComponents === 1 ? path.slice(path.indexOf('/') + 1) : path;
    const first = inPlugin.split('/', 1)[0]!;
    if (RESERVED_TOP_NAMES.has(first)) {
      throw hostile(
        `tarball entry ${quote(path)} uses ${quote(first)}, a name the installer reserves for its own markers`,
        `remove ${first} from the plugin directory and rebuild the tarball`,
      );
    }
  }

  const manifestHint = 'put plugin.yaml at the top of the plugin directory and build the tarball from there';
  if (manifestIsDir) {
    throw new PluginError('InvalidManifest', `${quote(manifestPath)} is a directory, not a regular file`, manifestHint);
  }
  const body = walk.manifestCandidates.get(manifestPath);
  if (walk.paths.get(manifestPath) !== 'file' || body === undefined) {
    const where = stripComponents === 1 ? `${quote(manifestPath)} (the tarball has the single top directory ${quote(top ?? '')})` : quote(manifestPath);
    throw new PluginError('InvalidManifest', `tarball has no plugin.yaml at its top: looked for ${where}`, manifestHint);
  }
  if (typeof body === 'number') throw manifestTooBig(manifestPath, body, lim);
  let manifestText: string;
  try {
    manifestText = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(body));
  } catch {
    throw new PluginError('InvalidManifest', `${quote(manifestPath)} is not valid UTF-8`, 'save plugin.yaml as UTF-8 and rebuild the tarball');
  }

  return {
    unpackedBytes: walk.unpackedBytes,
    entries: walk.entries,
    files: walk.files,
    manifestText,
    stripComponents,
  };
}
