/**
 * Everything a workflow step needs from the outside world, as ports. Lambda handlers build one
 * set per container (lambdas/commons/deps.ts); the embedded runner builds the local set.
 */
import type { ArtifactStore } from '../artifacts/artifact-store.ts';
import type { HostResolver } from '../host/host-resolver.ts';
import type { RolloutStore } from '../rollout/rollout-store.ts';
import type { SourceOptions } from '../sources/resolve-source.ts';
import type { TarballLimits } from '../tarball/inspect-tarball.ts';
import type { WorkspaceDirectory } from '../workspaces/workspace-directory.ts';

export interface StepDeps {
  workspaces: WorkspaceDirectory;
  hosts: HostResolver;
  artifacts: ArtifactStore;
  /** Fleet rollouts' documents (record, target pages, locks); only the rollout's steps use it. */
  rollouts?: RolloutStore;
  sources: SourceOptions;
  limits?: Partial<TarballLimits>;
  /** How long a plugin lock lasts if its holder vanishes without releasing it. */
  leaseSeconds: number;
  /** Process id written into locks; 0 where the holder's liveness cannot be checked (Lambda). */
  lockOwnerPid: number;
  hostTimeoutMs?: number;
  clock: () => Date;
}
