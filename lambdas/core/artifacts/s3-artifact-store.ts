/**
 * ArtifactStore on S3: the staging bucket of the AWS deployment.
 *
 *   uploads/<uuid>.tar.gz                 where Prepare streams the source while validating it
 *   artifacts/sha256/<hex>.tar.gz         committed, validated tarballs (content-addressed)
 *
 * `upload` streams the body with a multipart upload (lib-storage `Upload`): at most
 * `queueSize × partSize` bytes are buffered, never the whole tarball. The sha256 and the byte
 * count are computed on the way through. `commit` copies the upload under its digest (skipped
 * when an identical artifact is already there) and deletes the upload; `discard` deletes it.
 * Uploads orphaned by a Lambda that died between upload and commit are left to the bucket's
 * lifecycle rules (expire `uploads/`, abort incomplete multipart uploads).
 *
 * Keys are plain path-style-safe ASCII, so the store works with virtual-hosted and path-style
 * (`forcePathStyle`) clients alike. Throttling, 5xx and network failures surface as
 * PluginError('HostUnreachable'), which the workflows retry.
 */
import { randomUUID } from 'node:crypto';
import { Readable, pipeline } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { awsErrorName, awsStatus, describeAwsError, isTransientAwsError } from '../aws-errors.ts';
import { PluginError } from '../errors.ts';
import { digestStream } from './digest-stream.ts';
import { s3BodyStream } from './s3-body-stream.ts';
import { artifactKey, type ArtifactStore, type PendingUpload } from './artifact-store.ts';

const KEY = /^artifacts\/sha256\/[0-9a-f]{64}\.tar\.gz$/;
/** S3's longest presigned-URL lifetime (SigV4): 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/** Same shape as `getSignedUrl` from @aws-sdk/s3-request-presigner (the default). */
export type S3Presigner = (client: S3Client, command: GetObjectCommand, options: { expiresIn: number }) => Promise<string>;

export interface S3ArtifactStoreOptions {
  client: S3Client;
  bucket: string;
  presigner?: S3Presigner;
  /** Multipart part size in bytes (S3 minimum and default: 5 MiB). */
  partSize?: number;
  /** Parts uploaded in parallel (default 4); `queueSize × partSize` bounds the memory used. */
  queueSize?: number;
}

const defaultPresigner: S3Presigner = (client, command, options) => getSignedUrl(client, command, options);

function isNotFound(err: unknown): boolean {
  const name = awsErrorName(err);
  return name === 'NoSuchKey' || name === 'NotFound' || awsStatus(err) === 404;
}

export class S3ArtifactStore implements ArtifactStore {
  readonly client: S3Client;
  readonly bucket: string;
  private readonly presigner: S3Presigner;
  private readonly partSize: number;
  private readonly queueSize: number;

  constructor(options: S3ArtifactStoreOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
    this.presigner = options.presigner ?? defaultPresigner;
    this.partSize = Math.max(options.partSize ?? 5 * 1024 * 1024, 5 * 1024 * 1024);
    this.queueSize = Math.max(1, options.queueSize ?? 4);
  }

  /** Transient failures become HostUnreachable (retried); anything else passes through unchanged. */
  private failure(err: unknown, what: string): unknown {
    if (err instanceof PluginError) return err;
    if (isTransientAwsError(err)) {
      return new PluginError('HostUnreachable', `S3 ${what} failed (bucket ${this.bucket}): ${describeAwsError(err)}`, 'S3 was throttling or unreachable; the step is retried', { cause: err });
    }
    return err;
  }

  private checkKey(key: string): string {
    if (!KEY.test(key)) throw new PluginError('InvalidInput', `invalid artifact key ${JSON.stringify(key)}`, 'artifact keys look like artifacts/sha256/<hex>.tar.gz');
    return key;
  }

  async upload(body: Readable): Promise<PendingUpload> {
    // A body cut off while we waited (validation already failed) would never end the upload.
    if (body.destroyed) throw new Error('upload body was closed before the upload started');
    const uploadKey = `uploads/${randomUUID()}.tar.gz`;
    const digest = digestStream();
    const counter = digest.transform;
    // The body's own failure (the source broke, validation cut it off) wins over what the upload
    // reports about it afterwards; pipeline() destroys the body if the upload stops reading.
    let bodyError: Error | undefined;
    let bodyEnded = false;
    body.once('error', (err: Error) => {
      bodyError ??= err;
    });
    body.once('end', () => {
      bodyEnded = true;
    });
    pipeline(body, counter, () => undefined);
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: uploadKey, Body: counter, ContentType: 'application/gzip' },
      partSize: this.partSize,
      queueSize: this.queueSize,
      leavePartsOnError: false,
    });
    const bodyFailure = (): Error | undefined =>
      bodyError ?? (bodyEnded ? undefined : body.destroyed ? new Error('upload body was closed before its end') : undefined);
    try {
      await upload.done();
    } catch (err) {
      const cause = bodyFailure();
      counter.destroy();
      if (cause) throw cause;
      throw this.failure(err, `upload of ${uploadKey}`);
    }
    const cause = bodyFailure();
    if (cause) {
      await this.deleteQuietly(uploadKey);
      throw cause;
    }
    const { sha256, bytes } = digest.result();
    return {
      sha256,
      bytes,
      commit: async () => {
        const key = artifactKey(sha256);
        try {
          if (!(await this.exists(key))) {
            await this.client.send(new CopyObjectCommand({
              Bucket: this.bucket,
              Key: key,
              CopySource: `${this.bucket}/${uploadKey}`,
              ContentType: 'application/gzip',
              MetadataDirective: 'REPLACE',
            }));
          }
          // Deleting a missing key succeeds in S3, so a retried commit is fine.
          await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: uploadKey }));
        } catch (err) {
          throw this.failure(err, `commit of ${key}`);
        }
        return key;
      },
      discard: async () => {
        try {
          await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: uploadKey }));
        } catch (err) {
          throw this.failure(err, `discard of ${uploadKey}`);
        }
      },
    };
  }

  private async deleteQuietly(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })).catch(() => undefined);
  }

  async open(key: string): Promise<Readable> {
    this.checkKey(key);
    let body: unknown;
    try {
      body = (await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }))).Body;
    } catch (err) {
      if (isNotFound(err)) throw new PluginError('SourceNotFound', `artifact ${key} is not in bucket ${this.bucket}`, 'run the install again so Prepare stores it', { cause: err });
      throw this.failure(err, `read of ${key}`);
    }
    const stream = s3BodyStream(body);
    if (stream) return stream;
    throw new Error(`S3 returned no body for ${key}`);
  }

  async exists(key: string): Promise<boolean> {
    this.checkKey(key);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw this.failure(err, `lookup of ${key}`);
    }
  }

  async presignGet(key: string, expiresInSeconds: number): Promise<string> {
    this.checkKey(key);
    if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_PRESIGN_SECONDS) {
      throw new PluginError('InvalidInput', `presigned URL lifetime ${expiresInSeconds}s is out of range`, `use 1 to ${MAX_PRESIGN_SECONDS} seconds`);
    }
    return this.presigner(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: expiresInSeconds });
  }
}
