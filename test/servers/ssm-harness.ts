/**
 * The SSM transport end to end on this machine: the local SSM API stand-in (ssm-api.ts), a real
 * `SSMClient` pointed at it, and `ssmHostResolver` with `rootPrefix` set to a temp dir that plays
 * every fake instance's `/` (the stand-in runs commands on this machine, so a claude-code
 * workspace's plugins root is `<hostRoot>/configs/plugins`). The stand-in knows one document,
 * TEST_DOCUMENT_NAME: the stack's plugin-host document built with rootPrefix '.' (each command's
 * working directory, here hostRoot), the only difference from the one the stack deploys.
 *
 * A fleet whose instances must not share one filesystem (a rollout checks each host's state)
 * registers them with `ownRoot`: such an instance's `/` is `<hostRoot>/instances/<workspace id>`
 * (its commands' working directory), reached through a resolver of its own with that rootPrefix
 * (one SSMClient for all).
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { HostResolver } from '../../lambdas/core/host/host-resolver.ts';
import { ssmHostResolver, type SsmHostOptions } from '../../lambdas/core/host/ssm-host.ts';
import { ssmCommandDocument } from '../../lambdas/core/host/ssm-document.ts';
import type { Runtime } from '../../lambdas/core/runtimes.ts';
import type { WorkspaceRecord } from '../../lambdas/core/workspaces/workspace-directory.ts';
import { startSsmApi, type SsmApi, type SsmApiOptions } from './ssm-api.ts';
import { TEST_CREDENTIALS } from './sigv4.ts';

export interface SsmHarnessOptions {
  /** Overrides for the resolver (poll timings, step timeout). */
  host?: Partial<Omit<SsmHostOptions, 'client' | 'rootPrefix' | 'documentName'>>;
  /** Overrides for the stand-in (invisible polls, delivery delay). */
  api?: Partial<Omit<SsmApiOptions, 'instances'>>;
  /** The agent's launcher on every instance of the harness (FakeInstance.launcher). */
  launcher?: string[];
  /** Extra environment of every instance's commands (e.g. a PATH with fault shims first). */
  env?: Record<string, string>;
}

export interface SsmHarness {
  resolver: HostResolver;
  /**
   * A running workspace on its own managed fake instance (`i-` + 17 hex derived from the id);
   * with `ownRoot`, the instance has a filesystem of its own (rootOf).
   */
  workspace(id: string, runtime?: Runtime, options?: { ownRoot?: boolean }): WorkspaceRecord;
  /** The directory standing in for this workspace's instance's `/`. */
  rootOf(id: string): string;
  /** The directory standing in for every fake instance's `/`. */
  hostRoot: string;
  /** TMPDIR of the harness's instances (`<hostRoot>/tmp`). */
  tmpDir: string;
  api: SsmApi;
  client: SSMClient;
  /** Client config for more clients against the same stand-in (e.g. with other retry settings). */
  clientConfig: { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } };
  stop(): Promise<void>;
}

/** The plugin-host document's name in the stand-in. */
export const TEST_DOCUMENT_NAME = 'test-stack-plugin-host';

/** The stand-in's documents: the stack's own, with roots under each command's working directory. */
export function testDocuments(): NonNullable<SsmApiOptions['documents']> {
  return { [TEST_DOCUMENT_NAME]: ssmCommandDocument({ rootPrefix: '.' }) };
}

export function instanceIdFor(workspaceId: string): string {
  return `i-${createHash('sha256').update(workspaceId).digest('hex').slice(0, 17)}`;
}

export async function startSsmHarness(options: SsmHarnessOptions = {}): Promise<SsmHarness> {
  const hostRoot = await mkdtemp(join(tmpdir(), 'ssm-host-'));
  // The wrapper's temp files (left behind when a command is killed) stay inside hostRoot.
  const tmp = join(hostRoot, 'tmp');
  await mkdir(tmp);
  const api = await startSsmApi({ instances: {}, documents: testDocuments(), ...options.api });
  const clientConfig = {
    endpoint: api.endpoint,
    region: 'us-east-1',
    credentials: { ...TEST_CREDENTIALS },
  };
  const client = new SSMClient(clientConfig);
  const resolverAt = (rootPrefix: string) => ssmHostResolver({ client, documentName: TEST_DOCUMENT_NAME, rootPrefix, pollInitialMs: 25, pollMaxMs: 250, reportGraceMs: 1_000, ...options.host });
  const shared = resolverAt(hostRoot);
  /** Instances with a filesystem of their own: their root and resolver, by instance id. */
  const own = new Map<string, { root: string; resolver: HostResolver }>();
  const rootOfInstance = (instanceId: string) => own.get(instanceId)?.root ?? hostRoot;
  const resolver: HostResolver = (workspace) => (own.get(workspace.instanceId ?? '')?.resolver ?? shared)(workspace);
  return {
    resolver,
    rootOf: (id) => rootOfInstance(instanceIdFor(id)),
    hostRoot,
    tmpDir: tmp,
    api,
    client,
    clientConfig,
    workspace(id, runtime = 'claude-code', { ownRoot = false } = {}) {
      const instanceId = instanceIdFor(id);
      if (ownRoot && !own.has(instanceId)) {
        const root = join(hostRoot, 'instances', id);
        mkdirSync(root, { recursive: true });
        own.set(instanceId, { root, resolver: resolverAt(root) });
      }
      api.instances[instanceId] ??= { root: rootOfInstance(instanceId), managed: true, tags: { WorkspaceId: id, Runtime: runtime }, env: { TMPDIR: tmp, ...options.env }, ...(options.launcher ? { launcher: options.launcher } : {}) };
      return { id, runtime, transport: 'ssm', instanceId, privateIp: '127.0.0.1' };
    },
    async stop() {
      client.destroy();
      await api.stop();
      await rm(hostRoot, { recursive: true, force: true });
    },
  };
}
