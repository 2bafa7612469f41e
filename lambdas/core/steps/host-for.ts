/** Finds the host of a workspace for a host step, keeping "not there" and "not now" apart. */
import { PluginError } from '../errors.ts';
import { HostSteps } from '../host/host-steps.ts';
import { pluginsRoot } from '../runtimes.ts';
import type { WorkspaceRecord } from '../workspaces/workspace-directory.ts';
import type { StepDeps } from './step-deps.ts';

export async function runningWorkspace(deps: StepDeps, id: string): Promise<WorkspaceRecord> {
  const found = await deps.workspaces.lookup(id);
  if (found.status === 'not-found') {
    throw new PluginError('WorkspaceNotFound', `workspace ${id} does not exist`, 'check the workspace id');
  }
  if (found.status === 'not-running') {
    throw new PluginError('WorkspaceNotRunning', `workspace ${id} is not running: ${found.reason}`, 'start the workspace, then retry');
  }
  return found.workspace;
}

/**
 * What the Prepare steps check before any host step: the workspace runs, is not external (that
 * answers first, with its download hint), and its transport is one this deployment can reach.
 */
export async function reachableWorkspace(deps: StepDeps, id: string): Promise<WorkspaceRecord> {
  const workspace = await runningWorkspace(deps, id);
  pluginsRoot(workspace.runtime);
  deps.hosts(workspace);
  return workspace;
}

export async function hostStepsFor(deps: StepDeps, workspaceId: string): Promise<HostSteps> {
  const workspace = await runningWorkspace(deps, workspaceId);
  return new HostSteps(deps.hosts(workspace), deps.hostTimeoutMs);
}
