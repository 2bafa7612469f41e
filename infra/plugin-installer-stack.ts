/**
 * The AWS deployment of workspace-plugin-installer: artifact bucket, step Lambdas, the install /
 * rollback / uninstall state machines, the fleet rollout state machine and its step Lambdas, the event bus, the alarms and the operators' dashboard, and the HTTP API (API Gateway
 * REST API with IAM auth + api Lambda) the control plane calls, and the scheduled snapshot
 * sweeper (one SSM Run Command over every workspace instance, followed by its own state machine),
 * and the SSM Command document that carries the host script (the only document the roles may send).
 */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { WORKFLOWS, type WorkflowName } from '../lambdas/core/workflow/workflow-files.ts';
import { InstallerAlarms } from './constructs/alarms.ts';
import { ArtifactBucket } from './constructs/artifact-bucket.ts';
import { ControlPlaneApi } from './constructs/control-plane-api.ts';
import { HostDocument } from './constructs/host-document.ts';
import { PluginEventBus } from './constructs/event-bus.ts';
import { OperationsDashboard } from './constructs/operations-dashboard.ts';
import { RolloutWorkflow } from './constructs/rollout-workflow.ts';
import { SnapshotSweeper } from './constructs/snapshot-sweeper.ts';
import { StepLambdas } from './constructs/step-functions.ts';
import { Workflows } from './constructs/workflows.ts';
import type { InstallerSettings } from './settings.ts';

export interface PluginInstallerStackProps extends StackProps {
  readonly settings: InstallerSettings;
}

export class PluginInstallerStack extends Stack {
  readonly settings: InstallerSettings;
  readonly bucket: s3.Bucket;
  readonly bus: events.EventBus;
  readonly hostDocument: HostDocument;
  readonly steps: StepLambdas;
  readonly workflows: Workflows;
  readonly stateMachines: Readonly<Record<WorkflowName, sfn.StateMachine>>;
  /** The fleet rollout (statemachine/rollout.asl.json), which starts the three workflows per target. */
  readonly rollout: RolloutWorkflow;
  readonly alarms: InstallerAlarms;
  readonly alarmTopic: sns.Topic;
  readonly api: ControlPlaneApi;
  readonly sweeper: SnapshotSweeper;
  readonly dashboard: OperationsDashboard;

  constructor(scope: Construct, id: string, props: PluginInstallerStackProps) {
    super(scope, id, {
      description: 'workspace-plugin-installer: atomic, observable, reversible plugin installs on workspace hosts',
      ...props,
    });
    this.settings = props.settings;

    const artifacts = new ArtifactBucket(this, 'Artifacts');
    this.bucket = artifacts.bucket;
    this.bus = new PluginEventBus(this, 'Events').bus;
    this.hostDocument = new HostDocument(this, 'HostDocument');
    this.steps = new StepLambdas(this, 'Steps', { bucket: this.bucket, settings: props.settings, hostDocument: this.hostDocument });
    this.workflows = new Workflows(this, 'Workflows', { steps: this.steps, bus: this.bus });
    this.stateMachines = this.workflows.stateMachines;
    this.rollout = new RolloutWorkflow(this, 'Rollout', { steps: this.steps, bus: this.bus, stateMachines: this.stateMachines, logGroup: this.workflows.logGroup });
    this.alarms = new InstallerAlarms(this, 'Alarms', {
      executionLogGroup: this.workflows.logGroup,
      subscriptions: { email: props.settings.alarmEmail, httpsUrl: props.settings.alarmHttpsUrl },
    });
    this.alarmTopic = this.alarms.topic;
    this.api = new ControlPlaneApi(this, 'Api', { settings: props.settings, stateMachines: this.stateMachines, rollout: this.rollout, bucket: this.bucket, steps: this.steps });
    this.sweeper = new SnapshotSweeper(this, 'Sweeper', { settings: props.settings.sweep, alarmTopic: this.alarmTopic, hostDocument: this.hostDocument });
    this.dashboard = new OperationsDashboard(this, 'Operations', { stateMachines: this.stateMachines, steps: this.steps, alarms: this.alarms, sweeper: this.sweeper, rollout: this.rollout });

    new CfnOutput(this, 'ArtifactBucketName', { value: this.bucket.bucketName, description: 'Validated plugin tarballs (uploads/, artifacts/)' });
    new CfnOutput(this, 'HostDocumentName', { value: this.hostDocument.documentName, description: 'The SSM Command document every host step and the sweeper send (the host script inside)' });
    new CfnOutput(this, 'EventBusName', { value: this.bus.eventBusName, description: 'Plugin lifecycle events' });
    new CfnOutput(this, 'DashboardName', { value: this.dashboard.dashboard.dashboardName, description: 'The operators\' CloudWatch dashboard' });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarmTopic.topicArn, description: 'Subscribe operators here' });
    new CfnOutput(this, 'ApiUrl', { value: this.api.api.url, description: 'HTTP API base URL (stage v1); requests are signed with SigV4 for execute-api' });
    new CfnOutput(this, 'SweeperFunctionName', { value: this.sweeper.fn.functionName, description: 'The snapshot sweeper\'s function (the sweep state machine\'s three Tasks)' });
    new CfnOutput(this, 'SweepStateMachineArn', { value: this.sweeper.stateMachine.stateMachineArn, description: 'The snapshot sweep; start it with {"detail": {"dryRun": true}} to see what it would remove' });
    new CfnOutput(this, 'ApiInvokeArn', { value: this.api.invokeArn(), description: 'Allow the control plane execute-api:Invoke on this ARN' });
    for (const name of WORKFLOWS) {
      const id = `${name.charAt(0).toUpperCase()}${name.slice(1)}StateMachineArn`;
      new CfnOutput(this, id, { value: this.stateMachines[name].stateMachineArn, description: `The ${name} workflow` });
    }
    new CfnOutput(this, 'RolloutStateMachineArn', { value: this.rollout.stateMachine.stateMachineArn, description: 'The fleet rollout; its input is {rolloutId}, after the request is stored at rollouts/<rolloutId>/request.json (docs/workflows.md)' });
  }
}
