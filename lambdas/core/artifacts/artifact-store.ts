/**
 * The `ArtifactStore` port: validated tarballs, stored content-addressed by sha256 so that every
 * later step (and every retry) reads exactly the bytes Prepare checked.
 *
 * Adapters: a directory (embedded mode) and S3. Writes are two-phase: bytes stream into an
 * upload, and only a tarball that passed validation is committed under its digest.
 */
import type { Readable } from 'node:stream';

export interface PendingUpload {
  readonly sha256: string;
  readonly bytes: number;
  /** Makes the upload visible under `artifactKey(sha256)`. Idempotent. */
  commit(): Promise<string>;
  /** Drops the upload (validation failed). */
  discard(): Promise<void>;
}

export interface ArtifactStore {
  /** Streams `body` into a pending upload, hashing as it goes. */
  upload(body: Readable): Promise<PendingUpload>;
  /** Streams a committed artifact back out. Throws SourceNotFound if absent. */
  open(key: string): Promise<Readable>;
  exists(key: string): Promise<boolean>;
  /**
   * A short-lived URL a host can GET the artifact from (S3 presigned URL), for transports that
   * cannot stream stdin. Stores without one (a local directory) leave it out.
   */
  presignGet?(key: string, expiresInSeconds: number): Promise<string>;
}

export function artifactKey(sha256: string): string {
  return `artifacts/sha256/${sha256}.tar.gz`;
}
