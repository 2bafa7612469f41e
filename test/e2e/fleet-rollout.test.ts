/**
 * Fleet rollouts end to end on the embedded default (issue 11, "Done when"): statemachine/
 * rollout.asl.json run by the local runner, each target's install the real install workflow as
 * its own (in-process) execution, hosts that really fail (an `mv` shim inside the snapshot step
 * on chosen workspaces, so their installs swap, fail and roll back for real). Driven through
 * bin/pluginctl.js for the contract (exit codes, the --json shape), in-process otherwise.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localDeps, type LocalDeps } from '../../lambdas/commons/local-deps.ts';
import { HISTORY_BUDGET } from '../../lambdas/core/rollout/history-budget.ts';
import { planRollout } from '../../lambdas/core/rollout/plan-rollout.ts';
import { acquireRolloutLock } from '../../lambdas/core/rollout/rollout-lock.ts';
import type { RolloutRecord } from '../../lambdas/core/rollout/rollout-record.ts';
import { readRolloutReport } from '../../lambdas/core/rollout/rollout-report.ts';
import { checkRolloutRequest, storeRolloutRequest } from '../../lambdas/core/rollout/rollout-request.ts';
import { runWorkflow, type RunOutcome } from '../../lambdas/core/workflow/local-runner.ts';
import { listPlugins } from '../../lambdas/core/steps/list-plugins.ts';
import { PLUGINCTL, pluginctl, pluginctlProcess, type CliResult } from '../helpers/cli.ts';
import { fleetFaults, type FleetFaults } from '../helpers/fleet-faults.ts';
import { writePluginDir } from '../helpers/plugin-versions.ts';

const FLEET = Array.from({ length: 30 }, (_, i) => `ws${String(i + 1).padStart(2, '0')}`);
const CONTRACT_KEYS = ['status', 'rollout', 'plugin', 'version', 'sha256', 'counts', 'workspaces'];
const COUNT_KEYS = ['targets', 'succeeded', 'failed', 'skipped', 'notStarted', 'rolledBack'];

interface Fleet {
  home: string;
  deps: LocalDeps;
  v1: string;
  v2: string;
  env: Record<string, string>;
  faults: FleetFaults;
  root(ws: string): string;
  /** Live version of plugin p on each workspace, with its completeness. */
  live(): Promise<Record<string, string>>;
  events(): { detailType: string; detail: Record<string, unknown> }[];
}

const fleets: Fleet[] = [];
afterAll(async () => {
  for (const f of fleets) {
    f.faults.cleanup();
    await rm(f.home, { recursive: true, force: true });
  }
});

/** 30 workspaces with p 1.0.0 installed and complete (put there by a rollout, as a fleet would be). */
async function fleetOnV1(): Promise<Fleet> {
  const home = await mkdtemp(join(tmpdir(), 'fleet-rollout-'));
  const faults = fleetFaults('snapshot');
  const deps = localDeps({ home, host: { timeoutMs: 60_000 } });
  for (const ws of FLEET) await deps.workspaces.ensure(ws);
  const v1 = await writePluginDir(join(home, 'sources'), { name: 'p', version: '1.0.0' });
  const v2 = await writePluginDir(join(home, 'sources'), { name: 'p', version: '2.0.0' });
  await mkdir(join(home, 'cwd'), { recursive: true });
  const env = { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0', ...faults.env };
  const fleet: Fleet = {
    home,
    deps,
    v1,
    v2,
    env,
    faults,
    root: (ws) => join(home, 'workspaces', ws, 'root', 'configs', 'plugins'),
    live: async () => {
      const out: Record<string, string> = {};
      for (const ws of FLEET) {
        const p = (await listPlugins(deps, ws)).plugins.find((x) => x.name === 'p');
        out[ws] = p ? `${p.version}${p.complete ? '' : ' (incomplete)'}` : 'absent';
      }
      return out;
    },
    events: () => readFileSync(join(home, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { detailType: string; detail: Record<string, unknown> }),
  };
  fleets.push(fleet);
  const setup = await pluginctl(['rollout', v1, '--all', '--max-concurrency', '10', '--rollout-id', 'setup', '--json'], env);
  expect(setup.code, setup.stdout + setup.stderr).toBe(0);
  expect(Object.values(await fleet.live())).toEqual(FLEET.map(() => '1.0.0'));
  return fleet;
}

type Contract = {
  status: string;
  rollout: string;
  plugin: string;
  version: string;
  sha256: string;
  counts: Record<string, number>;
  workspaces: { workspace: string; status: string; execution?: string; error?: { code: string; message: string; hint: string } }[];
};

function contract(r: CliResult): Contract {
  expect(r.stdout.trim().split('\n'), r.stdout).toHaveLength(1);
  expect(Object.keys(r.json!)).toEqual(CONTRACT_KEYS);
  const c = r.json as unknown as Contract;
  expect(Object.keys(c.counts)).toEqual(COUNT_KEYS);
  for (const w of c.workspaces) {
    expect(['succeeded', 'failed', 'skipped', 'not-started', 'rolled-back']).toContain(w.status);
    expect(Object.keys(w).every((k) => ['workspace', 'status', 'execution', 'error'].includes(k))).toBe(true);
    if (w.error) expect(Object.keys(w.error)).toEqual(['code', 'message', 'hint']);
  }
  return c;
}

const byStatus = (c: Contract, status: string) => c.workspaces.filter((w) => w.status === status).map((w) => w.workspace);

// Waves with canary 1 and --max-concurrency 3: [ws01] [ws02-04] [ws05-07] [ws08-10] …; ws05
// fails (1 ≤ maxErrors 1: go on), ws09 and ws10 fail (3 > 1: halt after that wave), ws20 is
// never reached.
const BROKEN = ['ws05', 'ws09', 'ws10', 'ws20'];
const UPGRADED = ['ws01', 'ws02', 'ws03', 'ws04', 'ws06', 'ws07', 'ws08'];
const FAILED = ['ws05', 'ws09', 'ws10'];
const LEFT = FLEET.slice(10);

describe('pluginctl rollout: 30 workspaces on v1 → v2, --max-concurrency 3 --max-errors 1, 4 hosts failing', () => {
  let fleet: Fleet;
  let first: Contract;
  beforeAll(async () => {
    fleet = await fleetOnV1();
    fleet.faults.breakRoots(BROKEN.map(fleet.root));
    const r = await pluginctlProcess(['rollout', fleet.v2, '--all', '--max-concurrency', '3', '--max-errors', '1', '--rollout-id', 'to-v2', '--json'], fleet.env);
    expect(r.code, r.stderr).toBe(3);
    first = contract(r);
  }, 600_000);

  it('halts (exit 3): the failures exceeded maxErrors, and no install started after that wave', () => {
    expect(first).toMatchObject({ status: 'halted', rollout: 'to-v2', plugin: 'p', version: '2.0.0' });
    expect(first.counts).toEqual({ targets: 30, succeeded: 7, failed: 3, skipped: 0, notStarted: 20, rolledBack: 0 });
    expect(byStatus(first, 'succeeded')).toEqual(UPGRADED);
    expect(byStatus(first, 'failed')).toEqual(FAILED);
    expect(byStatus(first, 'not-started')).toEqual(LEFT);
    for (const w of first.workspaces.filter((x) => x.status === 'failed')) {
      expect(w.error!.code).toBe('HostIoError');
      expect(w.execution).toMatch(new RegExp(`^${w.workspace}-p-`));
    }
  });

  it('every succeeded workspace is v2 complete; every failed and every not-started one is v1 complete', async () => {
    const live = await fleet.live();
    for (const ws of UPGRADED) expect(live[ws], ws).toBe('2.0.0');
    for (const ws of [...FAILED, ...LEFT]) expect(live[ws], ws).toBe('1.0.0');
  });

  it('the bus got Started, one Progress per wave and Halted, with counts', () => {
    const mine = fleet.events().filter((e) => e.detailType.startsWith('Plugin Rollout') && e.detail.rollout === 'to-v2');
    expect(mine[0]).toMatchObject({ detailType: 'Plugin Rollout Started', detail: { targets: 30, attempt: 1 } });
    expect(mine.filter((e) => e.detailType === 'Plugin Rollout Progress').map((e) => e.detail.wave)).toEqual([1, 2, 3, 4]);
    expect(mine.at(-1)).toMatchObject({ detailType: 'Plugin Rollout Halted', detail: { status: 'halted', reason: 'max-errors', counts: { succeeded: 7, failed: 3, notStarted: 20 } } });
    // Each matches its schema (docs/events/).
    const ajv = new Ajv({ strict: true, allErrors: true });
    for (const e of mine) {
      const file = `${e.detailType.toLowerCase().replace(/ /g, '-')}.schema.json`;
      const validate = ajv.getSchema(file) ?? ajv.addSchema(JSON.parse(readFileSync(new URL(`../../docs/events/${file}`, import.meta.url), 'utf8')) as object, file).getSchema(file)!;
      expect(validate(e.detail), `${e.detailType}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
  });

  it('after the hosts are repaired, the same rollout id reaches v2 everywhere; the earlier successes are skipped (exit 0)', async () => {
    fleet.faults.repair();
    const r = await pluginctlProcess(['rollout', fleet.v2, '--all', '--max-concurrency', '3', '--max-errors', '1', '--rollout-id', 'to-v2', '--json'], fleet.env);
    expect(r.code, r.stderr).toBe(0);
    const again = contract(r);
    expect(again.status).toBe('succeeded');
    expect(byStatus(again, 'skipped')).toEqual(UPGRADED);
    expect(again.counts).toEqual({ targets: 30, succeeded: 23, failed: 0, skipped: 7, notStarted: 0, rolledBack: 0 });
    expect(Object.values(await fleet.live())).toEqual(FLEET.map(() => '2.0.0'));
  }, 600_000);
});

describe('pluginctl rollout --rollback-on-halt', () => {
  it('puts the workspaces it upgraded back on v1 when it halts', async () => {
    const fleet = await fleetOnV1();
    fleet.faults.breakRoots(BROKEN.map(fleet.root));
    const r = await pluginctl(['rollout', fleet.v2, '--all', '--max-concurrency', '3', '--max-errors', '1', '--rollback-on-halt', '--rollout-id', 'careful', '--json'], fleet.env);
    expect(r.code, r.stderr).toBe(3);
    const c = contract(r);
    expect(c.status).toBe('halted');
    expect(byStatus(c, 'rolled-back')).toEqual(UPGRADED);
    expect(c.counts).toEqual({ targets: 30, succeeded: 0, failed: 3, skipped: 0, notStarted: 20, rolledBack: 7 });
    expect(Object.values(await fleet.live())).toEqual(FLEET.map(() => '1.0.0'));
  }, 600_000);
});

describe('pluginctl rollout: canary, busy, refused', () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await fleetOnV1();
  }, 600_000);

  it('a failing canary halts the rollout with nothing else started', async () => {
    fleet.faults.breakRoots([fleet.root('ws01')]);
    const before = fleet.events().length;
    const r = await pluginctl(['rollout', fleet.v2, '--all', '--max-concurrency', '5', '--max-errors', '10', '--rollout-id', 'canary', '--json'], fleet.env);
    fleet.faults.repair();
    expect(r.code).toBe(3);
    const c = contract(r);
    expect(c.status).toBe('halted');
    expect(byStatus(c, 'failed')).toEqual(['ws01']);
    expect(byStatus(c, 'not-started')).toEqual(FLEET.slice(1));
    expect(Object.values(await fleet.live())).toEqual(FLEET.map(() => '1.0.0'));
    const installs = fleet.events().slice(before).filter((e) => e.detailType.startsWith('Plugin Install'));
    expect(installs.map((e) => e.detail.workspace)).toEqual(['ws01']);
    expect(fleet.events().at(-1)).toMatchObject({ detailType: 'Plugin Rollout Halted', detail: { reason: 'canary-failed' } });
  }, 600_000);

  it('a version whose health check fails halts at the canary: the canary rolled back (HealthCheckFailed, evidence under .failed/), every workspace on v1', async () => {
    const unhealthy = await writePluginDir(join(fleet.home, 'unhealthy'), {
      name: 'p',
      version: '2.0.0',
      healthcheck: { command: 'echo "probe: skill index missing" >&2; exit 1', timeoutSeconds: 10 },
    });
    const before = fleet.events().length;
    const failedDirs = (ws: string) => (existsSync(join(fleet.root(ws), '.failed')) ? readdirSync(join(fleet.root(ws), '.failed')) : []);
    const evidenceBefore = Object.fromEntries(FLEET.map((ws) => [ws, failedDirs(ws)]));
    const r = await pluginctlProcess(['rollout', unhealthy, '--all', '--max-concurrency', '5', '--max-errors', '10', '--rollout-id', 'unhealthy', '--json'], fleet.env);
    expect(r.code, r.stderr).toBe(3);
    const c = contract(r);
    expect(c.status).toBe('halted');
    expect(c.counts).toEqual({ targets: 30, succeeded: 0, failed: 1, skipped: 0, notStarted: 29, rolledBack: 0 });
    const [canary] = c.workspaces.filter((w) => w.status === 'failed');
    expect(canary).toMatchObject({ workspace: 'ws01', error: { code: 'HealthCheckFailed' } });
    expect(canary!.error!.message).toContain('probe: skill index missing');
    expect(Object.values(await fleet.live())).toEqual(FLEET.map(() => '1.0.0'));
    // The new version is kept on the canary as evidence (one more entry under .failed/), nowhere else.
    for (const ws of FLEET) {
      const added = failedDirs(ws).filter((d) => !evidenceBefore[ws]!.includes(d));
      expect(added.length, ws).toBe(ws === 'ws01' ? 1 : 0);
      if (ws === 'ws01') expect(readFileSync(join(fleet.root(ws), '.failed', added[0]!, 'plugin.yaml'), 'utf8')).toContain('version: 2.0.0');
    }
    const mine = fleet.events().slice(before);
    const installs = mine.filter((e) => e.detailType.startsWith('Plugin Install'));
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatchObject({ detailType: 'Plugin Install Failed', detail: { workspace: 'ws01', outcome: 'rolled-back', error: { Error: 'HealthCheckFailed' } } });
    expect(mine.at(-1)).toMatchObject({ detailType: 'Plugin Rollout Halted', detail: { reason: 'canary-failed', counts: { failed: 1, notStarted: 29 } } });
  }, 600_000);

  it('exit 4 while another rollout holds the plugin; nothing started', async () => {
    await acquireRolloutLock(fleet.deps.rollouts, { plugin: 'p', rolloutId: 'elsewhere', pid: process.pid, leaseSeconds: 600, now: new Date() });
    const before = fleet.events().length;
    const r = await pluginctlProcess(['rollout', fleet.v2, '--workspaces', 'ws01,ws02', '--json'], fleet.env);
    expect(r.code, r.stderr).toBe(4);
    expect(r.json).toMatchObject({ status: 'busy', error: { code: 'RolloutBusy' } });
    expect(String((r.json!.error as { message: string }).message)).toContain('elsewhere');
    expect(fleet.events().length).toBe(before);
    const human = await pluginctl(['rollout', fleet.v2, '--workspaces', 'ws01'], fleet.env);
    expect(human.code).toBe(4);
    expect(human.stderr).toMatch(/rollout elsewhere holds plugin p/);
    const lock = join(fleet.home, 'artifacts', 'rollout-locks', 'p.json');
    await rm(lock);
  }, 600_000);

  it.each([
    ['a bad --max-errors', ['--all', '--max-errors', 'ten']],
    ['a percentage over 100', ['--all', '--max-errors', '150%']],
    ['both --workspaces and --all', ['--all', '--workspaces', 'ws01']],
    ['neither --workspaces nor --all', []],
    ['--max-concurrency 0', ['--all', '--max-concurrency', '0']],
    ['an unknown workspace', ['--workspaces', 'ws01,nope']],
  ])('exit 2 on %s, nothing started', async (_what, args) => {
    const before = fleet.events().length;
    const r = await pluginctlProcess(['rollout', fleet.v2, ...args], fleet.env);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr).toMatch(/pluginctl: .+\n {2}hint: /);
    expect(fleet.events().length).toBe(before);
  }, 120_000);

  it('exit 2 on a bad source (missing, or a manifest that is not a plugin), nothing started', async () => {
    const before = fleet.events().length;
    const missing = await pluginctl(['rollout', join(fleet.home, 'no-such-dir'), '--all', '--json'], fleet.env);
    expect(missing.code).toBe(2);
    expect(missing.json).toMatchObject({ status: 'refused', error: { code: 'SourceNotFound' } });
    const bad = await writePluginDir(join(fleet.home, 'bad'), { name: 'Not A Name', version: '1' });
    const invalid = await pluginctl(['rollout', bad, '--all', '--json'], fleet.env);
    expect(invalid.code).toBe(2);
    expect(invalid.json).toMatchObject({ status: 'refused' });
    expect(fleet.events().length).toBe(before);
  }, 120_000);

  it('on a terminal one progress line is rewritten in place; piped, one line per finished workspace', async () => {
    const piped = await pluginctlProcess(['rollout', fleet.v1, '--workspaces', 'ws01,ws02,ws03', '--rollout-id', 'piped'], fleet.env);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).not.toContain('\r');
    for (const ws of ['ws01', 'ws02', 'ws03']) expect(piped.stdout.match(new RegExp(`^ {2}${ws} +skipped$`, 'gm')), ws).toHaveLength(1);
    expect(piped.stdout).toContain('rollout piped of p 1.0.0: succeeded · 3 targets: 0 succeeded, 3 skipped');

    // util-linux script(1) gives the command a pseudo-terminal: stdout.isTTY is true, as for a person.
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const command = [process.execPath, PLUGINCTL, 'rollout', fleet.v1, '--workspaces', 'ws01,ws02,ws03', '--rollout-id', 'on-a-tty'].map(quote).join(' ');
    const tty = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...process.env, ...fleet.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out }));
    });
    expect(tty.code, tty.out).toBe(0);
    expect(tty.out).toContain('\r\x1b[Kp 1.0.0: done 3 · failed 0 · in flight 0 · left 0');
    expect(tty.out).not.toMatch(/^ {2}ws01 +skipped/m);
    expect(tty.out).toContain('rollout on-a-tty of p 1.0.0: succeeded · 3 targets: 0 succeeded, 3 skipped');
  }, 300_000);

  it('after every refusal, every workspace is still v1 complete', async () => {
    expect(Object.values(await fleet.live())).toEqual(FLEET.map(() => '1.0.0'));
  }, 120_000);
});

describe('continue-as-new', () => {
  it('an execution whose history budget is spent hands the rollout to a new execution of the same file, which finishes it', async () => {
    const home = await mkdtemp(join(tmpdir(), 'fleet-continue-'));
    try {
      const deps = localDeps({ home, host: { timeoutMs: 60_000 } });
      for (const ws of ['c1', 'c2', 'c3']) await deps.workspaces.ensure(ws);
      const v1 = await writePluginDir(join(home, 'sources'), { name: 'p', version: '1.0.0' });
      const request = checkRolloutRequest({ rolloutId: 'long', source: v1, sha256: null, targets: { all: true }, maxConcurrency: 1, maxErrors: '0', canary: 1, rollbackOnHalt: false });
      await storeRolloutRequest(deps.rollouts, request);
      await planRollout(deps, { rolloutId: 'long', execution: 'long-first' });
      // As if this execution had already run HISTORY_BUDGET events' worth of waves.
      const key = 'rollouts/long/rollout.json';
      const record = (await deps.rollouts.get<RolloutRecord>(key))!.value;
      record.execution.events = HISTORY_BUDGET;
      await deps.rollouts.put(key, record);

      const chain: Promise<RunOutcome>[] = [];
      const names: string[] = ['long-first'];
      const first = await runWorkflow({ workflow: 'rollout', input: { rolloutId: 'long', resume: true }, executionName: 'long-first', deps, retryDelayMs: 0, onContinued: (name, done) => { names.push(name); chain.push(done); } });
      expect(first.status).toBe('SUCCEEDED');
      expect(first.steps.map((s) => s.name)).toContain('ContinueAsNew');
      expect(first.steps.filter((s) => s.name === 'InstallTarget')).toHaveLength(1);
      let last = first;
      while (chain.length) last = await chain.shift()!;
      expect(names).toHaveLength(2);
      expect(names[1]).toMatch(/^long-/);
      expect(last.status).toBe('SUCCEEDED');
      expect(last.steps.map((s) => s.name)).toContain('LoadRollout');
      const report = await readRolloutReport(deps.rollouts, 'long');
      expect(report.status).toBe('succeeded');
      expect(report.counts).toMatchObject({ targets: 3, succeeded: 3 });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }, 600_000);
});
