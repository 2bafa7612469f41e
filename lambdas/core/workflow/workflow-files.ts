/**
 * The workflow definitions: the very files CDK deploys (statemachine/*.asl.json), with their
 * `${…}` placeholders filled in.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const WORKFLOWS = ['install', 'rollback', 'uninstall'] as const;
export type WorkflowName = (typeof WORKFLOWS)[number];

export function workflowPath(name: WorkflowName): string {
  return fileURLToPath(new URL(`../../../statemachine/${name}.asl.json`, import.meta.url));
}

export function workflowText(name: WorkflowName): string {
  return readFileSync(workflowPath(name), 'utf8');
}

/**
 * The snapshot sweep's state machine (not a plugin workflow: its one Lambda is the sweeper,
 * `${SweeperFunctionArn}`, and the EventBridge schedule starts it; infra/constructs/snapshot-sweeper.ts).
 */
export const SWEEP_DEFINITION = 'sweep';
export const SWEEPER_PLACEHOLDER = 'SweeperFunctionArn';

export function sweepDefinitionPath(): string {
  return fileURLToPath(new URL(`../../../statemachine/${SWEEP_DEFINITION}.asl.json`, import.meta.url));
}

export function sweepDefinitionText(): string {
  return readFileSync(sweepDefinitionPath(), 'utf8');
}

/**
 * The fleet rollout (statemachine/rollout.asl.json): not one of WORKFLOWS (it starts them). Its
 * Tasks are the rollout steps' `${…FunctionArn}`s, the child workflows' `${…StateMachineArn}`s
 * and `${EventBusName}`.
 */
export const ROLLOUT_DEFINITION = 'rollout' as const;
/** What the local runner executes: the plugin workflows and the rollout that starts them. */
export type RunnableWorkflow = WorkflowName | typeof ROLLOUT_DEFINITION;
/** The child workflows the rollout starts, by the placeholder of their ARN. */
export const CHILD_STATE_MACHINES: Record<string, WorkflowName> = {
  InstallStateMachineArn: 'install',
  RollbackStateMachineArn: 'rollback',
  UninstallStateMachineArn: 'uninstall',
};

export function definitionPath(name: RunnableWorkflow): string {
  return fileURLToPath(new URL(`../../../statemachine/${name}.asl.json`, import.meta.url));
}

export function definitionText(name: RunnableWorkflow): string {
  return readFileSync(definitionPath(name), 'utf8');
}

/** Every `${Name}` placeholder a definition uses. */
export function placeholders(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]!))];
}

/** Fills placeholders as Step Functions' definitionSubstitutions does; an unknown one is an error. */
export function substitute(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`no substitution for \${${key}}`);
    return value;
  });
}
