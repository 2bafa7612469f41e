/**
 * The fleet sweep's waiting and summing, with SSM scripted by aws-sdk-client-mock (the real API
 * shape is exercised against the stand-in in test/integration/fleet-sweep.test.ts): pagination,
 * tag targets that resolve late, statuses, poll errors, giving up at the deadline, and what
 * SendCommand is asked to do.
 */
import { ListCommandInvocationsCommand, SendCommandCommand, SSMClient, SSMServiceException, type CommandInvocation } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import type { SweepRules } from '../../lambdas/core/host/host-steps.ts';
import { fleetSweep, type FleetSweepOptions } from '../../lambdas/core/sweep/fleet-sweep.ts';

const ssm = mockClient(SSMClient);
afterEach(() => ssm.reset());

const RULES: SweepRules = { previousBefore: '20260301T000000Z', keepNewest: 1, stagingBefore: '20260308T000000Z', failedBefore: '20260301T000000Z', nowEpochSeconds: 1_772_928_000, dryRun: false };
const OK = (previous: number, bytes: number, root = '/configs/plugins') =>
  `PLUGINSWEEP {"root":"${root}","ok":true,"counts":{"previous":${previous},"staging":0,"failed":0,"locks":0},"bytes":${bytes}}`;
const END = (roots: number, failed = 0) => `PLUGINSWEEP-END {"roots":${roots},"failed":${failed}}`;

function inv(id: string, status: string, output = '', details = status, code = status === 'Success' ? 0 : 1): CommandInvocation {
  return { InstanceId: id, CommandId: 'c-1', Status: status as CommandInvocation['Status'], StatusDetails: details, CommandPlugins: [{ Name: 'aws:runShellScript', Output: output, ResponseCode: code }] };
}

/** A fake clock that sleep() advances: no real waiting. */
function fakeTime(): Pick<FleetSweepOptions, 'sleep' | 'clock'> & { slept: number[] } {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    clock: () => now,
    sleep: async (ms) => {
      slept.push(ms);
      now += ms;
    },
  };
}

const client = () => new SSMClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });

describe('fleetSweep', () => {
  it('sends one Run Command as asked, polls with backoff, pages through 50 at a time, sums per host', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1', TargetCount: 120 } });
    const ids = Array.from({ length: 120 }, (_, i) => `i-${String(i).padStart(17, '0')}`);
    let round = 0;
    ssm.on(ListCommandInvocationsCommand).callsFake((input: { NextToken?: string; MaxResults?: number; Details?: boolean; CommandId?: string }) => {
      expect(input).toMatchObject({ CommandId: 'c-1', Details: true, MaxResults: 50 });
      const offset = input.NextToken ? Number(input.NextToken) : 0;
      if (offset === 0) round++;
      // Round 1: everything in progress; round 2: all done.
      const page = ids.slice(offset, offset + 50).map((id, k) =>
        round < 2 ? inv(id, 'InProgress') : inv(id, 'Success', `${OK(offset + k === 0 ? 3 : 1, 4096)}\n${END(1)}\n`),
      );
      return { CommandInvocations: page, NextToken: offset + 50 < ids.length ? String(offset + 50) : undefined };
    });
    const time = fakeTime();
    const summary = await fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, pollInitialMs: 1000, pollMaxMs: 4000, ...time });
    const sent = ssm.commandCalls(SendCommandCommand);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.args[0].input).toMatchObject({
      DocumentName: 'stack-plugin-host',
      Targets: [{ Key: 'tag-key', Values: ['WorkspaceId'] }],
      MaxConcurrency: '10%',
      MaxErrors: '5%',
      TimeoutSeconds: 600,
      Parameters: { executionTimeout: ['600'] },
    });
    expect(sent[0]!.args[0].input.Parameters!.operation).toEqual(['fleet-sweep']);
    expect(ssm.commandCalls(ListCommandInvocationsCommand)).toHaveLength(2 * 3);
    expect(summary).toMatchObject({ commandId: 'c-1', complete: true, polls: 2, pages: 6, dryRun: false, keepNewest: 1 });
    expect(time.slept).toEqual([1000, 2000]);
    expect(summary.hosts).toHaveLength(120);
    expect(summary.totals).toEqual({ counts: { previous: 122, staging: 0, failed: 0, locks: 0 }, bytes: 120 * 4096, hosts: 120, failed: 0, unfinished: 0 });
    expect(summary.hosts[0]).toEqual({ instanceId: ids[0], status: 'Success', outcome: 'swept', roots: [{ root: '/configs/plugins', counts: { previous: 3, staging: 0, failed: 0, locks: 0 }, bytes: 4096 }] });
  });

  it('passes custom targets, rate control and timeouts', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1', TargetCount: 1 } });
    ssm.on(ListCommandInvocationsCommand).resolves({ CommandInvocations: [inv('i-1', 'Success', END(0))] });
    await fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: { ...RULES, dryRun: true }, targets: [{ Key: 'tag:Env', Values: ['prod'] }], maxConcurrency: '25', maxErrors: '0', timeoutSeconds: 120, executionTimeoutSeconds: 90, ...fakeTime() });
    expect(ssm.commandCalls(SendCommandCommand)[0]!.args[0].input).toMatchObject({
      Targets: [{ Key: 'tag:Env', Values: ['prod'] }],
      MaxConcurrency: '25',
      MaxErrors: '0',
      TimeoutSeconds: 120,
      Parameters: { executionTimeout: ['90'] },
      Comment: 'plugin sweep (dry run) before 20260301T000000Z',
    });
  });

  it('tag targets resolved late (TargetCount 0): waits for a stable, all-terminal listing', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1', TargetCount: 0 } });
    ssm
      .on(ListCommandInvocationsCommand)
      .resolvesOnce({ CommandInvocations: [] })
      .resolvesOnce({ CommandInvocations: [inv('i-1', 'Success', END(0))] })
      .resolvesOnce({ CommandInvocations: [inv('i-1', 'Success', END(0)), inv('i-2', 'Pending')] })
      .resolves({ CommandInvocations: [inv('i-1', 'Success', END(0)), inv('i-2', 'Success', END(0))] });
    const summary = await fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, ...fakeTime() });
    // Poll 2 sees one invocation, all done, but the listing just grew: not yet. Poll 4 sees both
    // done and the same two as poll 3.
    expect(summary).toMatchObject({ complete: true, polls: 4 });
    expect(summary.hosts.map((h) => h.instanceId)).toEqual(['i-1', 'i-2']);
  });

  it('no instance carries the tag: done after a few empty polls', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1', TargetCount: 0 } });
    ssm.on(ListCommandInvocationsCommand).resolves({ CommandInvocations: [] });
    const summary = await fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, ...fakeTime() });
    expect(summary).toMatchObject({ complete: true, polls: 4, hosts: [], totals: { hosts: 0, failed: 0, bytes: 0 } });
  });

  it('reports every way an invocation can end badly', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1', TargetCount: 7 } });
    ssm.on(ListCommandInvocationsCommand).resolves({
      CommandInvocations: [
        inv('i-1', 'Failed', `${OK(2, 8192)}\nPLUGINSWEEP {"root":"/opt/configs/plugins","ok":false,"exit":21,"code":"HostIoError","message":"cannot delete .previous/x"}\n${END(2, 1)}`),
        inv('i-2', 'TimedOut', '', 'Delivery Timed Out', -1),
        inv('i-3', 'TimedOut', OK(1, 1), 'Execution Timed Out', -1),
        inv('i-4', 'Failed', '', 'Terminated', -1),
        inv('i-5', 'Cancelled', '', 'Canceled', -1),
        inv('i-6', 'Failed', 'sh: 1: cannot fork\n', 'Failed', 2),
        inv('i-7', 'Success', OK(1, 1)),
      ],
    });
    const summary = await fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, ...fakeTime() });
    const errors = Object.fromEntries(summary.hosts.map((h) => [h.instanceId, h.error]));
    expect(errors).toEqual({
      'i-1': '/opt/configs/plugins: HostIoError: cannot delete .previous/x',
      'i-2': 'the SSM agent did not pick the command up in time',
      'i-3': 'the sweep ran longer than its execution timeout and was stopped',
      'i-4': 'not run: the command reached its MaxErrors before this instance',
      'i-5': 'the command was cancelled',
      'i-6': 'failed (exit 2): sh: 1: cannot fork',
      'i-7': 'the summary is incomplete: its last line is missing from the command output',
    });
    // What did get swept still counts.
    expect(summary.totals).toMatchObject({ counts: { previous: 4 }, bytes: 8194, hosts: 7, failed: 7 });
    expect(summary.complete).toBe(true);
  });

  it('stops waiting at the deadline: running hosts are unfinished, not failed; complete false', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1', TargetCount: 3 } });
    ssm.on(ListCommandInvocationsCommand).resolves({ CommandInvocations: [inv('i-1', 'Success', `${OK(1, 10)}\n${END(1)}`), inv('i-2', 'InProgress'), inv('i-3', 'Pending')] });
    const time = fakeTime();
    const summary = await fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, maxWaitMs: 60_000, pollInitialMs: 1000, pollMaxMs: 10_000, ...time });
    expect(summary.complete).toBe(false);
    expect(summary.error).toMatch(/stopped waiting after 60s/);
    // A slow but healthy host is not a failed one (issue 10 item 8): its own outcome, no error.
    expect(summary.hosts[1]).toEqual({ instanceId: 'i-2', status: 'InProgress', outcome: 'unfinished', roots: [], note: expect.stringMatching(/still InProgress/) });
    expect(summary.hosts[2]).toMatchObject({ instanceId: 'i-3', status: 'Pending', outcome: 'unfinished' });
    expect(summary.hosts.filter((h) => h.error)).toEqual([]);
    expect(summary.totals).toMatchObject({ hosts: 3, failed: 0, unfinished: 2 });
    expect(time.slept.reduce((a, b) => a + b, 0)).toBe(60_000);
    expect(summary.polls).toBe(time.slept.length);
  });

  it('rides out throttled polls, gives up on a refused one', async () => {
    const throttled = new SSMServiceException({ name: 'ThrottlingException', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'Rate exceeded' });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1', TargetCount: 1 } });
    ssm.on(ListCommandInvocationsCommand).rejectsOnce(throttled).rejectsOnce(throttled).resolves({ CommandInvocations: [inv('i-1', 'Success', END(0))] });
    expect(await fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, ...fakeTime() })).toMatchObject({ complete: true, polls: 3 });

    ssm.reset();
    const denied = new SSMServiceException({ name: 'AccessDeniedException', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'no ssm:ListCommandInvocations' });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'c-1', TargetCount: 1 } });
    ssm.on(ListCommandInvocationsCommand).rejects(denied);
    const summary = await fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, ...fakeTime() });
    expect(summary).toMatchObject({ complete: false, polls: 1, hosts: [] });
    expect(summary.error).toMatch(/AccessDeniedException: no ssm:ListCommandInvocations/);
  });

  it('a refused SendCommand is an error naming the permission; bad settings never reach SSM', async () => {
    ssm.on(SendCommandCommand).rejects(new SSMServiceException({ name: 'AccessDeniedException', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: 'denied' }));
    await expect(fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, ...fakeTime() })).rejects.toMatchObject({ code: 'HostStepFailed', hint: expect.stringMatching(/ssm:SendCommand/) });
    ssm.reset();
    for (const bad of [
      { maxConcurrency: '0' },
      { maxConcurrency: '10 %' },
      { maxErrors: '-1' },
      { timeoutSeconds: 10 },
      { executionTimeoutSeconds: 0 },
      { targets: [] },
      { targets: [{ Key: 'tag;x', Values: ['a'] }] },
      { targets: [{ Key: 'tag-key', Values: ["Workspace'Id"] }] },
      { rules: { ...RULES, stagingBefore: 'soon' } },
    ] as Partial<FleetSweepOptions>[]) {
      const err = await fleetSweep({ client: client(), documentName: 'stack-plugin-host', rules: RULES, ...fakeTime(), ...bad }).catch((e: unknown) => e);
      expect(err, JSON.stringify(bad)).toBeInstanceOf(PluginError);
      expect((err as PluginError).code).toBe('InvalidInput');
    }
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });
});
