/**
 * The fleet rollout's routes (issue 11, section 3):
 *   POST /rollouts        checks what can be checked without the tarball (preflight-rollout.ts),
 *                         stores the request, starts statemachine/rollout.asl.json through the
 *                         WorkflowEngine (Step Functions on AWS, the in-process runner in
 *                         `pluginctl serve`, as `pluginctl rollout` runs it) → 202
 *   GET /rollouts/{id}    the `pluginctl rollout --json` object while it runs and after
 *                         (rollout-status.ts)
 * With an Idempotency-Key the rollout id is derived from the key, so a retried request (same key,
 * same body) meets the rollout the first one started; the same key with another body is refused.
 */
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { PluginError } from '../errors.ts';
import { preflightRollout } from '../rollout/preflight-rollout.ts';
import { rolloutStore } from '../rollout/rollout-documents.ts';
import { requestKey, type RolloutRequest } from '../rollout/rollout-record.ts';
import { checkRolloutRequest, newRolloutId } from '../rollout/rollout-request.ts';
import { describeRollout, firstExecutionName } from '../rollout/rollout-status.ts';
import type { RolloutStore } from '../rollout/rollout-store.ts';
import type { StartedExecution } from '../workflow/workflow-engine.ts';
import { ROLLOUT_DEFINITION } from '../workflow/workflow-files.ts';
import { bodyTooLarge, errorResponse, json, jsonBody, parse, type ApiDeps, type ApiRequest, type ApiResponse } from './api-http.ts';
import { RolloutBody } from './api-schemas.ts';

const SHAPE = '{source, sha256?, workspaces | selector, maxConcurrency, maxErrors, canary, rollbackOnHalt}';
const EXAMPLE = '{"source": "local://hello-skills@1.1.0", "workspaces": ["ws1", "ws2"], "maxConcurrency": 5, "maxErrors": "10%", "canary": 1, "rollbackOnHalt": false}';

/** The rollout id an Idempotency-Key stands for (`rollout-k<digest>`, within ROLLOUT_ID). */
function keyedRolloutId(key: string): string {
  if (key.length > 256) throw new PluginError('InvalidInput', 'Idempotency-Key is longer than 256 characters', 'use a UUID');
  return `rollout-k${createHash('sha256').update(`rollouts\n${key}`).digest('hex').slice(0, 24)}`;
}

function requestOf(body: ReturnType<typeof RolloutBody.parse>, rolloutId: string): RolloutRequest {
  if (body.workspaces && body.selector) {
    throw new PluginError('InvalidInput', 'give either workspaces or selector, not both', `send ${EXAMPLE}, or {"selector": {"Team": "a"}, …} instead of workspaces`);
  }
  if (!body.workspaces && !body.selector) {
    throw new PluginError('InvalidInput', 'name the targets: workspaces (a list of ids) or selector (tags)', `send ${EXAMPLE}`);
  }
  // An empty selector matches every workspace: the embedded directory has no tags, but has them all.
  const targets = body.workspaces ? { workspaces: body.workspaces } : Object.keys(body.selector!).length ? { selector: body.selector! } : { all: true as const };
  return checkRolloutRequest({
    rolloutId,
    source: body.source,
    sha256: body.sha256 ?? null,
    targets,
    maxConcurrency: body.maxConcurrency,
    maxErrors: String(body.maxErrors),
    canary: body.canary,
    rollbackOnHalt: body.rollbackOnHalt,
  });
}

function accepted(deps: ApiDeps, rolloutId: string, started: StartedExecution, replayed: boolean): ApiResponse {
  const statusUrl = `${deps.basePath ?? ''}/rollouts/${rolloutId}`;
  return json(202, { rolloutId, executionArn: started.executionArn, statusUrl }, { location: statusUrl, ...(replayed ? { 'idempotent-replayed': 'true' } : {}) });
}

async function start(deps: ApiDeps, rolloutId: string): Promise<StartedExecution> {
  return deps.engine.start(ROLLOUT_DEFINITION, firstExecutionName(rolloutId), { rolloutId, resume: false });
}

/**
 * The rollout an earlier request with this key stored, if any. Its execution is started when it
 * is not found (the earlier request stopped between storing and starting; an execution name is
 * used once, so this cannot start a second one).
 */
async function replayOf(deps: ApiDeps, store: RolloutStore, request: RolloutRequest): Promise<ApiResponse | undefined> {
  const stored = await store.get<RolloutRequest>(requestKey(request.rolloutId));
  if (!stored) return undefined;
  if (!isDeepStrictEqual(stored.value, request)) {
    return json(422, {
      error: {
        code: 'IdempotencyKeyReused',
        message: `this Idempotency-Key already started rollout ${request.rolloutId} with another body`,
        hint: 'send the same body to get that rollout back, or a new Idempotency-Key for a new rollout',
      },
    });
  }
  const started = (await deps.engine.find(ROLLOUT_DEFINITION, firstExecutionName(request.rolloutId))) ?? (await start(deps, request.rolloutId));
  return accepted(deps, request.rolloutId, started, true);
}

export async function postRollout(deps: ApiDeps, req: ApiRequest): Promise<ApiResponse> {
  const tooLarge = bodyTooLarge(req, SHAPE);
  if (tooLarge) return tooLarge;
  const body = parse(RolloutBody, jsonBody(req, EXAMPLE), 'body');
  const key = req.headers['idempotency-key'];
  const request = requestOf(body, key ? keyedRolloutId(key) : newRolloutId(deps.steps.clock()));
  const store = rolloutStore(deps.steps);
  if (key) {
    const replay = await replayOf(deps, store, request);
    if (replay) return replay;
  }
  try {
    await preflightRollout(deps.steps, store, request);
  } catch (err) {
    // The workspaces are named in the body, not the URL: an unknown one is refused input (422), not a missing resource (404).
    if (err instanceof PluginError && err.code === 'WorkspaceNotFound') return errorResponse(err, 422);
    throw err;
  }
  if (!(await store.create(requestKey(request.rolloutId), request))) {
    // A request with the same key got there first: answer as its retry.
    const replay = await replayOf(deps, store, request);
    if (replay) return replay;
  }
  return accepted(deps, request.rolloutId, await start(deps, request.rolloutId), false);
}

export async function getRollout(deps: ApiDeps, rolloutId: string): Promise<ApiResponse> {
  const report = await describeRollout(rolloutStore(deps.steps), deps.engine, rolloutId, deps.steps.clock());
  if (!report) return json(404, { error: { code: 'NotFound', message: `no rollout ${rolloutId}`, hint: 'use the statusUrl POST /rollouts returned' } });
  return json(200, report);
}
