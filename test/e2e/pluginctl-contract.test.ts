/**
 * pluginctl's contract, end to end on the embedded default: exit codes 0/2/3/4/5, the --json
 * shape, the hostile corpus refused with exit 2 and nothing written, hostile names refused
 * before any shell runs.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostileCorpus } from '../fixtures/hostile-tarballs.ts';
import { pluginctl, pluginctlProcess } from '../helpers/cli.ts';
import { faultShims } from '../helpers/fault-shims.ts';
import { writePluginDir } from '../helpers/plugin-versions.ts';
import { freshHomes } from '../helpers/fresh-homes.ts';

const freshHome = freshHomes('pluginctl-contract-');

const JSON_KEYS = ['status', 'workspace', 'plugin', 'version', 'sha256', 'stamp', 'execution', 'steps'];

describe('pluginctl install (real process)', () => {
  it('installs the bundled example, prints each step with timing, exits 0', async () => {
    const home = freshHome();
    const r = await pluginctlProcess(['install', 'local://hello-skills@1.0.0', '--workspace', 'demo'], { PLUGINCTL_HOME: home });
    expect(r.code, r.stderr).toBe(0);
    for (const step of ['Prepare', 'AcquireLock', 'StageOnHost', 'SnapshotLive', 'SwapIntoPlace', 'VerifyLive', 'WriteMarker', 'ReleaseLock', 'NotifyInstalled']) {
      expect(r.stdout).toMatch(new RegExp(`✓ ${step}\\s+\\d+ ms`));
    }
    expect(r.stdout).toMatch(/installed hello-skills 1\.0\.0 on demo/);
    const marker = JSON.parse(readFileSync(join(home, 'workspaces/demo/root/configs/plugins/hello-skills/.complete'), 'utf8')) as Record<string, string>;
    expect(Object.keys(marker).sort()).toEqual(['execution', 'installedAt', 'name', 'sha256', 'stamp', 'version']);
    expect(marker).toMatchObject({ name: 'hello-skills', version: '1.0.0' });
    const events = readFileSync(join(home, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { detailType: string });
    expect(events.map((e) => e.detailType)).toEqual(['Plugin Installed']);
  });

  it('--json prints exactly one object with the contract keys', async () => {
    const home = freshHome();
    const r = await pluginctlProcess(['install', 'local://hello-skills', '--workspace', 'demo', '--json'], { PLUGINCTL_HOME: home });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(Object.keys(r.json!)).toEqual(JSON_KEYS);
    expect(r.json).toMatchObject({ status: 'succeeded', workspace: 'demo', plugin: 'hello-skills', version: '1.1.0' });
    expect(r.json!.execution).toBe(`demo-hello-skills-${String(r.json!.stamp)}`);
    expect((r.json!.steps as { name: string; status: string; ms: number }[]).every((s) => s.status === 'succeeded' && s.ms >= 0)).toBe(true);
  });
});

describe('exit codes', () => {
  it('3: a step failing after the swap rolls back (status rolled-back) and live stays as it was', async () => {
    const home = freshHome();
    expect((await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w'], { PLUGINCTL_HOME: home })).code).toBe(0);
    const shims = faultShims({ op: 'snapshot', command: 'mv', mode: 'fail' });
    try {
      const r = await pluginctl(['install', 'local://hello-skills@1.1.0', '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home, ...shims.env });
      expect(r.code).toBe(3);
      expect(r.json).toMatchObject({ status: 'rolled-back', plugin: 'hello-skills', version: '1.1.0', error: { code: 'HostIoError' } });
    } finally {
      shims.cleanup();
    }
    const list = await pluginctl(['list', '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home });
    expect(list.json).toMatchObject({ plugins: [{ name: 'hello-skills', version: '1.0.0', complete: true }], degraded: false });
  });

  it('3: a step failing before live is touched is a plain failure (status failed)', async () => {
    const home = freshHome();
    expect((await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w'], { PLUGINCTL_HOME: home })).code).toBe(0);
    const shims = faultShims({ op: 'stage', command: 'tar', mode: 'fail' });
    try {
      const r = await pluginctl(['install', 'local://hello-skills@1.1.0', '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home, ...shims.env });
      expect(r.code).toBe(3);
      expect(r.json).toMatchObject({ status: 'failed', plugin: 'hello-skills', version: '1.1.0', error: { code: 'ExtractFailed' } });
      const events = readFileSync(join(home, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { detailType: string; detail: unknown });
      const last = events.at(-1)!;
      expect(last.detailType).toBe('Plugin Install Failed');
      expect(last.detail).toMatchObject({ changed: false });
    } finally {
      shims.cleanup();
    }
    const list = await pluginctl(['list', '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home });
    expect(list.json).toMatchObject({ plugins: [{ name: 'hello-skills', version: '1.0.0', complete: true }], degraded: false });
  });

  it('4: another operation holds the plugin lock', async () => {
    const home = freshHome();
    expect((await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w'], { PLUGINCTL_HOME: home })).code).toBe(0);
    const lock = join(home, 'workspaces/w/root/configs/plugins/.locks/hello-skills');
    const hostname = readFileSync('/proc/sys/kernel/hostname', 'utf8').trim();
    // Held by this (live) test process for another 10 minutes.
    writeFileSync(lock, `stamp=20261125T000000Z-hold\nowner=someone-else\npid=${process.pid}\nhost=${hostname}\nexpires=${Math.floor(Date.now() / 1000) + 600}\n`);
    const r = await pluginctl(['install', 'local://hello-skills@1.1.0', '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' });
    expect(r.code).toBe(4);
    expect(r.json).toMatchObject({ status: 'busy', error: { code: 'LockBusy' } });
    expect(readFileSync(lock, 'utf8')).toContain('someone-else');
  });

  it('4 → 0: a lock whose holder process is gone is taken over', async () => {
    const home = freshHome();
    expect((await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w'], { PLUGINCTL_HOME: home })).code).toBe(0);
    const lock = join(home, 'workspaces/w/root/configs/plugins/.locks/hello-skills');
    const hostname = readFileSync('/proc/sys/kernel/hostname', 'utf8').trim();
    // pid 2^22-1 is above the default pid_max: never a live process.
    writeFileSync(lock, `stamp=20261125T000000Z-dead\nowner=crashed\npid=4194303\nhost=${hostname}\nexpires=${Math.floor(Date.now() / 1000) + 600}\n`);
    const r = await pluginctl(['install', 'local://hello-skills@1.1.0', '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' });
    expect(r.code).toBe(0);
    expect(existsSync(lock)).toBe(false);
  });

  it('5: the rollback itself fails; the message says what to do', async () => {
    const home = freshHome();
    expect((await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w'], { PLUGINCTL_HOME: home })).code).toBe(0);
    const shims = faultShims({ op: ['snapshot', 'rollback'], command: 'mv', mode: 'fail' });
    try {
      const r = await pluginctl(['install', 'local://hello-skills@1.1.0', '--workspace', 'w'], { PLUGINCTL_HOME: home, ...shims.env });
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/operator needed: RollbackFailed/);
      expect(r.stderr).toMatch(/hint: .*\.previous\/hello-skills\./);
    } finally {
      shims.cleanup();
    }
  });

  it('5: the marker cannot be written; the hint says how to finish', async () => {
    const home = freshHome();
    const shims = faultShims({ op: 'mark', command: 'mv', mode: 'fail' });
    try {
      const r = await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home, ...shims.env });
      expect(r.code).toBe(5);
      expect(r.json).toMatchObject({ status: 'needs-operator', error: { code: 'MarkerWriteFailed' } });
      expect((r.json!.error as { hint: string }).hint).toMatch(/\/hello-skills.*\.complete.*install the same source again/);
    } finally {
      shims.cleanup();
    }
  });

  it('2: external workspaces are refused with the download hint', async () => {
    const r = await pluginctl(['install', 'local://hello-skills', '--workspace', 'ext', '--runtime', 'external', '--json'], { PLUGINCTL_HOME: freshHome() });
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ status: 'refused', error: { code: 'ExternalRuntime' } });
    expect((r.json!.error as { hint: string }).hint).toContain('pluginctl publish');
    expect((r.json!.error as { hint: string }).hint).toContain('GET /workspaces/{id}/plugins/{name}/download');
  });

  it('2: a pinned sha256 that does not match', async () => {
    const r = await pluginctl(['install', 'local://hello-skills', '--workspace', 'w', '--sha256', '0'.repeat(64), '--json'], { PLUGINCTL_HOME: freshHome() });
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ status: 'refused', error: { code: 'ChecksumMismatch' } });
  });

  it('2: a plugin whose runtimes exclude the workspace runtime', async () => {
    const home = freshHome();
    const dir = await writePluginDir(join(home, 'src'), { name: 'hermes-only', version: '1.0.0' });
    writeFileSync(join(dir, 'plugin.yaml'), 'name: hermes-only\nversion: 1.0.0\nruntimes: [hermes]\n');
    const r = await pluginctl(['install', dir, '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home });
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ error: { code: 'RuntimeMismatch' } });
  });

  it('2: usage errors', async () => {
    const r = await pluginctl(['install', 'local://hello-skills', '--json'], { PLUGINCTL_HOME: freshHome() });
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ status: 'refused', error: { code: 'InvalidInput' } });
    expect((await pluginctl(['frobnicate'], { PLUGINCTL_HOME: freshHome() })).code).toBe(2);
  });
});

describe('hostile input', () => {
  const corpus = hostileCorpus().filter((c) => !c.limits);

  it(`refuses every tarball of the hostile corpus (${corpus.length} cases) with exit 2, writing nothing`, async () => {
    expect(corpus.length).toBeGreaterThanOrEqual(25);
    const home = freshHome();
    const files = join(home, 'corpus');
    mkdirSync(files);
    for (const c of corpus) {
      const file = join(files, `${c.name.replace(/[^A-Za-z0-9]+/g, '-')}.tar.gz`);
      writeFileSync(file, c.tarball);
      const r = await pluginctl(['install', file, '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home });
      expect({ name: c.name, code: r.code, error: (r.json?.error as { code: string } | undefined)?.code }).toEqual({ name: c.name, code: 2, error: c.expect });
    }
    // Refused in Prepare: the workspace's host root has no plugins root at all, and no artifact was kept.
    expect(existsSync(join(home, 'workspaces/w/root/configs'))).toBe(false);
    expect(existsSync(join(home, 'artifacts/artifacts'))).toBe(false);
    expect(existsSync('/tmp/x')).toBe(false);
  }, 180_000);

  it('refuses hostile plugin and workspace names before any shell runs', async () => {
    const home = freshHome();
    // A recording `sh` first on PATH: every host step starts `sh`, so an empty log means no shell ran.
    const shimDir = join(home, 'shim');
    mkdirSync(shimDir);
    const log = join(home, 'sh.log');
    writeFileSync(join(shimDir, 'sh'), `#!/bin/sh\necho "$*" >> '${log}'\nexec /bin/sh "$@"\n`);
    chmodSync(join(shimDir, 'sh'), 0o755);
    const env = { PLUGINCTL_HOME: home, PATH: `${shimDir}:${process.env.PATH ?? ''}` };
    const hostile = ['../x', 'a;rm -rf /', '$(id)', 'a\nb', '`id`', 'a b', '-rf', 'x/../../y', ''];
    for (const bad of hostile) {
      for (const args of [
        ['install', 'local://hello-skills', '--workspace', bad, '--json'],
        ['rollback', bad, '--workspace', 'w', '--json'],
        ['uninstall', bad, '--workspace', 'w', '--json'],
        ['list', '--workspace', bad, '--json'],
        ['install', `local://${bad}`, '--workspace', 'w', '--json'],
      ]) {
        const r = await pluginctl(args, env);
        expect({ args, code: r.code }).toEqual({ args, code: 2 });
      }
    }
    const manifestDir = await writePluginDir(join(home, 'src'), { name: 'evil', version: '1.0.0' });
    writeFileSync(join(manifestDir, 'plugin.yaml'), 'name: "../../etc"\nversion: 1.0.0\n');
    const r = await pluginctl(['install', manifestDir, '--workspace', 'w', '--json'], env);
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ error: { code: 'InvalidManifest' } });
    expect(existsSync(log) ? readFileSync(log, 'utf8') : '').toBe('');
    // The detector works: a valid install does run the shell.
    expect((await pluginctl(['install', 'local://hello-skills', '--workspace', 'w'], env)).code).toBe(0);
    expect(readFileSync(log, 'utf8')).toMatch(/plugin-host\.sh lock /);
  });
});
