/**
 * Scale (issue 11): a 10,000-target rollout stays inside Step Functions' limits. The history
 * events each state adds are AWS's documented ones (lambdas/core/rollout/history-budget.ts lists
 * them); this test walks statemachine/rollout.asl.json itself, state by state, to count what each
 * part of a rollout execution really costs, checks the budget's constants are not below that,
 * and runs 10,000 targets through the core's own wave planning and continue-as-new decision at
 * maxConcurrency 1 and at the maximum, with failures: every execution stays under 25,000 events.
 * Payloads: the largest state a wave can produce stays far below 256 KB.
 */
import { describe, expect, it } from 'vitest';
import { END_EVENTS, HISTORY_LIMIT, mustContinueAsNew, START_EVENTS, TARGET_EVENTS_MAX, WAVE_FIXED_EVENTS, waveEvents } from '../../lambdas/core/rollout/history-budget.ts';
import { MAX_CONCURRENCY, MAX_TARGETS } from '../../lambdas/core/rollout/rollout-limits.ts';
import { nextWaveShape } from '../../lambdas/core/rollout/wave-plan.ts';
import { MAX_HINT, MAX_MESSAGE } from '../../lambdas/core/rollout/target-failure.ts';
import { definitionText, ROLLOUT_DEFINITION } from '../../lambdas/core/workflow/workflow-files.ts';

interface State {
  Type: string;
  Resource?: string;
  Next?: string;
  End?: boolean;
  Catch?: { Next: string }[];
  ItemProcessor?: { StartAt: string; States: Record<string, State> };
}
const def = JSON.parse(definitionText(ROLLOUT_DEFINITION)) as { StartAt: string; States: Record<string, State> };
const iterator = def.States.RunWave!.ItemProcessor!;

/** Events one state adds to the history (AWS, "Step Functions history event types"). */
function stateEvents(s: State, outcome: 'ok' | 'caught'): number {
  switch (s.Type) {
    case 'Choice':
    case 'Pass':
    case 'Succeed':
      return 2; // …StateEntered, …StateExited
    case 'Fail':
      return 1; // FailStateEntered (ExecutionFailed is counted with the execution)
    case 'Task': {
      // A Lambda Task (LambdaFunctionScheduled/Started/…) and a service integration
      // (TaskScheduled/Started/…) record as many events; a .sync one adds TaskSubmitted.
      const sync = (s.Resource ?? '').endsWith('.sync:2');
      // Entered + Scheduled + Started (+ Submitted for .sync) + Succeeded/Failed (+ Exited on success).
      return 1 + 2 + (sync ? 1 : 0) + 1 + (outcome === 'ok' ? 1 : 0);
    }
    default:
      throw new Error(`no event count for ${s.Type}: a Map is counted by mapEvents`);
  }
}

/**
 * Events along a path of the file: from `start`, following Next (or the named Catch when
 * `caught(name)`), choosing at Choice states with `choose`, until `stop` (inclusive) or an end.
 */
function pathEvents(states: Record<string, State>, start: string, o: { stop?: string; choose?: (name: string) => string; caught?: (name: string) => boolean; map?: (name: string) => number }): number {
  let total = 0;
  for (let name: string | undefined = start; name;) {
    const s: State = states[name]!;
    expect(s, name).toBeDefined();
    const caught: boolean = o.caught?.(name) ?? false;
    total += s.Type === 'Map' ? o.map!(name) : stateEvents(s, caught ? 'caught' : 'ok');
    if (name === o.stop || s.End || s.Type === 'Succeed' || s.Type === 'Fail') break;
    name = s.Type === 'Choice' ? o.choose!(name) : caught ? s.Catch![0]!.Next : s.Next;
  }
  return total;
}

/** One target's iteration: MapIterationStarted/Succeeded and its states. */
function targetEvents(kind: 'succeeds' | 'fails' | 'fails-unsummarized'): number {
  return 2 + pathEvents(iterator.States, iterator.StartAt, {
    choose: () => 'InstallTarget',
    caught: (n) => (n === 'InstallTarget' && kind !== 'succeeds') || (n === 'SummarizeFailure' && kind === 'fails-unsummarized'),
  });
}

/** NextWave … AfterWave for a wave of these targets. */
function waveEventsFromAsl(targets: ('succeeds' | 'fails')[]): number {
  return pathEvents(def.States, 'NextWave', {
    stop: 'AfterWave',
    choose: (n) => (n === 'HasWave' ? 'RunWave' : 'NextWave'),
    map: () => 4 + targets.reduce((sum, t) => sum + targetEvents(t), 0),
  });
}

const START = 1 + pathEvents(def.States, def.StartAt, { stop: 'NotifyStarted', choose: () => 'PlanRollout' });
const RESUME = 1 + pathEvents(def.States, def.StartAt, { stop: 'LoadRollout', choose: () => 'LoadRollout' });
/** The longest way out after a wave: the last NextWave, FinishRollout, a Notify, the end state, ExecutionFailed. */
const FINISH = Math.max(
  ...(['halted', 'failed', 'succeeded'] as const).map((status) => 1 + pathEvents(def.States, 'NextWave', {
    choose: (n) => (n === 'HasWave' ? 'FinishRollout' : n === 'Verdict' ? (status === 'halted' ? 'NotifyHalted' : 'NotifyCompleted') : status === 'succeeded' ? 'RolloutSucceeded' : 'RolloutFailed'),
  })),
);
const CONTINUE = 1 + pathEvents(def.States, 'ContinueAsNew', {});

describe('the history budget matches statemachine/rollout.asl.json', () => {
  it('its per-wave and per-target constants are not below what the file costs', () => {
    expect(waveEventsFromAsl([])).toBeLessThanOrEqual(WAVE_FIXED_EVENTS);
    const perTarget = Math.max(targetEvents('succeeds'), targetEvents('fails'), targetEvents('fails-unsummarized'));
    expect(perTarget).toBeLessThanOrEqual(TARGET_EVENTS_MAX);
    expect(waveEventsFromAsl(Array(MAX_CONCURRENCY).fill('fails'))).toBeLessThanOrEqual(waveEvents(MAX_CONCURRENCY));
    expect(Math.max(START, RESUME)).toBeLessThanOrEqual(START_EVENTS);
    expect(Math.max(FINISH, CONTINUE)).toBeLessThanOrEqual(END_EVENTS);
  });
});

/**
 * Runs a rollout of `targets` through the core's decisions (wave shapes; RecordWave's
 * continue-as-new bookkeeping) and counts each execution's history from the file.
 */
function simulate(targets: number, maxConcurrency: number, fails: (index: number) => boolean): number[] {
  const executions: number[] = [];
  let events = START; // what the ASL really records
  let estimate = START_EVENTS; // what RecordWave adds up (record.execution.events)
  let next = 0;
  const record = { canary: 1, canaryStarted: 0, maxConcurrency };
  while (next < targets) {
    const shape = nextWaveShape(record);
    const wave = Array.from({ length: Math.min(shape.size, targets - next) }, (_, k) => (fails(next + k) ? 'fails' as const : 'succeeds' as const));
    if (shape.canary) record.canaryStarted += wave.length;
    next += wave.length;
    events += waveEventsFromAsl(wave);
    estimate += waveEvents(wave.length);
    if (next < targets && mustContinueAsNew(estimate)) {
      executions.push(events + CONTINUE);
      events = RESUME;
      estimate = START_EVENTS;
    }
  }
  executions.push(events + FINISH);
  return executions;
}

describe(`a rollout of ${MAX_TARGETS.toLocaleString('en')} targets`, () => {
  const cases = [
    { maxConcurrency: 1, fails: () => false },
    { maxConcurrency: 1, fails: (i: number) => i % 3 === 1 },
    { maxConcurrency: MAX_CONCURRENCY, fails: () => false },
    { maxConcurrency: MAX_CONCURRENCY, fails: (i: number) => i % 3 === 1 },
    { maxConcurrency: MAX_CONCURRENCY, fails: () => true },
  ];
  it.each(cases.map((c, i) => [i, c] as const))('case %i: every execution of the continue-as-new chain stays under 25,000 history events', (_i, c) => {
    const executions = simulate(MAX_TARGETS, c.maxConcurrency, c.fails);
    for (const e of executions) expect(e).toBeLessThan(HISTORY_LIMIT);
    // The estimate is conservative (a failed target at worst), yet no execution but the last hands over early.
    for (const e of executions.slice(0, -1)) expect(e).toBeGreaterThan(HISTORY_LIMIT * 0.5);
    // Without continue-as-new a single execution would have needed far more.
    expect(executions.reduce((a, b) => a + b, 0)).toBeGreaterThan(HISTORY_LIMIT);
  });

  it('at maxConcurrency 1 it takes a handful of executions, at the maximum one or two dozen', () => {
    const one = simulate(MAX_TARGETS, 1, () => false).length;
    const max = simulate(MAX_TARGETS, MAX_CONCURRENCY, () => false).length;
    expect(one).toBeGreaterThanOrEqual(10);
    expect(one).toBeLessThanOrEqual(30);
    expect(max).toBeGreaterThanOrEqual(5);
    expect(max).toBeLessThanOrEqual(15);
  });
});

describe('payloads', () => {
  const longWs = 'W'.repeat(64);
  const rollout = { rolloutId: 'r'.repeat(48), plugin: 'p'.repeat(128), version: 'v'.repeat(64), sha256: 'a'.repeat(64), source: `artifact://sha256/${'a'.repeat(64)}`, attempt: 999, targets: MAX_TARGETS };
  const item = (i: number) => ({ index: i, workspace: longWs, workflow: 'install', execution: 'e'.repeat(80), stamp: '20261125T080000Z-ab12' });

  it('the largest state between the rollout\'s states stays far below 256 KB', () => {
    const results = Array.from({ length: MAX_CONCURRENCY }, (_, i) => ({ item: item(i), outcome: 'failed', error: { code: 'HostStepFailed', message: 'm'.repeat(MAX_MESSAGE), hint: 'h'.repeat(MAX_HINT) } }));
    const afterMap = { rolloutId: rollout.rolloutId, resume: true, rollout, wave: { done: false, number: 10_000, phase: 'install', canary: false, concurrency: MAX_CONCURRENCY, items: Array.from({ length: MAX_CONCURRENCY }, (_, i) => item(i)), results } };
    const bytes = Buffer.byteLength(JSON.stringify(afterMap));
    expect(bytes).toBeLessThan(64 * 1024);
  });

  it('one iteration holding a failed child\'s whole 32 KB Cause stays far below 256 KB', () => {
    const iteration = { item: item(0), source: rollout.source, sha256: rollout.sha256, plugin: rollout.plugin, error: { Error: 'States.TaskFailed', Cause: 'c'.repeat(32_768) } };
    expect(Buffer.byteLength(JSON.stringify(iteration))).toBeLessThan(64 * 1024);
  });
});
