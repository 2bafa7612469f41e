/**
 * What is installed on a workspace, read from the host: each live plugin with its marker
 * (version, sha256, install time) or flagged incomplete when the marker is missing. An
 * unreachable host gives an empty list flagged `degraded`, never an error.
 */
import { PluginError } from '../errors.ts';
import type { ListedLock, ListedSnapshot } from '../host/host-steps.ts';
import { hostStepsFor } from './host-for.ts';
import type { StepDeps } from './step-deps.ts';

export interface InstalledPlugin {
  name: string;
  version: string | null;
  sha256: string | null;
  installedAt: string | null;
  complete: boolean;
  stamp: string | null;
}

export interface PluginListing {
  workspace: string;
  plugins: InstalledPlugin[];
  snapshots: ListedSnapshot[];
  /** Unexpired leases: operations in progress. */
  locks: ListedLock[];
  degraded: boolean;
  reason?: string;
}

export async function listPlugins(deps: StepDeps, workspace: string): Promise<PluginListing> {
  try {
    const host = await hostStepsFor(deps, workspace);
    const { plugins, previous, locks } = await host.list();
    return {
      workspace,
      plugins: plugins.map((p) => ({
        name: p.name,
        version: p.marker?.version ?? null,
        sha256: p.marker?.sha256 ?? null,
        installedAt: p.marker?.installedAt ?? null,
        complete: p.complete,
        stamp: p.stamp || null,
      })),
      snapshots: previous,
      locks,
      degraded: false,
    };
  } catch (err) {
    if (err instanceof PluginError && (err.retryable || err.code === 'WorkspaceNotRunning')) {
      return { workspace, plugins: [], snapshots: [], locks: [], degraded: true, reason: err.message };
    }
    throw err;
  }
}
