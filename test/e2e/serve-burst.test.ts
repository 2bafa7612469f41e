/**
 * `pluginctl serve` (in-process server, real workflows and host steps) under a small burst from
 * autocannon: 40 connections at once over 5 workspaces (installs of two versions, lists,
 * downloads, execution reads), two requests each. The invariants of bench/api-load.ts
 * (test/helpers/burst-invariants.ts) must hold: no 5xx, no lost or duplicated execution, one whole
 * marked version per workspace, busy answers 409 LockBusy with a hint. Nothing here is timed.
 *
 * Also the defect a burst can meet: two key-less installs on one (workspace, plugin) drawing the
 * same stamp (same millisecond, same two random characters: 1 in 1,296) got ONE execution, the
 * second answered as an Idempotency-Key replay of the first. The stamp is forced here (the
 * coincidence, not the protocol, is what the mock stands for).
 *
 * And the two the bench's burst met (bench/api-load.ts, 200 connections, load ~19 on 2 cores):
 * - requests lost on keep-alive connections: serve closed a connection idle for Node's default
 *   5 s while a starved client was sending its next request on it (autocannon timeouts, 130 in
 *   one run); serve now keeps idle connections 65 s, so the client closes first;
 * - a download between an install's swap and its marker answered 404 NotInstalled ("install it
 *   first") for a plugin being changed; it is 409 LockBusy with a hint to retry.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startServer, type RunningServer } from '../../bin/cli/serve.ts';
import { runBurst } from '../helpers/api-burst.ts';
import { gateHostOp } from '../helpers/host-gate.ts';
import { burstProblems, prepareBurstHome, seedInstalls, waitForExecution, type BurstWorld } from '../helpers/burst-invariants.ts';

/** Stamps the next newStamp() calls return instead of fresh ones (empty: the real newStamp). */
const forcedStamps = vi.hoisted(() => [] as string[]);
vi.mock('../../lambdas/core/stamp.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../lambdas/core/stamp.ts')>();
  return { ...real, newStamp: (now?: Date) => forcedStamps.shift() ?? real.newStamp(now) };
});

const TOKEN = 'burst-token-0123456789abcdef0123456789';
/** Bounds a hang only: a loaded CI machine is slow, not wrong. */
const DRAIN_MS = 300_000;
let scratch: string;
let server: RunningServer;
let world: BurstWorld;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'serve-burst-'));
  const catalog = join(scratch, 'catalog');
  world = { url: '', token: TOKEN, home: join(scratch, 'home'), plugin: 'burst-plugin', versions: ['1.0.0', '2.0.0'], workspaces: ['b1', 'b2', 'b3', 'b4', 'b5'], files: 12 };
  await prepareBurstHome(world, catalog);
  // Short lock-retry pauses: an install that meets a held lock gives up (FAILED LockBusy) soon.
  server = await startServer({ home: world.home, catalogDir: catalog, token: TOKEN, port: 0, retryDelayMs: 20 });
  world.url = server.url;
}, 120_000);
afterAll(async () => {
  await server?.close();
  await rm(scratch, { recursive: true, force: true });
});

describe('pluginctl serve under a burst', () => {
  it('40 concurrent requests over 5 workspaces: no 5xx, no lost or duplicated execution, one whole marked version each', async () => {
    const seeds = await seedInstalls(world, DRAIN_MS);
    const run = await runBurst({
      url: world.url,
      token: TOKEN,
      workspaces: world.workspaces,
      plugin: world.plugin,
      versions: world.versions,
      connections: { install: 16, list: 8, download: 8, execution: 8 },
      rounds: 2,
      knownExecutions: seeds,
      timeoutSeconds: 240,
    });
    const { problems, counts } = await burstProblems(world, run, seeds, DRAIN_MS);
    expect(problems).toEqual([]);
    expect(run.routes.install.requests + run.routes.list.requests + run.routes.download.requests + run.routes.execution.requests).toBe(80);
    expect(counts.installs.accepted + counts.installs.busy).toBe(32);
    // Something was installed by the burst itself, not only refused.
    expect(counts.installs.succeeded).toBeGreaterThan(0);
  }, 600_000);

  it('two key-less installs that draw the same stamp start two executions, neither a replay', async () => {
    const stamp = '20261202T120000Z-0aaa';
    const install = async () => {
      forcedStamps.push(stamp);
      const res = await fetch(`${world.url}/workspaces/b1/plugins`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: `local://${world.plugin}@${world.versions[0]}` }),
      });
      return { status: res.status, replayed: res.headers.get('idempotent-replayed'), json: (await res.json()) as { installId: string } };
    };
    const first = await install();
    // The first has ended (and released the lock) before the second arrives: only the stamps meet.
    await waitForExecution(world, first.json.installId, Date.now() + DRAIN_MS);
    const second = await install();
    forcedStamps.length = 0;
    expect(first).toMatchObject({ status: 202, replayed: null });
    expect(second).toMatchObject({ status: 202, replayed: null });
    expect(second.json.installId).not.toBe(first.json.installId);
    const drainBy = Date.now() + DRAIN_MS;
    expect(await waitForExecution(world, second.json.installId, drainBy)).toMatchObject({ status: 'SUCCEEDED' });
  }, 600_000);

  it('keeps an idle keep-alive connection open past a client\'s idle gap: the next request on it is answered', async () => {
    const socket = connect(Number(new URL(world.url).port), '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    let received = '';
    let closed = false;
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    socket.once('close', () => (closed = true));
    const request = `GET /executions/install.none HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`;
    const answers = () => received.match(/^HTTP\/1\.1 \d+/gm) ?? [];
    socket.write(request);
    while (answers().length < 1 && !closed) await new Promise((resolve) => setTimeout(resolve, 10));
    // A client without an idle limit of its own (autocannon, many HTTP libraries) pauses, as a
    // starved one did in the burst; Node's default 5 s timeout closed the connection under it.
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    if (!closed) socket.write(request);
    while (answers().length < 2 && !closed) await new Promise((resolve) => setTimeout(resolve, 10));
    socket.destroy();
    expect(answers()).toEqual(['HTTP/1.1 404', 'HTTP/1.1 404']);
  }, 120_000);

  it('a download while an install has swapped a new version in but not marked it is 409 LockBusy, not 404', async () => {
    const hosts = server.deps.hosts;
    const gate = gateHostOp(hosts, 'b2', 'mark');
    server.deps.hosts = gate.resolver;
    try {
      const started = await fetch(`${world.url}/workspaces/b2/plugins`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: `local://${world.plugin}@${world.versions[1]}` }),
      });
      expect(started.status).toBe(202);
      await gate.entered;
      const download = await fetch(`${world.url}/workspaces/b2/plugins/${world.plugin}/download`, { redirect: 'manual', headers: { authorization: `Bearer ${TOKEN}` } });
      expect({ status: download.status, body: await download.json() }).toMatchObject({
        status: 409,
        body: { error: { code: 'LockBusy', message: expect.stringContaining('being changed'), hint: 'retry when the running operation finishes' } },
      });
      gate.open();
      const drainBy = Date.now() + DRAIN_MS;
      expect(await waitForExecution(world, ((await started.json()) as { installId: string }).installId, drainBy)).toMatchObject({ status: 'SUCCEEDED' });
    } finally {
      gate.open();
      server.deps.hosts = hosts;
    }
    const after = await fetch(`${world.url}/workspaces/b2/plugins/${world.plugin}/download`, { redirect: 'manual', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(after.status).toBe(302);
  }, 600_000);
});
