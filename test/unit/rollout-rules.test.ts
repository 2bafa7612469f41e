/**
 * The rollout's pure decisions: maxErrors parsing and budget, the halt rules, wave shapes, and
 * what a failed child execution is summarized to (from AWS's own `.sync:2` shapes). Properties
 * with fast-check where a rule holds for every input.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { haltAfterWave } from '../../lambdas/core/rollout/halt-rules.ts';
import { errorBudget, parseMaxErrors } from '../../lambdas/core/rollout/max-errors.ts';
import { MAX_CONCURRENCY } from '../../lambdas/core/rollout/rollout-limits.ts';
import { MAX_HINT, MAX_MESSAGE, summarizeTargetFailure } from '../../lambdas/core/rollout/target-failure.ts';
import { nextWaveShape } from '../../lambdas/core/rollout/wave-plan.ts';
import { syncFailed, syncSucceeded } from '../../lambdas/core/workflow/child-executions.ts';
import { childFailedCatch, childTimedOutCatch, SUCCEEDED_OUTPUT_KEYS } from '../fixtures/sfn/start-execution-sync2.ts';

const item = { index: 0, workspace: 'ws1', workflow: 'install' as const, execution: 'ws1-p-20261202T043852Z-ol3j' };

describe('maxErrors', () => {
  it('takes a count or a percentage and refuses anything else, naming the fix', () => {
    expect(parseMaxErrors('0')).toEqual({ kind: 'count', count: 0, spec: '0' });
    expect(parseMaxErrors('12')).toEqual({ kind: 'count', count: 12, spec: '12' });
    expect(parseMaxErrors('10%')).toEqual({ kind: 'percent', percent: 10, spec: '10%' });
    for (const bad of ['', '-1', '1.5', '01', '10 %', '101%', 'ten', '%', '5x']) {
      expect(() => parseMaxErrors(bad), bad).toThrow(expect.objectContaining({ code: 'InvalidInput', hint: expect.stringContaining('--max-errors') }));
    }
  });

  it('a percentage never tolerates more failures than it says, nor more than there are targets', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 1, max: 10_000 }), (p, targets) => {
      const budget = errorBudget(parseMaxErrors(`${p}%`), targets);
      expect(budget).toBeLessThanOrEqual((targets * p) / 100);
      expect(budget).toBeGreaterThan((targets * p) / 100 - 1);
      expect(budget).toBeLessThanOrEqual(targets);
    }));
  });
});

describe('halt rules', () => {
  it('any failure in the canary halts it', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 1000 }), (failed, budget) => {
      expect(haltAfterWave({ canary: true, waveFailed: failed, totalFailed: failed, budget })).toBe('canary-failed');
    }));
  });

  it('after the canary, it halts exactly when failures exceed the budget', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 }), (waveFailed, before, budget) => {
      const totalFailed = before + waveFailed;
      expect(haltAfterWave({ canary: false, waveFailed, totalFailed, budget })).toBe(totalFailed > budget ? 'max-errors' : null);
    }));
  });

  it('failures counted at a halt exceed the budget by at most maxConcurrency - 1 (the wave in flight finishes)', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: MAX_CONCURRENCY }), fc.integer({ min: 0, max: 50 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 400 }), (maxConcurrency, budget, outcomes) => {
      let failed = 0;
      for (let i = 0; i < outcomes.length; i += maxConcurrency) {
        const wave = outcomes.slice(i, i + maxConcurrency);
        const waveFailed = wave.filter((ok) => !ok).length;
        failed += waveFailed;
        if (haltAfterWave({ canary: false, waveFailed, totalFailed: failed, budget })) {
          expect(failed - budget).toBeLessThanOrEqual(maxConcurrency);
          expect(failed - (budget + 1)).toBeLessThanOrEqual(maxConcurrency - 1);
          return;
        }
      }
      expect(failed).toBeLessThanOrEqual(budget);
    }));
  });
});

describe('wave shapes', () => {
  it('the canary goes first and alone, then waves of maxConcurrency; never more in flight than maxConcurrency', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), (canary, maxConcurrency) => {
      const r = { canary, canaryStarted: 0, maxConcurrency };
      const first = nextWaveShape(r);
      expect(first).toEqual({ size: canary, concurrency: Math.min(canary, maxConcurrency), canary: true });
      r.canaryStarted = canary;
      expect(nextWaveShape(r)).toEqual({ size: maxConcurrency, concurrency: maxConcurrency, canary: false });
    }));
  });
});

describe('a failed target, summarized from what the .sync:2 Task failed with', () => {
  it('keeps the child\'s own error code, message and hint', () => {
    expect(summarizeTargetFailure(item, childFailedCatch)).toEqual({
      item,
      outcome: 'failed',
      error: { code: 'HostIoError', message: 'cannot move the displaced p to .previous', hint: 'check disk space and permissions under the plugins root on the host' },
    });
  });

  it('a child that timed out, or a Task that never started its child, is a failure all the same', () => {
    expect(summarizeTargetFailure(item, childTimedOutCatch).error!.message).toMatch(/FAILED/);
    expect(summarizeTargetFailure(item, { Error: 'StepFunctions.ExecutionLimitExceededException', Cause: 'too many' }).error).toMatchObject({ code: 'HostStepFailed', message: 'too many' });
  });

  it('stays a few hundred bytes whatever the child said', () => {
    fc.assert(fc.property(fc.string({ maxLength: 40_000 }), fc.string({ maxLength: 5_000 }), (message, hint) => {
      const cause = JSON.stringify({ Error: 'HostIoError', Cause: JSON.stringify({ code: 'HostIoError', message, hint }), Status: 'FAILED' });
      const r = summarizeTargetFailure(item, { Error: 'States.TaskFailed', Cause: cause });
      expect(r.error!.message.length).toBeLessThanOrEqual(MAX_MESSAGE);
      expect(r.error!.hint.length).toBeLessThanOrEqual(MAX_HINT);
    }), { numRuns: 50 });
  });
});

describe('the local runner answers a .sync:2 Task as Step Functions does', () => {
  const run = { executionArn: 'arn:aws:states:us-east-1:000000000000:execution:plugin-install:n', stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:plugin-install', name: 'n', input: { workspace: 'ws1' }, startDate: new Date(1000), stopDate: new Date(2000) };

  it('success: the DescribeExecution fields, Input and Output as JSON, dates in epoch milliseconds', () => {
    const out = syncSucceeded(run, { plan: { version: '2' } });
    expect(Object.keys(out).sort()).toEqual([...SUCCEEDED_OUTPUT_KEYS].sort());
    expect(out).toMatchObject({ Status: 'SUCCEEDED', Input: { workspace: 'ws1' }, Output: { plan: { version: '2' } }, StartDate: 1000, StopDate: 2000, InputDetails: { Included: true } });
  });

  it('failure: States.TaskFailed with the child\'s DescribeExecution as Cause, which the summary reads back', () => {
    const err = syncFailed(run, 'FAILED', 'LockBusy', JSON.stringify({ code: 'LockBusy', message: 'busy', hint: 'retry' }));
    expect(err.name).toBe('States.TaskFailed');
    const cause = JSON.parse(err.message) as Record<string, unknown>;
    expect(Object.keys(cause).sort()).toEqual(Object.keys(JSON.parse(childFailedCatch.Cause) as object).sort());
    expect(cause).toMatchObject({ Error: 'LockBusy', Status: 'FAILED', Input: '{"workspace":"ws1"}' });
    expect(summarizeTargetFailure(item, { Error: err.name, Cause: err.message }).error).toEqual({ code: 'LockBusy', message: 'busy', hint: 'retry' });
  });
});
