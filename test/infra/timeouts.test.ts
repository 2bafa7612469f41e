/**
 * The three clocks of a step, nested with margin: the host operation's budget (HOST_STEP_TIMEOUT_MS,
 * connecting included) ends before the Lambda's timeout, which ends before the Task's
 * TimeoutSeconds in every workflow that invokes it. If the Task timed out first, Step Functions
 * would raise States.Timeout (not retried) and start RollBack while the step still runs on the
 * host; if the Lambda timed out first, the host operation would be killed mid-step instead of
 * ending as a typed HostTimeout with its SSM command cancelled.
 */
import { describe, expect, it } from 'vitest';
import { API_FUNCTION_TIMEOUT } from '../../infra/constructs/control-plane-api.ts';
import { ROLLOUT_STEP_SPECS, SKIP_CHECK_ROUNDS } from '../../infra/constructs/rollout-steps.ts';
import { hostOperationTimeoutMs, hostStepTimeoutMs, isHostStep, rolloutHostTimeoutMs, STEP_SPECS, stepPlaceholder, TASK_TIMEOUT_MARGIN_SECONDS } from '../../infra/constructs/step-functions.ts';
import { MAX_CONCURRENCY } from '../../lambdas/core/rollout/rollout-limits.ts';
import { definitionText, ROLLOUT_DEFINITION, WORKFLOWS, type RunnableWorkflow } from '../../lambdas/core/workflow/workflow-files.ts';

/** Lookup, cancelling an SSM command, writing the result: what the function does around the host operation. */
const MIN_HOST_MARGIN_MS = 10_000;
/** Cold start (init up to 10 s), invoke overhead, Step Functions' own bookkeeping. */
const MIN_TASK_MARGIN_SECONDS = 20;

type State = { Type: string; Resource?: string; TimeoutSeconds?: number; MaxConcurrency?: number; MaxConcurrencyPath?: string; ItemProcessor?: { States: Record<string, State> } };

/** Every state of a definition, the inline Maps' iterations included. */
function statesOf(workflow: RunnableWorkflow): [string, State][] {
  const walk = (states: Record<string, State>): [string, State][] =>
    Object.entries(states).flatMap(([name, state]) => [[name, state] as [string, State], ...(state.ItemProcessor ? walk(state.ItemProcessor.States) : [])]);
  return walk((JSON.parse(definitionText(workflow)) as { States: Record<string, State> }).States);
}

function tasksInvoking(placeholder: string): [string, string, State][] {
  const out: [string, string, State][] = [];
  for (const workflow of [...WORKFLOWS, ROLLOUT_DEFINITION]) {
    for (const [name, state] of statesOf(workflow)) {
      if (state.Type === 'Task' && state.Resource === `\${${placeholder}}`) out.push([workflow, name, state]);
    }
  }
  return out;
}

describe('step timeouts', () => {
  it.each(STEP_SPECS.map((spec) => [spec.file, spec] as const))('%s: host budget < Lambda timeout < every Task timeout, each with margin', (_file, spec) => {
    const lambdaSeconds = spec.timeout.toSeconds();
    if (isHostStep(spec)) {
      expect(hostStepTimeoutMs(spec)).toBeLessThanOrEqual(lambdaSeconds * 1000 - MIN_HOST_MARGIN_MS);
      expect(hostStepTimeoutMs(spec)).toBeGreaterThan(0);
    }
    const tasks = tasksInvoking(stepPlaceholder(spec.file));
    expect(tasks.length, `${spec.file} is invoked by some workflow`).toBeGreaterThan(0);
    for (const [workflow, name, state] of tasks) {
      expect(state.TimeoutSeconds, `${workflow}.${name}`).toBe(lambdaSeconds + TASK_TIMEOUT_MARGIN_SECONDS);
      expect(state.TimeoutSeconds! - lambdaSeconds, `${workflow}.${name}`).toBeGreaterThanOrEqual(MIN_TASK_MARGIN_SECONDS);
    }
  });

  it.each(ROLLOUT_STEP_SPECS.map((spec) => [spec.file, spec] as const))('%s: Lambda timeout < every Task timeout, with margin; a full skip-check scan fits the function', (_file, spec) => {
    const lambdaSeconds = spec.timeout.toSeconds();
    const tasks = tasksInvoking(stepPlaceholder(spec.file));
    expect(tasks.length, `${spec.file} is invoked by the rollout`).toBeGreaterThan(0);
    for (const [workflow, name, state] of tasks) {
      expect(workflow).toBe(ROLLOUT_DEFINITION);
      expect(state.TimeoutSeconds, `${workflow}.${name}`).toBe(lambdaSeconds + TASK_TIMEOUT_MARGIN_SECONDS);
      expect(state.TimeoutSeconds! - lambdaSeconds, `${workflow}.${name}`).toBeGreaterThanOrEqual(MIN_TASK_MARGIN_SECONDS);
    }
    if (spec.host) {
      // NextWave: every round of listings at its budget still ends before the function does.
      expect(rolloutHostTimeoutMs(spec)).toBeGreaterThan(0);
      expect(rolloutHostTimeoutMs(spec) * SKIP_CHECK_ROUNDS).toBeLessThanOrEqual(lambdaSeconds * 1000 - MIN_HOST_MARGIN_MS);
    }
  });

  it('the rollout\'s inline Map runs at most 40 iterations at once, as Step Functions does: the wave\'s concurrency, bounded by MAX_CONCURRENCY', () => {
    const maps = statesOf(ROLLOUT_DEFINITION).filter(([, state]) => state.Type === 'Map');
    expect(maps.map(([name]) => name)).toEqual(['RunWave']);
    const [, runWave] = maps[0]!;
    expect(runWave.MaxConcurrencyPath).toBe('$.wave.concurrency');
    expect(runWave.MaxConcurrency).toBeUndefined();
    expect(MAX_CONCURRENCY).toBeLessThanOrEqual(40);
    // Each child execution is waited for far longer than any child workflow's Tasks could take.
    for (const [name, state] of statesOf(ROLLOUT_DEFINITION).filter(([, st]) => st.Resource === 'arn:aws:states:::states:startExecution.sync:2')) {
      const longestChildTask = Math.max(...WORKFLOWS.flatMap((w) => statesOf(w).map(([, st]) => st.TimeoutSeconds ?? 0)));
      expect(state.TimeoutSeconds, name).toBeGreaterThan(longestChildTask);
    }
  });

  it('the api Lambda\'s host operation (listing plugins) ends before API Gateway\'s 29 s integration timeout', () => {
    expect(API_FUNCTION_TIMEOUT.toSeconds()).toBeLessThanOrEqual(29);
    expect(hostOperationTimeoutMs(API_FUNCTION_TIMEOUT)).toBeLessThanOrEqual(API_FUNCTION_TIMEOUT.toMilliseconds() - MIN_HOST_MARGIN_MS);
  });
});
