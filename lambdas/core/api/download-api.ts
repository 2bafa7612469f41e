/**
 * GET /workspaces/{id}/plugins/{name}/download[?version=]: a 302 to a short-lived URL of a
 * validated, content-addressed tarball (`cache-control: no-store`).
 *
 * - An external workspace has nothing installed by us: it pulls from the plugin catalog (the
 *   same one `local://` names). The version asked for (`?version=`, default the highest) is read
 *   from the catalog, validated like any source (tarball rules, manifest, its name and version
 *   equal to the catalog's, the external runtime allowed) and stored under its sha256, and the
 *   URL names those bytes. Not in the catalog → 404 listing the versions there; a catalog entry
 *   that does not validate → 422.
 * - Any other workspace downloads its installed (and marked) version. `?version=` is a check
 *   there: another version than the installed one → 404 NotInstalled naming the installed one.
 *   Mid-change (lock held, no marked version) → 409 LockBusy.
 */
import { artifactKey } from '../artifacts/artifact-store.ts';
import { chooseVersion } from '../catalog/plugin-catalog.ts';
import { PluginError } from '../errors.ts';
import { assertRuntimeSupported } from '../manifest.ts';
import { VERSION } from '../names.ts';
import { listPlugins } from '../steps/list-plugins.ts';
import { storeValidatedSource } from '../steps/store-validated-source.ts';
import type { WorkspaceRecord } from '../workspaces/workspace-directory.ts';
import { errorResponse, type ApiDeps, type ApiResponse } from './api-http.ts';

/** What a catalog entry can fail on: the catalog's content, not the request, so 422. */
const INVALID_CONTENT = new Set(['HostileTarball', 'InvalidManifest', 'RuntimeMismatch', 'ChecksumMismatch']);

function versionParam(query: Record<string, string | undefined> | undefined): string | undefined {
  const version = query?.version;
  if (version === undefined) return undefined;
  if (!VERSION.test(version)) throw new PluginError('InvalidInput', `invalid version ${JSON.stringify(version.slice(0, 70))}`, 'versions match ^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$, e.g. ?version=1.1.0');
  return version;
}

async function redirectTo(deps: ApiDeps, key: string): Promise<ApiResponse> {
  const url = await deps.steps.artifacts.presignGet!(key, deps.downloadUrlSeconds ?? 300);
  return { status: 302, headers: { location: url, 'cache-control': 'no-store' }, body: null };
}

async function fromCatalog(deps: ApiDeps, plugin: string, asked: string | undefined): Promise<ApiResponse> {
  const catalog = deps.steps.sources.catalog;
  if (!catalog || !deps.steps.artifacts.presignGet) {
    throw new PluginError('InvalidInput', 'this deployment has no plugin catalog to serve external workspaces from', 'configure the catalog (PLUGINCTL_CATALOG, or catalog/ in the artifact bucket)');
  }
  let version: string;
  try {
    version = await chooseVersion(catalog, plugin, asked);
  } catch (err) {
    if (err instanceof PluginError && err.code === 'SourceNotFound') return errorResponse(err, 404);
    throw err;
  }
  let stored;
  try {
    stored = await storeValidatedSource(deps.steps, `local://${plugin}@${version}`, null, (manifest) => {
      if (manifest.name !== plugin || manifest.version !== version) {
        throw new PluginError('InvalidManifest', `the catalog's ${plugin} ${version} holds a plugin.yaml of ${manifest.name} ${manifest.version}`, `republish it as catalog/${manifest.name}/${manifest.version}.tar.gz`);
      }
      assertRuntimeSupported(manifest, 'external');
    });
  } catch (err) {
    if (err instanceof PluginError && INVALID_CONTENT.has(err.code)) {
      return errorResponse(new PluginError(err.code, `the catalog's ${plugin} ${version} cannot be served: ${err.message}`, err.hint || 'publish a valid version of the plugin'), 422);
    }
    throw err;
  }
  return redirectTo(deps, stored.artifactKey);
}

async function installed(deps: ApiDeps, workspace: WorkspaceRecord, plugin: string, asked: string | undefined): Promise<ApiResponse> {
  const listing = await listPlugins(deps.steps, workspace.id);
  if (listing.degraded) throw new PluginError('HostUnreachable', `cannot reach the host of ${workspace.id}: ${listing.reason ?? ''}`, 'retry shortly');
  const live = listing.plugins.find((p) => p.name === plugin);
  // Between an install's swap and its marker, live is the new version, not yet vouched for: that
  // is a plugin being changed (its lock held), not one that is absent.
  const lock = listing.locks.find((l) => l.name === plugin);
  if (!live?.sha256 && lock) throw new PluginError('LockBusy', `plugin ${plugin} on ${workspace.id} is being changed (operation ${lock.stamp}): no marked version to download yet`, 'retry when the running operation finishes');
  if (!live?.sha256) throw new PluginError('NotInstalled', `plugin ${plugin} is not installed (and marked) on ${workspace.id}`, 'install it first');
  if (asked !== undefined && asked !== live.version) {
    throw new PluginError('NotInstalled', `version ${asked} of ${plugin} is not installed on ${workspace.id} (${live.version ?? 'an unversioned copy'} is)`, 'drop ?version= to download the installed version, or install the one you want');
  }
  const key = artifactKey(live.sha256);
  if (!deps.steps.artifacts.presignGet || !(await deps.steps.artifacts.exists(key))) {
    throw new PluginError('NotInstalled', `the tarball of ${plugin} ${live.version ?? ''} is no longer in the artifact store`, 'install it again to store it');
  }
  return redirectTo(deps, key);
}

export async function download(deps: ApiDeps, workspace: WorkspaceRecord, plugin: string, query: Record<string, string | undefined> | undefined): Promise<ApiResponse> {
  const asked = versionParam(query);
  return workspace.runtime === 'external' ? fromCatalog(deps, plugin, asked) : installed(deps, workspace, plugin, asked);
}
