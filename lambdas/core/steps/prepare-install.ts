/**
 * Prepare: everything that can be checked without touching a host. Resolves the source,
 * validates the tarball and manifest while streaming it into the artifact store, and commits it
 * under its digest only if it passed. Bad input fails here, before any host is touched.
 */
import { PassThrough } from 'node:stream';
import { PluginError } from '../errors.ts';
import { assertRuntimeSupported, parseManifest } from '../manifest.ts';
import { assertSourcePinned, resolveSource } from '../sources/resolve-source.ts';
import { inspectTarball, type TarballReport } from '../tarball/inspect-tarball.ts';
import { reachableWorkspace } from './host-for.ts';
import type { StepDeps } from './step-deps.ts';
import type { InstallPlan, InstallRequest } from './step-payloads.ts';

export async function prepareInstall(deps: StepDeps, request: InstallRequest): Promise<InstallPlan> {
  // External workspaces answer before anything is read (seed: 422 + hint first), then a
  // transport this deployment cannot reach.
  const workspace = await reachableWorkspace(deps, request.workspace);
  if (request.runtime && request.runtime !== workspace.runtime) {
    throw new PluginError('InvalidInput', `workspace ${workspace.id} runs ${workspace.runtime}, not ${request.runtime}`, 'drop the runtime override or pick the right workspace');
  }

  // Remote sources (https://, github://, http:// mirrors) must be pinned before a byte is fetched.
  assertSourcePinned(request.source, request.sha256);
  const { stream, description } = await resolveSource(request.source, deps.sources);
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

  if (request.sha256 && request.sha256 !== upload.sha256) {
    await upload.discard();
    throw new PluginError('ChecksumMismatch', `source ${description} has sha256 ${upload.sha256}, not the pinned ${request.sha256}`, 'check the source, or update the pinned sha256');
  }
  let manifest;
  try {
    manifest = parseManifest(report.manifestText);
    assertRuntimeSupported(manifest, workspace.runtime);
  } catch (err) {
    await upload.discard();
    throw err;
  }
  const artifactKey = await upload.commit();
  return {
    workspace: workspace.id,
    plugin: manifest.name,
    stamp: request.stamp,
    execution: request.execution,
    version: manifest.version,
    sha256: upload.sha256,
    artifactKey,
    strip: report.stripComponents,
    runtime: workspace.runtime,
    bytes: upload.bytes,
    files: report.files,
    healthcheck: manifest.healthcheck ?? null,
  };
}
