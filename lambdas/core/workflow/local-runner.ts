/**
 * Runs a workflow's real ASL file in this process (aws-local-stepfunctions), with each Lambda
 * Task bound to its step function over the given ports and the EventBridge Task bound to the
 * event sink. Records every state's name, outcome and duration as the execution runs.
 */
import './polyfills.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import { bindStep } from '../../commons/step-handler.ts';
import { STEP_BY_PLACEHOLDER } from '../../handlers/all-steps.ts';
import type { EventSink, PutEventsEntry } from '../events/event-sink.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import { placeholders, substitute, workflowText, type WorkflowName } from './workflow-files.ts';

const PUT_EVENTS = 'arn:aws:states:::events:putEvents';
const LOCAL_ACCOUNT = '000000000000';
const LOCAL_REGION = 'us-east-1';

export type StepStatus = 'succeeded' | 'failed';

export interface StepRecord {
  name: string;
  type: string;
  status: StepStatus;
  ms: number;
  /** 1 + retries. */
  attempts: number;
  /** Error code when the state failed. */
  error?: string;
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

export interface RunOptions {
  workflow: WorkflowName;
  input: Record<string, unknown>;
  executionName: string;
  /** Ports of the Task states, plus the sink their EventBridge (Notify) states deliver to. */
  deps: StepDeps & { events: EventSink };
  /** Overrides every Retry pause (ms); tests use 0-10 ms so retries don't sleep for seconds. */
  retryDelayMs?: number;
  onStepStart?: (name: string) => void;
  onStepEnd?: (record: StepRecord) => void;
}

interface RawState {
  Type: string;
  Resource?: string;
}

function localArn(placeholder: string): string {
  return `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:${placeholder.replace(/FunctionArn$/, '')}`;
}

export function stateMachineArn(workflow: WorkflowName): string {
  return `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stateMachine:plugin-${workflow}`;
}

interface LoadedWorkflow {
  machine: StateMachine;
  rawStates: Record<string, RawState>;
}

// Constructing a StateMachine validates the whole definition (~75 ms); do it once per workflow.
const loaded = new Map<WorkflowName, LoadedWorkflow>();

function loadWorkflow(workflow: WorkflowName): LoadedWorkflow {
  let entry = loaded.get(workflow);
  if (!entry) {
    const raw = workflowText(workflow);
    const values: Record<string, string> = { EventBusName: 'local' };
    for (const p of placeholders(raw)) if (p !== 'EventBusName') values[p] = localArn(p);
    const definition = JSON.parse(substitute(raw, values)) as { States: Record<string, RawState> };
    entry = { machine: new StateMachine(definition as never), rawStates: (JSON.parse(raw) as { States: Record<string, RawState> }).States };
    loaded.set(workflow, entry);
  }
  return entry;
}

/** Each run binds the Task states to the step code over this run's ports. */
function buildMachine(workflow: WorkflowName, deps: StepDeps & { events: EventSink }) {
  const { machine, rawStates } = loadWorkflow(workflow);

  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const [name, state] of Object.entries(rawStates)) {
    if (state.Type !== 'Task' || !state.Resource) continue;
    if (state.Resource === PUT_EVENTS) {
      handlers[name] = async (input) => {
        await deps.events.putEvents((input as { Entries: PutEventsEntry[] }).Entries);
        return { FailedEntryCount: 0 };
      };
      continue;
    }
    const placeholder = /^\$\{([A-Za-z0-9_]+)\}$/.exec(state.Resource)?.[1];
    const step = placeholder ? STEP_BY_PLACEHOLDER.get(placeholder) : undefined;
    if (!step) throw new Error(`${workflow}.asl.json: state ${name} uses ${state.Resource}, which no step implements`);
    handlers[name] = bindStep(step, deps);
  }
  return { machine, handlers, stateNames: Object.keys(rawStates) };
}

export async function runWorkflow(options: RunOptions): Promise<RunOutcome> {
  const { machine, handlers, stateNames } = buildMachine(options.workflow, options.deps);
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
  const open = new Map<string, { type: string; started: number; attempts: number; error?: string }>();
  let transitions = 0;
  const outputs: Record<string, unknown> = {};
  let finished: Pick<RunOutcome, 'status' | 'output' | 'error' | 'cause'> | undefined;
  const close = (name: string, status: StepStatus, at: number) => {
    const s = open.get(name);
    if (!s) return;
    open.delete(name);
    const record: StepRecord = { name, type: s.type, status, ms: Math.max(0, at - s.started), attempts: s.attempts };
    if (s.error) record.error = s.error;
    steps.push(record);
    options.onStepEnd?.(record);
  };

  for await (const event of execution.eventLogs) {
    switch (event.type) {
      case 'StateEntered':
        transitions++;
        open.set(event.state.name, { type: event.state.type, started: event.timestamp, attempts: 1 });
        options.onStepStart?.(event.state.name);
        break;
      case 'StateRetried': {
        const s = open.get(event.state.name);
        if (s) s.attempts++;
        break;
      }
      case 'StateFailed': {
        const s = open.get(event.state.name);
        if (s) s.error = event.Error;
        close(event.state.name, 'failed', event.timestamp);
        break;
      }
      case 'StateExited':
        outputs[event.state.name] = event.state.output;
        close(event.state.name, 'succeeded', event.timestamp);
        break;
      case 'ExecutionSucceeded':
        finished = { status: 'SUCCEEDED', output: event.output };
        break;
      case 'ExecutionFailed':
        // Fail states and uncaught failures end here without a StateExited.
        for (const name of [...open.keys()]) {
          const s = open.get(name)!;
          s.error ??= event.Error;
          close(name, 'failed', event.timestamp);
        }
        finished = { status: 'FAILED', error: event.Error, cause: typeof event.Cause === 'string' ? event.Cause : JSON.stringify(event.Cause) };
        break;
      default:
        break;
    }
  }
  // Surface an engine crash (not a workflow failure) instead of reporting a silent success.
  await execution.result.catch((err: unknown) => {
    if (!finished) throw err;
  });
  if (!finished) throw new Error(`execution ${options.executionName} ended without a final event`);
  return { executionName: options.executionName, executionArn, ...finished, steps, transitions, outputs };
}
