/**
 * The host steps shared by the install, rollback and uninstall workflows. Each is one call of
 * the host script, idempotent by stamp; results are tiny so the workflow payload stays small.
 */
import { PluginError } from '../errors.ts';
import { hostStepsFor } from './host-for.ts';
import type { StepDeps } from './step-deps.ts';
import type { InstallPlan, PluginTarget } from './step-payloads.ts';

const ref = (t: PluginTarget) => ({ name: t.plugin, stamp: t.stamp });

export async function acquireLock(deps: StepDeps, t: PluginTarget): Promise<{ lock: string; expires: number }> {
  const host = await hostStepsFor(deps, t.workspace);
  const r = await host.lock(ref(t), t.execution, deps.lockOwnerPid, deps.leaseSeconds);
  return { lock: r.result, expires: r.expires };
}

/** How long a host may take to start pulling the tarball it is told to fetch. */
const PRESIGNED_URL_SECONDS = 300;

export async function stageOnHost(deps: StepDeps, plan: InstallPlan): Promise<{ staged: string; files?: number }> {
  const host = await hostStepsFor(deps, plan.workspace);
  if (!host.target.host.streamsStdin) {
    if (!deps.artifacts.presignGet) {
      throw new PluginError('HostStepFailed', `transport ${host.target.host.transport} needs a presigned URL, which this artifact store cannot make`, 'use the S3 artifact store with the SSM transport');
    }
    const url = await deps.artifacts.presignGet(plan.artifactKey, PRESIGNED_URL_SECONDS);
    const r = await host.stage(ref(plan), plan.sha256, plan.strip, { url }, plan.bytes);
    return { staged: r.result, files: r.files };
  }
  const body = await deps.artifacts.open(plan.artifactKey);
  try {
    const r = await host.stage(ref(plan), plan.sha256, plan.strip, { stream: body }, plan.bytes);
    return { staged: r.result, files: r.files };
  } finally {
    body.destroy();
  }
}

/** The version the swap displaced (still beside live, in the staging slot) becomes the snapshot. */
export async function snapshotLive(deps: StepDeps, t: PluginTarget): Promise<{ snapshot: string }> {
  return { snapshot: await (await hostStepsFor(deps, t.workspace)).snapshot(ref(t)) };
}

/**
 * Staging and live trade places in one renameat2(RENAME_EXCHANGE): readers see the old version
 * or the new one, never no plugin. `how` says which way the host did it.
 */
export async function swapIntoPlace(deps: StepDeps, t: PluginTarget): Promise<{ swap: string; how?: string }> {
  const r = await (await hostStepsFor(deps, t.workspace)).swap(ref(t));
  return r.how ? { swap: r.result, how: r.how } : { swap: r.result };
}

/**
 * After the swap (and the snapshot), before the marker: the new version must pass the built-in
 * structural checks and its own health check (plugin.yaml `healthcheck`), run on the host as the
 * plugin's owner. A failure is HealthCheckFailed, and the workflow's Catch rolls the install back:
 * the previous version live again, the new one kept under .failed/ as evidence.
 */
export async function verifyLive(deps: StepDeps, plan: InstallPlan): Promise<{ verify: string; check?: string; isolation?: string }> {
  const host = await hostStepsFor(deps, plan.workspace);
  try {
    const r = await host.verify(ref(plan), plan.version, plan.healthcheck);
    return { verify: r.result, ...(r.check ? { check: r.check } : {}), ...(r.isolation ? { isolation: r.isolation } : {}) };
  } catch (err) {
    if (err instanceof PluginError && err.code === 'HealthCheckFailed') {
      throw new PluginError(
        'HealthCheckFailed',
        err.message,
        `the install is rolled back and ${plan.plugin} ${plan.version} kept for inspection under ${host.target.root}/.failed/${plan.plugin}.${plan.stamp}; fix the plugin (or the healthcheck in its plugin.yaml, docs/plugin-format.md) and install again`,
      );
    }
    throw err;
  }
}

/**
 * The marker is written after the swap: the content is what was asked for, so a failure here is
 * not rolled back. Non-transient failures become MarkerWriteFailed with the exact manual fix.
 */
export async function writeMarker(deps: StepDeps, plan: InstallPlan): Promise<{ marker: string }> {
  const host = await hostStepsFor(deps, plan.workspace);
  const installedAt = deps.clock().toISOString();
  try {
    return { marker: await host.mark(ref(plan), { version: plan.version, sha256: plan.sha256, execution: plan.execution, installedAt }) };
  } catch (err) {
    if (err instanceof PluginError && err.retryable) throw err;
    throw new PluginError(
      'MarkerWriteFailed',
      `${plan.plugin} ${plan.version} is live on ${plan.workspace} but its .complete marker could not be written: ${err instanceof Error ? err.message : String(err)}`,
      `fix what the message names under ${host.target.root}/${plan.plugin} (its .complete marker), then install the same source again: the new install replaces the unmarked copy whole and writes the marker (or roll back to the previous version)`,
    );
  }
}

export async function releaseLock(deps: StepDeps, t: PluginTarget): Promise<{ unlock: string }> {
  return { unlock: await (await hostStepsFor(deps, t.workspace)).unlock(ref(t)) };
}

/** Rollback workflow: stage the newest snapshot so snapshot + swap can put it live. */
export async function stageSnapshot(deps: StepDeps, t: PluginTarget): Promise<{ restoring?: string }> {
  const r = await (await hostStepsFor(deps, t.workspace)).restore(ref(t));
  return { restoring: r.from };
}

/** Uninstall workflow: live moves to .previous/<name>.<stamp>, so a rollback brings it back. */
export async function removeLive(deps: StepDeps, t: PluginTarget): Promise<{ uninstall: string }> {
  return { uninstall: await (await hostStepsFor(deps, t.workspace)).uninstall(ref(t)) };
}

/**
 * Catch branch of every workflow. State-driven, so it is right whichever step failed and however
 * often it runs. If it cannot finish, the state is left for an operator: RollbackFailed.
 */
export async function rollBack(deps: StepDeps, t: PluginTarget): Promise<{ live: string; changed: boolean; actions: string[]; lock: string }> {
  try {
    const host = await hostStepsFor(deps, t.workspace);
    return await host.rollback(ref(t));
  } catch (err) {
    if (err instanceof PluginError && err.retryable) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new PluginError(
      'RollbackFailed',
      `rollback of ${t.plugin} (${t.stamp}) on ${t.workspace} failed: ${message}`,
      `the message lists what the rollback already did; inspect the plugins root on the host (live ${t.plugin}/, .staging/${t.plugin}.${t.stamp}, .previous/${t.plugin}.${t.stamp}, .failed/${t.plugin}.${t.stamp}), put the version you want at ${t.plugin}/ (mv --exchange, or mv -T when nothing is live), then delete .locks/${t.plugin}`,
    );
  }
}
