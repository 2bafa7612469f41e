/**
 * Where each workspace runtime keeps its plugins (design: host layout). `external` workspaces
 * have no host we write to: they pull plugins through the download route.
 */
import { PluginError } from './errors.ts';

export const RUNTIMES = ['claude-code', 'hermes', 'langgraph', 'external'] as const;
export type Runtime = (typeof RUNTIMES)[number];
export const DEFAULT_RUNTIME: Runtime = 'claude-code';

const PLUGIN_ROOTS: Record<Exclude<Runtime, 'external'>, string> = {
  'claude-code': '/configs/plugins',
  hermes: '/home/ubuntu/.hermes/plugins',
  langgraph: '/opt/configs/plugins',
};

/**
 * What to do instead of pushing to an external workspace: its agent pulls from the plugin catalog
 * (which `pluginctl publish` fills) through the download route.
 */
export const EXTERNAL_HINT = 'publish the plugin to the catalog (pluginctl publish), then the workspace pulls it: GET /workspaces/{id}/plugins/{name}/download[?version=]';

export function assertRuntime(value: unknown): Runtime {
  if (typeof value === 'string' && (RUNTIMES as readonly string[]).includes(value)) return value as Runtime;
  throw new PluginError('InvalidInput', `unknown runtime ${JSON.stringify(value)}`, `use one of: ${RUNTIMES.join(', ')}`);
}

/** Absolute plugins root on the host for a runtime; refuses `external` with the design's hint. */
export function pluginsRoot(runtime: Runtime): string {
  if (runtime === 'external') throw new PluginError('ExternalRuntime', 'external workspaces have no host to install into', EXTERNAL_HINT);
  return PLUGIN_ROOTS[runtime];
}
