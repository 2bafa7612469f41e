/**
 * plugin.yaml: the one file the installer reads from a plugin. It is author-controlled input,
 * so it is parsed with alias expansion capped (a "billion laughs" document would otherwise blow
 * up in memory) and checked field by field, and every problem is reported at once so an author
 * fixes the file in one round trip.
 */
import { parse as parseYaml } from 'yaml';
import * as z from './zod.ts';
import { PluginError } from './errors.ts';
import {
  HEALTHCHECK_COMMAND_MAX_BYTES,
  HEALTHCHECK_TIMEOUT_DEFAULT_SECONDS,
  HEALTHCHECK_TIMEOUT_MAX_SECONDS,
  healthcheckCommandFits,
  withoutControlCharacters,
} from './healthcheck.ts';
import { PLUGIN_NAME, VERSION } from './names.ts';
import { RUNTIMES } from './runtimes.ts';

/** A skill is named by a path relative to the plugin directory; it must stay inside it. */
function isRelativeInside(value: string): boolean {
  if (value === '' || value.startsWith('/') || value.includes('\\')) return false;
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(value)) return false;
  return !value.split('/').includes('..');
}

const HealthcheckSchema = z.strictObject(
  {
    command: z
      .string()
      .refine((v) => v.trim() !== '', { error: 'must not be empty' })
      .refine(healthcheckCommandFits, { error: `must be at most ${HEALTHCHECK_COMMAND_MAX_BYTES} bytes (put a longer check in a script inside the plugin and run that)` })
      .refine(withoutControlCharacters, { error: 'must not contain control characters other than tab and newline' }),
    timeoutSeconds: z
      .number()
      .int()
      .min(1, { error: `must be between 1 and ${HEALTHCHECK_TIMEOUT_MAX_SECONDS} seconds` })
      .max(HEALTHCHECK_TIMEOUT_MAX_SECONDS, { error: `must be between 1 and ${HEALTHCHECK_TIMEOUT_MAX_SECONDS} seconds` })
      .default(HEALTHCHECK_TIMEOUT_DEFAULT_SECONDS),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (healthcheck takes command and timeoutSeconds)` : undefined,
  },
);

const ManifestSchema = z.object({
  name: z
    .string()
    .regex(PLUGIN_NAME, { error: `must match ${PLUGIN_NAME.source} (lower-case letters, digits, ".", "_", "-")` }),
  version: z.string().regex(VERSION, { error: `must match ${VERSION.source}, e.g. 1.2.0` }),
  description: z.string().max(1024, { error: 'must be at most 1024 characters' }).default(''),
  author: z.string().max(256, { error: 'must be at most 256 characters' }).default(''),
  tags: z
    .array(z.string().max(64, { error: 'must be at most 64 characters' }))
    .max(64, { error: 'must list at most 64 tags' })
    .default([]),
  skills: z
    .array(
      z
        .string()
        .max(1024, { error: 'must be at most 1024 characters' })
        .refine(isRelativeInside, { error: 'must be a relative path inside the plugin (no leading "/", no "..", no backslashes)' }),
    )
    .max(256, { error: 'must list at most 256 skills' })
    .default([]),
  /** Empty means every runtime. */
  runtimes: z.array(z.enum(RUNTIMES, { error: `must be one of ${RUNTIMES.join(', ')}` })).default([]),
  /** Run on the host after the swap, before the marker; a failure rolls the install back. */
  healthcheck: HealthcheckSchema.optional(),
});

export type Manifest = z.output<typeof ManifestSchema>;

/** Optional fields: YAML `tags:` with nothing after it means "not given", not null. */
const DEFAULTED_FIELDS = ['description', 'author', 'tags', 'skills', 'runtimes', 'healthcheck'] as const;

const MANIFEST_HINT = 'fix plugin.yaml: name and version are required; description, author, tags, skills, runtimes and healthcheck are optional (docs/plugin-format.md)';

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `a string`;
  return `${typeof value} ${String(value)}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out ? '.' : ''}${String(key)}`;
  return out || '(top level)';
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  if (issue.code === 'invalid_type') {
    if (issue.input === undefined) return `${where}: is required`;
    const expected = ({ array: 'a list', object: 'a mapping', int: 'a whole number' } as Record<string, string>)[issue.expected] ?? `a ${issue.expected}`;
    // YAML reads `version: 1.0` as the number 1: say how to keep it a string.
    const quoteIt = issue.expected === 'string' && typeof issue.input === 'number' ? ' (quote it)' : '';
    return `${where}: must be ${expected}, got ${describe(issue.input)}${quoteIt}`;
  }
  return `${where}: ${issue.message}`;
}

export function parseManifest(text: string): Manifest {
  let data: unknown;
  try {
    data = parseYaml(text, { maxAliasCount: 50 });
  } catch (error) {
    // yaml's messages end their first line with ":" before a code excerpt we leave out.
    const detail = error instanceof Error ? (error.message.split('\n')[0] ?? '').replace(/:\s*$/, '') : String(error);
    throw new PluginError('InvalidManifest', `plugin.yaml: not valid YAML: ${detail}`, 'fix the YAML syntax of plugin.yaml (a YAML linter points at the line)', { cause: error });
  }
  if (data === null || data === undefined || typeof data !== 'object' || Array.isArray(data)) {
    const got = data === null || data === undefined ? 'empty' : describe(data);
    throw new PluginError('InvalidManifest', `plugin.yaml: must be a mapping of fields, got ${got}`, MANIFEST_HINT);
  }

  const fields: Record<string, unknown> = { ...(data as Record<string, unknown>) };
  for (const key of DEFAULTED_FIELDS) {
    if (fields[key] === null) delete fields[key];
  }

  const result = ManifestSchema.safeParse(fields, { reportInput: true });
  if (!result.success) {
    throw new PluginError('InvalidManifest', `plugin.yaml: ${result.error.issues.map(formatIssue).join('; ')}`, MANIFEST_HINT);
  }
  return result.data;
}

/** Refuses before install when the plugin says it does not run on the workspace's runtime. */
export function assertRuntimeSupported(manifest: Manifest, runtime: string): void {
  const supported: readonly string[] = manifest.runtimes;
  if (supported.length === 0 || supported.includes(runtime)) return;
  const list = supported.join(', ');
  throw new PluginError(
    'RuntimeMismatch',
    `plugin ${manifest.name} supports runtimes ${list}; workspace runs ${runtime}`,
    `install it into a workspace running one of ${list}, or add ${runtime} to runtimes in plugin.yaml`,
  );
}
