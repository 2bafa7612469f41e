/**
 * The caller's half of starting a rollout (pluginctl rollout; later POST /rollouts): check the
 * request's shape, and store it where PlanRollout reads it. A target list may be 10,000 ids,
 * too big for an execution input (256 KB), so it never travels in one: the execution gets the
 * rollout id only.
 */
import { PluginError } from '../errors.ts';
import { newStamp } from '../stamp.ts';
import { parseMaxErrors } from './max-errors.ts';
import { requestKey, RolloutRequestSchema, type RolloutRequest } from './rollout-record.ts';
import type { RolloutStore } from './rollout-store.ts';

export function newRolloutId(now: Date): string {
  return `rollout-${newStamp(now)}`;
}

/** Refuses a malformed request (InvalidInput naming the problem), before anything is stored. */
export function checkRolloutRequest(value: unknown): RolloutRequest {
  const parsed = RolloutRequestSchema.safeParse(value);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new PluginError('InvalidInput', `invalid rollout request: ${first.path.join('.') || 'request'}: ${first.message}`, 'see pluginctl rollout --help');
  }
  parseMaxErrors(parsed.data.maxErrors);
  return parsed.data;
}

export async function storeRolloutRequest(store: RolloutStore, request: RolloutRequest): Promise<void> {
  await store.put(requestKey(request.rolloutId), checkRolloutRequest(request));
}
