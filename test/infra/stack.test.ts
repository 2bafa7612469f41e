/**
 * The CDK stack, built in-process from cdk.json's context: every resource the deployment needs,
 * Lambdas on nodejs22.x/arm64, IAM exactly as designed (conditions included), state machine
 * definitions that are the ASL files with every placeholder filled, and cdk-nag's AWS Solutions
 * pack with nothing left unacknowledged.
 *
 * Two stacks: the defaults (environment-agnostic), and one with VPC placement, an EIC endpoint,
 * the EIC transport and an account/region (ARNs become literal there).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { placeholders, WORKFLOWS, workflowText, type WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { STEP_BY_PLACEHOLDER } from '../../lambdas/handlers/all-steps.ts';
import { awsDeps, defaultAwsClients } from '../../lambdas/commons/aws-deps.ts';
import type { S3ArtifactStore } from '../../lambdas/core/artifacts/s3-artifact-store.ts';
import { WORKSPACE_ID_TAG, type Ec2WorkspaceDirectory } from '../../lambdas/core/workspaces/ec2-workspace-directory.ts';
import { FAILURES_BY_CODE, INPUT_ERROR_CODES, NOTIFICATIONS_UNDELIVERED, PLUGIN_FAULT_CODES, ROLLBACK_FAILED, ROLLOUT_VERDICTS, SYSTEM_FAIL_STATES, SYSTEM_FAILURES, systemFailurePattern, UNDELIVERED_STATE_PREFIX } from '../../infra/constructs/alarms.ts';
import { ARCHIVED_EVENT_TYPES, EVENT_SOURCE, PLUGIN_EVENT_TYPES } from '../../infra/constructs/event-bus.ts';
import { ROLLOUT_EVENT_TYPES } from '../../lambdas/core/events/event-sink.ts';
import { definitionText, ROLLOUT_DEFINITION } from '../../lambdas/core/workflow/workflow-files.ts';
import { ROLLOUT_STEP_SPECS } from '../../infra/constructs/rollout-steps.ts';

const EVENT_BUS_NAME = 'WorkspacePluginInstaller-events';
import { MIN_REASON_LENGTH } from '../../infra/constructs/nag.ts';
import { isHostStep, STEP_SPECS, stepPlaceholder, WORKSPACE_TAG, type StepSpec } from '../../infra/constructs/step-functions.ts';
import { buildInstallerApp } from '../../infra/installer-app.ts';
import { type Acknowledgement, acknowledgements, actionsOf, allStatements, buildApp, type BuiltApp, cdkJson, flat, logicalId, normalize, resourcesOf, roleStatements, ROOT, sortStatements, TEST_ACCOUNT, TEST_REGION, SYNTH_HOOK_TIMEOUT_MS, VARIANT_CONTEXT, validateAsl } from './infra-helpers.ts';



let base: BuiltApp;
let variant: BuiltApp;

// Synthesizing takes seconds on an idle machine and minutes on a loaded 2-core one (CI shares
// its machine): a timeout, not a speed check.
beforeAll(() => {
  base = buildApp();
  variant = buildApp({ context: VARIANT_CONTEXT, env: { account: TEST_ACCOUNT, region: TEST_REGION } });
}, SYNTH_HOOK_TIMEOUT_MS);

afterEach(() => {
  vi.restoreAllMocks();
});

const HANDLER_FILES = readdirSync(join(ROOT, 'lambdas/handlers'))
  .filter((f) => f.endsWith('.ts') && f !== 'all-steps.ts')
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();

function stepOf(app: BuiltApp, spec: StepSpec) {
  const step = app.stack.steps.forPlaceholder(stepPlaceholder(spec.file));
  if (!step) throw new Error(`no step for ${spec.file}`);
  return step;
}

describe('resources', () => {
  it('has the artifact bucket, its log bucket, 12 step Lambdas + 6 rollout step Lambdas + the api Lambda + the sweeper, 3 workflow state machines + the rollout + the sweep, the bus, the alarms, the REST API, the sweep schedule', () => {
    const t = base.template;
    t.resourceCountIs('AWS::S3::Bucket', 2);
    t.resourceCountIs('AWS::Lambda::Function', STEP_SPECS.length + ROLLOUT_STEP_SPECS.length + 2);
    expect(STEP_SPECS.length + ROLLOUT_STEP_SPECS.length + 2).toBe(20);
    t.resourceCountIs('AWS::StepFunctions::StateMachine', 5);
    t.resourceCountIs('AWS::Events::EventBus', 1);
    t.resourceCountIs('AWS::Events::Archive', 1);
    t.resourceCountIs('AWS::SNS::Topic', 1);
    t.resourceCountIs('AWS::KMS::Key', 1);
    // SystemFailures, RollbackFailed, NotificationsUndelivered, the sweep's failed executions and SweepHostsFailed.
    t.resourceCountIs('AWS::CloudWatch::Alarm', 5);
    // SystemFailures, FailuresByCode, RollbackFailed, NotificationsUndelivered.
    t.resourceCountIs('AWS::Logs::MetricFilter', 4);
    t.resourceCountIs('AWS::ApiGateway::RestApi', 1);
    // The sweeper's schedule, and nothing else (Step Functions manages the rule `.sync` uses itself).
    t.resourceCountIs('AWS::Events::Rule', 1);
    t.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
    // No custom resources (e.g. a LogRetention Lambda): every function above is a step, the api or the sweeper.
    expect(Object.keys(t.findResources('AWS::CloudFormation::CustomResource'))).toEqual([]);
  });

  it('exposes what the API and the sweeper attach to', () => {
    const { stack } = base;
    expect(Object.keys(stack.stateMachines).sort()).toEqual([...WORKFLOWS].sort());
    expect(stack.bucket).toBeDefined();
    expect(stack.bus).toBeDefined();
    expect(stack.alarmTopic).toBeDefined();
    expect(stack.steps.steps).toHaveLength(STEP_SPECS.length);
    expect(stack.steps.rolloutSteps).toHaveLength(ROLLOUT_STEP_SPECS.length);
    base.template.hasOutput('ArtifactBucketName', {});
    base.template.hasOutput('EventBusName', {});
    base.template.hasOutput('InstallStateMachineArn', {});
    base.template.hasOutput('RolloutStateMachineArn', { Value: { Ref: logicalId(stack.rollout.stateMachine) } });
    expect(Object.keys(base.template.toJSON().Outputs as object).sort()).toEqual([
      'AlarmTopicArn', 'ApiInvokeArn', 'ApiUrl', 'ArtifactBucketName', 'DashboardName', 'EventBusName', 'HostDocumentName',
      'InstallStateMachineArn', 'RollbackStateMachineArn', 'RolloutStateMachineArn', 'SweepStateMachineArn', 'SweeperFunctionName', 'UninstallStateMachineArn',
    ]);
  });
});

describe('artifact bucket', () => {
  it('is private, encrypted, TLS-only, logs its accesses, and expires uploads', () => {
    const t = base.template;
    const bucketId = logicalId(base.stack.bucket);
    const logBucketId = Object.keys(t.findResources('AWS::S3::Bucket')).find((id) => id !== bucketId)!;
    t.hasResource('AWS::S3::Bucket', {
      Properties: {
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        LoggingConfiguration: { DestinationBucketName: { Ref: logBucketId }, LogFilePrefix: Match.anyValue() },
        LifecycleConfiguration: {
          Rules: Match.arrayWith([
            Match.objectLike({ Prefix: 'uploads/', ExpirationInDays: 1, Status: 'Enabled' }),
            Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }),
          ]),
        },
      },
    });
    const bucket = t.findResources('AWS::S3::Bucket')[bucketId]!;
    expect((bucket.Properties as Record<string, unknown>).VersioningConfiguration).toBeUndefined();
    // Both buckets refuse plain HTTP.
    for (const id of [bucketId, logBucketId]) {
      t.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    }
    t.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      LoggingConfiguration: Match.absent(),
    });
  });
});

describe('step Lambdas', () => {
  it('cover every step handler file, and fill exactly the placeholders all-steps.ts maps', async () => {
    // A step handler exports the workflow `step` it wraps; other handlers (the API's) are not steps.
    const stepFiles: string[] = [];
    for (const file of HANDLER_FILES) {
      const mod = (await import(join(ROOT, 'lambdas/handlers', `${file}.ts`))) as { step?: { placeholder?: unknown } };
      if (typeof mod.step?.placeholder === 'string') stepFiles.push(file);
    }
    expect(STEP_SPECS.map((s) => s.file).sort()).toEqual(stepFiles.sort());
    expect(STEP_SPECS.map((s) => stepPlaceholder(s.file)).sort()).toEqual([...STEP_BY_PLACEHOLDER.keys()].sort());
  });

  it('each step handler file exports `handler` and the step for its placeholder', async () => {
    for (const spec of STEP_SPECS) {
      const mod = (await import(join(ROOT, 'lambdas/handlers', `${spec.file}.ts`))) as { handler?: unknown; step?: { placeholder: string } };
      expect(typeof mod.handler, spec.file).toBe('function');
      expect(mod.step?.placeholder, spec.file).toBe(stepPlaceholder(spec.file));
    }
  });

  it('run nodejs22.x on arm64 with tracing, their own log group, and the designed timeouts and memory', () => {
    for (const app of [base, variant]) {
      for (const spec of STEP_SPECS) {
        const step = stepOf(app, spec);
        const fn = app.template.findResources('AWS::Lambda::Function')[logicalId(step.fn)];
        expect(fn, spec.file).toBeDefined();
        const props = fn!.Properties as Record<string, unknown>;
        expect(props.Runtime).toBe('nodejs22.x');
        expect(props.Architectures).toEqual(['arm64']);
        expect(props.Handler).toBe('index.handler');
        expect(props.TracingConfig).toEqual({ Mode: 'Active' });
        expect(props.LoggingConfig).toEqual({ LogGroup: { Ref: logicalId(step.logGroup) } });
        expect(props.Role).toEqual({ 'Fn::GetAtt': [logicalId(step.role), 'Arn'] });
        const long = spec.file === 'stage-on-host' || spec.file === 'prepare-install';
        // VerifyLive runs the plugin's health check, up to 300 s of it.
        expect(props.Timeout, spec.file).toBe(spec.file === 'verify-live' ? 360 : long ? 300 : 60);
        expect(props.MemorySize as number).toBeGreaterThanOrEqual(256);
        expect(props.MemorySize as number).toBeLessThanOrEqual(512);
        expect(props.Description).toContain(`lambdas/handlers/${spec.file}.ts`);
      }
    }
    base.template.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  it('get the environment the adapters read (EIC endpoint only when configured)', () => {
    const common = {
      ARTIFACT_BUCKET: { Ref: logicalId(base.stack.bucket) },
      LEASE_SECONDS: '900',
      POWERTOOLS_SERVICE_NAME: 'workspace-plugin-installer',
      POWERTOOLS_METRICS_NAMESPACE: 'WorkspacePluginInstaller',
    };
    const variables = (app: BuiltApp, spec: StepSpec) =>
      (app.template.findResources('AWS::Lambda::Function')[logicalId(stepOf(app, spec).fn)]!.Properties as { Environment: { Variables: unknown } }).Environment.Variables;
    // Host steps also get their host-operation timeout: the function's less 15 s (45 s, or 285 s for
    // StageOnHost and 345 s for VerifyLive).
    const hostTimeout = (spec: StepSpec) => (isHostStep(spec) ? { HOST_STEP_TIMEOUT_MS: { 'stage-on-host': '285000', 'verify-live': '345000' }[spec.file] ?? '45000' } : {});
    for (const spec of STEP_SPECS) {
      expect(variables(base, spec), spec.file).toEqual({
        ...common,
        DEFAULT_TRANSPORT: 'ssm',
        EIC_OS_USER: 'ubuntu',
        EIC_NETWORK_PATH: 'none',
        SSM_DOCUMENT_NAME: base.stack.hostDocument.documentName,
        ...hostTimeout(spec),
      });
      expect(variables(variant, spec), spec.file).toEqual({
        ...common,
        ARTIFACT_BUCKET: { Ref: logicalId(variant.stack.bucket) },
        DEFAULT_TRANSPORT: 'eic',
        EIC_OS_USER: 'ec2-user',
        EIC_ENDPOINT_ID: VARIANT_CONTEXT.eicEndpointId,
        EIC_ENDPOINT_DNS: VARIANT_CONTEXT.eicEndpointDns,
        EIC_NETWORK_PATH: 'endpoint',
        SSM_DOCUMENT_NAME: variant.stack.hostDocument.documentName,
        ...hostTimeout(spec),
      });
    }
  });

  it('set exactly what the AWS composition root reads (lambdas/commons/aws-deps.ts)', () => {
    expect(WORKSPACE_TAG).toBe(WORKSPACE_ID_TAG);
    for (const app of [base, variant]) {
      for (const spec of STEP_SPECS) {
        const fn = app.template.findResources('AWS::Lambda::Function')[logicalId(stepOf(app, spec).fn)]!;
        const variables = (fn.Properties as { Environment: { Variables: Record<string, unknown> } }).Environment.Variables;
        const env = Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, typeof v === 'string' ? v : 'artifact-bucket']));
        const deps = awsDeps(env, defaultAwsClients());
        expect(deps.leaseSeconds).toBe(900);
        expect((deps.artifacts as S3ArtifactStore).bucket).toBe('artifact-bucket');
        expect((deps.workspaces as Ec2WorkspaceDirectory).defaultTransport).toBe(app === base ? 'ssm' : 'eic');
        if (isHostStep(spec)) expect(deps.hostTimeoutMs, spec.file).toBe(spec.timeout.toMilliseconds() - 15_000);
      }
    }
  });

  it('run in the given subnets and security group when VPC placement is configured, and outside a VPC otherwise', () => {
    const vpcConfig = {
      SubnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'],
      SecurityGroupIds: ['sg-0123456789abcdef0'],
    };
    // The steps (the rollout's too) and the api Lambda; the sweeper only calls the SSM API and stays outside (test/infra/sweeper.test.ts).
    const functions = variant.template.findResources('AWS::Lambda::Function');
    const sweeper = logicalId(variant.stack.sweeper.fn);
    expect(Object.keys(functions)).toHaveLength(STEP_SPECS.length + ROLLOUT_STEP_SPECS.length + 2);
    for (const [id, fn] of Object.entries(functions)) {
      expect((fn.Properties as Record<string, unknown>).VpcConfig, id).toEqual(id === sweeper ? undefined : vpcConfig);
    }
    base.template.allResourcesProperties('AWS::Lambda::Function', { VpcConfig: Match.absent() });
    // Imported by id: no lookups (the CLI test synthesizes with --no-lookups), nothing created.
    variant.template.resourceCountIs('AWS::EC2::SecurityGroup', 0);
  });
});

interface ArnParts {
  partition: string;
  region: string;
  account: string;
}

function expectedStatements(app: BuiltApp, spec: StepSpec, arn: ArnParts, osUser: string, endpointId?: string, vpc = false) {
  const step = stepOf(app, spec);
  const bucket = `<${logicalId(app.stack.bucket)}.Arn>`;
  const instances = `arn:${arn.partition}:ec2:${arn.region}:${arn.account}:instance/*`;
  const list: ReturnType<typeof normalize>[] = [
    { sid: 'WriteOwnLogs', effect: 'Allow', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [`<${logicalId(step.logGroup)}.Arn>`], condition: undefined },
    { sid: '', effect: 'Allow', actions: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'], resources: ['*'], condition: undefined },
    { sid: 'LookUpWorkspaces', effect: 'Allow', actions: ['ec2:DescribeInstances'], resources: ['*'], condition: undefined },
  ];
  if (isHostStep(spec)) {
    list.push(
      {
        sid: 'PushEphemeralSshKey',
        effect: 'Allow',
        actions: ['ec2-instance-connect:SendSSHPublicKey'],
        resources: [instances],
        condition: { StringEquals: { 'ec2:osuser': osUser }, Null: { 'aws:ResourceTag/WorkspaceId': 'false' } },
      },
      { sid: 'PluginHostDocument', effect: 'Allow', actions: ['ssm:SendCommand'], resources: [`arn:${arn.partition}:ssm:${arn.region}:${arn.account}:document/${app.stack.hostDocument.documentName}`], condition: undefined },
      { sid: 'RunOnWorkspaceInstances', effect: 'Allow', actions: ['ssm:SendCommand'], resources: [instances], condition: { Null: { 'ssm:resourceTag/WorkspaceId': 'false' } } },
      { sid: 'FollowCommands', effect: 'Allow', actions: ['ssm:CancelCommand', 'ssm:GetCommandInvocation', 'ssm:ListCommandInvocations'], resources: ['*'], condition: undefined },
    );
    if (endpointId) {
      list.push({
        sid: 'TunnelThroughEndpoint',
        effect: 'Allow',
        actions: ['ec2-instance-connect:OpenTunnel'],
        resources: [`arn:${arn.partition}:ec2:${arn.region}:${arn.account}:instance-connect-endpoint/${endpointId}`],
        condition: { NumericEquals: { 'ec2-instance-connect:remotePort': 22 }, NumericLessThanEquals: { 'ec2-instance-connect:maxTunnelDuration': 3600 } },
      });
    }
  }
  if (spec.access === 'upload') {
    list.push(
      { sid: 'StreamUploads', effect: 'Allow', actions: ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:PutObject'], resources: [`${bucket}/uploads/*`], condition: undefined },
      { sid: 'CommitArtifacts', effect: 'Allow', actions: ['s3:GetObject', 's3:PutObject'], resources: [`${bucket}/artifacts/*`], condition: undefined },
      { sid: 'ReadCatalog', effect: 'Allow', actions: ['s3:GetObject'], resources: [`${bucket}/catalog/*`], condition: undefined },
      { sid: 'TellMissingFromDenied', effect: 'Allow', actions: ['s3:ListBucket'], resources: [bucket], condition: undefined },
    );
  }
  if (spec.access === 'host-download') {
    list.push({ sid: 'ReadArtifacts', effect: 'Allow', actions: ['s3:GetObject'], resources: [`${bucket}/artifacts/*`], condition: undefined });
  }
  if (vpc) {
    list.push({
      sid: 'ManageVpcNetworkInterfaces',
      effect: 'Allow',
      actions: ['ec2:AssignPrivateIpAddresses', 'ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:UnassignPrivateIpAddresses'],
      resources: ['*'],
      condition: undefined,
    });
  }
  return sortStatements(list);
}

/** Where `Resource: "*"` is allowed: actions without resource-level permissions. */
const STAR_ACTIONS = new Set([
  'ec2:DescribeInstances',
  'ssm:GetCommandInvocation',
  'ssm:CancelCommand',
  'ssm:ListCommandInvocations',
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  // Step Functions' log delivery to CloudWatch Logs.
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
]);
/** Only with VPC placement: the ENI actions Lambda needs (AWSLambdaVPCAccessExecutionRole, inline). */
const VPC_STAR_ACTIONS = new Set([
  'ec2:CreateNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeSubnets',
  'ec2:DeleteNetworkInterface',
  'ec2:AssignPrivateIpAddresses',
  'ec2:UnassignPrivateIpAddresses',
]);

describe('IAM', () => {
  it('gives each step exactly its statements (defaults: SSM, no endpoint, no VPC)', () => {
    const arn = { partition: '<AWS::Partition>', region: '<AWS::Region>', account: '<AWS::AccountId>' };
    for (const spec of STEP_SPECS) {
      const actual = sortStatements(roleStatements(base.template, logicalId(stepOf(base, spec).role)).map(normalize));
      expect(actual, spec.file).toEqual(expectedStatements(base, spec, arn, 'ubuntu'));
    }
  });

  it('adds OpenTunnel on the endpoint (port 22, ≤ 1 h) and the ENI actions with an endpoint and VPC placement', () => {
    const arn = { partition: 'aws', region: TEST_REGION, account: TEST_ACCOUNT };
    for (const spec of STEP_SPECS) {
      const actual = sortStatements(roleStatements(variant.template, logicalId(stepOf(variant, spec).role)).map(normalize));
      expect(actual, spec.file).toEqual(expectedStatements(variant, spec, arn, 'ec2-user', VARIANT_CONTEXT.eicEndpointId, true));
    }
  });

  it('scopes OpenTunnel to the workspace subnets\' CIDRs when they are given', () => {
    const scoped = buildApp({ context: { ...VARIANT_CONTEXT, workspaceCidrs: '10.0.16.0/20, 10.0.32.0/20' }, env: { account: TEST_ACCOUNT, region: TEST_REGION } });
    for (const spec of STEP_SPECS.filter(isHostStep)) {
      const tunnel = roleStatements(scoped.template, logicalId(stepOf(scoped, spec).role)).find((st) => st.Sid === 'TunnelThroughEndpoint');
      expect(tunnel?.Condition, spec.file).toEqual({
        NumericEquals: { 'ec2-instance-connect:remotePort': 22 },
        NumericLessThanEquals: { 'ec2-instance-connect:maxTunnelDuration': 3600 },
        IpAddress: { 'ec2-instance-connect:privateIpAddress': ['10.0.16.0/20', '10.0.32.0/20'] },
      });
    }
  });

  it('only the host steps reach hosts, only Prepare and StageOnHost touch S3', () => {
    for (const spec of STEP_SPECS) {
      const actions = roleStatements(base.template, logicalId(stepOf(base, spec).role)).flatMap(actionsOf);
      const host = actions.some((a) => a.startsWith('ec2-instance-connect:') || a.startsWith('ssm:'));
      expect(host, spec.file).toBe(isHostStep(spec));
      const s3 = actions.some((a) => a.startsWith('s3:'));
      expect(s3, spec.file).toBe(spec.file === 'prepare-install' || spec.file === 'stage-on-host');
    }
  });

  it('has no wildcard actions, and Resource "*" only for actions without resource-level permissions', () => {
    for (const [app, allowed] of [[base, STAR_ACTIONS], [variant, new Set([...STAR_ACTIONS, ...VPC_STAR_ACTIONS])]] as const) {
      const statements = allStatements(app.template);
      expect(statements.length).toBeGreaterThan(0);
      for (const s of statements) {
        expect(s.Effect).toBe('Allow');
        for (const action of actionsOf(s)) expect(action, JSON.stringify(s)).not.toContain('*');
        if (resourcesOf(s).includes('*')) {
          for (const action of actionsOf(s)) expect(allowed.has(action), `${action} on "*"`).toBe(true);
        }
      }
    }
  });

  it('attaches no managed policies', () => {
    for (const role of Object.values(base.template.findResources('AWS::IAM::Role'))) {
      expect((role.Properties as Record<string, unknown>).ManagedPolicyArns).toBeUndefined();
    }
  });

  it('lets each state machine invoke exactly the steps its definition names, and put events on the bus', () => {
    for (const name of WORKFLOWS) {
      const machine = base.stack.stateMachines[name];
      const statements = roleStatements(base.template, logicalId(machine.role));
      const expected = placeholders(workflowText(name))
        .filter((p) => p !== 'EventBusName')
        .map((p) => `<${logicalId(base.stack.steps.forPlaceholder(p)!.fn)}.Arn>`)
        .sort();
      const invoke = statements.filter((s) => actionsOf(s).includes('lambda:InvokeFunction'));
      expect(invoke.flatMap(actionsOf)).toEqual(['lambda:InvokeFunction']);
      expect(invoke.flatMap(resourcesOf).map(flat).sort(), name).toEqual(expected);
      const put = statements.filter((s) => actionsOf(s).includes('events:PutEvents'));
      expect(put.flatMap(resourcesOf).map(flat)).toEqual([`<${logicalId(base.stack.bus)}.Arn>`]);
      // Nothing else but logging and tracing.
      for (const s of statements) {
        for (const action of actionsOf(s)) expect(['lambda:InvokeFunction', 'events:PutEvents'].includes(action) || STAR_ACTIONS.has(action), action).toBe(true);
      }
    }
  });
});

interface Definition {
  States: Record<string, { Type: string; Resource?: string; Parameters?: { Entries?: { Source: string; DetailType: string; EventBusName: string }[] } }>;
}

/** The literal text parts of a DefinitionString (a string, or the strings of an Fn::Join). */
function literalParts(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].flatMap(literalParts);
  return [];
}

describe('state machines', () => {
  const machine = (app: BuiltApp, name: WorkflowName) => {
    const resource = app.template.findResources('AWS::StepFunctions::StateMachine')[logicalId(app.stack.stateMachines[name])];
    return resource!.Properties as {
      StateMachineName: string;
      StateMachineType?: string;
      DefinitionString: unknown;
      DefinitionSubstitutions: Record<string, unknown>;
      LoggingConfiguration: unknown;
      TracingConfiguration: unknown;
    };
  };

  it('are Standard, named <stackName>-<workflow>, log everything but execution data, and trace', () => {
    for (const name of WORKFLOWS) {
      const props = machine(base, name);
      expect(props.StateMachineName).toBe(`WorkspacePluginInstaller-${name}`);
      expect(props.StateMachineType ?? 'STANDARD').toBe('STANDARD');
      expect(props.LoggingConfiguration).toEqual({
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logicalId(base.stack.workflows.logGroup), 'Arn'] } } }],
        IncludeExecutionData: false,
        Level: 'ALL',
      });
      expect(props.TracingConfiguration).toEqual({ Enabled: true });
    }
  });

  it('carry the ASL file inline, every ${…} filled by a DefinitionSubstitution the stack produced', () => {
    for (const name of WORKFLOWS) {
      const props = machine(base, name);
      expect(props.DefinitionString, name).toBe(workflowText(name));
      const used = new Set(literalParts(props.DefinitionString).flatMap((part) => [...part.matchAll(/\$\{([^}]*)\}/g)].map((m) => m[1]!)));
      expect([...used].sort(), name).toEqual(Object.keys(props.DefinitionSubstitutions).sort());
      for (const [key, value] of Object.entries(props.DefinitionSubstitutions)) {
        if (key === 'EventBusName') {
          expect(value).toEqual({ Ref: logicalId(base.stack.bus) });
          continue;
        }
        const step = base.stack.steps.forPlaceholder(key);
        expect(step, `${name}: ${key}`).toBeDefined();
        expect(value).toEqual({ 'Fn::GetAtt': [logicalId(step!.fn), 'Arn'] });
        expect(base.template.findResources('AWS::Lambda::Function')[logicalId(step!.fn)], key).toBeDefined();
      }
    }
  });

  it('reference every step their workflow needs: install, rollback and uninstall', () => {
    const keys = (name: WorkflowName) => Object.keys(machine(base, name).DefinitionSubstitutions).sort();
    expect(keys('install')).toEqual(
      ['AcquireLock', 'EventBusName', 'PrepareInstall', 'ReleaseLock', 'RollBack', 'SnapshotLive', 'StageOnHost', 'SwapIntoPlace', 'VerifyLive', 'WriteMarker']
        .map((k) => (k === 'EventBusName' ? k : `${k}FunctionArn`))
        .sort(),
    );
    expect(keys('rollback')).toEqual(
      ['AcquireLockFunctionArn', 'EventBusName', 'PrepareTargetFunctionArn', 'ReleaseLockFunctionArn', 'RollBackFunctionArn', 'SnapshotLiveFunctionArn', 'StageSnapshotFunctionArn', 'SwapIntoPlaceFunctionArn'].sort(),
    );
    expect(keys('uninstall')).toEqual(
      ['AcquireLockFunctionArn', 'EventBusName', 'PrepareTargetFunctionArn', 'ReleaseLockFunctionArn', 'RemoveLiveFunctionArn', 'RollBackFunctionArn'].sort(),
    );
  });

  it('are valid ASL once CloudFormation has substituted the function ARNs and the bus name', () => {
    for (const name of WORKFLOWS) {
      const props = machine(base, name);
      const arns = new Map<string, string>();
      const rendered = (props.DefinitionString as string).replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, key: string) => {
        const value = props.DefinitionSubstitutions[key] as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
        if (value.Ref) return EVENT_BUS_NAME;
        const arn = `arn:aws:lambda:${TEST_REGION}:${TEST_ACCOUNT}:function:${value['Fn::GetAtt']![0]}`;
        arns.set(arn, key);
        return arn;
      });
      expect(rendered).not.toContain('${');
      const definition = JSON.parse(rendered) as Definition;
      const result = validateAsl(definition, { checkPaths: true, checkArn: true });
      expect(result.errors, name).toEqual([]);
      expect(result.isValid).toBe(true);
      for (const state of Object.values(definition.States)) {
        if (state.Type !== 'Task') continue;
        if (state.Resource === 'arn:aws:states:::events:putEvents') {
          for (const entry of state.Parameters!.Entries!) {
            expect(entry.Source).toBe(EVENT_SOURCE);
            expect(PLUGIN_EVENT_TYPES).toContain(entry.DetailType);
            expect(entry.EventBusName).toBe(EVENT_BUS_NAME);
          }
        } else {
          expect(arns.has(state.Resource!), `${name}: ${state.Resource}`).toBe(true);
        }
      }
    }
  });
});

describe('event bus', () => {
  it('is named <stackName>-events and archives the plugin events and the rollout events', () => {
    base.template.hasResourceProperties('AWS::Events::EventBus', { Name: EVENT_BUS_NAME });
    base.template.hasResourceProperties('AWS::Events::Archive', {
      SourceArn: { 'Fn::GetAtt': [logicalId(base.stack.bus), 'Arn'] },
      EventPattern: { source: [EVENT_SOURCE], 'detail-type': [...PLUGIN_EVENT_TYPES, ...ROLLOUT_EVENT_TYPES] },
      RetentionDays: 30,
    });
  });

  it('knows every event type the workflows and the rollout emit, and nothing else', () => {
    const emitted = new Set(WORKFLOWS.flatMap((name) => [...workflowText(name).matchAll(/"DetailType": "([^"]+)"/g)].map((m) => m[1]!)));
    expect([...emitted].sort()).toEqual([...PLUGIN_EVENT_TYPES].sort());
    const fromRollout = new Set([...definitionText(ROLLOUT_DEFINITION).matchAll(/"DetailType": "([^"]+)"/g)].map((m) => m[1]!));
    expect([...fromRollout].sort()).toEqual([...ROLLOUT_EVENT_TYPES].sort());
    expect([...ARCHIVED_EVENT_TYPES].sort()).toEqual([...emitted, ...fromRollout].sort());
  });
});

describe('alarms', () => {
  it('page on system failures only: a metric filter on the execution log, input errors excluded; no alarm on every failed execution', () => {
    const logGroup = logicalId(base.stack.workflows.logGroup);
    const pattern = systemFailurePattern().logPatternString;
    for (const name of SYSTEM_FAIL_STATES) expect(pattern).toContain(`($.details.name = "${name}")`);
    for (const code of INPUT_ERROR_CODES) expect(pattern).toContain(`($.details.error != "${code}")`);
    // The rollout's verdicts sum up child executions that count (and page) by themselves.
    const rolloutFails = Object.values((JSON.parse(definitionText(ROLLOUT_DEFINITION)) as { States: Record<string, { Type: string; Error?: string }> }).States).filter((st) => st.Type === 'Fail').map((st) => st.Error);
    for (const code of ROLLOUT_VERDICTS) {
      expect(pattern).toContain(`($.details.error != "${code}")`);
      expect(rolloutFails).toContain(code);
    }
    // A plugin whose own health check fails was rolled back as designed: counted, never paged. Its
    // install ends in RolledBackUnhealthy, not in RolledBack.
    expect(PLUGIN_FAULT_CODES).toEqual(['HealthCheckFailed']);
    expect(pattern).toContain('($.details.error != "HealthCheckFailed")');
    expect(SYSTEM_FAIL_STATES).not.toContain('RolledBackUnhealthy');
    expect(pattern).toMatch(/^\{ \(\(\$\.type = "FailStateEntered"\) && .*\) \|\| \(\(\$\.type = "ExecutionFailed"\) && /);
    base.template.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: logGroup },
      FilterPattern: pattern,
      MetricTransformations: [{ MetricNamespace: 'WorkspacePluginInstaller', MetricName: SYSTEM_FAILURES, MetricValue: '1' }],
    });
    base.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'WorkspacePluginInstaller',
      MetricName: SYSTEM_FAILURES,
      Statistic: 'Maximum',
      Threshold: 1,
      AlarmActions: [{ Ref: logicalId(base.stack.alarmTopic) }],
    });
    // Refused input is counted by code (dimension from the log event), never alarmed.
    base.template.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: logGroup },
      MetricTransformations: [{ MetricNamespace: 'WorkspacePluginInstaller', MetricName: FAILURES_BY_CODE, MetricValue: '1', Dimensions: [{ Key: 'ErrorCode', Value: '$.details.error' }] }],
    });
    const alarmed = Object.values(base.template.findResources('AWS::CloudWatch::Alarm')).map((a) => (a.Properties as { MetricName?: string }).MetricName);
    expect(alarmed).not.toContain('ExecutionsFailed');
    expect(alarmed).not.toContain(FAILURES_BY_CODE);
    // The input errors are exactly the refused and busy categories, and every Fail state that only
    // system failures reach exists in some workflow.
    expect(INPUT_ERROR_CODES).toEqual(expect.arrayContaining(['ChecksumMismatch', 'HostileTarball', 'LockBusy', 'WorkspaceNotRunning']));
    expect(INPUT_ERROR_CODES).not.toContain('HostUnreachable');
    const failStates = new Set(WORKFLOWS.flatMap((name) => Object.entries((JSON.parse(workflowText(name)) as { States: Record<string, { Type: string }> }).States).filter(([, st]) => st.Type === 'Fail').map(([n]) => n)));
    for (const name of SYSTEM_FAIL_STATES) expect(failStates.has(name), name).toBe(true);
    // The pattern fits CloudWatch's 1,024-character limit for filter patterns.
    const patterns = Object.values(base.template.findResources('AWS::Logs::MetricFilter')).map((f) => (f.Properties as { FilterPattern: string }).FilterPattern);
    for (const pattern of patterns) expect(pattern.length, pattern).toBeLessThanOrEqual(1024);
  });

  it('subscribe the topic to an e-mail address and an HTTPS endpoint only when asked', () => {
    base.template.resourceCountIs('AWS::SNS::Subscription', 0);
    const subscribed = buildApp({ context: { alarmEmail: 'ops@example.com', alarmHttpsUrl: 'https://hooks.example.com/alarms' } });
    subscribed.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: { Ref: logicalId(subscribed.stack.alarmTopic) } });
    subscribed.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'https', Endpoint: 'https://hooks.example.com/alarms' });
  });

  it('put what operators watch on one dashboard', () => {
    const dashboards = Object.values(base.template.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    const body = flat((dashboards[0]!.Properties as { DashboardBody: unknown }).DashboardBody);
    for (const title of ['Installs', 'Rollbacks', 'Uninstalls', 'Failed executions by error code', 'Step duration p50', 'Step duration p95', 'Step errors by step and code', 'Snapshot sweeper', 'EIC tunnels refused', 'Fleet rollouts: executions', 'Fleet rollouts: halted and failed verdicts', 'Rollout step duration p95']) {
      expect(body, title).toContain(title);
    }
    for (const metric of [SYSTEM_FAILURES, ROLLBACK_FAILED, NOTIFICATIONS_UNDELIVERED, FAILURES_BY_CODE, 'StepErrors', 'SweptBytes', 'SweepHostsFailed', 'ExecutionsSucceeded', 'Duration', 'TunnelRefused']) {
      expect(body, metric).toContain(metric);
    }
    // p50 and p95 of every step Lambda, p95 of every rollout step.
    expect(body.match(/"p95"/g)?.length).toBe(STEP_SPECS.length + ROLLOUT_STEP_SPECS.length);
    // The rollout's executions, and its verdicts by code.
    for (const metric of ['ExecutionsStarted', 'ExecutionsFailed', 'ExecutionsAborted', ...ROLLOUT_VERDICTS]) expect(body, metric).toContain(metric);
    expect(body).toContain(logicalId(base.stack.rollout.stateMachine));
  });

  it('alarm on RollbackFailed through a metric filter on the execution log group', () => {
    const logGroup = logicalId(base.stack.workflows.logGroup);
    base.template.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: logGroup },
      FilterPattern: `{ (($.type = "FailStateEntered") && ($.details.name = "${ROLLBACK_FAILED}")) || (($.type = "ExecutionFailed") && ($.details.error = "${ROLLBACK_FAILED}")) }`,
      MetricTransformations: [{ MetricNamespace: 'WorkspacePluginInstaller', MetricName: ROLLBACK_FAILED, MetricValue: '1' }],
    });
    base.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'WorkspacePluginInstaller',
      MetricName: ROLLBACK_FAILED,
      Statistic: 'Maximum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: logicalId(base.stack.alarmTopic) }],
    });
    // Every workflow's operator-needed end is the state the filter looks for.
    for (const name of WORKFLOWS) {
      const states = (JSON.parse(workflowText(name)) as { States: Record<string, { Type: string; Error?: string }> }).States;
      expect(states[ROLLBACK_FAILED], name).toEqual(expect.objectContaining({ Type: 'Fail', Error: ROLLBACK_FAILED }));
    }
  });

  it('alarm on notifications that could not be delivered, through a metric filter on the states every Notify Catch leads to', () => {
    base.template.hasResourceProperties('AWS::Logs::MetricFilter', {
      LogGroupName: { Ref: logicalId(base.stack.workflows.logGroup) },
      FilterPattern: `{ ($.type = "PassStateEntered") && ($.details.name = "${UNDELIVERED_STATE_PREFIX}*") }`,
      MetricTransformations: [{ MetricNamespace: 'WorkspacePluginInstaller', MetricName: NOTIFICATIONS_UNDELIVERED, MetricValue: '1' }],
    });
    base.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'WorkspacePluginInstaller',
      MetricName: NOTIFICATIONS_UNDELIVERED,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: logicalId(base.stack.alarmTopic) }],
    });
    // Every Notify state is caught, into a Pass state the filter matches, which goes on to where
    // the Notify state would have: the outcome does not change. The rollout's too: it logs to the
    // same group (test/infra/rollout.test.ts).
    for (const name of [...WORKFLOWS, ROLLOUT_DEFINITION]) {
      const states = (JSON.parse(definitionText(name)) as { States: Record<string, { Type: string; Resource?: string; Next?: string; Catch?: { ErrorEquals: string[]; Next: string }[] }> }).States;
      for (const [stateName, state] of Object.entries(states)) {
        if (state.Resource !== 'arn:aws:states:::events:putEvents') continue;
        expect(state.Catch, `${name}.${stateName}`).toHaveLength(1);
        const caught = state.Catch![0]!;
        expect(caught.ErrorEquals).toEqual(['States.ALL']);
        expect(caught.Next.startsWith(UNDELIVERED_STATE_PREFIX), caught.Next).toBe(true);
        expect(states[caught.Next]).toMatchObject({ Type: 'Pass', Next: state.Next });
      }
    }
  });

  it('encrypt the topic with a rotated key CloudWatch may use, and refuse plain HTTP', () => {
    const key = logicalId(base.stack.alarms.key);
    base.template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey*'] }),
        ]),
      },
    });
    base.template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: { 'Fn::GetAtt': [key, 'Arn'] } });
    base.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Effect: 'Allow', Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: 'sns:Publish' }),
        ]),
      },
    });
  });
});

describe('cdk-nag (AwsSolutions)', () => {
  it('reports no unacknowledged error or warning', () => {
    for (const app of [base, variant]) {
      const report = new AwsSolutionsChecks().validateScope(app.app);
      expect(report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
      expect(report.success).toBe(true);
    }
  });

  it('is wired into synthesis: the app fails to synthesize on a finding', () => {
    const { app, stack } = buildInstallerApp({ context: { ...cdkJson().context, 'aws:cdk:bundling-stacks': [] } }, {});
    // A wildcard action nobody acknowledged.
    stack.steps.steps[0]!.role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:Get*'], resources: [stack.bucket.arnForObjects('x')] }));
    expect(() => app.synth()).toThrow(/AwsSolutions-IAM5\[Action::s3:Get\*\]/);
  });

  it('every acknowledgement carries a written reason', () => {
    for (const app of [base, variant]) {
      const acks = acknowledgements(app.app);
      expect(acks.length).toBeGreaterThan(0);
      for (const ack of acks) {
        expect(ack.reason.trim().length, `${ack.id} on ${ack.path}`).toBeGreaterThanOrEqual(MIN_REASON_LENGTH);
      }
    }
  });

  it.each([
    ['defaults', {}, {}],
    ['VPC + endpoint + account', VARIANT_CONTEXT, { CDK_DEFAULT_ACCOUNT: TEST_ACCOUNT, CDK_DEFAULT_REGION: TEST_REGION }],
  ] as const)('acknowledges only findings that exist (%s): nothing stale, nothing blanket', (_, context, env) => {
    const props = { context: { ...cdkJson().context, ...context, 'aws:cdk:bundling-stacks': [] } };
    const acks = acknowledgements(buildInstallerApp(props, env).app).filter((a) => a.id.startsWith('AwsSolutions-'));
    expect(acks.length).toBeGreaterThan(0);
    // The same app, built without acknowledgements: what cdk-nag finds.
    vi.spyOn(Validations.prototype, 'acknowledge').mockImplementation(() => undefined);
    const { app } = buildInstallerApp(props, env);
    const raw = new AwsSolutionsChecks().validateScope(app).violations.flatMap((v) => v.violatingResources.map((r) => ({ id: v.ruleName, path: r.constructPath ?? '' })));
    const covers = (a: Acknowledgement, f: { id: string; path: string }) => a.id === f.id && (f.path === a.path || f.path.startsWith(`${a.path}/`));
    for (const ack of acks) {
      expect(raw.some((f) => covers(ack, f)), `${ack.id} on ${ack.path} matches no finding`).toBe(true);
    }
    for (const finding of raw) {
      expect(acks.some((a) => covers(a, finding)), `${finding.id} on ${finding.path}`).toBe(true);
    }
  });
});
