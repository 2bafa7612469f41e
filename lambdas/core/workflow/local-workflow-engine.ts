/**
 * WorkflowEngine over the in-process runner: executions run in the background of this process
 * (`pluginctl serve`), their progress kept in memory for GET /executions/{id}.
 *
 * A fleet rollout runs as `pluginctl rollout` runs it: statemachine/rollout.asl.json, its
 * installs as in-process child executions, and each continue-as-new a new execution of its own
 * name (registered here as Step Functions would list it), so GET /rollouts/{id} can ask about
 * whichever execution of the chain the rollout's record names.
 */
import { errorFromFailure } from '../errors.ts';
import type { EventSink } from '../events/event-sink.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import { runWorkflow, stateMachineArn, type RunOutcome, type StepRecord } from './local-runner.ts';
import { executionId, type ExecutionSummary, type StartedExecution, type WorkflowEngine } from './workflow-engine.ts';
import { ROLLOUT_DEFINITION, type RunnableWorkflow } from './workflow-files.ts';

interface Entry {
  summary: ExecutionSummary;
  done: Promise<void>;
  input?: Record<string, unknown>;
}

function arnOf(workflow: RunnableWorkflow, executionName: string): string {
  return `${stateMachineArn(workflow).replace(':stateMachine:', ':execution:')}:${executionName}`;
}

export class LocalWorkflowEngine implements WorkflowEngine {
  readonly #executions = new Map<string, Entry>();

  constructor(
    private readonly deps: StepDeps & { events: EventSink },
    private readonly options: { retryDelayMs?: number } = {},
  ) {}

  async start(workflow: RunnableWorkflow, executionName: string, input: Record<string, unknown>): Promise<StartedExecution> {
    const id = executionId(workflow, executionName);
    const executionArn = arnOf(workflow, executionName);
    if (this.#executions.has(id)) return { id, executionArn, executionName, existing: true };
    const summary = this.#summary(workflow, executionName);
    const run = { workflow, input, executionName, deps: this.deps, retryDelayMs: this.options.retryDelayMs };
    if (workflow === ROLLOUT_DEFINITION) {
      // The steps' hooks of a run are handed on to the executions it continues as (local-runner.ts),
      // so live step tracking could not tell the chain's executions apart: a rollout execution's
      // steps are filled in from its outcome when it ends.
      this.#track(summary, runWorkflow({ ...run, onContinued: (name, outcome) => this.#track(this.#summary(workflow, name), outcome, true) }), true);
    } else {
      const onStepEnd = (record: StepRecord): void => {
        const step = summary.steps.findLast((s) => s.name === record.name && s.status === 'running');
        if (!step) return;
        Object.assign(step, { status: record.status, ms: record.ms, attempts: record.attempts });
        if (record.error) step.error = record.error;
      };
      const onStepStart = (name: string): void => void summary.steps.push({ name, status: 'running', ms: null, attempts: 1 });
      this.#track(summary, runWorkflow({ ...run, onStepStart, onStepEnd }), false);
    }
    this.#executions.get(id)!.input = structuredClone(input);
    return { id, executionArn, executionName, existing: false };
  }

  #summary(workflow: RunnableWorkflow, executionName: string): ExecutionSummary {
    return { id: executionId(workflow, executionName), executionArn: arnOf(workflow, executionName), workflow, status: 'RUNNING', startedAt: new Date().toISOString(), stoppedAt: null, steps: [] };
  }

  #track(summary: ExecutionSummary, run: Promise<RunOutcome>, stepsFromOutcome: boolean): void {
    const done = run.then(
      (outcome) => {
        summary.status = outcome.status;
        summary.stoppedAt = new Date().toISOString();
        if (stepsFromOutcome) summary.steps = outcome.steps.map(({ name, status, ms, attempts, error }) => ({ name, status, ms, attempts, ...(error ? { error } : {}) }));
        if (outcome.status === 'FAILED') summary.error = errorFromFailure(outcome.error, outcome.cause).toJSON();
      },
      (err: unknown) => {
        summary.status = 'FAILED';
        summary.stoppedAt = new Date().toISOString();
        summary.error = { code: 'HostStepFailed', message: err instanceof Error ? err.message : String(err), hint: 'the local engine crashed; see the server log' };
      },
    );
    this.#executions.set(summary.id, { summary, done });
  }

  async find(workflow: RunnableWorkflow, executionName: string): Promise<StartedExecution | undefined> {
    const entry = this.#executions.get(executionId(workflow, executionName));
    return entry ? { id: entry.summary.id, executionArn: entry.summary.executionArn, executionName, existing: true, ...(entry.input ? { input: structuredClone(entry.input) } : {}) } : undefined;
  }

  async describe(id: string): Promise<ExecutionSummary | undefined> {
    const entry = this.#executions.get(id);
    return entry ? structuredClone(entry.summary) : undefined;
  }

  /** The ids of every execution this engine started (ListExecutions, for this process). */
  ids(): string[] {
    return [...this.#executions.keys()];
  }

  /**
   * Resolves when every execution started so far has ended (tests, graceful shutdown), the
   * executions a rollout continued as included: they register while their predecessor runs.
   */
  async idle(): Promise<void> {
    for (;;) {
      const seen = this.#executions.size;
      await Promise.all([...this.#executions.values()].map((e) => e.done));
      if (this.#executions.size === seen) return;
    }
  }
}
