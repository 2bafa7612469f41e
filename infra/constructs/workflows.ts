/**
 * The three Standard state machines, from the very ASL files the local runner executes
 * (statemachine/<name>.asl.json). Their `${…FunctionArn}` and `${EventBusName}` placeholders are
 * filled by CloudFormation through `DefinitionSubstitutions`; a placeholder this construct cannot
 * fill fails synthesis.
 *
 * The file's text goes inline into the template (`DefinitionString`) rather than through
 * `DefinitionBody.fromFile`, which uploads it as a separate S3 asset (`DefinitionS3Location`):
 * inline, the template is self-contained, its definition can be reviewed and asserted, and there is
 * one asset fewer to publish. The bytes are the file's, unchanged.
 *
 * The state machine role may invoke exactly the step functions its definition names and put
 * events on the plugin bus, plus what Step Functions needs for logging and X-Ray.
 */
import { Stack } from 'aws-cdk-lib';
import type { IEventBus } from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct, type IConstruct } from 'constructs';
import { placeholders, WORKFLOWS, workflowText, type WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { acknowledgeWildcardResource } from './nag.ts';
import { MAX_STATE_MACHINE_NAME, stackCreationId, stackScopedName } from './physical-names.ts';
import type { StepLambda, StepLambdas } from './step-functions.ts';

export const EVENT_BUS_PLACEHOLDER = 'EventBusName';

/** `install` → `<stackName>-install`: two stacks in one region get their own state machines. */
export function stateMachineName(scope: IConstruct, workflow: WorkflowName): string {
  return stackScopedName(scope, workflow, MAX_STATE_MACHINE_NAME);
}

/**
 * Every state machine of the stack (the three workflows, the sweep) logs to CloudWatch Logs and
 * traces with X-Ray; Step Functions' log delivery and X-Ray actions have no resource-level
 * permissions, so CDK grants them on "*". One acknowledgement, one reason, for each such role.
 */
export function acknowledgeStateMachineRole(stateMachine: sfn.StateMachine): void {
  acknowledgeWildcardResource(
    stateMachine.role,
    '*',
    'Resource "*" only for what Step Functions itself needs and IAM cannot scope: CloudWatch Logs log-delivery actions (logs:CreateLogDelivery and friends) and X-Ray trace segments.',
  );
}

export interface WorkflowsProps {
  readonly steps: StepLambdas;
  readonly bus: IEventBus;
  /** Default one month. */
  readonly logRetention?: logs.RetentionDays;
}

export interface Workflow {
  readonly name: WorkflowName;
  readonly stateMachine: sfn.StateMachine;
  /** The steps its definition invokes, in first-use order. */
  readonly steps: readonly StepLambda[];
}

export class Workflows extends Construct {
  readonly workflows: Readonly<Record<WorkflowName, Workflow>>;
  readonly stateMachines: Readonly<Record<WorkflowName, sfn.StateMachine>>;
  /** Execution history of all three state machines (level ALL, without execution data). */
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: WorkflowsProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'ExecutionLogs', {
      // Step Functions recommends the /aws/vendedlogs/ prefix: it keeps the CloudWatch Logs
      // resource policy for log delivery from outgrowing its size limit. The group is retained on
      // delete (it holds the execution history), so its name carries the stack's creation id:
      // a redeploy after `cdk destroy` creates a new group instead of failing on the old one.
      logGroupName: `/aws/vendedlogs/states/${Stack.of(this).stackName}-workflows-${stackCreationId()}`,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    });

    const workflows = {} as Record<WorkflowName, Workflow>;
    for (const name of WORKFLOWS) workflows[name] = this.workflow(name, props);
    this.workflows = workflows;
    this.stateMachines = Object.fromEntries(WORKFLOWS.map((n) => [n, workflows[n].stateMachine])) as Record<WorkflowName, sfn.StateMachine>;
  }

  private workflow(name: WorkflowName, props: WorkflowsProps): Workflow {
    const substitutions: Record<string, string> = {};
    const steps: StepLambda[] = [];
    for (const placeholder of placeholders(workflowText(name))) {
      if (placeholder === EVENT_BUS_PLACEHOLDER) {
        substitutions[placeholder] = props.bus.eventBusName;
        continue;
      }
      const step = props.steps.forPlaceholder(placeholder);
      if (!step) throw new Error(`statemachine/${name}.asl.json uses \${${placeholder}}, which no step Lambda fills`);
      substitutions[placeholder] = step.fn.functionArn;
      steps.push(step);
    }

    const id = name.charAt(0).toUpperCase() + name.slice(1);
    const stateMachine = new sfn.StateMachine(this, id, {
      stateMachineName: stateMachineName(this, name),
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: `workspace-plugin-installer: ${name} (statemachine/${name}.asl.json)`,
      definitionBody: sfn.DefinitionBody.fromString(workflowText(name)),
      definitionSubstitutions: substitutions,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      tracingEnabled: true,
    });
    if (steps.length > 0) {
      // The ASL invokes the unqualified function ARN: no `:*` (versions, aliases) needed.
      stateMachine.addToRolePolicy(new iam.PolicyStatement({
        sid: 'InvokeSteps',
        actions: ['lambda:InvokeFunction'],
        resources: steps.map((s) => s.fn.functionArn),
      }));
    }
    if (substitutions[EVENT_BUS_PLACEHOLDER] !== undefined) {
      stateMachine.addToRolePolicy(new iam.PolicyStatement({
        sid: 'NotifyOnBus',
        actions: ['events:PutEvents'],
        resources: [props.bus.eventBusArn],
      }));
    }
    acknowledgeStateMachineRole(stateMachine);
    return { name, stateMachine, steps };
  }
}
