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

export const ALL_STEPS: readonly StepDefinition<never, unknown>[] = [
  prepareInstall, prepareTarget, acquireLock, stageOnHost, snapshotLive, swapIntoPlace, verifyLive, writeMarker, releaseLock, rollBack, stageSnapshot, removeLive,
] as unknown as StepDefinition<never, unknown>[];

export const STEP_BY_PLACEHOLDER: ReadonlyMap<string, StepDefinition<never, unknown>> = new Map(ALL_STEPS.map((s) => [s.placeholder, s]));
