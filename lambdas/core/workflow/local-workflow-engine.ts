/**
 * WorkflowEngine over the in-process runner: executions run in the background of this process
 * (`pluginctl serve`), their progress kept in memory for GET /executions/{id}.
 */
import { errorFromFailure } from '../errors.ts';
import type { EventSink } from '../events/event-sink.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import { runWorkflow, stateMachineArn } from './local-runner.ts';
import { executionId, type ExecutionSummary, type StartedExecution, type WorkflowEngine } from './workflow-engine.ts';
import type { WorkflowName } from './workflow-files.ts';

export class LocalWorkflowEngine implements WorkflowEngine {
  readonly #executions = new Map<string, { summary: ExecutionSummary; done: Promise<void> }>();

  constructor(
    private readonly deps: StepDeps & { events: EventSink },
    private readonly options: { retryDelayMs?: number } = {},
  ) {}

  async start(workflow: WorkflowName, executionName: string, input: Record<string, unknown>): Promise<StartedExecution> {
    const id = executionId(workflow, executionName);
    const executionArn = `${stateMachineArn(workflow).replace(':stateMachine:', ':execution:')}:${executionName}`;
    if (this.#executions.has(id)) return { id, executionArn, executionName, existing: true };
    const summary: ExecutionSummary = { id, executionArn, workflow, status: 'RUNNING', startedAt: new Date().toISOString(), stoppedAt: null, steps: [] };
    const done = runWorkflow({
      workflow,
      input,
      executionName,
      deps: this.deps,
      retryDelayMs: this.options.retryDelayMs,
      onStepStart: (name) => summary.steps.push({ name, status: 'running', ms: null, attempts: 1 }),
      onStepEnd: (record) => {
        const step = summary.steps.findLast((s) => s.name === record.name && s.status === 'running');
        if (!step) return;
        Object.assign(step, { status: record.status, ms: record.ms, attempts: record.attempts });
        if (record.error) step.error = record.error;
      },
    }).then(
      (outcome) => {
        summary.status = outcome.status;
        summary.stoppedAt = new Date().toISOString();
        if (outcome.status === 'FAILED') summary.error = errorFromFailure(outcome.error, outcome.cause).toJSON();
      },
      (err: unknown) => {
        summary.status = 'FAILED';
        summary.stoppedAt = new Date().toISOString();
        summary.error = { code: 'HostStepFailed', message: err instanceof Error ? err.message : String(err), hint: 'the local engine crashed; see the server log' };
      },
    );
    this.#executions.set(id, { summary, done });
    return { id, executionArn, executionName, existing: false };
  }

  async find(workflow: WorkflowName, executionName: string): Promise<StartedExecution | undefined> {
    const entry = this.#executions.get(executionId(workflow, executionName));
    return entry ? { id: entry.summary.id, executionArn: entry.summary.executionArn, executionName, existing: true } : undefined;
  }

  async describe(id: string): Promise<ExecutionSummary | undefined> {
    const entry = this.#executions.get(id);
    return entry ? structuredClone(entry.summary) : undefined;
  }

  /** Resolves when every execution started so far has ended (tests, graceful shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.#executions.values()].map((e) => e.done));
  }
}
