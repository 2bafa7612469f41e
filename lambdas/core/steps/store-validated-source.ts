/**
 * The source half of Prepare, shared by the install's Prepare and the rollout's PlanRollout:
 * resolve the source, validate tarball and manifest while streaming it into the artifact store,
 * and commit it under its digest only if it passed (and `check` accepted the manifest).
 */
import { PassThrough } from 'node:stream';
import type { PendingUpload } from '../artifacts/artifact-store.ts';
import { PluginError } from '../errors.ts';
import { parseManifest, type Manifest } from '../manifest.ts';
import { assertSourcePinned, resolveSource } from '../sources/resolve-source.ts';
import { inspectTarball, type TarballReport } from '../tarball/inspect-tarball.ts';
import type { StepDeps } from './step-deps.ts';

export interface StoredSource {
  manifest: Manifest;
  report: TarballReport;
  upload: Pick<PendingUpload, 'sha256' | 'bytes'>;
  artifactKey: string;
}

export async function storeValidatedSource(
  deps: Pick<StepDeps, 'sources' | 'artifacts' | 'limits'>,
  source: string,
  sha256: string | null | undefined,
  check: (manifest: Manifest) => void = () => undefined,
): Promise<StoredSource> {
  // Remote sources (https://, github://, http:// mirrors) must be pinned before a byte is fetched.
  assertSourcePinned(source, sha256);
  const { stream, description } = await resolveSource(source, { ...deps.sources, artifacts: deps.artifacts });
  // One read of the source feeds both the validator and the store; neither holds it whole.
  const toInspector = new PassThrough();
  const toStore = new PassThrough();
  stream.pipe(toInspector);
  stream.pipe(toStore);
  // Stop both consumers without re-emitting the error on them: the upload may already have
  // finished (its 'error' listeners gone), and an unheard 'error' event would crash the process.
  // A still-running upload sees a premature close and rejects; nobody waits for it.
  const abort = () => {
    stream.unpipe();
    stream.destroy();
    toInspector.destroy();
    toStore.destroy();
  };
  const sourceFailed = new Promise<never>((_, reject) => stream.once('error', (err) => {
    abort();
    reject(err);
  }));
  sourceFailed.catch(() => undefined);
  const uploading = deps.artifacts.upload(toStore);
  uploading.catch(() => undefined);
  let report: TarballReport;
  try {
    report = await Promise.race([inspectTarball(toInspector, deps.limits), sourceFailed]);
  } catch (err) {
    abort();
    // Whenever the (now cut-off) upload settles, drop what it wrote.
    uploading.then((u) => u.discard(), () => undefined).catch(() => undefined);
    if (err instanceof PluginError) throw err;
    throw new PluginError('SourceNotFound', `cannot read source ${description}: ${err instanceof Error ? err.message : String(err)}`, 'check that the source exists and is readable');
  }
  // Validation read every byte, so the upload has them all too.
  const upload = await uploading;

  if (sha256 && sha256 !== upload.sha256) {
    await upload.discard();
    throw new PluginError('ChecksumMismatch', `source ${description} has sha256 ${upload.sha256}, not the pinned ${sha256}`, 'check the source, or update the pinned sha256');
  }
  let manifest;
  try {
    manifest = parseManifest(report.manifestText);
    check(manifest);
  } catch (err) {
    await upload.discard();
    throw err;
  }
  const artifactKey = await upload.commit();
  return { manifest, report, upload: { sha256: upload.sha256, bytes: upload.bytes }, artifactKey };
}
