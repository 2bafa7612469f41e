/**
 * What the next wave may hold (pure): the canary goes first and alone (`canary` installs, at
 * most maxConcurrency of them at once); after it, waves of maxConcurrency. Skipped targets
 * (already at the sha256) take no place in a wave.
 */
export interface WaveShape {
  /** Installs this wave may start. */
  size: number;
  /** Installs in flight at once (the Map's MaxConcurrency). */
  concurrency: number;
  canary: boolean;
}

export function nextWaveShape(r: { canary: number; canaryStarted: number; maxConcurrency: number }): WaveShape {
  const canaryLeft = Math.max(0, r.canary - r.canaryStarted);
  if (canaryLeft > 0) return { size: canaryLeft, concurrency: Math.min(canaryLeft, r.maxConcurrency), canary: true };
  return { size: r.maxConcurrency, concurrency: r.maxConcurrency, canary: false };
}
