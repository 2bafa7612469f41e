/**
 * PluginCatalog on a directory (embedded mode, `$PLUGINCTL_CATALOG`, default the bundled
 * docs/catalog): `<dir>/<name>/<version>.tar.gz` files, or `<dir>/<name>/<version>/` plugin
 * trees packed deterministically when read. Publishing writes a `.tar.gz` with link(2), which
 * fails when the name exists, so two publishers of one version cannot both win.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { PluginError } from '../errors.ts';
import { VERSION } from '../names.ts';
import { packDirectory } from '../tarball/pack-directory.ts';
import { assertCatalogReference, compareVersions, republished, type CatalogTarball, type PluginCatalog, type PublishOutcome } from './plugin-catalog.ts';

export class DirectoryPluginCatalog implements PluginCatalog {
  readonly location: string;

  constructor(readonly dir: string) {
    this.location = dir;
  }

  async versions(name: string): Promise<string[]> {
    assertCatalogReference(name, undefined);
    let entries;
    try {
      entries = await readdir(join(this.dir, name), { withFileTypes: true });
    } catch {
      return [];
    }
    const found = entries.flatMap((e) => {
      if (e.isFile() && e.name.endsWith('.tar.gz')) return [e.name.slice(0, -'.tar.gz'.length)];
      if (e.isDirectory()) return [e.name];
      return [];
    });
    return [...new Set(found)].filter((v) => VERSION.test(v)).sort(compareVersions);
  }

  async open(name: string, version: string): Promise<Readable> {
    assertCatalogReference(name, version);
    const tarball = join(this.dir, name, `${version}.tar.gz`);
    if (await isKind(tarball, 'file')) return createReadStream(tarball);
    const tree = join(this.dir, name, version);
    if (await isKind(tree, 'directory')) return packDirectory(tree);
    throw new PluginError('SourceNotFound', `version ${version} of ${name} is not in the catalog (${this.dir})`, 'publish it first: pluginctl publish <plugin directory or .tar.gz>');
  }

  async publish(name: string, version: string, tarball: CatalogTarball): Promise<PublishOutcome> {
    assertCatalogReference(name, version);
    const dir = join(this.dir, name);
    const dest = join(dir, `${version}.tar.gz`);
    if ((await this.versions(name)).includes(version)) return republished(this, name, version, tarball.sha256);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.${version}.${randomUUID()}.part`);
    try {
      await copyFile(tarball.path, tmp);
      await link(tmp, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return republished(this, name, version, tarball.sha256);
      throw err;
    } finally {
      await rm(tmp, { force: true });
    }
    return 'created';
  }

}

async function isKind(path: string, kind: 'file' | 'directory'): Promise<boolean> {
  try {
    const st = await stat(path);
    return kind === 'file' ? st.isFile() : st.isDirectory();
  } catch {
    return false;
  }
}
