/**
 * The artifact bucket: validated tarballs, content-addressed (lambdas/core/artifacts/s3-artifact-store.ts).
 *
 *   uploads/<uuid>.tar.gz          Prepare streams a source here while validating it; expired after 1 day
 *   artifacts/sha256/<hex>.tar.gz  committed tarballs, read by StageOnHost (and presigned for SSM hosts)
 *   catalog/<name>/<version>.tar.gz  the plugin catalog local://name[@version] names (pluginctl publish
 *                                  --bucket puts versions there); read by Prepare, PlanRollout and the api
 *
 * Private (all public access blocked, bucket-owner-enforced ownership), encrypted with S3-managed
 * keys, TLS only. Server access logs go to a separate log bucket (same settings, logs kept 90 days).
 */
import { Duration } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** Key prefixes the Lambdas write and read; IAM grants are scoped to these. */
export const UPLOADS_PREFIX = 'uploads/';
export const ARTIFACTS_PREFIX = 'artifacts/';
export const CATALOG_PREFIX = 'catalog/';

export interface ArtifactBucketProps {
  /** Days the access logs are kept. Default 90. */
  readonly accessLogDays?: number;
}

export class ArtifactBucket extends Construct {
  readonly bucket: s3.Bucket;
  readonly accessLogs: s3.Bucket;

  constructor(scope: Construct, id: string, props: ArtifactBucketProps = {}) {
    super(scope, id);

    // Access-log targets must use SSE-S3 (SSE-KMS is not supported for server access logging).
    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: false,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(props.accessLogDays ?? 90) }],
    });
    // No access logs of its own: cdk-nag (AwsSolutions-S1) recognizes a bucket that is the
    // access-log target of another bucket in the stack.

    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: false,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'artifact-bucket/',
      lifecycleRules: [
        // Orphans of a Lambda that died between upload and commit (or discard).
        { id: 'expire-uploads', prefix: UPLOADS_PREFIX, expiration: Duration.days(1) },
        // Multipart uploads cut off mid-stream never complete; their parts cost storage until aborted.
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
  }
}
