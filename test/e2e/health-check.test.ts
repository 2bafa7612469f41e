/**
 * A plugin's health check end to end (issue 11, section 1): plugin.yaml `healthcheck`, the
 * install workflow's VerifyLive step between the swap and the marker, pluginctl's contract. A
 * check that passes installs; one that fails or times out rolls back automatically (the previous
 * version live again, complete; the new one under .failed/ as evidence), pluginctl exits 3 with
 * error.code HealthCheckFailed and the check's last lines in the message, and the event says so.
 * A first install whose check fails leaves no live copy. A bad `healthcheck` is refused before any
 * host is touched.
 */
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pluginctl, pluginctlProcess } from '../helpers/cli.ts';
import { judgeLive, readTree } from '../helpers/live-tree.ts';
import { uniqueSleep, untilNoProcessRuns } from '../helpers/processes.ts';
import { versionFiles, writePluginDir, type PluginVersionSpec } from '../helpers/plugin-versions.ts';
import { freshHomes } from '../helpers/fresh-homes.ts';

const NAME = 'checked';
const freshHome = freshHomes('health-check-e2e-');

const pluginsRoot = (home: string, ws: string) => join(home, 'workspaces', ws, 'root', 'configs', 'plugins');
const env = (home: string) => ({ PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' });

function spec(version: string, healthcheck?: PluginVersionSpec['healthcheck']): PluginVersionSpec {
  return { name: NAME, version, files: 4, ...(healthcheck ? { healthcheck } : {}) };
}

function events(home: string): { detailType: string; detail: Record<string, unknown> }[] {
  return readFileSync(join(home, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { detailType: string; detail: Record<string, unknown> });
}

const V1 = spec('1.0.0', { command: 'test -f plugin.yaml && echo "healthy $PLUGIN_NAME $PLUGIN_VERSION"' });
const V2_FAILS = spec('2.0.0', { command: 'echo "starting the skill server"\necho "connection refused on 127.0.0.1:7777" >&2\nexit 1', timeoutSeconds: 10 });
/** The hanging check's sleep: a command line of its own, to see that the kill reached it. */
const HANG = uniqueSleep();
/** Each run of the check appends a line to ./check-runs (in the new version, kept under .failed/). */
const V2_HANGS = spec('2.0.0', { command: `echo run >> ./check-runs; echo "waiting for the model"; ${HANG}`, timeoutSeconds: 2 });
const VERSIONS = { '1.0.0': versionFiles(V1), '2.0.0': versionFiles(V2_FAILS) };

describe('pluginctl install with a health check', () => {
  it('a passing check installs (VerifyLive between SnapshotLive and WriteMarker); a failing one exits 3, rolled back, HealthCheckFailed with the check\'s last lines', async () => {
    const home = freshHome();
    const src = join(home, 'sources');
    const ok = await pluginctlProcess(['install', await writePluginDir(src, V1), '--workspace', 'w'], env(home));
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/✓ SnapshotLive\s+\d+ ms\n\s+✓ VerifyLive\s+\d+ ms\n\s+✓ WriteMarker/);

    const bad = await pluginctlProcess(['install', await writePluginDir(join(home, 'bad'), V2_FAILS), '--workspace', 'w'], env(home));
    expect(bad.code).toBe(3);
    expect(bad.stdout).toMatch(/✗ VerifyLive\s+\d+ ms\s+HealthCheckFailed/);
    expect(bad.stdout).toContain('✓ RollBack');
    // The message quotes the check's output, indented under the first line, and the hint says where the new version is kept.
    expect(bad.stderr).toContain('pluginctl: failed and rolled back (live is as it was): HealthCheckFailed: health check of checked 2.0.0 failed: exit status 1; last lines of its output:\n    starting the skill server\n    connection refused on 127.0.0.1:7777\n');
    expect(bad.stderr).toMatch(/hint: .*\.failed\/checked\.\d{8}T\d{6}Z-[a-z0-9]{4}/);

    // Live is v1, complete; v2 is kept under .failed/ as evidence.
    const root = pluginsRoot(home, 'w');
    expect(judgeLive(readTree(join(root, NAME)), VERSIONS)).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
    const failed = readdirSync(join(root, '.failed'));
    expect(failed).toHaveLength(1);
    expect(judgeLive(readTree(join(root, '.failed', failed[0]!)), VERSIONS)).toMatchObject({ state: 'whole', version: '2.0.0', markedVersion: undefined });
    const list = await pluginctl(['list', '--workspace', 'w', '--json'], env(home));
    expect(list.json).toMatchObject({ plugins: [{ name: NAME, version: '1.0.0', complete: true }] });

    // The event says so.
    expect(events(home).map((e) => e.detailType)).toEqual(['Plugin Installed', 'Plugin Install Failed']);
    expect(events(home)[1]!.detail).toMatchObject({ outcome: 'rolled-back', changed: true, error: { Error: 'HealthCheckFailed' } });
  });

  it('--json: status rolled-back, error {code: HealthCheckFailed, message with the last lines, hint}', async () => {
    const home = freshHome();
    expect((await pluginctl(['install', await writePluginDir(join(home, 'v1'), V1), '--workspace', 'w'], env(home))).code).toBe(0);
    const r = await pluginctl(['install', await writePluginDir(join(home, 'v2'), V2_FAILS), '--workspace', 'w', '--json'], env(home));
    expect(r.code).toBe(3);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.json).toMatchObject({ status: 'rolled-back', plugin: NAME, version: '2.0.0', error: { code: 'HealthCheckFailed' } });
    const error = r.json!.error as { message: string; hint: string };
    expect(error.message).toBe('health check of checked 2.0.0 failed: exit status 1; last lines of its output:\nstarting the skill server\nconnection refused on 127.0.0.1:7777');
    expect(error.hint).toContain('rolled back');
    expect((r.json!.steps as { name: string; status: string }[]).map((s) => `${s.name}:${s.status}`)).toEqual([
      'Prepare:succeeded', 'AcquireLock:succeeded', 'StageOnHost:succeeded', 'SwapIntoPlace:succeeded', 'SnapshotLive:succeeded',
      'VerifyLive:failed', 'RollBack:succeeded', 'NotifyRolledBack:succeeded', 'Unhealthy?:succeeded', 'RolledBackUnhealthy:failed',
    ]);
  });

  it('a check that does not finish in timeoutSeconds is killed and rolled back (exit 3, "timed out")', async () => {
    const home = freshHome();
    expect((await pluginctl(['install', await writePluginDir(join(home, 'v1'), V1), '--workspace', 'w'], env(home))).code).toBe(0);
    const r = await pluginctl(['install', await writePluginDir(join(home, 'v2'), V2_HANGS), '--workspace', 'w', '--json'], env(home));
    expect(r.code).toBe(3);
    expect(r.json).toMatchObject({ status: 'rolled-back', error: { code: 'HealthCheckFailed' } });
    expect((r.json!.error as { message: string }).message).toMatch(/timed out after 2s .*\nwaiting for the model$/);
    // Killed: nothing of the check still runs (it would sleep for minutes otherwise).
    await untilNoProcessRuns(HANG);
    // Not retried (a failed check is not a transient error): the check ran exactly once.
    const failed = readdirSync(join(pluginsRoot(home, 'w'), '.failed'));
    expect(failed).toHaveLength(1);
    expect(readFileSync(join(pluginsRoot(home, 'w'), '.failed', failed[0]!, 'check-runs'), 'utf8')).toBe('run\n');
    expect(judgeLive(readTree(join(pluginsRoot(home, 'w'), NAME)), VERSIONS)).toMatchObject({ state: 'whole', version: '1.0.0', markedVersion: '1.0.0' });
  });

  it('a first install whose check fails leaves no live copy (the new version under .failed/), exit 3', async () => {
    const home = freshHome();
    const r = await pluginctl(['install', await writePluginDir(join(home, 'v2'), V2_FAILS), '--workspace', 'w', '--json'], env(home));
    expect(r.code).toBe(3);
    expect(r.json).toMatchObject({ status: 'rolled-back', error: { code: 'HealthCheckFailed' } });
    const root = pluginsRoot(home, 'w');
    expect(existsSync(join(root, NAME))).toBe(false);
    expect(readdirSync(join(root, '.failed'))).toHaveLength(1);
    expect((await pluginctl(['list', '--workspace', 'w', '--json'], env(home))).json).toMatchObject({ plugins: [] });
    expect(events(home).at(-1)).toMatchObject({ detailType: 'Plugin Install Failed', detail: { outcome: 'rolled-back', error: { Error: 'HealthCheckFailed' }, rollback: { live: 'absent' } } });
  });

  it.each([
    ['an unknown key', 'healthcheck:\n  command: "true"\n  timeout: 5\n', 'healthcheck: unknown key "timeout"'],
    ['a timeout over 300 s', 'healthcheck:\n  command: "true"\n  timeoutSeconds: 301\n', 'healthcheck.timeoutSeconds: must be between 1 and 300 seconds'],
    ['no command', 'healthcheck:\n  timeoutSeconds: 5\n', 'healthcheck.command: is required'],
  ])('a healthcheck with %s is refused before any host is touched (exit 2)', async (_what, yaml, problem) => {
    const home = freshHome();
    const dir = await writePluginDir(join(home, 'src'), spec('1.0.0'));
    appendFileSync(join(dir, 'plugin.yaml'), yaml);
    const r = await pluginctl(['install', dir, '--workspace', 'w', '--json'], env(home));
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ status: 'refused', error: { code: 'InvalidManifest' } });
    expect((r.json!.error as { message: string }).message).toContain(problem);
    expect(existsSync(pluginsRoot(home, 'w'))).toBe(false);
  });
});
