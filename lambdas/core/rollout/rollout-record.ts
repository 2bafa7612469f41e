/**
 * What a rollout keeps in the RolloutStore, and where:
 *   rollouts/<id>/request.json             what the caller asked for (targets may be 10,000 ids:
 *                                          too big for an execution input, so never in one)
 *   rollouts/<id>/rollout.json             the record: settings, phase, cursors, counts
 *   rollouts/<id>/attempt-<k>/page-<p>.json  targets [p×PAGE_SIZE, (p+1)×PAGE_SIZE) of attempt k
 *                                          and what became of each
 *   rollout-locks/<plugin>.json            which rollout holds the plugin (rollout-lock.ts)
 * Running the same rollout id again starts attempt k+1 over the same targets; its pages are fresh,
 * and targets already at the sha256 are reported `skipped`.
 */
import * as z from '../zod.ts';
import { PLUGIN_NAME, SHA256, VERSION, WORKSPACE_ID } from '../names.ts';
import type { HaltReason } from './halt-rules.ts';
import { MAX_CANARY, MAX_CONCURRENCY, MAX_TARGETS, PAGE_SIZE, ROLLOUT_ID } from './rollout-limits.ts';

const workspace = z.string().regex(WORKSPACE_ID, 'workspace ids match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$');
export const rolloutId = z.string().regex(ROLLOUT_ID, 'rollout ids match ^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$');

/** Tag selector (AWS): EC2 tag key → value; the instances must also carry the WorkspaceId tag. */
const selector = z.record(z.string().regex(/^[A-Za-z0-9 _.:/=+@-]{1,128}$/, 'tag keys are 1-128 characters'), z.string().max(256));

export const RolloutRequestSchema = z.object({
  rolloutId,
  source: z.string().min(1).max(4096),
  sha256: z.string().regex(SHA256, 'sha256 is 64 lower-case hex digits').nullable(),
  targets: z.union([
    z.object({ workspaces: z.array(workspace).min(1).max(MAX_TARGETS) }),
    z.object({ all: z.literal(true) }),
    z.object({ selector }),
  ]),
  maxConcurrency: z.number().int().min(1).max(MAX_CONCURRENCY),
  maxErrors: z.string().max(8),
  canary: z.number().int().min(1).max(MAX_CANARY),
  rollbackOnHalt: z.boolean(),
});
export type RolloutRequest = z.infer<typeof RolloutRequestSchema>;

export type RolloutStatus = 'running' | 'succeeded' | 'failed' | 'halted';
export type RolloutPhase = 'install' | 'rollback' | 'done';
export type TargetStatus = 'in-flight' | 'succeeded' | 'failed' | 'skipped' | 'rolled-back';

export interface TargetError {
  code: string;
  message: string;
  hint: string;
}

export interface TargetEntry {
  status: TargetStatus;
  /** The install's execution name (the rollback's, once rolled back, is in `rollbackExecution`). */
  execution?: string;
  error?: TargetError;
  /** Whether a version of the plugin was live before this rollout installed: rollback or uninstall. */
  hadPrevious?: boolean;
  rollbackExecution?: string;
}

export interface ResultPage {
  /** Target ids of this page, in rollout order. */
  targets: string[];
  /** By index within the page. */
  entries: Record<string, TargetEntry>;
}

export interface RolloutCounts {
  targets: number;
  succeeded: number;
  failed: number;
  skipped: number;
  notStarted: number;
  rolledBack: number;
}

export interface RolloutRecord {
  rolloutId: string;
  plugin: string;
  version: string;
  sha256: string;
  /** What each install is given: the stored artifact (artifact://sha256/<hex>), validated once. */
  source: string;
  /** The source as the caller gave it. */
  requestedSource: string;
  maxConcurrency: number;
  maxErrors: string;
  /** errorBudget(maxErrors, targets) for this attempt. */
  budget: number;
  canary: number;
  rollbackOnHalt: boolean;
  targetCount: number;
  attempt: number;
  status: RolloutStatus;
  haltReason: HaltReason | null;
  phase: RolloutPhase;
  /** Next target index the install phase looks at. */
  cursor: number;
  /** Canary installs started so far (the canary is done once `canary` have started). */
  canaryStarted: number;
  /** Next target index the rollback phase looks at. */
  rollbackCursor: number;
  /** Waves recorded in this attempt. */
  waves: number;
  /** The current execution of the chain (continue-as-new starts the next one). */
  execution: { name: string; seq: number; events: number };
  /** Settled counts of this attempt; in flight = targets - notStarted - the settled ones. */
  counts: Omit<RolloutCounts, 'targets' | 'notStarted'>;
  startedAt: string;
  updatedAt: string;
}

export const requestKey = (id: string) => `rollouts/${id}/request.json`;
export const recordKey = (id: string) => `rollouts/${id}/rollout.json`;
export const pageKey = (id: string, attempt: number, page: number) => `rollouts/${id}/attempt-${attempt}/page-${page}.json`;
export const pageOf = (index: number) => Math.floor(index / PAGE_SIZE);
export const pageCount = (targets: number) => Math.ceil(targets / PAGE_SIZE);

/** Counts for reports and events: notStarted is what no install (or skip) has reached yet. */
export function countsOf(record: Pick<RolloutRecord, 'targetCount' | 'counts'>, inFlight = 0): RolloutCounts {
  const { succeeded, failed, skipped, rolledBack } = record.counts;
  return { targets: record.targetCount, succeeded, failed, skipped, notStarted: Math.max(0, record.targetCount - succeeded - failed - skipped - rolledBack - inFlight), rolledBack };
}

/** The small reference the states carry (a few hundred bytes). */
export interface RolloutRef {
  rolloutId: string;
  plugin: string;
  version: string;
  sha256: string;
  source: string;
  attempt: number;
  targets: number;
}

export function refOf(r: RolloutRecord): RolloutRef {
  return { rolloutId: r.rolloutId, plugin: r.plugin, version: r.version, sha256: r.sha256, source: r.source, attempt: r.attempt, targets: r.targetCount };
}

export const RolloutRefSchema = z.object({
  rolloutId,
  plugin: z.string().regex(PLUGIN_NAME),
  version: z.string().regex(VERSION),
  sha256: z.string().regex(SHA256),
  source: z.string().max(200),
  attempt: z.number().int().min(1),
  targets: z.number().int().min(1).max(MAX_TARGETS),
});
