/**
 * `pluginctl workspace add|list|remove` through the CLI, and installs that are refused leaving
 * nothing behind (no registration, no directory, no event), while `install --runtime` on a new
 * workspace still registers it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pluginctl } from '../helpers/cli.ts';
import { freshHomes } from '../helpers/fresh-homes.ts';

const freshHome = freshHomes('workspace-commands-');

function registered(home: string): Record<string, { runtime: string }> {
  const file = join(home, 'workspaces.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { workspaces: Record<string, { runtime: string }> }).workspaces : {};
}

describe('pluginctl workspace', () => {
  it('add, list (text and --json), remove', async () => {
    const home = freshHome();
    const env = { PLUGINCTL_HOME: home };
    const added = await pluginctl(['workspace', 'add', 'w1', '--runtime', 'hermes', '--json'], env);
    expect(added.code, added.stderr).toBe(0);
    expect(added.json).toEqual({ workspace: 'w1', runtime: 'hermes', created: true });
    expect(existsSync(join(home, 'workspaces/w1/root'))).toBe(true);
    expect((await pluginctl(['workspace', 'add', 'w0'], env)).stdout).toMatch(/added workspace w0 \(claude-code\)/);
    const again = await pluginctl(['workspace', 'add', 'w1', '--runtime', 'hermes', '--json'], env);
    expect(again.code).toBe(0);
    expect(again.json).toEqual({ workspace: 'w1', runtime: 'hermes', created: false });

    const listed = await pluginctl(['workspace', 'list', '--json'], env);
    expect(listed.code).toBe(0);
    const workspaces = (listed.json as { workspaces: Record<string, unknown>[] }).workspaces;
    expect(workspaces.map((w) => Object.keys(w))).toEqual([
      ['id', 'runtime', 'state', 'createdAt'],
      ['id', 'runtime', 'state', 'createdAt'],
    ]);
    expect(workspaces).toMatchObject([
      { id: 'w0', runtime: 'claude-code', state: 'running' },
      { id: 'w1', runtime: 'hermes', state: 'running' },
    ]);
    const text = await pluginctl(['workspace', 'list'], env);
    expect(text.stdout).toMatch(/^ID\s+RUNTIME\s+STATE\s+CREATED\nw0\s+claude-code\s+running/);

    const removed = await pluginctl(['workspace', 'remove', 'w1', '--json'], env);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.json).toEqual({ workspace: 'w1', removed: true, plugins: [] });
    expect(Object.keys(registered(home))).toEqual(['w0']);
    expect(existsSync(join(home, 'workspaces/w1'))).toBe(false);
  });

  it('refuses (exit 2, stderr) a bad id, an unknown runtime, another runtime for an existing id, removing an unknown workspace', async () => {
    const home = freshHome();
    const env = { PLUGINCTL_HOME: home };
    const badId = await pluginctl(['workspace', 'add', '../etc', '--runtime', 'hermes'], env);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/workspace id/);
    expect(badId.stdout).toBe('');
    const badRuntime = await pluginctl(['workspace', 'add', 'w', '--runtime', 'emacs'], env);
    expect(badRuntime.code).toBe(2);
    expect(Object.keys(registered(home))).toEqual([]);
    expect((await pluginctl(['workspace', 'add', 'w', '--runtime', 'hermes'], env)).code).toBe(0);
    const other = await pluginctl(['workspace', 'add', 'w', '--runtime', 'langgraph', '--json'], env);
    expect(other.code).toBe(2);
    expect(other.json).toMatchObject({ status: 'refused', workspace: 'w', error: { code: 'InvalidInput' } });
    const unknown = await pluginctl(['workspace', 'remove', 'nope', '--json'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.json).toMatchObject({ status: 'refused', error: { code: 'WorkspaceNotFound' } });
    expect((await pluginctl(['workspace', 'remove', 'a/b'], env)).code).toBe(2);
  });

  it('remove is refused while plugins are installed; --force removes the workspace and its directory', async () => {
    const home = freshHome();
    const env = { PLUGINCTL_HOME: home };
    expect((await pluginctl(['workspace', 'add', 'w', '--runtime', 'claude-code'], env)).code).toBe(0);
    expect((await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w'], env)).code).toBe(0);
    const refused = await pluginctl(['workspace', 'remove', 'w'], env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/has plugins installed: hello-skills/);
    expect(refused.stderr).toMatch(/--force/);
    expect(existsSync(join(home, 'workspaces/w/root/configs/plugins/hello-skills'))).toBe(true);
    expect(Object.keys(registered(home))).toEqual(['w']);
    const forced = await pluginctl(['workspace', 'remove', 'w', '--force', '--json'], env);
    expect(forced.code).toBe(0);
    expect(forced.json).toEqual({ workspace: 'w', removed: true, plugins: ['hello-skills'] });
    expect(existsSync(join(home, 'workspaces/w'))).toBe(false);
    expect(Object.keys(registered(home))).toEqual([]);
  }, 120_000);
});

describe('install and workspaces', () => {
  it('an install refused for --runtime external creates no workspace, no directory and logs no event', async () => {
    const home = freshHome();
    const r = await pluginctl(['install', 'local://hello-skills', '--workspace', 'ext', '--runtime', 'external', '--json'], { PLUGINCTL_HOME: home });
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ status: 'refused', error: { code: 'ExternalRuntime' } });
    expect(registered(home)).toEqual({});
    expect(existsSync(join(home, 'workspaces/ext'))).toBe(false);
    expect(existsSync(join(home, 'events.jsonl'))).toBe(false);
  });

  it('an install refused by validation on a new workspace leaves it unregistered', async () => {
    const home = freshHome();
    const r = await pluginctl(['install', 'local://hello-skills', '--workspace', 'fresh', '--sha256', '0'.repeat(64), '--json'], { PLUGINCTL_HOME: home });
    expect(r.code).toBe(2);
    expect(registered(home)).toEqual({});
    expect(existsSync(join(home, 'workspaces/fresh'))).toBe(false);
  }, 120_000);

  it('install --runtime on a new workspace registers it with that runtime', async () => {
    const home = freshHome();
    const r = await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'h1', '--runtime', 'hermes', '--json'], { PLUGINCTL_HOME: home });
    expect(r.code, r.stdout).toBe(0);
    expect(registered(home)).toMatchObject({ h1: { runtime: 'hermes' } });
    const listed = await pluginctl(['workspace', 'list', '--json'], { PLUGINCTL_HOME: home });
    expect(listed.json).toMatchObject({ workspaces: [{ id: 'h1', runtime: 'hermes' }] });
  }, 120_000);
});
