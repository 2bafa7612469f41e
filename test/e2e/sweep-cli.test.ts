/**
 * `pluginctl sweep` end to end on the embedded default, after real installs, upgrades and
 * uninstalls: --dry-run lists and deletes nothing; --older-than 0s --keep 0 deletes every old
 * snapshot but never a live plugin nor a pinned snapshot; a failing workspace is reported (exit 3)
 * while the others are swept; bad input exits 2.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pluginctl } from '../helpers/cli.ts';
import { faultShims } from '../helpers/fault-shims.ts';

let base: string;
let counter = 0;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'sweep-cli-'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const ZERO = { previous: 0, staging: 0, failed: 0, locks: 0 };

interface SweepJson {
  dryRun: boolean;
  olderThan: string;
  keepNewest: number;
  hosts: { workspace: string; counts: typeof ZERO; bytes: number; deleted?: { kind: string; path: string; bytes: number }[]; error?: { code: string; message: string; hint: string } }[];
  totals: { counts: typeof ZERO; bytes: number };
}

function rootOf(home: string, ws: string, runtimeRoot = 'configs/plugins'): string {
  return join(home, 'workspaces', ws, 'root', runtimeRoot);
}

function previous(home: string, ws: string, runtimeRoot?: string): string[] {
  const dir = join(rootOf(home, ws, runtimeRoot), '.previous');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/**
 * w1: hello-skills 1.0.0 → 1.1.0 → 1.0.0 (two snapshots); w2: installed then uninstalled (one
 * snapshot, no live); w3 (hermes): 1.0.0 → 1.1.0 (one snapshot). Then a second passes, so every
 * snapshot is older than "0s".
 */
async function fleet(): Promise<{ home: string; env: Record<string, string> }> {
  const home = join(base, `home-${counter++}`);
  mkdirSync(home, { recursive: true });
  const env = { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' };
  const ok = async (args: string[]) => {
    const r = await pluginctl([...args, '--json'], env);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  };
  await ok(['install', 'local://hello-skills@1.0.0', '--workspace', 'w1']);
  await ok(['install', 'local://hello-skills@1.1.0', '--workspace', 'w1']);
  await ok(['install', 'local://hello-skills@1.0.0', '--workspace', 'w1']);
  await ok(['install', 'local://hello-skills@1.0.0', '--workspace', 'w2']);
  await ok(['uninstall', 'hello-skills', '--workspace', 'w2']);
  await ok(['install', 'local://hello-skills@1.0.0', '--workspace', 'w3', '--runtime', 'hermes']);
  await ok(['install', 'local://hello-skills@1.1.0', '--workspace', 'w3']);
  // Stamps have second precision: make every snapshot strictly older than "now - 0s".
  await new Promise((resolve) => setTimeout(resolve, 1100));
  return { home, env };
}

async function listVersions(env: Record<string, string>, ws: string): Promise<unknown> {
  const r = await pluginctl(['list', '--workspace', ws, '--json'], env);
  return (r.json as { plugins: { name: string; version: string; complete: boolean }[] }).plugins.map(({ name, version, complete }) => ({ name, version, complete }));
}

describe('pluginctl sweep', () => {
  it('--dry-run --json lists what would go and deletes nothing; the default 7d finds nothing this young', async () => {
    const { home, env } = await fleet();
    const before = ['w1', 'w2'].map((w) => previous(home, w)).concat([previous(home, 'w3', 'home/ubuntu/.hermes/plugins')]);
    expect(before.map((p) => p.length)).toEqual([2, 1, 1]);

    const young = await pluginctl(['sweep', '--dry-run', '--json'], env);
    expect(young.code, young.stderr).toBe(0);
    expect(young.stdout.trim().split('\n')).toHaveLength(1);
    const y = young.json as unknown as SweepJson;
    expect(Object.keys(y)).toEqual(['dryRun', 'olderThan', 'keepNewest', 'hosts', 'totals']);
    expect(y).toMatchObject({ dryRun: true, olderThan: '7d', keepNewest: 1, totals: { counts: ZERO, bytes: 0 } });
    expect(y.hosts.map((h) => h.workspace)).toEqual(['w1', 'w2', 'w3']);

    const dry = await pluginctl(['sweep', '--dry-run', '--json', '--older-than', '0s', '--keep', '0'], env);
    expect(dry.code, dry.stderr).toBe(0);
    const d = dry.json as unknown as SweepJson;
    expect(d).toMatchObject({ dryRun: true, olderThan: '0s', keepNewest: 0 });
    expect(d.hosts.map((h) => [h.workspace, h.counts.previous, (h.deleted ?? []).map((x) => x.path).sort()])).toEqual([
      ['w1', 2, before[0]!.map((e) => `.previous/${e}`)],
      ['w2', 1, before[1]!.map((e) => `.previous/${e}`)],
      ['w3', 1, before[2]!.map((e) => `.previous/${e}`)],
    ]);
    expect(d.totals.counts.previous).toBe(4);
    expect(d.totals.bytes).toBe(d.hosts.reduce((n, h) => n + h.bytes, 0));
    expect(d.totals.bytes).toBeGreaterThan(0);
    // Nothing deleted.
    expect(['w1', 'w2'].map((w) => previous(home, w)).concat([previous(home, 'w3', 'home/ubuntu/.hermes/plugins')])).toEqual(before);

    // For a person: a table, and each path a real run would delete.
    const table = await pluginctl(['sweep', '--dry-run', '--older-than', '0s', '--keep', '0'], env);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/WORKSPACE\s+PREVIOUS\s+STAGING\s+FAILED\s+LOCKS\s+WOULD FREE/);
    expect(table.stdout).toMatch(/^TOTAL\s+4\s+0\s+0\s+0\s+\S+/m);
    expect(table.stdout).toContain(`would delete w1: .previous/${before[0]![0]!}`);
    expect(table.stdout).toContain('dry run, nothing deleted');
  });

  it('--older-than 0s --keep 0 deletes old snapshots but never live, and a pinned snapshot stays', async () => {
    const { home, env } = await fleet();
    const w1 = previous(home, 'w1');
    // Pin the older of w1's two snapshots (1.0.0, displaced by the 1.1.0 install).
    writeFileSync(join(rootOf(home, 'w1'), '.meta', `${w1[0]!}.pin`), '');
    const liveBefore = { w1: await listVersions(env, 'w1'), w3: await listVersions(env, 'w3') };
    expect(liveBefore.w1).toEqual([{ name: 'hello-skills', version: '1.0.0', complete: true }]);

    const r = await pluginctl(['sweep', '--older-than', '0s', '--keep', '0', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const s = r.json as unknown as SweepJson;
    expect(s.dryRun).toBe(false);
    expect(s.hosts.map((h) => [h.workspace, h.counts])).toEqual([
      ['w1', { ...ZERO, previous: 1 }],
      ['w2', { ...ZERO, previous: 1 }],
      ['w3', { ...ZERO, previous: 1 }],
    ]);
    expect(previous(home, 'w1')).toEqual([w1[0]]);
    expect(previous(home, 'w2')).toEqual([]);
    expect(previous(home, 'w3', 'home/ubuntu/.hermes/plugins')).toEqual([]);
    // Live untouched, complete.
    expect(await listVersions(env, 'w1')).toEqual(liveBefore.w1);
    expect(await listVersions(env, 'w3')).toEqual(liveBefore.w3);
    expect(existsSync(join(rootOf(home, 'w1'), 'hello-skills', '.complete'))).toBe(true);

    // Again: nothing left to delete.
    const again = await pluginctl(['sweep', '--older-than', '0s', '--keep', '0', '--json'], env);
    expect(again.code).toBe(0);
    expect((again.json as unknown as SweepJson).totals).toEqual({ counts: ZERO, bytes: 0 });

    // The pinned snapshot is still a rollback target.
    const back = await pluginctl(['rollback', 'hello-skills', '--workspace', 'w1', '--json'], env);
    expect(back.code, back.stdout).toBe(0);
    expect(await listVersions(env, 'w1')).toEqual([{ name: 'hello-skills', version: '1.0.0', complete: true }]);
  });

  it('--keep 1 (the default) keeps the newest snapshot of each plugin', async () => {
    const { home, env } = await fleet();
    const w1 = previous(home, 'w1');
    const r = await pluginctl(['sweep', '--older-than', '0s', '--json'], env);
    expect(r.code).toBe(0);
    expect((r.json as unknown as SweepJson).totals.counts).toEqual({ ...ZERO, previous: 1 });
    expect(previous(home, 'w1')).toEqual([w1[1]]);
    expect(previous(home, 'w2')).toHaveLength(1);
  });

  it('a workspace that fails is reported with exit 3; the others are still swept', async () => {
    const { home, env } = await fleet();
    // The first `rm` of a sweep fails (w1's): HostIoError there, w2 and w3 go on.
    const shims = faultShims({ op: 'sweep', command: 'rm', mode: 'fail-once' });
    try {
      const r = await pluginctl(['sweep', '--older-than', '0s', '--keep', '0', '--json'], { ...env, ...shims.env });
      expect(r.code).toBe(3);
      // The failure is on stderr with --json too; stdout is the one object.
      expect(r.stderr).toMatch(/^pluginctl: sweep of workspace w1 failed: HostIoError: /);
      const s = r.json as unknown as SweepJson;
      expect(s.hosts[0]).toMatchObject({ workspace: 'w1', counts: ZERO, bytes: 0, error: { code: 'HostIoError' } });
      expect(s.hosts[0]!.deleted).toBeUndefined();
      expect(s.hosts.slice(1).map((h) => [h.workspace, h.counts.previous, h.error])).toEqual([
        ['w2', 1, undefined],
        ['w3', 1, undefined],
      ]);
      expect(previous(home, 'w2')).toEqual([]);

      const human = await pluginctl(['sweep', '--older-than', '0s', '--keep', '0'], { ...env, ...shims.env });
      // fail-once has fired: this run succeeds and sweeps what is left on w1.
      expect(human.code).toBe(0);
    } finally {
      shims.cleanup();
    }
  });

  describe('bad input', () => {
    let shared: { home: string; env: Record<string, string> };
    beforeAll(async () => {
      shared = await fleet();
    });

    it.each([
      [['--older-than', '1w']],
      [['--older-than', '7']],
      [['--older-than', '-1d']],
      [['--older-than', '']],
      [['--keep', '-1']],
      [['--keep', 'x']],
      [['--bogus']],
    ])('%j exits 2 and deletes nothing', async (args) => {
      const { home, env } = shared;
      const before = previous(home, 'w1');
      expect(before).toHaveLength(2);
      const r = await pluginctl(['sweep', '--older-than', '0s', '--keep', '0', ...args, '--json'], env);
      expect(r.code).toBe(2);
      // The sweep report's shape, with nothing swept and the error.
      expect(Object.keys(r.json!)).toEqual(['dryRun', 'olderThan', 'keepNewest', 'hosts', 'totals', 'error']);
      expect(r.json).toMatchObject({ hosts: [], totals: { counts: ZERO, bytes: 0 }, error: { code: 'InvalidInput' } });
      const human = await pluginctl(['sweep', '--older-than', '0s', '--keep', '0', ...args], env);
      expect(human.code).toBe(2);
      expect(human.stderr).toMatch(/^pluginctl: .+\n {2}hint: .+\n$/);
      expect(previous(home, 'w1')).toEqual(before);
    });
  });

  it('with no workspace registered: exit 0, nothing to do', async () => {
    const home = join(base, `home-${counter++}`);
    const r = await pluginctl(['sweep', '--json'], { PLUGINCTL_HOME: home });
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ dryRun: false, olderThan: '7d', keepNewest: 1, hosts: [], totals: { counts: ZERO, bytes: 0 } });
    const human = await pluginctl(['sweep'], { PLUGINCTL_HOME: home });
    expect(human.stdout).toMatch(/no workspaces registered in .*workspaces\.json/);
  });
});
