/** Picks the RemoteHost adapter and plugins root for a workspace. */
import { join } from 'node:path';
import { PluginError } from '../errors.ts';
import { pluginsRoot } from '../runtimes.ts';
import type { WorkspaceRecord } from '../workspaces/workspace-directory.ts';
import { LocalHost, type LocalHostOptions } from './local-host.ts';
import type { HostTarget } from './remote-host.ts';

export type HostResolver = (workspace: WorkspaceRecord) => HostTarget;

/** The agent user on workspace hosts; files it loads must be its own. */
export const AGENT_OWNER = '1000:1000';

export function localHostResolver(options: LocalHostOptions = {}): HostResolver {
  const host = new LocalHost(options);
  // Only root can hand files to uid 1000; a developer running pluginctl as themselves keeps theirs.
  const ownerSpec = process.getuid?.() === 0 ? AGENT_OWNER : '-';
  return (workspace) => {
    if (workspace.transport !== 'local' || !workspace.localRoot) {
      throw new PluginError('HostUnreachable', `workspace ${workspace.id} uses transport ${workspace.transport}, which this process is not configured for`, 'configure the EIC or SSM adapter');
    }
    return { host, root: join(workspace.localRoot, pluginsRoot(workspace.runtime)), ownerSpec };
  };
}
