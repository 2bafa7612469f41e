/**
 * The embedded composition root: every port backed by this machine, under `$PLUGINCTL_HOME`.
 *   workspaces.json        WorkspaceDirectory (JSON file)
 *   workspaces/<id>/root/  each workspace's "host" filesystem
 *   artifacts/             ArtifactStore (content-addressed tarballs) and RolloutStore (artifacts/rollouts/…)
 *   events.jsonl           EventSink (what EventBridge receives on AWS)
 * The plugin catalog (`local://`) is a directory: `$PLUGINCTL_CATALOG`, default docs/catalog.
 * Filesystem path sources are served anywhere (the CLI reads its own user's files) unless
 * `sourcesDir` confines them (`pluginctl serve --sources-dir`; `null`: none at all).
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DirectoryArtifactStore } from '../core/artifacts/directory-artifact-store.ts';
import { DirectoryPluginCatalog } from '../core/catalog/directory-plugin-catalog.ts';
import type { EventSink } from '../core/events/event-sink.ts';
import { JsonlEventSink } from '../core/events/jsonl-event-sink.ts';
import { localHostResolver } from '../core/host/host-resolver.ts';
import { DirectoryRolloutStore } from '../core/rollout/directory-rollout-store.ts';
import type { LocalHostOptions } from '../core/host/local-host.ts';
import type { StepDeps } from '../core/steps/step-deps.ts';
import { JsonWorkspaceDirectory } from '../core/workspaces/json-workspace-directory.ts';

/** The example plugins shipped with the repository (docs/catalog). */
export const BUNDLED_CATALOG = fileURLToPath(new URL('../../docs/catalog', import.meta.url));

export interface LocalDepsOptions {
  home: string;
  catalogDir?: string;
  /**
   * Where filesystem path sources may be: undefined → anywhere (the CLI); a directory → only
   * under it, relative paths resolved against it (`pluginctl serve --sources-dir`); null → nowhere.
   */
  sourcesDir?: string | null;
  cwd?: string;
  leaseSeconds?: number;
  host?: LocalHostOptions;
  clock?: () => Date;
}

export interface LocalDeps extends StepDeps {
  workspaces: JsonWorkspaceDirectory;
  rollouts: DirectoryRolloutStore;
  catalog: DirectoryPluginCatalog;
  home: string;
  /** Where the workflows' Notify states deliver locally (EventBridge does this on AWS). */
  events: EventSink;
}

export function localDeps(options: LocalDepsOptions): LocalDeps {
  const home = resolve(options.home);
  const clock = options.clock ?? (() => new Date());
  const catalog = new DirectoryPluginCatalog(options.catalogDir ?? BUNDLED_CATALOG);
  const sourcesDir = options.sourcesDir === undefined || options.sourcesDir === null ? options.sourcesDir : resolve(options.sourcesDir);
  return {
    home,
    workspaces: new JsonWorkspaceDirectory(home),
    hosts: localHostResolver(options.host),
    artifacts: new DirectoryArtifactStore(resolve(home, 'artifacts')),
    rollouts: new DirectoryRolloutStore(resolve(home, 'artifacts')),
    events: new JsonlEventSink(resolve(home, 'events.jsonl'), clock),
    catalog,
    sources: {
      catalog,
      ...(sourcesDir === undefined ? { localPaths: 'any' as const, cwd: options.cwd } : sourcesDir === null ? {} : { localPaths: { under: sourcesDir }, cwd: sourcesDir }),
    },
    leaseSeconds: options.leaseSeconds ?? 900,
    // The CLI process is the lock holder locally: if it dies, the lock is provably abandoned.
    lockOwnerPid: process.pid,
    hostTimeoutMs: options.host?.timeoutMs,
    clock,
  };
}

/** Settings from the environment: PLUGINCTL_HOME (default ./.pluginctl), PLUGINCTL_CATALOG, PLUGINCTL_LEASE_SECONDS. */
export function localDepsFromEnv(env: NodeJS.ProcessEnv = process.env): LocalDeps {
  const lease = env.PLUGINCTL_LEASE_SECONDS ? Number(env.PLUGINCTL_LEASE_SECONDS) : undefined;
  return localDeps({
    home: env.PLUGINCTL_HOME || '.pluginctl',
    catalogDir: env.PLUGINCTL_CATALOG || undefined,
    leaseSeconds: lease !== undefined && Number.isInteger(lease) && lease > 0 ? lease : undefined,
  });
}
