/**
 * Run counts of the heavy property tests (those that spawn processes or run workflows per run:
 * fault sequences, the fencing race, the sweep against its model, the live reader, chaos). Each
 * names a modest default that CI runs on a loaded 2-core machine; PROPERTY_RUNS_SCALE multiplies
 * every one of them for a local soak (README, "Testing"):
 *
 *   PROPERTY_RUNS_SCALE=10 npx vitest run test/e2e/fault-sequences.property.test.ts
 *
 * Cheap pure properties (test/unit) keep fixed counts: they cost milliseconds.
 * A test's timeout grows with its run count (propertyTimeout), so a soak is not cut short.
 */

export const PROPERTY_RUNS_ENV = 'PROPERTY_RUNS_SCALE';

/** The multiplier in PROPERTY_RUNS_SCALE (1 when unset); a clear error for anything else than a positive number. */
export function propertyRunsScale(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[PROPERTY_RUNS_ENV];
  if (raw === undefined || raw.trim() === '') return 1;
  const scale = Number(raw);
  if (!Number.isFinite(scale) || scale <= 0) {
    throw new Error(`${PROPERTY_RUNS_ENV}=${JSON.stringify(raw)} is not a positive number: set it to a multiplier of the default run counts (e.g. 10 for a soak, 0.5 for a quick pass) or unset it`);
  }
  return scale;
}

/** `ciDefault` runs, scaled by PROPERTY_RUNS_SCALE; at least 1. */
export function propertyRuns(ciDefault: number, env: NodeJS.ProcessEnv = process.env): number {
  return Math.max(1, Math.round(ciDefault * propertyRunsScale(env)));
}

/**
 * A timeout for `runs` runs of `perRunMs` each (what one run may take on a loaded machine, not
 * a measurement) plus `setupMs`: it bounds a hang, it never checks speed.
 */
export function propertyTimeout(runs: number, perRunMs: number, setupMs = 120_000): number {
  return setupMs + runs * perRunMs;
}
