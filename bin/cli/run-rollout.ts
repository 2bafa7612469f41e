/**
 * `pluginctl rollout`: stores the request, runs statemachine/rollout.asl.json in this process
 * (following its continue-as-new chain to the end) and turns the rollout's report into the
 * contract: the `--json` object or progress for a person, and the exit code.
 *   0 every target succeeded or was skipped · 2 refused, nothing started · 3 halted, or some
 *   target failed · 4 another rollout holds the plugin
 */
import { errorFromFailure, PluginError } from '../../lambdas/core/errors.ts';
import type { EventSink } from '../../lambdas/core/events/event-sink.ts';
import { contractReport, readRolloutReport, type RolloutReport, type WorkspaceReport } from '../../lambdas/core/rollout/rollout-report.ts';
import { storeRolloutRequest } from '../../lambdas/core/rollout/rollout-request.ts';
import type { RolloutRequest } from '../../lambdas/core/rollout/rollout-record.ts';
import type { RolloutStore } from '../../lambdas/core/rollout/rollout-store.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import type { StepDeps } from '../../lambdas/core/steps/step-deps.ts';
import { runWorkflow, type RunOutcome } from '../../lambdas/core/workflow/local-runner.ts';
import { EXIT, statusOfError } from './exit-codes.ts';
import { rolloutRefusalJson } from './rollout-refusal-json.ts';

export interface RolloutRun {
  /** pluginctl's local ports; tests and the bench drive the same loop over the AWS adapters. */
  deps: StepDeps & { events: EventSink; rollouts: RolloutStore };
  request: RolloutRequest;
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
  /** A terminal: one progress line rewritten in place; otherwise one line per finished workspace. */
  tty: boolean;
  retryDelayMs?: number;
  /** Each execution's outcome as it ends: the rollout's own (its continue-as-new chain) and its children's. */
  onExecution?: (outcome: RunOutcome, kind: 'rollout' | 'child') => void;
}

function line(w: WorkspaceReport): string {
  const what = w.error ? `${w.status}: ${w.error.code}: ${w.error.message}` : w.status;
  return `  ${w.workspace.padEnd(24)} ${what}${w.execution ? `  (${w.execution})` : ''}\n`;
}

export async function runRollout(run: RolloutRun): Promise<number> {
  const { deps, request } = run;
  await storeRolloutRequest(deps.rollouts, request);
  const printed = new Map<string, string>();
  let inFlight = 0;
  let last: RolloutReport | undefined;

  const progress = async () => {
    if (run.json) return;
    last = await readRolloutReport(deps.rollouts, request.rolloutId).catch(() => last);
    if (!last) return;
    if (run.tty) {
      const c = last.counts;
      const done = c.succeeded + c.skipped + c.rolledBack;
      run.out(`\r\x1b[K${last.plugin} ${last.version}: done ${done} · failed ${c.failed} · in flight ${inFlight} · left ${c.notStarted}`);
      return;
    }
    for (const w of last.workspaces) {
      if (w.status === 'not-started' || w.status === 'in-flight' || printed.get(w.workspace) === w.status) continue;
      printed.set(w.workspace, w.status);
      run.out(line(w));
    }
  };

  const chain: Promise<RunOutcome>[] = [];
  const execution = `${request.rolloutId}-${newStamp(deps.clock())}`;
  if (!run.json) run.out(`pluginctl rollout ${request.source} (rollout ${request.rolloutId}, execution ${execution})\n`);
  let outcome = await runWorkflow({
    workflow: 'rollout',
    input: { rolloutId: request.rolloutId, resume: false },
    executionName: execution,
    deps,
    retryDelayMs: run.retryDelayMs,
    onContinued: (_name, done) => chain.push(done),
    children: {
      onStart: () => {
        inFlight++;
        if (run.tty) void progress();
      },
      onEnd: (_workflow, _name, child) => {
        inFlight--;
        run.onExecution?.(child, 'child');
      },
    },
    onStepEnd: (step) => {
      if (step.name === 'NextWave' || step.name === 'RecordWave') void progress();
    },
  });
  // A continue-as-new chain: each execution started the next one before it ended.
  run.onExecution?.(outcome, 'rollout');
  while (chain.length) {
    outcome = await chain.shift()!;
    run.onExecution?.(outcome, 'rollout');
  }

  const planned = outcome.steps.some((s) => s.name === 'PlanRollout' && s.status === 'succeeded') || outcome.steps.some((s) => s.name === 'LoadRollout');
  if (!planned && outcome.status === 'FAILED') {
    // PlanRollout refused it: nothing started.
    const error = errorFromFailure(outcome.error, outcome.cause);
    const mapped = statusOfError(error.code, false);
    if (run.json) run.out(JSON.stringify(rolloutRefusalJson(mapped.status, request.rolloutId, error)) + '\n');
    // The refusal is on stderr with --json too: stdout is the contract's object, stderr says why.
    run.err(`pluginctl: ${error.message}\n${error.hint ? `  hint: ${error.hint}\n` : ''}`);
    return mapped.exit === EXIT.busy ? EXIT.busy : mapped.exit === EXIT.refused ? EXIT.refused : EXIT.rolledBack;
  }

  const report = await readRolloutReport(deps.rollouts, request.rolloutId);
  if (run.json) {
    run.out(JSON.stringify(contractReport(report)) + '\n');
  } else {
    await progress();
    if (run.tty) run.out('\n');
    const c = report.counts;
    run.out(`rollout ${report.rollout} of ${report.plugin} ${report.version}: ${report.status}${report.record.haltReason ? ` (${report.record.haltReason})` : ''} · ${c.targets} targets: ${c.succeeded} succeeded, ${c.skipped} skipped, ${c.failed} failed, ${c.rolledBack} rolled back, ${c.notStarted} not started\n`);
  }
  if (outcome.status === 'FAILED' && report.status === 'running') {
    // A rollout step itself failed (after its retries): the store keeps the rollout's state.
    const error = errorFromFailure(outcome.error, outcome.cause);
    run.err(`pluginctl: rollout ${request.rolloutId} stopped: ${error.code}: ${error.message}\n  hint: run the same command again (same --rollout-id) to finish it\n`);
    return EXIT.rolledBack;
  }
  return report.status === 'succeeded' ? EXIT.ok : EXIT.rolledBack;
}

/** `--workspaces a,b,c`: the ids, in order, without blanks. */
export function parseWorkspaceList(text: string): string[] {
  const ids = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (ids.length === 0) throw new PluginError('InvalidInput', '--workspaces names no workspace', 'give --workspaces ws1,ws2,… or --all');
  return ids;
}
