/**
 * The seeded chaos runner as a test: 100 runs on the local transport (seed CHAOS_SEED, default 1)
 * with faults injected on a deterministic schedule, and no invariant may be violated; a short
 * EIC and SSM subset where a real sshd can run (root). Before that, the checker itself: a host
 * that breaks each invariant on purpose must be caught, so a clean report means something.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostResolver } from '../../lambdas/core/host/host-resolver.ts';
import type { HostInvocation, HostRawResult } from '../../lambdas/core/host/remote-host.ts';
import { propertyRuns, propertyTimeout } from '../helpers/property-runs.ts';
import { sshdAvailable } from '../servers/sshd.ts';
import { startLane, type Lane, type TransportName } from './lanes.ts';
import { planRun, PLUGIN, type PlannedOp } from './plan.ts';
import { Poller, runChaos, runOne, summaryLine, type InvariantId, type Violation } from './runner.ts';

const SEED = Number(process.env.CHAOS_SEED ?? 1);
/** Seeded runs (~13 s of wall time each on the local transport at load 8-14, two lanes): PROPERTY_RUNS_SCALE scales them. */
const LOCAL_RUNS = propertyRuns(100);
const REMOTE_RUNS = propertyRuns(2);

function listed(violations: Violation[]): string[] {
  return violations.map((v) => `[${v.invariant}] seed ${v.seed} run ${v.run} op ${v.op} (${v.operation}; ${v.fault}): ${v.description}`);
}

describe('the schedule', () => {
  it('is a pure function of seed and run index', () => {
    const caps = { shims: true, drop: false };
    expect(planRun(7, 3, caps)).toEqual(planRun(7, 3, caps));
    expect(planRun(7, 3, caps)).not.toEqual(planRun(7, 4, caps));
    expect(planRun(7, 3, caps)).not.toEqual(planRun(8, 3, caps));
    for (let run = 0; run < 50; run++) {
      const { ops } = planRun(SEED, run, caps);
      expect(ops.length).toBeGreaterThanOrEqual(5);
      expect(ops.length).toBeLessThanOrEqual(12);
      expect(ops[0]!.op.kind).toBe('install');
    }
  });
});

/** A host that misbehaves around one operation, to show the checker notices. */
function around(op: string, fn: (inv: HostInvocation, run: () => Promise<HostRawResult>) => Promise<HostRawResult>): (r: HostResolver) => HostResolver {
  return (resolver) => (workspace) => {
    const target = resolver(workspace);
    return { ...target, host: { ...target.host, transport: target.host.transport, streamsStdin: target.host.streamsStdin, run: (inv) => (inv.op === op ? fn(inv, () => target.host.run(inv)) : target.host.run(inv)) } };
  };
}

describe('the checker catches a host that breaks each invariant', () => {
  let lane: Lane;
  let poller: Poller;
  beforeAll(async () => {
    lane = await startLane('local', 10_000);
    poller = Poller.start();
  });
  afterAll(async () => {
    poller?.stop();
    await lane?.stop();
  });

  const install = (version: 'A' | 'B' | 'C'): PlannedOp => ({ op: { kind: 'install', version }, fault: null });
  const cases: [InvariantId, string, PlannedOp[], () => (r: HostResolver) => HostResolver][] = [
    ['1', 'a file of live vanishes after the swap', [install('A')], () =>
      around('swap', async (_inv, run) => {
        const r = await run();
        renameSync(join(lane.root, PLUGIN, 'plugin.yaml'), join(lane.root, 'stolen.yaml'));
        return r;
      })],
    ['2', 'a failing stage rewrites the live marker', [install('A'), install('B')], () =>
      around('stage', async (_inv, run) => {
        if (!existsSync(join(lane.root, PLUGIN))) return run();
        writeFileSync(join(lane.root, PLUGIN, '.complete'), JSON.stringify({ name: PLUGIN, version: '1.0.0', installedAt: 'rewritten' }) + '\n');
        return { exitCode: 21, signal: null, stdout: '{"ok":false,"op":"stage","code":"HostIoError","message":"tampered"}\n', stderr: '' };
      })],
    ['3', 'the lock takes live away for a moment', [install('A'), install('B')], () =>
      around('lock', async (_inv, run) => {
        if (!existsSync(join(lane.root, PLUGIN))) return run();
        renameSync(join(lane.root, PLUGIN), join(lane.root, 'away'));
        await new Promise((resolve) => setTimeout(resolve, 40));
        renameSync(join(lane.root, 'away'), join(lane.root, PLUGIN));
        return run();
      })],
    ['4', 'the unlock leaves a staging directory', [install('A')], () =>
      around('unlock', async (inv, run) => {
        mkdirSync(join(lane.root, '.staging', `${PLUGIN}.${inv.args[2]!}`), { recursive: true });
        return run();
      })],
    ['4', 'the lock writes into the sentinel directory outside the plugins root', [install('A')], () =>
      around('lock', async (_inv, run) => {
        writeFileSync(join(lane.sentinel, 'intruder'), 'x');
        return run();
      })],
    ['5', 'the list step prints the canary', [install('A'), { op: { kind: 'list' }, fault: null }], () =>
      around('list', async (_inv, run) => {
        const r = await run();
        return { ...r, stderr: `${r.stderr}debug: ${lane.secret}\n` };
      })],
  ];

  for (const [invariant, what, ops, tamper] of cases) {
    it(`invariant ${invariant}: ${what}`, async () => {
      lane.tamper = tamper();
      try {
        const result = await runOne(lane, poller, 0, 0, undefined, { seed: 0, run: 0, ops });
        expect(result.violations.map((v) => v.invariant), listed(result.violations).join('\n')).toContain(invariant);
      } finally {
        lane.tamper = undefined;
      }
    });
  }
});

it(`${LOCAL_RUNS} seeded runs on the local transport (seed ${SEED}) violate no invariant`, { timeout: propertyTimeout(LOCAL_RUNS, 40_000, 300_000) }, async () => {
  const report = await runChaos({ transport: 'local', runs: LOCAL_RUNS, seed: SEED, lanes: 2 });
  console.log(summaryLine(report));
  // The faults really happened: every kind the local transport can inject fired.
  for (const kind of ['fail', 'kill', 'enospc', 'fail+rollback-fail', 'fail+rollback-kill', 'repeat', 'plant'] as const) {
    expect(report.faults.fired[kind], `${kind} faults fired`).toBeGreaterThan(0);
  }
  // Runs plan 8 operations on average (834 in 100 runs with seed 1).
  expect(report.operations).toBeGreaterThanOrEqual(5 * LOCAL_RUNS);
  expect(listed(report.violations)).toEqual([]);
});

// A real sshd (EIC) and files handed to uid 1000 (SSM runs as this process) need root.
describe.skipIf(!sshdAvailable)('remote subset', () => {
  for (const transport of ['eic', 'ssm'] as TransportName[]) {
    it(`${REMOTE_RUNS} seeded runs over ${transport.toUpperCase()} violate no invariant`, { timeout: propertyTimeout(REMOTE_RUNS, 300_000, 300_000) }, async () => {
      const report = await runChaos({ transport, runs: REMOTE_RUNS, seed: SEED, lanes: 1 });
      console.log(summaryLine(report));
      expect(report.operations).toBeGreaterThan(0);
      expect(listed(report.violations)).toEqual([]);
    });
  }
});
