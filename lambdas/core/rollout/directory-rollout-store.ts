/**
 * RolloutStore on a local directory (`$PLUGINCTL_HOME/artifacts/rollouts/…`), the embedded
 * stand-in for the bucket. Writes are a temp file + rename, so a reader never sees half a
 * document. The conditional writes (the rollout lock) hold a per-key mutex file created with
 * O_EXCL, which two pluginctl processes on this machine respect; one left by a killed process is
 * broken after MUTEX_STALE_MS.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PluginError } from '../errors.ts';
import { ROLLOUT_KEY, type RolloutStore, type Versioned } from './rollout-store.ts';

const MUTEX_WAIT_MS = 10_000;
const MUTEX_STALE_MS = 30_000;

function versionOf(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export class DirectoryRolloutStore implements RolloutStore {
  constructor(readonly dir: string) {}

  pathOf(key: string): string {
    if (!ROLLOUT_KEY.test(key)) throw new PluginError('InvalidInput', `invalid rollout document key ${JSON.stringify(key.slice(0, 200))}`, 'rollout documents live under rollouts/<id>/');
    return join(this.dir, key);
  }

  async get<T>(key: string): Promise<Versioned<T> | undefined> {
    let text: string;
    try {
      text = await readFile(this.pathOf(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return { value: JSON.parse(text) as T, version: versionOf(text) };
  }

  async put(key: string, value: unknown): Promise<void> {
    const path = this.pathOf(key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomUUID()}.tmp`;
    const handle = await open(tmp, 'wx');
    try {
      await handle.writeFile(JSON.stringify(value));
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  }

  async create(key: string, value: unknown): Promise<boolean> {
    return this.#locked(key, async () => {
      if (await this.get(key)) return false;
      await this.put(key, value);
      return true;
    });
  }

  async replace(key: string, value: unknown, version: string): Promise<boolean> {
    return this.#locked(key, async () => {
      if ((await this.get(key))?.version !== version) return false;
      await this.put(key, value);
      return true;
    });
  }

  async remove(key: string, version: string): Promise<boolean> {
    return this.#locked(key, async () => {
      if ((await this.get(key))?.version !== version) return false;
      await rm(this.pathOf(key), { force: true });
      return true;
    });
  }

  async #locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const mutex = `${this.pathOf(key)}.mutex`;
    await mkdir(dirname(mutex), { recursive: true });
    const deadline = Date.now() + MUTEX_WAIT_MS;
    for (;;) {
      try {
        await (await open(mutex, 'wx')).close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const age = await stat(mutex).then((s) => Date.now() - s.mtimeMs, () => 0);
        if (age > MUTEX_STALE_MS) await rm(mutex, { force: true });
        else if (Date.now() > deadline) throw new PluginError('HostUnreachable', `the rollout store is busy (${key})`, 'retry in a few seconds');
        else await sleep(5 + Math.floor(Math.random() * 20));
      }
    }
    try {
      return await fn();
    } finally {
      await rm(mutex, { force: true });
    }
  }
}
