/** What the rollout's Lambda Tasks receive (zod): small, and re-checked at every step. */
import * as z from '../zod.ts';
import { EXECUTION_NAME, STAMP, WORKSPACE_ID } from '../names.ts';
import { MAX_CONCURRENCY, MAX_TARGETS } from './rollout-limits.ts';
import { rolloutId } from './rollout-record.ts';

const execution = z.string().regex(EXECUTION_NAME, 'execution names are 1-80 characters of [A-Za-z0-9_-]');

export const RolloutExecutionSchema = z.object({ rolloutId, execution });
export const RolloutIdSchema = z.object({ rolloutId });

export const WaveItemSchema = z.object({
  index: z.number().int().min(0).max(MAX_TARGETS - 1),
  workspace: z.string().regex(WORKSPACE_ID),
  workflow: z.enum(['install', 'rollback', 'uninstall']),
  execution,
  stamp: z.string().regex(STAMP),
});

const targetError = z.object({ code: z.string().max(64), message: z.string().max(2000), hint: z.string().max(1000) });

export const RecordWaveSchema = z.object({
  rolloutId,
  wave: z.object({
    number: z.number().int().min(0),
    phase: z.enum(['install', 'rollback', 'done']),
    canary: z.boolean(),
    results: z.array(z.object({ item: WaveItemSchema, outcome: z.enum(['succeeded', 'failed']), error: targetError.optional() })).max(MAX_CONCURRENCY),
  }),
});

export const TargetFailureSchema = z.object({
  item: WaveItemSchema,
  // What the Catch put in $.error: Step Functions' Error and Cause (the Cause may be 32 KB).
  error: z.object({ Error: z.string().max(256).optional(), Cause: z.string().max(300_000).optional() }),
});
