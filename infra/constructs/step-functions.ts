/**
 * The workflow step Lambdas: one NodejsFunction per step handler in lambdas/handlers/ (the files
 * exporting a workflow `step`; all-steps.ts only maps placeholders to handlers for the local
 * runner, and the HTTP API's handler is not a step), bundled locally with esbuild into one ESM
 * file per function, Node 22 on arm64.
 *
 * Environment (read by lambdas/commons/aws-deps.ts): ARTIFACT_BUCKET, DEFAULT_TRANSPORT,
 * EIC_OS_USER, EIC_ENDPOINT_ID + EIC_ENDPOINT_DNS (only when an endpoint is configured),
 * EIC_NETWORK_PATH (endpoint | vpc | none: without a path, EIC workspaces are refused up front),
 * SSM_DOCUMENT_NAME (the stack's plugin-host Command document, host-document.ts), LEASE_SECONDS, HOST_STEP_TIMEOUT_MS (host steps), POWERTOOLS_SERVICE_NAME,
 * POWERTOOLS_METRICS_NAMESPACE. No NODE_OPTIONS: source maps are not built (see STEP_BUNDLING).
 *
 * The host-step script: lambdas/core/host/host-script.ts reads it with
 * `new URL('./plugin-host.sh', import.meta.url)` (EIC and local runs; SSM hosts get it inside the
 * stack's document).
 * After bundling, `import.meta.url` is the bundle's own URL (file:///var/task/index.mjs), so the
 * scripts must sit next to index.mjs: the afterBundling hook copies every `*.sh` of
 * lambdas/core/host/ into the bundle's output directory.
 *
 * IAM, least privilege per function (each function has its own role, no managed policies):
 *   all        logs to its own log group; X-Ray (tracing); ec2:DescribeInstances (workspace lookup)
 *   host steps ec2-instance-connect:SendSSHPublicKey (tagged instances, one OS user),
 *              ec2-instance-connect:OpenTunnel (the configured endpoint, port 22, ≤ 1 h),
 *              ssm:SendCommand (the stack's plugin-host document only, on tagged instances), ssm:GetCommandInvocation,
 *              ssm:CancelCommand, ssm:ListCommandInvocations
 *   Prepare    S3 on uploads/* (stream + validate) and artifacts/* (commit by copy), ListBucket
 *              on the bucket (so a missing key is a 404, not a 403)
 *   StageOnHost S3 GetObject on artifacts/* (stream to the host, or presign for SSM hosts)
 *   no other plugin workflow step gets S3.
 *
 * The fleet rollout's steps (lambdas/handlers/rollout/, specs and their IAM in rollout-steps.ts)
 * are built here too, the same way, each role with exactly what its spec lists: the rollout
 * documents (rollouts/*, rollout-locks/*), PlanRollout Prepare's S3 rights, NextWave the host
 * transports for its skip check. Only those that need it look workspaces up.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Duration, Fn, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, type BundlingOptions, type NodejsFunctionProps } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { eicNetworkPath, type InstallerSettings, type VpcPlacement } from '../settings.ts';
import { ARTIFACTS_PREFIX, CATALOG_PREFIX, UPLOADS_PREFIX } from './artifact-bucket.ts';
import type { HostDocument } from './host-document.ts';
import { acknowledge, acknowledgeWildcardResource } from './nag.ts';
import { ROLLOUT_LOCKS_PREFIX, ROLLOUT_STEP_SPECS, ROLLOUTS_PREFIX, SKIP_CHECK_ROUNDS, type RolloutStepSpec } from './rollout-steps.ts';

/** The repository root: esbuild's project root and where the lock file lives. */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const HANDLERS_DIR = 'lambdas/handlers';
export const HOST_SCRIPTS_DIR = 'lambdas/core/host';

export const SERVICE_NAME = 'workspace-plugin-installer';
export const METRICS_NAMESPACE = 'WorkspacePluginInstaller';
export const DEFAULT_LEASE_SECONDS = 900;
/** Longest EIC Endpoint tunnel the host steps may open (seconds). */
export const MAX_TUNNEL_SECONDS = 3600;
/** The instance tag every workspace host carries; IAM only reaches instances that have it. */
export const WORKSPACE_TAG = 'WorkspaceId';

/**
 * What a step touches besides the workspace lookup every step does:
 *   lookup         nothing else (PrepareTarget)
 *   upload         the artifact bucket's uploads/ and artifacts/ (PrepareInstall)
 *   host           workspace hosts over EIC or SSM
 *   host-download  workspace hosts, and reads artifacts/ (StageOnHost)
 */
export type StepAccess = 'lookup' | 'upload' | 'host' | 'host-download';

export interface StepSpec {
  /** Handler file in lambdas/handlers/, without `.ts`. */
  readonly file: string;
  readonly access: StepAccess;
  readonly timeout: Duration;
  readonly memorySize: number;
}

/**
 * Every step handler. Prepare for install streams and validates the whole tarball (the ASL gives it
 * 300 s) and StageOnHost streams it to the host: 5 minutes and 512 MB; VerifyLive runs the plugin's
 * health check (at most 300 s): 6 minutes; the other steps run one short host operation.
 */
export const STEP_SPECS: readonly StepSpec[] = [
  { file: 'prepare-install', access: 'upload', timeout: Duration.minutes(5), memorySize: 512 },
  { file: 'prepare-target', access: 'lookup', timeout: Duration.minutes(1), memorySize: 256 },
  { file: 'acquire-lock', access: 'host', timeout: Duration.minutes(1), memorySize: 256 },
  { file: 'stage-on-host', access: 'host-download', timeout: Duration.minutes(5), memorySize: 512 },
  { file: 'snapshot-live', access: 'host', timeout: Duration.minutes(1), memorySize: 256 },
  { file: 'swap-into-place', access: 'host', timeout: Duration.minutes(1), memorySize: 256 },
  // Up to a 300 s health check (plugin.yaml healthcheck.timeoutSeconds) plus its overhead.
  { file: 'verify-live', access: 'host', timeout: Duration.minutes(6), memorySize: 256 },
  { file: 'write-marker', access: 'host', timeout: Duration.minutes(1), memorySize: 256 },
  { file: 'release-lock', access: 'host', timeout: Duration.minutes(1), memorySize: 256 },
  { file: 'roll-back', access: 'host', timeout: Duration.minutes(1), memorySize: 256 },
  { file: 'stage-snapshot', access: 'host', timeout: Duration.minutes(1), memorySize: 256 },
  { file: 'remove-live', access: 'host', timeout: Duration.minutes(1), memorySize: 256 },
];

export function isHostStep(spec: StepSpec): boolean {
  return spec.access === 'host' || spec.access === 'host-download';
}

/**
 * How long a host operation may run (HOST_STEP_TIMEOUT_MS, read by the EIC and SSM adapters):
 * the function's timeout less 15 s for the workspace lookup, connecting, and the adapters' own
 * grace period, so a slow host ends as a HostTimeout (the SSM command cancelled) rather than the
 * Lambda being killed mid-step.
 */
export function hostStepTimeoutMs(spec: StepSpec): number {
  return hostOperationTimeoutMs(spec.timeout);
}

/**
 * How much longer a workflow's Task waits than the function it invokes (its TimeoutSeconds in
 * statemachine/*.asl.json): a cold start and invoke overhead must not fire States.Timeout, which
 * is not retried and would start RollBack while the step still runs. The function's own timeout
 * surfaces as Lambda.Unknown, which the Tasks retry (test/infra/timeouts.test.ts checks both).
 */
export const TASK_TIMEOUT_MARGIN_SECONDS = 30;

/**
 * The host-operation budget of any function that reaches hosts (steps, the api): its timeout less
 * 15 s for the workspace lookup and cancelling an SSM command. The EIC adapter counts connecting
 * (key push, tunnel, handshake) inside it.
 */
export function hostOperationTimeoutMs(functionTimeout: Duration): number {
  return functionTimeout.toMilliseconds() - HOST_STEP_MARGIN_MS;
}
const HOST_STEP_MARGIN_MS = 15_000;

/**
 * NextWave's host-operation budget per listing (HOST_STEP_TIMEOUT_MS): the host steps' budget
 * (timeout less 15 s) shared by every round of a full skip-check scan, so a scan of unresponsive
 * hosts still ends before the function does. A listing that runs out of time counts as
 * "unknown": the target is installed, never wrongly skipped.
 */
export function rolloutHostTimeoutMs(spec: RolloutStepSpec): number {
  return Math.floor(hostOperationTimeoutMs(spec.timeout) / SKIP_CHECK_ROUNDS);
}

/** `stage-on-host` → `StageOnHost`; a handler in a subdirectory by its file name (`rollout/next-wave` → `NextWave`). */
export function stepId(file: string): string {
  return file.split('/').pop()!.split('-').map((part) => part.charAt(0).toUpperCase() + part.slice(1)).join('');
}

/** The ASL placeholder a handler fills: `stage-on-host` → `StageOnHostFunctionArn`. */
export function stepPlaceholder(file: string): string {
  return `${stepId(file)}FunctionArn`;
}

/** The shell scripts the bundles must carry next to index.mjs. */
export function hostScripts(root: string = PROJECT_ROOT): string[] {
  return readdirSync(`${root}/${HOST_SCRIPTS_DIR}`).filter((f) => f.endsWith('.sh')).sort();
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The shell commands that put the host scripts next to the bundle (NodejsFunction's afterBundling hook). */
export function copyHostScriptsCommands(inputDir: string, outputDir: string, scripts: readonly string[] = hostScripts()): string[] {
  return scripts.map((script) => `cp ${shellQuote(`${inputDir}/${HOST_SCRIPTS_DIR}/${script}`)} ${shellQuote(`${outputDir}/${script}`)}`);
}

/**
 * esbuild settings of every step bundle: one minified ESM file (`index.mjs`) for Node 22. The
 * banner gives bundled CommonJS dependencies a `require`. What is measured behind each choice
 * (`npm run bench:bundles`, docs/benchmarks.md part 6):
 *
 * - No source map: loading the 9.8 MB map through NODE_OPTIONS=--enable-source-maps cost every
 *   cold start (import on Node 22: 520–740 ms with it, 340–510 ms without). `keepNames` keeps
 *   function and class names in stack traces instead; errors that cross the workflow are typed
 *   PluginErrors with their own message and hint anyway.
 * - zod by name (lambdas/core/zod.ts): 350 KiB less per bundle.
 * - The AWS SDK stays bundled (the versions the tests ran). Leaving `@aws-sdk/client-*` to the
 *   runtime makes every bundle 600–800 KiB instead of 2.1–2.4 MiB, but importing the runtime's
 *   multi-file SDK measured 1.1–2× slower than the one bundled file, so the bundles stay larger.
 * - Not native addons: ssh2's optional crypto binding and cpu-features are built for this
 *   machine, not Lambda's arm64, and ssh2 falls back to pure JS when their require() fails.
 */
export const STEP_BUNDLING = {
  minify: true,
  keepNames: true,
  sourceMap: false,
  format: OutputFormat.ESM,
  target: 'node22',
  mainFields: ['module', 'main'],
  banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
  externalModules: ['cpu-features', '*.node'],
} as const;

/**
 * NodejsFunction bundling of every function that runs the host-step code (the steps and the api
 * Lambda): STEP_BUNDLING with esbuild on this machine (no Docker), and the afterBundling hook that
 * puts the host scripts next to index.mjs.
 */
export function hostCodeBundling(scripts: readonly string[] = hostScripts()): BundlingOptions {
  return {
    ...STEP_BUNDLING,
    mainFields: [...STEP_BUNDLING.mainFields],
    externalModules: [...STEP_BUNDLING.externalModules],
    forceDockerBundling: false,
    commandHooks: {
      beforeBundling: () => [],
      beforeInstall: () => [],
      afterBundling: (inputDir: string, outputDir: string) => copyHostScriptsCommands(inputDir, outputDir, scripts),
    },
  };
}

/** Where a host-reaching function runs: in the configured subnets, or outside a VPC. */
export type FunctionPlacement = Pick<NodejsFunctionProps, 'vpc' | 'vpcSubnets' | 'securityGroups'>;

/** Every function looks its workspace up by tag (DescribeInstances has no resource-level permissions). */
export function grantWorkspaceLookup(role: iam.Role): void {
  role.addToPolicy(new iam.PolicyStatement({ sid: 'LookUpWorkspaces', actions: ['ec2:DescribeInstances'], resources: ['*'] }));
}

/**
 * What a function needs to run host operations on workspace instances, over EIC or SSM: the
 * ephemeral key push (tagged instances, one OS user), the tunnel through the configured endpoint
 * (port 22, bounded duration), SendCommand (the stack's own plugin-host document, on tagged
 * instances: never AWS-RunShellScript) and following the command. `who` names the function(s) in
 * the cdk-nag acknowledgement.
 */
export function grantHostAccess(role: iam.Role, settings: InstallerSettings, who: string, document: HostDocument): void {
  const stack = Stack.of(role);
  const instanceArn = stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'PushEphemeralSshKey',
    actions: ['ec2-instance-connect:SendSSHPublicKey'],
    resources: [instanceArn],
    conditions: {
      StringEquals: { 'ec2:osuser': settings.osUser },
      Null: { [`aws:ResourceTag/${WORKSPACE_TAG}`]: 'false' },
    },
  }));
  if (settings.eicEndpoint) {
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'TunnelThroughEndpoint',
      actions: ['ec2-instance-connect:OpenTunnel'],
      resources: [stack.formatArn({ service: 'ec2', resource: 'instance-connect-endpoint', resourceName: settings.eicEndpoint.id })],
      conditions: {
        NumericEquals: { 'ec2-instance-connect:remotePort': 22 },
        NumericLessThanEquals: { 'ec2-instance-connect:maxTunnelDuration': MAX_TUNNEL_SECONDS },
        // Known workspace subnets: tunnels only to private IPs inside them.
        ...(settings.workspaceCidrs ? { IpAddress: { 'ec2-instance-connect:privateIpAddress': [...settings.workspaceCidrs] } } : {}),
      },
    }));
  }
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'PluginHostDocument',
    actions: ['ssm:SendCommand'],
    resources: [document.documentArn],
  }));
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'RunOnWorkspaceInstances',
    actions: ['ssm:SendCommand'],
    resources: [instanceArn],
    conditions: { Null: { [`ssm:resourceTag/${WORKSPACE_TAG}`]: 'false' } },
  }));
  // Command ids are only known after SendCommand; these actions have no resource-level permissions.
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'FollowCommands',
    actions: ['ssm:GetCommandInvocation', 'ssm:CancelCommand', 'ssm:ListCommandInvocations'],
    resources: ['*'],
  }));
  acknowledgeWildcardResource(
    role,
    instanceArn,
    `${who} reach workspace instances, which come and go; the statements are limited to instances tagged ${WORKSPACE_TAG} (and, for EC2 Instance Connect, to the OS user ${settings.osUser}).`,
  );
}

/**
 * Prepare's S3 rights (the install's Prepare, PlanRollout and the api's external download, which
 * run the same code): read `local://` sources from catalog/ (listed with ListBucket), stream the
 * source into uploads/ while validating it, commit it under its digest in artifacts/.
 */
export function grantSourceStorage(role: iam.Role, bucket: IBucket, who: string): void {
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'StreamUploads',
    // AbortMultipartUpload: a tarball refused mid-stream aborts its multipart upload.
    actions: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
    resources: [bucket.arnForObjects(`${UPLOADS_PREFIX}*`)],
  }));
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'CommitArtifacts',
    actions: ['s3:PutObject', 's3:GetObject'],
    resources: [bucket.arnForObjects(`${ARTIFACTS_PREFIX}*`)],
  }));
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'ReadCatalog',
    actions: ['s3:GetObject'],
    resources: [bucket.arnForObjects(`${CATALOG_PREFIX}*`)],
  }));
  // Without ListBucket S3 answers HeadObject on a missing key with 403, not 404, and commit()
  // could not tell "not stored yet" from "denied". Keys are sha256 digests and random ids. It
  // also lists catalog/<name>/ for the versions of a local:// source.
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'TellMissingFromDenied',
    actions: ['s3:ListBucket'],
    resources: [bucket.bucketArn],
  }));
  acknowledgeWildcardResource(role, bucket.arnForObjects(`${UPLOADS_PREFIX}*`), `${who} writes each upload under a fresh random key below uploads/; the grant is limited to that prefix of the artifact bucket.`);
  acknowledgeWildcardResource(role, bucket.arnForObjects(`${ARTIFACTS_PREFIX}*`), `${who} commits tarballs under their sha256 digest below artifacts/; the grant is limited to that prefix of the artifact bucket.`);
  acknowledgeWildcardResource(role, bucket.arnForObjects(`${CATALOG_PREFIX}*`), `${who} reads plugin versions from the catalog, catalog/<name>/<version>.tar.gz; the grant is read-only and limited to that prefix of the artifact bucket.`);
}

/**
 * A rollout step's rights on the rollout documents: exactly the actions its spec lists on
 * rollouts/* and rollout-locks/*, and ListBucket (so a missing document is a 404, not a 403)
 * unless it already has it from grantSourceStorage.
 */
export function grantRolloutDocuments(role: iam.Role, bucket: IBucket, spec: RolloutStepSpec): void {
  const grants: [string, string, readonly string[], string][] = [
    ['RolloutDocuments', ROLLOUTS_PREFIX, spec.documents, 'A rollout\'s documents (request, record, result pages) live under rollouts/<rollout id>/, one key per page of 500 targets; the grant is limited to that prefix of the artifact bucket.'],
    ['RolloutLocks', ROLLOUT_LOCKS_PREFIX, spec.locks, 'One rollout lock per plugin, rollout-locks/<plugin>.json, written only with S3 conditional writes; the grant is limited to that prefix of the artifact bucket.'],
  ];
  for (const [sid, prefix, actions, reason] of grants) {
    if (actions.length === 0) continue;
    const objects = bucket.arnForObjects(`${prefix}*`);
    role.addToPolicy(new iam.PolicyStatement({ sid, actions: [...actions], resources: [objects] }));
    acknowledgeWildcardResource(role, objects, reason);
  }
  if ((spec.documents.length > 0 || spec.locks.length > 0) && !spec.storesSource) {
    role.addToPolicy(new iam.PolicyStatement({ sid: 'TellMissingFromDenied', actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
  }
}

/** What AWSLambdaVPCAccessExecutionRole grants, inline: Lambda manages the function's ENIs. */
export function grantVpcNetworkInterfaces(role: iam.Role): void {
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'ManageVpcNetworkInterfaces',
    actions: [
      'ec2:CreateNetworkInterface',
      'ec2:DescribeNetworkInterfaces',
      'ec2:DescribeSubnets',
      'ec2:DeleteNetworkInterface',
      'ec2:AssignPrivateIpAddresses',
      'ec2:UnassignPrivateIpAddresses',
    ],
    resources: ['*'],
  }));
}

/** Why the functions stay on Node.js 22 (cdk-nag AwsSolutions-L1 wants the newest runtime). */
export const NODE_RUNTIME_REASON =
  'Node.js 22 is the runtime this product is designed and tested for (the same code also runs on Node 20 in embedded mode); moving to a newer runtime is a deliberate upgrade, not drift.';

export interface StepLambdasProps {
  readonly bucket: IBucket;
  readonly settings: InstallerSettings;
  /** The SSM Command document host steps send (and nothing else). */
  readonly hostDocument: HostDocument;
  /** Lock lease written by AcquireLock. Default 900 s. */
  readonly leaseSeconds?: number;
  /** Default one month. */
  readonly logRetention?: logs.RetentionDays;
}

export interface StepLambda {
  /** A plugin workflow step's spec, or a rollout step's (rollout-steps.ts). */
  readonly spec: StepSpec | RolloutStepSpec;
  readonly placeholder: string;
  readonly fn: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
}

export class StepLambdas extends Construct {
  /** The plugin workflows' steps (STEP_SPECS). */
  readonly steps: readonly StepLambda[];
  /** The fleet rollout's steps (ROLLOUT_STEP_SPECS). */
  readonly rolloutSteps: readonly StepLambda[];
  /** The environment every step gets (host steps add HOST_STEP_TIMEOUT_MS); the api Lambda starts from it too. */
  readonly environment: Readonly<Record<string, string>>;
  /** The VPC placement of every step (empty without VPC settings); the api Lambda shares it. */
  readonly placement: FunctionPlacement;
  /** The SSM Command document the host steps send; the api Lambda sends it too. */
  readonly hostDocument: HostDocument;
  private readonly byPlaceholder: ReadonlyMap<string, StepLambda>;

  constructor(scope: Construct, id: string, props: StepLambdasProps) {
    super(scope, id);
    const { settings } = props;
    const bundling = hostCodeBundling(hostScripts());

    const placement = settings.vpc ? this.vpcPlacement(settings.vpc) : {};
    this.placement = placement;
    this.hostDocument = props.hostDocument;

    const environment: Record<string, string> = {
      ARTIFACT_BUCKET: props.bucket.bucketName,
      DEFAULT_TRANSPORT: settings.defaultTransport,
      EIC_OS_USER: settings.osUser,
      ...(settings.eicEndpoint ? { EIC_ENDPOINT_ID: settings.eicEndpoint.id, EIC_ENDPOINT_DNS: settings.eicEndpoint.dnsName } : {}),
      EIC_NETWORK_PATH: eicNetworkPath(settings),
      SSM_DOCUMENT_NAME: props.hostDocument.documentName,
      LEASE_SECONDS: String(props.leaseSeconds ?? DEFAULT_LEASE_SECONDS),
      POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
    };
    this.environment = environment;

    const steps: StepLambda[] = [];
    for (const spec of STEP_SPECS) {
      const step = this.stepFunction(spec, isHostStep(spec) ? { HOST_STEP_TIMEOUT_MS: String(hostStepTimeoutMs(spec)) } : {}, bundling, props);
      const { role } = step;

      grantWorkspaceLookup(role);
      if (isHostStep(spec)) grantHostAccess(role, settings, 'Host steps', props.hostDocument);

      if (spec.access === 'upload') grantSourceStorage(role, props.bucket, 'Prepare');

      if (spec.access === 'host-download') {
        role.addToPolicy(new iam.PolicyStatement({
          sid: 'ReadArtifacts',
          actions: ['s3:GetObject'],
          resources: [props.bucket.arnForObjects(`${ARTIFACTS_PREFIX}*`)],
        }));
        acknowledgeWildcardResource(role, props.bucket.arnForObjects(`${ARTIFACTS_PREFIX}*`), 'StageOnHost reads (or presigns for SSM hosts) the committed tarball named by its digest; the grant is read-only and limited to artifacts/.');
      }

      if (settings.vpc) grantVpcNetworkInterfaces(role);

      acknowledgeWildcardResource(
        role,
        '*',
        'Resource "*" only where IAM has no resource-level permissions: ec2:DescribeInstances, X-Ray PutTraceSegments/PutTelemetryRecords'
          + (isHostStep(spec) ? ', ssm:GetCommandInvocation/CancelCommand/ListCommandInvocations (command ids exist only after SendCommand)' : '')
          + (settings.vpc ? ', and the ENI actions Lambda needs to attach the function to the VPC' : '')
          + '.',
      );
      steps.push(step);
    }

    const rolloutSteps: StepLambda[] = [];
    for (const spec of ROLLOUT_STEP_SPECS) {
      const step = this.stepFunction(spec, spec.host ? { HOST_STEP_TIMEOUT_MS: String(rolloutHostTimeoutMs(spec)) } : {}, bundling, props);
      const { role } = step;
      if (spec.lookup) grantWorkspaceLookup(role);
      if (spec.host) grantHostAccess(role, settings, 'NextWave lists the plugins on each target\'s host (the skip check) and needs to', props.hostDocument);
      if (spec.storesSource) grantSourceStorage(role, props.bucket, 'PlanRollout');
      grantRolloutDocuments(role, props.bucket, spec);
      if (settings.vpc) grantVpcNetworkInterfaces(role);
      acknowledgeWildcardResource(
        role,
        '*',
        'Resource "*" only where IAM has no resource-level permissions: X-Ray PutTraceSegments/PutTelemetryRecords'
          + (spec.lookup ? ', ec2:DescribeInstances' : '')
          + (spec.host ? ', ssm:GetCommandInvocation/CancelCommand/ListCommandInvocations (command ids exist only after SendCommand)' : '')
          + (settings.vpc ? ', and the ENI actions Lambda needs to attach the function to the VPC' : '')
          + '.',
      );
      rolloutSteps.push(step);
    }
    this.rolloutSteps = rolloutSteps;
    this.steps = steps;
    this.byPlaceholder = new Map([...steps, ...rolloutSteps].map((s) => [s.placeholder, s]));
  }

  /** One step's function, its own log group and its own role (logs only; the caller adds the rest). */
  private stepFunction(spec: StepSpec | RolloutStepSpec, extraEnvironment: Record<string, string>, bundling: BundlingOptions, props: StepLambdasProps): StepLambda {
    const name = stepId(spec.file);
    const logGroup = new logs.LogGroup(this, `${name}Logs`, { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    const role = new iam.Role(this, `${name}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the ${name} ${spec.file.startsWith('rollout/') ? 'rollout' : 'workflow'} step`,
    });
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'WriteOwnLogs',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }));
    const fn = new NodejsFunction(this, name, {
      description: `workspace-plugin-installer step ${name} (lambdas/handlers/${spec.file}.ts)`,
      entry: `${PROJECT_ROOT}${HANDLERS_DIR}/${spec.file}.ts`,
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: `${PROJECT_ROOT}package-lock.json`,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      timeout: spec.timeout,
      memorySize: spec.memorySize,
      tracing: Tracing.ACTIVE,
      role,
      logGroup,
      environment: { ...this.environment, ...extraEnvironment },
      ...this.placement,
      bundling,
    });
    acknowledge(fn, 'AwsSolutions-L1', NODE_RUNTIME_REASON);
    return { spec, placeholder: stepPlaceholder(spec.file), fn, role, logGroup };
  }

  /**
   * The VPC, subnets and security group from their ids: no lookups (`Vpc.fromLookup` would need
   * AWS credentials at synth time), nothing created. The functions only need the subnet ids.
   */
  private vpcPlacement(vpc: VpcPlacement) {
    const subnets = vpc.subnetIds.map((subnetId, i) => {
      const subnet = ec2.Subnet.fromSubnetId(this, `Subnet${i}`, subnetId);
      acknowledge(subnet, 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId', 'The step Lambdas only need the subnet id to place their network interfaces; nothing in this stack reads or changes the subnet route table.');
      return subnet;
    });
    // The subnets are given explicitly, so nothing reads the zones; stack.availabilityZones
    // would be a context lookup for an environment-specific stack, Fn::GetAZs is not.
    const imported = ec2.Vpc.fromVpcAttributes(this, 'Vpc', { vpcId: vpc.vpcId, availabilityZones: Fn.getAzs() });
    acknowledge(imported, 'Annotation::@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones', 'The functions get their subnets by id; nothing selects subnets from this imported VPC by zone, so its zone list is never read at synthesis.');
    return {
      vpc: imported,
      vpcSubnets: { subnets },
      securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(this, 'SecurityGroup', vpc.securityGroupId, { mutable: false })],
    };
  }

  /** The step that fills an ASL placeholder such as `StageOnHostFunctionArn`, if any. */
  forPlaceholder(placeholder: string): StepLambda | undefined {
    return this.byPlaceholder.get(placeholder);
  }
}
