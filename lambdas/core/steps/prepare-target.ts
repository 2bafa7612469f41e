/**
 * Prepare for rollback and uninstall: nothing to download, but the same "refuse before touching
 * a host" checks (names, workspace state, external runtime, a transport this deployment reaches).
 */
import { reachableWorkspace } from './host-for.ts';
import type { StepDeps } from './step-deps.ts';
import type { PluginTarget } from './step-payloads.ts';

export async function prepareTarget(deps: StepDeps, target: PluginTarget): Promise<PluginTarget> {
  await reachableWorkspace(deps, target.workspace);
  return { workspace: target.workspace, plugin: target.plugin, stamp: target.stamp, execution: target.execution };
}
