/**
 * The fleet sweep against the SSM API stand-in (test/servers/ssm-api.ts) with the real SSMClient:
 * 10 and 1,000 fake managed instances tagged WorkspaceId, each running the real command (wrapper +
 * host script) in its own tiny directory (the test document's rootPrefix '.': each instance's working directory plays
 * its `/`). Counts the SSM API calls per action: one SendCommand whatever the fleet size, and
 * ListCommandInvocations growing only by pagination (pages of 50 per poll), never per instance.
 * Then the sweeper Lambda's three actions (start, check, report) driven as its state machine
 * drives them.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { logger, metrics } from '../../lambdas/commons/logger.ts';
import { HostSteps, type SweepReport, type SweepRules } from '../../lambdas/core/host/host-steps.ts';
import { LocalHost } from '../../lambdas/core/host/local-host.ts';
import { stampTime } from '../../lambdas/core/stamp.ts';
import { FLEET_ROOTS, fleetSweep, type FleetSweepSummary } from '../../lambdas/core/sweep/fleet-sweep.ts';
import { DAY_MS, sweepRules } from '../../lambdas/core/sweep/sweep-rules.ts';
import { sweeperHandler, type SweepState } from '../../lambdas/handlers/sweeper.ts';
import { startSsmApi, type FakeInstance, type SsmApi } from '../servers/ssm-api.ts';
import { TEST_DOCUMENT_NAME, testDocuments } from '../servers/ssm-harness.ts';
import { TEST_CREDENTIALS } from '../servers/sigv4.ts';

const NOW = new Date();
const DAY = (days: number, suffix = 'aaaa') => `${stampTime(new Date(NOW.getTime() + days * DAY_MS))}-${suffix}`;
const nowSeconds = Math.floor(NOW.getTime() / 1000);
const local = new LocalHost({ timeoutMs: 30_000 });

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'fleet-sweep-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

const instanceId = (i: number) => `i-${i.toString(16).padStart(17, '0')}`;

async function entry(root: string, rel: string, bytes: number, extra: Record<string, string> = {}): Promise<void> {
  await mkdir(join(root, rel), { recursive: true });
  await writeFile(join(root, rel, 'data'), 'x'.repeat(bytes));
  for (const [f, c] of Object.entries(extra)) await writeFile(join(root, rel, f), c);
}

/** Content of a few instances, so their counts and bytes can be checked. */
const KNOWN: Record<number, (dir: string) => Promise<void>> = {
  0: async (dir) => {
    const root = join(dir, 'configs/plugins');
    await entry(root, 'p', 500);
    for (const d of [-20, -15, -10]) await entry(root, `.previous/p.${DAY(d)}`, 6000);
    // Pinned by the root-owned .meta/<name>.<stamp>.pin ...
    await entry(root, `.previous/p.${DAY(-12, 'pinn')}`, 6000);
    await mkdir(join(root, '.meta'), { recursive: true, mode: 0o700 });
    await writeFile(join(root, '.meta', `p.${DAY(-12, 'pinn')}.pin`), '');
    // ... not by a .pinned file inside the snapshot (an older layout; the agent can write there).
    await entry(root, `.previous/p.${DAY(-11, 'lgcy')}`, 6000, { '.pinned': '' });
    await entry(root, `.previous/p.${DAY(-1)}`, 6000);
    await entry(root, `.staging/q.${DAY(-1)}.partial`, 2000);
    await entry(root, `.failed/q.${DAY(-9)}`, 3000);
    await mkdir(join(root, '.locks'), { recursive: true });
    await writeFile(join(root, '.locks', 'q'), `stamp=${DAY(-1)}\nowner=x\npid=0\nhost=h\nexpires=${nowSeconds - 60}\n`);
  },
  1: async (dir) => {
    // A hermes and a langgraph root on one instance.
    await entry(join(dir, 'home/ubuntu/.hermes/plugins'), `.previous/h.${DAY(-30)}`, 10_000);
    await entry(join(dir, 'home/ubuntu/.hermes/plugins'), `.previous/h.${DAY(-29)}`, 10_000);
    await entry(join(dir, 'opt/configs/plugins'), `.previous/l.${DAY(-8)}`, 1000);
    await entry(join(dir, 'opt/configs/plugins'), `.previous/l.${DAY(-9)}`, 1000);
    await entry(join(dir, 'opt/configs/plugins'), `.previous/l.${DAY(-10)}`, 1000);
  },
  2: async (dir) => {
    // Roots that exist but hold nothing to sweep.
    for (const r of FLEET_ROOTS) await mkdir(join(dir, r), { recursive: true });
    await entry(join(dir, 'configs/plugins'), `.previous/z.${DAY(-30)}`, 100);
  },
};

interface Fleet {
  api: SsmApi;
  client: SSMClient;
  dir: string;
  n: number;
  /** The failing instance (its working directory holds a ':', which the script refuses as a root). */
  bad: string;
  /** Per known instance and root, what a local dry run of the same rules reports. */
  expected: Map<string, Map<string, SweepReport>>;
  stop(): Promise<void>;
}

async function startFleet(n: number, rules: SweepRules): Promise<Fleet> {
  const dir = await mkdtemp(join(base, `fleet-${n}-`));
  const instances: Record<string, FakeInstance> = {};
  const expected = new Map<string, Map<string, SweepReport>>();
  const badIndex = n - 1;
  for (let i = 0; i < n; i++) {
    const id = instanceId(i);
    const root = join(dir, i === badIndex ? `${id}:bad` : id);
    await mkdir(root, { recursive: true });
    instances[id] = { root, tags: { WorkspaceId: `ws-${i}`, Runtime: 'claude-code' }, env: { TMPDIR: dir } };
    const known = KNOWN[i];
    if (known) {
      await known(root);
      const byRoot = new Map<string, SweepReport>();
      for (const r of FLEET_ROOTS) {
        if (!existsSync(join(root, r))) continue;
        byRoot.set(r, await new HostSteps({ host: local, root: join(root, r), ownerSpec: '-' }).sweep({ ...rules, dryRun: true }));
      }
      expected.set(id, byRoot);
    }
  }
  await mkdir(join(instances[instanceId(badIndex)]!.root!, 'configs/plugins'), { recursive: true });
  // Not a workspace: no WorkspaceId tag, so not targeted (its snapshot must survive).
  const stray = join(dir, 'stray');
  await entry(join(stray, 'configs/plugins'), `.previous/s.${DAY(-30)}`, 100);
  await entry(join(stray, 'configs/plugins'), `.previous/s.${DAY(-29)}`, 100);
  instances['i-0ffffffffffffffff'] = { root: stray, tags: { Name: 'bastion' } };
  const api = await startSsmApi({ instances, deliveryDelayMs: 5, documents: testDocuments() });
  const client = new SSMClient({ endpoint: api.endpoint, region: 'us-east-1', credentials: { ...TEST_CREDENTIALS } });
  return {
    api,
    client,
    dir,
    n,
    bad: instanceId(badIndex),
    expected,
    async stop() {
      client.destroy();
      await api.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const RULES = sweepRules({ now: NOW, olderThanMs: 7 * DAY_MS, keepNewest: 1 });
const POLL = { pollInitialMs: 100, pollMaxMs: 800 };

function checkResults(fleet: Fleet, summary: FleetSweepSummary): void {
  expect(summary.complete).toBe(true);
  expect(summary.error).toBeUndefined();
  // Every targeted instance reported, the untagged one not at all.
  expect(summary.hosts.map((h) => h.instanceId)).toEqual(Array.from({ length: fleet.n }, (_, i) => instanceId(i)));
  for (const host of summary.hosts) {
    if (host.instanceId === fleet.bad) continue;
    expect(host, host.instanceId).toMatchObject({ status: 'Success' });
    expect(host.error).toBeUndefined();
  }
  const bad = summary.hosts.find((h) => h.instanceId === fleet.bad)!;
  expect(bad.status).toBe('Failed');
  expect(bad.error).toMatch(/^\/configs\/plugins: InvalidInput: invalid plugins root/);
  expect(summary.totals.failed).toBe(1);
  expect(summary.totals.hosts).toBe(fleet.n);
  // Known content: what a local dry run of the same rules reported, root by root.
  for (const [id, byRoot] of fleet.expected) {
    const host = summary.hosts.find((h) => h.instanceId === id)!;
    expect(host.roots.map((r) => r.root)).toEqual([...byRoot.keys()]);
    for (const r of host.roots) {
      const want = byRoot.get(r.root)!;
      expect(r, `${id} ${r.root}`).toEqual({ root: r.root, counts: want.counts, bytes: want.bytes });
    }
  }
  const zero = { previous: 0, staging: 0, failed: 0, locks: 0 };
  for (const host of summary.hosts) if (!fleet.expected.has(host.instanceId)) expect(host.roots.every((r) => r.bytes === 0 && JSON.stringify(r.counts) === JSON.stringify(zero))).toBe(true);
}

const report: string[] = [];
afterAll(() => {
  // The measurement the issue asks for, printed with the test run.
  console.log(`fleet sweep SSM API calls:\n${report.join('\n')}`);
});

describe('fleet sweep over SSM Run Command', () => {
  it('10 instances: one SendCommand, pages per poll, counts and bytes right; a dry run first deletes nothing', { timeout: 900_000 }, async () => {
    const fleet = await startFleet(10, RULES);
    try {
      const dry = await fleetSweep({ client: fleet.client, rules: { ...RULES, dryRun: true }, documentName: TEST_DOCUMENT_NAME, maxConcurrency: '100', maxErrors: '10', ...POLL });
      expect(dry.dryRun).toBe(true);
      checkResults(fleet, dry);
      const i0 = join(fleet.api.instances[instanceId(0)]!.root!, 'configs/plugins');
      expect(existsSync(join(i0, '.previous', `p.${DAY(-20)}`))).toBe(true);
      const afterDry = { ...fleet.api.calls };
      expect(afterDry.SendCommand).toBe(1);

      const started = Date.now();
      const real = await fleetSweep({ client: fleet.client, rules: RULES, documentName: TEST_DOCUMENT_NAME, maxConcurrency: '100', maxErrors: '10', ...POLL });
      const ms = Date.now() - started;
      checkResults(fleet, real);
      expect(real.hosts.map((h) => h.roots)).toEqual(dry.hosts.map((h) => h.roots));
      const calls = { SendCommand: fleet.api.calls.SendCommand! - afterDry.SendCommand!, ListCommandInvocations: fleet.api.calls.ListCommandInvocations! - afterDry.ListCommandInvocations! };
      report.push(`  10 instances:    ${JSON.stringify(calls)} GetCommandInvocation=${fleet.api.calls.GetCommandInvocation ?? 0} polls=${real.polls} pages=${real.pages} (${ms} ms)`);
      expect(calls.SendCommand).toBe(1);
      expect(fleet.api.calls.GetCommandInvocation ?? 0).toBe(0);
      expect(calls.ListCommandInvocations).toBe(real.pages);
      expect(real.pages).toBe(real.polls * Math.ceil(10 / 50));

      // Deleted what the rules say, kept live, pinned, the newest and the untargeted instance.
      expect(existsSync(join(i0, 'p', 'data'))).toBe(true);
      expect(existsSync(join(i0, '.previous', `p.${DAY(-20)}`))).toBe(false);
      expect(existsSync(join(i0, '.previous', `p.${DAY(-12, 'pinn')}`))).toBe(true);
      expect(existsSync(join(i0, '.meta', `p.${DAY(-12, 'pinn')}.pin`))).toBe(true);
      expect(existsSync(join(i0, '.previous', `p.${DAY(-11, 'lgcy')}`))).toBe(false);
      expect(existsSync(join(i0, '.previous', `p.${DAY(-1)}`))).toBe(true);
      expect(existsSync(join(i0, '.locks', 'q'))).toBe(false);
      expect(existsSync(join(fleet.dir, 'stray/configs/plugins/.previous', `s.${DAY(-30)}`))).toBe(true);
      // The one Run Command, as sent.
      const inv = fleet.api.invocations().at(-1)!;
      expect(inv.timeoutSeconds).toBe(600);
      expect(inv.parameters.executionTimeout).toEqual(['600']);
      expect(inv.comment).toMatch(/^plugin sweep before \d{8}T\d{6}Z$/);
    } finally {
      await fleet.stop();
    }
  });

  it('1,000 instances: still one SendCommand, and ListCommandInvocations only grows by pagination', { timeout: 900_000 }, async () => {
    const fleet = await startFleet(1000, RULES);
    try {
      const started = Date.now();
      // SSM's defaults here: MaxConcurrency 10% (100 at a time), MaxErrors 5% (50).
      const summary = await fleetSweep({ client: fleet.client, rules: RULES, documentName: TEST_DOCUMENT_NAME, ...POLL });
      const ms = Date.now() - started;
      checkResults(fleet, summary);
      const calls = { ...fleet.api.calls };
      report.push(`  1000 instances:  ${JSON.stringify(calls)} GetCommandInvocation=${calls.GetCommandInvocation ?? 0} polls=${summary.polls} pages=${summary.pages} (${ms} ms)`);
      expect(calls.SendCommand).toBe(1);
      expect(calls.GetCommandInvocation ?? 0).toBe(0);
      expect(calls.ListCommandInvocations).toBe(summary.pages);
      expect(summary.pages).toBeLessThanOrEqual(summary.polls * Math.ceil(1000 / 50));
      expect(summary.pages).toBe(summary.polls * 20);
      // The polls follow the clock (backoff to pollMaxMs), not the fleet: at most the doubling
      // steps plus one per pollMaxMs of waiting.
      expect(summary.polls).toBeLessThanOrEqual(Math.ceil(Math.log2(POLL.pollMaxMs / POLL.pollInitialMs)) + Math.ceil(ms / POLL.pollMaxMs) + 1);
    } finally {
      await fleet.stop();
    }
  });

  it('with a poll that waits for the fleet, the calls are 1 SendCommand + 1 poll for 10 and for 1,000 instances: only the pages differ', { timeout: 900_000 }, async () => {
    const counts: Record<number, Record<string, number>> = {};
    for (const n of [10, 1000]) {
      const fleet = await startFleet(n, RULES);
      try {
        // Sleep until the stand-in has finished every invocation: one poll round sees them all.
        const sleep = async () => {
          while (fleet.api.invocations().some((i) => !['Success', 'Failed', 'TimedOut', 'Cancelled'].includes(i.status))) await new Promise((r) => setTimeout(r, 50));
        };
        const summary = await fleetSweep({ client: fleet.client, rules: { ...RULES, dryRun: true }, documentName: TEST_DOCUMENT_NAME, maxConcurrency: '100', maxErrors: '10', sleep });
        expect(summary.complete).toBe(true);
        expect(summary.hosts).toHaveLength(n);
        counts[n] = { ...fleet.api.calls, polls: summary.polls };
      } finally {
        await fleet.stop();
      }
    }
    report.push(`  fleet-gated poll: 10 → ${JSON.stringify(counts[10])}, 1000 → ${JSON.stringify(counts[1000])}`);
    expect(counts[10]).toEqual({ SendCommand: 1, ListCommandInvocations: 1, polls: 1 });
    expect(counts[1000]).toEqual({ SendCommand: 1, ListCommandInvocations: 20, polls: 1 });
  });
});

/** Drives the sweeper's three actions as statemachine/sweep.asl.json does (without the ASL: test/e2e/sweep-state-machine.test.ts runs it). */
async function driveSweep(handler: (event: unknown) => Promise<unknown>, event: unknown): Promise<SweepState & { checks: number }> {
  const state = (await handler({ action: 'start', event })) as SweepState;
  let checks = 0;
  do {
    await new Promise((r) => setTimeout(r, 100));
    state.check = (await handler({ action: 'check', sweep: state.sweep, check: state.check })) as SweepState['check'];
    checks++;
  } while (!state.check.done);
  do state.report = (await handler({ action: 'report', sweep: state.sweep, report: state.report })) as SweepState['report'];
  while (state.report.more);
  return { ...state, checks };
}

describe('the sweeper Lambda', () => {
  it('settings from the environment → one Run Command → checks → a metric value and a log line per host → the totals', { timeout: 900_000 }, async () => {
    const fleet = await startFleet(10, RULES);
    const added: [string, string, number][] = [];
    vi.spyOn(metrics, 'addMetric').mockImplementation((name, unit, value) => {
      added.push([name, unit, value]);
      return metrics;
    });
    const spyPublish = vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
    const logged: [string, string, Record<string, unknown>][] = [];
    for (const level of ['info', 'warn', 'error'] as const) {
      vi.spyOn(logger, level).mockImplementation((message: unknown, ...rest: unknown[]) => {
        logged.push([level, String(message), (rest[0] ?? {}) as Record<string, unknown>]);
      });
    }
    let made = 0;
    const sized: string[] = [];
    try {
      const handler = sweeperHandler({
        client: () => {
          made++;
          return fleet.client;
        },
        fleetSize: async (tag) => {
          sized.push(tag);
          return 10;
        },
        env: { SSM_DOCUMENT_NAME: TEST_DOCUMENT_NAME, SWEEP_OLDER_THAN_DAYS: '7', SWEEP_KEEP: '1', SWEEP_MAX_CONCURRENCY: '100%', SWEEP_MAX_ERRORS: '10%' },
        clock: () => NOW,
        fleet: { pageSize: 4, pagesPerReport: 1 },
      });
      const result = await driveSweep(handler, { 'detail-type': 'Scheduled Event', source: 'aws.events', time: NOW.toISOString(), detail: {} });
      expect(made).toBeGreaterThanOrEqual(3);
      expect(sized).toEqual(['WorkspaceId']);
      expect(result.sweep).toMatchObject({ olderThanDays: 7, targetTag: 'WorkspaceId', dryRun: false, keepNewest: 1, maxConcurrency: '10', maxErrors: '1' });
      // 10 hosts, 4 per report call: 3 calls.
      expect(result.report).toMatchObject({ more: false, nextToken: null, calls: 3, totals: { hosts: 10, failed: 1, unfinished: 0 } });
      expect(fleet.api.calls.SendCommand).toBe(1);
      const sent = fleet.api.invocations()[0]!;
      expect(sent.parameters.operation).toEqual(['fleet-sweep']);
      expect(sent.parameters.arguments![0]!.split(' ').map((w) => Buffer.from(w, 'base64').toString('utf8').slice(1))).toEqual([
        RULES.previousBefore, String(RULES.keepNewest), RULES.stagingBefore, RULES.failedBefore, String(RULES.nowEpochSeconds), '0',
      ]);
      // One value per host for each metric, dimension-less (no instance dimension).
      for (const name of ['SweptSnapshots', 'SweptBytes', 'SweepHostsFailed', 'SweepHostsUnfinished']) expect(added.filter(([n]) => n === name)).toHaveLength(10);
      expect(added.filter(([n]) => n === 'SweepHostsFailed').reduce((s, [, , v]) => s + v, 0)).toBe(1);
      expect(added.filter(([n]) => n === 'SweepHostsUnfinished').reduce((s, [, , v]) => s + v, 0)).toBe(0);
      expect(added.filter(([n]) => n === 'SweptSnapshots').reduce((s, [, , v]) => s + v, 0)).toBe(result.report.totals.counts.previous);
      expect(added.filter(([n]) => n === 'SweptBytes').reduce((s, [, , v]) => s + v, 0)).toBe(result.report.totals.bytes);
      expect(spyPublish).toHaveBeenCalledTimes(3);
      // One log line per host with its counts; the failed one as a warning naming the error.
      const perHost = logged.filter(([, m]) => m === 'swept host' || m === 'sweep failed on host' || m === 'sweep unfinished on host');
      expect(perHost.map(([, , f]) => f.instanceId).sort()).toEqual(Array.from({ length: 10 }, (_, i) => instanceId(i)));
      const expected0 = fleet.expected.get(instanceId(0))!.get('/configs/plugins')!;
      expect(perHost.find(([, , f]) => f.instanceId === instanceId(0))![2]).toMatchObject({ outcome: 'swept', counts: expected0.counts, bytes: expected0.bytes });
      expect(perHost.find(([, , f]) => f.instanceId === fleet.bad)).toMatchObject(['warn', 'sweep failed on host', { outcome: 'failed', error: expect.stringMatching(/InvalidInput/) }]);
      expect(logged.find(([, m]) => m === 'fleet sweep done')![2]).toMatchObject({ hosts: 10, failed: 1, unfinished: 0, reports: 3 });

      // A manual dry run: {detail: {dryRun: true}}.
      const dry = await driveSweep(handler, { detail: { dryRun: true } });
      expect(dry.sweep.dryRun).toBe(true);
      expect(dry.report.totals.counts).toEqual({ previous: 0, staging: 0, failed: 0, locks: 0 });
    } finally {
      vi.restoreAllMocks();
      await fleet.stop();
    }
  });

  it('refuses bad settings and bad input before sending anything', async () => {
    const noFleet = async () => {
      throw new Error('no count expected');
    };
    const handler = (env: NodeJS.ProcessEnv) => sweeperHandler({ client: () => { throw new Error('no client expected'); }, fleetSize: noFleet, env: { SSM_DOCUMENT_NAME: TEST_DOCUMENT_NAME, ...env } })({ action: 'start', event: {} });
    await expect(handler({ SSM_DOCUMENT_NAME: undefined })).rejects.toMatchObject({ code: 'InvalidInput', message: expect.stringMatching(/SSM_DOCUMENT_NAME/) });
    await expect(handler({ SWEEP_OLDER_THAN_DAYS: 'seven' })).rejects.toMatchObject({ code: 'InvalidInput' });
    await expect(handler({ SWEEP_KEEP: '-1' })).rejects.toMatchObject({ code: 'InvalidInput' });
    await expect(handler({ SWEEP_TARGET_TAG: 'a"b' })).rejects.toMatchObject({ code: 'InvalidInput' });
    await expect(handler({ SWEEP_DRY_RUN: 'maybe' })).rejects.toMatchObject({ code: 'InvalidInput' });
    await expect(handler({ SWEEP_MAX_ERRORS: '101%' })).rejects.toMatchObject({ code: 'InvalidInput' });
    await expect(handler({ SWEEP_MAX_CONCURRENCY: '10 %' })).rejects.toMatchObject({ code: 'InvalidInput' });
    const withClient = (env: NodeJS.ProcessEnv) => sweeperHandler({ client: () => new SSMClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' }), fleetSize: async () => 3, env: { SSM_DOCUMENT_NAME: TEST_DOCUMENT_NAME, ...env } })({ action: 'start', event: {} });
    await expect(withClient({ SWEEP_MAX_CONCURRENCY: '0' })).rejects.toMatchObject({ code: 'InvalidInput' });
    // Invoked directly (the old scheduled invocation), or with a state it did not make.
    const any = sweeperHandler({ client: () => { throw new Error('no client expected'); }, fleetSize: noFleet, env: {} });
    await expect(any({ 'detail-type': 'Scheduled Event', detail: {} })).rejects.toMatchObject({ code: 'InvalidInput', hint: expect.stringMatching(/state machine/) });
    await expect(any({ action: 'check', sweep: { commandId: 'c' } })).rejects.toMatchObject({ code: 'InvalidInput' });
    await expect(any({ action: 'report', sweep: { commandId: 'c', targetCount: 1, dryRun: false, keepNewest: 1, requestedAt: 0, deadline: 1 }, report: { more: true } })).rejects.toMatchObject({ code: 'InvalidInput' });
  });
});
