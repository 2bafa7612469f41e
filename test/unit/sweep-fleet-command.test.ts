/**
 * The fleet sweep's one Run Command, without SSM: the embedded wrapper is shellcheck-clean, every
 * value is validated before it is quoted into the command, and the command line run with bash
 * (as the SSM agent would) sweeps each root that exists and prints one compact line per root.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import type { SweepRules } from '../../lambdas/core/host/host-steps.ts';
import { FLEET_ROOTS, FLEET_SWEEP_WRAPPER, fleetSweepCommand, parseFleetOutput } from '../../lambdas/core/sweep/fleet-sweep.ts';

const RULES: SweepRules = { previousBefore: '20260301T000000Z', keepNewest: 1, stagingBefore: '20260301T000000Z', failedBefore: '20260301T000000Z', nowEpochSeconds: 1_800_000_000, dryRun: false };

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'fleet-cmd-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

function run(commandLine: string, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', commandLine], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function snapshot(root: string, entry: string, bytes = 3000): Promise<void> {
  await mkdir(join(root, '.previous', entry), { recursive: true });
  await writeFile(join(root, '.previous', entry, 'data'), 'x'.repeat(bytes));
}

describe('the fleet sweep command', () => {
  it('its wrapper is shellcheck-clean POSIX sh', () => {
    const check = spawnSync('shellcheck', ['-s', 'sh', '-'], { input: `#!/bin/sh\n${FLEET_SWEEP_WRAPPER}`, encoding: 'utf8' });
    if (check.error) {
      // shellcheck is installed by .ci/run; say so rather than pass silently.
      expect.soft(check.error, 'shellcheck is not installed').toBeUndefined();
      return;
    }
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('sweeps every runtime root by default', () => {
    expect(FLEET_ROOTS).toEqual(['/configs/plugins', '/home/ubuntu/.hermes/plugins', '/opt/configs/plugins']);
    const { commandLine, roots } = fleetSweepCommand(RULES);
    expect(roots).toEqual(FLEET_ROOTS);
    expect(commandLine.startsWith("sh -c 'set -u")).toBe(true);
    for (const r of FLEET_ROOTS) expect(commandLine).toContain(` '${r}'`);
  });

  it.each<[string, () => unknown]>([
    ['a bad cutoff', () => fleetSweepCommand({ ...RULES, previousBefore: '$(reboot)' })],
    ['a negative keep', () => fleetSweepCommand({ ...RULES, keepNewest: -1 })],
    ['a fractional now', () => fleetSweepCommand({ ...RULES, nowEpochSeconds: 1.5 })],
    ['a relative root', () => fleetSweepCommand(RULES, ['configs/plugins'])],
    ['a root with ..', () => fleetSweepCommand(RULES, ['/configs/../etc'])],
    ['a root with a quote', () => fleetSweepCommand(RULES, ["/configs/'x"])],
    ['the root /', () => fleetSweepCommand(RULES, ['/'])],
    ['no roots', () => fleetSweepCommand(RULES, [])],
    ['a prefix with ..', () => fleetSweepCommand(RULES, FLEET_ROOTS, '../x')],
    ['a prefix with $()', () => fleetSweepCommand(RULES, FLEET_ROOTS, '/tmp/$(id)')],
    ['a prefix ending in /', () => fleetSweepCommand(RULES, FLEET_ROOTS, '/tmp/x/')],
  ])('refuses %s with InvalidInput', (_what, fn) => {
    let error: unknown;
    try {
      fn();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PluginError);
    expect((error as PluginError).code).toBe('InvalidInput');
  });

  it('run with bash in an instance directory: sweeps each root present, one compact line per root', async () => {
    const instance = join(base, 'i-1');
    const claude = join(instance, 'configs', 'plugins');
    const hermes = join(instance, 'home', 'ubuntu', '.hermes', 'plugins');
    for (const d of ['01', '02', '03']) await snapshot(claude, `p.202601${d}T000000Z-aaaa`);
    // Many deletions: the script's own result line is long, the summary stays short.
    for (let i = 0; i < 300; i++) await snapshot(hermes, `h${i}.20260101T000000Z-aaaa`, 10);
    for (let i = 0; i < 300; i++) await snapshot(hermes, `h${i}.20260102T000000Z-aaaa`, 10);
    const { commandLine } = fleetSweepCommand(RULES, FLEET_ROOTS, '.');
    const r = await run(commandLine, instance);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.length).toBeLessThan(600);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    const parsed = parseFleetOutput(r.stdout);
    expect(parsed.ended).toBe(true);
    expect(parsed.errors).toEqual([]);
    expect(parsed.roots).toEqual([
      { root: '/configs/plugins', counts: { previous: 2, staging: 0, failed: 0, locks: 0 }, bytes: expect.any(Number) },
      { root: '/home/ubuntu/.hermes/plugins', counts: { previous: 300, staging: 0, failed: 0, locks: 0 }, bytes: expect.any(Number) },
    ]);
    expect(parsed.roots[0]!.bytes).toBeGreaterThanOrEqual(2 * 3000);
    expect(existsSync(join(claude, '.previous', 'p.20260103T000000Z-aaaa'))).toBe(true);
    expect(existsSync(join(claude, '.previous', 'p.20260101T000000Z-aaaa'))).toBe(false);
    // Again: nothing left, still one line per root.
    const again = parseFleetOutput((await run(commandLine, instance)).stdout);
    expect(again.roots.map((x) => x.counts.previous)).toEqual([0, 0]);
  });

  it('reports each root the script refuses (exit status and code) and exits 1', async () => {
    // The instance's working directory holds a ':', which the script's root validation refuses.
    const instance = join(base, 'i:2');
    await snapshot(join(instance, 'configs', 'plugins'), 'p.20260101T000000Z-aaaa');
    await snapshot(join(instance, 'opt', 'configs', 'plugins'), 'p.20260101T000000Z-aaaa');
    const { commandLine } = fleetSweepCommand(RULES, FLEET_ROOTS, '.');
    const r = await run(commandLine, instance);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('"exit":10,"code":"InvalidInput"');
    const parsed = parseFleetOutput(r.stdout);
    expect(parsed.ended).toBe(true);
    expect(parsed.roots).toEqual([]);
    expect(parsed.errors).toEqual([
      expect.stringMatching(/^\/configs\/plugins: InvalidInput: invalid plugins root$/),
      expect.stringMatching(/^\/opt\/configs\/plugins: InvalidInput: invalid plugins root$/),
    ]);
    expect(existsSync(join(instance, 'configs', 'plugins', '.previous', 'p.20260101T000000Z-aaaa'))).toBe(true);
  });

  it('parses lines among SSM noise and flags a missing end line', () => {
    const out = [
      'PLUGINSWEEP {"root":"/configs/plugins","ok":true,"counts":{"previous":2,"staging":1,"failed":0,"locks":3},"bytes":12288}',
      'noise',
      'PLUGINSWEEP {"root":"/opt/configs/plugins","ok":false,"exit":21,"code":"HostIoError","message":"cannot delete .previous/x"}',
      'PLUGINSWEEP {broken',
      '',
      '----------ERROR-------',
      'something on stderr',
    ].join('\n');
    expect(parseFleetOutput(out)).toEqual({
      roots: [{ root: '/configs/plugins', counts: { previous: 2, staging: 1, failed: 0, locks: 3 }, bytes: 12288 }],
      errors: ['/opt/configs/plugins: HostIoError: cannot delete .previous/x', 'unreadable summary line "PLUGINSWEEP {broken"'],
      ended: false,
    });
  });
});
