/**
 * A rollout refused before it started, in the shape of the rollout report (`pluginctl rollout
 * --json`). Its own module: main.ts reports usage refusals with it without loading the runner.
 */
import type { PluginError } from '../../lambdas/core/errors.ts';

/** A refused rollout in the `--json` report's shape: nothing planned, so no counts and no workspaces. */
export function rolloutRefusalJson(status: string, rolloutId: string | null, error: PluginError): Record<string, unknown> {
  return { status, rollout: rolloutId, plugin: null, version: null, sha256: null, counts: null, workspaces: [], error: error.toJSON() };
}
