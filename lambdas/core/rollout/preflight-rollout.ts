/**
 * What POST /rollouts checks before it starts anything, so that refused input answers at once
 * (400/422, or 409 when another rollout holds the plugin) instead of as a rollout that fails a
 * moment later. Each check is one PlanRollout makes again when the rollout starts (plan-rollout.ts
 * stays the authority: the world may change in between); what needs the tarball's bytes (a
 * hostile or malformed tarball, a runtime the manifest does not support) is left to PlanRollout,
 * and GET /rollouts/{id} then reports the refusal.
 *
 * Checked here: the source can be had (probe-source.ts), the named workspaces exist (a tag
 * selector matches at least one and at most MAX_TARGETS), and, when the plugin's name is known
 * without reading the tarball (`local://name…`, a plugin directory), no other rollout holds it.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PluginError } from '../errors.ts';
import { pluginNameHint } from '../sources/name-hint.ts';
import { probeSource } from '../sources/probe-source.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import { MAX_TARGETS } from './rollout-limits.ts';
import { assertRolloutLockFree } from './rollout-lock.ts';
import type { RolloutRequest } from './rollout-record.ts';
import type { RolloutStore } from './rollout-store.ts';

const LOOKUP_CONCURRENCY = 16;

function listed(ids: string[]): string {
  return ids.slice(0, 5).join(', ') + (ids.length > 5 ? ` and ${ids.length - 5} more` : '');
}

/** The plugin's name when the source says it for sure; undefined when only the manifest can. */
export function knownPluginName(source: string, cwd: string = process.cwd()): string | undefined {
  if (/^local:\/\/[^@/]+/.test(source)) return pluginNameHint(source);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source) && !source.startsWith('file://')) return undefined;
  const path = resolve(cwd, source.replace(/^file:\/\//, ''));
  try {
    if (statSync(path).isDirectory() && existsSync(join(path, 'plugin.yaml'))) return pluginNameHint(path);
  } catch {
    // The probe has already said whether the path exists.
  }
  return undefined;
}

/**
 * Unknown workspaces, with one directory listing instead of a lookup per target (a rollout may
 * name 10,000): only the ids the listing lacks are looked up, since it leaves out instances a
 * lookup still finds (shutting down).
 */
async function unknownWorkspaces(deps: StepDeps, ids: string[]): Promise<string[]> {
  const known = new Set(await deps.workspaces.list());
  const missing = [...new Set(ids)].filter((id) => !known.has(id));
  const unknown: string[] = [];
  for (let i = 0; i < missing.length; i += LOOKUP_CONCURRENCY) {
    const batch = missing.slice(i, i + LOOKUP_CONCURRENCY);
    const found = await Promise.all(batch.map(async (id) => ({ id, found: await deps.workspaces.lookup(id) })));
    unknown.push(...found.filter((f) => f.found.status === 'not-found').map((f) => f.id));
  }
  return unknown;
}

export async function preflightRollout(deps: StepDeps, store: RolloutStore, request: RolloutRequest): Promise<void> {
  await probeSource(request.source, request.sha256, { ...deps.sources, artifacts: deps.artifacts });

  if ('workspaces' in request.targets) {
    const unknown = await unknownWorkspaces(deps, request.targets.workspaces);
    if (unknown.length) throw new PluginError('WorkspaceNotFound', `unknown workspace${unknown.length > 1 ? 's' : ''} ${listed(unknown)}`, 'check the ids, or select the workspaces by tag (selector)');
  } else {
    const ids = await deps.workspaces.list('selector' in request.targets ? request.targets.selector : undefined);
    if (ids.length === 0) throw new PluginError('InvalidInput', 'the rollout has no targets: no workspace matched the selector', 'check the tag selector (every key/value must match an instance\'s tags)');
    if (ids.length > MAX_TARGETS) throw new PluginError('InvalidInput', `the selector matches ${ids.length} workspaces, more than ${MAX_TARGETS}`, `narrow the selector to at most ${MAX_TARGETS} workspaces, e.g. by another tag`);
  }

  const plugin = knownPluginName(request.source, deps.sources.cwd);
  if (plugin) await assertRolloutLockFree(store, plugin, request.rolloutId, deps.clock());
}
