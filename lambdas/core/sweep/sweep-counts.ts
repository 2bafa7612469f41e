/**
 * A sweep's per-kind counts (what the host script reports), zeroed and added up. Its own light
 * module: the CLI's --json refusals need zero counts at start-up without loading the host steps.
 */
import type { SweepReport } from '../host/host-steps.ts';

export type SweepCounts = SweepReport['counts'];

export const zeroCounts = (): SweepCounts => ({ previous: 0, staging: 0, failed: 0, locks: 0 });

export function addCounts(into: SweepCounts, add: SweepCounts): void {
  into.previous += add.previous;
  into.staging += add.staging;
  into.failed += add.failed;
  into.locks += add.locks;
}
