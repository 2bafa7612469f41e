/**
 * The OpenAPI 3.1 document of the HTTP API, generated from the same zod schemas the handler
 * validates with (served at GET /openapi.json by `pluginctl serve`, committed as
 * docs/openapi.json; a test keeps the two equal).
 */
import { toJSONSchema, type ZodType } from '../zod.ts';
import { Accepted, ErrorBody, ExecutionBody, InstallBody, PluginList, PluginNameParam, WorkspaceIdParam } from './api-schemas.ts';

function schema(type: ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = toJSONSchema(type, { io: 'input' }) as Record<string, unknown>;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: ref('Error') } } });
const workspaceParam = { name: 'id', in: 'path', required: true, schema: schema(WorkspaceIdParam) };
const pluginParam = { name: 'name', in: 'path', required: true, schema: schema(PluginNameParam) };
const idempotencyKey = { name: 'Idempotency-Key', in: 'header', required: false, description: 'retries with the same key return the first execution', schema: { type: 'string', maxLength: 256 } };
const unavailable = { ...errorResponse('transient failure looking up the workspace or reaching its host'), headers: { 'Retry-After': { schema: { type: 'integer' } } } };
const accepted = { description: 'workflow started', headers: { Location: { schema: { type: 'string' } } }, content: { 'application/json': { schema: ref('Accepted') } } };

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
            400: errorResponse('bad input'),
            404: errorResponse('unknown workspace'),
            409: errorResponse('instance not running, or the plugin is busy'),
            413: errorResponse('request body larger than 64 KiB'),
            422: errorResponse('external runtime (hint: pull via download), or an https/github source without sha256'),
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
          summary: 'Redirect to a short-lived URL of the installed, validated tarball',
          parameters: [workspaceParam, pluginParam],
          responses: { 302: { description: 'redirect', headers: { Location: { schema: { type: 'string' } } } }, 404: errorResponse('unknown workspace or plugin'), 503: unavailable },
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
      },
    },
  };
}
