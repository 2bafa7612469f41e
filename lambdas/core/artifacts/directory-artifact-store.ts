/** ArtifactStore on a local directory: the embedded stand-in for the S3 staging bucket. */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PluginError } from '../errors.ts';
import { digestStream } from './digest-stream.ts';
import { artifactKey, type ArtifactStore, type PendingUpload } from './artifact-store.ts';

const KEY = /^artifacts\/sha256\/[0-9a-f]{64}\.tar\.gz$/;

/** How a directory store hands out download URLs: HMAC-signed links its server verifies. */
export interface DirectoryPresignOptions {
  /** Base URL the links start with, e.g. http://127.0.0.1:8787 (the `pluginctl serve` address). */
  baseUrl: string;
  secret: Buffer;
  clock?: () => Date;
}

function signature(secret: Buffer, key: string, expires: number): string {
  return createHmac('sha256', secret).update(`${key}\n${expires}`).digest('hex');
}

export class DirectoryArtifactStore implements ArtifactStore {
  /** Present only when the store was given a base URL and secret to sign links with. */
  readonly presignGet?: (key: string, expiresInSeconds: number) => Promise<string>;

  constructor(
    readonly dir: string,
    private readonly presign?: DirectoryPresignOptions,
  ) {
    if (presign) {
      this.presignGet = async (key, expiresInSeconds) => {
        this.pathOf(key);
        const expires = Math.floor((presign.clock?.() ?? new Date()).getTime() / 1000) + expiresInSeconds;
        return `${presign.baseUrl}/${key}?expires=${expires}&signature=${signature(presign.secret, key, expires)}`;
      };
    }
  }

  /** Checks a link made by presignGet: right signature, not expired. */
  verifyPresigned(key: string, expires: string | null, sig: string | null): boolean {
    if (!this.presign || !expires || !sig || !/^\d{1,12}$/.test(expires) || !/^[0-9a-f]{64}$/.test(sig)) return false;
    const now = Math.floor((this.presign.clock?.() ?? new Date()).getTime() / 1000);
    if (Number(expires) < now) return false;
    const expected = Buffer.from(signature(this.presign.secret, key, Number(expires)), 'hex');
    return timingSafeEqual(expected, Buffer.from(sig, 'hex'));
  }

  pathOf(key: string): string {
    if (!KEY.test(key)) throw new PluginError('InvalidInput', `invalid artifact key ${JSON.stringify(key)}`, 'artifact keys look like artifacts/sha256/<hex>.tar.gz');
    return join(this.dir, key);
  }

  async upload(body: Readable): Promise<PendingUpload> {
    const uploads = join(this.dir, 'uploads');
    await mkdir(uploads, { recursive: true });
    // A body cut off while we waited (validation already failed) would never end a pipeline.
    if (body.destroyed) throw new Error('upload body was closed before the upload started');
    const tmp = join(uploads, `${randomUUID()}.part`);
    const digest = digestStream();
    const counter = digest.transform;
    try {
      await pipeline(body, counter, createWriteStream(tmp, { flags: 'wx' }));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const { sha256, bytes } = digest.result();
    return {
      sha256,
      bytes,
      commit: async () => {
        const key = artifactKey(sha256);
        const dest = this.pathOf(key);
        await mkdir(dirname(dest), { recursive: true });
        // rename() replaces atomically; identical bytes under an identical name, so a race is harmless.
        await rename(tmp, dest).catch(async (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          if (!(await this.exists(key))) throw err;
        });
        return key;
      },
      discard: () => rm(tmp, { force: true }),
    };
  }

  async open(key: string): Promise<Readable> {
    const path = this.pathOf(key);
    if (!(await this.exists(key))) throw new PluginError('SourceNotFound', `artifact ${key} is not in the store`, 'run the install again so Prepare stores it');
    return createReadStream(path);
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(key))).isFile();
    } catch {
      return false;
    }
  }
}
