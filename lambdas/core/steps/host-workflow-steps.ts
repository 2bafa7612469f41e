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
    const r = await host.stage(ref(plan), plan.sha256, plan.strip, { url });
    return { staged: r.result, files: r.files };
  }
  const body = await deps.artifacts.open(plan.artifactKey);
  try {
    const r = await host.stage(ref(plan), plan.sha256, plan.strip, { stream: body });
    return { staged: r.result, files: r.files };
  } finally {
    body.destroy();
  }
}

export async function snapshotLive(deps: StepDeps, t: PluginTarget): Promise<{ snapshot: string }> {
  return { snapshot: await (await hostStepsFor(deps, t.workspace)).snapshot(ref(t)) };
}

export async function swapIntoPlace(deps: StepDeps, t: PluginTarget): Promise<{ swap: string }> {
  return { swap: await (await hostStepsFor(deps, t.workspace)).swap(ref(t)) };
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
    const marker = `${host.target.root}/${plan.plugin}/.complete`;
    const json = JSON.stringify({ name: plan.plugin, version: plan.version, sha256: plan.sha256, stamp: plan.stamp, installedAt, execution: plan.execution });
    throw new PluginError(
      'MarkerWriteFailed',
      `${plan.plugin} ${plan.version} is live on ${plan.workspace} but its .complete marker could not be written: ${err instanceof Error ? err.message : String(err)}`,
      `check the files under ${host.target.root}/${plan.plugin}, then write the marker on the host: printf '%s\\n' '${json}' > ${marker}`,
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
export async function rollBack(deps: StepDeps, t: PluginTarget): Promise<{ live: string; actions: string[]; lock: string }> {
  try {
    const host = await hostStepsFor(deps, t.workspace);
    return await host.rollback(ref(t));
  } catch (err) {
    if (err instanceof PluginError && err.retryable) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new PluginError(
      'RollbackFailed',
      `rollback of ${t.plugin} (${t.stamp}) on ${t.workspace} failed: ${message}`,
      `inspect the plugins root on the host: live ${t.plugin}/, .staging/${t.plugin}.${t.stamp}, .previous/${t.plugin}.${t.stamp}; move the previous copy back to ${t.plugin}/ by hand and delete .locks/${t.plugin}`,
    );
  }
}
