/**
 * Packs a plugin directory into a `.tar.gz` stream, deterministically: entries sorted, owner 0,
 * mtime 0, gzip header without a timestamp. Each file and directory keeps its permission bits
 * (owner/group/other rwx: a 0600 secret stays 0600), while setuid, setgid and sticky are cleared
 * (the validator refuses them). The same tree (content and modes) always gives the same sha256,
 * so `--sha256` can pin a directory source and re-installs are recognisably identical.
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { PluginError } from '../errors.ts';

const EPOCH = new Date(0);
/** The bits a packed entry keeps: rwx for owner, group and other; never setuid/setgid/sticky. */
const PERMISSION_BITS = 0o777;

async function* walk(root: string, dir: string): AsyncGenerator<{ rel: string; path: string; kind: 'dir' | 'file'; size: number; mode: number }> {
  const names = (await readdir(dir)).sort();
  for (const name of names) {
    const path = join(dir, name);
    const rel = relative(root, path).split(sep).join('/');
    const st = await lstat(path);
    if (st.isDirectory()) {
      yield { rel, path, kind: 'dir', size: 0, mode: st.mode & PERMISSION_BITS };
      yield* walk(root, path);
    } else if (st.isFile()) {
      yield { rel, path, kind: 'file', size: st.size, mode: st.mode & PERMISSION_BITS };
    } else {
      throw new PluginError('HostileTarball', `${JSON.stringify(rel)} is not a regular file or directory`, 'plugins ship plain files and directories only: replace links and special files with copies');
    }
  }
}

export function packDirectory(root: string): Readable {
  const tar = pack();
  const out = new PassThrough();
  const fill = async () => {
    for await (const entry of walk(root, root)) {
      const header = { name: entry.rel, mode: entry.mode, mtime: EPOCH, uid: 0, gid: 0, uname: '', gname: '' };
      if (entry.kind === 'dir') {
        tar.entry({ ...header, type: 'directory' });
        continue;
      }
      const sink = tar.entry({ ...header, type: 'file', size: entry.size });
      await pipeline(createReadStream(entry.path), sink);
    }
    tar.finalize();
  };
  fill().catch((err: unknown) => tar.destroy(err instanceof Error ? err : new Error(String(err))));
  pipeline(tar, createGzip({ level: 6 }), out).catch((err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))));
  return out;
}
