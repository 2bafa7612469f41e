/**
 * Everything the EIC adapter talks to, on loopback: a real sshd (sshd.ts), the EC2 Instance
 * Connect API stand-in (eic-api.ts) that the real EC2InstanceConnectClient calls, and optionally
 * the EIC Endpoint tunnel stand-in (eic-endpoint.ts). `resolver` is the production
 * `eicHostResolver` wired to them, with `hostRoot` (a temp dir) as the plugins-root prefix.
 */
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { EC2InstanceConnectClient } from '@aws-sdk/client-ec2-instance-connect';
import { eicHostResolver, type EicHostOptions, type EicHostResolver } from '../../lambdas/core/host/eic-host.ts';
import type { Runtime } from '../../lambdas/core/runtimes.ts';
import type { WorkspaceRecord } from '../../lambdas/core/workspaces/workspace-directory.ts';
import { startEicApi, TEST_CREDENTIALS, TEST_REGION, type EicApiHandle } from './eic-api.ts';
import { startEicEndpoint, type EicEndpointHandle } from './eic-endpoint.ts';
import { startSshd, type SshdHandle } from './sshd.ts';

const run = promisify(execFile);

export interface EicHarnessOptions {
  /** Connect through the EIC Endpoint stand-in instead of straight to 127.0.0.1:<sshd port>. */
  viaEndpoint?: boolean;
  /** How long pushed keys are served (default 60 s). */
  keyTtlSeconds?: number;
  /** Extra adapter options for `resolver` (timeouts, idle time…). */
  host?: Partial<EicHostOptions>;
  /** Instances the EIC API knows (all served by the one sshd; default 1): `instanceIds`. */
  instances?: number;
  /** The endpoint stand-in's concurrent-tunnel cap (default 20, as AWS). */
  maxConnections?: number;
}

export interface EicHarness {
  resolver: EicHostResolver;
  /** Another resolver on the same servers, with other adapter options (closed by stop()). */
  resolverWith(overrides: Partial<EicHostOptions>): EicHostResolver;
  /** An `eic` workspace on the harness's instance (`privateIp` 127.0.0.1). */
  workspace(id: string, runtime?: Runtime, instanceId?: string): WorkspaceRecord;
  instanceId: string;
  /** Every instance id the EIC API knows, `instanceId` first. */
  instanceIds: string[];
  /** The `rootPrefix`: plugins land under `<hostRoot>/configs/plugins/<name>`. */
  hostRoot: string;
  counters: { readonly pushes: number; readonly tunnels: number; readonly handshakes: number };
  client: EC2InstanceConnectClient;
  sshd: SshdHandle;
  eicApi: EicApiHandle;
  endpoint?: EicEndpointHandle;
  /** What `resolver` was built with. */
  hostOptions: EicHostOptions;
  stop(): Promise<void>;
}

export const TEST_ENDPOINT_ID = 'eice-0123456789abcdef0';
export const TEST_ENDPOINT_DNS = `${TEST_ENDPOINT_ID}.1a2b3c4d.ec2-instance-connect-endpoint.${TEST_REGION}.amazonaws.com`;

export async function startEicHarness(options: EicHarnessOptions = {}): Promise<EicHarness> {
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    stops.length = 0;
  };
  try {
    const sshd = await startSshd();
    stops.push(() => sshd.stop());
    const instanceIds = Array.from({ length: Math.max(1, options.instances ?? 1) }, () => `i-${randomBytes(8).toString('hex').slice(0, 17)}`);
    const instanceId = instanceIds[0]!;
    const eicApi = await startEicApi({ keyStoreDir: sshd.keyStoreDir, instances: instanceIds, keyTtlSeconds: options.keyTtlSeconds });
    stops.push(() => eicApi.stop());
    let endpoint: EicEndpointHandle | undefined;
    if (options.viaEndpoint) {
      endpoint = await startEicEndpoint({ sshPort: sshd.port, credentials: TEST_CREDENTIALS, region: TEST_REGION, endpointId: TEST_ENDPOINT_ID, maxConnections: options.maxConnections });
      stops.push(() => endpoint!.stop());
    }
    const client = new EC2InstanceConnectClient({ endpoint: eicApi.endpoint, region: TEST_REGION, credentials: { ...TEST_CREDENTIALS } });
    stops.push(async () => client.destroy());

    const hostRoot = await mkdtemp(join(tmpdir(), 'eic-host-root-'));
    if (!/^\/[A-Za-z0-9._/-]+$/.test(hostRoot)) throw new Error(`hostRoot ${hostRoot} has special characters`);
    stops.push(() => rm(hostRoot, { recursive: true, force: true }));
    await chmod(hostRoot, 0o755);
    // The steps run under sudo (root); owning it as the OS user also lets a privilege-less run write.
    const { stdout: uid } = await run('id', ['-u', sshd.user]);
    const { stdout: gid } = await run('id', ['-g', sshd.user]);
    await chown(hostRoot, Number(uid.trim()), Number(gid.trim()));

    const hostOptions: EicHostOptions = {
      client,
      osUser: sshd.user,
      port: endpoint ? 22 : sshd.port,
      rootPrefix: hostRoot,
      connectTimeoutMs: 5_000,
      stepTimeoutMs: 30_000,
      ...(endpoint ? { endpoint: { id: TEST_ENDPOINT_ID, dnsName: TEST_ENDPOINT_DNS, url: endpoint.url } } : {}),
      ...options.host,
    };
    const resolvers: EicHostResolver[] = [];
    stops.push(async () => {
      await Promise.all(resolvers.map((r) => r.close()));
    });
    const resolverWith = (overrides: Partial<EicHostOptions>): EicHostResolver => {
      const resolver = eicHostResolver({ ...hostOptions, ...overrides });
      resolvers.push(resolver);
      return resolver;
    };
    const resolver = resolverWith({});

    return {
      resolver,
      resolverWith,
      workspace: (id, runtime = 'claude-code', instance = instanceId) => ({ id, runtime, transport: 'eic', instanceId: instance, privateIp: '127.0.0.1' }),
      instanceId,
      instanceIds,
      hostRoot,
      counters: {
        get pushes() {
          return eicApi.pushes;
        },
        get tunnels() {
          return endpoint?.tunnels ?? 0;
        },
        get handshakes() {
          return sshd.accepted;
        },
      },
      client,
      sshd,
      eicApi,
      endpoint,
      hostOptions,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
