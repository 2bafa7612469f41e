/**
 * One rollout per plugin at a time (on one workspace set: one deployment, or one PLUGINCTL_HOME).
 * Two rollouts of the same plugin would fight over the same workspaces' plugin locks and each
 * other's error budgets, so the second is refused with RolloutBusy (pluginctl exit 4).
 *
 * The lock is a lease in the RolloutStore (`rollout-locks/<plugin>.json`), renewed by every wave.
 * A lock whose lease expired is taken over; locally also one whose holder process is gone (same
 * host name, pid no longer running), as with the host's plugin locks. A Lambda cannot vouch for a
 * process (pid 0): there only the lease counts.
 */
import { hostname } from 'node:os';
import { PluginError } from '../errors.ts';
import type { RolloutStore } from './rollout-store.ts';

export interface RolloutLock {
  rolloutId: string;
  pid: number;
  host: string;
  /** Epoch seconds. */
  expires: number;
}

export const lockKey = (plugin: string) => `rollout-locks/${plugin}.json`;

function holderGone(lock: RolloutLock): boolean {
  if (lock.pid <= 0 || lock.host !== hostname()) return false;
  try {
    process.kill(lock.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function busy(plugin: string, lock: RolloutLock): PluginError {
  return new PluginError(
    'RolloutBusy',
    `rollout ${lock.rolloutId} holds plugin ${plugin} (lease until ${new Date(lock.expires * 1000).toISOString()})`,
    `wait for rollout ${lock.rolloutId} to finish, or re-run it with --rollout-id ${lock.rolloutId} once it has stopped`,
  );
}

export interface LockOptions {
  plugin: string;
  rolloutId: string;
  pid: number;
  leaseSeconds: number;
  now: Date;
}

/**
 * Takes the plugin's rollout lock for `rolloutId`. A live lock of another process, even one of
 * the same rollout id (a second run of it still going), is RolloutBusy.
 */
export async function acquireRolloutLock(store: RolloutStore, o: LockOptions): Promise<void> {
  const key = lockKey(o.plugin);
  const mine: RolloutLock = { rolloutId: o.rolloutId, pid: o.pid, host: hostname(), expires: Math.floor(o.now.getTime() / 1000) + o.leaseSeconds };
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await store.create(key, mine)) return;
    const current = await store.get<RolloutLock>(key);
    if (!current) continue;
    const expired = current.value.expires <= Math.floor(o.now.getTime() / 1000);
    if (!expired && !holderGone(current.value)) throw busy(o.plugin, current.value);
    if (await store.replace(key, mine, current.version)) return;
  }
  throw new PluginError('RolloutBusy', `the rollout lock of ${o.plugin} kept changing while rollout ${o.rolloutId} tried to take it`, 'another rollout of this plugin is starting; retry once it is running or gone');
}

/** Whether a lock is still held: its lease runs and (locally) its holder process lives. */
function live(lock: RolloutLock, now: Date): boolean {
  return lock.expires > Math.floor(now.getTime() / 1000) && !holderGone(lock);
}

/**
 * The synchronous half of the check PlanRollout makes when it takes the lock (POST /rollouts
 * answers 409 before starting anything): RolloutBusy when another rollout holds the plugin.
 */
export async function assertRolloutLockFree(store: RolloutStore, plugin: string, rolloutId: string, now: Date): Promise<void> {
  const current = await store.get<RolloutLock>(lockKey(plugin));
  if (current && current.value.rolloutId !== rolloutId && live(current.value, now)) throw busy(plugin, current.value);
}

/** Whether `rolloutId` holds the plugin's lock now: its execution chain is alive. */
export async function holdsRolloutLock(store: RolloutStore, plugin: string, rolloutId: string, now: Date): Promise<boolean> {
  const current = await store.get<RolloutLock>(lockKey(plugin));
  return Boolean(current && current.value.rolloutId === rolloutId && live(current.value, now));
}

/**
 * Extends the lease of a lock this rollout holds (each wave). A lock now held by another rollout
 * (ours expired and was taken over) stops this one: LockLost.
 */
export async function renewRolloutLock(store: RolloutStore, o: LockOptions): Promise<void> {
  const key = lockKey(o.plugin);
  const current = await store.get<RolloutLock>(key);
  if (current && current.value.rolloutId !== o.rolloutId) {
    throw new PluginError('LockLost', `rollout ${o.rolloutId} lost the lock of ${o.plugin} to rollout ${current.value.rolloutId} (its lease had expired)`, `re-run rollout ${o.rolloutId} once ${current.value.rolloutId} has finished`);
  }
  const mine: RolloutLock = { rolloutId: o.rolloutId, pid: o.pid, host: hostname(), expires: Math.floor(o.now.getTime() / 1000) + o.leaseSeconds };
  const ok = current ? await store.replace(key, mine, current.version) : await store.create(key, mine);
  if (!ok) throw new PluginError('HostUnreachable', `the rollout lock of ${o.plugin} changed while it was renewed`, 'the step is retried');
}

/** Releases the lock if this rollout still holds it. */
export async function releaseRolloutLock(store: RolloutStore, plugin: string, rolloutId: string): Promise<void> {
  const current = await store.get<RolloutLock>(lockKey(plugin));
  if (current && current.value.rolloutId === rolloutId) await store.remove(lockKey(plugin), current.version);
}
