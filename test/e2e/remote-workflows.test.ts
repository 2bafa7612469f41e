/**
 * The real workflow files with the real handlers over the AWS adapters on loopback: workspaces
 * found through the EC2 API stand-in, tarballs stored in s3rver, host steps over SSM Run Command
 * (the host pulls the tarball from a presigned S3 URL with curl).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { listPlugins } from '../../lambdas/core/steps/list-plugins.ts';
import { runWorkflow } from '../../lambdas/core/workflow/local-runner.ts';
import type { WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import { startAwsWorld, type AwsWorld } from '../helpers/aws-world.ts';
import { hostState } from '../helpers/host-state.ts';
import { contentOnly, readTree } from '../helpers/live-tree.ts';

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

    expect((await run('uninstall', { workspace: 'ssm-ws', plugin: 'hello-skills' })).status).toBe('SUCCEEDED');
    expect(readTree(join(root, 'hello-skills'))).toBeNull();
    expect((await run('rollback', { workspace: 'ssm-ws', plugin: 'hello-skills' })).status).toBe('SUCCEEDED');
    expect(contentOnly(readTree(join(root, 'hello-skills'))!)).toEqual(contentOnly(v1Tree));
    expect(hostState(root, 'hello-skills')).toMatchObject({ staging: [], locked: false });

    const events = readFileSync(world.eventsFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { detailType: string }).detailType);
    expect(events).toEqual(['Plugin Installed', 'Plugin Installed', 'Plugin Rolled Back', 'Plugin Uninstalled', 'Plugin Rolled Back']);
    // Every host step went through SendCommand; the tarball itself never did (it came from S3).
    expect(world.ssm.api.calls.SendCommand).toBeGreaterThanOrEqual(6 * 2 + 5 * 2 + 4);
  });

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
    const r = await run('rollback', { workspace: 'ssm-ws', plugin: 'no-such-plugin' });
    expect(r.status).toBe('FAILED');
    expect(r.error).toBe('NothingToRestore');
    expect(r.steps.map((s) => s.name)).toContain('RollBack');
    expect(hostState(root, 'no-such-plugin')).toEqual({ staging: [], previous: [], failed: [], locked: false });
    expect(readTree(join(root, 'hello-skills'))).not.toBeNull();
  });
});
