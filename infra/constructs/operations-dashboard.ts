/**
 * The operators' CloudWatch dashboard: what the installer did (installs, rollbacks, uninstalls),
 * what failed and why (system failures, failures by error code, RollbackFailed, undelivered
 * notifications, step errors by code), how long each step takes (p50 / p95 of every step
 * Lambda's duration), the snapshot sweeper (bytes freed, hosts failed), and EIC tunnels the
 * endpoint refused at its connection limit (`TunnelRefused`), and fleet rollouts (their executions,
 * their verdicts, the rollout steps' durations). Every metric is one
 * the stack publishes or AWS does; the error-code graphs are SEARCH expressions, so a code seen
 * for the first time appears without a redeploy.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { FAILURES_BY_CODE, ROLLOUT_VERDICTS, type InstallerAlarms } from './alarms.ts';
import type { RolloutWorkflow } from './rollout-workflow.ts';
import type { SnapshotSweeper } from './snapshot-sweeper.ts';
import { METRICS_NAMESPACE, SERVICE_NAME, stepId, type StepLambdas } from './step-functions.ts';

const PERIOD = Duration.minutes(5);
/** Published by the host-step and api Lambdas (lambdas/commons/aws-deps.ts, countTunnelRefused). */
export const TUNNEL_REFUSED = 'TunnelRefused';

export interface OperationsDashboardProps {
  readonly stateMachines: Readonly<Record<WorkflowName, sfn.IStateMachine>>;
  readonly steps: StepLambdas;
  readonly alarms: InstallerAlarms;
  readonly sweeper: SnapshotSweeper;
  readonly rollout: RolloutWorkflow;
}

export class OperationsDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: OperationsDashboardProps) {
    super(scope, id);
    const { stateMachines, steps, alarms, sweeper, rollout } = props;
    const sum = { period: PERIOD, statistic: cloudwatch.Stats.SUM };

    const outcomes = (name: WorkflowName) => [
      stateMachines[name].metricSucceeded({ ...sum, label: `${name} succeeded` }),
      stateMachines[name].metricFailed({ ...sum, label: `${name} failed` }),
    ];

    const durations = (statistic: string) =>
      steps.steps.map((s) => s.fn.metricDuration({ period: PERIOD, statistic, label: `${stepId(s.spec.file)} ${statistic}` }));

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(24),
      widgets: [
        [
          new cloudwatch.GraphWidget({ title: 'Installs', left: outcomes('install'), width: 8 }),
          new cloudwatch.GraphWidget({ title: 'Rollbacks', left: outcomes('rollback'), width: 8 }),
          new cloudwatch.GraphWidget({ title: 'Uninstalls', left: outcomes('uninstall'), width: 8 }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Failures that page: system failures, RollbackFailed, undelivered notifications',
            left: [
              alarms.systemFailuresMetric.with({ label: 'system failures', statistic: cloudwatch.Stats.SUM }),
              alarms.rollbackFailedMetric.with({ label: 'RollbackFailed', statistic: cloudwatch.Stats.SUM }),
              alarms.notificationsUndeliveredMetric.with({ label: 'notifications undelivered' }),
            ],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Failed executions by error code (input errors included, not paged)',
            left: [
              new cloudwatch.MathExpression({
                expression: `SEARCH('{${METRICS_NAMESPACE},ErrorCode} MetricName="${FAILURES_BY_CODE}"', 'Sum', ${PERIOD.toSeconds()})`,
                label: '',
                period: PERIOD,
              }),
            ],
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({ title: 'Step duration p50 (ms)', left: durations('p50'), width: 12 }),
          new cloudwatch.GraphWidget({ title: 'Step duration p95 (ms)', left: durations('p95'), width: 12 }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Step errors by step and code (each retry counts)',
            left: [
              new cloudwatch.MathExpression({
                expression: `SEARCH('{${METRICS_NAMESPACE},code,service,step} MetricName="StepErrors"', 'Sum', ${PERIOD.toSeconds()})`,
                label: '',
                period: PERIOD,
              }),
            ],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Snapshot sweeper: bytes freed, hosts failed, hosts unfinished',
            left: [new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: 'SweptBytes', dimensionsMap: { service: SERVICE_NAME }, ...sum, label: 'bytes freed' })],
            right: [sweeper.hostsFailedMetric.with({ label: 'hosts failed' }), sweeper.hostsUnfinishedMetric.with({ label: 'hosts unfinished (still running at the deadline)' })],
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            // Each refusal is a wait inside a host step (docs/deploy.md, "Quotas that bound the
            // system"); a steady stream means EIC work above what one endpoint carries.
            title: 'EIC tunnels refused at the endpoint\'s limit of 20 concurrent connections (each one waited for and retried)',
            left: [new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: TUNNEL_REFUSED, dimensionsMap: { service: SERVICE_NAME }, ...sum, label: 'tunnels refused' })],
            width: 24,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            // A rollout that continues as new ends its execution SUCCEEDED and starts the next one:
            // started minus succeeded is not the count of halted rollouts; the verdicts graph is.
            title: 'Fleet rollouts: executions (each continue-as-new is one more execution)',
            left: [
              rollout.stateMachine.metricStarted({ ...sum, label: 'started' }),
              rollout.stateMachine.metricSucceeded({ ...sum, label: 'succeeded or continued' }),
              rollout.stateMachine.metricFailed({ ...sum, label: 'failed (halted, failed or refused)' }),
              rollout.stateMachine.metricAborted({ ...sum, label: 'stopped by an operator' }),
            ],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            // The verdicts are counted from the execution log (FailuresByCode) and never page: the
            // installs that made a rollout halt counted, and paged, on their own.
            title: 'Fleet rollouts: halted and failed verdicts',
            left: ROLLOUT_VERDICTS.map((code) => new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: FAILURES_BY_CODE, dimensionsMap: { ErrorCode: code }, ...sum, label: code })),
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Rollout step duration p95 (ms)',
            left: rollout.steps.map((s) => s.fn.metricDuration({ period: PERIOD, statistic: 'p95', label: `${stepId(s.spec.file)} p95` })),
            width: 8,
          }),
        ],
        [
          new cloudwatch.AlarmStatusWidget({
            title: 'Alarms',
            alarms: [alarms.systemFailures, alarms.rollbackFailed, alarms.notificationsUndelivered, sweeper.sweepFailedAlarm, sweeper.hostsFailedAlarm],
            width: 24,
          }),
        ],
      ],
    });
  }
}
