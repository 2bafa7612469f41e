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
import { step as writeMarker } from './write-marker.ts';
import { step as planRollout } from './plan-rollout.ts';
import { step as loadRollout } from './load-rollout.ts';
import { step as nextWave } from './next-wave.ts';
import { step as recordWave } from './record-wave.ts';
import { step as summarizeTargetFailure } from './summarize-target-failure.ts';
import { step as finishRollout } from './finish-rollout.ts';

export const ALL_STEPS: readonly StepDefinition<never, unknown>[] = [
  prepareInstall, prepareTarget, acquireLock, stageOnHost, snapshotLive, swapIntoPlace, writeMarker, releaseLock, rollBack, stageSnapshot, removeLive,
] as unknown as StepDefinition<never, unknown>[];

/** The fleet rollout's steps (statemachine/rollout.asl.json). */
export const ROLLOUT_STEPS: readonly StepDefinition<never, unknown>[] = [
  planRollout, loadRollout, nextWave, recordWave, summarizeTargetFailure, finishRollout,
] as unknown as StepDefinition<never, unknown>[];

export const STEP_BY_PLACEHOLDER: ReadonlyMap<string, StepDefinition<never, unknown>> = new Map([...ALL_STEPS, ...ROLLOUT_STEPS].map((s) => [s.placeholder, s]));
