/**
 * The HTTP API's request and response shapes (zod): validation in the handler and the OpenAPI
 * document (docs/openapi.json) come from the same definitions.
 */
import * as z from '../zod.ts';
import { PLUGIN_NAME, SHA256, WORKSPACE_ID } from '../names.ts';
import { RUNTIMES } from '../runtimes.ts';

/** Request bodies above this are refused with 413 before parsing. */
export const MAX_BODY_BYTES = 64 * 1024;

export const WorkspaceIdParam = z.string().regex(WORKSPACE_ID).describe('Workspace id (EC2 tag WorkspaceId)');
export const PluginNameParam = z.string().regex(PLUGIN_NAME).describe('Plugin name from plugin.yaml');

export const InstallBody = z
  .object({
    source: z.string().min(1).max(4096).describe('local path, local://name[@version], s3://bucket/key, https://… (sha256 required) or github://owner/repo#ref'),
    sha256: z.string().regex(SHA256).optional().describe('SHA-256 of the tarball; required for https:// and github:// sources'),
    runtime: z.enum(RUNTIMES).optional().describe('expected workspace runtime; refused if the workspace runs another'),
  })
  .strict();

export const Accepted = z.object({
  installId: z.string().describe('execution id: <workflow>.<execution name>'),
  executionArn: z.string(),
  statusUrl: z.string(),
});

export const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), hint: z.string() }),
});

export const PluginList = z.object({
  workspace: z.string(),
  plugins: z.array(
    z.object({
      name: z.string(),
      version: z.string().nullable(),
      sha256: z.string().nullable(),
      installedAt: z.string().nullable(),
      complete: z.boolean(),
    }),
  ),
  degraded: z.boolean(),
  reason: z.string().optional(),
});

export const ExecutionBody = z.object({
  id: z.string(),
  executionArn: z.string(),
  workflow: z.string(),
  status: z.enum(['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED']),
  startedAt: z.string(),
  stoppedAt: z.string().nullable(),
  steps: z.array(
    z.object({ name: z.string(), status: z.enum(['succeeded', 'failed', 'running']), ms: z.number().nullable(), attempts: z.number(), error: z.string().optional() }),
  ),
  error: z.object({ code: z.string(), message: z.string(), hint: z.string() }).optional(),
});
