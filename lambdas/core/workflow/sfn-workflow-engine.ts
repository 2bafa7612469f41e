/**
 * WorkflowEngine on AWS Step Functions. Execution names are deterministic for a given
 * Idempotency-Key, so a retried request meets ExecutionAlreadyExists and gets the first
 * execution back instead of starting a second.
 */
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  StartExecutionCommand,
  type HistoryEvent,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { errorFromFailure, PluginError } from '../errors.ts';
import { executionId, parseExecutionId, type DescribeOptions, type ExecutionStatus, type ExecutionStepSummary, type ExecutionSummary, type StartedExecution, type WorkflowEngine } from './workflow-engine.ts';
import type { RunnableWorkflow, WorkflowName } from './workflow-files.ts';

export interface SfnWorkflowEngineOptions {
  client: SFNClient;
  /**
   * State machine ARN per workflow. The fleet rollout's is optional: a deployment without it
   * still serves every plugin route, and POST /rollouts says what is missing.
   */
  stateMachines: Record<WorkflowName, string> & { rollout?: string };
}

const TRANSIENT = new Set(['ThrottlingException', 'TooManyRequestsException', 'ServiceUnavailable', 'InternalServerError', 'RequestTimeout']);

/** SDK errors the caller can do something about become PluginErrors; the rest propagate. */
export function mapSfnError(err: unknown, doing: string): never {
  const name = (err as { name?: string } | undefined)?.name ?? '';
  const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode ?? 0;
  if (TRANSIENT.has(name) || status >= 500) {
    throw new PluginError('HostUnreachable', `Step Functions is unavailable while ${doing}: ${name || status}`, 'retry shortly');
  }
  if (name === 'AccessDeniedException') {
    throw new PluginError('HostStepFailed', `not allowed to ${doing}: ${(err as Error).message}`, 'check the api function\'s IAM policy for states:StartExecution/DescribeExecution');
  }
  if (name === 'StateMachineDoesNotExist' || name === 'InvalidArn') {
    throw new PluginError('HostStepFailed', `state machine missing while ${doing}: ${(err as Error).message}`, 'check the STATE_MACHINE_* settings of the api function');
  }
  throw err;
}

function executionArnOf(stateMachineArn: string, name: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}

/** DescribeExecution's input (a JSON string; absent when the caller may not read it). */
function inputOf(text: string | undefined): { input?: Record<string, unknown> } {
  if (!text) return {};
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? { input: value as Record<string, unknown> } : {};
  } catch {
    return {};
  }
}

export class SfnWorkflowEngine implements WorkflowEngine {
  constructor(private readonly options: SfnWorkflowEngineOptions) {}

  #arnOf(workflow: RunnableWorkflow): string {
    const arn = this.options.stateMachines[workflow];
    if (!arn) throw new PluginError('HostStepFailed', `the ${workflow} state machine is not configured in this deployment (ROLLOUT_STATE_MACHINE_ARN is not set)`, 'deploy with infra/: it creates the rollout state machine and sets ROLLOUT_STATE_MACHINE_ARN on the api function');
    return arn;
  }

  async start(workflow: RunnableWorkflow, executionName: string, input: Record<string, unknown>): Promise<StartedExecution> {
    const stateMachineArn = this.#arnOf(workflow);
    const id = executionId(workflow, executionName);
    try {
      const out = await this.options.client.send(new StartExecutionCommand({ stateMachineArn, name: executionName, input: JSON.stringify(input) }));
      return { id, executionArn: out.executionArn!, executionName, existing: false };
    } catch (err) {
      if (err instanceof ExecutionAlreadyExists || (err as { name?: string }).name === 'ExecutionAlreadyExists') {
        return { id, executionArn: executionArnOf(stateMachineArn, executionName), executionName, existing: true };
      }
      return mapSfnError(err, `starting ${workflow}`);
    }
  }

  async find(workflow: RunnableWorkflow, executionName: string): Promise<StartedExecution | undefined> {
    const executionArn = executionArnOf(this.#arnOf(workflow), executionName);
    let described;
    try {
      described = await this.options.client.send(new DescribeExecutionCommand({ executionArn }));
    } catch (err) {
      if (err instanceof ExecutionDoesNotExist || (err as { name?: string }).name === 'ExecutionDoesNotExist') return undefined;
      return mapSfnError(err, `looking up ${executionName}`);
    }
    return { id: executionId(workflow, executionName), executionArn, executionName, existing: true, ...inputOf(described.input) };
  }

  async describe(id: string, options: DescribeOptions = {}): Promise<ExecutionSummary | undefined> {
    const { workflow, executionName } = parseExecutionId(id);
    const executionArn = executionArnOf(this.#arnOf(workflow), executionName);
    let described;
    try {
      described = await this.options.client.send(new DescribeExecutionCommand({ executionArn }));
    } catch (err) {
      if (err instanceof ExecutionDoesNotExist || (err as { name?: string }).name === 'ExecutionDoesNotExist') return undefined;
      return mapSfnError(err, `describing ${id}`);
    }
    const events: HistoryEvent[] = [];
    let nextToken: string | undefined;
    try {
      if (options.steps !== false) {
        do {
          const page = await this.options.client.send(new GetExecutionHistoryCommand({ executionArn, nextToken, maxResults: 1000, includeExecutionData: false }));
          events.push(...(page.events ?? []));
          nextToken = page.nextToken;
        } while (nextToken);
      }
    } catch (err) {
      return mapSfnError(err, `reading the history of ${id}`);
    }
    const summary: ExecutionSummary = {
      id,
      executionArn,
      workflow,
      status: (described.status ?? 'RUNNING') as ExecutionStatus,
      startedAt: (described.startDate ?? new Date(0)).toISOString(),
      stoppedAt: described.stopDate ? described.stopDate.toISOString() : null,
      steps: summarizeHistory(events),
    };
    if (described.status === 'FAILED') summary.error = errorFromFailure(described.error, described.cause).toJSON();
    return summary;
  }
}

/** Scheduling one attempt of a Task (Lambda, service integration, or the legacy Lambda integration). */
const ATTEMPT_STARTS = new Set(['TaskScheduled', 'LambdaFunctionScheduled', 'ActivityScheduled']);

/** An attempt ended in failure: the Task's Retry may try again, its Catch may move on, or the execution fails. */
const ATTEMPT_FAILURES = new Set([
  'TaskFailed',
  'TaskTimedOut',
  'TaskStartFailed',
  'TaskSubmitFailed',
  'LambdaFunctionFailed',
  'LambdaFunctionTimedOut',
  'LambdaFunctionStartFailed',
  'LambdaFunctionScheduleFailed',
  'ActivityFailed',
  'ActivityTimedOut',
  'ActivityScheduleFailed',
  'MapStateFailed',
  'ParallelStateFailed',
]);

function failureOf(e: HistoryEvent): string {
  const details =
    e.taskFailedEventDetails ??
    e.taskTimedOutEventDetails ??
    e.taskStartFailedEventDetails ??
    e.taskSubmitFailedEventDetails ??
    e.lambdaFunctionFailedEventDetails ??
    e.lambdaFunctionTimedOutEventDetails ??
    e.lambdaFunctionStartFailedEventDetails ??
    e.lambdaFunctionScheduleFailedEventDetails ??
    e.activityFailedEventDetails ??
    e.activityTimedOutEventDetails ??
    e.activityScheduleFailedEventDetails;
  return details?.error ?? (e.type?.endsWith('TimedOut') ? 'States.Timeout' : 'States.TaskFailed');
}

type OpenStep = ExecutionStepSummary & { started: number; failedAt?: number };

/**
 * One entry per state entered, with its outcome, duration and attempts, from the history events.
 *
 * As Step Functions writes them: a Task's attempts are each a TaskScheduled (LambdaFunctionScheduled
 * for the legacy integration) … TaskSucceeded/TaskFailed/TaskTimedOut inside one
 * TaskStateEntered … TaskStateExited; a failure a Catch handles still ends in TaskStateExited, so
 * a state whose last attempt failed is `failed` whether or not it was caught, and one whose last
 * attempt succeeded is `succeeded` with `attempts` > 1 after retries. An uncaught failure ends the
 * execution (ExecutionFailed) without a StateExited.
 *
 * Events are tied to their state through `previousEventId` (each event names the one before it in
 * its own line of execution), so the iterations of a Map, which run the same states at once and
 * interleave in the history, are told apart. A history without `previousEventId` falls back to
 * the latest state entered.
 */
export function summarizeHistory(events: HistoryEvent[]): ExecutionStepSummary[] {
  const steps: OpenStep[] = [];
  const owner = new Map<number, OpenStep>();
  const stepOf = (e: HistoryEvent): OpenStep | undefined => (e.previousEventId !== undefined && owner.has(e.previousEventId) ? owner.get(e.previousEventId) : e.previousEventId === undefined ? steps.findLast((x) => x.status === 'running') : undefined);
  const fail = (s: OpenStep, error: string | undefined, at: number) => {
    s.status = 'failed';
    s.ms = Math.max(0, (s.failedAt ?? at) - s.started);
    s.error ??= error;
  };
  for (const e of events) {
    const at = e.timestamp ? e.timestamp.getTime() : 0;
    if (e.stateEnteredEventDetails?.name) {
      const s: OpenStep = { name: e.stateEnteredEventDetails.name, status: 'running', ms: null, attempts: 0, started: at };
      steps.push(s);
      if (e.id !== undefined) owner.set(e.id, s);
      continue;
    }
    const s = stepOf(e);
    if (s && e.id !== undefined) owner.set(e.id, s);
    if (ATTEMPT_STARTS.has(e.type ?? '')) {
      if (s) {
        s.attempts++;
        // A new attempt: the previous one's failure was retried.
        delete s.error;
        delete s.failedAt;
      }
    } else if (ATTEMPT_FAILURES.has(e.type ?? '')) {
      if (s) {
        s.error = failureOf(e);
        s.failedAt = at;
      }
    } else if (e.stateExitedEventDetails?.name) {
      const exited = s?.name === e.stateExitedEventDetails.name ? s : steps.findLast((x) => x.name === e.stateExitedEventDetails!.name && x.status === 'running');
      if (exited && exited.status === 'running') {
        if (exited.failedAt !== undefined) fail(exited, exited.error, at);
        else {
          exited.status = 'succeeded';
          exited.ms = Math.max(0, at - exited.started);
        }
      }
    } else if (e.type === 'MapIterationFailed' || e.type === 'MapIterationAborted') {
      // An uncaught failure ends its iteration without a StateExited; siblings are aborted.
      if (s?.status === 'running') fail(s, e.type === 'MapIterationAborted' ? 'States.Aborted' : s.error, at);
    } else if (e.type === 'ExecutionFailed' || e.type === 'ExecutionTimedOut' || e.type === 'ExecutionAborted') {
      const error = e.executionFailedEventDetails?.error ?? e.executionTimedOutEventDetails?.error ?? (e.type === 'ExecutionTimedOut' ? 'States.Timeout' : e.type);
      for (const x of steps) if (x.status === 'running') fail(x, error, at);
    }
  }
  return steps.map(({ started: _started, failedAt: _failedAt, ...rest }) => ({ ...rest, attempts: Math.max(1, rest.attempts) }));
}
