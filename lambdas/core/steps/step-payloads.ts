/**
 * What flows between workflow states. Kept small (a few hundred bytes): Step Functions caps
 * payloads at 256 KB and every byte shows up in the console's history.
 */
import * as z from '../zod.ts';
import { healthcheckCommandFits, HEALTHCHECK_TIMEOUT_MAX_SECONDS } from '../healthcheck.ts';
import { EXECUTION_NAME, PLUGIN_NAME, SHA256, STAMP, VERSION, WORKSPACE_ID } from '../names.ts';
import { RUNTIMES } from '../runtimes.ts';

const workspace = z.string().regex(WORKSPACE_ID, 'workspace ids match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$');
const plugin = z.string().regex(PLUGIN_NAME, 'plugin names match ^[a-z0-9][a-z0-9._-]{0,127}$');
const stamp = z.string().regex(STAMP, 'stamps look like 20261125T080000Z-ab12');
const execution = z.string().regex(EXECUTION_NAME, 'execution names are 1-80 characters of [A-Za-z0-9_-]');

export const InstallRequestSchema = z.object({
  workspace,
  source: z.string().min(1).max(4096),
  // Always present in the execution input (null when unset): ASL paths cannot be optional.
  sha256: z.string().regex(SHA256, 'sha256 is 64 lower-case hex digits').nullish(),
  runtime: z.enum(RUNTIMES).nullish(),
  stamp,
  execution,
});
export type InstallRequest = z.infer<typeof InstallRequestSchema>;

/** Input of rollback and uninstall workflows, and of every host step. */
export const PluginTargetSchema = z.object({ workspace, plugin, stamp, execution });
export type PluginTarget = z.infer<typeof PluginTargetSchema>;

export const InstallPlanSchema = PluginTargetSchema.extend({
  version: z.string().regex(VERSION),
  sha256: z.string().regex(SHA256),
  artifactKey: z.string().max(200),
  strip: z.union([z.literal(0), z.literal(1)]),
  runtime: z.enum(RUNTIMES),
  bytes: z.number().int().nonnegative(),
  files: z.number().int().nonnegative(),
  /**
   * plugin.yaml's `healthcheck`, run by VerifyLive (null: the built-in checks only). The command
   * is at most 2 KiB, so the plan stays a few KiB at most.
   */
  healthcheck: z
    .object({
      command: z.string().min(1).refine(healthcheckCommandFits),
      timeoutSeconds: z.number().int().min(1).max(HEALTHCHECK_TIMEOUT_MAX_SECONDS),
    })
    .nullish(),
});
export type InstallPlan = z.infer<typeof InstallPlanSchema>;
