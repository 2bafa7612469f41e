/**
 * The SSM transport (lambdas/core/host/ssm-host.ts) against the local SSM API stand-in, through
 * HostSteps with the real SSMClient: every host operation, the tarball pulled by the host over
 * HTTP (curl), the script's exit codes carried by ResponseCode, transport failures (unmanaged
 * instance, throttling, timeouts, cancellation), a result line larger than SSM's 24,000-character
 * output limit, and the eventual consistency of GetCommandInvocation.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CancelCommandCommand,
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  SendCommandCommand,
  SSMClient,
  type CommandInvocation,
} from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { HostSteps, type PluginRef } from '../../lambdas/core/host/host-steps.ts';
import { SsmHost, decodeSsmStdout } from '../../lambdas/core/host/ssm-host.ts';
import type { Runtime } from '../../lambdas/core/runtimes.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { TEST_DOCUMENT_NAME, startSsmHarness, type SsmHarness } from '../servers/ssm-harness.ts';
import { AWS_RUN_SHELL_SCRIPT } from '../servers/ssm-api.ts';
import { failure, expectCode } from '../helpers/plugin-error.ts';

const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The killed command's process is gone within `ms`. The stand-in reports TimedOut (and
 * Cancelling, which the adapter treats as the end) as soon as it sends SIGKILL; the process is
 * reaped a moment later, so this polls instead of sampling once.
 */
async function expectNoneRunning(ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (harness.api.running() !== 0 && Date.now() < deadline) await sleep(25);
  expect(harness.api.running()).toBe(0);
}

let harness: SsmHarness;
let files: Server;
let baseUrl: string;
const hanging = new Set<ServerResponse>();
const tarballs: Record<string, Buffer> = {};

function pluginFiles(name: string, version: string): Record<string, string> {
  return {
    'plugin.yaml': `name: ${name}\nversion: ${version}\ndescription: ssm test\n`,
    'skills/greet/SKILL.md': `greet v${version}\n`,
  };
}

beforeAll(async () => {
  harness = await startSsmHarness();
  tarballs['v1.tgz'] = await goodTarball(pluginFiles('demo', '1.0.0'));
  tarballs['v2.tgz'] = await goodTarball(pluginFiles('demo', '2.0.0'));
  files = createServer((req, res) => {
    const path = (req.url ?? '/').slice(1);
    if (path === 'hang.tgz') {
      // Headers and a few bytes, then nothing: the host's download never finishes.
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': tarballs['v1.tgz']!.length });
      res.write(tarballs['v1.tgz']!.subarray(0, 64));
      return;
    }
    if (path === 'cut-v1.tgz') {
      // Half the body, then the connection drops: curl exits 18 (partial file).
      const body = tarballs['v1.tgz']!;
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length });
      res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    const slow = path.startsWith('slow-');
    const body = tarballs[slow ? path.slice('slow-'.length) : path];
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const send = () => res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length }).end(body);
    if (slow) setTimeout(send, 400);
    else send();
  });
  await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const res of hanging) res.destroy();
  await harness?.stop();
  files?.closeAllConnections();
  await new Promise<void>((resolve) => (files ? files.close(() => resolve()) : resolve()));
  expect(harness.api.running()).toBe(0);
});



function stepsFor(workspaceId: string, timeoutMs?: number, runtime: Runtime = 'claude-code'): { steps: HostSteps; root: string; instanceId: string } {
  const ws = harness.workspace(workspaceId, runtime);
  const target = harness.resolver(ws);
  return { steps: new HostSteps(target, timeoutMs), root: target.root, instanceId: ws.instanceId! };
}

const lease = (steps: HostSteps, ref: PluginRef) => steps.lock(ref, 'ssm-test', 0, 600);
const lastInvocation = () => harness.api.invocations().at(-1)!;

describe('SSM transport through HostSteps', () => {
  it('resolves ssm workspaces to an SsmHost and the runtime plugins root under the prefix', () => {
    const ws = harness.workspace('ws-resolve', 'hermes');
    const target = harness.resolver(ws);
    expect(target.host.transport).toBe('ssm');
    expect(target.host.streamsStdin).toBe(false);
    expect(target.root).toBe(`${harness.hostRoot}/home/ubuntu/.hermes/plugins`);
    expect(target.ownerSpec).toBe('1000:1000');
    expect(() => harness.resolver({ id: 'ws-local', runtime: 'claude-code', transport: 'local', localRoot: '/tmp' })).toThrow(PluginError);
    expect(() => harness.resolver({ ...ws, runtime: 'external' })).toThrow(/external/);
  });

  it('runs lock, stage (curl from a URL), swap, snapshot, mark, list, rollback and unlock', async () => {
    const { steps, root } = stepsFor('ws-ops');
    const live = join(root, 'demo');
    const sendsBefore = harness.api.calls.SendCommand ?? 0;

    // v1: a fresh install.
    const one: PluginRef = { name: 'demo', stamp: newStamp() };
    expect((await lease(steps, one)).result).toBe('acquired');
    expect((await lease(steps, one)).result).toBe('held');
    const staged = await steps.stage(one, sha256(tarballs['v1.tgz']!), 0, { url: `${baseUrl}/v1.tgz` }, 4096);
    // The tarball's files, nothing of the installer's own (no metadata is written into plugin directories).
    expect(staged).toEqual({ result: 'staged', files: Object.keys(pluginFiles('demo', '1.0.0')).length });
    // A first install: one rename, nothing displaced, so no snapshot.
    expect(await steps.swap(one)).toEqual({ result: 'renamed', how: 'rename' });
    expect(await steps.swap(one)).toEqual({ result: 'already' });
    expect(await steps.snapshot(one)).toBe('none');
    const installedAt = new Date().toISOString();
    expect(await steps.mark(one, { version: '1.0.0', sha256: sha256(tarballs['v1.tgz']!), execution: 'ws-ops-demo-1', installedAt })).toBe('marked');
    expect(await steps.unlock(one)).toBe('released');
    expect(await readFile(join(live, 'skills/greet/SKILL.md'), 'utf8')).toBe('greet v1.0.0\n');
    expect((await stat(join(live, 'plugin.yaml'))).uid).toBe(1000);

    // v2 over it, then the rollback puts v1 back.
    const two: PluginRef = { name: 'demo', stamp: newStamp() };
    await lease(steps, two);
    await expectCode(lease(steps, { name: 'demo', stamp: newStamp() }), 'LockBusy');
    await expectCode(steps.swap(two), 'StagingMissing');
    expect((await steps.stage(two, sha256(tarballs['v2.tgz']!), 0, { url: `${baseUrl}/v2.tgz` })).result).toBe('staged');
    // Snapshot files what the swap displaced: before the swap there is nothing of ours to file.
    await expectCode(steps.snapshot(two), 'LiveNotOurs');
    const v1Inode = (await stat(live)).ino;
    expect(await steps.swap(two)).toEqual({ result: 'exchanged', how: expect.stringMatching(/^(mv-exchange|exch|perl-renameat2:(316|276)|python3-renameat2)$/) });
    expect(await steps.snapshot(two)).toBe('moved');
    expect((await stat(join(root, '.previous', `demo.${two.stamp}`))).ino).toBe(v1Inode);
    expect(await steps.mark(two, { version: '2.0.0', sha256: sha256(tarballs['v2.tgz']!), execution: 'ws-ops-demo-2', installedAt })).toBe('marked');
    const listed = await steps.list();
    const demo = listed.plugins.find((p) => p.name === 'demo');
    expect(demo).toEqual({ name: 'demo', complete: true, stamp: two.stamp, marker: { name: 'demo', version: '2.0.0', sha256: sha256(tarballs['v2.tgz']!), stamp: two.stamp, installedAt, execution: 'ws-ops-demo-2' } });
    expect(listed.previous).toContainEqual({ name: 'demo', stamp: two.stamp, pinned: false });

    // The undo exchanges the snapshot back into live (never a moment without the plugin) and
    // keeps the rolled-back v2 under .failed as evidence.
    const undone = await steps.rollback(two);
    expect(undone).toEqual({ live: 'restored', changed: true, actions: ['exchanged-back', 'moved-ours-to-failed'], lock: 'released' });
    expect(await readFile(join(live, 'skills/greet/SKILL.md'), 'utf8')).toBe('greet v1.0.0\n');
    expect((await stat(live)).ino).toBe(v1Inode);
    expect(await readFile(join(root, '.failed', `demo.${two.stamp}`, 'skills/greet/SKILL.md'), 'utf8')).toBe('greet v2.0.0\n');
    await expect(stat(join(root, '.previous', `demo.${two.stamp}`))).rejects.toThrow();
    expect(await steps.rollback(two)).toEqual({ live: 'untouched', changed: false, actions: [], lock: 'free' });
    expect(await steps.unlock(two)).toBe('not-held');
    expect(harness.api.calls.SendCommand! - sendsBefore).toBe(20);
  });

  it('stage from a URL that answers 404 fails with FetchFailed', async () => {
    const { steps, root } = stepsFor('ws-404');
    const ref: PluginRef = { name: 'missing', stamp: newStamp() };
    await lease(steps, ref);
    const error = await expectCode(steps.stage(ref, sha256(tarballs['v1.tgz']!), 0, { url: `${baseUrl}/nope.tgz` }), 'FetchFailed');
    expect(error.message).toMatch(/download/);
    expect(lastInvocation()).toMatchObject({ status: 'Failed', responseCode: 20 });
    // A failed stage removes everything it wrote.
    await expect(stat(join(root, '.staging', `missing.${ref.stamp}.partial`))).rejects.toThrow();
    await expect(stat(join(root, '.staging', `missing.${ref.stamp}.work`))).rejects.toThrow();
    await expect(stat(join(root, '.locks', `.stage.missing.${ref.stamp}`))).rejects.toThrow();
  });

  it('stage of bytes that do not hash to the sha256 fails with TransferCorrupted', async () => {
    const { steps } = stepsFor('ws-sha');
    const ref: PluginRef = { name: 'corrupt', stamp: newStamp() };
    await lease(steps, ref);
    const error = await expectCode(steps.stage(ref, 'a'.repeat(64), 0, { url: `${baseUrl}/v1.tgz` }), 'TransferCorrupted');
    expect(error.retryable).toBe(true);
    expect(lastInvocation()).toMatchObject({ status: 'Failed', statusDetails: 'Failed', responseCode: 13 });
  });

  it('a download cut off mid-body is TransferCorrupted (retried, like a stream dropped over SSH), and leaves nothing staged', async () => {
    const { steps, root } = stepsFor('ws-cut');
    const ref: PluginRef = { name: 'cut', stamp: newStamp() };
    await lease(steps, ref);
    const error = await expectCode(steps.stage(ref, sha256(tarballs['v1.tgz']!), 0, { url: `${baseUrl}/cut-v1.tgz` }), 'TransferCorrupted');
    expect(error.message).toMatch(/cut off \(exit 18\)/);
    expect(error.retryable).toBe(true);
    expect(lastInvocation()).toMatchObject({ status: 'Failed', responseCode: 13 });
    await expect(stat(join(root, '.staging', `cut.${ref.stamp}.partial`))).rejects.toThrow();
    await expect(stat(join(root, '.staging', `cut.${ref.stamp}`))).rejects.toThrow();
    // The retry with the same stamp stages cleanly.
    expect(await steps.stage(ref, sha256(tarballs['v1.tgz']!), 0, { url: `${baseUrl}/v1.tgz` })).toMatchObject({ result: 'staged' });
    expect(await steps.rollback(ref)).toEqual({ live: 'absent', changed: false, actions: ['removed-staging'], lock: 'released' });
  });

  it('an instance SSM does not manage (or does not know) is HostUnreachable, naming the instance', async () => {
    const sendsBefore = harness.api.invocations().length;
    for (const instanceId of ['i-0aaaaaaaaaaaaaaa1', 'i-0bbbbbbbbbbbbbbb2']) {
      if (instanceId.endsWith('1')) harness.api.instances[instanceId] = { root: harness.hostRoot, managed: false };
      const target = harness.resolver({ id: 'ws-unmanaged', runtime: 'claude-code', transport: 'ssm', instanceId, privateIp: '127.0.0.1' });
      const error = await expectCode(new HostSteps(target).list(), 'HostUnreachable');
      expect(error.message).toContain(instanceId);
      expect(error.message).toMatch(/not managed by SSM or not online/);
      expect(error.hint).toMatch(/SSM agent/);
      expect(error.hint).toMatch(/instance profile/);
      expect(error.retryable).toBe(true);
    }
    expect(harness.api.invocations().length).toBe(sendsBefore);
  });

  it('a step that outlives its execution timeout is killed on the host and becomes HostTimeout', async () => {
    const { steps } = stepsFor('ws-hang', 1_000);
    const ref: PluginRef = { name: 'hangs', stamp: newStamp() };
    // The lease with the default timeout: only the stage is meant to run out of time.
    await lease(stepsFor('ws-hang').steps, ref);
    const error = await expectCode(steps.stage(ref, sha256(tarballs['v1.tgz']!), 0, { url: `${baseUrl}/hang.tgz` }), 'HostTimeout');
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/ran longer than its 1s execution timeout/);
    expect(lastInvocation()).toMatchObject({ status: 'TimedOut', statusDetails: 'Execution Timed Out', history: ['Pending', 'InProgress', 'TimedOut'] });
    await expectNoneRunning();
  });

  it('a command the agent never picks up is cancelled after the step timeout: HostTimeout', async () => {
    const { steps, instanceId } = stepsFor('ws-stuck', 1_000);
    harness.api.instances[instanceId]!.deliveryDelayMs = 60_000;
    const cancels = harness.api.calls.CancelCommand ?? 0;
    const error = await expectCode(steps.list(), 'HostTimeout');
    expect(error.message).toMatch(/did not finish within 1s/);
    expect(harness.api.calls.CancelCommand).toBe(cancels + 1);
    expect(lastInvocation()).toMatchObject({ status: 'Cancelled', history: ['Pending', 'Cancelled'] });
  });

  it('a command cancelled by someone else is HostStepInterrupted', async () => {
    const { steps, instanceId } = stepsFor('ws-cancelled', 30_000);
    const ref: PluginRef = { name: 'cancelled', stamp: newStamp() };
    await lease(steps, ref);
    const staging = steps.stage(ref, sha256(tarballs['v1.tgz']!), 0, { url: `${baseUrl}/hang.tgz` });
    const caught = failure(staging);
    // An operator finds the running invocation and cancels it.
    let running: CommandInvocation | undefined;
    for (let i = 0; i < 100 && !running; i++) {
      await sleep(50);
      const page = await harness.client.send(new ListCommandInvocationsCommand({ InstanceId: instanceId, MaxResults: 5 }));
      running = page.CommandInvocations?.find((c) => c.Status === 'InProgress' && c.Comment === 'plugin-host stage');
    }
    expect(running).toBeDefined();
    await harness.client.send(new CancelCommandCommand({ CommandId: running!.CommandId! }));
    const error = await caught;
    expect(error.code, error.message).toBe('HostStepInterrupted');
    await expectNoneRunning();
  });

  it('a list whose result line exceeds SSM\'s 24,000-character output limit still parses', async () => {
    // Its own runtime root (every fake instance shares this machine's disk), removed afterwards.
    const { steps, root } = stepsFor('ws-big', undefined, 'langgraph');
    onTestFinished(() => rm(root, { recursive: true, force: true }));
    const names: string[] = [];
    // What the installer records when it marks a directory: root's, under .meta/, keyed by inode.
    await mkdir(join(root, '.meta'), { recursive: true, mode: 0o700 });
    const stamp = '20260101T000000Z-abcd';
    for (let i = 0; i < 400; i++) {
      const name = `p${String(i).padStart(3, '0')}-${'long-plugin-name-'.repeat(7)}end`;
      names.push(name);
      await mkdir(join(root, name), { recursive: true });
      const complete = `${JSON.stringify({ name, version: '1.0.0', sha256: 'b'.repeat(64), stamp })}\n`;
      if (i % 10 === 0) {
        // Marked by the installer: a record and a .complete.
        await writeFile(join(root, name, '.complete'), complete);
        const { dev, ino } = await stat(join(root, name));
        await writeFile(join(root, '.meta', `${name}@${dev}-${ino}`), `stamp=${stamp}\nversion=1.0.0\nsha256=${'b'.repeat(64)}\ninstalledAt=2026-01-01T00:00:00.000Z\nexecution=ws-big-exec\n`);
      } else if (i % 10 === 5) {
        // A .complete the agent wrote itself: without the installer's record it is not believed.
        await writeFile(join(root, name, '.complete'), complete);
      }
    }
    const listed = await steps.list();
    expect(listed.plugins.map((p) => p.name).sort()).toEqual(names);
    expect(listed.plugins.filter((p) => p.complete).map((p) => p.name).sort()).toEqual(names.filter((_, i) => i % 10 === 0));
    expect(listed.plugins.find((p) => p.name === names[10])).toEqual({
      name: names[10],
      complete: true,
      stamp,
      marker: { name: names[10], version: '1.0.0', sha256: 'b'.repeat(64), stamp, installedAt: '2026-01-01T00:00:00.000Z', execution: 'ws-big-exec' },
    });
    expect(listed.plugins.find((p) => p.name === names[15])).toEqual({ name: names[15], complete: false, stamp: '' });
    const raw = lastInvocation().stdout;
    expect(raw.startsWith('PLUGINHOST-GZ64:')).toBe(true);
    expect(raw.length).toBeLessThan(24_000);
    expect(decodeSsmStdout(raw).length).toBeGreaterThan(24_000 * 2);
  }, 180_000); // 28 s under load: a 30 s limit failed a full run

  it('polls through InvocationDoesNotExist right after SendCommand', async () => {
    const { steps } = stepsFor('ws-race');
    const gets = harness.api.calls.GetCommandInvocation ?? 0;
    harness.api.failNext('GetCommandInvocation', 'InvocationDoesNotExist', { times: 3, message: '' });
    const listed = await steps.list();
    expect(Array.isArray(listed.plugins)).toBe(true);
    const inv = lastInvocation();
    // 3 injected + the stand-in's own invisible first poll, then at least one real answer.
    expect(inv.polls).toBeGreaterThanOrEqual(2);
    expect(harness.api.calls.GetCommandInvocation! - gets).toBeGreaterThanOrEqual(5);
  });

  it('observes the real status progression Pending → InProgress → Success', async () => {
    const { steps, instanceId } = stepsFor('ws-progress');
    // Pending long enough that a poll sees it however loaded the machine is.
    harness.api.instances[instanceId]!.deliveryDelayMs = 1_000;
    const served = { ...harness.api.served };
    const ref: PluginRef = { name: 'progress', stamp: newStamp() };
    await lease(steps, ref);
    expect((await steps.stage(ref, sha256(tarballs['v1.tgz']!), 0, { url: `${baseUrl}/slow-v1.tgz` })).result).toBe('staged');
    expect(lastInvocation().history).toEqual(['Pending', 'InProgress', 'Success']);
    expect(harness.api.served.Pending! - (served.Pending ?? 0)).toBeGreaterThanOrEqual(1);
    expect(harness.api.served.InProgress! - (served.InProgress ?? 0)).toBeGreaterThanOrEqual(1);
  });

  it('throttling and server faults of the SSM API are HostUnreachable (retryable); one throttle is absorbed by the SDK', async () => {
    const { steps, instanceId } = stepsFor('ws-throttle');
    const noRetry = new SSMClient({ ...harness.clientConfig, maxAttempts: 1 });
    try {
      const host = new SsmHost(instanceId, { client: noRetry, documentName: TEST_DOCUMENT_NAME, pollInitialMs: 25, pollMaxMs: 100 });
      const strict = new HostSteps({ host, root: `${harness.hostRoot}/configs/plugins`, ownerSpec: '1000:1000' });
      harness.api.failNext('SendCommand', 'ThrottlingException', { message: 'Rate exceeded' });
      let error = await expectCode(strict.list(), 'HostUnreachable');
      expect(error.message).toMatch(/throttling or unavailable.*Rate exceeded/);
      expect(error.retryable).toBe(true);
      harness.api.failNext('SendCommand', 'InternalServerError', { status: 500 });
      error = await expectCode(strict.list(), 'HostUnreachable');
      expect(error.retryable).toBe(true);
    } finally {
      noRetry.destroy();
    }
    const sends = harness.api.calls.SendCommand!;
    harness.api.failNext('SendCommand', 'ThrottlingException');
    expect((await steps.list()).plugins).toBeDefined();
    expect(harness.api.calls.SendCommand).toBe(sends + 2);
  });

  it('refuses a stdin stream: the SSM transport cannot stream', async () => {
    const host = harness.resolver(harness.workspace('ws-stdin')).host;
    const error = await expectCode(host.run({ op: 'list', args: ['/configs/plugins'], stdin: Readable.from([Buffer.from('x')]) }), 'HostStepFailed');
    expect(error.message).toMatch(/cannot stream/);
  });

  it("sends one command of the stack's own document: the operation, its arguments base64-encoded, an execution timeout, a comment", async () => {
    const { steps } = stepsFor('ws-shape', 42_500);
    await steps.list();
    const inv = lastInvocation();
    const got = await harness.client.send(new GetCommandInvocationCommand({ CommandId: inv.commandId, InstanceId: inv.instanceId }));
    expect(got).toMatchObject({ Status: 'Success', ResponseCode: 0, Comment: 'plugin-host list', DocumentName: TEST_DOCUMENT_NAME, PluginName: 'pluginHost' });
    expect(got.StandardOutputContent).toMatch(/^\{"ok":true,"op":"list"/);
    const listed = await harness.client.send(new ListCommandInvocationsCommand({ CommandId: inv.commandId, Details: true }));
    expect(listed.CommandInvocations?.[0]?.CommandPlugins?.[0]).toMatchObject({ Name: 'pluginHost', Status: 'Success', ResponseCode: 0 });
    expect(Object.keys(inv.parameters).sort()).toEqual(['arguments', 'executionTimeout', 'operation']);
    expect(inv.parameters).toMatchObject({ operation: ['list'], executionTimeout: ['43'] });
    const args = inv.parameters.arguments![0]!.split(' ').map((w) => Buffer.from(w, 'base64').toString('utf8'));
    expect(args).toEqual([`x${harness.hostRoot}/configs/plugins`]);
    expect(inv.timeoutSeconds).toBe(43);
  });
});

describe('SSM API stand-in: fleet commands (Targets, MaxConcurrency, MaxErrors, pagination)', () => {
  // A deadline, not a count of polls: under load the invocations run their real scripts slowly.
  async function waitForAll(commandId: string, count: number, deadlineMs = 120_000): Promise<CommandInvocation[]> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const all: CommandInvocation[] = [];
      let token: string | undefined;
      do {
        const page = await harness.client.send(new ListCommandInvocationsCommand({ CommandId: commandId, MaxResults: 2, NextToken: token, Details: true }));
        all.push(...(page.CommandInvocations ?? []));
        token = page.NextToken;
      } while (token);
      if (all.length === count && all.every((c) => !['Pending', 'InProgress', 'Cancelling'].includes(c.Status!))) return all;
      if (Date.now() > deadline) throw new Error(`fleet command did not finish within ${deadlineMs} ms`);
      await sleep(50);
    }
  }

  it('runs a tag-targeted command on every matching managed instance, at most MaxConcurrency at a time', async () => {
    const fleet = ['i-0f00000000000000a', 'i-0f00000000000000b', 'i-0f00000000000000c', 'i-0f00000000000000d', 'i-0f00000000000000e'];
    for (const id of fleet) harness.api.instances[id] = { root: harness.hostRoot, tags: { Fleet: 'blue' } };
    harness.api.instances['i-0f00000000000000f'] = { root: harness.hostRoot, tags: { Fleet: 'blue' }, managed: false };
    harness.api.instances['i-0f000000000000010'] = { root: harness.hostRoot, tags: { Fleet: 'green' } };
    harness.api.documents['AWS-RunShellScript'] = AWS_RUN_SHELL_SCRIPT;
    const sent = await harness.client.send(new SendCommandCommand({
      DocumentName: 'AWS-RunShellScript',
      Targets: [{ Key: 'tag:Fleet', Values: ['blue'] }],
      MaxConcurrency: '2',
      MaxErrors: '0',
      Parameters: { commands: ['echo "on $AWS_SSM_INSTANCE_ID"', 'sleep 0.2'] },
    }));
    expect(sent.Command).toMatchObject({ TargetCount: 5, MaxConcurrency: '2' });
    const all = await waitForAll(sent.Command!.CommandId!, 5);
    expect(all.map((c) => c.InstanceId).sort()).toEqual(fleet);
    for (const c of all) {
      expect(c.Status).toBe('Success');
      expect(c.CommandPlugins?.[0]?.Output).toBe(`on ${c.InstanceId}\n`);
    }
    const windows = harness.api.invocations().filter((i) => i.commandId === sent.Command!.CommandId).map((i) => [i.startedAt!.getTime(), i.endedAt!.getTime()] as const);
    for (const [start] of windows) {
      expect(windows.filter(([s, e]) => s <= start && start < e).length).toBeLessThanOrEqual(2);
    }
  });

  it('stops sending to further instances once MaxErrors is exceeded (Terminated)', async () => {
    const fleet = ['i-0e00000000000000a', 'i-0e00000000000000b', 'i-0e00000000000000c', 'i-0e00000000000000d'];
    for (const id of fleet) harness.api.instances[id] = { root: harness.hostRoot, tags: { Fleet: 'red' } };
    harness.api.documents['AWS-RunShellScript'] = AWS_RUN_SHELL_SCRIPT;
    const sent = await harness.client.send(new SendCommandCommand({
      DocumentName: 'AWS-RunShellScript',
      Targets: [{ Key: 'tag:Fleet', Values: ['red'] }],
      MaxConcurrency: '1',
      MaxErrors: '1',
      Parameters: { commands: ['echo failing >&2', 'exit 3'] },
    }));
    const all = await waitForAll(sent.Command!.CommandId!, 4);
    const failed = all.filter((c) => c.StatusDetails === 'Failed');
    expect(failed).toHaveLength(2);
    expect(failed.every((c) => c.CommandPlugins?.[0]?.ResponseCode === 3)).toBe(true);
    expect(all.filter((c) => c.StatusDetails === 'Terminated')).toHaveLength(2);
  });
});
