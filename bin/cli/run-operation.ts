/**
 * Runs one workflow for the CLI and turns its outcome into the contract: the `--json` object or
 * a line per step for a person, and the exit code.
 */
import { errorFromFailure } from '../../lambdas/core/errors.ts';
import type { LocalDeps } from '../../lambdas/commons/local-deps.ts';
import { runWorkflow, type StepRecord } from '../../lambdas/core/workflow/local-runner.ts';
import type { WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { EXIT, statusOfError, type OutcomeStatus } from './exit-codes.ts';

export interface OperationReport {
  status: OutcomeStatus;
  workspace: string;
  plugin: string | null;
  version: string | null;
  sha256: string | null;
  stamp: string;
  execution: string;
  /** attempts: 1 + retries (a step retried and then succeeding is `succeeded`). */
  steps: { name: string; status: string; ms: number; attempts: number }[];
  error?: { code: string; message: string; hint: string };
}

export interface OperationRequest {
  workflow: WorkflowName;
  input: Record<string, unknown>;
  executionName: string;
  deps: LocalDeps;
  json: boolean;
  /** stdout: the step lines, the success line, the `--json` object. */
  write: (text: string) => void;
  /** stderr: why the operation did not succeed, always (with `--json` too), so a script's log shows it. */
  writeErr: (text: string) => void;
  /** Fills plugin/version/sha256 after the run (e.g. from the live marker). */
  describe: (outputs: Record<string, unknown>, succeeded: boolean) => Promise<Pick<OperationReport, 'plugin' | 'version' | 'sha256'>>;
  successLine: (report: OperationReport, ms: number) => string;
  retryDelayMs?: number;
}

const NAME_WIDTH = 30;

/** `✓` succeeded at once, `↻` succeeded after retries, `✗` failed (caught or not). */
function stepLine(r: StepRecord): string {
  const mark = r.status === 'failed' ? '✗' : r.attempts > 1 ? '↻' : '✓';
  const label = r.attempts > 1 ? `${r.name} (${r.attempts} attempts)` : r.name;
  const error = r.status === 'failed' && r.error ? `  ${r.error}` : '';
  return `  ${mark} ${label.padEnd(NAME_WIDTH)} ${String(r.ms).padStart(6)} ms${error}\n`;
}

/** Whether a RollBack state ran and reported that it had to put live back. */
function liveWasChanged(outputs: Record<string, unknown>): boolean {
  const state = outputs.RollBack as { rollback?: { changed?: unknown } } | undefined;
  return state?.rollback?.changed === true;
}

export async function runOperation(req: OperationRequest): Promise<{ report: OperationReport; exit: number }> {
  const started = Date.now();
  if (!req.json) req.write(`  execution ${req.executionName}\n`);
  const outcome = await runWorkflow({
    workflow: req.workflow,
    input: req.input,
    executionName: req.executionName,
    deps: req.deps,
    retryDelayMs: req.retryDelayMs,
    onStepEnd: req.json ? undefined : (r) => req.write(stepLine(r)),
  });
  const succeeded = outcome.status === 'SUCCEEDED';
  const described = await req.describe(outcome.outputs, succeeded).catch(() => ({ plugin: null, version: null, sha256: null }));
  const report: OperationReport = {
    status: 'succeeded',
    workspace: String(req.input.workspace),
    ...described,
    stamp: String(req.input.stamp),
    execution: outcome.executionName,
    steps: outcome.steps.map((s) => ({ name: s.name, status: s.status, ms: s.ms, attempts: s.attempts })),
  };
  let exit: number = EXIT.ok;
  if (!succeeded) {
    const error = errorFromFailure(outcome.error, outcome.cause);
    const mapped = statusOfError(error.code, liveWasChanged(outcome.outputs));
    report.status = mapped.status;
    report.error = error.toJSON();
    exit = mapped.exit;
  }
  const ms = Date.now() - started;
  if (req.json) req.write(JSON.stringify(report) + '\n');
  else if (succeeded) req.write(req.successLine(report, ms) + '\n');
  if (!succeeded) {
    const what = {
      refused: 'refused',
      busy: 'busy',
      failed: 'failed before live was touched (nothing changed)',
      'rolled-back': 'failed and rolled back (live is as it was)',
      'needs-operator': 'FAILED: operator needed',
      succeeded: '',
    }[report.status];
    // A multi-line message (a failed health check quotes its output) is indented under its first line.
    req.writeErr(`pluginctl: ${what}: ${report.error!.code}: ${report.error!.message.replace(/\n/g, '\n    ')}\n`);
    if (report.error!.hint) req.writeErr(`  hint: ${report.error!.hint}\n`);
  }
  return { report, exit };
}
