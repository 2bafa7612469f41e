/**
 * A throw-away embedded installation for tests: a PLUGINCTL_HOME in a temp dir, one workspace,
 * the real ports, and helpers to run the real workflows against it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localDeps, type LocalDeps } from '../../lambdas/commons/local-deps.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import type { Runtime } from '../../lambdas/core/runtimes.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { runWorkflow, type RunOutcome } from '../../lambdas/core/workflow/local-runner.ts';
import type { WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { readTree, type Tree } from './live-tree.ts';
import { versionFiles, writePluginDir, type PluginVersionSpec } from './plugin-versions.ts';

export interface World {
  home: string;
  deps: LocalDeps;
  workspace: string;
  /** Plugins root as the host sees it. */
  root: string;
  live(name: string): string;
  liveTree(name: string): Tree | null;
  /** Writes a plugin version as a directory source and returns its path. */
  source(spec: PluginVersionSpec): Promise<string>;
  install(source: string, extra?: Record<string, unknown>): Promise<RunOutcome>;
  run(workflow: Exclude<WorkflowName, 'install'>, plugin: string): Promise<RunOutcome>;
  withHostEnv(env: Record<string, string>): World;
  cleanup(): Promise<void>;
}

export async function makeWorld(options: { runtime?: Runtime; leaseSeconds?: number; hostEnv?: Record<string, string> } = {}): Promise<World> {
  const home = await mkdtemp(join(tmpdir(), 'plugin-world-'));
  const workspace = 'ws1';
  const build = (hostEnv?: Record<string, string>): World => {
    const deps = localDeps({ home, leaseSeconds: options.leaseSeconds ?? 600, host: { env: hostEnv, timeoutMs: 30_000 } });
    const root = join(home, 'workspaces', workspace, 'root', 'configs', 'plugins');
    const world: World = {
      home,
      deps,
      workspace,
      root,
      live: (name) => join(root, name),
      liveTree: (name) => readTree(join(root, name)),
      source: (spec) => writePluginDir(join(home, 'sources'), spec),
      install: async (source, extra = {}) => {
        await deps.workspaces.ensure(workspace, options.runtime);
        const stamp = newStamp();
        return runWorkflow({
          workflow: 'install',
          input: { workspace, source, sha256: null, runtime: null, stamp, ...extra },
          executionName: executionName(workspace, 'p', stamp),
          deps,
          retryDelayMs: 5,
        });
      },
      run: async (workflow, plugin) => {
        const stamp = newStamp();
        return runWorkflow({ workflow, input: { workspace, plugin, stamp }, executionName: executionName(workspace, plugin, stamp), deps, retryDelayMs: 5 });
      },
      withHostEnv: (env) => build(env),
      cleanup: () => rm(home, { recursive: true, force: true }),
    };
    return world;
  };
  return build(options.hostEnv);
}

/** The tree a version installs (content files only, as versionFiles writes them). */
export function expectedTree(spec: PluginVersionSpec): Tree {
  return versionFiles(spec);
}
