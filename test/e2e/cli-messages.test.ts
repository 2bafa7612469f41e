/**
 * What pluginctl says when it does not succeed: every refusal on stderr (with --json too, the
 * object staying on stdout), a usage error as one message and a hint, `--version`, and
 * `pluginctl serve` refusing a busy port or a short token in one line and exit 2.
 */
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostileCorpus } from '../fixtures/hostile-tarballs.ts';
import { pluginctl, pluginctlProcess, type CliResult } from '../helpers/cli.ts';
import { writePluginDir } from '../helpers/plugin-versions.ts';
import { freshHomes } from '../helpers/fresh-homes.ts';

const freshHome = freshHomes('cli-messages-');

/** A refusal as the contract has it: exit 2, `pluginctl: …` and a hint on stderr, nothing of it on stdout. */
function expectRefusedOnStderr(r: CliResult, message: RegExp): void {
  expect(r.code, r.stdout + r.stderr).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).toMatch(/^pluginctl: /m);
  expect(r.stderr).toMatch(/^ {2}hint: \S/m);
  expect(r.stdout).not.toMatch(message);
}

/** With --json: the same message on stderr, and stdout exactly one JSON object carrying the error. */
function expectJsonRefusal(r: CliResult, code: string): void {
  expect(r.code, r.stdout + r.stderr).toBe(2);
  expect(r.stdout.trim().split('\n')).toHaveLength(1);
  expect(r.json).toMatchObject({ error: { code } });
  expect(r.stderr).toMatch(/^pluginctl: .+\n {2}hint: \S/m);
}

describe('refusals go to stderr', () => {
  it('install: a manifest refused inside the workflow (Prepare), with and without --json', async () => {
    const home = freshHome();
    const dir = await writePluginDir(join(home, 'src'), { name: 'evil', version: '1.0.0' });
    writeFileSync(join(dir, 'plugin.yaml'), 'name: "../../etc"\nversion: 1.0.0\n');
    const human = await pluginctl(['install', dir, '--workspace', 'w'], { PLUGINCTL_HOME: home });
    expectRefusedOnStderr(human, /refused: InvalidManifest: plugin\.yaml: name/);
    // The progress lines stay on stdout.
    expect(human.stdout).toMatch(/✗ Prepare\s+\d+ ms\s+InvalidManifest/);
    expectJsonRefusal(await pluginctl(['install', dir, '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home }), 'InvalidManifest');
  });

  it('install: a hostile tarball, with and without --json', async () => {
    const home = freshHome();
    const hostile = hostileCorpus().find((c) => !c.limits && c.expect === 'HostileTarball')!;
    const file = join(home, 'hostile.tar.gz');
    writeFileSync(file, hostile.tarball);
    expectRefusedOnStderr(await pluginctl(['install', file, '--workspace', 'w'], { PLUGINCTL_HOME: home }), new RegExp(`refused: ${hostile.expect}`));
    expectJsonRefusal(await pluginctl(['install', file, '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home }), hostile.expect);
  });

  it('uninstall and rollback: refused inside the workflow (nothing installed, nothing to roll back to)', async () => {
    const home = freshHome();
    expect((await pluginctl(['install', 'local://hello-skills', '--workspace', 'w'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' })).code).toBe(0);
    for (const command of ['uninstall', 'rollback']) {
      const human = await pluginctl([command, 'not-here', '--workspace', 'w'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' });
      expectRefusedOnStderr(human, /refused: \w+: /);
      const json = await pluginctl([command, 'not-here', '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' });
      expect(json.json).toMatchObject({ status: 'refused' });
      expectJsonRefusal(json, (json.json!.error as { code: string }).code);
    }
  });

  it('uninstall, rollback, list: refused before any workflow (unknown workspace, bad name), with and without --json', async () => {
    const home = freshHome();
    for (const args of [
      ['uninstall', 'p', '--workspace', 'nowhere'],
      ['rollback', 'p', '--workspace', 'nowhere'],
      ['list', '--workspace', '../x'],
    ]) {
      expectRefusedOnStderr(await pluginctl(args, { PLUGINCTL_HOME: home }), /pluginctl: /);
      const json = await pluginctl([...args, '--json'], { PLUGINCTL_HOME: home });
      expectJsonRefusal(json, (json.json!.error as { code: string }).code);
    }
  });

  it('rollout and sweep: refusals on stderr, with and without --json', async () => {
    const home = freshHome();
    for (const args of [
      ['rollout', join(home, 'no-such-dir'), '--all'],
      ['rollout', 'local://hello-skills', '--canary', '0', '--all'],
      ['sweep', '--older-than', '1w'],
    ]) {
      const human = await pluginctl(args, { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' });
      expect(human.code, human.stdout + human.stderr).toBe(2);
      expect(human.stderr).toMatch(/^pluginctl: .+\n {2}hint: \S/m);
      const json = await pluginctl([...args, '--json'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' });
      expectJsonRefusal(json, (json.json!.error as { code: string }).code);
    }
  });
});

describe('sweep --json refusals have the sweep report shape', () => {
  it.each([
    [['--older-than', '1w'], { olderThan: '1w', keepNewest: 1, dryRun: false }],
    [['--keep', 'x', '--dry-run'], { olderThan: '7d', keepNewest: null, dryRun: true }],
    [['--older-than=2d', '--keep=3', '--bogus'], { olderThan: '2d', keepNewest: 3, dryRun: false }],
  ])('%j', async (args, asked) => {
    const r = await pluginctl(['sweep', ...args, '--json'], { PLUGINCTL_HOME: freshHome() });
    expect(r.code).toBe(2);
    expect(Object.keys(r.json!)).toEqual(['dryRun', 'olderThan', 'keepNewest', 'hosts', 'totals', 'error']);
    expect(r.json).toEqual({ ...asked, hosts: [], totals: { counts: { previous: 0, staging: 0, failed: 0, locks: 0 }, bytes: 0 }, error: { code: 'InvalidInput', message: expect.any(String), hint: expect.any(String) } });
  });
});

describe('usage errors and --version', () => {
  it.each([
    [['frobnicate'], 'pluginctl --help'],
    [['install', 'local://hello-skills'], 'pluginctl install --help'],
    [['list', '--workspace', 'w', '--bogus'], 'pluginctl list --help'],
    [['sweep', '--keep'], 'pluginctl sweep --help'],
  ])('%j: one message and a hint, no usage dump, exit 2', async (args, help) => {
    const r = await pluginctl(args, { PLUGINCTL_HOME: freshHome() });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^pluginctl: [^\\n]+\\n {2}hint: see ${help.replace(/ /g, ' ')}\\n$`));
    expect(r.stderr).not.toMatch(/Usage:|^error:/m);
  });

  it('pluginctl --version prints the package version and exits 0 (real process)', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await pluginctlProcess([flag], {});
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`${pkg.version}\n`);
    }
  }, 60_000);
});

describe('pluginctl serve refuses to start, in one line and exit 2', () => {
  it('a token shorter than 32 characters, or none', async () => {
    for (const token of ['short', 'x'.repeat(31), undefined]) {
      const r = await pluginctl(['serve', '--port', '0'], { PLUGINCTL_HOME: freshHome(), PLUGINCTL_TOKEN: token });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^pluginctl: PLUGINCTL_TOKEN .+\n {2}hint: export PLUGINCTL_TOKEN=\$\(openssl rand -hex 32\)/);
    }
  });

  it('a port already in use (real process: no stack trace)', async () => {
    const holder = createServer().listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const port = (holder.address() as AddressInfo).port;
    try {
      const r = await pluginctlProcess(['serve', '--port', String(port)], { PLUGINCTL_HOME: freshHome(), PLUGINCTL_TOKEN: 'a'.repeat(64) });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toBe(`pluginctl: port ${port} on 127.0.0.1 is already in use\n  hint: stop what listens there, or pick another port: pluginctl serve --port <n> (0 picks a free one)\n`);
    } finally {
      holder.close();
    }
  }, 60_000);
});
