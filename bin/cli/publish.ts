/**
 * `pluginctl publish <source> [--bucket B] [--json]`: puts a plugin version into the catalog that
 * `local://name[@version]` names and external workspaces download from:
 *   --bucket B   s3://B/catalog/<name>/<version>.tar.gz (the AWS deployment's artifact bucket;
 *                the SDK's credential chain, region and endpoint settings, e.g. AWS_REGION,
 *                AWS_ENDPOINT_URL_S3)
 *   otherwise    the embedded catalog directory ($PLUGINCTL_CATALOG, default docs/catalog)
 * The source (a plugin directory, a .tar.gz, or local://name[@version]) is validated as an install
 * validates it (tarball rules, plugin.yaml) before anything is written; name and version come
 * from its plugin.yaml. A version is never replaced: the same bytes again succeed (`unchanged`),
 * other bytes are refused (InvalidInput naming both digests, exit 2).
 *
 * --json prints one object: {status: "published"|"unchanged"|"refused"|"failed", plugin,
 * version, sha256, catalog, key, error?: {code, message, hint}}.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localDepsFromEnv } from '../../lambdas/commons/local-deps.ts';
import { DirectoryArtifactStore } from '../../lambdas/core/artifacts/directory-artifact-store.ts';
import { catalogKey, type PluginCatalog } from '../../lambdas/core/catalog/plugin-catalog.ts';
import { PluginError } from '../../lambdas/core/errors.ts';
import { storeValidatedSource } from '../../lambdas/core/steps/store-validated-source.ts';
import { EXIT, statusOfError } from './exit-codes.ts';

export interface PublishOptions {
  source: string;
  bucket?: string;
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
}

export interface PublishReport {
  status: 'published' | 'unchanged' | 'refused' | 'failed';
  plugin: string | null;
  version: string | null;
  sha256: string | null;
  catalog: string | null;
  key: string | null;
  error?: { code: string; message: string; hint: string };
}

const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

async function bucketCatalog(bucket: string): Promise<PluginCatalog> {
  if (!S3_BUCKET.test(bucket)) throw new PluginError('InvalidInput', `invalid bucket name ${JSON.stringify(bucket.slice(0, 80))}`, 'give the artifact bucket\'s name (the stack output ArtifactBucketName), without s3://');
  // Loaded only for --bucket: publishing to the local catalog never pays for the SDK.
  const [{ S3Client }, { S3PluginCatalog }] = await Promise.all([import('@aws-sdk/client-s3'), import('../../lambdas/core/catalog/s3-plugin-catalog.ts')]);
  return new S3PluginCatalog({ client: new S3Client({}), bucket });
}

/** A failure of S3 or the credential chain that is not already a PluginError: failed, nothing published (exit 3). */
function publishFailure(err: unknown, where: string): PluginError {
  if (err instanceof PluginError) return err;
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new PluginError('HostUnreachable', `publishing to ${where} failed: ${message}`, 'check the bucket, the AWS credentials and the region (AWS_REGION), then publish again', { cause: err });
}

export async function runPublish(options: PublishOptions): Promise<number> {
  const report: PublishReport = { status: 'refused', plugin: null, version: null, sha256: null, catalog: null, key: null };
  const scratch = await mkdtemp(join(tmpdir(), 'pluginctl-publish-'));
  try {
    const local = localDepsFromEnv();
    const catalog = options.bucket === undefined ? local.catalog : await bucketCatalog(options.bucket);
    report.catalog = catalog.location;
    // Validated exactly as an install's Prepare validates, into a scratch store that is thrown away.
    const store = new DirectoryArtifactStore(scratch);
    const stored = await storeValidatedSource({ sources: { ...local.sources, localPaths: 'any' }, artifacts: store }, options.source, null);
    const { name, version } = stored.manifest;
    Object.assign(report, { plugin: name, version, sha256: stored.upload.sha256, key: catalogKey(name, version) });
    let outcome;
    try {
      outcome = await catalog.publish(name, version, { path: store.pathOf(stored.artifactKey), ...stored.upload });
    } catch (err) {
      throw publishFailure(err, catalog.location);
    }
    report.status = outcome === 'created' ? 'published' : 'unchanged';
    if (options.json) options.out(JSON.stringify(report) + '\n');
    else if (outcome === 'created') options.out(`published ${name} ${version} to ${catalog.location} (sha256 ${stored.upload.sha256})\n  install it: local://${name}@${version}\n`);
    else options.out(`${name} ${version} is already in ${catalog.location} with these bytes (sha256 ${stored.upload.sha256}): nothing to do\n`);
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof PluginError)) throw err;
    const mapped = statusOfError(err.code, false);
    report.status = mapped.status === 'refused' ? 'refused' : 'failed';
    report.error = err.toJSON();
    if (options.json) options.out(JSON.stringify(report) + '\n');
    options.err(`pluginctl: ${err.message}\n${err.hint ? `  hint: ${err.hint}\n` : ''}`);
    return mapped.exit;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
