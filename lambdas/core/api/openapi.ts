/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the same zod schemas the handler
 * validates with (served at GET /openapi.json by `pluginctl serve`, committed as
 * docs/openapi.json; a test keeps the two equal, spectral lints it, and
 * test/e2e/api-contract.test.ts drives every route and status through Prism against it).
 *
 * Every operation is one row of OPERATIONS: its own statuses (what its code paths answer) plus
 * the statuses every route can answer (SHARED_STATUSES: authentication, an unknown method on the
 * path, an oversized body, API Gateway's throttle and integration failures, an internal error).
 * To document a new status of a route, add it to the route's `statuses`.
 */
import { toJSONSchema, type ZodType } from '../zod.ts';
import { Accepted, ErrorBody, ExecutionBody, InstallBody, PluginList, PluginNameParam, RolloutAccepted, RolloutBody, RolloutIdParam, RolloutStatusBody, WorkspaceIdParam } from './api-schemas.ts';

function schema(type: ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = toJSONSchema(type, { io: 'input' }) as Record<string, unknown>;
  return rest;
}

type Json = Record<string, unknown>;
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const sharedResponse = (name: string) => ({ $ref: `#/components/responses/${name}` });
const jsonContent = (schemaName: string) => ({ 'application/json': { schema: ref(schemaName) } });
const header = (description: string, headerSchema: Json = { type: 'string' }, required = false) => ({ description, required, schema: headerSchema });
/** An error answer: always the Error schema ({error: {code, message, hint}}), the description names the codes. */
const errorResponse = (description: string, headers?: Json): Json => ({ description, ...(headers ? { headers } : {}), content: jsonContent('Error') });

const workspaceParam = { name: 'id', in: 'path', required: true, description: 'Workspace id (EC2 tag WorkspaceId)', schema: schema(WorkspaceIdParam) };
const pluginParam = { name: 'name', in: 'path', required: true, description: 'Plugin name (plugin.yaml name)', schema: schema(PluginNameParam) };
const versionQuery = {
  name: 'version',
  in: 'query',
  required: false,
  description: 'external workspace: the catalog version to download (default the highest); other workspaces: must equal the installed version (else 404)',
  schema: { type: 'string', pattern: '^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$' },
};
const idempotencyKey = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description: 'scoped to the workspace and plugin: a retry with the same key and request returns the first execution (Idempotent-Replayed: true); the same key with another body is refused (422 IdempotencyKeyReused)',
  schema: { type: 'string', maxLength: 256 },
};
const rolloutKey = { ...idempotencyKey, description: 'the rollout id is derived from it: a retry with the same key and body returns the first rollout (Idempotent-Replayed: true); the same key with another body is refused (422 IdempotencyKeyReused)' };
const replayedHeader = header('true when an earlier request with the same Idempotency-Key started this (nothing new was started)', { type: 'string', enum: ['true'] });
const executionAccepted = {
  description: 'workflow started (or, with a replayed Idempotency-Key, the one the first request started)',
  headers: { Location: header('the execution\'s status URL (statusUrl)', { type: 'string' }, true), 'Idempotent-Replayed': replayedHeader },
  content: jsonContent('Accepted'),
};

/** The body's one rule JSON Schema can say and zod's object cannot: exactly one way to name the targets. */
function rolloutRequestSchema(): Json {
  return { ...schema(RolloutBody), oneOf: [{ required: ['workspaces'] }, { required: ['selector'] }] };
}

/** Statuses every route can answer, as shared responses (components.responses). */
const SHARED_STATUSES: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  405: 'MethodNotAllowed',
  413: 'PayloadTooLarge',
  429: 'TooManyRequests',
  500: 'InternalError',
  502: 'BadGateway',
  504: 'GatewayTimeout',
};

const SHARED_RESPONSES: Record<string, Json> = {
  Unauthorized: errorResponse('pluginctl serve: missing or wrong bearer token (code Unauthorized)', { 'WWW-Authenticate': header('the scheme to use: Bearer', { type: 'string' }, true) }),
  Forbidden: errorResponse('API Gateway: the request is not signed with SigV4, the signature is wrong, or the caller may not execute-api:Invoke this route (code MISSING_AUTHENTICATION_TOKEN, INVALID_SIGNATURE, ACCESS_DENIED…); pluginctl serve never answers it on API routes'),
  MethodNotAllowed: errorResponse('the path exists but does not answer this method (code MethodNotAllowed; the hint and Allow name the methods it answers). OpenAPI has no per-path responses, so each operation of the path declares it', {
    Allow: header('the methods the path answers, e.g. "POST, GET"', { type: 'string' }, true),
  }),
  PayloadTooLarge: errorResponse('request body larger than the route accepts: 1 MiB on POST /rollouts, 64 KiB on every other route (code InvalidInput)'),
  TooManyRequests: errorResponse('API Gateway: the stage throttle (20 requests/s, bursts of 40) refused the request; retry with backoff (code THROTTLED)'),
  InternalError: errorResponse('an unexpected failure (code InternalError; the server or api function log has the details)'),
  BadGateway: errorResponse('API Gateway: the api function failed or answered something that is not a proxy response (code INTEGRATION_FAILURE); retry shortly'),
  GatewayTimeout: errorResponse('API Gateway: the api function did not answer within 29 s (code INTEGRATION_TIMEOUT); retry, with the same Idempotency-Key for a POST or DELETE'),
  Unavailable: errorResponse('transient failure looking up the workspace or reaching its host (HostUnreachable, HostTimeout, HostStepInterrupted): retry after Retry-After seconds', {
    'Retry-After': header('seconds to wait before retrying', { type: 'string', pattern: '^[0-9]+$' }, true),
  }),
};

interface OperationDoc {
  method: 'get' | 'post' | 'delete';
  path: string;
  operationId: string;
  tag: 'plugins' | 'executions' | 'rollouts';
  summary: string;
  /** What it does, whether it is idempotent, how it fails. */
  description: string;
  parameters: Json[];
  requestBody?: Json;
  /** The route's own answers: a response object, or a shared response by name (components.responses). */
  statuses: Record<number, Json | string>;
}

const OPERATIONS: OperationDoc[] = [
  {
    method: 'post',
    path: '/workspaces/{id}/plugins',
    operationId: 'installPlugin',
    tag: 'plugins',
    summary: 'Install a plugin (starts the install workflow)',
    description:
      'Validates the request and the workspace, then starts the install workflow and answers 202 with the execution\'s status URL at once (it does not wait). ' +
      'Idempotent with an Idempotency-Key: a retry with the same key and body returns the first execution (Idempotent-Replayed: true); without one every request starts an install. ' +
      'Refused synchronously: bad input (400), unknown workspace (404), a stopped workspace or a busy plugin (409), an external workspace, an unreachable transport, an unpinned https/github source or a reused key (422).',
    parameters: [workspaceParam, idempotencyKey],
    requestBody: { required: true, content: jsonContent('InstallRequest') },
    statuses: {
      202: executionAccepted,
      400: errorResponse('bad input (InvalidInput: a bad workspace id, a body that is not JSON or not the InstallRequest shape, runtime other than the workspace\'s, an Idempotency-Key over 256 characters, a malformed source, a source not served here: a filesystem path on AWS or outside pluginctl serve --sources-dir; SourceNotFound: a local:// plugin or version the catalog lacks, a missing path; InvalidManifest, HostileTarball)'),
      404: errorResponse('unknown workspace (WorkspaceNotFound)'),
      409: errorResponse('the workspace is not running (WorkspaceNotRunning), or the plugin is busy (LockBusy)'),
      413: errorResponse('request body larger than 64 KiB (InvalidInput)'),
      422: errorResponse('an external workspace (ExternalRuntime; hint: publish to the catalog, pull via download), a transport this deployment cannot reach (TransportUnavailable), an https/github source without sha256 (UnpinnedSource), or an Idempotency-Key reused with another body (IdempotencyKeyReused)'),
      503: 'Unavailable',
    },
  },
  {
    method: 'get',
    path: '/workspaces/{id}/plugins',
    operationId: 'listPlugins',
    tag: 'plugins',
    summary: 'List installed plugins',
    description:
      'Reads the workspace\'s host: each installed plugin with its version, sha256, install time and whether it is complete. Read-only and idempotent. ' +
      'An unreachable host or an external workspace answers 200 with degraded: true and a reason rather than an error; an unknown workspace is 404, a bad id 400.',
    parameters: [workspaceParam],
    statuses: {
      200: { description: 'installed plugins (degraded: true with a reason when the host could not be read)', content: jsonContent('PluginList') },
      400: errorResponse('malformed workspace id (InvalidInput)'),
      404: errorResponse('unknown workspace (WorkspaceNotFound)'),
      503: 'Unavailable',
    },
  },
  {
    method: 'delete',
    path: '/workspaces/{id}/plugins/{name}',
    operationId: 'uninstallPlugin',
    tag: 'plugins',
    summary: 'Uninstall a plugin (starts the uninstall workflow)',
    description:
      'Starts the uninstall workflow (the live version moves to .previous, so it can be rolled back) and answers 202 with the execution\'s status URL. ' +
      'Idempotent with an Idempotency-Key (a retry returns the first execution); without one a second uninstall of a removed plugin is 404. ' +
      'Refused synchronously: bad id or name (400), unknown workspace or plugin not installed (404), not running or busy (409), external workspace, unreachable transport or a reused key (422), host unreachable (503).',
    parameters: [workspaceParam, pluginParam, idempotencyKey],
    statuses: {
      202: executionAccepted,
      400: errorResponse('malformed workspace id or plugin name, or an Idempotency-Key over 256 characters (InvalidInput)'),
      404: errorResponse('unknown workspace (WorkspaceNotFound) or plugin not installed (NotInstalled)'),
      409: errorResponse('the workspace is not running (WorkspaceNotRunning), or the plugin is busy (LockBusy)'),
      422: errorResponse('an external workspace (ExternalRuntime), a transport this deployment cannot reach (TransportUnavailable), or an Idempotency-Key reused with another request (IdempotencyKeyReused)'),
      503: 'Unavailable',
    },
  },
  {
    method: 'post',
    path: '/workspaces/{id}/plugins/{name}/rollback',
    operationId: 'rollbackPlugin',
    tag: 'plugins',
    summary: 'Roll back to the newest snapshot (starts the rollback workflow)',
    description:
      'Starts the rollback workflow, which puts the newest snapshot (.previous) back live, and answers 202 with the execution\'s status URL. No request body. ' +
      'Idempotent with an Idempotency-Key (a retry returns the first execution); without one each request rolls back one step further. ' +
      'Refused synchronously: bad id or name (400), unknown workspace (404), nothing to roll back to, not running or busy (409), external workspace, unreachable transport or a reused key (422), host unreachable (503).',
    parameters: [workspaceParam, pluginParam, idempotencyKey],
    statuses: {
      202: executionAccepted,
      400: errorResponse('malformed workspace id or plugin name, or an Idempotency-Key over 256 characters (InvalidInput)'),
      404: errorResponse('unknown workspace (WorkspaceNotFound)'),
      409: errorResponse('no snapshot to roll back to (NothingToRestore), the workspace is not running (WorkspaceNotRunning), or the plugin is busy (LockBusy)'),
      422: errorResponse('an external workspace (ExternalRuntime), a transport this deployment cannot reach (TransportUnavailable), or an Idempotency-Key reused with another request (IdempotencyKeyReused)'),
      503: 'Unavailable',
    },
  },
  {
    method: 'get',
    path: '/workspaces/{id}/plugins/{name}/download',
    operationId: 'downloadPlugin',
    tag: 'plugins',
    summary: 'Redirect to a short-lived URL of a validated tarball: the installed version, or for an external workspace the catalog\'s (latest or ?version=)',
    description:
      'Answers 302 with a presigned, short-lived URL (5 minutes) of a content-addressed tarball (named by its sha256); fetch it without credentials. ' +
      'A workspace we install into gets its installed (and marked) version; `?version=` there must name it. An external workspace (its agent pulls plugins itself) gets the plugin catalog\'s version, the highest or `?version=`, validated like any source and stored content-addressed first. ' +
      'Read-only and idempotent (each call signs a new URL). Errors: bad id, name or version, or no catalog configured (400), unknown workspace, plugin not installed, not the version asked for, its tarball gone, or a plugin or version the catalog lacks (404), not running or mid-change (409), a catalog tarball that does not validate or an unreachable transport (422), host unreachable (503).',
    parameters: [workspaceParam, pluginParam, versionQuery],
    statuses: {
      302: {
        description: 'redirect to the tarball, named by its sha256 (no body)',
        headers: { Location: header('presigned URL of the tarball', { type: 'string' }, true), 'Cache-Control': header('no-store: the URL expires', { type: 'string' }) },
      },
      400: errorResponse('malformed workspace id, plugin name or version, or (external workspace) no plugin catalog configured (InvalidInput)'),
      404: errorResponse('unknown workspace (WorkspaceNotFound); the plugin is not installed, not at the ?version= asked for, or its tarball is no longer stored (NotInstalled); for an external workspace, a plugin or version the catalog lacks (SourceNotFound, the hint lists the versions there)'),
      409: errorResponse('the workspace is not running (WorkspaceNotRunning), or the plugin is being changed: an operation holds its lock and live has no marker yet (LockBusy; retry when it finishes)'),
      422: errorResponse('the catalog\'s tarball does not validate (HostileTarball, InvalidManifest, RuntimeMismatch, ChecksumMismatch), or a transport this deployment cannot reach (TransportUnavailable)'),
      503: 'Unavailable',
    },
  },
  {
    method: 'get',
    path: '/executions/{id}',
    operationId: 'getExecution',
    tag: 'executions',
    summary: 'Status and per-step summary of an execution',
    description:
      'The status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED), each step with its status, duration and attempts, and the error of a failed execution. Read-only and idempotent: poll it until the status is not RUNNING. ' +
      'Errors: an unknown id (404), malformed percent-encoding in the id (400).',
    parameters: [{ name: 'id', in: 'path', required: true, description: 'the installId (statusUrl) an install, uninstall or rollback returned: <workflow>.<execution name>', schema: { type: 'string' } }],
    statuses: {
      200: { description: 'execution', content: jsonContent('Execution') },
      400: errorResponse('malformed percent-encoding in the id (InvalidInput)'),
      404: errorResponse('no such execution (NotFound)'),
    },
  },
  {
    method: 'post',
    path: '/rollouts',
    operationId: 'startRollout',
    tag: 'rollouts',
    summary: 'Roll a plugin version out to many workspaces (starts the fleet rollout workflow)',
    description:
      'Canary first, then at most maxConcurrency installs at once, halting when failures exceed maxErrors. ' +
      'Checked before anything starts: the body, that the source can be had, that the named workspaces exist (or the selector matches some), and, when the source names the plugin (local://name…), that no other rollout holds it. ' +
      'What needs the tarball (its validity, the runtimes it supports) is checked as the rollout starts; GET /rollouts/{id} then answers status refused or busy with the error. ' +
      'Idempotent with an Idempotency-Key (the rollout id is derived from it; the same key and body return the first rollout, another body is 422).',
    parameters: [rolloutKey],
    requestBody: { required: true, content: jsonContent('RolloutRequest') },
    statuses: {
      202: {
        description: 'rollout started (or, with a replayed Idempotency-Key, the one the first request started)',
        headers: { Location: header('the rollout\'s status URL (statusUrl)', { type: 'string' }, true), 'Idempotent-Replayed': replayedHeader },
        content: jsonContent('RolloutAccepted'),
      },
      400: errorResponse('bad input (InvalidInput: a body that is not JSON, both or neither of workspaces/selector, maxConcurrency or canary out of range, a bad maxErrors, an Idempotency-Key over 256 characters), or a source that cannot be had (SourceNotFound)'),
      409: errorResponse('another rollout holds the plugin (RolloutBusy; the message names it)'),
      413: errorResponse('request body larger than 1 MiB (InvalidInput)'),
      422: errorResponse('unknown workspaces (WorkspaceNotFound, named), an https/github source without sha256 (UnpinnedSource), or an Idempotency-Key reused with another body (IdempotencyKeyReused)'),
      503: 'Unavailable',
    },
  },
  {
    method: 'get',
    path: '/rollouts/{id}',
    operationId: 'getRollout',
    tag: 'rollouts',
    summary: 'The rollout\'s report (the pluginctl rollout --json object), while it runs and after',
    description: 'Read-only and idempotent: status running until the rollout has finished, then succeeded, failed or halted with per-workspace results; refused or busy with the error when it was refused before anything started. Errors: a malformed id (400), an unknown rollout (404).',
    parameters: [{ name: 'id', in: 'path', required: true, description: 'the rolloutId POST /rollouts returned', schema: schema(RolloutIdParam) }],
    statuses: {
      200: { description: 'report; status running until it has finished', content: jsonContent('RolloutStatus') },
      400: errorResponse('malformed rollout id (InvalidInput)'),
      404: errorResponse('no such rollout (NotFound)'),
      503: 'Unavailable',
    },
  },
];

/** The statuses an operation declares: its own, then the shared ones it does not override. */
function responsesOf(op: OperationDoc): Json {
  const statuses: Record<number, Json | string> = { ...SHARED_STATUSES, ...op.statuses };
  return Object.fromEntries(
    Object.entries(statuses)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([status, response]) => [status, typeof response === 'string' ? sharedResponse(response) : response]),
  );
}

function pathsOf(operations: readonly OperationDoc[]): Json {
  const paths: Record<string, Json> = {};
  for (const op of operations) {
    const { method, path, operationId, tag, summary, description, parameters, requestBody } = op;
    (paths[path] ??= {})[method] = { operationId, tags: [tag], summary, description, parameters, ...(requestBody ? { requestBody } : {}), responses: responsesOf(op) };
  }
  return paths;
}

export function openApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'workspace-plugin-installer',
      version: '1.0.0',
      description:
        'Atomic, observable, reversible plugin installs into workspaces. On AWS the API sits behind API Gateway with IAM auth (requests signed with SigV4 for execute-api; unsigned or unauthorized requests get 403); `pluginctl serve` uses a bearer token (PLUGINCTL_TOKEN; without it 401). ' +
        'Every error answers {error: {code, message, hint}}; a path that is no route answers 404 (NotFound), a known path asked with another method 405 with Allow.',
      contact: { name: 'workspace-plugin-installer maintainers' },
    },
    servers: [
      {
        url: 'https://{restApiId}.execute-api.{region}.amazonaws.com/v1',
        description: 'API Gateway stage v1 (the stack output ApiUrl); IAM (SigV4) auth',
        variables: { restApiId: { default: 'abcdef1234', description: 'the REST API id (ApiUrl output)' }, region: { default: 'us-east-1', description: 'the stack\'s region' } },
      },
      {
        url: 'http://127.0.0.1:{port}',
        description: '`pluginctl serve --port N` on loopback; bearer token auth',
        variables: { port: { default: '8787', description: 'the --port given to pluginctl serve' } },
      },
    ],
    security: [{ sigv4: [] }, { bearer: [] }],
    tags: [
      { name: 'plugins', description: 'install, list, uninstall, roll back and download the plugins of one workspace' },
      { name: 'executions', description: 'the status of the workflows the plugin routes start' },
      { name: 'rollouts', description: 'fleet rollouts: one plugin version to many workspaces' },
    ],
    paths: pathsOf(OPERATIONS),
    components: {
      securitySchemes: {
        sigv4: { type: 'apiKey', name: 'Authorization', in: 'header', description: 'AWS Signature Version 4 for service execute-api (API Gateway IAM auth; the caller needs execute-api:Invoke)', 'x-amazon-apigateway-authtype': 'awsSigv4' },
        bearer: { type: 'http', scheme: 'bearer', description: 'PLUGINCTL_TOKEN (pluginctl serve)' },
      },
      responses: SHARED_RESPONSES,
      schemas: {
        InstallRequest: schema(InstallBody),
        Accepted: schema(Accepted),
        PluginList: schema(PluginList),
        Execution: schema(ExecutionBody),
        Error: schema(ErrorBody),
        RolloutRequest: rolloutRequestSchema(),
        RolloutAccepted: schema(RolloutAccepted),
        RolloutStatus: schema(RolloutStatusBody),
      },
    },
  };
}
