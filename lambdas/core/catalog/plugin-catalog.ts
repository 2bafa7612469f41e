/**
 * The `PluginCatalog` port: the plugins `local://name[@version]` names, and what an external
 * workspace downloads. Adapters: a directory (embedded mode: `<dir>/<name>/<version>.tar.gz`
 * files or `<dir>/<name>/<version>/` plugin trees) and S3 (the artifact bucket's
 * `catalog/<name>/<version>.tar.gz` objects, on AWS). A catalog entry is only a candidate: what
 * is read from it is validated like any source (Prepare, or the download route) before use.
 */
import type { Readable } from 'node:stream';
import { PluginError } from '../errors.ts';
import { PLUGIN_NAME, VERSION } from '../names.ts';
import { sha256Of } from './stream-sha256.ts';

/** The stored tarball a publish puts into the catalog (already validated, see publish-plugin.ts). */
export interface CatalogTarball {
  path: string;
  sha256: string;
  bytes: number;
}

/** `created`: the version is new; `unchanged`: it was already there with exactly these bytes. */
export type PublishOutcome = 'created' | 'unchanged';

export interface PluginCatalog {
  /** Where the catalog is, for messages (a directory, or s3://bucket/catalog/). */
  readonly location: string;
  /** The versions of `name`, lowest first (compareVersions); [] when the plugin is not there. */
  versions(name: string): Promise<string[]>;
  /** The tarball of one version. SourceNotFound when it is not there. */
  open(name: string, version: string): Promise<Readable>;
  /**
   * Adds a version. Never replaces one: the same bytes again succeed (`unchanged`), other bytes
   * are refused (InvalidInput, naming both digests).
   */
  publish(name: string, version: string, tarball: CatalogTarball): Promise<PublishOutcome>;
}

/** The object key of a version in the artifact bucket (and its path under a catalog directory). */
export function catalogKey(name: string, version: string): string {
  return `catalog/${name}/${version}.tar.gz`;
}

/** Numeric-aware version order, so 1.10.0 sorts after 1.9.0. */
export function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

export function assertCatalogReference(name: string, version: string | undefined): void {
  if (!PLUGIN_NAME.test(name) || name === '.' || name === '..' || (version !== undefined && !VERSION.test(version))) {
    throw new PluginError('InvalidInput', `invalid catalog reference local://${name.slice(0, 130)}${version !== undefined ? '@' + version.slice(0, 70) : ''}`, 'use local://<plugin-name>[@<version>]');
  }
}

/** The version `local://name[@version]` means: the one asked for, or the highest; SourceNotFound naming what there is. */
export async function chooseVersion(catalog: PluginCatalog, name: string, version: string | undefined): Promise<string> {
  assertCatalogReference(name, version);
  const versions = await catalog.versions(name);
  if (versions.length === 0) {
    throw new PluginError('SourceNotFound', `plugin ${name} is not in the catalog (${catalog.location})`, 'publish it first: pluginctl publish <plugin directory or .tar.gz>');
  }
  const chosen = version ?? versions.at(-1)!;
  if (!versions.includes(chosen)) {
    throw new PluginError('SourceNotFound', `version ${chosen} of ${name} is not in the catalog (${catalog.location})`, `available: ${versions.join(', ')}`);
  }
  return chosen;
}

/**
 * A publish that found the version already there: `unchanged` when the stored bytes are the ones
 * offered, else refused (published versions never change), naming both digests.
 */
export async function republished(catalog: PluginCatalog, name: string, version: string, offered: string): Promise<PublishOutcome> {
  const existing = await sha256Of(await catalog.open(name, version));
  if (existing === offered) return 'unchanged';
  throw new PluginError(
    'InvalidInput',
    `${name} ${version} is already in the catalog (${catalog.location}) with other bytes (sha256 ${existing}, not ${offered})`,
    'published versions never change: bump the version in plugin.yaml and publish again',
  );
}
