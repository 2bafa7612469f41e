/**
 * The AWS deployment's ports on loopback: the EC2 API stand-in as the workspace directory,
 * s3rver as the artifact store, and the SSM (and, when asked, EIC) transports against their
 * stand-ins, all reached by the real SDK clients. The same composition as lambdas/commons/
 * aws-deps.ts, with endpoints pointed at this machine.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3ArtifactStore } from '../../lambdas/core/artifacts/s3-artifact-store.ts';
import { DirectoryPluginCatalog } from '../../lambdas/core/catalog/directory-plugin-catalog.ts';
import { S3PluginCatalog } from '../../lambdas/core/catalog/s3-plugin-catalog.ts';
import { JsonlEventSink } from '../../lambdas/core/events/jsonl-event-sink.ts';
import type { EventSink } from '../../lambdas/core/events/event-sink.ts';
import { transportResolver, type HostResolver } from '../../lambdas/core/host/host-resolver.ts';
import { DirectoryRolloutStore } from '../../lambdas/core/rollout/directory-rollout-store.ts';
import type { RolloutStore } from '../../lambdas/core/rollout/rollout-store.ts';
import type { Runtime } from '../../lambdas/core/runtimes.ts';
import type { StepDeps } from '../../lambdas/core/steps/step-deps.ts';
import { Ec2WorkspaceDirectory } from '../../lambdas/core/workspaces/ec2-workspace-directory.ts';
import { BUNDLED_CATALOG } from '../../lambdas/commons/local-deps.ts';
import { startEc2Api, type Ec2ApiStandIn, type Ec2State, type StandInInstance } from '../servers/ec2-api.ts';
import { startS3, type S3StandIn } from '../servers/s3.ts';
import { instanceIdFor, startSsmHarness, type SsmHarness, type SsmHarnessOptions } from '../servers/ssm-harness.ts';
import { TEST_CREDENTIALS } from '../servers/sigv4.ts';

export interface WorkspaceSpec {
  id: string;
  runtime?: Runtime;
  state?: Ec2State;
  transport?: 'ssm' | 'eic';
  /** More EC2 tags of its instance (a rollout's tag selector picks by them). */
  tags?: Record<string, string>;
}

export interface AwsWorld {
  /** With a RolloutStore in the world's temp dir (the bucket's adapter comes with the infra pass). */
  deps: StepDeps & { events: EventSink; rollouts: RolloutStore };
  ec2: Ec2ApiStandIn;
  s3: S3StandIn;
  ssm: SsmHarness;
  eventsFile: string;
  /** Where a workspace's plugins root is on this machine. */
  pluginsRoot(id: string): string;
  stop(): Promise<void>;
}

/** Extra transports (e.g. the EIC harness) register here: resolver + per-workspace registration. */
export interface ExtraTransport {
  resolver: HostResolver;
  hostRoot: string;
  /** `hostRoot`: this workspace's own `/` on this machine, when it is not the transport's. */
  register(spec: WorkspaceSpec): { instanceId: string; privateIp: string; hostRoot?: string };
}

export interface AwsWorldOptions {
  eic?: ExtraTransport;
  /** Options of the SSM harness (e.g. the instances' environment). */
  ssm?: SsmHarnessOptions;
  /** Every SSM workspace on an instance with a filesystem of its own (SsmHarness.rootOf). */
  ownRoots?: boolean;
  /** Where the workflows find `local://` sources (default the bundled catalog). */
  catalogDir?: string;
  /**
   * `bucket`: the catalog is `catalog/` in the world's bucket, as aws-deps.ts wires it (empty:
   * the test publishes into it); default a catalog directory (catalogDir), so tests need not.
   */
  catalog?: 'directory' | 'bucket';
}

export async function startAwsWorld(workspaces: WorkspaceSpec[], options: AwsWorldOptions = {}): Promise<AwsWorld> {
  const dir = await mkdtemp(join(tmpdir(), 'aws-world-'));
  const s3 = await startS3();
  const ssm = await startSsmHarness(options.ssm);
  const instances: StandInInstance[] = [];
  const roots = new Map<string, string>();
  for (const w of workspaces) {
    const runtime = w.runtime ?? 'claude-code';
    const transport = w.transport ?? 'ssm';
    let instanceId = instanceIdFor(w.id);
    let privateIp = '127.0.0.1';
    if (transport === 'eic') {
      if (!options.eic) throw new Error('an eic workspace needs the EIC harness');
      const registered = options.eic.register(w);
      ({ instanceId, privateIp } = registered);
      roots.set(w.id, registered.hostRoot ?? options.eic.hostRoot);
    } else {
      ssm.workspace(w.id, runtime, { ownRoot: options.ownRoots ?? false });
      roots.set(w.id, ssm.rootOf(w.id));
    }
    instances.push({ instanceId, state: w.state ?? 'running', privateIp, tags: { ...w.tags, WorkspaceId: w.id, Runtime: runtime, PluginTransport: transport } });
  }
  const ec2 = await startEc2Api({ instances });
  const ec2Client = new EC2Client({ endpoint: ec2.endpoint, region: 'us-east-1', credentials: { ...TEST_CREDENTIALS }, maxAttempts: 1 });
  const eventsFile = join(dir, 'events.jsonl');
  const deps: AwsWorld['deps'] = {
    workspaces: new Ec2WorkspaceDirectory({ client: ec2Client, defaultTransport: 'ssm' }),
    hosts: transportResolver({ ssm: ssm.resolver, ...(options.eic ? { eic: options.eic.resolver } : {}) }),
    artifacts: new S3ArtifactStore({ client: s3.client, bucket: s3.bucket }),
    rollouts: new DirectoryRolloutStore(join(dir, 'rollouts')),
    // No filesystem paths, as on AWS (localPaths absent).
    sources: {
      s3: s3.client,
      catalog: options.catalog === 'bucket' ? new S3PluginCatalog({ client: s3.client, bucket: s3.bucket }) : new DirectoryPluginCatalog(options.catalogDir ?? BUNDLED_CATALOG),
    },
    leaseSeconds: 600,
    lockOwnerPid: 0,
    hostTimeoutMs: 30_000,
    clock: () => new Date(),
    events: new JsonlEventSink(eventsFile),
  };
  return {
    deps,
    ec2,
    s3,
    ssm,
    eventsFile,
    pluginsRoot: (id) => join(roots.get(id) ?? ssm.hostRoot, 'configs/plugins'),
    stop: async () => {
      ec2Client.destroy();
      await Promise.allSettled([ec2.stop(), s3.stop(), ssm.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
