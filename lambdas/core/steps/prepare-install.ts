/**
 * Prepare: everything that can be checked without touching a host. Resolves the source,
 * validates the tarball and manifest while streaming it into the artifact store, and commits it
 * under its digest only if it passed. Bad input fails here, before any host is touched.
 */
import { PluginError } from '../errors.ts';
import { assertRuntimeSupported } from '../manifest.ts';
import { reachableWorkspace } from './host-for.ts';
import type { StepDeps } from './step-deps.ts';
import { storeValidatedSource } from './store-validated-source.ts';
import type { InstallPlan, InstallRequest } from './step-payloads.ts';

export async function prepareInstall(deps: StepDeps, request: InstallRequest): Promise<InstallPlan> {
  // External workspaces answer before anything is read (seed: 422 + hint first), then a
  // transport this deployment cannot reach.
  const workspace = await reachableWorkspace(deps, request.workspace);
  if (request.runtime && request.runtime !== workspace.runtime) {
    throw new PluginError('InvalidInput', `workspace ${workspace.id} runs ${workspace.runtime}, not ${request.runtime}`, 'drop the runtime override or pick the right workspace');
  }

  const { manifest, report, upload, artifactKey } = await storeValidatedSource(deps, request.source, request.sha256, (m) => assertRuntimeSupported(m, workspace.runtime));
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
