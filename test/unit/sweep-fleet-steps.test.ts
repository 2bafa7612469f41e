/**
 * The fleet sweep as the sweep state machine runs it (statemachine/sweep.asl.json): start (the
 * deadline from the command's own timeouts), check (one cheap look, stopping at the first running
 * invocation), report (bounded pages, each host once, unfinished never failed), the pause between
 * checks and what it costs in Step Functions history events over the longest sweep, and the rate
 * controls sent as counts. SSM is scripted with aws-sdk-client-mock; the real API shape is
 * exercised against the stand-in in test/e2e/sweep-state-machine.test.ts.
 */
import { ListCommandInvocationsCommand, SendCommandCommand, SSMClient, SSMServiceException, type CommandInvocation } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { SweepRules } from '../../lambdas/core/host/host-steps.ts';
import { rateControlCount } from '../../lambdas/core/sweep/fleet-size.ts';
import {
  checkFleetSweep,
  checkWaitSeconds,
  EXPIRY_GRACE_MS,
  firstCheck,
  MAX_CHECK_WAIT_SECONDS,
  MAX_SWEEP_MS,
  MIN_CHECK_WAIT_SECONDS,
  reportFleetSweep,
  startFleetSweep,
} from '../../lambdas/core/sweep/fleet-sweep.ts';
import { sweepDefinitionText } from '../../lambdas/core/workflow/workflow-files.ts';

const ssm = mockClient(SSMClient);
afterEach(() => ssm.reset());

const RULES: SweepRules = { previousBefore: '20260301T000000Z', keepNewest: 1, stagingBefore: '20260308T000000Z', failedBefore: '20260301T000000Z', nowEpochSeconds: 1_772_928_000, dryRun: false };
const client = () => new SSMClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
const OK = '{"root":"/configs/plugins","ok":true,"counts":{"previous":1,"staging":0,"failed":0,"locks":0},"bytes":10}';
const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${String(i).padStart(17, '0')}`);

function inv(id: string, status: string, details = status): CommandInvocation {
  const output = status === 'Success' ? `PLUGINSWEEP ${OK}\nPLUGINSWEEP-END {"roots":1,"failed":0}\n` : '';
  return { InstanceId: id, CommandId: 'c-1', Status: status as CommandInvocation['Status'], StatusDetails: details, CommandPlugins: [{ Name: 'aws:runShellScript', Output: output, ResponseCode: status === 'Success' ? 0 : 1 }] };
}

/** ListCommandInvocations over a fixed list, paged by MaxResults with numeric tokens. */
function listing(all: () => CommandInvocation[]) {
  return (input: { NextToken?: string; MaxResults?: number }) => {
    const offset = input.NextToken ? Number(input.NextToken) : 0;
    const size = input.MaxResults ?? 50;
    const list = all();
    return { CommandInvocations: list.slice(offset, offset + size), NextToken: offset + size < list.length ? String(offset + size) : undefined };
  };
}

const T0 = 1_800_000_000_000;

describe('startFleetSweep', () => {
  it('follows the command until SSM itself has ended it (ExpiresAfter) plus a grace period, never past 48 h', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1', TargetCount: 3, ExpiresAfter: new Date(T0 + 1_200_000) } });
    const started = await startFleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, clock: () => T0 });
    expect(started).toMatchObject({ commandId: 'c-1', targetCount: 3, requestedAt: T0, deadline: T0 + 1_200_000 + EXPIRY_GRACE_MS, maxErrors: '5%', maxConcurrency: '10%', dryRun: false });
    // JSON all the way: it travels in the state machine's state.
    expect(JSON.parse(JSON.stringify(started))).toEqual(started);

    ssm.reset();
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-2', TargetCount: 0 } });
    const noExpiry = await startFleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, clock: () => T0, timeoutSeconds: 60, executionTimeoutSeconds: 30 });
    expect(noExpiry.deadline).toBe(T0 + 90_000 + EXPIRY_GRACE_MS);
    const long = await startFleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, clock: () => T0, timeoutSeconds: 2_592_000 });
    expect(long.deadline).toBe(T0 + MAX_SWEEP_MS);
  });
});

describe('checkFleetSweep', () => {
  const started = { commandId: 'c-1', targetCount: 120, requestedAt: T0, deadline: T0 + 3_600_000 };

  it('a busy fleet costs one page: it stops at the first invocation still running', async () => {
    const fleet = ids(120).map((id, i) => inv(id, i === 3 ? 'InProgress' : 'Success'));
    ssm.on(ListCommandInvocationsCommand).callsFake(listing(() => fleet));
    const check = await checkFleetSweep({ client: client(), started, previous: firstCheck(started, T0), clock: () => T0 + 60_000 });
    expect(check).toEqual({ done: false, deadlinePassed: false, checks: 1, terminalListed: -1, pages: 1, waitSeconds: 15 });
    // Statuses only: the details (output) are read once, by the report.
    expect(ssm.commandCalls(ListCommandInvocationsCommand)[0]!.args[0].input.Details).toBeUndefined();
  });

  it('done when every invocation is terminal and all targets are listed', async () => {
    const fleet = ids(120).map((id, i) => inv(id, i === 7 ? 'Failed' : 'Success'));
    ssm.on(ListCommandInvocationsCommand).callsFake(listing(() => fleet));
    const check = await checkFleetSweep({ client: client(), started, clock: () => T0 + 120_000 });
    expect(check).toMatchObject({ done: true, deadlinePassed: false, checks: 1, terminalListed: 120, pages: 3 });
  });

  it('tag targets resolved late (TargetCount 0): done once an all-terminal listing is the same over two checks', async () => {
    let fleet = [inv('i-1', 'Success')];
    ssm.on(ListCommandInvocationsCommand).callsFake(listing(() => fleet));
    const late = { ...started, targetCount: 0 };
    const c1 = await checkFleetSweep({ client: client(), started: late, clock: () => T0 + 20_000 });
    expect(c1).toMatchObject({ done: false, terminalListed: 1 });
    fleet = [inv('i-1', 'Success'), inv('i-2', 'Success')];
    const c2 = await checkFleetSweep({ client: client(), started: late, previous: c1, clock: () => T0 + 40_000 });
    expect(c2).toMatchObject({ done: false, terminalListed: 2, checks: 2 });
    const c3 = await checkFleetSweep({ client: client(), started: late, previous: c2, clock: () => T0 + 60_000 });
    expect(c3).toMatchObject({ done: true, terminalListed: 2, checks: 3 });
  });

  it('past the deadline: done without asking SSM (what still runs is reported unfinished)', async () => {
    const check = await checkFleetSweep({ client: client(), started, clock: () => started.deadline });
    expect(check).toMatchObject({ done: true, deadlinePassed: true, pages: 0 });
    expect(ssm.commandCalls(ListCommandInvocationsCommand)).toHaveLength(0);
  });

  it('a throttled look is HostUnreachable (the state machine retries it), a refused one HostStepFailed', async () => {
    ssm.on(ListCommandInvocationsCommand).rejectsOnce(new SSMServiceException({ name: 'ThrottlingException', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'Rate exceeded' }));
    await expect(checkFleetSweep({ client: client(), started, clock: () => T0 })).rejects.toMatchObject({ name: 'HostUnreachable' });
    ssm.on(ListCommandInvocationsCommand).rejectsOnce(new SSMServiceException({ name: 'AccessDeniedException', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'no' }));
    await expect(checkFleetSweep({ client: client(), started, clock: () => T0 })).rejects.toMatchObject({ name: 'HostStepFailed', hint: expect.stringMatching(/ssm:ListCommandInvocations/) });
  });
});

describe('reportFleetSweep', () => {
  it('reports each host exactly once over consecutive calls, a bounded number of pages each; running hosts are unfinished, not failed', async () => {
    const fleet = ids(120).map((id, i) => (i % 40 === 5 ? inv(id, 'InProgress') : i === 17 ? inv(id, 'TimedOut', 'Execution Timed Out') : inv(id, 'Success')));
    ssm.on(ListCommandInvocationsCommand).callsFake(listing(() => fleet));
    const seen: string[] = [];
    const outcomes: Record<string, number> = {};
    let token: string | null = null;
    let calls = 0;
    do {
      const page = await reportFleetSweep({ client: client(), commandId: 'c-1', nextToken: token, pageSize: 20, maxPages: 2 });
      calls++;
      expect(page.pages).toBeLessThanOrEqual(2);
      for (const h of page.hosts) {
        seen.push(h.instanceId);
        outcomes[h.outcome] = (outcomes[h.outcome] ?? 0) + 1;
        if (h.outcome === 'unfinished') expect(h.error).toBeUndefined();
      }
      token = page.nextToken;
    } while (token !== null);
    expect(calls).toBe(3);
    expect(seen).toEqual(ids(120));
    expect(outcomes).toEqual({ swept: 116, unfinished: 3, failed: 1 });
    for (const call of ssm.commandCalls(ListCommandInvocationsCommand)) expect(call.args[0].input).toMatchObject({ CommandId: 'c-1', Details: true, MaxResults: 20 });
  });
});

/**
 * Step Functions Standard history events of one sweep execution (statemachine/sweep.asl.json):
 * ExecutionStarted; StartSweep (TaskStateEntered, LambdaFunctionScheduled, …Started,
 * …Succeeded, TaskStateExited: 5); per check WaitForHosts (2) + CheckSweep (5) + SweepDone? (2);
 * per report ReportSweep (5) + MoreToReport? (2); Swept (2); ExecutionSucceeded.
 */
function historyEvents(checks: number, reports: number, retries = 0): number {
  return 1 + 5 + checks * 9 + reports * 7 + 2 + 1 + retries * 3;
}

/** How many checks the longest sweep takes, each pause as the check computes it. */
function checksUntil(deadlineMs: number): number {
  let t = 0;
  let checks = 0;
  for (;;) {
    t += checkWaitSeconds(t, deadlineMs - t) * 1000;
    checks++;
    if (t >= deadlineMs) return checks;
  }
}

const measured: string[] = [];
afterAll(() => console.log(`sweep state machine history:\n${measured.join('\n')}`));

describe('the pause between checks, and the history it costs', () => {
  it('is 15 s at first, a quarter of the elapsed time, at most 5 min, never far past the deadline', () => {
    expect(checkWaitSeconds(0, 3_600_000)).toBe(MIN_CHECK_WAIT_SECONDS);
    expect(checkWaitSeconds(200_000, 3_600_000)).toBe(50);
    expect(checkWaitSeconds(10 * 3_600_000, 30 * 3_600_000)).toBe(MAX_CHECK_WAIT_SECONDS);
    expect(checkWaitSeconds(3_000_000, 4_500)).toBe(5);
    expect(checkWaitSeconds(3_000_000, 0)).toBe(1);
  });

  it('keeps a 48-hour sweep of 100,000 hosts far under the 25,000-event history limit', () => {
    const definition = JSON.parse(sweepDefinitionText()) as { States: Record<string, { Type: string }>; TimeoutSeconds: number };
    // The shape the count assumes: one Task start, a Wait/Task/Choice loop, a Task/Choice loop, Succeed.
    expect(Object.entries(definition.States).map(([n, s]) => `${n}:${s.Type}`)).toEqual([
      'StartSweep:Task', 'WaitForHosts:Wait', 'CheckSweep:Task', 'SweepDone?:Choice', 'ReportSweep:Task', 'MoreToReport?:Choice', 'Swept:Succeed',
    ]);
    // The execution's own timeout is later than any deadline the sweeper sets (+ reporting).
    expect(definition.TimeoutSeconds * 1000).toBeGreaterThan(MAX_SWEEP_MS);
    const checks = checksUntil(MAX_SWEEP_MS);
    const hostsPerReport = 10 * 50;
    const reports = Math.ceil(100_000 / hostsPerReport);
    // Even with every Lambda Task retried once.
    const events = historyEvents(checks, reports, checks + reports + 1);
    measured.push(`  48 h, 100,000 hosts: ${checks} checks, ${reports} reports → ${historyEvents(checks, reports)} events (${events} with every Task retried once); limit 25,000`);
    expect(events).toBeLessThan(25_000);
    // A fixed 60-second pause would not fit: why the pause grows.
    const fixed = historyEvents(MAX_SWEEP_MS / 60_000, reports);
    measured.push(`  (a fixed 60 s pause over 48 h: ${fixed} events)`);
    expect(fixed).toBeGreaterThan(25_000);
    // A sweep that ends at the default deadline (600 s delivery + 600 s execution + grace).
    const typical = checksUntil(1_200_000 + EXPIRY_GRACE_MS);
    measured.push(`  default deadline (25 min), 1,000 hosts: ${typical} checks → ${historyEvents(typical, 2)} events`);
  });
});

describe('rate controls as counts (SSM would floor 5% of 3 targets to 0)', () => {
  it('a positive percentage tolerates at least one host; counts and 0% pass as they are', () => {
    expect(rateControlCount('5%', 3, 'MaxErrors')).toBe('1');
    expect(rateControlCount('5%', 0, 'MaxErrors')).toBe('1');
    expect(rateControlCount('5%', 19, 'MaxErrors')).toBe('1');
    expect(rateControlCount('5%', 40, 'MaxErrors')).toBe('2');
    // As AWS documents it: 10% of 50 tolerates 5 (the sixth error stops the command).
    expect(rateControlCount('10%', 50, 'MaxErrors')).toBe('5');
    expect(rateControlCount('10%', 1000, 'MaxConcurrency')).toBe('100');
    expect(rateControlCount('0%', 1000, 'MaxErrors')).toBe('0');
    expect(rateControlCount('7', 3, 'MaxErrors')).toBe('7');
    expect(() => rateControlCount('101%', 3, 'MaxErrors')).toThrow(/invalid MaxErrors/);
    expect(() => rateControlCount('5 %', 3, 'MaxErrors')).toThrow(/invalid MaxErrors/);
  });
});
