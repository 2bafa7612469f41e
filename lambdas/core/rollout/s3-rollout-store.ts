/**
 * RolloutStore on S3: the rollout documents live in the artifact bucket beside the tarballs
 * (`rollouts/<id>/…`, `rollout-locks/<plugin>.json`; rollout-record.ts has the layout).
 *
 * The conditional writes are S3's own (strongly consistent, atomic per key), so two rollouts
 * racing for a plugin's lock from two Lambdas get one winner:
 *   create   PutObject  If-None-Match: *       (only if no object exists)
 *   replace  PutObject  If-Match: <ETag>       (only if the object is still that version)
 *   remove   DeleteObject If-Match: <ETag>
 * A lost precondition is an answer, not an error: 412 PreconditionFailed, 409
 * ConditionalRequestConflict (a concurrent conditional write to the same key won) and, for
 * If-Match, 404 (the object vanished) all become `false`. Throttling, 5xx and network failures
 * become PluginError('HostUnreachable'), which the rollout's Tasks retry; anything else (access
 * denied, no such bucket, a document that is not JSON) is a HostStepFailed naming the fix.
 *
 * A version is the object's ETag as S3 returns it (quotes included), which is what If-Match takes.
 */
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { awsErrorName, awsStatus, describeAwsError, isTransientAwsError } from '../aws-errors.ts';
import { PluginError } from '../errors.ts';
import { ROLLOUT_KEY, type RolloutStore, type Versioned } from './rollout-store.ts';

export interface S3RolloutStoreOptions {
  client: S3Client;
  bucket: string;
}

/** The answers S3 gives when a conditional write's precondition does not hold. */
function isPreconditionLost(err: unknown): boolean {
  const name = awsErrorName(err);
  const status = awsStatus(err);
  return name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || status === 412 || status === 409;
}

function isNotFound(err: unknown): boolean {
  const name = awsErrorName(err);
  return name === 'NoSuchKey' || name === 'NotFound' || awsStatus(err) === 404;
}

export class S3RolloutStore implements RolloutStore {
  readonly client: S3Client;
  readonly bucket: string;

  constructor(options: S3RolloutStoreOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
  }

  private checkKey(key: string): string {
    if (!ROLLOUT_KEY.test(key)) throw new PluginError('InvalidInput', `invalid rollout document key ${JSON.stringify(key.slice(0, 200))}`, 'rollout documents live under rollouts/<id>/ and rollout-locks/');
    return key;
  }

  /** Any S3 failure that is not an answer the port defines, as a typed error. */
  private failure(err: unknown, what: string, key: string): PluginError {
    if (err instanceof PluginError) return err;
    const detail = `S3 ${what} of ${key} failed (bucket ${this.bucket}): ${describeAwsError(err)}`;
    if (isTransientAwsError(err)) return new PluginError('HostUnreachable', detail, 'S3 was throttling or unreachable; the step is retried', { cause: err });
    const name = awsErrorName(err);
    if (name === 'AccessDenied' || awsStatus(err) === 403) {
      return new PluginError('HostStepFailed', detail, 'the function\'s role needs s3:GetObject/PutObject/DeleteObject on rollouts/* and rollout-locks/* of the artifact bucket (deploy with infra/)', { cause: err });
    }
    if (name === 'NoSuchBucket') return new PluginError('HostStepFailed', detail, 'ARTIFACT_BUCKET names a bucket that does not exist: deploy with infra/ (it sets the function environment)', { cause: err });
    return new PluginError('HostStepFailed', detail, 'see the step\'s logs; re-running the rollout with the same id resumes it', { cause: err });
  }

  async get<T>(key: string): Promise<Versioned<T> | undefined> {
    this.checkKey(key);
    let text: string;
    let version: string | undefined;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new Error('S3 returned no body');
      text = await out.Body.transformToString('utf8');
      version = out.ETag;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.failure(err, 'read', key);
    }
    // Without the ETag no conditional write could follow this read.
    if (!version) throw new PluginError('HostStepFailed', `S3 returned ${key} without an ETag (bucket ${this.bucket})`, 'the bucket must be an S3 general purpose bucket (conditional writes need ETags)');
    let value: T;
    try {
      value = JSON.parse(text) as T;
    } catch (err) {
      throw new PluginError('HostStepFailed', `rollout document ${key} in bucket ${this.bucket} is not JSON`, 'it was written by something other than the rollout steps; delete it, or restore it from the bucket\'s history', { cause: err });
    }
    return { value, version };
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.write(key, value, {});
  }

  async create(key: string, value: unknown): Promise<boolean> {
    return this.write(key, value, { IfNoneMatch: '*' });
  }

  async replace(key: string, value: unknown, version: string): Promise<boolean> {
    return this.write(key, value, { IfMatch: version });
  }

  async remove(key: string, version: string): Promise<boolean> {
    this.checkKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key, IfMatch: version }));
      return true;
    } catch (err) {
      if (isPreconditionLost(err) || isNotFound(err)) return false;
      throw this.failure(err, 'delete', key);
    }
  }

  private async write(key: string, value: unknown, condition: { IfNoneMatch?: string; IfMatch?: string }): Promise<boolean> {
    this.checkKey(key);
    // A string body has a known length: the SDK sends it in one request, never `aws-chunked`.
    const body = JSON.stringify(value);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/json', ...condition }));
      return true;
    } catch (err) {
      const conditional = condition.IfMatch !== undefined || condition.IfNoneMatch !== undefined;
      // If-Match on a key that no longer exists: S3 answers 404, the port says "vanished: false".
      if (conditional && (isPreconditionLost(err) || (condition.IfMatch !== undefined && isNotFound(err)))) return false;
      throw this.failure(err, 'write', key);
    }
  }
}
