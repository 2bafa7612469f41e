/**
 * The snapshot sweeper: an EventBridge schedule (`sweepSchedule`, default `rate(1 day)`) starts
 * the sweep state machine (statemachine/sweep.asl.json), whose three Tasks invoke the sweeper
 * Lambda (lambdas/handlers/sweeper.ts): StartSweep sends ONE SSM Run Command (the stack's plugin-host
 * document, operation fleet-sweep: host-document.ts) targeted by tag key at every workspace instance; CheckSweep looks at it (Wait → Check → Choice)
 * until every host is done or the command's own delivery and execution timeouts (plus a grace
 * period, at most 48 h) have passed; ReportSweep pages through the invocations, a bounded number
 * per invocation, reporting each host once. Each host removes snapshots and failed installs older
 * than `sweepOlderThanDays`, keeping the newest `sweepKeep` snapshots of each plugin.
 *
 * No Lambda waits for the fleet: each invocation does a bounded amount of work (2 minutes at most),
 * so a fleet that takes hours is followed to its end, and hosts still running at the deadline are
 * reported `unfinished` (SweepHostsUnfinished), never failed.
 *
 * The function: Node 22 on arm64, the host-code bundling, X-Ray, its own log group. It talks to the SSM API only, so it runs
 * outside any VPC. The state machine: Standard, its own execution log group (level ALL, no
 * execution data), X-Ray; its role may invoke the sweeper only. The schedule's role may start
 * this state machine only.
 *
 * IAM of the function (its own role, inline only):
 *   ssm:SendCommand            the stack's plugin-host document only, and instance/* only for instances
 *                              carrying the target tag (ssm:resourceTag/<tag> not null)
 *   ssm:ListCommandInvocations `*` (no resource-level permissions; the command id exists only
 *                              after SendCommand)
 *   ec2:DescribeInstances      `*` (no resource-level permissions): counts the tagged instances so
 *                              MaxErrors / MaxConcurrency go to SSM as counts (fleet-size.ts)
 *   logs to its own group, X-Ray. No S3, no EC2 Instance Connect, no ssm:CancelCommand (the code
 *   never cancels: a sweep left running finishes on its own). Metrics are EMF log lines.
 *
 * Alarms (to the stack's alarm topic): the sweep execution failed or timed out (SweepFailed), and
 * SweepHostsFailed (namespace WorkspacePluginInstaller, dimension service): a host whose sweep
 * failed or did not run. Unfinished hosts are a metric on the dashboard, not a page.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { HostDocument } from './host-document.ts';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { DEFAULT_SWEEP_MAX_CONCURRENCY, DEFAULT_SWEEP_MAX_ERRORS, SWEEP_METRICS } from '../../lambdas/handlers/sweeper.ts';
import { placeholders, SWEEPER_PLACEHOLDER, sweepDefinitionText } from '../../lambdas/core/workflow/workflow-files.ts';
import type { SweepSettings } from '../settings.ts';
import { acknowledge, acknowledgeWildcardResource } from './nag.ts';
import { MAX_STATE_MACHINE_NAME, stackCreationId, stackScopedName } from './physical-names.ts';
import { HANDLERS_DIR, hostCodeBundling, hostScripts, METRICS_NAMESPACE, NODE_RUNTIME_REASON, PROJECT_ROOT, SERVICE_NAME, WORKSPACE_TAG } from './step-functions.ts';
import { acknowledgeStateMachineRole } from './workflows.ts';

export const SWEEPER_FILE = 'sweeper';
/**
 * Each invocation does a bounded amount of work (one SendCommand; one check; up to 10 pages of
 * 50 invocations): 2 minutes is ample. The ASL's Task TimeoutSeconds (150) is this plus 30 s.
 */
export const SWEEPER_TIMEOUT = Duration.minutes(2);
export const SWEEPER_MEMORY_MB = 512;
/** SSM rate control of the one Run Command: instances at a time, and failed hosts (a count) before it stops. */
export const SWEEP_MAX_CONCURRENCY = DEFAULT_SWEEP_MAX_CONCURRENCY;
export const SWEEP_MAX_ERRORS = DEFAULT_SWEEP_MAX_ERRORS;
/** The metrics the sweeper publishes per host: 1 when that host's sweep failed or did not run / was still running. */
export const SWEEP_HOSTS_FAILED = SWEEP_METRICS.failed;
export const SWEEP_HOSTS_UNFINISHED = SWEEP_METRICS.unfinished;
/** Alarm period: the sweep runs once a day by default and publishes as it reports. */
export const SWEEP_ALARM_PERIOD = Duration.hours(1);

export interface SnapshotSweeperProps {
  readonly settings: SweepSettings;
  /** Where both alarms notify. */
  readonly alarmTopic: sns.ITopic;
  /** The stack's SSM Command document: the sweep is its fleet-sweep operation. */
  readonly hostDocument: HostDocument;
  /** Instances carrying this tag key are swept (and are all IAM lets it reach). Default WorkspaceId. */
  readonly targetTag?: string;
  /** Default one month. */
  readonly logRetention?: logs.RetentionDays;
}

export class SnapshotSweeper extends Construct {
  readonly fn: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly rule: events.Rule;
  readonly stateMachine: sfn.StateMachine;
  /** Execution history of the sweep state machine (level ALL, without execution data). */
  readonly executionLogs: logs.LogGroup;
  /** A sweep execution failed, timed out or was aborted. */
  readonly sweepFailedAlarm: cloudwatch.Alarm;
  readonly hostsFailedAlarm: cloudwatch.Alarm;
  readonly hostsFailedMetric: cloudwatch.Metric;
  readonly hostsUnfinishedMetric: cloudwatch.Metric;

  constructor(scope: Construct, id: string, props: SnapshotSweeperProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const targetTag = props.targetTag ?? WORKSPACE_TAG;

    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Execution role of the snapshot sweeper',
    });
    this.role.addToPolicy(new iam.PolicyStatement({
      sid: 'WriteOwnLogs',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [this.logGroup.logGroupArn],
    }));

    this.fn = new NodejsFunction(this, 'Function', {
      description: `workspace-plugin-installer snapshot sweeper (${HANDLERS_DIR}/${SWEEPER_FILE}.ts)`,
      entry: `${PROJECT_ROOT}${HANDLERS_DIR}/${SWEEPER_FILE}.ts`,
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: `${PROJECT_ROOT}package-lock.json`,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      timeout: SWEEPER_TIMEOUT,
      memorySize: SWEEPER_MEMORY_MB,
      tracing: Tracing.ACTIVE,
      role: this.role,
      logGroup: this.logGroup,
      // Invoked synchronously by the state machine, which decides what is retried; never async.
      retryAttempts: 0,
      environment: {
        SWEEP_OLDER_THAN_DAYS: String(props.settings.olderThanDays),
        SWEEP_KEEP: String(props.settings.keepNewest),
        SWEEP_TARGET_TAG: targetTag,
        SWEEP_MAX_CONCURRENCY,
        SWEEP_MAX_ERRORS,
        SSM_DOCUMENT_NAME: props.hostDocument.documentName,
        POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      },
      bundling: hostCodeBundling(hostScripts()),
    });

    const instanceArn = stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
    this.role.addToPolicy(new iam.PolicyStatement({
      sid: 'PluginHostDocument',
      actions: ['ssm:SendCommand'],
      resources: [props.hostDocument.documentArn],
    }));
    this.role.addToPolicy(new iam.PolicyStatement({
      sid: 'RunOnWorkspaceInstances',
      actions: ['ssm:SendCommand'],
      resources: [instanceArn],
      conditions: { Null: { [`ssm:resourceTag/${targetTag}`]: 'false' } },
    }));
    // The command id exists only after SendCommand; ListCommandInvocations has no resource-level permissions.
    this.role.addToPolicy(new iam.PolicyStatement({
      sid: 'FollowSweepCommand',
      actions: ['ssm:ListCommandInvocations'],
      resources: ['*'],
    }));
    // Counting the fleet turns the percentage rate controls into counts (fleet-size.ts); DescribeInstances has no resource-level permissions.
    this.role.addToPolicy(new iam.PolicyStatement({
      sid: 'CountWorkspaceInstances',
      actions: ['ec2:DescribeInstances'],
      resources: ['*'],
    }));
    acknowledgeWildcardResource(
      this.role,
      instanceArn,
      `The sweeper targets every workspace instance by tag key, and instances come and go; SendCommand on instances is limited to those tagged ${targetTag}.`,
    );
    acknowledgeWildcardResource(
      this.role,
      '*',
      'Resource "*" only where IAM has no resource-level permissions: ssm:ListCommandInvocations (the command id exists only after SendCommand), ec2:DescribeInstances (counting the tagged fleet) and X-Ray PutTraceSegments/PutTelemetryRecords.',
    );
    acknowledge(this.fn, 'AwsSolutions-L1', NODE_RUNTIME_REASON);

    // The sweep state machine, from the very ASL file the e2e test runs (test/e2e/sweep-state-machine.test.ts).
    const definition = sweepDefinitionText();
    for (const p of placeholders(definition)) {
      if (p !== SWEEPER_PLACEHOLDER) throw new Error(`statemachine/sweep.asl.json uses \${${p}}, which the sweeper construct does not fill`);
    }
    this.executionLogs = new logs.LogGroup(this, 'ExecutionLogs', {
      // Retained on delete, so its name carries the stack's creation id (physical-names.ts).
      logGroupName: `/aws/vendedlogs/states/${stack.stackName}-sweep-${stackCreationId()}`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: stackScopedName(this, 'sweep', MAX_STATE_MACHINE_NAME),
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'workspace-plugin-installer: snapshot sweep (statemachine/sweep.asl.json)',
      definitionBody: sfn.DefinitionBody.fromString(definition),
      definitionSubstitutions: { [SWEEPER_PLACEHOLDER]: this.fn.functionArn },
      logs: { destination: this.executionLogs, level: sfn.LogLevel.ALL, includeExecutionData: false },
      tracingEnabled: true,
    });
    this.stateMachine.addToRolePolicy(new iam.PolicyStatement({
      sid: 'InvokeSweeper',
      actions: ['lambda:InvokeFunction'],
      resources: [this.fn.functionArn],
    }));
    acknowledgeStateMachineRole(this.stateMachine);

    this.rule = new events.Rule(this, 'Schedule', {
      description: `workspace-plugin-installer snapshot sweep (${props.settings.schedule})`,
      schedule: events.Schedule.expression(props.settings.schedule),
      // The scheduled event itself is the execution's input (StartSweep reads detail.dryRun).
      targets: [new targets.SfnStateMachine(this.stateMachine)],
    });

    const action = new SnsAction(props.alarmTopic);
    this.sweepFailedAlarm = new cloudwatch.Alarm(this, 'SweepFailedAlarm', {
      alarmDescription: 'A snapshot sweep execution failed, timed out or was aborted (bad settings, SendCommand refused, SSM unreadable); see its execution history and the sweeper\'s log group. The next scheduled sweep runs again.',
      metric: new cloudwatch.MathExpression({
        expression: 'failed + timedOut + aborted',
        usingMetrics: {
          failed: this.stateMachine.metricFailed({ period: SWEEP_ALARM_PERIOD, statistic: cloudwatch.Stats.SUM }),
          timedOut: this.stateMachine.metricTimedOut({ period: SWEEP_ALARM_PERIOD, statistic: cloudwatch.Stats.SUM }),
          aborted: this.stateMachine.metricAborted({ period: SWEEP_ALARM_PERIOD, statistic: cloudwatch.Stats.SUM }),
        },
        period: SWEEP_ALARM_PERIOD,
        label: 'sweep executions failed',
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.sweepFailedAlarm.addAlarmAction(action);

    this.hostsFailedMetric = sweepHostsMetric(SWEEP_HOSTS_FAILED);
    this.hostsFailedAlarm = new cloudwatch.Alarm(this, 'HostsFailedAlarm', {
      alarmDescription: 'The snapshot sweep failed or did not run on at least one workspace host (SweepHostsFailed); the sweeper\'s log names each host and its error.',
      metric: this.hostsFailedMetric,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.hostsFailedAlarm.addAlarmAction(action);

    this.hostsUnfinishedMetric = sweepHostsMetric(SWEEP_HOSTS_UNFINISHED);
  }
}

/** A per-host sweep metric, summed over the alarm period. */
function sweepHostsMetric(metricName: string): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName,
    // Powertools adds the service as the one dimension.
    dimensionsMap: { service: SERVICE_NAME },
    period: SWEEP_ALARM_PERIOD,
    statistic: cloudwatch.Stats.SUM,
  });
}
