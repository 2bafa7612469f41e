/**
 * Keeps each rollout execution under Step Functions' 25,000 history events (Standard workflows).
 * Every state adds a fixed number of events (AWS: "Step Functions history events"): a Lambda
 * Task 5 (TaskStateEntered, LambdaFunctionScheduled/Started/Succeeded, TaskStateExited), a
 * request-response integration 5 (Task{StateEntered,Scheduled,Started,Succeeded,StateExited}),
 * a `.sync` integration 6 (TaskSubmitted as well), a Choice or Pass 2, a Map 4
 * (Map{StateEntered,StateStarted,StateSucceeded,StateExited}) plus 2 per iteration
 * (MapIterationStarted/Succeeded) plus its iterations' states. A wave therefore costs a fixed part
 * and a part per target; RecordWave adds up what the waves of this execution cost and, before the
 * next wave could pass the budget, continues the rollout as a new execution (continue-as-new:
 * same rollout id, state in the store).
 *
 * test/unit/rollout-history.test.ts derives these numbers from statemachine/rollout.asl.json and
 * checks that they are not below what the file really costs, and runs 10,000 targets through them.
 */
import { MAX_CONCURRENCY } from './rollout-limits.ts';

export const HISTORY_LIMIT = 25_000;
/**
 * Where an execution stops starting waves: a fifth of the limit is left for what the estimate
 * does not count (retried Lambda invocations: 3 events each) and the closing states.
 */
export const HISTORY_BUDGET = 20_000;
/** NextWave, HasWave, RunWave's own 4, RecordWave, NotifyProgress, AfterWave. */
export const WAVE_FIXED_EVENTS = 23;
/** One target at worst: iteration 2, TargetWorkflow 2, the .sync Task 6, a failed summary (Lambda 4 + Pass 2) … */
export const TARGET_EVENTS_MAX = 17;
/** ExecutionStarted, IsResume, PlanRollout, NotifyStarted (the longer of the two ways in). */
export const START_EVENTS = 13;
/** The longest way out: the last NextWave and HasWave, FinishRollout, Verdict, a Notify, Completed, the end state, ExecutionFailed; or ContinueAsNew. */
export const END_EVENTS = 24;

export function waveEvents(targets: number): number {
  return WAVE_FIXED_EVENTS + TARGET_EVENTS_MAX * targets;
}

/** The most a wave can cost: MAX_CONCURRENCY targets. */
export const MAX_WAVE_EVENTS = waveEvents(MAX_CONCURRENCY);

/**
 * Whether the execution that has used `eventsSoFar` (start included) must hand over before its
 * next wave: it continues as new unless that wave and the way out still fit the budget.
 */
export function mustContinueAsNew(eventsSoFar: number, nextWaveTargets: number = MAX_CONCURRENCY): boolean {
  return eventsSoFar + waveEvents(nextWaveTargets) + END_EVENTS > HISTORY_BUDGET;
}
