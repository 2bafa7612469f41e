/**
 * The `WorkflowEngine` port: start a workflow execution and read back how it is going. Adapters:
 * AWS Step Functions (sfn-workflow-engine.ts) and the in-process runner (local-workflow-engine.ts)
 * behind `pluginctl serve`. Besides the plugin workflows it starts the fleet rollout
 * (POST /rollouts), so the api Lambda and `pluginctl serve` share the route code.
 */
import { PluginError } from '../errors.ts';
import { ROLLOUT_DEFINITION, WORKFLOWS, type RunnableWorkflow } from './workflow-files.ts';

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export interface StartedExecution {
  /** `<workflow>.<executionName>`: what GET /executions/{id} takes. */
  id: string;
  executionArn: string;
  executionName: string;
  /** True when an execution of that name already existed (an idempotent retry). */
  existing: boolean;
  /** The input the execution was started with (find() only; what a replay is compared with). */
  input?: Record<string, unknown>;
}

export interface ExecutionStepSummary {
  name: string;
  status: 'succeeded' | 'failed' | 'running';
  ms: number | null;
  attempts: number;
  error?: string;
}

export interface ExecutionSummary {
  id: string;
  executionArn: string;
  workflow: RunnableWorkflow;
  status: ExecutionStatus;
  startedAt: string;
  stoppedAt: string | null;
  steps: ExecutionStepSummary[];
  error?: { code: string; message: string; hint: string };
}

export interface DescribeOptions {
  /**
   * false: status, dates and error only, no per-step summary. A rollout's history runs to
   * thousands of events (20 pages of GetExecutionHistory); GET /rollouts/{id} needs its status only.
   */
  steps?: boolean;
}

export interface WorkflowEngine {
  start(workflow: RunnableWorkflow, executionName: string, input: Record<string, unknown>): Promise<StartedExecution>;
  /** Undefined when there is no such execution. */
  describe(id: string, options?: DescribeOptions): Promise<ExecutionSummary | undefined>;
  /** The execution of that name, if one was started, with its input (cheap: no history). */
  find(workflow: RunnableWorkflow, executionName: string): Promise<StartedExecution | undefined>;
}

export function executionId(workflow: RunnableWorkflow, executionName: string): string {
  return `${workflow}.${executionName}`;
}

const ENGINE_WORKFLOWS: readonly RunnableWorkflow[] = [...WORKFLOWS, ROLLOUT_DEFINITION];

export function parseExecutionId(id: string): { workflow: RunnableWorkflow; executionName: string } {
  const dot = id.indexOf('.');
  const workflow = id.slice(0, dot) as RunnableWorkflow;
  const executionName = id.slice(dot + 1);
  if (dot < 0 || !ENGINE_WORKFLOWS.includes(workflow) || !/^[A-Za-z0-9_-]{1,80}$/.test(executionName)) {
    throw new PluginError('InvalidInput', `invalid execution id ${JSON.stringify(id.slice(0, 100))}`, 'use the id returned when the operation was started, e.g. install.<execution name>');
  }
  return { workflow, executionName };
}
