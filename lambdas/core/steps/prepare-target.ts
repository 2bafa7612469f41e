/**
 * Prepare for rollback and uninstall: nothing to download, but the same "refuse before touching
 * a host" checks (names, workspace state, external runtime).
 */
import { pluginsRoot } from '../runtimes.ts';
import { runningWorkspace } from './host-for.ts';
import type { StepDeps } from './step-deps.ts';
import type { PluginTarget } from './step-payloads.ts';

export async function prepareTarget(deps: StepDeps, target: PluginTarget): Promise<PluginTarget> {
  const workspace = await runningWorkspace(deps, target.workspace);
  pluginsRoot(workspace.runtime);
  return { workspace: target.workspace, plugin: target.plugin, stamp: target.stamp, execution: target.execution };
}
