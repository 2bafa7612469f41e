/**
 * The fleet rollout on AWS, built in-process: the state machine `<stackName>-rollout` carries
 * statemachine/rollout.asl.json byte for byte with every placeholder filled by the stack, its role
 * has exactly the statements docs/workflows.md lists, and each rollout step Lambda's role has
 * exactly what its step touches (S3 only on rollouts/*, rollout-locks/* and, for PlanRollout,
 * Prepare's uploads/*, artifacts/* and catalog/*). Two stacks: the defaults, and one with VPC placement, an
 * EIC endpoint and an account/region (ARNs literal).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { awsDeps, defaultAwsClients } from '../../lambdas/commons/aws-deps.ts';
import { S3RolloutStore } from '../../lambdas/core/rollout/s3-rollout-store.ts';
import { CHILD_STATE_MACHINES, definitionText, placeholders, ROLLOUT_DEFINITION, WORKFLOWS } from '../../lambdas/core/workflow/workflow-files.ts';
import { ROLLOUT_STEP_BY_PLACEHOLDER } from '../../lambdas/handlers/all-steps.ts';
import { EVENT_SOURCE } from '../../infra/constructs/event-bus.ts';
import { ROLLOUT_STEP_SPECS, type RolloutStepSpec } from '../../infra/constructs/rollout-steps.ts';
import { SYNC_EVENTS_RULE } from '../../infra/constructs/rollout-workflow.ts';
import { rolloutHostTimeoutMs, stepPlaceholder } from '../../infra/constructs/step-functions.ts';
import { ROLLOUT_EVENT_TYPES } from '../../lambdas/core/events/event-sink.ts';
import { acknowledgements, actionsOf, buildApp, type BuiltApp, flat, logicalId, normalize, resourcesOf, roleStatements, ROOT, sortStatements, SYNTH_HOOK_TIMEOUT_MS, TEST_ACCOUNT, TEST_REGION, VARIANT_CONTEXT, validateAsl } from './infra-helpers.ts';


const STACK = 'WorkspacePluginInstaller';

let base: BuiltApp;
let variant: BuiltApp;

// Synthesizing takes seconds idle and minutes on a loaded 2-core machine: a timeout, not a speed check.
beforeAll(() => {
  base = buildApp();
  variant = buildApp({ context: VARIANT_CONTEXT, env: { account: TEST_ACCOUNT, region: TEST_REGION } });
}, SYNTH_HOOK_TIMEOUT_MS);

interface ArnParts {
  partition: string;
  region: string;
  account: string;
}
const TOKENS: ArnParts = { partition: '<AWS::Partition>', region: '<AWS::Region>', account: '<AWS::AccountId>' };
const LITERAL: ArnParts = { partition: 'aws', region: TEST_REGION, account: TEST_ACCOUNT };

function machineProps(app: BuiltApp) {
  const resource = app.template.findResources('AWS::StepFunctions::StateMachine')[logicalId(app.stack.rollout.stateMachine)];
  expect(resource).toBeDefined();
  return resource!.Properties as {
    StateMachineName: string;
    StateMachineType?: string;
    DefinitionString: unknown;
    DefinitionSubstitutions: Record<string, unknown>;
    LoggingConfiguration: unknown;
    TracingConfiguration: unknown;
  };
}

function rolloutStep(app: BuiltApp, spec: RolloutStepSpec) {
  const step = app.stack.steps.rolloutSteps.find((s) => s.placeholder === stepPlaceholder(spec.file));
  if (!step) throw new Error(`no rollout step for ${spec.file}`);
  return step;
}

describe('rollout state machine', () => {
  it('is Standard, named <stackName>-rollout, logs to the workflows\' execution log group (no execution data) and traces', () => {
    for (const app of [base, variant]) {
      const props = machineProps(app);
      expect(props.StateMachineName).toBe(`${STACK}-rollout`);
      expect(app.stack.rollout.stateMachineName).toBe(`${STACK}-rollout`);
      expect(props.StateMachineType ?? 'STANDARD').toBe('STANDARD');
      expect(props.LoggingConfiguration).toEqual({
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logicalId(app.stack.workflows.logGroup), 'Arn'] } } }],
        IncludeExecutionData: false,
        Level: 'ALL',
      });
      expect(props.TracingConfiguration).toEqual({ Enabled: true });
    }
  });

  it('carries statemachine/rollout.asl.json byte for byte, every placeholder filled by the stack', () => {
    const props = machineProps(base);
    expect(props.DefinitionString).toBe(definitionText(ROLLOUT_DEFINITION));
    const used = placeholders(definitionText(ROLLOUT_DEFINITION)).sort();
    expect(Object.keys(props.DefinitionSubstitutions).sort()).toEqual(used);
    // Six steps, three child workflows, the bus; no self-reference ($$.StateMachine.Id instead).
    expect(used).toEqual([
      'EventBusName', 'FinishRolloutFunctionArn', 'InstallStateMachineArn', 'LoadRolloutFunctionArn', 'NextWaveFunctionArn', 'PlanRolloutFunctionArn',
      'RecordWaveFunctionArn', 'RollbackStateMachineArn', 'SummarizeTargetFailureFunctionArn', 'UninstallStateMachineArn',
    ]);
    for (const [key, value] of Object.entries(props.DefinitionSubstitutions)) {
      if (key === 'EventBusName') expect(value).toEqual({ Ref: logicalId(base.stack.bus) });
      else if (CHILD_STATE_MACHINES[key]) expect(value, key).toEqual({ Ref: logicalId(base.stack.stateMachines[CHILD_STATE_MACHINES[key]!]) });
      else {
        const step = base.stack.steps.rolloutSteps.find((s) => s.placeholder === key);
        expect(step, key).toBeDefined();
        expect(value, key).toEqual({ 'Fn::GetAtt': [logicalId(step!.fn), 'Arn'] });
      }
    }
    expect(definitionText(ROLLOUT_DEFINITION)).toContain('"StateMachineArn.$": "$$.StateMachine.Id"');
  });

  it('is valid ASL once CloudFormation has substituted the ARNs and the bus name; every Task is a rollout step, a child workflow or the bus', () => {
    const props = machineProps(base);
    const arns = new Set<string>();
    const rendered = (props.DefinitionString as string).replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, key: string) => {
      if (key === 'EventBusName') return `${STACK}-events`;
      const value = props.DefinitionSubstitutions[key] as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
      const arn = value.Ref
        ? `arn:aws:states:${TEST_REGION}:${TEST_ACCOUNT}:stateMachine:${value.Ref}`
        : `arn:aws:lambda:${TEST_REGION}:${TEST_ACCOUNT}:function:${value['Fn::GetAtt']![0]}`;
      arns.add(arn);
      return arn;
    });
    expect(rendered).not.toContain('${');
    const definition = JSON.parse(rendered) as { States: Record<string, RolloutState> };
    const result = validateAsl(definition, { checkPaths: true, checkArn: true });
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
    type RolloutState = { Type: string; Resource?: string; Parameters?: { StateMachineArn?: string; Entries?: { Source: string; DetailType: string; EventBusName: string }[] }; ItemProcessor?: { States: Record<string, RolloutState> } };
    const all = Object.values(definition.States).flatMap((s) => [s, ...Object.values(s.ItemProcessor?.States ?? {})]);
    const kinds = new Set<string>();
    for (const state of all.filter((s) => s.Type === 'Task')) {
      if (state.Resource === 'arn:aws:states:::events:putEvents') {
        kinds.add('events');
        for (const entry of state.Parameters!.Entries!) {
          expect(entry.Source).toBe(EVENT_SOURCE);
          expect(ROLLOUT_EVENT_TYPES).toContain(entry.DetailType);
          expect(entry.EventBusName).toBe(`${STACK}-events`);
        }
      } else if (state.Resource === 'arn:aws:states:::states:startExecution.sync:2') {
        kinds.add('child');
        expect(arns.has(state.Parameters!.StateMachineArn!), state.Parameters!.StateMachineArn).toBe(true);
      } else if (state.Resource === 'arn:aws:states:::states:startExecution') {
        kinds.add('continue-as-new');
      } else {
        kinds.add('lambda');
        expect(arns.has(state.Resource!), state.Resource).toBe(true);
      }
    }
    expect([...kinds].sort()).toEqual(['child', 'continue-as-new', 'events', 'lambda']);
  });

  function expectedRoleStatements(app: BuiltApp, arn: ArnParts) {
    const own = `arn:${arn.partition}:states:${arn.region}:${arn.account}:stateMachine:${STACK}-rollout`;
    return sortStatements([
      {
        sid: '',
        effect: 'Allow',
        actions: ['logs:CreateLogDelivery', 'logs:DeleteLogDelivery', 'logs:DescribeLogGroups', 'logs:DescribeResourcePolicies', 'logs:GetLogDelivery', 'logs:ListLogDeliveries', 'logs:PutResourcePolicy', 'logs:UpdateLogDelivery', 'xray:GetSamplingRules', 'xray:GetSamplingTargets', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
        resources: ['*'],
        condition: undefined,
      },
      { sid: 'InvokeRolloutSteps', effect: 'Allow', actions: ['lambda:InvokeFunction'], resources: app.stack.steps.rolloutSteps.map((s) => `<${logicalId(s.fn)}.Arn>`).sort(), condition: undefined },
      { sid: 'NotifyOnBus', effect: 'Allow', actions: ['events:PutEvents'], resources: [`<${logicalId(app.stack.bus)}.Arn>`], condition: undefined },
      {
        sid: 'StartChildWorkflows',
        effect: 'Allow',
        actions: ['states:StartExecution'],
        resources: [...WORKFLOWS.map((w) => `<${logicalId(app.stack.stateMachines[w])}>`), own].sort(),
        condition: undefined,
      },
      {
        sid: 'FollowChildWorkflows',
        effect: 'Allow',
        actions: ['states:DescribeExecution', 'states:StopExecution'],
        resources: WORKFLOWS.map((w) => `arn:${arn.partition}:states:${arn.region}:${arn.account}:execution:${STACK}-${w}:*`).sort(),
        condition: undefined,
      },
      {
        sid: 'SyncCompletionRule',
        effect: 'Allow',
        actions: ['events:DescribeRule', 'events:PutRule', 'events:PutTargets'],
        resources: [`arn:${arn.partition}:events:${arn.region}:${arn.account}:rule/${SYNC_EVENTS_RULE}`],
        condition: undefined,
      },
    ]);
  }

  it('its role has exactly: invoke the rollout steps, put events on the bus, start the three workflows and itself, follow and stop their executions, the .sync rule', () => {
    for (const [app, arn] of [[base, TOKENS], [variant, LITERAL]] as const) {
      const actual = sortStatements(roleStatements(app.template, logicalId(app.stack.rollout.stateMachine.role)).map(normalize));
      expect(actual).toEqual(expectedRoleStatements(app, arn));
      // No wildcard action; StartExecution on exactly the three child machines and the rollout itself.
      const statements = roleStatements(app.template, logicalId(app.stack.rollout.stateMachine.role));
      for (const action of statements.flatMap(actionsOf)) expect(action).not.toContain('*');
      const start = statements.filter((s) => actionsOf(s).includes('states:StartExecution'));
      expect(start).toHaveLength(1);
      expect(resourcesOf(start[0]!).map(flat)).toHaveLength(4);
    }
  });

  it('acknowledges the execution wildcards of its three children, one reason each, and nothing else of its own', () => {
    const path = base.stack.rollout.stateMachine.role.node.path;
    const acks = acknowledgements(base.app).filter((a) => a.path === path || a.path.startsWith(`${path}/`));
    expect(acks.map((a) => a.id).sort()).toEqual([
      'AwsSolutions-IAM5[Resource::*]',
      ...WORKFLOWS.map((w) => `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${STACK}-${w}:*]`),
    ].sort());
  });
});

/** What each rollout step's role must hold (besides logs and X-Ray), by its spec. */
function expectedStepStatements(app: BuiltApp, spec: RolloutStepSpec, arn: ArnParts, vpc: boolean) {
  const step = rolloutStep(app, spec);
  const bucket = `<${logicalId(app.stack.bucket)}.Arn>`;
  const instances = `arn:${arn.partition}:ec2:${arn.region}:${arn.account}:instance/*`;
  const list: ReturnType<typeof normalize>[] = [
    { sid: 'WriteOwnLogs', effect: 'Allow', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [`<${logicalId(step.logGroup)}.Arn>`], condition: undefined },
    { sid: '', effect: 'Allow', actions: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'], resources: ['*'], condition: undefined },
  ];
  const file = spec.file.replace('rollout/', '');
  const docs = (actions: string[]) => ({ sid: 'RolloutDocuments', effect: 'Allow', actions, resources: [`${bucket}/rollouts/*`], condition: undefined });
  const locks = (actions: string[]) => ({ sid: 'RolloutLocks', effect: 'Allow', actions, resources: [`${bucket}/rollout-locks/*`], condition: undefined });
  const listBucket = { sid: 'TellMissingFromDenied', effect: 'Allow', actions: ['s3:ListBucket'], resources: [bucket], condition: undefined };
  const lookup = { sid: 'LookUpWorkspaces', effect: 'Allow', actions: ['ec2:DescribeInstances'], resources: ['*'], condition: undefined };
  switch (file) {
    case 'plan-rollout':
      list.push(
        lookup,
        { sid: 'StreamUploads', effect: 'Allow', actions: ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:PutObject'], resources: [`${bucket}/uploads/*`], condition: undefined },
        { sid: 'CommitArtifacts', effect: 'Allow', actions: ['s3:GetObject', 's3:PutObject'], resources: [`${bucket}/artifacts/*`], condition: undefined },
        { sid: 'ReadCatalog', effect: 'Allow', actions: ['s3:GetObject'], resources: [`${bucket}/catalog/*`], condition: undefined },
        listBucket,
        docs(['s3:GetObject', 's3:PutObject']),
        locks(['s3:GetObject', 's3:PutObject']),
      );
      break;
    case 'load-rollout':
      list.push(docs(['s3:GetObject', 's3:PutObject']), locks(['s3:GetObject', 's3:PutObject']), listBucket);
      break;
    case 'next-wave':
      list.push(
        lookup,
        docs(['s3:GetObject', 's3:PutObject']),
        locks(['s3:GetObject', 's3:PutObject']),
        listBucket,
        {
          sid: 'PushEphemeralSshKey',
          effect: 'Allow',
          actions: ['ec2-instance-connect:SendSSHPublicKey'],
          resources: [instances],
          condition: { StringEquals: { 'ec2:osuser': app === base ? 'ubuntu' : 'ec2-user' }, Null: { 'aws:ResourceTag/WorkspaceId': 'false' } },
        },
        { sid: 'PluginHostDocument', effect: 'Allow', actions: ['ssm:SendCommand'], resources: [`arn:${arn.partition}:ssm:${arn.region}:${arn.account}:document/${app.stack.hostDocument.documentName}`], condition: undefined },
        { sid: 'RunOnWorkspaceInstances', effect: 'Allow', actions: ['ssm:SendCommand'], resources: [instances], condition: { Null: { 'ssm:resourceTag/WorkspaceId': 'false' } } },
        { sid: 'FollowCommands', effect: 'Allow', actions: ['ssm:CancelCommand', 'ssm:GetCommandInvocation', 'ssm:ListCommandInvocations'], resources: ['*'], condition: undefined },
      );
      if (app === variant) {
        list.push({
          sid: 'TunnelThroughEndpoint',
          effect: 'Allow',
          actions: ['ec2-instance-connect:OpenTunnel'],
          resources: [`arn:${arn.partition}:ec2:${arn.region}:${arn.account}:instance-connect-endpoint/${VARIANT_CONTEXT.eicEndpointId}`],
          condition: { NumericEquals: { 'ec2-instance-connect:remotePort': 22 }, NumericLessThanEquals: { 'ec2-instance-connect:maxTunnelDuration': 3600 } },
        });
      }
      break;
    case 'record-wave':
      list.push(docs(['s3:GetObject', 's3:PutObject']), listBucket);
      break;
    case 'finish-rollout':
      list.push(docs(['s3:GetObject', 's3:PutObject']), locks(['s3:DeleteObject', 's3:GetObject']), listBucket);
      break;
    case 'summarize-target-failure':
      break;
    default:
      throw new Error(`no expectation for ${spec.file}`);
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

describe('rollout step Lambdas', () => {
  it('are exactly the handlers in lambdas/handlers/rollout/, each exporting `handler` and the step of its placeholder', async () => {
    const files = readdirSync(join(ROOT, 'lambdas/handlers/rollout')).filter((f) => f.endsWith('.ts')).map((f) => `rollout/${f.replace(/\.ts$/, '')}`).sort();
    expect(ROLLOUT_STEP_SPECS.map((s) => s.file).sort()).toEqual(files);
    expect(ROLLOUT_STEP_SPECS.map((s) => stepPlaceholder(s.file)).sort()).toEqual([...ROLLOUT_STEP_BY_PLACEHOLDER.keys()].sort());
    for (const spec of ROLLOUT_STEP_SPECS) {
      const mod = (await import(join(ROOT, 'lambdas/handlers', `${spec.file}.ts`))) as { handler?: unknown; step?: { placeholder: string } };
      expect(typeof mod.handler, spec.file).toBe('function');
      expect(mod.step?.placeholder, spec.file).toBe(stepPlaceholder(spec.file));
    }
    expect(base.stack.rollout.steps.map((s) => s.placeholder).sort()).toEqual(ROLLOUT_STEP_SPECS.map((s) => stepPlaceholder(s.file)).sort());
  });

  it('run nodejs22.x on arm64 with tracing, their own log group and role, the steps\' environment (NextWave: its per-listing host budget) and placement', () => {
    for (const app of [base, variant]) {
      const functions = app.template.findResources('AWS::Lambda::Function');
      const stepEnv = (functions[logicalId(app.stack.steps.forPlaceholder('PrepareTargetFunctionArn')!.fn)]!.Properties as { Environment: { Variables: Record<string, unknown> } }).Environment.Variables;
      for (const spec of ROLLOUT_STEP_SPECS) {
        const step = rolloutStep(app, spec);
        const props = functions[logicalId(step.fn)]!.Properties as Record<string, unknown> & { Environment: { Variables: Record<string, unknown> } };
        expect(props.Runtime).toBe('nodejs22.x');
        expect(props.Architectures).toEqual(['arm64']);
        expect(props.Handler).toBe('index.handler');
        expect(props.TracingConfig).toEqual({ Mode: 'Active' });
        expect(props.LoggingConfig).toEqual({ LogGroup: { Ref: logicalId(step.logGroup) } });
        expect(props.Role).toEqual({ 'Fn::GetAtt': [logicalId(step.role), 'Arn'] });
        expect(props.Timeout, spec.file).toBe(spec.timeout.toSeconds());
        expect(props.MemorySize, spec.file).toBe(spec.file === 'rollout/plan-rollout' ? 512 : 256);
        expect(props.Description).toContain(`lambdas/handlers/${spec.file}.ts`);
        expect(props.Environment.Variables, spec.file).toEqual({ ...stepEnv, ...(spec.host ? { HOST_STEP_TIMEOUT_MS: String(rolloutHostTimeoutMs(spec)) } : {}) });
        expect(props.VpcConfig, spec.file).toEqual(app === variant ? { SubnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'], SecurityGroupIds: ['sg-0123456789abcdef0'] } : undefined);
      }
    }
    // 285 s of host budget shared by 25 rounds of 8 listings: 11.4 s per listing.
    expect(rolloutHostTimeoutMs(ROLLOUT_STEP_SPECS.find((s) => s.host)!)).toBe(11_400);
  });

  it('the AWS composition root gives them the S3 rollout store on the artifact bucket', () => {
    const fn = base.template.findResources('AWS::Lambda::Function')[logicalId(rolloutStep(base, ROLLOUT_STEP_SPECS[0]!).fn)]!;
    const variables = (fn.Properties as { Environment: { Variables: Record<string, unknown> } }).Environment.Variables;
    const env = Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, typeof v === 'string' ? v : 'artifact-bucket']));
    const deps = awsDeps(env, defaultAwsClients());
    expect(deps.rollouts).toBeInstanceOf(S3RolloutStore);
    expect((deps.rollouts as S3RolloutStore).bucket).toBe('artifact-bucket');
  });

  it('each role holds exactly what its step touches (defaults; VPC + endpoint + account)', () => {
    for (const [app, arn, vpc] of [[base, TOKENS, false], [variant, LITERAL, true]] as const) {
      for (const spec of ROLLOUT_STEP_SPECS) {
        const actual = sortStatements(roleStatements(app.template, logicalId(rolloutStep(app, spec).role)).map(normalize));
        expect(actual, spec.file).toEqual(expectedStepStatements(app, spec, arn, vpc));
      }
    }
  });

  it('S3 only on rollouts/* and rollout-locks/* (PlanRollout also Prepare\'s uploads/*, artifacts/* and catalog/*); only NextWave reaches hosts; no wildcard action', () => {
    const bucket = `<${logicalId(base.stack.bucket)}.Arn>`;
    for (const spec of ROLLOUT_STEP_SPECS) {
      const statements = roleStatements(base.template, logicalId(rolloutStep(base, spec).role));
      const actions = statements.flatMap(actionsOf);
      for (const action of actions) expect(action, spec.file).not.toContain('*');
      const s3Resources = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:'))).flatMap((s) => resourcesOf(s).map(flat));
      const allowed = [`${bucket}/rollouts/*`, `${bucket}/rollout-locks/*`, bucket, ...(spec.storesSource ? [`${bucket}/uploads/*`, `${bucket}/artifacts/*`, `${bucket}/catalog/*`] : [])];
      for (const resource of s3Resources) expect(allowed, `${spec.file}: ${resource}`).toContain(resource);
      const host = actions.some((a) => a.startsWith('ec2-instance-connect:') || a.startsWith('ssm:'));
      expect(host, spec.file).toBe(spec.file === 'rollout/next-wave');
      // Only FinishRollout deletes, and only a lock (releasing it).
      const deletes = statements.filter((s) => actionsOf(s).includes('s3:DeleteObject')).flatMap((s) => resourcesOf(s).map(flat));
      const expectedDeletes = spec.file === 'rollout/finish-rollout' ? [`${bucket}/rollout-locks/*`] : spec.storesSource ? [`${bucket}/uploads/*`] : [];
      expect(deletes, spec.file).toEqual(expectedDeletes);
    }
  });
});
