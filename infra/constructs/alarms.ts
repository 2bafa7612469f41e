/**
 * Alarms, all notifying one SNS topic (encrypted with a customer-managed KMS key, TLS only,
 * optionally subscribed by e-mail or HTTPS: context alarmEmail, alarmHttpsUrl). They page on
 * system failures only; a request refused for its input is a metric (FailuresByCode), never a page.
 *
 * - `SystemFailures` (ours): an execution failed for a system reason. A metric filter on the state
 *   machines' execution log group (level ALL) matches the `FailStateEntered` event of a Fail state
 *   only system failures reach (RolledBack, Reverted, RollbackFailed, MarkerWriteFailed), and the
 *   `ExecutionFailed` event whose error is neither an input error (INPUT_ERROR_CODES) nor the
 *   plugin's own fault (PLUGIN_FAULT_CODES: a failed health check, which ends in its own Fail
 *   state, RolledBackUnhealthy).
 * - `RollbackFailed` (ours): an execution reached its `RollbackFailed` Fail state, i.e. the host
 *   was left as found for an operator. Every path to operator-needed ends in that state (the
 *   RollBack Lambda's own `RollbackFailed` error and retries exhausted on it alike), in all three
 *   workflows. Matched like the above: `FailStateEntered` of `RollbackFailed`, or `ExecutionFailed`
 *   with that error; either field works while execution data is left out of the logs
 *   (`includeExecutionData: false`); the metric reports 1 per match and the alarm looks at the
 *   maximum, so an execution that produces both counts once. Why not the Lambda's logs: retries
 *   exhausted on RollBack never log a `RollbackFailed` there.
 * - `NotificationsUndelivered` (ours): a Notify state's PutEvents failed after its retries and its
 *   Catch led to a `NotificationUndelivered…` Pass state, whose `PassStateEntered` event (state
 *   name only, no execution data) the metric filter counts. The execution's outcome is unchanged.
 * - `FailuresByCode` (ours, not alarmed): every failed execution, dimension `ErrorCode`.
 *
 * The fleet rollout logs to the same group. Its verdicts `RolloutHalted` and `RolloutFailed`
 * (ROLLOUT_VERDICTS) are not system failures of their own: they sum up the target executions,
 * each of which failed (and, for a system reason, paged) by itself. They are counted by code, not
 * paged. A rollout step failing after its retries (`RolloutError`, with the step's error code) or
 * PlanRollout refused for a system reason pages like any other system failure.
 */
import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { ERROR_CATEGORIES, type ErrorCode } from '../../lambdas/core/errors.ts';
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

/**
 * Error codes that describe someone's request, not the system (a bad or hostile source, a checksum
 * that does not match, a stopped workspace, a busy plugin): counted, never paged.
 */
export const INPUT_ERROR_CODES: readonly ErrorCode[] = (Object.keys(ERROR_CATEGORIES) as ErrorCode[]).filter(
  (code) => ERROR_CATEGORIES[code] === 'refused' || ERROR_CATEGORIES[code] === 'busy',
);

/** The fleet rollout's verdicts (statemachine/rollout.asl.json): counted, never paged (see above). */
export const ROLLOUT_VERDICTS = ['RolloutHalted', 'RolloutFailed'] as const;

/**
 * Error codes that say the plugin is broken, not the system: a new version that failed its own
 * health check was rolled back as designed. Counted (FailuresByCode), never paged; its author acts,
 * and a fleet rollout's error budget stops the version spreading.
 */
export const PLUGIN_FAULT_CODES: readonly ErrorCode[] = ['HealthCheckFailed'];

/** Fail states only a system failure reaches: live had changed (reverted), or an operator is needed. */
export const SYSTEM_FAIL_STATES = ['RolledBack', 'Reverted', ROLLBACK_FAILED, 'MarkerWriteFailed'] as const;

export const SYSTEM_FAILURES = 'SystemFailures';
export const FAILURES_BY_CODE = 'FailuresByCode';

/**
 * An execution that failed for a system reason: it entered a Fail state only system failures
 * reach, or it failed with an error code that is not an input error. Both, because with
 * execution data left out of the logs the first holds whatever Step Functions writes in `error`;
 * the alarm uses the maximum, so one execution matching twice still counts once.
 */
export function systemFailurePattern(): logs.IFilterPattern {
  return logs.FilterPattern.any(
    logs.FilterPattern.all(
      logs.FilterPattern.stringValue('$.type', '=', 'FailStateEntered'),
      logs.FilterPattern.any(...SYSTEM_FAIL_STATES.map((name) => logs.FilterPattern.stringValue('$.details.name', '=', name))),
    ),
    logs.FilterPattern.all(
      logs.FilterPattern.stringValue('$.type', '=', 'ExecutionFailed'),
      logs.FilterPattern.exists('$.details.error'),
      ...[...INPUT_ERROR_CODES, ...PLUGIN_FAULT_CODES, ...ROLLOUT_VERDICTS].map((code) => logs.FilterPattern.stringValue('$.details.error', '!=', code)),
    ),
  );
}

/** Where the alarm topic sends its notifications, besides whoever subscribes later. */
export interface AlarmSubscriptions {
  readonly email?: string;
  readonly httpsUrl?: string;
}

/** An alarm that pages (notifies `action`) as soon as `metric` reaches 1 in one period; no data is not a breach. */
function pageOnAny(scope: Construct, id: string, metric: cloudwatch.IMetric, action: SnsAction, description: string): cloudwatch.Alarm {
  const alarm = new cloudwatch.Alarm(scope, id, {
    alarmDescription: description,
    metric,
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  alarm.addAlarmAction(action);
  return alarm;
}

export interface InstallerAlarmsProps {
  /** Where the state machines log their execution history. */
  readonly executionLogGroup: logs.ILogGroup;
  /** Optional subscriptions of the alarm topic (context alarmEmail, alarmHttpsUrl). */
  readonly subscriptions?: AlarmSubscriptions;
}

export class InstallerAlarms extends Construct {
  readonly topic: sns.Topic;
  readonly key: kms.Key;
  readonly systemFailures: cloudwatch.Alarm;
  readonly systemFailuresMetric: cloudwatch.Metric;
  /** Every failed execution, by error code (dimension ErrorCode): input errors included, never alarmed. */
  readonly failuresByCode: logs.MetricFilter;
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

    if (props.subscriptions?.email) this.topic.addSubscription(new subscriptions.EmailSubscription(props.subscriptions.email));
    if (props.subscriptions?.httpsUrl) this.topic.addSubscription(new subscriptions.UrlSubscription(props.subscriptions.httpsUrl, { protocol: sns.SubscriptionProtocol.HTTPS }));

    // Pages only on system failures; refused input is counted by code below and shown on the dashboard.
    // Every metric here counts matching events of the execution log: 1 per match.
    const countInExecutionLog = (id: string, metricName: string, filterPattern: logs.IFilterPattern, dimensions?: Record<string, string>) =>
      new logs.MetricFilter(this, id, { logGroup: props.executionLogGroup, filterPattern, metricNamespace: METRICS_NAMESPACE, metricName, metricValue: '1', ...(dimensions ? { dimensions } : {}) });

    const system = countInExecutionLog('SystemFailuresFilter', SYSTEM_FAILURES, systemFailurePattern());
    this.systemFailuresMetric = system.metric({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM });
    this.systemFailures = pageOnAny(this, 'SystemFailures', this.systemFailuresMetric, action,
      `A plugin workflow or fleet rollout failed for a system reason (host unreachable, disk full, a step that failed after live changed, a rollback or marker that needs an operator), not because of its input (${INPUT_ERROR_CODES.join(', ')} are counted, not paged, as are the rollout verdicts ${ROLLOUT_VERDICTS.join(', ')}, whose targets page by themselves). The execution history names the step and the error.`,
    );

    this.failuresByCode = countInExecutionLog(
      'FailuresByCodeFilter',
      FAILURES_BY_CODE,
      logs.FilterPattern.all(logs.FilterPattern.stringValue('$.type', '=', 'ExecutionFailed'), logs.FilterPattern.exists('$.details.error')),
      { ErrorCode: '$.details.error' },
    );

    const filter = countInExecutionLog('RollbackFailedFilter', ROLLBACK_FAILED, rollbackFailedPattern());
    this.rollbackFailedMetric = filter.metric({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM });
    this.rollbackFailed = pageOnAny(this, 'RollbackFailed', this.rollbackFailedMetric, action,
      'A plugin workflow could not roll back (RollbackFailed): the host was left as found and needs an operator; the execution\'s error names what to move back.',
    );

    const undelivered = countInExecutionLog('NotificationsUndeliveredFilter', NOTIFICATIONS_UNDELIVERED, undeliveredPattern());
    this.notificationsUndeliveredMetric = undelivered.metric({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM });
    this.notificationsUndelivered = pageOnAny(this, 'NotificationsUndelivered', this.notificationsUndeliveredMetric, action,
      'A plugin event could not be put on the event bus after retries: the operation itself finished (its execution says how), but the control plane did not hear of it. See the execution\'s NotificationUndelivered… state for the error, and replay or tell the control plane.',
    );
  }
}
