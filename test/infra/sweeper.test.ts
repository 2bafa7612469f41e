/**
 * The snapshot sweeper in the stack: the EventBridge schedule (default and from context) starting
 * the sweep state machine (statemachine/sweep.asl.json, its one placeholder the sweeper function)
 * with a role that may start exactly that machine, the machine's role that may invoke exactly the
 * sweeper, the function (runtime, architecture, timeout, environment the handler reads), its IAM
 * exactly (SendCommand on the document and on tagged instances, ListCommandInvocations and
 * DescribeInstances on "*"; no S3, no EC2 Instance Connect, no wildcard actions), the two alarms,
 * and cdk-nag.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TARGETS } from '../../lambdas/core/sweep/fleet-sweep.ts';
import { sweeperSettingsFromEnv } from '../../lambdas/handlers/sweeper.ts';
import { MIN_REASON_LENGTH } from '../../infra/constructs/nag.ts';
import { NODE_RUNTIME_REASON, WORKSPACE_TAG } from '../../infra/constructs/step-functions.ts';
import { SWEEP_HOSTS_FAILED, SWEEPER_TIMEOUT } from '../../infra/constructs/snapshot-sweeper.ts';
import { TASK_TIMEOUT_MARGIN_SECONDS } from '../../infra/constructs/step-functions.ts';
import { sweepDefinitionText } from '../../lambdas/core/workflow/workflow-files.ts';
import { acknowledgements, actionsOf, buildApp, type BuiltApp, flat, logicalId, normalize, resourcesOf, roleStatements, ROOT, sortStatements, TEST_ACCOUNT, TEST_REGION, SYNTH_HOOK_TIMEOUT_MS } from './infra-helpers.ts';

const CUSTOM = { sweepSchedule: 'cron(0 3 * * ? *)', sweepOlderThanDays: '30', sweepKeep: 2 };
const VPC = {
  vpcId: 'vpc-0123456789abcdef0',
  subnetIds: 'subnet-0123456789abcdef0',
  securityGroupId: 'sg-0123456789abcdef0',
  eicEndpointId: 'eice-0123456789abcdef0',
  eicEndpointDns: 'eice-0123456789abcdef0.1a2b3c4d.ec2-instance-connect-endpoint.us-east-1.amazonaws.com',
  defaultTransport: 'eic',
};

let base: BuiltApp;
let custom: BuiltApp;

// Synthesizing takes seconds on an idle machine and minutes on a loaded 2-core one (CI shares
// its machine): a timeout, not a speed check.
beforeAll(() => {
  base = buildApp();
  custom = buildApp({ context: { ...CUSTOM, ...VPC }, env: { account: TEST_ACCOUNT, region: TEST_REGION } });
}, SYNTH_HOOK_TIMEOUT_MS);

function fnProps(app: BuiltApp): Record<string, unknown> {
  const fn = app.template.findResources('AWS::Lambda::Function')[logicalId(app.stack.sweeper.fn)];
  expect(fn).toBeDefined();
  return fn!.Properties as Record<string, unknown>;
}

function envOf(app: BuiltApp): Record<string, string> {
  return (fnProps(app).Environment as { Variables: Record<string, string> }).Variables;
}

describe('sweep schedule', () => {
  it('is an EventBridge rule on rate(1 day) by default', () => {
    base.template.resourceCountIs('AWS::Events::Rule', 1);
    base.template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 day)', State: 'ENABLED' });
  });

  it('takes sweepSchedule from context', () => {
    custom.template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 3 * * ? *)' });
    const hourly = buildApp({ context: { sweepSchedule: 'rate(12 hours)' } });
    hourly.template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(12 hours)' });
  });

  it('refuses a bad schedule before building anything', () => {
    expect(() => buildApp({ context: { sweepSchedule: 'every day' } })).toThrow(/sweepSchedule/);
    expect(() => buildApp({ context: { sweepSchedule: 'rate(5 minutes)' } })).toThrow(/sweepSchedule/);
  });

  it('starts the sweep state machine (the scheduled event as its input) with a role that may start exactly that machine; nothing invokes the function directly', () => {
    for (const app of [base, custom]) {
      const smId = logicalId(app.stack.sweeper.stateMachine);
      const ruleId = logicalId(app.stack.sweeper.rule);
      const rule = app.template.findResources('AWS::Events::Rule')[ruleId]!;
      const ruleTargets = (rule.Properties as { Targets: { Arn: unknown; Input?: unknown; RoleArn?: { 'Fn::GetAtt': [string, string] } }[] }).Targets;
      expect(ruleTargets).toHaveLength(1);
      expect(ruleTargets[0]!.Arn).toEqual({ Ref: smId });
      // The scheduled event itself is the input (StartSweep reads detail.dryRun; a schedule's detail is {}).
      expect(ruleTargets[0]!.Input).toBeUndefined();
      const eventsRole = ruleTargets[0]!.RoleArn!['Fn::GetAtt'][0];
      const role = app.template.findResources('AWS::IAM::Role')[eventsRole]!;
      expect(JSON.stringify((role.Properties as { AssumeRolePolicyDocument: unknown }).AssumeRolePolicyDocument)).toContain('events.amazonaws.com');
      expect(roleStatements(app.template, eventsRole).map(normalize)).toEqual([{ sid: '', effect: 'Allow', actions: ['states:StartExecution'], resources: [`<${smId}>`], condition: undefined }]);
      // The old direct invocation is gone: no permission lets EventBridge invoke the sweeper.
      const fnId = logicalId(app.stack.sweeper.fn);
      const permissions = Object.values(app.template.findResources('AWS::Lambda::Permission')).filter((p) => JSON.stringify(p.Properties).includes(fnId));
      expect(permissions).toEqual([]);
    }
  });
});

describe('sweep state machine', () => {
  function smProps(app: BuiltApp): Record<string, unknown> {
    return app.template.findResources('AWS::StepFunctions::StateMachine')[logicalId(app.stack.sweeper.stateMachine)]!.Properties as Record<string, unknown>;
  }

  it('is Standard, named <stackName>-sweep, statemachine/sweep.asl.json inline with its one placeholder the sweeper function', () => {
    const props = smProps(base);
    expect(props.StateMachineName).toBe('WorkspacePluginInstaller-sweep');
    expect(props.StateMachineType ?? 'STANDARD').toBe('STANDARD');
    expect(props.DefinitionString).toBe(sweepDefinitionText());
    expect(props.DefinitionSubstitutions).toEqual({ SweeperFunctionArn: { 'Fn::GetAtt': [logicalId(base.stack.sweeper.fn), 'Arn'] } });
    expect(props.TracingConfiguration).toEqual({ Enabled: true });
    expect(props.LoggingConfiguration).toEqual({
      Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logicalId(base.stack.sweeper.executionLogs), 'Arn'] } } }],
      IncludeExecutionData: false,
      Level: 'ALL',
    });
    // Its own execution log group: the workflows' metric filters (SystemFailures, …) never see a sweep.
    expect(logicalId(base.stack.sweeper.executionLogs)).not.toBe(logicalId(base.stack.workflows.logGroup));
    base.template.hasOutput('SweepStateMachineArn', { Value: { Ref: logicalId(base.stack.sweeper.stateMachine) } });
  });

  it('its role may invoke exactly the sweeper, besides logging and tracing', () => {
    const statements = roleStatements(base.template, logicalId(base.stack.sweeper.stateMachine.role));
    const invoke = statements.filter((st) => actionsOf(st).includes('lambda:InvokeFunction'));
    expect(invoke.flatMap(actionsOf)).toEqual(['lambda:InvokeFunction']);
    expect(invoke.flatMap(resourcesOf).map(flat)).toEqual([`<${logicalId(base.stack.sweeper.fn)}.Arn>`]);
    for (const st of statements) {
      for (const action of actionsOf(st)) expect(action === 'lambda:InvokeFunction' || /^(logs|xray):/.test(action), action).toBe(true);
    }
  });

  it('waits longer for each Task than the function may run, and the function runs far less than Lambda allows', () => {
    const states = (JSON.parse(sweepDefinitionText()) as { States: Record<string, { Type: string; TimeoutSeconds?: number }> }).States;
    const tasks = Object.entries(states).filter(([, st]) => st.Type === 'Task');
    expect(tasks.map(([n]) => n)).toEqual(['StartSweep', 'CheckSweep', 'ReportSweep']);
    for (const [name, st] of tasks) expect(st.TimeoutSeconds, name).toBe(SWEEPER_TIMEOUT.toSeconds() + TASK_TIMEOUT_MARGIN_SECONDS);
    expect(SWEEPER_TIMEOUT.toSeconds()).toBeLessThanOrEqual(300);
  });
});

describe('sweeper function', () => {
  it('runs lambdas/handlers/sweeper.ts on nodejs22.x/arm64 for 2 minutes (each invocation a bounded step), traced, with its own role and log group', () => {
    for (const app of [base, custom]) {
      const { sweeper } = app.stack;
      const props = fnProps(app);
      expect(props.Runtime).toBe('nodejs22.x');
      expect(props.Architectures).toEqual(['arm64']);
      expect(props.Handler).toBe('index.handler');
      expect(props.Timeout).toBe(120);
      expect(props.MemorySize as number).toBeGreaterThanOrEqual(256);
      expect(props.MemorySize as number).toBeLessThanOrEqual(512);
      expect(props.TracingConfig).toEqual({ Mode: 'Active' });
      expect(props.LoggingConfig).toEqual({ LogGroup: { Ref: logicalId(sweeper.logGroup) } });
      expect(props.Role).toEqual({ 'Fn::GetAtt': [logicalId(sweeper.role), 'Arn'] });
      expect(props.Description).toContain('lambdas/handlers/sweeper.ts');
      // It only calls the SSM API: outside any VPC, even when the steps are placed in one.
      expect(props.VpcConfig).toBeUndefined();
    }
    base.template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    expect(Object.keys(base.template.findResources('AWS::Logs::LogGroup'))).toContain(logicalId(base.stack.sweeper.logGroup));
  });

  it('is never retried by Lambda itself (the state machine decides what is retried)', () => {
    base.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: logicalId(base.stack.sweeper.fn) },
      MaximumRetryAttempts: 0,
    });
  });

  it('gets the SWEEP_* settings (defaults, then from context) and the Powertools service and namespace', () => {
    const common = {
      SWEEP_TARGET_TAG: 'WorkspaceId',
      SWEEP_MAX_CONCURRENCY: '10%',
      SWEEP_MAX_ERRORS: '5%',
      POWERTOOLS_SERVICE_NAME: 'workspace-plugin-installer',
      POWERTOOLS_METRICS_NAMESPACE: 'WorkspacePluginInstaller',
    };
    expect(envOf(base)).toEqual({ ...common, SWEEP_OLDER_THAN_DAYS: '7', SWEEP_KEEP: '1', SSM_DOCUMENT_NAME: base.stack.hostDocument.documentName });
    expect(envOf(custom)).toEqual({ ...common, SWEEP_OLDER_THAN_DAYS: '30', SWEEP_KEEP: '2', SSM_DOCUMENT_NAME: custom.stack.hostDocument.documentName });
    // Nothing the sweeper does not read: no bucket, no transport or EIC settings.
    expect(Object.keys(envOf(custom)).filter((k) => /ARTIFACT|EIC|TRANSPORT|HOST_STEP/.test(k))).toEqual([]);
  });

  it('sets exactly what the handler reads, and the handler accepts it', () => {
    expect(sweeperSettingsFromEnv(envOf(base))).toEqual({ olderThanDays: 7, keepNewest: 1, targetTag: WORKSPACE_TAG, maxConcurrency: '10%', maxErrors: '5%', dryRun: false, documentName: base.stack.hostDocument.documentName });
    expect(sweeperSettingsFromEnv(envOf(custom))).toEqual({ olderThanDays: 30, keepNewest: 2, targetTag: WORKSPACE_TAG, maxConcurrency: '10%', maxErrors: '5%', dryRun: false, documentName: custom.stack.hostDocument.documentName });
    const source = readFileSync(join(ROOT, 'lambdas/handlers/sweeper.ts'), 'utf8');
    for (const key of Object.keys(envOf(base)).filter((k) => k.startsWith('SWEEP_'))) expect(source, key).toContain(key);
    // The target the handler builds is the fleet sweep's default: every instance with the tag key.
    expect(DEFAULT_TARGETS).toEqual([{ Key: 'tag-key', Values: [envOf(base).SWEEP_TARGET_TAG] }]);
  });
});

describe('sweeper IAM', () => {
  function expected(arn: { partition: string; region: string; account: string }, app: BuiltApp) {
    return sortStatements([
      { sid: 'WriteOwnLogs', effect: 'Allow', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [`<${logicalId(app.stack.sweeper.logGroup)}.Arn>`], condition: undefined },
      { sid: '', effect: 'Allow', actions: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'], resources: ['*'], condition: undefined },
      { sid: 'PluginHostDocument', effect: 'Allow', actions: ['ssm:SendCommand'], resources: [`arn:${arn.partition}:ssm:${arn.region}:${arn.account}:document/${app.stack.hostDocument.documentName}`], condition: undefined },
      {
        sid: 'RunOnWorkspaceInstances',
        effect: 'Allow',
        actions: ['ssm:SendCommand'],
        resources: [`arn:${arn.partition}:ec2:${arn.region}:${arn.account}:instance/*`],
        condition: { Null: { 'ssm:resourceTag/WorkspaceId': 'false' } },
      },
      { sid: 'FollowSweepCommand', effect: 'Allow', actions: ['ssm:ListCommandInvocations'], resources: ['*'], condition: undefined },
      { sid: 'CountWorkspaceInstances', effect: 'Allow', actions: ['ec2:DescribeInstances'], resources: ['*'], condition: undefined },
    ]);
  }

  it('is exactly SendCommand (the plugin-host document, tagged instances), ListCommandInvocations and DescribeInstances, besides logs and X-Ray', () => {
    const actualBase = sortStatements(roleStatements(base.template, logicalId(base.stack.sweeper.role)).map(normalize));
    expect(actualBase).toEqual(expected({ partition: '<AWS::Partition>', region: '<AWS::Region>', account: '<AWS::AccountId>' }, base));
    // VPC placement, an endpoint and the EIC transport change nothing for the sweeper.
    const actualCustom = sortStatements(roleStatements(custom.template, logicalId(custom.stack.sweeper.role)).map(normalize));
    expect(actualCustom).toEqual(expected({ partition: 'aws', region: TEST_REGION, account: TEST_ACCOUNT }, custom));
  });

  it('has no S3, no EC2 Instance Connect, no EC2 but DescribeInstances, no CancelCommand, no wildcard action, no managed policy', () => {
    for (const app of [base, custom]) {
      const actions = roleStatements(app.template, logicalId(app.stack.sweeper.role)).flatMap(actionsOf);
      expect(actions.filter((a) => a.startsWith('s3:') || a.startsWith('ec2-instance-connect:') || (a.startsWith('ec2:') && a !== 'ec2:DescribeInstances'))).toEqual([]);
      expect(actions).not.toContain('ssm:CancelCommand');
      for (const action of actions) expect(action).not.toContain('*');
      const role = app.template.findResources('AWS::IAM::Role')[logicalId(app.stack.sweeper.role)]!;
      expect((role.Properties as Record<string, unknown>).ManagedPolicyArns).toBeUndefined();
    }
  });

  it('allows exactly the SSM calls the fleet sweep makes', () => {
    const source = readFileSync(join(ROOT, 'lambdas/core/sweep/fleet-sweep.ts'), 'utf8');
    const called = [...new Set([...source.matchAll(/new (\w+)Command\(/g)].map((m) => `ssm:${m[1]}`))].sort();
    expect(called).toEqual(['ssm:ListCommandInvocations', 'ssm:SendCommand']);
    const granted = [...new Set(roleStatements(base.template, logicalId(base.stack.sweeper.role)).flatMap(actionsOf).filter((a) => a.startsWith('ssm:')))].sort();
    expect(granted).toEqual(called);
    // And the one EC2 call: counting the fleet (fleet-size.ts).
    const counting = readFileSync(join(ROOT, 'lambdas/core/sweep/fleet-size.ts'), 'utf8');
    expect([...new Set([...counting.matchAll(/new (\w+)Command\(/g)].map((m) => `ec2:${m[1]}`))]).toEqual(['ec2:DescribeInstances']);
  });
});

describe('sweeper alarms', () => {
  it('alarm on failed, timed-out or aborted sweep executions, notifying the alarm topic', () => {
    const smId = logicalId(base.stack.sweeper.stateMachine);
    const alarm = base.template.findResources('AWS::CloudWatch::Alarm')[logicalId(base.stack.sweeper.sweepFailedAlarm)]!.Properties as {
      Metrics: { Id: string; Expression?: string; MetricStat?: { Metric: { Namespace: string; MetricName: string; Dimensions: unknown[] }; Stat: string } }[];
      Threshold: number;
      ComparisonOperator: string;
      TreatMissingData: string;
      AlarmActions: unknown[];
    };
    expect(alarm).toMatchObject({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching', AlarmActions: [{ Ref: logicalId(base.stack.alarmTopic) }] });
    expect(alarm.Metrics.find((m) => m.Expression)?.Expression).toBe('failed + timedOut + aborted');
    const watched = alarm.Metrics.filter((m) => m.MetricStat).map((m) => [m.MetricStat!.Metric.Namespace, m.MetricStat!.Metric.MetricName, m.MetricStat!.Stat, m.MetricStat!.Metric.Dimensions]);
    expect(watched.sort()).toEqual(
      ['ExecutionsAborted', 'ExecutionsFailed', 'ExecutionsTimedOut'].map((name) => ['AWS/States', name, 'Sum', [{ Name: 'StateMachineArn', Value: { Ref: smId } }]]),
    );
  });

  it('alarm on SweepHostsFailed as the handler publishes it (Powertools: namespace, service dimension)', () => {
    expect(SWEEP_HOSTS_FAILED).toBe('SweepHostsFailed');
    expect(readFileSync(join(ROOT, 'lambdas/handlers/sweeper.ts'), 'utf8')).toContain(`'${SWEEP_HOSTS_FAILED}'`);
    base.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'WorkspacePluginInstaller',
      MetricName: 'SweepHostsFailed',
      Dimensions: [{ Name: 'service', Value: 'workspace-plugin-installer' }],
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: logicalId(base.stack.alarmTopic) }],
    });
  });
});

describe('sweeper cdk-nag', () => {
  it('reports no unacknowledged finding, with or without VPC settings and an account', () => {
    for (const app of [base, custom]) {
      const report = new AwsSolutionsChecks().validateScope(app.app);
      expect(report.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    }
  });

  it('acknowledges only the instance/* and "*" resources and the Node 22 runtime, each with a reason (the state machine role: the same "*" as every state machine)', () => {
    const path = base.stack.sweeper.node.path;
    const acks = acknowledgements(base.app).filter((a) => a.path === path || a.path.startsWith(`${path}/`));
    expect(acks.map((a) => a.id).sort()).toEqual([
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::*]',
      'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]',
      'AwsSolutions-L1',
    ]);
    for (const ack of acks) expect(ack.reason.trim().length, ack.id).toBeGreaterThanOrEqual(MIN_REASON_LENGTH);
    expect(acks.find((a) => a.id === 'AwsSolutions-L1')?.reason).toBe(NODE_RUNTIME_REASON);
    const roleAck = acks.find((a) => a.id === 'AwsSolutions-IAM5[Resource::*]' && a.path.startsWith(base.stack.sweeper.role.node.path));
    expect(roleAck?.reason).toMatch(/ListCommandInvocations.*DescribeInstances/);
    expect(acks.find((a) => a.id.includes('instance/*'))?.reason).toMatch(/WorkspaceId/);
    // The state machine's is the very reason every workflow state machine carries.
    const smAck = acks.find((a) => a.id === 'AwsSolutions-IAM5[Resource::*]' && a.path.startsWith(base.stack.sweeper.stateMachine.node.path))!;
    const workflowAck = acknowledgements(base.app).find((a) => a.id === 'AwsSolutions-IAM5[Resource::*]' && a.path.startsWith(base.stack.stateMachines.install.node.path))!;
    expect(smAck.reason).toBe(workflowAck.reason);
  });
});
