/**
 * The fleet rollout's state machine, `<stackName>-rollout`, from the very file the local runner
 * executes (statemachine/rollout.asl.json), inline as the plugin workflows are (workflows.ts).
 * CloudFormation fills its placeholders: the rollout steps' `${…FunctionArn}`s (StepLambdas),
 * `${InstallStateMachineArn}` / `${RollbackStateMachineArn}` / `${UninstallStateMachineArn}` (the
 * child workflows each target runs as its own execution) and `${EventBusName}`. Continue-as-new
 * starts `$$.StateMachine.Id`, so the definition never names its own ARN.
 *
 * It logs to the plugin workflows' execution log group, so one place holds every execution's
 * history and the alarms' metric filters see its NotificationUndelivered… states (alarms.ts; its
 * verdicts RolloutHalted and RolloutFailed summarize child executions that are counted on their
 * own, so they are not paged twice).
 *
 * The role, nothing more (statement ids as in the template):
 *   InvokeRolloutSteps     lambda:InvokeFunction on the six rollout step functions
 *   NotifyOnBus            events:PutEvents on the plugin bus
 *   StartChildWorkflows    states:StartExecution on the install, rollback and uninstall state
 *                          machines, and on this one (continue-as-new); its ARN is built from its
 *                          name (Stack.formatArn), since a reference to itself would be circular
 *   FollowChildWorkflows   states:DescribeExecution, states:StopExecution on those three machines'
 *                          executions (`.sync:2` polls the child, and stops it when the rollout is stopped)
 *   SyncCompletionRule     events:PutTargets, events:PutRule, events:DescribeRule on the managed rule
 *                          StepFunctionsGetEventsForStepFunctionsExecutionRule (how `.sync` hears a
 *                          child ended)
 * plus what Step Functions needs for logging and X-Ray (acknowledgeStateMachineRole).
 */
import { ArnFormat, Stack } from 'aws-cdk-lib';
import type { IEventBus } from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { CHILD_STATE_MACHINES, definitionText, placeholders, ROLLOUT_DEFINITION, WORKFLOWS, type WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { acknowledgeWildcardResource } from './nag.ts';
import { MAX_STATE_MACHINE_NAME, stackScopedName } from './physical-names.ts';
import type { StepLambda, StepLambdas } from './step-functions.ts';
import { acknowledgeStateMachineRole, EVENT_BUS_PLACEHOLDER } from './workflows.ts';

/** The managed EventBridge rule Step Functions uses to learn that a `.sync` child execution ended. */
export const SYNC_EVENTS_RULE = 'StepFunctionsGetEventsForStepFunctionsExecutionRule';

/** The name a state machine is deployed under: the literal when it has one (ours do), else its Name attribute. */
export function deployedName(machine: sfn.StateMachine): string {
  return (machine.node.defaultChild as sfn.CfnStateMachine).stateMachineName ?? machine.stateMachineName;
}

/** `arn:<partition>:states:<region>:<account>:execution:<machine name>:*`: every execution of one state machine. */
export function executionsOf(scope: Construct, machineName: string): string {
  return Stack.of(scope).formatArn({ service: 'states', resource: 'execution', resourceName: `${machineName}:*`, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
}

export interface RolloutWorkflowProps {
  readonly steps: StepLambdas;
  readonly bus: IEventBus;
  /** The child workflows, by name (their names scope the execution ARNs). */
  readonly stateMachines: Readonly<Record<WorkflowName, sfn.StateMachine>>;
  /** The plugin workflows' execution log group (Workflows.logGroup). */
  readonly logGroup: logs.ILogGroup;
}

export class RolloutWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;
  /** `<stackName>-rollout`. */
  readonly stateMachineName: string;
  /** The rollout steps its definition invokes, in first-use order. */
  readonly steps: readonly StepLambda[];

  constructor(scope: Construct, id: string, props: RolloutWorkflowProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const text = definitionText(ROLLOUT_DEFINITION);
    this.stateMachineName = stackScopedName(this, ROLLOUT_DEFINITION, MAX_STATE_MACHINE_NAME);

    const substitutions: Record<string, string> = {};
    const steps: StepLambda[] = [];
    const children: WorkflowName[] = [];
    for (const placeholder of placeholders(text)) {
      if (placeholder === EVENT_BUS_PLACEHOLDER) {
        substitutions[placeholder] = props.bus.eventBusName;
        continue;
      }
      const child = CHILD_STATE_MACHINES[placeholder];
      if (child) {
        substitutions[placeholder] = props.stateMachines[child].stateMachineArn;
        children.push(child);
        continue;
      }
      const step = props.steps.rolloutSteps.find((s) => s.placeholder === placeholder);
      if (!step) throw new Error(`statemachine/${ROLLOUT_DEFINITION}.asl.json uses \${${placeholder}}, which no rollout step Lambda or child state machine fills`);
      substitutions[placeholder] = step.fn.functionArn;
      steps.push(step);
    }
    this.steps = steps;
    // Sorted as WORKFLOWS, so the role's statements do not depend on the file's order.
    const childNames = WORKFLOWS.filter((w) => children.includes(w));

    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: this.stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: `workspace-plugin-installer: fleet rollout (statemachine/${ROLLOUT_DEFINITION}.asl.json)`,
      definitionBody: sfn.DefinitionBody.fromString(text),
      definitionSubstitutions: substitutions,
      logs: { destination: props.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      tracingEnabled: true,
    });

    // The ASL invokes the unqualified function ARN: no `:*` (versions, aliases) needed.
    this.stateMachine.addToRolePolicy(new iam.PolicyStatement({
      sid: 'InvokeRolloutSteps',
      actions: ['lambda:InvokeFunction'],
      resources: steps.map((s) => s.fn.functionArn),
    }));
    this.stateMachine.addToRolePolicy(new iam.PolicyStatement({
      sid: 'NotifyOnBus',
      actions: ['events:PutEvents'],
      resources: [props.bus.eventBusArn],
    }));
    const ownArn = stack.formatArn({ service: 'states', resource: 'stateMachine', resourceName: this.stateMachineName, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    this.stateMachine.addToRolePolicy(new iam.PolicyStatement({
      sid: 'StartChildWorkflows',
      actions: ['states:StartExecution'],
      resources: [...childNames.map((w) => props.stateMachines[w].stateMachineArn), ownArn],
    }));
    const childExecutions = childNames.map((w) => executionsOf(this, deployedName(props.stateMachines[w])));
    this.stateMachine.addToRolePolicy(new iam.PolicyStatement({
      sid: 'FollowChildWorkflows',
      actions: ['states:DescribeExecution', 'states:StopExecution'],
      resources: childExecutions,
    }));
    this.stateMachine.addToRolePolicy(new iam.PolicyStatement({
      sid: 'SyncCompletionRule',
      actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
      resources: [stack.formatArn({ service: 'events', resource: 'rule', resourceName: SYNC_EVENTS_RULE })],
    }));

    for (const [i, arn] of childExecutions.entries()) {
      acknowledgeWildcardResource(
        this.stateMachine.role,
        arn,
        `Each target's child execution is named per target (<workspace>-<plugin>-<stamp>) when the wave is planned; the rollout follows and stops only executions of the ${childNames[i]} state machine this stack deploys.`,
      );
    }
    acknowledgeStateMachineRole(this.stateMachine);
  }
}
