/** A pass-through that hashes (sha256) and counts the bytes of an upload on their way. */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { SHA256 } from '../names.ts';

export interface DigestStream {
  transform: Transform;
  /** Digest and size of everything that went through; call once the pipeline has finished. */
  result(): { sha256: string; bytes: number };
}

export function digestStream(): DigestStream {
  const hash = createHash('sha256');
  let bytes = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  return {
    transform,
    result: () => {
      const sha256 = hash.digest('hex');
      if (!SHA256.test(sha256)) throw new Error('unreachable: bad digest');
      return { sha256, bytes };
    },
  };
}
