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
import { hostOperationTimeoutMs, hostStepTimeoutMs, isHostStep, STEP_SPECS, stepPlaceholder, TASK_TIMEOUT_MARGIN_SECONDS } from '../../infra/constructs/step-functions.ts';
import { WORKFLOWS, workflowText } from '../../lambdas/core/workflow/workflow-files.ts';

/** Lookup, cancelling an SSM command, writing the result: what the function does around the host operation. */
const MIN_HOST_MARGIN_MS = 10_000;
/** Cold start (init up to 10 s), invoke overhead, Step Functions' own bookkeeping. */
const MIN_TASK_MARGIN_SECONDS = 20;

type State = { Type: string; Resource?: string; TimeoutSeconds?: number };

function tasksInvoking(placeholder: string): [string, string, State][] {
  const out: [string, string, State][] = [];
  for (const workflow of WORKFLOWS) {
    const states = (JSON.parse(workflowText(workflow)) as { States: Record<string, State> }).States;
    for (const [name, state] of Object.entries(states)) {
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

  it('the api Lambda\'s host operation (listing plugins) ends before API Gateway\'s 29 s integration timeout', () => {
    expect(API_FUNCTION_TIMEOUT.toSeconds()).toBeLessThanOrEqual(29);
    expect(hostOperationTimeoutMs(API_FUNCTION_TIMEOUT)).toBeLessThanOrEqual(API_FUNCTION_TIMEOUT.toMilliseconds() - MIN_HOST_MARGIN_MS);
  });
});
