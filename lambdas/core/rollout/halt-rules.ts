/**
 * When a rollout stops starting installs (issue 11; CodeDeploy's and SSM's rules):
 * - a canary that fails, of any kind, halts the rollout before anything else starts;
 * - once failures exceed the error budget, no new install starts. The installs already in flight
 *   (the current wave) finish first, as with SSM's MaxErrors, so the failures counted at the halt
 *   can exceed the budget by up to maxConcurrency - 1.
 */
export type HaltReason = 'canary-failed' | 'max-errors';

export interface WaveTally {
  /** Whether the wave just recorded was (part of) the canary. */
  canary: boolean;
  /** Failures in that wave. */
  waveFailed: number;
  /** Failures of the whole attempt so far, that wave included. */
  totalFailed: number;
  /** errorBudget(maxErrors, targets). */
  budget: number;
}

export function haltAfterWave(t: WaveTally): HaltReason | null {
  if (t.canary && t.waveFailed > 0) return 'canary-failed';
  if (t.totalFailed > t.budget) return 'max-errors';
  return null;
}
