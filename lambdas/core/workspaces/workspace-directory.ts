/**
 * The `WorkspaceDirectory` port: which host a workspace lives on and in which state.
 *
 * Three outcomes stay apart (seed: "SSOT for is this workspace's container running"): running,
 * definitively not running, and a transient lookup error, which adapters throw as a PluginError
 * with code HostUnreachable so callers retry or answer 503.
 */
import type { Runtime } from '../runtimes.ts';

export type Transport = 'local' | 'eic' | 'ssm';

export interface WorkspaceRecord {
  id: string;
  runtime: Runtime;
  transport: Transport;
  /** Local adapter: the directory that plays the host's `/`. */
  localRoot?: string;
  instanceId?: string;
  privateIp?: string;
}

export type WorkspaceLookup =
  | { status: 'running'; workspace: WorkspaceRecord }
  | { status: 'not-running'; reason: string; workspace?: WorkspaceRecord }
  | { status: 'not-found' };

export interface WorkspaceDirectory {
  lookup(id: string): Promise<WorkspaceLookup>;
  /**
   * Every workspace id, sorted; with `selector`, those whose tags match every key/value (EC2
   * tags on AWS; the JSON file has no tags and refuses a selector). A fleet rollout's targets.
   */
  list(selector?: Record<string, string>): Promise<string[]>;
}
