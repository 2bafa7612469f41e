/**
 * `npm run bench:api` (`npx tsx bench/api-load.ts [--workspaces N] [--connections N] [--rounds N]`):
 * `pluginctl serve` under a burst a control plane can produce, from a real load tool (autocannon).
 *
 * Serve runs as its own process (`node bin/pluginctl.js serve --port 0`, the compiled CLI, rebuilt
 * first if stale) on a random loopback port, with a fresh PLUGINCTL_HOME: `--workspaces` local
 * workspaces (default 20) and a catalog holding two versions of a sample plugin (20 small files;
 * the numbers are the API's, not tar's). The first version is installed everywhere through the
 * API first, so downloads and execution reads have something to find. Then:
 *
 *   floor   GET /workspaces/{id}/plugins without the token (401 before any route code runs):
 *           the server's floor, measured in the same run at the same concurrency and count
 *   burst   `--connections` (default 200) at once, split over four autocannon instances so each
 *           route has its own figures: installs 40% (both versions, interleaved, round the
 *           workspaces), lists 20%, downloads 20%, execution reads 20%; `--rounds` requests per
 *           connection (default 3)
 *
 * The bench then checks the invariants (test/helpers/burst-invariants.ts: no 5xx, no lost or
 * duplicated execution counted from GET /executions/{id} and from serve's events.jsonl, one whole
 * marked version per workspace, busy answers 409 LockBusy with a hint) and fails loudly, with no
 * figures, if one is broken. Results: bench/results/api-load.json and stdout (requests/s, p50 and
 * p95 latency per route, each against the floor; status counts).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BURST_ROUTES, runBurst, runFloor, type Answer, type BurstPlan, type RouteRun } from '../test/helpers/api-burst.ts';
import { burstProblems, prepareBurstHome, seedInstalls, type BurstWorld } from '../test/helpers/burst-invariants.ts';
import { fmt, gitState, machineInfo, REPO, RESULTS_DIR, round, table } from './common.ts';

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { workspaces: { type: 'string', default: '20' }, connections: { type: 'string', default: '200' }, rounds: { type: 'string', default: '3' } },
  strict: true,
});
const WORKSPACES = Number(values.workspaces);
const CONNECTIONS = Number(values.connections);
const ROUNDS = Number(values.rounds);
for (const [name, n, min, max] of [['workspaces', WORKSPACES, 1, 1000], ['connections', CONNECTIONS, 5, 2000], ['rounds', ROUNDS, 1, 100]] as const) {
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
}

const CLI = join(REPO, 'bin', 'pluginctl.js');
/** How long the seed installs, and the burst's executions after it, may take before it counts as a hang. */
const DRAIN_DEADLINE_MS = 10 * 60_000;

/** `pluginctl serve --port 0` as its own process; resolves with its URL once it listens. */
async function startServe(home: string, catalog: string, token: string): Promise<{ url: string; child: ChildProcess; log: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0'], {
    cwd: REPO,
    env: { ...process.env, PLUGINCTL_HOME: home, PLUGINCTL_CATALOG: catalog, PLUGINCTL_TOKEN: token, PLUGINCTL_RETRY_DELAY_MS: undefined },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    // The per-request log is kept short: only the tail is shown if serve fails.
    stderr = (stderr + c).slice(-20_000);
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`pluginctl serve exited ${code} before listening: ${stdout}${stderr}`)));
  });
  return { url, child, log: () => stderr };
}

async function stopServe(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return exited;
}

const loadStart = loadavg();
const scratch = await mkdtemp(join(tmpdir(), 'bench-api-'));
let serve: Awaited<ReturnType<typeof startServe>> | undefined;
try {
  execFileSync(process.execPath, [join(REPO, 'scripts', 'build-cli.js'), '--if-stale'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const token = randomBytes(24).toString('hex');
  const catalog = join(scratch, 'catalog');
  const world: Omit<BurstWorld, 'url'> = {
    token,
    home: join(scratch, 'home'),
    plugin: 'bench-api',
    versions: ['1.0.0', '2.0.0'],
    workspaces: Array.from({ length: WORKSPACES }, (_, i) => `load-${String(i + 1).padStart(2, '0')}`),
    files: 20,
  };
  await prepareBurstHome({ ...world, url: '' }, catalog);
  serve = await startServe(world.home, catalog, token);
  const full: BurstWorld = { ...world, url: serve.url };
  process.stderr.write(`serve at ${serve.url}; seeding ${world.plugin} ${world.versions[0]} on ${WORKSPACES} workspaces…\n`);
  const seeds = await seedInstalls(full, DRAIN_DEADLINE_MS);

  const install = Math.round(CONNECTIONS * 0.4);
  const rest = CONNECTIONS - install;
  const connections = { install, list: Math.floor(rest / 3), download: Math.floor(rest / 3), execution: rest - 2 * Math.floor(rest / 3) };
  const plan: BurstPlan = { url: serve.url, token, workspaces: world.workspaces, plugin: world.plugin, versions: world.versions, connections, rounds: ROUNDS, knownExecutions: seeds, timeoutSeconds: 120 };
  const floorAnswers: Answer[] = [];
  process.stderr.write(`floor: ${CONNECTIONS} connections × ${ROUNDS} unauthenticated GETs…\n`);
  const floor = await runFloor(plan, floorAnswers);
  const loadBurst = loadavg();
  process.stderr.write(`burst: ${CONNECTIONS} connections × ${ROUNDS} (install ${connections.install}, list ${connections.list}, download ${connections.download}, execution ${connections.execution})…\n`);
  const burst = await runBurst(plan);
  process.stderr.write('waiting for every accepted execution to end, then checking the invariants…\n');
  const { problems, counts } = await burstProblems(full, burst, seeds, DRAIN_DEADLINE_MS);
  if (floor.statuses['401'] !== floor.requests) problems.push(`the floor answered ${JSON.stringify(floor.statuses)} (expected only 401)`);
  const exitCode = await stopServe(serve.child);
  if (exitCode !== 0) problems.push(`pluginctl serve exited ${exitCode} on SIGTERM`);
  if (problems.length) {
    throw new Error(`the burst broke ${problems.length} invariant(s):\n  ${problems.slice(0, 40).join('\n  ')}\n--- serve's log (tail) ---\n${serve.log().slice(-4000)}`);
  }

  const ratio = (r: RouteRun) => ({ rpsOverFloor: round(r.rps / floor.rps, 3), p50OverFloor: round(r.p50Ms / floor.p50Ms, 2), p95OverFloor: round(r.p95Ms / floor.p95Ms, 2) });
  const result = {
    when: new Date().toISOString(),
    command: `npm run bench:api -- --workspaces ${WORKSPACES} --connections ${CONNECTIONS} --rounds ${ROUNDS}`,
    machine: { ...machineInfo(loadStart), loadavgAtBurst: loadBurst.map((x) => round(x)) },
    git: gitState(),
    plan: { workspaces: WORKSPACES, connections, rounds: ROUNDS, plugin: world.plugin, versions: world.versions, files: world.files },
    floor,
    routes: Object.fromEntries(BURST_ROUTES.map((r) => [r, { ...burst.routes[r], ...ratio(burst.routes[r]) }])),
    counts,
    invariants: 'held',
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'api-load.json'), JSON.stringify(result, null, 2) + '\n');

  const row = (name: string, r: RouteRun, ratios: string[]) => [name, String(r.connections), String(r.requests), fmt(r.rps), fmt(r.p50Ms), fmt(r.p95Ms), fmt(r.maxMs), Object.entries(r.statuses).map(([c, n]) => `${c}×${n}`).join(' '), ...ratios];
  const m = result.machine;
  process.stdout.write(
    `== pluginctl serve under a burst of ${CONNECTIONS} connections (${m.node}, ${m.cpuCount} CPUs, load ${m.loadavg.start.join('/')} → ${m.loadavg.end.join('/')}) ==\n` +
      table(
        [
          ['route', 'conns', 'requests', 'req/s', 'p50 ms', 'p95 ms', 'max ms', 'statuses', 'req/s ÷ floor', 'p50 ÷ floor', 'p95 ÷ floor'],
          row('floor (401)', floor, ['1.00', '1.00', '1.00']),
          ...BURST_ROUTES.map((r) => {
            const x = ratio(burst.routes[r]);
            return row(r, burst.routes[r], [x.rpsOverFloor.toFixed(3), x.p50OverFloor.toFixed(2), x.p95OverFloor.toFixed(2)]);
          }),
        ],
        ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'r', 'r', 'r'],
      ) +
      `\ninstalls: ${counts.installs.accepted} accepted (202): ${counts.installs.succeeded} succeeded, ${counts.installs.failedBusy} gave up on the lock (FAILED LockBusy); ${counts.installs.busy} refused busy (409 LockBusy)\n` +
      `statuses over the burst: ${Object.entries(counts.statuses).map(([c, n]) => `${c}×${n}`).join(' ')}\n` +
      `live at the end: ${Object.entries(counts.perWorkspace).map(([ws, c]) => `${ws} ${c.live}`).join(', ')}\n` +
      `invariants held. results: ${join(RESULTS_DIR, 'api-load.json')}\n`,
  );
} catch (err) {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  if (serve) process.stderr.write(`pluginctl serve: ${serve.child.exitCode === null ? 'still running' : `exited ${serve.child.exitCode} (signal ${serve.child.signalCode})`}; its log (tail):\n${serve.log().slice(-6000)}\n`);
  process.exitCode = 1;
} finally {
  if (serve) await stopServe(serve.child);
  await rm(scratch, { recursive: true, force: true });
}
