/**
 * The snapshot sweeper: an EventBridge schedule (`sweepSchedule`, default `rate(1 day)`) invokes
 * the sweeper Lambda (lambdas/handlers/sweeper.ts), which sends ONE SSM Run Command (the stack's
 * plugin-host document, operation fleet-sweep: host-document.ts) targeted by tag key at every workspace instance and follows it with
 * ListCommandInvocations (lambdas/core/sweep/fleet-sweep.ts). Each host removes snapshots and
 * failed installs older than `sweepOlderThanDays`, keeping the newest `sweepKeep` snapshots of each
 * plugin.
 *
 * The function: Node 22 on arm64, the host-code bundling, 15 minutes (it stops waiting 30 s before that), X-Ray, its own log
 * group. It talks to the SSM API only, so it runs outside any VPC. Lambda does not retry a failed
 * sweep (the next scheduled one does); the Errors alarm says it failed.
 *
 * IAM (its own role, inline only):
 *   ssm:SendCommand            the stack's plugin-host document only, and instance/* only for instances
 *                              carrying the target tag (ssm:resourceTag/<tag> not null)
 *   ssm:ListCommandInvocations `*` (no resource-level permissions; the command id exists only
 *                              after SendCommand)
 *   logs to its own group, X-Ray. No S3, no EC2 Instance Connect, no ssm:CancelCommand (the code
 *   never cancels: a sweep left running finishes on its own). Metrics are EMF log lines.
 *
 * Alarms (to the stack's alarm topic): the function's Errors, and SweepHostsFailed (namespace
 * WorkspacePluginInstaller, dimension service): a host whose sweep failed or did not run.
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
import { Construct } from 'constructs';
import type { SweepSettings } from '../settings.ts';
import { acknowledge, acknowledgeWildcardResource } from './nag.ts';
import { HANDLERS_DIR, hostCodeBundling, hostScripts, METRICS_NAMESPACE, NODE_RUNTIME_REASON, PROJECT_ROOT, SERVICE_NAME, WORKSPACE_TAG } from './step-functions.ts';

export const SWEEPER_FILE = 'sweeper';
export const SWEEPER_TIMEOUT = Duration.minutes(15);
export const SWEEPER_MEMORY_MB = 512;
/** SSM rate control of the one Run Command: instances at a time, and failures before it stops. */
export const SWEEP_MAX_CONCURRENCY = '10%';
export const SWEEP_MAX_ERRORS = '5%';
/** The metric the sweeper publishes per host: 1 when that host's sweep failed or did not run. */
export const SWEEP_HOSTS_FAILED = 'SweepHostsFailed';
/** Alarm period: the sweep runs once a day by default, up to 15 minutes, and publishes at its end. */
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
  readonly errorsAlarm: cloudwatch.Alarm;
  readonly hostsFailedAlarm: cloudwatch.Alarm;
  readonly hostsFailedMetric: cloudwatch.Metric;

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
      // A failed sweep is not retried by Lambda: the next scheduled one sweeps again, the alarm tells.
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
    acknowledgeWildcardResource(
      this.role,
      instanceArn,
      `The sweeper targets every workspace instance by tag key, and instances come and go; SendCommand on instances is limited to those tagged ${targetTag}.`,
    );
    acknowledgeWildcardResource(
      this.role,
      '*',
      'Resource "*" only where IAM has no resource-level permissions: ssm:ListCommandInvocations (the command id exists only after SendCommand) and X-Ray PutTraceSegments/PutTelemetryRecords.',
    );
    acknowledge(this.fn, 'AwsSolutions-L1', NODE_RUNTIME_REASON);

    this.rule = new events.Rule(this, 'Schedule', {
      description: `workspace-plugin-installer snapshot sweep (${props.settings.schedule})`,
      schedule: events.Schedule.expression(props.settings.schedule),
      targets: [new targets.LambdaFunction(this.fn)],
    });

    const action = new SnsAction(props.alarmTopic);
    this.errorsAlarm = new cloudwatch.Alarm(this, 'ErrorsAlarm', {
      alarmDescription: 'The snapshot sweeper failed (an error or its timeout); see its log group. Lambda does not retry it; the next scheduled sweep runs again.',
      metric: this.fn.metricErrors({ period: SWEEP_ALARM_PERIOD, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.errorsAlarm.addAlarmAction(action);

    this.hostsFailedMetric = new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: SWEEP_HOSTS_FAILED,
      // Powertools adds the service as the one dimension.
      dimensionsMap: { service: SERVICE_NAME },
      period: SWEEP_ALARM_PERIOD,
      statistic: cloudwatch.Stats.SUM,
    });
    this.hostsFailedAlarm = new cloudwatch.Alarm(this, 'HostsFailedAlarm', {
      alarmDescription: 'The snapshot sweep failed or did not run on at least one workspace host (SweepHostsFailed); the sweeper\'s log names each host and its error.',
      metric: this.hostsFailedMetric,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.hostsFailedAlarm.addAlarmAction(action);
  }
}
