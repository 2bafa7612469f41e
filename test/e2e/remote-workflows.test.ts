/**
 * The real workflow files with the real handlers over the AWS adapters on loopback: workspaces
 * found through the EC2 API stand-in, tarballs stored in s3rver, host steps over SSM Run Command
 * (the host pulls the tarball from a presigned S3 URL with curl) or over EC2 Instance Connect
 * (a real sshd; the tarball streams from S3 into the step's stdin), chosen by the instance's
 * PluginTransport tag.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsDeps, defaultAwsClients } from '../../lambdas/commons/aws-deps.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { listPlugins } from '../../lambdas/core/steps/list-plugins.ts';
import { runWorkflow } from '../../lambdas/core/workflow/local-runner.ts';
import type { WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { startAwsWorld, type AwsWorld } from '../helpers/aws-world.ts';
import { hostState } from '../helpers/host-state.ts';
import { contentOnly, readTree } from '../helpers/live-tree.ts';
import { startEicHarness } from '../servers/eic-harness.ts';

let world: AwsWorld;
beforeAll(async () => {
  world = await startAwsWorld([{ id: 'ssm-ws' }, { id: 'ssm-stopped', state: 'stopped' }]);
});
afterAll(async () => world?.stop());

function run(workflow: WorkflowName, input: Record<string, unknown>) {
  const stamp = newStamp();
  return runWorkflow({ workflow, input: { ...input, stamp }, executionName: executionName(String(input.workspace), 'hello-skills', stamp), deps: world.deps, retryDelayMs: 10 });
}

describe('over SSM Run Command', () => {
  it('installs v1 and v2, rolls back to v1, uninstalls and brings it back', async () => {
    const root = world.pluginsRoot('ssm-ws');
    const v1 = await run('install', { workspace: 'ssm-ws', source: 'local://hello-skills@1.0.0', sha256: null, runtime: null });
    expect(v1.status, v1.cause).toBe('SUCCEEDED');
    const v1Tree = readTree(join(root, 'hello-skills'))!;
    expect(JSON.parse(v1Tree['.complete']!)).toMatchObject({ name: 'hello-skills', version: '1.0.0' });

    expect((await run('install', { workspace: 'ssm-ws', source: 'local://hello-skills@1.1.0', sha256: null, runtime: null })).status).toBe('SUCCEEDED');
    expect((await listPlugins(world.deps, 'ssm-ws')).plugins).toMatchObject([{ name: 'hello-skills', version: '1.1.0', complete: true }]);

    expect((await run('rollback', { workspace: 'ssm-ws', plugin: 'hello-skills' })).status).toBe('SUCCEEDED');
    expect(contentOnly(readTree(join(root, 'hello-skills'))!)).toEqual(contentOnly(v1Tree));
    // The v1 directory itself came back (exchanged in), with its own marker and nothing else of ours.
    expect(readTree(join(root, 'hello-skills'))).toEqual(v1Tree);
    expect(Object.keys(v1Tree).filter((k) => ['.install-stamp', '.restored-from', '.pinned'].includes(k))).toEqual([]);
    expect((await listPlugins(world.deps, 'ssm-ws')).plugins).toMatchObject([{ name: 'hello-skills', version: '1.0.0', complete: true }]);

    expect((await run('uninstall', { workspace: 'ssm-ws', plugin: 'hello-skills' })).status).toBe('SUCCEEDED');
    expect(readTree(join(root, 'hello-skills'))).toBeNull();
    expect((await run('rollback', { workspace: 'ssm-ws', plugin: 'hello-skills' })).status).toBe('SUCCEEDED');
    expect(readTree(join(root, 'hello-skills'))).toEqual(v1Tree);
    expect((await listPlugins(world.deps, 'ssm-ws')).plugins).toMatchObject([{ name: 'hello-skills', version: '1.0.0', complete: true }]);
    expect(hostState(root, 'hello-skills')).toMatchObject({ staging: [], failed: [], locked: false });

    const events = readFileSync(world.eventsFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { detailType: string }).detailType);
    expect(events).toEqual(['Plugin Installed', 'Plugin Installed', 'Plugin Rolled Back', 'Plugin Uninstalled', 'Plugin Rolled Back']);
    // Every host step went through SendCommand; the tarball itself never did (it came from S3).
    expect(world.ssm.api.calls.SendCommand).toBeGreaterThanOrEqual(6 * 2 + 5 * 2 + 4);
  }, 120_000);

  it('refuses a stopped workspace in Prepare, before any host step', async () => {
    const before = world.ssm.api.calls.SendCommand ?? 0;
    const r = await run('install', { workspace: 'ssm-stopped', source: 'local://hello-skills', sha256: null, runtime: null });
    expect(r.status).toBe('FAILED');
    expect(r.error).toBe('WorkspaceNotRunning');
    expect(world.ssm.api.calls.SendCommand ?? 0).toBe(before);
  });

  it('a failing rollback workflow (nothing to restore) leaves the host as it was', async () => {
    const root = world.pluginsRoot('ssm-ws');
    await run('install', { workspace: 'ssm-ws', source: 'local://hello-skills@1.0.0', sha256: null, runtime: null });
    const before = readTree(join(root, 'hello-skills'));
    const eventsBefore = readFileSync(world.eventsFile, 'utf8').trim().split('\n').length;
    const r = await run('rollback', { workspace: 'ssm-ws', plugin: 'no-such-plugin' });
    expect(r.status).toBe('FAILED');
    expect(r.error).toBe('NothingToRestore');
    // StageSnapshot fails before live is touched: CleanUp (release the lock), then a plain
    // failure; the RollBack branch (live changed) is not taken.
    expect(r.steps.map((s) => s.name)).toEqual(['Prepare', 'AcquireLock', 'StageSnapshot', 'CleanUp', 'NotifyFailure', 'Failed']);
    expect(r.steps.find((s) => s.name === 'StageSnapshot')).toMatchObject({ status: 'failed', error: 'NothingToRestore' });
    expect(r.steps.find((s) => s.name === 'CleanUp')).toMatchObject({ status: 'succeeded' });
    const events = readFileSync(world.eventsFile, 'utf8').trim().split('\n').slice(eventsBefore).map((l) => JSON.parse(l) as { detailType: string; detail: unknown });
    expect(events).toHaveLength(1);
    const detail = (typeof events[0]!.detail === 'string' ? JSON.parse(events[0]!.detail) : events[0]!.detail) as Record<string, unknown>;
    expect(events[0]!.detailType).toBe('Plugin Operation Failed');
    expect(detail).toMatchObject({ workspace: 'ssm-ws', plugin: 'no-such-plugin', changed: false, error: { Error: 'NothingToRestore' } });
    expect(detail).not.toHaveProperty('rolledBack');
    expect(hostState(root, 'no-such-plugin')).toEqual({ staging: [], previous: [], failed: [], locked: false });
    expect(readdirSync(join(root, '.meta')).filter((e) => e.startsWith('no-such-plugin'))).toEqual([]);
    expect(readTree(join(root, 'hello-skills'))).toEqual(before);
  });
});

describe('over EC2 Instance Connect (real sshd), with the transport chosen per workspace by its tag', () => {
  for (const viaEndpoint of [false, true]) {
    it(`installs, upgrades and rolls back ${viaEndpoint ? 'through the EIC Endpoint tunnel' : 'straight to the private IP'}; an SSM workspace works beside it`, async () => {
      const eic = await startEicHarness({ viaEndpoint });
      const mixed = await startAwsWorld([{ id: 'eic-ws', transport: 'eic' }, { id: 'ssm-too' }], {
        eic: { resolver: eic.resolver, hostRoot: eic.hostRoot, register: () => ({ instanceId: eic.instanceId, privateIp: '127.0.0.1' }) },
      });
      try {
        const runIn = (workflow: WorkflowName, input: Record<string, unknown>) => {
          const stamp = newStamp();
          return runWorkflow({ workflow, input: { ...input, stamp }, executionName: executionName(String(input.workspace), 'p', stamp), deps: mixed.deps, retryDelayMs: 10 });
        };
        const root = mixed.pluginsRoot('eic-ws');
        expect((await runIn('install', { workspace: 'eic-ws', source: 'local://hello-skills@1.0.0', sha256: null, runtime: null })).status).toBe('SUCCEEDED');
        const v1 = readTree(join(root, 'hello-skills'))!;
        expect((await runIn('install', { workspace: 'eic-ws', source: 'local://hello-skills@1.1.0', sha256: null, runtime: null })).status).toBe('SUCCEEDED');
        expect((await listPlugins(mixed.deps, 'eic-ws')).plugins).toMatchObject([{ name: 'hello-skills', version: '1.1.0', complete: true }]);
        const rolledBack = await runIn('rollback', { workspace: 'eic-ws', plugin: 'hello-skills' });
        expect(rolledBack.status, rolledBack.cause).toBe('SUCCEEDED');
        expect(rolledBack.steps.map((s) => s.name).filter((n) => ['AcquireLock', 'StageSnapshot', 'SwapIntoPlace', 'SnapshotLive', 'ReleaseLock'].includes(n))).toEqual(['AcquireLock', 'StageSnapshot', 'SwapIntoPlace', 'SnapshotLive', 'ReleaseLock']);
        expect(contentOnly(readTree(join(root, 'hello-skills'))!)).toEqual(contentOnly(v1));
        expect(readTree(join(root, 'hello-skills'))).toEqual(v1);
        expect((await listPlugins(mixed.deps, 'eic-ws')).plugins).toMatchObject([{ name: 'hello-skills', version: '1.0.0', complete: true }]);
        // The plugins root is root's (the steps ran under sudo -n), its management directories 0700.
        expect(statSync(root)).toMatchObject({ uid: 0 });
        expect(statSync(root).mode & 0o777).toBe(0o755);
        expect(statSync(join(root, '.meta')).mode & 0o777).toBe(0o700);
        // The files belong to the agent user although the OS user is not root (sudo -n).
        expect(statSync(join(root, 'hello-skills', 'plugin.yaml')).uid).toBe(1000);
        if (viaEndpoint) expect(eic.counters.tunnels).toBeGreaterThan(0);
        else expect(eic.counters.tunnels).toBe(0);

        const sendsBefore = mixed.ssm.api.calls.SendCommand ?? 0;
        expect((await runIn('install', { workspace: 'ssm-too', source: 'local://hello-skills@1.0.0', sha256: null, runtime: null })).status).toBe('SUCCEEDED');
        // One command per host step: lock, stage, swap, snapshot, verify, mark, unlock.
        expect((mixed.ssm.api.calls.SendCommand ?? 0) - sendsBefore).toBe(7);
      } finally {
        await mixed.stop();
        await eic.stop();
      }
    }, 120_000);
  }

  it('re-pushes the key once when the pushed key expired before the login, and the install succeeds', async () => {
    // The first key is stored already expired (dead on arrival); every later key lives 60 s, so
    // however slow the machine, only that one login fails.
    const eic = await startEicHarness({ host: { idleTimeoutMs: 0 } });
    const world2 = await startAwsWorld([{ id: 'eic-exp', transport: 'eic' }], {
      eic: { resolver: eic.resolver, hostRoot: eic.hostRoot, register: () => ({ instanceId: eic.instanceId, privateIp: '127.0.0.1' }) },
    });
    try {
      eic.eicApi.expireNextKeys(1);
      const stamp = newStamp();
      const outcome = await runWorkflow({
        workflow: 'install',
        input: { workspace: 'eic-exp', source: 'local://hello-skills', sha256: null, runtime: null, stamp },
        executionName: executionName('eic-exp', 'hello-skills', stamp),
        deps: world2.deps,
        retryDelayMs: 10,
      });
      expect(outcome.status, outcome.cause).toBe('SUCCEEDED');
      // No step was retried by the workflow: the adapter absorbed the expiry itself.
      expect(outcome.steps.every((s) => s.attempts === 1)).toBe(true);
      // One key per host step (idle connections are not kept here), plus the one re-push.
      expect(eic.counters.pushes).toBe(7 + 1);
      expect(eic.sshd.failedAuth).toBeGreaterThanOrEqual(1);
    } finally {
      await world2.stop();
      await eic.stop();
    }
  }, 120_000);
});

describe('a transport this deployment cannot reach', () => {
  // The AWS composition root as an SSM-only deployment builds it (no EIC Endpoint, functions
  // outside any VPC), serving a workspace whose instance is tagged PluginTransport=eic.
  it('refuses install, rollback and uninstall in Prepare with TransportUnavailable and a hint, before any host step', async () => {
    const env = { ARTIFACT_BUCKET: 'artifact-bucket', DEFAULT_TRANSPORT: 'ssm', EIC_OS_USER: 'ubuntu' };
    const deployed = awsDeps(env, defaultAwsClients());
    let registered = 0;
    const world2 = await startAwsWorld([{ id: 'eic-no-path', transport: 'eic' }, { id: 'ssm-ok' }], {
      eic: { resolver: deployed.hosts, hostRoot: '/nonexistent', register: () => ({ instanceId: `i-0e1c00000000000${++registered}`, privateIp: '10.0.0.9' }) },
    });
    try {
      const go = (workflow: WorkflowName, input: Record<string, unknown>) => {
        const stamp = newStamp();
        return runWorkflow({ workflow, input: { ...input, stamp }, executionName: executionName('eic-no-path', 'hello-skills', stamp), deps: world2.deps, retryDelayMs: 10 });
      };
      for (const [workflow, input] of [
        ['install', { workspace: 'eic-no-path', source: 'local://hello-skills', sha256: null, runtime: null }],
        ['rollback', { workspace: 'eic-no-path', plugin: 'hello-skills' }],
        ['uninstall', { workspace: 'eic-no-path', plugin: 'hello-skills' }],
      ] as const) {
        const r = await go(workflow, input);
        expect(r.status, workflow).toBe('FAILED');
        expect(r.error, workflow).toBe('TransportUnavailable');
        expect(r.cause, workflow).toMatch(/eicEndpointId.*vpcId/);
        // Prepare failed once (not retried: nothing transient about it) and no host step ran.
        expect(r.steps.filter((s) => s.type === 'Task' && !s.name.startsWith('Notify')).map((s) => [s.name, s.attempts]), workflow).toEqual([['Prepare', 1]]);
      }
      // The SSM workspace of the same deployment is unaffected.
      const ok = await runWorkflow({ workflow: 'install', input: { workspace: 'ssm-ok', source: 'local://hello-skills', sha256: null, runtime: null, stamp: newStamp() }, executionName: executionName('ssm-ok', 'hello-skills', newStamp()), deps: world2.deps, retryDelayMs: 10 });
      expect(ok.status, ok.cause).toBe('SUCCEEDED');
    } finally {
      await world2.stop();
    }
  }, 120_000);
});
