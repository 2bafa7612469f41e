/**
 * The `RolloutStore` port: small JSON documents of a fleet rollout (its record, its target list,
 * its result pages, the per-plugin rollout lock), kept beside the artifacts (S3, or the local
 * artifact directory) and never in the state payload, so a 10,000-target rollout moves a few
 * hundred bytes between states.
 *
 * Only the lock needs compare-and-swap (two rollouts may race for it); every other document is
 * written by the one execution chain of its rollout, one state at a time.
 */

/** A document and the version it was read at (an S3 ETag; locally a digest of the bytes). */
export interface Versioned<T> {
  value: T;
  version: string;
}

export interface RolloutStore {
  get<T>(key: string): Promise<Versioned<T> | undefined>;
  /** Unconditional write. */
  put(key: string, value: unknown): Promise<void>;
  /** Writes only if no document exists under `key`; false when one does. */
  create(key: string, value: unknown): Promise<boolean>;
  /** Writes only if the document is still at `version`; false when it changed or vanished. */
  replace(key: string, value: unknown, version: string): Promise<boolean>;
  /** Deletes only if the document is still at `version`; false otherwise. */
  remove(key: string, version: string): Promise<boolean>;
}

/** Keys: `rollouts/<id>/…` and `rollout-locks/<plugin>.json`, plain ASCII (path-style safe). */
export const ROLLOUT_KEY = /^(rollouts\/[A-Za-z0-9][A-Za-z0-9_-]{0,63}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){1,2}|rollout-locks\/[a-z0-9][a-z0-9._-]{0,127}\.json)$/;
