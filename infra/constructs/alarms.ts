/**
 * Alarms, all notifying one SNS topic (encrypted with a customer-managed KMS key, TLS only):
 *
 * - `ExecutionsFailed` of each state machine (AWS/States): any failed install, rollback or uninstall.
 *   A failed install has been rolled back, so this alarm says "an operation did not happen".
 * - `RollbackFailed` (a metric of our own): an execution reached its `RollbackFailed` Fail state,
 *   i.e. the host was left as found for an operator. Every path to operator-needed ends in that
 *   state (the RollBack Lambda's own `RollbackFailed` error and retries exhausted on it alike),
 *   in all three workflows. The metric comes from a metric filter on the state machines' execution
 *   log group (level ALL): it matches the `FailStateEntered` event of the state named
 *   `RollbackFailed`, and the `ExecutionFailed` event whose error is `RollbackFailed`. Matching
 *   both keeps the alarm working whichever of these fields Step Functions writes while execution
 *   data is left out of the logs (`includeExecutionData: false`); the metric reports 1 per match
 *   and the alarm looks at the maximum, so an execution that produces both counts once.
 *   Why not the Lambda's logs: retries exhausted on RollBack never log a `RollbackFailed` there.
 * - `NotificationsUndelivered` (ours): a Notify state's PutEvents failed after its retries and its
 *   Catch led to a `NotificationUndelivered…` Pass state, whose `PassStateEntered` event (state
 *   name only, no execution data) the metric filter counts. The execution's outcome is unchanged.
 */
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { METRICS_NAMESPACE } from './step-functions.ts';

/** The Fail state (and error name) every workflow ends in when its rollback could not finish. */
export const ROLLBACK_FAILED = 'RollbackFailed';

/** Matches the execution-log events of an execution that ended in `RollbackFailed`. */
export function rollbackFailedPattern(): logs.IFilterPattern {
  return logs.FilterPattern.any(
    logs.FilterPattern.all(logs.FilterPattern.stringValue('$.type', '=', 'FailStateEntered'), logs.FilterPattern.stringValue('$.details.name', '=', ROLLBACK_FAILED)),
    logs.FilterPattern.all(logs.FilterPattern.stringValue('$.type', '=', 'ExecutionFailed'), logs.FilterPattern.stringValue('$.details.error', '=', ROLLBACK_FAILED)),
  );
}

/**
 * The metric (and the prefix of the Pass states every Notify state's Catch leads to) of events
 * that could not be put on the bus even after retries. The execution keeps its outcome; the
 * control plane missed an event, so someone should know.
 */
export const NOTIFICATIONS_UNDELIVERED = 'NotificationsUndelivered';
export const UNDELIVERED_STATE_PREFIX = 'NotificationUndelivered';

/** Matches the execution-log event of entering a `NotificationUndelivered…` state. */
export function undeliveredPattern(): logs.IFilterPattern {
  return logs.FilterPattern.all(
    logs.FilterPattern.stringValue('$.type', '=', 'PassStateEntered'),
    logs.FilterPattern.stringValue('$.details.name', '=', `${UNDELIVERED_STATE_PREFIX}*`),
  );
}

export interface InstallerAlarmsProps {
  readonly stateMachines: Readonly<Record<WorkflowName, sfn.IStateMachine>>;
  /** Where the state machines log their execution history. */
  readonly executionLogGroup: logs.ILogGroup;
}

export class InstallerAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly key: kms.Key;
  readonly executionsFailed: Readonly<Record<WorkflowName, cloudwatch.Alarm>>;
  readonly rollbackFailed: cloudwatch.Alarm;
  readonly rollbackFailedMetric: cloudwatch.Metric;
  readonly notificationsUndelivered: cloudwatch.Alarm;
  readonly notificationsUndeliveredMetric: cloudwatch.Metric;

  constructor(scope: Construct, id: string, props: InstallerAlarmsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const alarmArns = stack.formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME });

    this.key = new kms.Key(this, 'TopicKey', {
      description: 'Encrypts the workspace-plugin-installer alarm topic',
      enableKeyRotation: true,
    });
    // CloudWatch publishes alarm notifications itself, so it needs the key (AWS-managed aws/sns cannot grant it).
    this.key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchAlarmsPublish',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      resources: ['*'],
      conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
    }));

    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'workspace-plugin-installer alarms',
      masterKey: this.key,
      enforceSSL: true,
    });
    this.topic.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchAlarmsPublish',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['sns:Publish'],
      resources: [this.topic.topicArn],
      conditions: { ArnLike: { 'aws:SourceArn': alarmArns }, StringEquals: { 'aws:SourceAccount': stack.account } },
    }));
    const action = new SnsAction(this.topic);

    const executionsFailed = {} as Record<WorkflowName, cloudwatch.Alarm>;
    for (const [name, machine] of Object.entries(props.stateMachines) as [WorkflowName, sfn.IStateMachine][]) {
      const alarm = new cloudwatch.Alarm(this, `${name.charAt(0).toUpperCase()}${name.slice(1)}ExecutionsFailed`, {
        alarmDescription: `A plugin-${name} execution failed (state machine ${name}); see its execution history for the error.`,
        metric: machine.metricFailed({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(action);
      executionsFailed[name] = alarm;
    }
    this.executionsFailed = executionsFailed;

    const filter = new logs.MetricFilter(this, 'RollbackFailedFilter', {
      logGroup: props.executionLogGroup,
      filterPattern: rollbackFailedPattern(),
      metricNamespace: METRICS_NAMESPACE,
      metricName: ROLLBACK_FAILED,
      metricValue: '1',
    });
    this.rollbackFailedMetric = filter.metric({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM });
    this.rollbackFailed = new cloudwatch.Alarm(this, 'RollbackFailed', {
      alarmDescription: 'A plugin workflow could not roll back (RollbackFailed): the host was left as found and needs an operator; the execution\'s error names what to move back.',
      metric: this.rollbackFailedMetric,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.rollbackFailed.addAlarmAction(action);

    const undelivered = new logs.MetricFilter(this, 'NotificationsUndeliveredFilter', {
      logGroup: props.executionLogGroup,
      filterPattern: undeliveredPattern(),
      metricNamespace: METRICS_NAMESPACE,
      metricName: NOTIFICATIONS_UNDELIVERED,
      metricValue: '1',
    });
    this.notificationsUndeliveredMetric = undelivered.metric({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM });
    this.notificationsUndelivered = new cloudwatch.Alarm(this, 'NotificationsUndelivered', {
      alarmDescription: 'A plugin event could not be put on the event bus after retries: the operation itself finished (its execution says how), but the control plane did not hear of it. See the execution\'s NotificationUndelivered… state for the error, and replay or tell the control plane.',
      metric: this.notificationsUndeliveredMetric,
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.notificationsUndelivered.addAlarmAction(action);
  }
}
