/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the same zod schemas the handler
 * validates with (served at GET /openapi.json by `pluginctl serve`, committed as
 * docs/openapi.json; a test keeps the two equal).
 */
import { toJSONSchema, type ZodType } from '../zod.ts';
import { Accepted, ErrorBody, ExecutionBody, InstallBody, PluginList, PluginNameParam, RolloutAccepted, RolloutBody, RolloutIdParam, RolloutStatusBody, WorkspaceIdParam } from './api-schemas.ts';

function schema(type: ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = toJSONSchema(type, { io: 'input' }) as Record<string, unknown>;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: ref('Error') } } });
const workspaceParam = { name: 'id', in: 'path', required: true, schema: schema(WorkspaceIdParam) };
const pluginParam = { name: 'name', in: 'path', required: true, schema: schema(PluginNameParam) };
const versionQuery = {
  name: 'version',
  in: 'query',
  required: false,
  description: 'external workspace: the catalog version to download (default the highest); other workspaces: must equal the installed version (else 404)',
  schema: { type: 'string', pattern: '^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$' },
};
const idempotencyKey = { name: 'Idempotency-Key', in: 'header', required: false, description: 'scoped to the workspace and plugin: a retry with the same key and request returns the first execution (Idempotent-Replayed: true); the same key with another body is refused (422 IdempotencyKeyReused)', schema: { type: 'string', maxLength: 256 } };
const unavailable = { ...errorResponse('transient failure looking up the workspace or reaching its host'), headers: { 'Retry-After': { schema: { type: 'integer' } } } };
const accepted = { description: 'workflow started', headers: { Location: { schema: { type: 'string' } } }, content: { 'application/json': { schema: ref('Accepted') } } };
const rolloutKey = { ...idempotencyKey, description: 'the rollout id is derived from it: a retry with the same key and body returns the first rollout (Idempotent-Replayed: true); the same key with another body is refused (422 IdempotencyKeyReused)' };

/** The body's one rule JSON Schema can say and zod's object cannot: exactly one way to name the targets. */
function rolloutRequestSchema(): Record<string, unknown> {
  return { ...schema(RolloutBody), oneOf: [{ required: ['workspaces'] }, { required: ['selector'] }] };
}

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'workspace-plugin-installer',
      version: '1.0.0',
      description: 'Atomic, observable, reversible plugin installs into workspaces. On AWS the API uses IAM (SigV4) auth; `pluginctl serve` uses a bearer token.',
    },
    security: [{ sigv4: [] }, { bearer: [] }],
    paths: {
      '/workspaces/{id}/plugins': {
        post: {
          summary: 'Install a plugin (starts the install workflow)',
          parameters: [workspaceParam, idempotencyKey],
          requestBody: { required: true, content: { 'application/json': { schema: ref('InstallRequest') } } },
          responses: {
            202: accepted,
            400: errorResponse('bad input: the body, a malformed source, a source not served here (a filesystem path on AWS, or outside pluginctl serve --sources-dir), or one that is not there (SourceNotFound)'),
            404: errorResponse('unknown workspace'),
            409: errorResponse('instance not running, or the plugin is busy'),
            413: errorResponse('request body larger than 64 KiB'),
            422: errorResponse('external runtime (hint: publish to the catalog, pull via download), an https/github source without sha256 (UnpinnedSource), or an Idempotency-Key reused with another body (IdempotencyKeyReused)'),
            503: unavailable,
          },
        },
        get: {
          summary: 'List installed plugins (empty and degraded when the host is unreachable)',
          parameters: [workspaceParam],
          responses: { 200: { description: 'installed plugins', content: { 'application/json': { schema: ref('PluginList') } } }, 404: errorResponse('unknown workspace') },
        },
      },
      '/workspaces/{id}/plugins/{name}': {
        delete: {
          summary: 'Uninstall a plugin (live moves to .previous, so it can be rolled back)',
          parameters: [workspaceParam, pluginParam, idempotencyKey],
          responses: { 202: accepted, 400: errorResponse('bad input'), 404: errorResponse('unknown workspace or plugin not installed'), 409: errorResponse('not running or busy'), 422: errorResponse('external runtime'), 503: unavailable },
        },
      },
      '/workspaces/{id}/plugins/{name}/rollback': {
        post: {
          summary: 'Roll back to the newest snapshot',
          parameters: [workspaceParam, pluginParam, idempotencyKey],
          responses: { 202: accepted, 404: errorResponse('unknown workspace'), 409: errorResponse('nothing to roll back to, not running, or busy'), 422: errorResponse('external runtime'), 503: unavailable },
        },
      },
      '/workspaces/{id}/plugins/{name}/download': {
        get: {
          summary: 'Redirect to a short-lived URL of a validated tarball: the installed version, or for an external workspace the catalog\'s (latest or ?version=)',
          parameters: [workspaceParam, pluginParam, versionQuery],
          responses: {
            302: { description: 'redirect to a short-lived URL naming the tarball by its sha256 (Cache-Control: no-store)', headers: { Location: { schema: { type: 'string' } }, 'Cache-Control': { schema: { type: 'string' } } } },
            400: errorResponse('bad workspace id, plugin name or version'),
            404: errorResponse('unknown workspace; plugin not installed (or not the ?version= asked for); for an external workspace, plugin or version not in the catalog (SourceNotFound, the hint lists the versions there)'),
            422: errorResponse('the catalog\'s tarball does not validate (HostileTarball, InvalidManifest, RuntimeMismatch)'),
            503: unavailable,
          },
        },
      },
      '/rollouts': {
        post: {
          summary: 'Roll a plugin version out to many workspaces (starts the fleet rollout workflow): canary first, then at most maxConcurrency installs at once, halting when failures exceed maxErrors',
          description: 'Checked before anything starts: the body, that the source can be had, that the named workspaces exist (or the selector matches some), and, when the source names the plugin (local://name…), that no other rollout holds it. What needs the tarball (its validity, the runtimes it supports) is checked as the rollout starts; GET /rollouts/{id} then answers status refused or busy with the error.',
          parameters: [rolloutKey],
          requestBody: { required: true, content: { 'application/json': { schema: ref('RolloutRequest') } } },
          responses: {
            202: { description: 'rollout started', headers: { Location: { schema: { type: 'string' } } }, content: { 'application/json': { schema: ref('RolloutAccepted') } } },
            400: errorResponse('bad input: the body (both or neither of workspaces/selector, maxConcurrency or canary out of range, a bad maxErrors), or a source that cannot be had'),
            409: errorResponse('another rollout holds the plugin (RolloutBusy; the message names it)'),
            413: errorResponse('request body larger than 1 MiB'),
            422: errorResponse('unknown workspaces (WorkspaceNotFound, named), an https/github source without sha256, or an Idempotency-Key reused with another body'),
            503: unavailable,
          },
        },
      },
      '/rollouts/{id}': {
        get: {
          summary: 'The rollout\'s report (the pluginctl rollout --json object), while it runs and after',
          parameters: [{ name: 'id', in: 'path', required: true, schema: schema(RolloutIdParam) }],
          responses: {
            200: { description: 'report; status running until it has finished', content: { 'application/json': { schema: ref('RolloutStatus') } } },
            400: errorResponse('malformed rollout id'),
            404: errorResponse('no such rollout'),
            503: unavailable,
          },
        },
      },
      '/executions/{id}': {
        get: {
          summary: 'Status and per-step summary of an execution',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { 200: { description: 'execution', content: { 'application/json': { schema: ref('Execution') } } }, 404: errorResponse('no such execution') },
        },
      },
    },
    components: {
      securitySchemes: {
        sigv4: { type: 'apiKey', name: 'Authorization', in: 'header', description: 'AWS Signature Version 4 (API Gateway IAM auth)' },
        bearer: { type: 'http', scheme: 'bearer', description: 'PLUGINCTL_TOKEN (pluginctl serve)' },
      },
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
