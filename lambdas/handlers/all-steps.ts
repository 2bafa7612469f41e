/** Every workflow step, keyed by the ASL placeholder its Task states use. */
import type { StepDefinition } from '../commons/step-handler.ts';
import { step as acquireLock } from './acquire-lock.ts';
import { step as prepareInstall } from './prepare-install.ts';
import { step as prepareTarget } from './prepare-target.ts';
import { step as releaseLock } from './release-lock.ts';
import { step as removeLive } from './remove-live.ts';
import { step as rollBack } from './roll-back.ts';
import { step as snapshotLive } from './snapshot-live.ts';
import { step as stageOnHost } from './stage-on-host.ts';
import { step as stageSnapshot } from './stage-snapshot.ts';
import { step as swapIntoPlace } from './swap-into-place.ts';
import { step as verifyLive } from './verify-live.ts';
import { step as writeMarker } from './write-marker.ts';
import { step as planRollout } from './rollout/plan-rollout.ts';
import { step as loadRollout } from './rollout/load-rollout.ts';
import { step as nextWave } from './rollout/next-wave.ts';
import { step as recordWave } from './rollout/record-wave.ts';
import { step as summarizeTargetFailure } from './rollout/summarize-target-failure.ts';
import { step as finishRollout } from './rollout/finish-rollout.ts';

export const ALL_STEPS: readonly StepDefinition<never, unknown>[] = [
  prepareInstall, prepareTarget, acquireLock, stageOnHost, snapshotLive, swapIntoPlace, verifyLive, writeMarker, releaseLock, rollBack, stageSnapshot, removeLive,
] as unknown as StepDefinition<never, unknown>[];

/**
 * The fleet rollout's steps (statemachine/rollout.asl.json, handlers in ./rollout/): run by the
 * local runner, and each deployed as a Lambda too (ROLLOUT_STEP_SPECS in infra/constructs/rollout-steps.ts).
 */
export const ROLLOUT_STEPS: readonly StepDefinition<never, unknown>[] = [
  planRollout, loadRollout, nextWave, recordWave, summarizeTargetFailure, finishRollout,
] as unknown as StepDefinition<never, unknown>[];

/** The plugin workflows' steps, each deployed as a Lambda (infra/constructs/step-functions.ts). */
export const STEP_BY_PLACEHOLDER: ReadonlyMap<string, StepDefinition<never, unknown>> = new Map(ALL_STEPS.map((s) => [s.placeholder, s]));

export const ROLLOUT_STEP_BY_PLACEHOLDER: ReadonlyMap<string, StepDefinition<never, unknown>> = new Map(ROLLOUT_STEPS.map((s) => [s.placeholder, s]));

/** What the local runner binds Tasks to: every step. */
export const LOCAL_STEP_BY_PLACEHOLDER: ReadonlyMap<string, StepDefinition<never, unknown>> = new Map([...STEP_BY_PLACEHOLDER, ...ROLLOUT_STEP_BY_PLACEHOLDER]);
