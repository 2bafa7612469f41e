/** Picks the RemoteHost adapter and plugins root for a workspace. */
import { join } from 'node:path';
import { PluginError } from '../errors.ts';
import { pluginsRoot } from '../runtimes.ts';
import type { Transport, WorkspaceRecord } from '../workspaces/workspace-directory.ts';
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
      throw new PluginError('HostStepFailed', `workspace ${workspace.id} uses transport ${workspace.transport}, not a local directory`, 'configure the EIC or SSM adapter for it');
    }
    return { host, root: join(workspace.localRoot, pluginsRoot(workspace.runtime)), ownerSpec };
  };
}

/**
 * Picks the adapter by the workspace's transport (EC2 tag `PluginTransport`, or the configured
 * default), so one deployment serves EIC and SSM workspaces side by side.
 */
export function transportResolver(resolvers: Partial<Record<Transport, HostResolver>>): HostResolver {
  return (workspace) => {
    const resolve = resolvers[workspace.transport];
    if (!resolve) {
      const configured = Object.keys(resolvers).join(', ') || 'none';
      throw new PluginError('TransportUnavailable', `workspace ${workspace.id} wants transport ${workspace.transport}, which is not configured (configured: ${configured})`, 'set its PluginTransport tag to a configured transport, or configure this one');
    }
    return resolve(workspace);
  };
}

/**
 * A transport this deployment cannot use: EIC from Lambdas that run outside the workspaces' VPC
 * and have no EIC Endpoint cannot reach a private IP, so every step (and the rollback) would end
 * HostUnreachable after its retries. Refusing at the first lookup, before any host step, says why.
 */
export function unavailableTransport(transport: Transport, why: string, hint: string): HostResolver {
  return (workspace) => {
    throw new PluginError('TransportUnavailable', `workspace ${workspace.id} uses transport ${transport}, which this deployment cannot reach: ${why}`, hint);
  };
}
