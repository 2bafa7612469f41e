/**
 * `npm run bench` (`npm run bench -- --quick`): what an atomic install costs compared with the
 * plain `tar -x` into the live directory that it replaces.
 *
 * Three things are timed, interleaved in one loop so machine noise hits them alike:
 *   baseline  `tar -xzf plugin.tgz -C <fresh empty dir>` (a spawned tar, what installs used to be)
 *   workflow  the install workflow in this process: runWorkflow({workflow: 'install'}) over the
 *             real local ports (localDeps), default Retry delays, alternating v1/v2 so every
 *             install validates, stores, stages, snapshots the previous version and swaps
 *   cli       `node bin/pluginctl.js install <tgz> --workspace bench --json` as a user runs it
 *             (includes Node and tsx start-up), in its own PLUGINCTL_HOME
 * The plugin is built here, deterministically: 1,000 files totalling 1 MiB in 20 directories plus
 * plugin.yaml (bench-plugin 1.0.0 / 2.0.0). Results go to bench/results/latest.json and stdout.
 *
 * Options: --quick (1 warm-up + 5 measured, 5 CLI), --warmup N, --iterations N, --cli-iterations N.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { StateMachine } from 'aws-local-stepfunctions';
import { pack } from 'tar-stream';
import { localDeps, type LocalDeps } from '../lambdas/commons/local-deps.ts';
import { executionName } from '../lambdas/core/execution-name.ts';
import type { HostResolver } from '../lambdas/core/host/host-resolver.ts';
import type { HostInvocation, RemoteHost } from '../lambdas/core/host/remote-host.ts';
import { newStamp } from '../lambdas/core/stamp.ts';
import { runWorkflow, type RunOutcome } from '../lambdas/core/workflow/local-runner.ts';
import { placeholders, substitute, workflowText } from '../lambdas/core/workflow/workflow-files.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(REPO, 'bin', 'pluginctl.js');
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const WORKSPACE = 'bench';
const PLUGIN = 'bench-plugin';
const VERSIONS = ['1.0.0', '2.0.0'] as const;

const FILE_COUNT = 1000;
const DIR_COUNT = 20;
const CONTENT_BYTES = 1024 * 1024;

// --- options ------------------------------------------------------------------------------------

interface Options {
  quick: boolean;
  warmup: number;
  iterations: number;
  cliIterations: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      warmup: { type: 'string' },
      iterations: { type: 'string' },
      'cli-iterations': { type: 'string' },
    },
    strict: true,
  });
  const count = (value: string | undefined, fallback: number, min: number, what: string): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${what} must be an integer >= ${min}, got ${value}`);
    return n;
  };
  const quick = values.quick ?? false;
  const iterations = count(values.iterations, quick ? 5 : 30, 1, 'iterations');
  const cliIterations = count(values['cli-iterations'], quick ? 5 : 10, 0, 'cli-iterations');
  if (cliIterations > iterations) throw new Error(`--cli-iterations (${cliIterations}) cannot exceed --iterations (${iterations}): CLI runs are spread over the measured loop`);
  return { quick, warmup: count(values.warmup, quick ? 1 : 5, 0, 'warmup'), iterations, cliIterations };
}

// --- the plugin tarballs ------------------------------------------------------------------------

/** mulberry32: a tiny seeded PRNG, so both tarballs are the same bytes on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = (
  'agent skill tool prompt context workspace plugin install command hook model token stream ' +
  'file directory version manifest snapshot stage swap marker lock lease retry workflow step ' +
  'the a of to and in for with on is be that this when use each return value input output ' +
  'error result config option default user request response task check run test build data'
).split(' ');

/** 1,000 sizes between ~0.5 and ~1.5 KiB summing to exactly 1 MiB (same for both versions). */
function fileSizes(): number[] {
  const rand = prng(1);
  const sizes = Array.from({ length: FILE_COUNT }, () => 524 + Math.floor(rand() * 1049));
  let diff = CONTENT_BYTES - sizes.reduce((a, b) => a + b, 0);
  for (let i = 0; diff !== 0; i = (i + 1) % FILE_COUNT) {
    const step = Math.sign(diff);
    sizes[i]! += step;
    diff -= step;
  }
  return sizes;
}

/** Text-like content (compresses roughly like source and markdown), version in every file. */
function fileContent(version: string, index: number, rel: string, size: number): Buffer {
  const rand = prng(Number(version.split('.')[0]) * 1_000_003 + index);
  let text = `# ${rel} version=${version}\n`;
  while (text.length < size) {
    text += WORDS[Math.floor(rand() * WORDS.length)]!;
    text += rand() < 0.08 ? '\n' : ' ';
  }
  return Buffer.from(text.slice(0, size - 1) + '\n');
}

interface PluginTarball {
  version: string;
  path: string;
  bytes: number;
  sha256: string;
}

async function buildTarball(dir: string, version: string): Promise<PluginTarball> {
  const path = join(dir, `${PLUGIN}-${version}.tar.gz`);
  const tar = pack();
  const header = { mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' };
  const written = pipeline(tar, createGzip({ level: 6 }), createWriteStream(path));
  tar.entry({ ...header, name: 'plugin.yaml' }, `name: ${PLUGIN}\nversion: ${version}\ndescription: benchmark plugin (${FILE_COUNT} files, ${CONTENT_BYTES} bytes)\n`);
  tar.entry({ ...header, name: 'skills', type: 'directory', mode: 0o755 });
  const sizes = fileSizes();
  const perDir = FILE_COUNT / DIR_COUNT;
  for (let d = 0; d < DIR_COUNT; d++) {
    const dirName = `skills/skill-${String(d).padStart(2, '0')}`;
    tar.entry({ ...header, name: dirName, type: 'directory', mode: 0o755 });
    for (let f = 0; f < perDir; f++) {
      const index = d * perDir + f;
      const rel = `${dirName}/file-${String(index).padStart(4, '0')}.md`;
      tar.entry({ ...header, name: rel }, fileContent(version, index, rel, sizes[index]!));
    }
  }
  tar.finalize();
  await written;
  const data = await readFile(path);
  return { version, path, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

// --- timing helpers -----------------------------------------------------------------------------

const msSince = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;

interface Spawned {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Wall time from spawn to the child's exit and closed pipes. */
function timedSpawn(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ ms: msSince(start), code, stdout, stderr }));
  });
}

interface Stats {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
}

function stats(values: number[]): Stats {
  if (values.length === 0) return { n: 0, median: NaN, p90: NaN, min: NaN, max: NaN, mean: NaN };
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  // Nearest-rank percentile.
  const p90 = s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]!;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, median: round(median), p90: round(p90), min: round(s[0]!), max: round(s[s.length - 1]!), mean: round(mean) };
}

const round = (x: number, digits = 2): number => Number(x.toFixed(digits));
const median = (values: number[]): number => stats(values).median;

function push<K>(map: Map<K, number[]>, key: K, value: number): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function medians(map: Map<string, number[]>): Record<string, number> {
  return Object.fromEntries([...map].map(([k, v]) => [k, median(v)]));
}

// --- the three measurements ---------------------------------------------------------------------

/** Counts and times every host-script invocation the workflow makes. */
interface HostCalls {
  ops: string[];
  ms: number[];
}

function countingResolver(inner: HostResolver, calls: HostCalls): HostResolver {
  const wrapped = new WeakMap<RemoteHost, RemoteHost>();
  return (workspace) => {
    const target = inner(workspace);
    let host = wrapped.get(target.host);
    if (!host) {
      const real = target.host;
      const run = async (invocation: HostInvocation) => {
        const start = process.hrtime.bigint();
        try {
          return await real.run(invocation);
        } finally {
          calls.ops.push(invocation.op);
          calls.ms.push(msSince(start));
        }
      };
      // A proxy, so every other member (transport, streamsStdin, close, whatever the port grows)
      // is the real host's, with methods bound to it (adapters keep state in private fields).
      host = new Proxy(real, {
        get(obj, prop) {
          if (prop === 'run') return run;
          const value: unknown = Reflect.get(obj, prop, obj);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(obj) : value;
        },
      });
      wrapped.set(real, host);
    }
    return { ...target, host };
  };
}

interface Bench {
  tarballs: PluginTarball[];
  scratch: string;
  deps: LocalDeps;
  calls: HostCalls;
  live: string;
  cliEnv: NodeJS.ProcessEnv;
  cliLive: string;
}

async function baselineOnce(b: Bench, i: number): Promise<number> {
  const tgz = b.tarballs[i % 2]!;
  const dir = join(b.scratch, `live-${i}`);
  await mkdir(dir);
  const r = await timedSpawn('tar', ['-xzf', tgz.path, '-C', dir]);
  if (r.code !== 0) throw new Error(`baseline tar exited ${r.code}: ${r.stderr}`);
  if (i === 0) {
    const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
    if (files !== FILE_COUNT + 1) throw new Error(`baseline extracted ${files} files, expected ${FILE_COUNT + 1}`);
  }
  await rm(dir, { recursive: true, force: true });
  return r.ms;
}

interface WorkflowSample {
  ms: number;
  outcome: RunOutcome;
  hostOps: string[];
  hostMs: number[];
}

async function checkLive(live: string, version: string, what: string): Promise<void> {
  const manifest = await readFile(join(live, 'plugin.yaml'), 'utf8');
  const complete = JSON.parse(await readFile(join(live, '.complete'), 'utf8')) as { version?: string };
  if (!manifest.includes(`version: ${version}`) || complete.version !== version) {
    throw new Error(`${what}: live ${live} is not ${version} after the install`);
  }
}

async function workflowOnce(b: Bench, i: number): Promise<WorkflowSample> {
  const tgz = b.tarballs[i % 2]!;
  b.calls.ops = [];
  b.calls.ms = [];
  const stamp = newStamp();
  const start = process.hrtime.bigint();
  const outcome = await runWorkflow({
    workflow: 'install',
    input: { workspace: WORKSPACE, source: tgz.path, sha256: null, runtime: null, stamp },
    executionName: executionName(WORKSPACE, PLUGIN, stamp),
    deps: b.deps,
  });
  const ms = msSince(start);
  if (outcome.status !== 'SUCCEEDED') throw new Error(`workflow install ${i} ${outcome.status}: ${outcome.error} ${outcome.cause}`);
  const snapshot = (outcome.outputs.SnapshotLive as { last?: { snapshot?: string } } | undefined)?.last?.snapshot;
  if (i > 0 && snapshot !== 'moved') throw new Error(`workflow install ${i}: SnapshotLive reported ${snapshot}, expected moved`);
  await checkLive(b.live, tgz.version, `workflow install ${i}`);
  return { ms, outcome, hostOps: b.calls.ops, hostMs: b.calls.ms };
}

interface CliReport {
  status: string;
  version: string | null;
  steps: { name: string; status: string; ms: number }[];
}

async function cliOnce(b: Bench, i: number): Promise<{ ms: number; report: CliReport }> {
  const tgz = b.tarballs[i % 2]!;
  const r = await timedSpawn(process.execPath, [CLI, 'install', tgz.path, '--workspace', WORKSPACE, '--json'], { env: b.cliEnv, cwd: REPO });
  let report: CliReport;
  try {
    report = JSON.parse(r.stdout) as CliReport;
  } catch {
    throw new Error(`pluginctl exited ${r.code} without a JSON report: ${r.stdout}${r.stderr}`);
  }
  if (r.code !== 0 || report.status !== 'succeeded' || report.version !== tgz.version) {
    throw new Error(`pluginctl install ${i} exited ${r.code}: ${r.stdout}${r.stderr}`);
  }
  await checkLive(b.cliLive, tgz.version, `pluginctl install ${i}`);
  return { ms: r.ms, report };
}

/**
 * Diagnostic: runWorkflow builds a StateMachine per execution, and aws-local-stepfunctions
 * validates the definition (asl-validator) in that constructor. Timed alone here, with the same
 * substitutions local-runner.ts makes, to explain the workflow's time outside its states.
 */
function definitionValidationOnce(): number {
  const raw = workflowText('install');
  const values: Record<string, string> = { EventBusName: 'local' };
  for (const p of placeholders(raw)) if (p !== 'EventBusName') values[p] = `arn:aws:lambda:us-east-1:000000000000:function:${p.replace(/FunctionArn$/, '')}`;
  const definition: unknown = JSON.parse(substitute(raw, values));
  const start = process.hrtime.bigint();
  new StateMachine(definition as never);
  return msSince(start);
}

// --- main ---------------------------------------------------------------------------------------

function toolVersion(command: string): string {
  const r = spawnSync(command, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : 'unknown';
}

/** The code measured: HEAD and whether the working tree differs from it (outside bench/). */
function gitState(): { commit: string; dirty: boolean | null } {
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: REPO, encoding: 'utf8' });
  const status = spawnSync('git', ['status', '--porcelain', '--', '.', ':!bench', ':!docs/benchmarks.md'], { cwd: REPO, encoding: 'utf8' });
  return { commit: head.status === 0 ? head.stdout.trim() : 'unknown', dirty: status.status === 0 ? status.stdout.trim() !== '' : null };
}

function table(rows: string[][], align: ('l' | 'r')[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (align[c] === 'r' ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  const scratch = await mkdtemp(join(tmpdir(), 'pluginctl-bench-'));
  const onSignal = () => {
    rmSync(scratch, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await measure(options, scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function measure(options: Options, scratch: string): Promise<number> {
  const loadStart = loadavg();
  const tarballs = [];
  for (const version of VERSIONS) tarballs.push(await buildTarball(scratch, version));

  const home = join(scratch, 'home');
  const calls: HostCalls = { ops: [], ms: [] };
  const base = localDeps({ home });
  const deps: LocalDeps = { ...base, hosts: countingResolver(base.hosts, calls) };
  const ws = await deps.workspaces.ensure(WORKSPACE);
  const live = join(deps.hosts(ws).root, PLUGIN);

  const cliHome = join(scratch, 'cli-home');
  const cliDeps = localDeps({ home: cliHome });
  const cliLive = join(cliDeps.hosts(await cliDeps.workspaces.ensure(WORKSPACE)).root, PLUGIN);
  const cliEnv: NodeJS.ProcessEnv = { ...process.env, PLUGINCTL_HOME: cliHome };
  delete cliEnv.PLUGINCTL_RETRY_DELAY_MS; // default Retry delays, as for the in-process runs

  await mkdir(join(scratch, 'baseline'));
  const b: Bench = { tarballs, scratch: join(scratch, 'baseline'), deps, calls, live, cliEnv, cliLive };

  const total = options.warmup + options.iterations;
  // CLI runs: one per warm-up iteration (up to --warmup), then --cli-iterations spread evenly
  // over the measured iterations.
  const cliAt = (m: number) => Math.floor(((m + 1) * options.cliIterations) / options.iterations) > Math.floor((m * options.cliIterations) / options.iterations);

  const baselineMs: number[] = [];
  const workflowMs: number[] = [];
  const cliMs: number[] = [];
  const transitions: number[] = [];
  const hostCalls: number[] = [];
  const hostOpsSeen = new Map<string, number[]>();
  const stepMs = new Map<string, number[]>();
  const hostOpMs = new Map<string, number[]>();
  const untrackedMs: number[] = [];
  const cliUntrackedMs: number[] = [];
  const validationMs: number[] = [];
  const pairedWorkflow: number[] = [];
  const pairedCli: number[] = [];
  const cliStepMs = new Map<string, number[]>();
  let hostSequence: string[] = [];
  let cliCount = 0;

  process.stderr.write(`pluginctl bench: ${options.warmup} warm-up + ${options.iterations} measured (CLI ${options.cliIterations}), interleaved\n`);
  for (let i = 0; i < total; i++) {
    const measured = i >= options.warmup;
    const m = i - options.warmup;
    const a = await baselineOnce(b, i);
    const w = await workflowOnce(b, i);
    const runCli = measured ? cliAt(m) : options.cliIterations > 0;
    const c = runCli ? await cliOnce(b, cliCount++) : undefined;
    const v = definitionValidationOnce();
    process.stderr.write(`  ${measured ? `#${m + 1}` : 'warm-up'}: baseline ${fmt(a)} ms, workflow ${fmt(w.ms)} ms${c ? `, cli ${fmt(c.ms)} ms` : ''}\n`);
    if (!measured) continue;

    baselineMs.push(a);
    workflowMs.push(w.ms);
    pairedWorkflow.push(w.ms / a);
    transitions.push(w.outcome.transitions);
    hostCalls.push(w.hostOps.length);
    hostSequence = w.hostOps;
    const perOp = new Map<string, number>();
    w.hostOps.forEach((op, k) => {
      perOp.set(op, (perOp.get(op) ?? 0) + 1);
      push(hostOpMs, op, w.hostMs[k]!);
    });
    for (const [op, n] of perOp) push(hostOpsSeen, op, n);
    let stepSum = 0;
    for (const s of w.outcome.steps) {
      push(stepMs, s.name, s.ms);
      stepSum += s.ms;
    }
    untrackedMs.push(w.ms - stepSum);
    validationMs.push(v);
    if (c) {
      cliMs.push(c.ms);
      pairedCli.push(c.ms / a);
      let cliStepSum = 0;
      for (const s of c.report.steps) {
        push(cliStepMs, s.name, s.ms);
        cliStepSum += s.ms;
      }
      cliUntrackedMs.push(c.ms - cliStepSum);
    }
  }

  const cpuList = cpus();
  const baseline = stats(baselineMs);
  const workflow = stats(workflowMs);
  const cli = stats(cliMs);
  const distinct = (xs: number[]) => [...new Set(xs)].sort((x, y) => x - y);
  const results = {
    date: new Date().toISOString(),
    mode: options.quick ? 'quick' : 'full',
    machine: {
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      cpuCount: cpuList.length,
      cpuModel: cpuList[0]?.model ?? 'unknown',
      loadavg: { start: loadStart.map((x) => round(x)), end: loadavg().map((x) => round(x)) },
      tar: toolVersion('tar'),
    },
    git: gitState(),
    iterations: { warmup: options.warmup, measured: options.iterations, cli: options.cliIterations, cliWarmup: options.cliIterations > 0 ? options.warmup : 0, order: 'per iteration: baseline, workflow[, cli]' },
    plugin: {
      name: PLUGIN,
      files: FILE_COUNT + 1,
      contentFiles: FILE_COUNT,
      directories: DIR_COUNT + 1,
      contentBytes: CONTENT_BYTES,
      tarballs: tarballs.map(({ version, bytes, sha256 }) => ({ version, bytes, sha256 })),
    },
    wallMs: { baseline, workflow, cli },
    /** median(workflow) / median(baseline); `paired*`: median of the per-iteration ratios (each against the baseline run just before it). */
    ratios: {
      workflowOverBaseline: round(workflow.median / baseline.median),
      cliOverBaseline: cliMs.length ? round(cli.median / baseline.median) : null,
      pairedWorkflowOverBaseline: round(median(pairedWorkflow)),
      pairedCliOverBaseline: cliMs.length ? round(median(pairedCli)) : null,
    },
    overheadMs: {
      workflowMinusBaseline: round(workflow.median - baseline.median),
      cliMinusBaseline: cliMs.length ? round(cli.median - baseline.median) : null,
    },
    perInstall: {
      transitions: { median: median(transitions), distinct: distinct(transitions) },
      hostScriptCalls: { median: median(hostCalls), distinct: distinct(hostCalls) },
      hostScriptCallsByOp: Object.fromEntries([...hostOpsSeen].map(([op, ns]) => [op, median(ns)])),
      hostScriptSequence: hostSequence,
    },
    workflowStepMedianMs: medians(stepMs),
    /** Wall time minus the sum of the states' durations: building and validating the state machine, engine hand-offs. */
    workflowOutsideStatesMedianMs: median(untrackedMs),
    /** Diagnostic, timed separately: `new StateMachine(installDefinition)` (asl-validator runs in it). */
    definitionValidationMs: stats(validationMs),
    /** Each host-script process (sh) as seen by the RemoteHost port, by operation. */
    hostScriptMedianMs: medians(hostOpMs),
    /** From the CLI's --json report (its own state timings). */
    cliStepMedianMs: medians(cliStepMs),
    /** CLI wall time minus the sum of its reported states: Node + tsx start-up, module loading, building the machine. */
    cliOutsideStatesMedianMs: cliMs.length ? median(cliUntrackedMs) : null,
    samplesMs: { baseline: baselineMs.map((x) => round(x)), workflow: workflowMs.map((x) => round(x)), cli: cliMs.map((x) => round(x)) },
  };

  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'latest.json'), JSON.stringify(results, null, 2) + '\n');

  const m = results.machine;
  const out: string[] = [];
  out.push(`pluginctl install benchmark  ${results.date}  (${results.mode})`);
  out.push(`node ${m.node}, ${m.platform}, ${m.cpuCount} CPUs (${m.cpuModel}), ${m.tar}, load ${m.loadavg.start.join('/')} → ${m.loadavg.end.join('/')}`);
  out.push(
    `plugin: ${FILE_COUNT} files + plugin.yaml in ${DIR_COUNT} directories, ${CONTENT_BYTES} bytes; ` +
      tarballs.map((t) => `v${t.version} ${t.bytes} bytes .tar.gz`).join(', '),
  );
  out.push(`code: ${results.git.commit.slice(0, 12)}${results.git.dirty ? ' + uncommitted changes' : ''}`);
  out.push(`iterations: ${options.warmup} warm-up + ${options.iterations} measured (CLI ${options.cliIterations}), interleaved per iteration`);
  out.push('');
  out.push(
    table(
      [
        ['wall time (ms)', 'n', 'median', 'p90', 'min', 'max', 'median / baseline', 'paired ratio'],
        ['baseline  tar -xzf', String(baseline.n), fmt(baseline.median), fmt(baseline.p90), fmt(baseline.min), fmt(baseline.max), '1.00', '1.00'],
        ['workflow  in-process', String(workflow.n), fmt(workflow.median), fmt(workflow.p90), fmt(workflow.min), fmt(workflow.max), results.ratios.workflowOverBaseline.toFixed(2), results.ratios.pairedWorkflowOverBaseline.toFixed(2)],
        ['cli       pluginctl install', String(cli.n), fmt(cli.median), fmt(cli.p90), fmt(cli.min), fmt(cli.max), results.ratios.cliOverBaseline?.toFixed(2) ?? '-', results.ratios.pairedCliOverBaseline?.toFixed(2) ?? '-'],
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  out.push(`added by the workflow: +${fmt(results.overheadMs.workflowMinusBaseline)} ms in-process, +${fmt(results.overheadMs.cliMinusBaseline ?? NaN)} ms via the CLI (median − baseline median)`);
  out.push('');
  const pi = results.perInstall;
  out.push(`per install: ${pi.transitions.distinct.join('/')} state transitions, ${pi.hostScriptCalls.distinct.join('/')} host-script invocations (${pi.hostScriptSequence.join(', ')})`);
  out.push('');
  const stepRows = [['step (median ms)', 'in-process', 'cli']];
  for (const name of new Set([...stepMs.keys(), ...cliStepMs.keys()])) {
    stepRows.push([name, fmt(results.workflowStepMedianMs[name] ?? NaN), fmt(results.cliStepMedianMs[name] ?? NaN)]);
  }
  stepRows.push(['(outside states)', fmt(results.workflowOutsideStatesMedianMs), fmt(results.cliOutsideStatesMedianMs ?? NaN)]);
  out.push(table(stepRows, ['l', 'r', 'r']));
  out.push('');
  out.push(`diagnostic: new StateMachine(install definition), i.e. ASL validation, median ${fmt(results.definitionValidationMs.median)} ms (p90 ${fmt(results.definitionValidationMs.p90)}, min ${fmt(results.definitionValidationMs.min)})`);
  out.push('');
  out.push(table([['host script (median ms)', 'sh wall time'], ...Object.entries(results.hostScriptMedianMs).map(([op, ms]) => [op, fmt(ms)])], ['l', 'r']));
  out.push('');
  out.push(`written: ${join(RESULTS_DIR, 'latest.json')}`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
