/**
 * The HTTP API's request and response shapes (zod): validation in the handler and the OpenAPI
 * document (docs/openapi.json) come from the same definitions.
 */
import * as z from '../zod.ts';
import { PLUGIN_NAME, SHA256, WORKSPACE_ID } from '../names.ts';
import { MAX_CANARY, MAX_CONCURRENCY, MAX_TARGETS, ROLLOUT_ID } from '../rollout/rollout-limits.ts';
import { RUNTIMES } from '../runtimes.ts';

/** Request bodies above this are refused with 413 before parsing. */
export const MAX_BODY_BYTES = 64 * 1024;
/**
 * POST /rollouts may name up to MAX_TARGETS workspaces: 10,000 ids of up to 64 characters are
 * ~670 KB of JSON, so its bodies may be larger (API Gateway allows 10 MB, Lambda 6 MB).
 */
export const MAX_ROLLOUT_BODY_BYTES = 1024 * 1024;

/** The body limit of a route: POST /rollouts gets MAX_ROLLOUT_BODY_BYTES, every other route MAX_BODY_BYTES. */
export function bodyLimit(method: string, path: string): number {
  return method === 'POST' && path.replace(/\/+$/, '') === '/rollouts' ? MAX_ROLLOUT_BODY_BYTES : MAX_BODY_BYTES;
}

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

// ---- fleet rollouts (POST /rollouts, GET /rollouts/{id}) ---------------------------------------

export const RolloutIdParam = z.string().regex(ROLLOUT_ID).describe('Rollout id, as POST /rollouts returned it');

const MAX_ERRORS_PATTERN = /^((0|[1-9][0-9]{0,5})|(0|[1-9][0-9]?|100)%)$/;

export const RolloutBody = z
  .object({
    source: z.string().min(1).max(4096).describe('as for an install: local://name[@version], s3://bucket/key, https://… (sha256 required), github://owner/repo#ref; validated once and stored once'),
    sha256: z.string().regex(SHA256).optional().describe('SHA-256 of the tarball; required for https:// and github:// sources'),
    workspaces: z.array(z.string().regex(WORKSPACE_ID)).min(1).max(MAX_TARGETS).optional().describe('the target workspace ids, in rollout order; give this or selector'),
    selector: z
      .record(z.string().regex(/^[A-Za-z0-9 _.:/=+@-]{1,128}$/), z.string().max(256))
      .optional()
      .describe('EC2 tags every target carries (key → value); {} selects every workspace. Give this or workspaces'),
    maxConcurrency: z.number().int().min(1).max(MAX_CONCURRENCY).describe(`installs in flight at once (1-${MAX_CONCURRENCY})`),
    maxErrors: z
      .union([z.number().int().min(0).max(999_999), z.string().regex(MAX_ERRORS_PATTERN, 'a count (e.g. "0", "5") or a percentage of the targets (e.g. "10%")')])
      .describe('failures tolerated before the rollout halts: a count, or a percentage of the targets ("10%")'),
    canary: z.number().int().min(1).max(MAX_CANARY).describe(`how many go first, alone; a failure among them halts the rollout (1-${MAX_CANARY})`),
    rollbackOnHalt: z.boolean().describe('when the rollout halts, put the workspaces it upgraded back to what they had'),
  })
  .strict();

export const RolloutAccepted = z.object({
  rolloutId: z.string(),
  executionArn: z.string().describe('the rollout\'s first execution (statemachine/rollout.asl.json)'),
  statusUrl: z.string().describe('GET it for the rollout\'s report'),
});

const ErrorFields = z.object({ code: z.string(), message: z.string(), hint: z.string() });
const RolloutCountsBody = z.object({
  targets: z.number(),
  succeeded: z.number(),
  failed: z.number(),
  skipped: z.number(),
  notStarted: z.number(),
  rolledBack: z.number(),
});

/** The `pluginctl rollout --json` object, with the states only a rollout still going can be in. */
export const RolloutStatusBody = z.object({
  status: z
    .enum(['running', 'succeeded', 'failed', 'halted', 'refused', 'busy'])
    .describe('running while it is in flight (a halted rollout rolling back included); refused / busy: it was refused before anything started (error says why)'),
  rollout: z.string(),
  plugin: z.string().nullable().describe('null until the source has been read (status running or refused)'),
  version: z.string().nullable(),
  sha256: z.string().nullable(),
  counts: RolloutCountsBody.nullable(),
  workspaces: z.array(
    z.object({
      workspace: z.string(),
      status: z.enum(['succeeded', 'failed', 'skipped', 'not-started', 'rolled-back', 'in-flight']).describe('in-flight only while the rollout is running'),
      execution: z.string().optional().describe('the install\'s execution name'),
      error: ErrorFields.optional(),
    }),
  ),
  error: ErrorFields.optional().describe('why it was refused, or why it stopped before it finished'),
});
