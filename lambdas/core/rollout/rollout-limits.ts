/**
 * The bounds a rollout's settings must respect, and why.
 * - MAX_CONCURRENCY 40: an inline Map runs at most 40 iterations at once on Step Functions (more
 *   are queued, not parallel), and each wave's items ride in the state payload.
 * - A wave carries at most MAX_CONCURRENCY items, so the payload stays a few KB whatever the fleet.
 * - MAX_TARGETS 10,000: what the history budget (history-budget.ts) is computed and tested for.
 */
export const MAX_CONCURRENCY = 40;
export const DEFAULT_MAX_CONCURRENCY = 1;
export const MAX_CANARY = MAX_CONCURRENCY;
export const DEFAULT_CANARY = 1;
export const MAX_TARGETS = 10_000;
/** Targets whose host a NextWave call may look at (skip check) before returning, so one call stays short. */
export const SCAN_LIMIT = 200;
/** Target entries per result page in the store. */
export const PAGE_SIZE = 500;
/** Rollout ids name store keys and prefix execution names (`<id>-a<attempt>-x<n>`, ≤ 80 chars). */
export const ROLLOUT_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$/;
