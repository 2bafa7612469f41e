/** ArtifactStore on a local directory: the embedded stand-in for the S3 staging bucket. */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PluginError } from '../errors.ts';
import { SHA256 } from '../names.ts';
import { artifactKey, type ArtifactStore, type PendingUpload } from './artifact-store.ts';

const KEY = /^artifacts\/sha256\/[0-9a-f]{64}\.tar\.gz$/;

export class DirectoryArtifactStore implements ArtifactStore {
  constructor(readonly dir: string) {}

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
    const hash = createHash('sha256');
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(body, counter, createWriteStream(tmp, { flags: 'wx' }));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const sha256 = hash.digest('hex');
    if (!SHA256.test(sha256)) throw new Error('unreachable: bad digest');
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
