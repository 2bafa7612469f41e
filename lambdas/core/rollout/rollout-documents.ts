/** Reading and writing a rollout's documents (rollout-record.ts has the layout). */
import { PluginError } from '../errors.ts';
import type { StepDeps } from '../steps/step-deps.ts';
import { pageKey, recordKey, type ResultPage, type RolloutRecord } from './rollout-record.ts';
import type { RolloutStore } from './rollout-store.ts';

export function rolloutStore(deps: StepDeps): RolloutStore {
  if (!deps.rollouts) throw new PluginError('HostStepFailed', 'no rollout store is configured', 'deploy with infra/ (it sets the rollout bucket), or run pluginctl locally');
  return deps.rollouts;
}

export async function readRecord(store: RolloutStore, rolloutId: string): Promise<RolloutRecord> {
  const found = await store.get<RolloutRecord>(recordKey(rolloutId));
  if (!found) throw new PluginError('InvalidInput', `rollout ${rolloutId} does not exist`, 'start it with pluginctl rollout (or POST /rollouts) first');
  return found.value;
}

export async function writeRecord(store: RolloutStore, record: RolloutRecord, now: Date): Promise<void> {
  record.updatedAt = now.toISOString();
  await store.put(recordKey(record.rolloutId), record);
}

/** Pages of one attempt, read once and written back only if changed. */
export class PageCache {
  readonly #pages = new Map<number, ResultPage>();
  readonly #dirty = new Set<number>();

  constructor(private readonly store: RolloutStore, private readonly rolloutId: string, private readonly attempt: number) {}

  async page(p: number): Promise<ResultPage> {
    let page = this.#pages.get(p);
    if (!page) {
      const found = await this.store.get<ResultPage>(pageKey(this.rolloutId, this.attempt, p));
      if (!found) throw new PluginError('HostStepFailed', `page ${p} of rollout ${this.rolloutId} (attempt ${this.attempt}) is missing from the store`, 're-run the rollout with the same id to start a fresh attempt');
      page = found.value;
      this.#pages.set(p, page);
    }
    return page;
  }

  touch(p: number): void {
    this.#dirty.add(p);
  }

  async flush(): Promise<void> {
    for (const p of [...this.#dirty].sort((a, b) => a - b)) await this.store.put(pageKey(this.rolloutId, this.attempt, p), this.#pages.get(p));
    this.#dirty.clear();
  }
}
