/**
 * The workspace an install goes to: registered on first use with `--runtime` (as `workspace add`
 * would), but only once the install is not refused for the workspace itself. An external
 * workspace is refused before anything is written (no registration, no directory, no event):
 * plugins are not pushed to it.
 */
import { readdir } from 'node:fs/promises';
import type { LocalDeps } from '../../lambdas/commons/local-deps.ts';
import { PluginError } from '../../lambdas/core/errors.ts';
import { DEFAULT_RUNTIME, EXTERNAL_HINT, type Runtime } from '../../lambdas/core/runtimes.ts';
import type { WorkspaceRecord } from '../../lambdas/core/workspaces/workspace-directory.ts';

export async function workspaceForInstall(deps: LocalDeps, id: string, runtime: Runtime | undefined): Promise<{ ws: WorkspaceRecord; created: boolean }> {
  const found = await deps.workspaces.lookup(id);
  const existing = found.status === 'not-found' ? undefined : found.workspace;
  const effective = existing?.runtime ?? runtime ?? DEFAULT_RUNTIME;
  if (effective === 'external') {
    throw new PluginError('ExternalRuntime', `workspace ${id} runs the external runtime: plugins are not pushed to it`, EXTERNAL_HINT);
  }
  // ensure refuses an existing workspace asked for with another runtime.
  return { ws: await deps.workspaces.ensure(id, runtime), created: found.status === 'not-found' };
}

/**
 * After an install into a workspace it registered was refused: unregister the workspace again,
 * unless a plugin is live in its plugins root meanwhile (another install beside this one). Reads
 * the local directory: a refusal runs no shell.
 */
export async function forgetRefusedWorkspace(deps: LocalDeps, ws: WorkspaceRecord): Promise<void> {
  const names = await readdir(deps.hosts(ws).root).catch(() => [] as string[]);
  if (names.some((n) => !n.startsWith('.'))) return;
  await deps.workspaces.remove(ws.id);
}
