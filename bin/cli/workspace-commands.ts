/**
 * `pluginctl workspace add|list|remove`: registering workspaces in the embedded default's
 * directory (`$PLUGINCTL_HOME/workspaces.json`, each workspace's host at `workspaces/<id>/root/`).
 *
 * --json shapes (one object on stdout):
 *   add     {workspace, runtime, created}           created: false when it was already registered
 *   list    {workspaces: [{id, runtime, state, createdAt}]}
 *   remove  {workspace, removed: true, plugins: [names that were installed]}
 *   refused {status: "refused", workspace, error: {code, message, hint}}  (exit 2)
 */
import { Option, type Command } from 'commander';
import { PluginError } from '../../lambdas/core/errors.ts';
import { assertWorkspaceId } from '../../lambdas/core/names.ts';
import { assertRuntime, DEFAULT_RUNTIME, RUNTIMES } from '../../lambdas/core/runtimes.ts';
import type { LocalDeps } from '../../lambdas/commons/local-deps.ts';

// Loaded when a workspace command runs, not when pluginctl starts (--help stays light).
const localDepsFromEnv = async (): Promise<LocalDeps> => (await import('../../lambdas/commons/local-deps.ts')).localDepsFromEnv();
import { statusOfError } from './exit-codes.ts';

export interface WorkspaceIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** Runs one subcommand; a PluginError becomes the refusal (stderr, or the --json object) and its exit code. */
async function guarded(io: WorkspaceIo, json: boolean, workspace: string | null, setExit: (code: number) => void, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (!(err instanceof PluginError)) throw err;
    const mapped = statusOfError(err.code, false);
    if (json) io.out(JSON.stringify({ status: mapped.status, workspace, error: err.toJSON() }) + '\n');
    else io.err(`pluginctl: ${err.message}\n${err.hint ? `  hint: ${err.hint}\n` : ''}`);
    setExit(mapped.exit);
  }
}

/** Names of the plugins live on the workspace (none for an external workspace: nothing is pushed to it). */
async function installedPlugins(deps: LocalDeps, id: string): Promise<string[]> {
  const found = await deps.workspaces.lookup(id);
  if (found.status === 'not-found' || found.workspace?.runtime === 'external') return [];
  const { listPlugins } = await import('../../lambdas/core/steps/list-plugins.ts');
  return (await listPlugins(deps, id)).plugins.map((p) => p.name);
}

export function addWorkspaceCommands(program: Command, io: WorkspaceIo, setExit: (code: number) => void): void {
  const workspace = program.command('workspace').description('register, list and remove workspaces (the embedded default: $PLUGINCTL_HOME/workspaces.json)');

  workspace
    .command('add')
    .description('register a workspace; its host directory is $PLUGINCTL_HOME/workspaces/<id>/root/')
    .argument('<id>', 'workspace id: letters, digits, _ and -, at most 64, starting with a letter or digit')
    .addOption(new Option('--runtime <rt>', `workspace runtime (${RUNTIMES.join(', ')})`).default(DEFAULT_RUNTIME))
    .option('--json', 'print one JSON object')
    .action(async (rawId: string, opts: { runtime: string; json?: boolean }) =>
      guarded(io, Boolean(opts.json), rawId, setExit, async () => {
        const id = assertWorkspaceId(rawId);
        const runtime = assertRuntime(opts.runtime);
        const deps = await localDepsFromEnv();
        const created = (await deps.workspaces.lookup(id)).status === 'not-found';
        // An existing workspace with another runtime is refused by ensure (exit 2).
        await deps.workspaces.ensure(id, runtime);
        if (opts.json) io.out(JSON.stringify({ workspace: id, runtime, created }) + '\n');
        else io.out(created ? `added workspace ${id} (${runtime}): ${deps.workspaces.rootOf(id)}\n` : `workspace ${id} (${runtime}) is already registered\n`);
      }),
    );

  workspace
    .command('list')
    .description('list the registered workspaces with their runtime')
    .option('--json', 'print one JSON object')
    .action(async (opts: { json?: boolean }) =>
      guarded(io, Boolean(opts.json), null, setExit, async () => {
        const entries = await (await localDepsFromEnv()).workspaces.entries();
        if (opts.json) {
          io.out(JSON.stringify({ workspaces: entries }) + '\n');
          return;
        }
        if (entries.length === 0) {
          io.out('no workspaces registered (pluginctl workspace add <id> --runtime <rt>)\n');
          return;
        }
        const rows = [['ID', 'RUNTIME', 'STATE', 'CREATED'], ...entries.map((e) => [e.id, e.runtime, e.state, e.createdAt ?? '-'])];
        const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
        for (const r of rows) io.out(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
      }),
    );

  workspace
    .command('remove')
    .description('unregister a workspace and delete its local host directory ($PLUGINCTL_HOME/workspaces/<id>/, snapshots included); refused while plugins are installed unless --force')
    .argument('<id>', 'workspace id')
    .option('--force', 'remove it even with plugins installed (they are deleted with the directory)')
    .option('--json', 'print one JSON object')
    .action(async (rawId: string, opts: { force?: boolean; json?: boolean }) =>
      guarded(io, Boolean(opts.json), rawId, setExit, async () => {
        const id = assertWorkspaceId(rawId);
        const deps = await localDepsFromEnv();
        if ((await deps.workspaces.lookup(id)).status === 'not-found') {
          throw new PluginError('WorkspaceNotFound', `workspace ${id} is not registered`, 'pluginctl workspace list shows the registered workspaces');
        }
        const plugins = await installedPlugins(deps, id);
        if (plugins.length > 0 && !opts.force) {
          throw new PluginError('InvalidInput', `workspace ${id} has plugins installed: ${plugins.join(', ')}`, `uninstall them first, or remove it with --force (deletes them with the workspace's directory)`);
        }
        await deps.workspaces.remove(id);
        if (opts.json) io.out(JSON.stringify({ workspace: id, removed: true, plugins }) + '\n');
        else io.out(`removed workspace ${id}${plugins.length ? ` and its plugins (${plugins.join(', ')})` : ''}\n`);
      }),
    );
}
