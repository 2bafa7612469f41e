/**
 * The control plane's HTTP API, independent of how requests arrive (API Gateway proxy events in
 * the api Lambda, node:http in `pluginctl serve`). Each route validates its input, checks the
 * workspace (three outcomes), and starts a workflow or reads the host; it never waits for a
 * workflow to finish. The fleet rollout's two routes are in rollout-api.ts.
 */
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { PluginError } from '../errors.ts';
import { executionName } from '../execution-name.ts';
import { EXTERNAL_HINT } from '../runtimes.ts';
import { pluginNameForExecution } from '../sources/name-hint.ts';
import { probeSource } from '../sources/probe-source.ts';
import { newStamp } from '../stamp.ts';
import { listPlugins } from '../steps/list-plugins.ts';
import type { StartedExecution } from '../workflow/workflow-engine.ts';
import type { WorkflowName } from '../workflow/workflow-files.ts';
import type { WorkspaceRecord } from '../workspaces/workspace-directory.ts';
import { download } from './download-api.ts';
import { bodyTooLarge, errorResponse, json, parse, type ApiDeps, type ApiRequest, type ApiResponse } from './api-http.ts';
import { InstallBody, PluginNameParam, RolloutIdParam, WorkspaceIdParam } from './api-schemas.ts';
import { getRollout, postRollout } from './rollout-api.ts';

export type { ApiDeps, ApiRequest, ApiResponse } from './api-http.ts';
export { errorResponse } from './api-http.ts';

/**
 * Looks the workspace up and applies the design's order: an external runtime answers 422 with
 * the download hint before anything else, then unknown (404), not running (409); a transient
 * lookup error propagates as HostUnreachable (503).
 */
async function workspaceFor(deps: ApiDeps, id: string, refuseExternal: boolean): Promise<WorkspaceRecord> {
  const found = await deps.steps.workspaces.lookup(id);
  if (found.status !== 'not-found' && found.workspace?.runtime === 'external' && refuseExternal) {
    throw new PluginError('ExternalRuntime', `workspace ${id} runs the external runtime: plugins are not pushed to it`, EXTERNAL_HINT);
  }
  if (found.status === 'not-found') throw new PluginError('WorkspaceNotFound', `workspace ${id} does not exist`, 'check the workspace id (EC2 tag WorkspaceId)');
  if (found.status === 'not-running') throw new PluginError('WorkspaceNotRunning', `workspace ${id} is not running: ${found.reason}`, 'start the workspace, then retry');
  // A transport this deployment cannot reach answers 422 now, not as an execution failing later.
  if (found.workspace.runtime !== 'external') deps.steps.hosts(found.workspace);
  return found.workspace;
}

/**
 * With an Idempotency-Key the execution name is derived from it, so a retried request meets the
 * existing execution instead of starting another one.
 */
function nameFor(workspace: string, plugin: string, idempotencyKey: string | undefined, clock: () => Date): { name: string; stamp: string } {
  const stamp = newStamp(clock());
  if (!idempotencyKey) return { name: executionName(workspace, plugin, stamp), stamp };
  if (idempotencyKey.length > 256) throw new PluginError('InvalidInput', 'Idempotency-Key is longer than 256 characters', 'use a UUID');
  const digest = createHash('sha256').update(`${workspace}\n${idempotencyKey}`).digest('hex').slice(0, 24);
  const suffix = `k${digest}`;
  // Same readable head as usual (<workspace>-<plugin>), the key's digest in place of the stamp.
  const head = executionName(workspace, plugin, stamp).slice(0, -(stamp.length + 1));
  return { name: `${head.slice(0, 80 - suffix.length - 1).replace(/-+$/, '')}-${suffix}`, stamp };
}

function accepted(deps: ApiDeps, started: StartedExecution): ApiResponse {
  const statusUrl = `${deps.basePath ?? ''}/executions/${started.id}`;
  return json(202, { installId: started.id, executionArn: started.executionArn, statusUrl }, { location: statusUrl, ...(started.existing ? { 'idempotent-replayed': 'true' } : {}) });
}

/**
 * The request fields an execution's input carries; an Idempotency-Key replays an execution only
 * for a request equal in these (the IETF Idempotency-Key draft: same key, other payload → 422).
 */
const REQUEST_FIELDS: Record<WorkflowName, readonly string[]> = {
  install: ['workspace', 'source', 'sha256', 'runtime'],
  uninstall: ['workspace', 'plugin'],
  rollback: ['workspace', 'plugin'],
};

/** 422 when the execution this key named was started by a different request. */
function keyReused(workflow: WorkflowName, existing: StartedExecution, input: Record<string, unknown>, key: string): ApiResponse | undefined {
  // An execution whose input cannot be read (DescribeExecution without it) is taken as the same request.
  if (!existing.input) return undefined;
  const differs = REQUEST_FIELDS[workflow].filter((f) => !isDeepStrictEqual(existing.input![f] ?? null, input[f] ?? null));
  if (differs.length === 0) return undefined;
  return json(422, {
    error: {
      code: 'IdempotencyKeyReused',
      message: `Idempotency-Key ${JSON.stringify(key.slice(0, 64))} already started ${existing.id} with another request (${differs.join(', ')} differ)`,
      hint: 'send the same request to get that execution back, or a new Idempotency-Key for a new one',
    },
  });
}

/** A fresh execution name and the input carrying its stamp, for a key-less request whose first name was taken. */
type Rename = () => { name: string; input: Record<string, unknown> };

/**
 * How many fresh names a key-less request tries. Two requests on one (workspace, plugin) in the
 * same millisecond draw the same stamp one time in 1,296 (two random characters), which a burst
 * of installs meets; ten draws all taken would take ten such coincidences in a row.
 */
const FRESH_NAME_ATTEMPTS = 10;

/** Draws another stamp for the same request: its name and its input differ only in it. */
function renamer(deps: ApiDeps, workspace: string, plugin: string, input: Record<string, unknown>): Rename {
  return () => {
    const fresh = nameFor(workspace, plugin, undefined, deps.steps.clock);
    return { name: fresh.name, input: { ...input, stamp: fresh.stamp } };
  };
}

async function start(deps: ApiDeps, workflow: WorkflowName, name: string, input: Record<string, unknown>, req: ApiRequest, rename: Rename): Promise<ApiResponse> {
  let started = await deps.engine.start(workflow, name, input);
  const key = req.headers['idempotency-key'];
  if (!key) {
    // Without a key the name only has to be new: an execution already under it belongs to another
    // request (a stamp drawn twice), which this one must not be answered with as if a replay.
    for (let attempt = 1; started.existing && attempt < FRESH_NAME_ATTEMPTS; attempt++) {
      const next = rename();
      started = await deps.engine.start(workflow, next.name, next.input);
    }
    if (started.existing) throw new Error(`${FRESH_NAME_ATTEMPTS} fresh execution names for one ${workflow} request were all taken`);
  }
  if (started.existing && key) {
    // Two requests with one key raced: the one that lost is compared like a replay.
    const existing = await deps.engine.find(workflow, name);
    const reused = existing && keyReused(workflow, existing, input, key);
    if (reused) return reused;
  }
  return accepted(deps, started);
}

/** With an Idempotency-Key, the execution an earlier identical request started (202), 422 when the request differs. */
async function replayOf(deps: ApiDeps, workflow: WorkflowName, name: string, req: ApiRequest, input: Record<string, unknown>): Promise<ApiResponse | undefined> {
  const key = req.headers['idempotency-key'];
  if (!key) return undefined;
  const existing = await deps.engine.find(workflow, name);
  if (!existing) return undefined;
  return keyReused(workflow, existing, input, key) ?? accepted(deps, existing);
}

async function install(deps: ApiDeps, req: ApiRequest, id: string): Promise<ApiResponse> {
  const tooLarge = bodyTooLarge(req, '{source, sha256?, runtime?}');
  if (tooLarge) return tooLarge;
  let raw: unknown;
  try {
    raw = JSON.parse(req.body ?? '');
  } catch {
    throw new PluginError('InvalidInput', 'request body is not JSON', 'send {"source": "...", "sha256": "...", "runtime": "..."}');
  }
  const workspace = await workspaceFor(deps, id, true);
  const body = parse(InstallBody, raw, 'body');
  if (body.runtime && body.runtime !== workspace.runtime) {
    throw new PluginError('InvalidInput', `workspace ${id} runs ${workspace.runtime}, not ${body.runtime}`, 'drop runtime or pick the right workspace');
  }
  // Every source that can be refused is refused now, before an execution exists: unpinned,
  // malformed, not served here (a filesystem path), not there (e.g. not in the catalog).
  const sources = { ...deps.steps.sources, artifacts: deps.steps.artifacts };
  await probeSource(body.source, body.sha256, sources);
  const hint = await pluginNameForExecution(body.source, sources.cwd);
  const { name, stamp } = nameFor(id, hint, req.headers['idempotency-key'], deps.steps.clock);
  const input = { workspace: id, source: body.source, sha256: body.sha256 ?? null, runtime: body.runtime ?? null, stamp };
  // A retried request (same Idempotency-Key) gets its first execution back, whatever happened since.
  const replay = await replayOf(deps, 'install', name, req, input);
  if (replay) return replay;
  // A plugin whose name is known up front and whose lock is held answers 409 now, rather than
  // starting an execution that would wait for it.
  if (/^local:\/\//.test(body.source)) {
    const listing = await listPlugins(deps.steps, id);
    const lock = listing.locks.find((l) => l.name === hint);
    if (lock) throw new PluginError('LockBusy', `plugin ${hint} on ${id} is busy (operation ${lock.stamp})`, 'retry when it finishes');
  }
  return start(deps, 'install', name, input, req, renamer(deps, id, hint, input));
}

async function pluginOperation(deps: ApiDeps, req: ApiRequest, id: string, plugin: string, workflow: 'uninstall' | 'rollback'): Promise<ApiResponse> {
  await workspaceFor(deps, id, true);
  const { name, stamp } = nameFor(id, plugin, req.headers['idempotency-key'], deps.steps.clock);
  const input = { workspace: id, plugin, stamp };
  const replay = await replayOf(deps, workflow, name, req, input);
  if (replay) return replay;
  const listing = await listPlugins(deps.steps, id);
  if (listing.degraded) throw new PluginError('HostUnreachable', `cannot reach the host of ${id}: ${listing.reason ?? ''}`, 'retry shortly');
  if (listing.locks.some((l) => l.name === plugin)) throw new PluginError('LockBusy', `plugin ${plugin} on ${id} is busy`, 'retry when the running operation finishes');
  if (workflow === 'uninstall' && !listing.plugins.some((p) => p.name === plugin)) {
    throw new PluginError('NotInstalled', `plugin ${plugin} is not installed on ${id}`, 'GET /workspaces/{id}/plugins lists what is installed');
  }
  if (workflow === 'rollback' && !listing.snapshots.some((s) => s.name === plugin)) {
    throw new PluginError('NothingToRestore', `plugin ${plugin} on ${id} has no snapshot to roll back to`, 'install the version you want instead');
  }
  return start(deps, workflow, name, input, req, renamer(deps, id, plugin, input));
}

async function list(deps: ApiDeps, id: string): Promise<ApiResponse> {
  const found = await deps.steps.workspaces.lookup(id);
  if (found.status === 'not-found') throw new PluginError('WorkspaceNotFound', `workspace ${id} does not exist`, 'check the workspace id');
  if (found.workspace?.runtime === 'external') {
    return json(200, { workspace: id, plugins: [], degraded: true, reason: `external workspace: ${EXTERNAL_HINT}` });
  }
  const listing = await listPlugins(deps.steps, id);
  const plugins = listing.plugins.map(({ name, version, sha256, installedAt, complete }) => ({ name, version, sha256, installedAt, complete }));
  return json(200, { workspace: id, plugins, degraded: listing.degraded, ...(listing.reason ? { reason: listing.reason } : {}) });
}

async function execution(deps: ApiDeps, id: string): Promise<ApiResponse> {
  const summary = await deps.engine.describe(id);
  if (!summary) return json(404, { error: { code: 'NotFound', message: `no execution ${id}`, hint: 'use the statusUrl returned when the operation started' } });
  return json(200, summary);
}

const ROUTES: [string, RegExp, (deps: ApiDeps, req: ApiRequest, params: string[]) => Promise<ApiResponse>][] = [
  ['POST', /^\/workspaces\/([^/]+)\/plugins$/, (d, r, [id]) => install(d, r, parse(WorkspaceIdParam, id, 'workspace id'))],
  ['GET', /^\/workspaces\/([^/]+)\/plugins$/, (d, _r, [id]) => list(d, parse(WorkspaceIdParam, id, 'workspace id'))],
  ['DELETE', /^\/workspaces\/([^/]+)\/plugins\/([^/]+)$/, (d, r, [id, name]) => pluginOperation(d, r, parse(WorkspaceIdParam, id, 'workspace id'), parse(PluginNameParam, name, 'plugin name'), 'uninstall')],
  ['POST', /^\/workspaces\/([^/]+)\/plugins\/([^/]+)\/rollback$/, (d, r, [id, name]) => pluginOperation(d, r, parse(WorkspaceIdParam, id, 'workspace id'), parse(PluginNameParam, name, 'plugin name'), 'rollback')],
  ['GET', /^\/workspaces\/([^/]+)\/plugins\/([^/]+)\/download$/, async (d, r, [id, name]) => {
    const workspace = parse(WorkspaceIdParam, id, 'workspace id');
    const plugin = parse(PluginNameParam, name, 'plugin name');
    return download(d, await workspaceFor(d, workspace, false), plugin, r.query);
  }],
  ['GET', /^\/executions\/([^/]+)$/, (d, _r, [id]) => execution(d, id!)],
  ['POST', /^\/rollouts$/, (d, r) => postRollout(d, r)],
  ['GET', /^\/rollouts\/([^/]+)$/, (d, _r, [id]) => getRollout(d, parse(RolloutIdParam, id, 'rollout id'))],
];

export async function handleApiRequest(req: ApiRequest, deps: ApiDeps): Promise<ApiResponse> {
  // Match the raw path and decode each parameter once: an encoded "/" stays inside its parameter.
  const path = req.path.replace(/\/+$/, '') || '/';
  const matching = ROUTES.filter(([, pattern]) => pattern.test(path));
  if (matching.length === 0) return json(404, { error: { code: 'NotFound', message: `no route ${path.slice(0, 200)}`, hint: 'see GET /openapi.json' } });
  const route = matching.find(([method]) => method === req.method.toUpperCase());
  if (!route) {
    const allowed = matching.map(([m]) => m).join(', ');
    return json(405, { error: { code: 'MethodNotAllowed', message: `${req.method.slice(0, 20)} is not allowed on ${path.slice(0, 200)}`, hint: `this route answers ${allowed} (see GET /openapi.json)` } }, { allow: allowed });
  }
  try {
    const params = route[1].exec(path)!.slice(1).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        throw new PluginError('InvalidInput', 'malformed percent-encoding in the path', 'encode path parameters with encodeURIComponent');
      }
    });
    return await route[2](deps, req, params);
  } catch (err) {
    if (err instanceof PluginError) return errorResponse(err);
    throw err;
  }
}
