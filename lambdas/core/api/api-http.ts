/**
 * The HTTP side every route shares, whatever carries the request (API Gateway proxy events in
 * the api Lambda, node:http in `pluginctl serve`): request and response shapes, the ports a route
 * gets, JSON answers, and how a PluginError or a schema violation answers.
 */
import type * as z from '../zod.ts';
import { PluginError } from '../errors.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import type { WorkflowEngine } from '../workflow/workflow-engine.ts';
import { bodyLimit } from './api-schemas.ts';
import { statusOf } from './http-status.ts';

export interface ApiRequest {
  method: string;
  /** Path without the stage prefix, e.g. /workspaces/ws1/plugins. */
  path: string;
  /** Query string parameters (the last value of a repeated one). */
  query?: Record<string, string | undefined>;
  /** Lower-cased header names. */
  headers: Record<string, string | undefined>;
  body: string | null;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  body: string | null;
}

export interface ApiDeps {
  /** The ports; fleet rollouts' documents are `steps.rollouts` (a directory locally, S3 on AWS). */
  steps: StepDeps;
  engine: WorkflowEngine;
  /** Prefix for URLs the API hands out (API Gateway stage, e.g. /prod). */
  basePath?: string;
  /** Seconds a download URL stays valid. */
  downloadUrlSeconds?: number;
}

const JSON_HEADERS = { 'content-type': 'application/json' };
/** How long a caller should wait after a transient failure (503). */
const RETRY_AFTER_SECONDS = '5';

export function json(status: number, body: unknown, headers: Record<string, string> = {}): ApiResponse {
  return { status, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(body) };
}

/** `status` overrides the design's table where a route means the code differently. */
export function errorResponse(err: PluginError, status: number = statusOf(err.code)): ApiResponse {
  return json(status, { error: err.toJSON() }, status === 503 ? { 'retry-after': RETRY_AFTER_SECONDS } : {});
}

export function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || what}: ${i.message}`).join('; ');
    throw new PluginError('InvalidInput', `invalid ${what}: ${issues}`, 'see GET /openapi.json for the request shape');
  }
  return r.data;
}

/** 413 for a body over the route's limit (bodyLimit; before parsing it), else undefined. */
export function bodyTooLarge(req: ApiRequest, shape: string): ApiResponse | undefined {
  const limit = bodyLimit(req.method, req.path);
  if (!req.body || Buffer.byteLength(req.body) <= limit) return undefined;
  return json(413, { error: { code: 'InvalidInput', message: `request body is larger than ${limit} bytes`, hint: `send only ${shape}` } });
}

export function jsonBody(req: ApiRequest, example: string): unknown {
  try {
    return JSON.parse(req.body ?? '');
  } catch {
    throw new PluginError('InvalidInput', 'request body is not JSON', `send ${example}`);
  }
}
