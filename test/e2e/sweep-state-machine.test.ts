/**
 * The snapshot sweep as deployed: the real statemachine/sweep.asl.json run by aws-local-stepfunctions,
 * its three Tasks bound to the real sweeper handler (lambdas/handlers/sweeper.ts; each Task state
 * is its own handler invocation, as each is its own Lambda invocation on AWS), with the real SSM
 * and EC2 clients against the loopback stand-ins (test/servers/ssm-api.ts, ec2-api.ts). Each fake
 * instance runs the real command (wrapper + host script) in its own directory.
 *
 * - A fleet whose hosts finish at different times, over several checks and several report calls:
 *   every host reported exactly once, the slow ones swept (not failed).
 * - A host still running at the deadline: reported unfinished (SweepHostsUnfinished), never failed.
 * - MaxErrors 5% on 3 hosts, the first one bad: the other two are still swept (SSM would have
 *   floored 5% of 3 to 0 and terminated them).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { StateMachine } from 'aws-local-stepfunctions';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { logger, metrics } from '../../lambdas/commons/logger.ts';
import { stampTime } from '../../lambdas/core/stamp.ts';
import { countTaggedInstances } from '../../lambdas/core/sweep/fleet-size.ts';
import { DAY_MS } from '../../lambdas/core/sweep/sweep-rules.ts';
import { substitute, SWEEPER_PLACEHOLDER, sweepDefinitionText } from '../../lambdas/core/workflow/workflow-files.ts';
import { sweeperHandler, type SweeperOptions, type SweepState } from '../../lambdas/handlers/sweeper.ts';
import { startEc2Api, type Ec2ApiStandIn } from '../servers/ec2-api.ts';
import { TEST_CREDENTIALS } from '../servers/sigv4.ts';
import { startSsmApi, type FakeInstance, type SsmApi } from '../servers/ssm-api.ts';
import { TEST_DOCUMENT_NAME, testDocuments } from '../servers/ssm-harness.ts';

const NOW = new Date();
const DAY = (days: number) => `${stampTime(new Date(NOW.getTime() + days * DAY_MS))}-aaaa`;
const instanceId = (i: number) => `i-${i.toString(16).padStart(17, '0')}`;
/** Each Wait of the machine, shortened (the ASL's pause is 15 s to 5 min). */
const WAIT_MS = 150;

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'sweep-sm-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

interface HostSpec {
  /** How long its agent leaves the command Pending (the stand-in's delivery delay). */
  delayMs?: number;
  /** Its working directory holds a ':', which the host script refuses as a root: the sweep fails there. */
  bad?: boolean;
}

interface Fleet {
  ssm: SsmApi;
  ec2: Ec2ApiStandIn;
  ssmClient: SSMClient;
  ec2Client: EC2Client;
  roots: string[];
  ids: string[];
  stop(): Promise<void>;
}

async function startFleet(specs: HostSpec[]): Promise<Fleet> {
  const dir = await mkdtemp(join(base, 'fleet-'));
  const instances: Record<string, FakeInstance> = {};
  const roots: string[] = [];
  const ids = specs.map((_, i) => instanceId(i));
  for (const [i, spec] of specs.entries()) {
    const id = ids[i]!;
    const root = join(dir, spec.bad ? `${id}:bad` : id);
    const plugins = join(root, 'configs/plugins');
    // Two old snapshots: keep 1 deletes the older.
    for (const d of [-20, -10]) {
      await mkdir(join(plugins, '.previous', `p.${DAY(d)}`), { recursive: true });
      await writeFile(join(plugins, '.previous', `p.${DAY(d)}`, 'data'), 'x'.repeat(1000));
    }
    roots.push(plugins);
    instances[id] = { root, tags: { WorkspaceId: `ws-${i}` }, env: { TMPDIR: dir }, ...(spec.delayMs !== undefined ? { deliveryDelayMs: spec.delayMs } : {}) };
  }
  const ssm = await startSsmApi({ instances, deliveryDelayMs: 5, documents: testDocuments() });
  const ec2 = await startEc2Api({ instances: ids.map((id, i) => ({ instanceId: id, state: 'running', privateIp: '127.0.0.1', tags: { WorkspaceId: `ws-${i}` } })) });
  const ssmClient = new SSMClient({ endpoint: ssm.endpoint, region: 'us-east-1', credentials: { ...TEST_CREDENTIALS } });
  const ec2Client = new EC2Client({ endpoint: ec2.endpoint, region: 'us-east-1', credentials: { ...TEST_CREDENTIALS } });
  return {
    ssm,
    ec2,
    ssmClient,
    ec2Client,
    roots,
    ids,
    async stop() {
      ssmClient.destroy();
      ec2Client.destroy();
      await Promise.allSettled([ssm.stop(), ec2.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function handlerFor(fleet: Fleet, env: NodeJS.ProcessEnv, fleetOptions: SweeperOptions['fleet'] = {}, clock?: () => Date) {
  return sweeperHandler({
    ...(clock ? { clock } : {}),
    client: () => fleet.ssmClient,
    fleetSize: (tag) => countTaggedInstances(fleet.ec2Client, tag),
    env: { SSM_DOCUMENT_NAME: TEST_DOCUMENT_NAME, SWEEP_OLDER_THAN_DAYS: '7', SWEEP_KEEP: '1', ...env },
    fleet: { ...fleetOptions },
  });
}

interface SweepRun {
  output: SweepState;
  /** States entered, in order. */
  entered: string[];
  /** Handler invocations by action, and what each check said. */
  invocations: string[];
  checks: SweepState['check'][];
}

/** Runs the real ASL, each Task state one invocation of the real handler. */
async function runSweep(handler: (event: unknown) => Promise<unknown>, input: unknown): Promise<SweepRun> {
  const definition = JSON.parse(substitute(sweepDefinitionText(), { [SWEEPER_PLACEHOLDER]: 'arn:aws:lambda:us-east-1:000000000000:function:sweeper' })) as never;
  const machine = new StateMachine(definition);
  const invocations: string[] = [];
  const checks: SweepState['check'][] = [];
  const task = async (event: unknown) => {
    const action = String((event as { action: string }).action);
    invocations.push(action);
    const out = await handler(structuredClone(event));
    if (action === 'check') checks.push(out as SweepState['check']);
    return out as never;
  };
  const execution = machine.run(input as never, {
    overrides: { taskResourceLocalHandlers: { StartSweep: task, CheckSweep: task, ReportSweep: task }, waitTimeOverrides: { WaitForHosts: WAIT_MS } },
  });
  const entered: string[] = [];
  let failure: unknown;
  for await (const event of execution.eventLogs) {
    if (event.type === 'StateEntered') entered.push(event.state.name);
    if (event.type === 'ExecutionFailed') failure = event;
  }
  const output = (await execution.result.catch((err: unknown) => {
    throw new Error(`the sweep execution failed: ${JSON.stringify(failure ?? String(err))}`);
  })) as unknown as SweepState;
  return { output, entered, invocations, checks };
}

let added: [string, number][];
let logged: [string, string, Record<string, unknown>][];
beforeEach(() => {
  added = [];
  logged = [];
  vi.spyOn(metrics, 'addMetric').mockImplementation((name, _unit, value) => {
    added.push([name, value]);
    return metrics;
  });
  vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
  for (const level of ['info', 'warn', 'error'] as const) {
    vi.spyOn(logger, level).mockImplementation((message: unknown, ...rest: unknown[]) => {
      logged.push([level, String(message), (rest[0] ?? {}) as Record<string, unknown>]);
    });
  }
});
afterEach(() => vi.restoreAllMocks());

const sum = (name: string) => added.filter(([n]) => n === name).reduce((s, [, v]) => s + v, 0);
const perHost = () => logged.filter(([, m]) => ['swept host', 'sweep failed on host', 'sweep unfinished on host'].includes(m)).map(([, m, f]) => ({ message: m, ...f }) as { message: string; instanceId: string; outcome: string });

const measured: string[] = [];
afterAll(() => console.log(`sweep state machine runs:\n${measured.join('\n')}`));

describe('the sweep state machine (statemachine/sweep.asl.json) with the real sweeper handler', () => {
  it('follows hosts that finish over several checks and reports each exactly once over several report calls; slow hosts are swept, not failed', { timeout: 180_000 }, async () => {
    // Hosts picked up 0 to 2.1 s after SendCommand: several checks see some done and some not.
    const specs: HostSpec[] = [...Array.from({ length: 8 }, (_, i) => ({ delayMs: i * 300 })), { bad: true }];
    const fleet = await startFleet(specs);
    try {
      const handler = handlerFor(fleet, { SWEEP_MAX_CONCURRENCY: '100%' }, { pageSize: 2, pagesPerReport: 1 });
      const run = await runSweep(handler, { 'detail-type': 'Scheduled Event', source: 'aws.events', time: NOW.toISOString(), detail: {} });
      const checks = run.invocations.filter((a) => a === 'check').length;
      const reports = run.invocations.filter((a) => a === 'report').length;
      measured.push(`  9 hosts finishing over ${specs.at(-2)!.delayMs} ms: ${run.invocations.length} handler invocations (1 start, ${checks} checks, ${reports} reports), ${run.entered.length} states entered`);

      // One Run Command; checks until all done; 9 hosts at 2 a call: 5 report calls.
      expect(fleet.ssm.calls.SendCommand).toBe(1);
      expect(run.invocations[0]).toBe('start');
      expect(run.checks.filter((c) => !c.done).length, 'checks that saw hosts still running').toBeGreaterThanOrEqual(2);
      expect(run.checks.at(-1)).toMatchObject({ done: true, deadlinePassed: false });
      expect(reports).toBe(5);
      // The machine's shape as the history count assumes it (test/unit/sweep-fleet-steps.test.ts).
      expect(run.entered.length).toBe(1 + 3 * checks + 2 * reports + 1);
      expect(run.entered.at(-1)).toBe('Swept');

      // Every host exactly once, in the log and in the metrics.
      const lines = perHost();
      expect(lines.map((l) => l.instanceId).sort()).toEqual(fleet.ids);
      expect(new Set(lines.map((l) => l.instanceId)).size).toBe(lines.length);
      for (const name of ['SweptSnapshots', 'SweptBytes', 'SweepHostsFailed', 'SweepHostsUnfinished']) expect(added.filter(([n]) => n === name), name).toHaveLength(9);
      const bad = fleet.ids[8]!;
      for (const l of lines) expect(l.outcome, l.instanceId).toBe(l.instanceId === bad ? 'failed' : 'swept');
      expect(sum('SweepHostsFailed')).toBe(1);
      expect(sum('SweepHostsUnfinished')).toBe(0);
      expect(sum('SweptSnapshots')).toBe(8);
      expect(run.output.report).toMatchObject({ more: false, nextToken: null, calls: 5, totals: { hosts: 9, failed: 1, unfinished: 0, counts: { previous: 8 } } });
      // The slowest host too: its older snapshot is gone, the newer kept.
      expect(existsSync(join(fleet.roots[7]!, '.previous', `p.${DAY(-20)}`))).toBe(false);
      expect(existsSync(join(fleet.roots[7]!, '.previous', `p.${DAY(-10)}`))).toBe(true);
      expect(logged.find(([, m]) => m === 'fleet sweep done')?.[2]).toMatchObject({ hosts: 9, failed: 1, unfinished: 0, reports: 5 });
    } finally {
      await fleet.stop();
    }
  });

  it('a host still running at the deadline is reported unfinished, never failed', { timeout: 180_000 }, async () => {
    // The third host's agent holds the command far longer than this sweep follows it.
    const fleet = await startFleet([{}, {}, { delayMs: 600_000 }]);
    try {
      // The sweeper's clock jumps an hour ahead once the two healthy hosts are done, past the
      // 1-minute cap on how long this sweep is followed: no test waits for a real deadline, and a
      // loaded machine cannot make the healthy hosts late.
      const healthyDone = () => fleet.ssm.invocations().filter((i) => i.instanceId !== fleet.ids[2] && i.status === 'Success').length === 2;
      const handler = handlerFor(fleet, {}, { maxSweepMs: 60_000 }, () => new Date(Date.now() + (healthyDone() ? 3_600_000 : 0)));
      const run = await runSweep(handler, { detail: {} });
      expect(run.checks.at(-1)).toMatchObject({ done: true, deadlinePassed: true });
      const lines = perHost();
      expect(lines.map((l) => [l.instanceId, l.outcome])).toEqual([
        [fleet.ids[2], 'unfinished'],
        [fleet.ids[1], 'swept'],
        [fleet.ids[0], 'swept'],
      ]);
      expect(lines[0]).toMatchObject({ message: 'sweep unfinished on host', status: 'Pending', note: expect.stringMatching(/still Pending/) });
      expect(sum('SweepHostsFailed')).toBe(0);
      expect(sum('SweepHostsUnfinished')).toBe(1);
      expect(run.output.report.totals).toMatchObject({ hosts: 3, failed: 0, unfinished: 1 });
      expect(logged.find(([, m]) => m === 'fleet sweep done, some hosts unfinished')?.[2]).toMatchObject({ hosts: 3, failed: 0, unfinished: 1 });
    } finally {
      await fleet.stop();
    }
  });

  it('MaxErrors 5% on a 3-host fleet: one bad host fails, the other two are still swept', { timeout: 180_000 }, async () => {
    // MaxConcurrency 10% of 3 is one host at a time, in instance order: the bad one first.
    const fleet = await startFleet([{ bad: true }, {}, {}]);
    try {
      const handler = handlerFor(fleet, { SWEEP_MAX_CONCURRENCY: '10%', SWEEP_MAX_ERRORS: '5%' });
      const run = await runSweep(handler, {});
      expect(Object.fromEntries(fleet.ssm.invocations().map((i) => [i.instanceId, [i.status, i.statusDetails]]))).toEqual({
        [fleet.ids[0]!]: ['Failed', 'Failed'],
        [fleet.ids[1]!]: ['Success', 'Success'],
        [fleet.ids[2]!]: ['Success', 'Success'],
      });
      expect(run.output.report.totals).toMatchObject({ hosts: 3, failed: 1, unfinished: 0, counts: { previous: 2 } });
      expect(sum('SweepHostsFailed')).toBe(1);
      // Sent as counts, resolved against the 3 tagged instances.
      expect(logged.find(([, m]) => m === 'fleet sweep sent')?.[2]).toMatchObject({ fleetSize: 3, maxConcurrency: '1', maxErrors: '1' });
    } finally {
      await fleet.stop();
    }
  });
});
