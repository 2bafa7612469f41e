/**
 * PluginCatalog in an S3 bucket (on AWS the artifact bucket): `catalog/<name>/<version>.tar.gz`.
 * versions() lists `catalog/<name>/` (ListObjectsV2, every page), open() is a GetObject, and
 * publish() a PutObject with `If-None-Match: *`, so S3 itself refuses to replace a version; a
 * refused put compares the stored object's sha256 with ours (same bytes: idempotent success).
 * Throttling, 5xx and network failures surface as HostUnreachable (Prepare retries it).
 */
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { awsErrorName, awsStatus, describeAwsError, isTransientAwsError } from '../aws-errors.ts';
import { PluginError } from '../errors.ts';
import { VERSION } from '../names.ts';
import { s3BodyStream } from '../artifacts/s3-body-stream.ts';
import { assertCatalogReference, catalogKey, compareVersions, republished, type CatalogTarball, type PluginCatalog, type PublishOutcome } from './plugin-catalog.ts';

export interface S3PluginCatalogOptions {
  client: S3Client;
  bucket: string;
}

export class S3PluginCatalog implements PluginCatalog {
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;

  constructor(options: S3PluginCatalogOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
    this.location = `s3://${options.bucket}/catalog/`;
  }

  private failure(err: unknown, what: string): unknown {
    if (err instanceof PluginError) return err;
    if (isTransientAwsError(err)) {
      return new PluginError('HostUnreachable', `S3 ${what} failed (bucket ${this.bucket}): ${describeAwsError(err)}`, 'S3 was throttling or unreachable; retry', { cause: err });
    }
    const name = awsErrorName(err);
    if (name === 'NoSuchBucket' || name === 'AccessDenied' || awsStatus(err) === 403) {
      return new PluginError('SourceNotFound', `the plugin catalog ${this.location} cannot be read: ${describeAwsError(err)}`, 'check the bucket, and that this role may list and read catalog/*', { cause: err });
    }
    return err;
  }

  async versions(name: string): Promise<string[]> {
    assertCatalogReference(name, undefined);
    const prefix = `catalog/${name}/`;
    const versions: string[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
        for (const object of page.Contents ?? []) {
          const rest = object.Key?.slice(prefix.length) ?? '';
          // Only `<version>.tar.gz` directly under the plugin's prefix counts.
          if (rest.endsWith('.tar.gz') && !rest.includes('/')) versions.push(rest.slice(0, -'.tar.gz'.length));
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.failure(err, `listing of ${prefix}`);
    }
    return versions.filter((v) => VERSION.test(v)).sort(compareVersions);
  }

  async open(name: string, version: string): Promise<Readable> {
    assertCatalogReference(name, version);
    const key = catalogKey(name, version);
    let body: unknown;
    try {
      body = (await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }))).Body;
    } catch (err) {
      if (awsErrorName(err) === 'NoSuchKey' || awsStatus(err) === 404) {
        throw new PluginError('SourceNotFound', `version ${version} of ${name} is not in the catalog (${this.location})`, 'publish it first: pluginctl publish <source> --bucket <bucket>', { cause: err });
      }
      throw this.failure(err, `read of ${key}`);
    }
    const stream = s3BodyStream(body);
    if (stream) return stream;
    throw new Error(`S3 returned no body for ${key}`);
  }

  async publish(name: string, version: string, tarball: CatalogTarball): Promise<PublishOutcome> {
    assertCatalogReference(name, version);
    const key = catalogKey(name, version);
    // A Buffer body (not a stream): sent with a plain content length, no aws-chunked framing.
    // Tarballs are bounded by the validator's byte limit.
    const body = await readFile(tarball.path);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/gzip', IfNoneMatch: '*' }));
      return 'created';
    } catch (err) {
      if (awsErrorName(err) !== 'PreconditionFailed' && awsStatus(err) !== 412) throw this.failure(err, `put of ${key}`);
    }
    return republished(this, name, version, tarball.sha256);
  }
}
