/**
 * Turns an install `source` into a byte stream of a `.tar.gz`.
 *
 * Embedded mode understands a local path (a tarball or a plugin directory, packed
 * deterministically) and `local://name[@version]` from the catalog directory. Remote schemes
 * (s3://, https://, github://) belong to the AWS adapters.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { PluginError } from '../errors.ts';
import { PLUGIN_NAME, VERSION } from '../names.ts';
import { packDirectory } from '../tarball/pack-directory.ts';

export interface ResolvedSource {
  stream: Readable;
  /** What was resolved, for logs and error messages (never contains secrets). */
  description: string;
}

export interface SourceOptions {
  /** Directory of `<name>/<version>/` plugin trees or `<name>/<version>.tar.gz` files. */
  catalogDir?: string;
  /** Relative paths resolve against this (the CLI's working directory). */
  cwd?: string;
}

const LOCAL_REF = /^local:\/\/([^@/]+)(?:@([^@/]+))?$/;

/** Numeric-aware version order, so 1.10.0 sorts after 1.9.0. */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

async function openPath(path: string, description: string): Promise<ResolvedSource> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw new PluginError('SourceNotFound', `source ${description} does not exist`, 'give a path to a plugin directory or .tar.gz, or local://name[@version]');
  }
  if (st.isDirectory()) return { stream: packDirectory(path), description };
  if (st.isFile()) return { stream: createReadStream(path), description };
  throw new PluginError('InvalidInput', `source ${description} is neither a file nor a directory`, 'give a plugin directory or a .tar.gz file');
}

async function resolveCatalog(name: string, version: string | undefined, catalogDir: string | undefined): Promise<ResolvedSource> {
  if (!PLUGIN_NAME.test(name) || (version !== undefined && !VERSION.test(version))) {
    throw new PluginError('InvalidInput', `invalid catalog reference local://${name}${version ? '@' + version : ''}`, 'use local://<plugin-name>[@<version>]');
  }
  if (!catalogDir) throw new PluginError('SourceNotFound', 'no plugin catalog is configured', 'set PLUGINCTL_CATALOG to a catalog directory');
  const dir = join(catalogDir, name);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    throw new PluginError('SourceNotFound', `plugin ${name} is not in the catalog (${catalogDir})`, 'list the catalog directory for available plugins');
  }
  const versions = entries.map((e) => e.replace(/\.tar\.gz$/, '')).filter((v) => VERSION.test(v)).sort(compareVersions);
  const chosen = version ?? versions.at(-1);
  if (!chosen || !versions.includes(chosen)) {
    throw new PluginError('SourceNotFound', `version ${version ?? '(latest)'} of ${name} is not in the catalog`, `available: ${versions.join(', ') || 'none'}`);
  }
  const description = `local://${name}@${chosen}`;
  const tarball = join(dir, `${chosen}.tar.gz`);
  return entries.includes(`${chosen}.tar.gz`) ? openPath(tarball, description) : openPath(join(dir, chosen), description);
}

export async function resolveSource(source: string, options: SourceOptions = {}): Promise<ResolvedSource> {
  if (typeof source !== 'string' || source.length === 0 || source.length > 4096 || /[\0\n\r]/.test(source)) {
    throw new PluginError('InvalidInput', 'source must be a non-empty path or URL on one line', 'give a path, local://name[@version], s3://bucket/key or https://…');
  }
  const local = LOCAL_REF.exec(source);
  if (local) return resolveCatalog(local[1]!, local[2], options.catalogDir);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(source)?.[1]?.toLowerCase();
  if (scheme && scheme !== 'file') {
    throw new PluginError('InvalidInput', `source scheme ${scheme}:// is not available in embedded mode`, 'use a local path or local://name[@version]; s3:// and https:// sources need the AWS deployment');
  }
  const path = scheme === 'file' ? new URL(source).pathname : source;
  return openPath(isAbsolute(path) ? path : resolve(options.cwd ?? process.cwd(), path), source);
}
