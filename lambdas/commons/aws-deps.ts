/**
 * The AWS composition root: every port backed by an AWS service, built once per Lambda
 * container from environment variables (set by infra/):
 *   ARTIFACT_BUCKET      S3 bucket of validated tarballs (required); also holds the fleet
 *                        rollouts' documents (rollouts/…, rollout-locks/…: S3RolloutStore) and
 *                        the plugin catalog `local://name[@version]` resolves against
 *                        (catalog/<name>/<version>.tar.gz: S3PluginCatalog)
 *   DEFAULT_TRANSPORT    eic | ssm, for instances without a PluginTransport tag (default ssm)
 *   EIC_OS_USER          OS user EC2 Instance Connect pushes keys for (default ubuntu)
 *   EIC_ENDPOINT_ID, EIC_ENDPOINT_DNS   connect through an EIC Endpoint (optional)
 *   EIC_NETWORK_PATH     endpoint | vpc | none: how this function reaches instances' private IPs
 *                        for EIC (default: endpoint when one is set, else none). Without a path,
 *                        EIC workspaces are refused (TransportUnavailable) before any host step.
 *   LEASE_SECONDS        plugin lock lease (default 900)
 *   HOST_STEP_TIMEOUT_MS host step timeout (default 120000)
 *
 * Through an EIC Endpoint (20 concurrent tunnels, not adjustable, shared by every function of the
 * deployment) no connection is kept idle: a function holds a tunnel only while one of its host
 * operations runs, never while its container sits frozen between invocations. A tunnel refused
 * at the limit is waited for in the adapter and counted here as the `TunnelRefused` metric.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { EC2Client } from '@aws-sdk/client-ec2';
import { EC2InstanceConnectClient } from '@aws-sdk/client-ec2-instance-connect';
import { S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import { S3ArtifactStore } from '../core/artifacts/s3-artifact-store.ts';
import { S3PluginCatalog } from '../core/catalog/s3-plugin-catalog.ts';
import { PluginError } from '../core/errors.ts';
import { S3RolloutStore } from '../core/rollout/s3-rollout-store.ts';
import { eicHostResolver, type TunnelRefusal } from '../core/host/eic-host.ts';
import { transportResolver, unavailableTransport, type HostResolver } from '../core/host/host-resolver.ts';
import { ssmHostResolver } from '../core/host/ssm-host.ts';
import type { StepDeps } from '../core/steps/step-deps.ts';
import { Ec2WorkspaceDirectory, type Ec2Transport } from '../core/workspaces/ec2-workspace-directory.ts';
import { logger, metrics } from './logger.ts';

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return value && Number.isInteger(n) && n > 0 ? n : fallback;
}

export interface AwsClients {
  s3: S3Client;
  ec2: EC2Client;
  ssm: SSMClient;
  eic: EC2InstanceConnectClient;
}

/** SDK clients with the default credential chain and region of the Lambda. */
export function defaultAwsClients(): AwsClients {
  return { s3: new S3Client({}), ec2: new EC2Client({}), ssm: new SSMClient({}), eic: new EC2InstanceConnectClient({}) };
}

export type EicNetworkPath = 'endpoint' | 'vpc' | 'none';

export const EIC_PATH_HINT =
  'tag the instance PluginTransport=ssm, or redeploy with an EC2 Instance Connect Endpoint (-c eicEndpointId=… -c eicEndpointDns=…) or in the workspace VPC (-c vpcId=… -c subnetIds=… -c securityGroupId=…); see docs/deploy.md';

/** How EIC connections leave this function: through the endpoint, inside the VPC, or not at all. */
export function eicNetworkPath(env: NodeJS.ProcessEnv): EicNetworkPath {
  if (env.EIC_ENDPOINT_ID && env.EIC_ENDPOINT_DNS) return 'endpoint';
  return env.EIC_NETWORK_PATH === 'vpc' ? 'vpc' : 'none';
}

/** One `TunnelRefused` data point (dimension `service` only, so one series per deployment) and a log line. */
export function countTunnelRefused(refusal: TunnelRefusal): void {
  // `message` is a reserved key of the logger: the endpoint's answer goes out as `answer`.
  const { message, ...where } = refusal;
  logger.warn('EIC endpoint at its connection limit: tunnel refused, waiting', { ...where, answer: message });
  metrics.singleMetric().addMetric('TunnelRefused', MetricUnit.Count, 1);
}

export function awsDeps(env: NodeJS.ProcessEnv = process.env, clients: AwsClients = defaultAwsClients()): StepDeps {
  const bucket = env.ARTIFACT_BUCKET;
  if (!bucket) throw new PluginError('InvalidInput', 'ARTIFACT_BUCKET is not set', 'deploy with infra/ (it sets the function environment)');
  const defaultTransport: Ec2Transport = env.DEFAULT_TRANSPORT === 'eic' ? 'eic' : 'ssm';
  const stepTimeoutMs = positiveInt(env.HOST_STEP_TIMEOUT_MS, 120_000);
  // maxTunnelDuration is always sent: the IAM policy's condition on it needs the key present.
  const endpoint = env.EIC_ENDPOINT_ID && env.EIC_ENDPOINT_DNS ? { id: env.EIC_ENDPOINT_ID, dnsName: env.EIC_ENDPOINT_DNS, maxTunnelDurationSeconds: 3600 } : undefined;
  const eic: HostResolver = eicNetworkPath(env) === 'none'
    ? unavailableTransport('eic', 'its functions run outside the workspaces\' VPC and have no EC2 Instance Connect Endpoint, so nothing routes to a private IP', EIC_PATH_HINT)
    : eicHostResolver({
      client: clients.eic,
      osUser: env.EIC_OS_USER || 'ubuntu',
      stepTimeoutMs,
      endpoint,
      ...(endpoint ? { idleTimeoutMs: 0, onTunnelRefused: countTunnelRefused } : {}),
    });
  return {
    workspaces: new Ec2WorkspaceDirectory({ client: clients.ec2, defaultTransport }),
    hosts: transportResolver({
      eic,
      ssm: env.SSM_DOCUMENT_NAME
        ? ssmHostResolver({ client: clients.ssm, documentName: env.SSM_DOCUMENT_NAME, stepTimeoutMs })
        : unavailableTransport('ssm', 'SSM_DOCUMENT_NAME is not set, so there is no plugin-host document to send', 'deploy with infra/ (it creates the document and sets SSM_DOCUMENT_NAME)'),
    }),
    artifacts: new S3ArtifactStore({ client: clients.s3, bucket }),
    // The rollout steps' store; the plugin workflows' steps never touch it (and IAM keeps them off rollouts/*).
    rollouts: new S3RolloutStore({ client: clients.s3, bucket }),
    // No filesystem paths (localPaths absent): a Lambda has none of the caller's files to read.
    sources: { s3: clients.s3, fetch: globalThis.fetch, catalog: new S3PluginCatalog({ client: clients.s3, bucket }) },
    leaseSeconds: positiveInt(env.LEASE_SECONDS, 900),
    // Lambda cannot vouch for a process on the workspace host: leases expire instead.
    lockOwnerPid: 0,
    hostTimeoutMs: stepTimeoutMs,
    clock: () => new Date(),
  };
}
