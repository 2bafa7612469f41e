/**
 * Runs a workflow's real ASL file in this process (aws-local-stepfunctions), with each Lambda
 * Task bound to its step function over the given ports and the EventBridge Task bound to the
 * event sink. Records every state's name, outcome and duration as the execution runs.
 *
 * The rollout's Tasks that start other workflows are bound to this runner too: a
 * `states:startExecution.sync:2` Task runs the child workflow's own file in this process and
 * answers (or fails) exactly as Step Functions does (child-executions.ts); a plain
 * `states:startExecution` (the rollout's continue-as-new) starts it in the background and hands
 * its outcome to `onContinued`.
 */
import { StateMachine } from 'aws-local-stepfunctions';
import { bindStep } from '../../commons/step-handler.ts';
import { LOCAL_STEP_BY_PLACEHOLDER } from '../../handlers/all-steps.ts';
import type { EventSink, PutEventsEntry } from '../events/event-sink.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import { START_EXECUTION, START_EXECUTION_SYNC2, startedExecution, syncFailed, syncSucceeded, type ChildRun } from './child-executions.ts';
import { CHILD_STATE_MACHINES, definitionText, placeholders, substitute, WORKFLOWS, type RunnableWorkflow, type WorkflowName } from './workflow-files.ts';
import { isValidatedDefinition } from './validated-definitions.ts';

const PUT_EVENTS = 'arn:aws:states:::events:putEvents';
const LOCAL_ACCOUNT = '000000000000';
const LOCAL_REGION = 'us-east-1';

export type StepStatus = 'succeeded' | 'failed';

export interface StepRecord {
  name: string;
  type: string;
  status: StepStatus;
  ms: number;
  /** 1 + retries: a state retried and then succeeding is `succeeded` with attempts > 1. */
  attempts: number;
  /** Error code of the last attempt when the state failed (caught or not). */
  error?: string;
  /** Map iteration the state ran in (states inside a Map run once per item). */
  index?: number;
}

export interface RunOutcome {
  executionName: string;
  executionArn: string;
  status: 'SUCCEEDED' | 'FAILED';
  output?: unknown;
  /** From the Fail state (or the failing state when nothing caught it). */
  error?: string;
  cause?: string;
  steps: StepRecord[];
  /** State transitions (states entered), the unit Step Functions Standard bills by. */
  transitions: number;
  /** Each state's last output (small: payloads stay far below Step Functions' 256 KB). */
  outputs: Record<string, unknown>;
}

/** What the caller hears about the child executions a rollout starts. */
export interface ChildHooks {
  onStart?: (workflow: WorkflowName, executionName: string, input: Record<string, unknown>) => void;
  onEnd?: (workflow: WorkflowName, executionName: string, outcome: RunOutcome) => void;
}

export interface RunOptions {
  workflow: RunnableWorkflow;
  input: Record<string, unknown>;
  executionName: string;
  /** Ports of the Task states, plus the sink their EventBridge (Notify) states deliver to. */
  deps: StepDeps & { events: EventSink };
  /** Overrides every Retry pause (ms); tests use 0-10 ms so retries don't sleep for seconds. */
  retryDelayMs?: number;
  onStepStart?: (name: string) => void;
  onStepEnd?: (record: StepRecord) => void;
  children?: ChildHooks;
  /** A `states:startExecution` Task (continue-as-new) started this execution of the same runner. */
  onContinued?: (executionName: string, outcome: Promise<RunOutcome>) => void;
}

interface RawState {
  Type: string;
  Resource?: string;
  ItemProcessor?: { States: Record<string, RawState> };
  Iterator?: { States: Record<string, RawState> };
}

function localArn(placeholder: string): string {
  return `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:${placeholder.replace(/FunctionArn$/, '')}`;
}

export function stateMachineArn(workflow: RunnableWorkflow): string {
  return `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stateMachine:plugin-${workflow}`;
}

/** The workflow a local state machine ARN names. */
function workflowOfArn(arn: unknown): RunnableWorkflow {
  const name = typeof arn === 'string' ? /:stateMachine:plugin-([a-z]+)$/.exec(arn)?.[1] : undefined;
  if (name === 'rollout' || WORKFLOWS.includes(name as WorkflowName)) return name as RunnableWorkflow;
  const err = new Error(`State Machine Does Not Exist: '${String(arn)}'`);
  err.name = 'StepFunctions.StateMachineDoesNotExistException';
  throw err;
}

interface LoadedWorkflow {
  machine: StateMachine;
  /** Every Task state, Map iterations' included (their names are unique in our files). */
  rawStates: Record<string, RawState>;
}

// Constructing a StateMachine validates the whole definition (~75 ms, plus loading asl-validator)
// unless the build already validated this exact text (validated-definitions.ts); once per workflow.
const loaded = new Map<RunnableWorkflow, LoadedWorkflow>();

function allStates(states: Record<string, RawState>): Record<string, RawState> {
  const out: Record<string, RawState> = {};
  for (const [name, state] of Object.entries(states)) {
    if (out[name]) throw new Error(`state name ${name} is used twice`);
    out[name] = state;
    const inner = state.ItemProcessor ?? state.Iterator;
    if (inner) Object.assign(out, allStates(inner.States));
  }
  return out;
}

/** The definition the local runner gives aws-local-stepfunctions: the file with its ARNs filled in. */
export function localDefinitionText(workflow: RunnableWorkflow): string {
  const raw = definitionText(workflow);
  const values: Record<string, string> = { EventBusName: 'local' };
  for (const p of placeholders(raw)) {
    if (p === 'EventBusName') continue;
    const child = CHILD_STATE_MACHINES[p];
    values[p] = child ? stateMachineArn(child) : localArn(p);
  }
  return substitute(raw, values);
}

function loadWorkflow(workflow: RunnableWorkflow): LoadedWorkflow {
  let entry = loaded.get(workflow);
  if (!entry) {
    const text = localDefinitionText(workflow);
    const definition = JSON.parse(text) as { States: Record<string, RawState> };
    const machine = new StateMachine(definition as never, { validationOptions: { noValidate: isValidatedDefinition(text) } });
    entry = { machine, rawStates: allStates((JSON.parse(definitionText(workflow)) as { States: Record<string, RawState> }).States) };
    loaded.set(workflow, entry);
  }
  return entry;
}

interface StartExecutionInput {
  StateMachineArn?: unknown;
  Name?: unknown;
  Input?: unknown;
}

/** `states:startExecution.sync:2`: the child runs here, to its end; its failure fails the Task as on AWS. */
function syncChild(options: RunOptions) {
  return async (raw: unknown) => {
    const request = raw as StartExecutionInput;
    const workflow = workflowOfArn(request.StateMachineArn);
    if (workflow === 'rollout') throw new Error('a rollout does not start rollouts synchronously');
    const name = String(request.Name);
    const input = (request.Input ?? {}) as Record<string, unknown>;
    const startDate = new Date();
    options.children?.onStart?.(workflow, name, input);
    const outcome = await runWorkflow({ workflow, input, executionName: name, deps: options.deps, retryDelayMs: options.retryDelayMs });
    options.children?.onEnd?.(workflow, name, outcome);
    const run: ChildRun = { executionArn: outcome.executionArn, stateMachineArn: stateMachineArn(workflow), name, input, startDate, stopDate: new Date() };
    if (outcome.status === 'SUCCEEDED') return syncSucceeded(run, outcome.output);
    throw syncFailed(run, 'FAILED', outcome.error, outcome.cause);
  };
}

/** `states:startExecution`: the execution starts and the Task answers at once. */
function startChild(options: RunOptions) {
  return async (raw: unknown) => {
    const request = raw as StartExecutionInput;
    const workflow = workflowOfArn(request.StateMachineArn);
    const name = String(request.Name);
    const done = runWorkflow({ ...options, workflow, input: (request.Input ?? {}) as Record<string, unknown>, executionName: name });
    if (!options.onContinued) {
      done.catch(() => undefined);
      throw new Error(`execution ${name} was started but nobody waits for it (RunOptions.onContinued)`);
    }
    options.onContinued(name, done);
    return startedExecution(`${stateMachineArn(workflow).replace(':stateMachine:', ':execution:')}:${name}`, new Date());
  };
}

/** Each run binds the Task states to the step code over this run's ports. */
function buildMachine(options: RunOptions) {
  const { workflow, deps } = options;
  const { machine, rawStates } = loadWorkflow(workflow);

  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const [name, state] of Object.entries(rawStates)) {
    if (state.Type !== 'Task' || !state.Resource) continue;
    if (state.Resource === START_EXECUTION_SYNC2) {
      handlers[name] = syncChild(options);
      continue;
    }
    if (state.Resource === START_EXECUTION) {
      handlers[name] = startChild(options);
      continue;
    }
    if (state.Resource === PUT_EVENTS) {
      handlers[name] = async (input) => {
        await deps.events.putEvents((input as { Entries: PutEventsEntry[] }).Entries);
        return { FailedEntryCount: 0 };
      };
      continue;
    }
    const placeholder = /^\$\{([A-Za-z0-9_]+)\}$/.exec(state.Resource)?.[1];
    const step = placeholder ? LOCAL_STEP_BY_PLACEHOLDER.get(placeholder) : undefined;
    if (!step) throw new Error(`${workflow}.asl.json: state ${name} uses ${state.Resource}, which no step implements`);
    handlers[name] = bindStep(step, deps);
  }
  return { machine, handlers, stateNames: Object.keys(rawStates) };
}

export async function runWorkflow(options: RunOptions): Promise<RunOutcome> {
  const { machine, handlers, stateNames } = buildMachine(options);
  const smArn = stateMachineArn(options.workflow);
  const executionArn = `${smArn.replace(':stateMachine:', ':execution:')}:${options.executionName}`;
  const retryIntervalOverrides =
    options.retryDelayMs === undefined ? undefined : Object.fromEntries(stateNames.map((n) => [n, options.retryDelayMs!]));
  const execution = machine.run(options.input as never, {
    overrides: { taskResourceLocalHandlers: handlers as never, retryIntervalOverrides },
    context: {
      Execution: { Id: executionArn, Name: options.executionName, Input: options.input as never, StartTime: new Date().toISOString(), RoleArn: '' },
      StateMachine: { Id: smArn, Name: `plugin-${options.workflow}` },
    },
  });

  const steps: StepRecord[] = [];
  // Keyed by Map iteration and state name: a Map runs the same states for several items at once.
  // `failedAt`/`error` hold the latest attempt's failure until the runner says what came of it:
  // StateRetried (another attempt), StateCaught (the state failed, the workflow goes on) or
  // ExecutionFailed / MapIterationFailed (nothing caught it). aws-local-stepfunctions emits
  // StateFailed for every failed attempt, retried ones included.
  const open = new Map<string, { name: string; index?: number; type: string; started: number; attempts: number; error?: string; failedAt?: number }>();
  let transitions = 0;
  const outputs: Record<string, unknown> = {};
  let finished: Pick<RunOutcome, 'status' | 'output' | 'error' | 'cause'> | undefined;
  const keyOf = (event: { state: { name: string }; index?: number }) => `${event.index ?? ''}:${event.state.name}`;
  const close = (key: string, status: StepStatus, at: number) => {
    const s = open.get(key);
    if (!s) return;
    open.delete(key);
    const end = status === 'failed' ? (s.failedAt ?? at) : at;
    const record: StepRecord = { name: s.name, type: s.type, status, ms: Math.max(0, end - s.started), attempts: s.attempts };
    if (status === 'failed' && s.error) record.error = s.error;
    if (s.index !== undefined) record.index = s.index;
    steps.push(record);
    options.onStepEnd?.(record);
  };
  const failAll = (keys: string[], error: string | undefined, at: number) => {
    for (const key of keys) {
      const s = open.get(key)!;
      s.error ??= error;
      close(key, 'failed', at);
    }
  };

  for await (const event of execution.eventLogs) {
    switch (event.type) {
      case 'StateEntered': {
        transitions++;
        const index = (event as { index?: number }).index;
        open.set(keyOf(event), { name: event.state.name, ...(index === undefined ? {} : { index }), type: event.state.type, started: event.timestamp, attempts: 1 });
        options.onStepStart?.(event.state.name);
        break;
      }
      case 'StateFailed': {
        const s = open.get(keyOf(event));
        if (s) Object.assign(s, { error: event.Error, failedAt: event.timestamp });
        break;
      }
      case 'StateRetried': {
        const s = open.get(keyOf(event));
        if (s) {
          s.attempts++;
          delete s.error;
          delete s.failedAt;
        }
        break;
      }
      case 'StateCaught':
        close(keyOf(event), 'failed', event.timestamp);
        break;
      case 'StateExited':
        outputs[event.state.name] = event.state.output;
        close(keyOf(event), 'succeeded', event.timestamp);
        break;
      case 'MapIterationFailed': {
        // An uncaught failure ends its iteration without a StateExited.
        const prefix = `${event.index}:`;
        failAll([...open.keys()].filter((k) => k.startsWith(prefix)), event.Error, event.timestamp);
        break;
      }
      case 'ExecutionSucceeded':
        finished = { status: 'SUCCEEDED', output: event.output };
        break;
      case 'ExecutionFailed':
        // Fail states and uncaught failures end here without a StateExited.
        failAll([...open.keys()], event.Error, event.timestamp);
        finished = { status: 'FAILED', error: event.Error, cause: typeof event.Cause === 'string' ? event.Cause : JSON.stringify(event.Cause) };
        break;
      default:
        break;
    }
  }
  // Map iterations stopped because a sibling failed (the Map caught it) end without an event of their own.
  failAll([...open.keys()], 'States.Aborted', Date.now());
  // Surface an engine crash (not a workflow failure) instead of reporting a silent success.
  await execution.result.catch((err: unknown) => {
    if (!finished) throw err;
  });
  if (!finished) throw new Error(`execution ${options.executionName} ended without a final event`);
  return { executionName: options.executionName, executionArn, ...finished, steps, transitions, outputs };
}
