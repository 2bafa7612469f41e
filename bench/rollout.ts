/**
 * `npm run bench:rollout` (`npx tsx bench/rollout.ts [--targets N] [--concurrency N] [--only local,ssm]`):
 * what a fleet rollout (statemachine/rollout.asl.json) costs against the same installs run one
 * after another, in the same run, on the same workspaces:
 *
 *   local  N workspaces of the embedded default (localDeps, the host script under sh here)
 *   ssm    N SSM stand-in instances (each its own filesystem), workspaces found through the EC2
 *          API stand-in, artifacts in s3rver: the AWS adapters on loopback (test/helpers/aws-world.ts)
 *
 * Per transport: a setup rollout puts v1 everywhere (reported, not compared); the **baseline**
 * installs v2 on each workspace in turn (`runWorkflow('install')`, one at a time); the
 * **rollout** then puts v1 back on all of them with pluginctl's own loop (bin/cli/run-rollout.ts:
 * canary 1, then waves of `--concurrency`). Both replace a live version of the same size by
 * another, so each does N full installs (validate, stage, snapshot, swap, marker).
 *
 * Measured per phase: wall time; peak RSS of this process (sampled every 20 ms; for ssm the
 * stand-ins live in this process too, the host-side shells do not); Step Functions state
 * transitions (what Standard workflows bill), counted by the local runner: the baseline's install
 * executions, and the rollout's own executions plus every child install execution.
 * The plugin: `--files` files (default 20) of ~64 bytes plus plugin.yaml, so the numbers are the
 * orchestration's, not tar's (bench/local.ts measures a 1 MiB plugin).
 * Results: bench/results/rollout.json and stdout.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runRollout } from '../bin/cli/run-rollout.ts';
import { localDeps } from '../lambdas/commons/local-deps.ts';
import { executionName } from '../lambdas/core/execution-name.ts';
import type { EventSink } from '../lambdas/core/events/event-sink.ts';
import type { RolloutStore } from '../lambdas/core/rollout/rollout-store.ts';
import { newStamp } from '../lambdas/core/stamp.ts';
import type { StepDeps } from '../lambdas/core/steps/step-deps.ts';
import { runWorkflow, type RunOutcome } from '../lambdas/core/workflow/local-runner.ts';
import { startAwsWorld } from '../test/helpers/aws-world.ts';
import { liveVersion } from '../test/helpers/host-state.ts';
import { versionFiles } from '../test/helpers/plugin-versions.ts';
import { gitState, machineInfo, msSince, RESULTS_DIR, round } from './common.ts';

const PLUGIN = 'bench-rollout';
const TRANSPORTS = ['local', 'ssm'] as const;
type Transport = (typeof TRANSPORTS)[number];
type Deps = StepDeps & { events: EventSink; rollouts: RolloutStore };

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { targets: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '10' }, files: { type: 'string', default: '20' }, only: { type: 'string', default: TRANSPORTS.join(',') } },
  strict: true,
});
const TARGETS = Number(values.targets);
const CONCURRENCY = Number(values.concurrency);
const FILES = Number(values.files);
const ONLY = values.only.split(',').map((s) => s.trim()) as Transport[];
for (const [name, n, max] of [['targets', TARGETS, 10_000], ['concurrency', CONCURRENCY, 40], ['files', FILES, 100_000]] as const) {
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max}`);
}
for (const t of ONLY) if (!(TRANSPORTS as readonly string[]).includes(t)) throw new Error(`--only takes ${TRANSPORTS.join(', ')}; got ${t}`);

const MIB = 1024 * 1024;

/** Peak RSS of this process while `body` runs, sampled every 20 ms. */
async function withRss<T>(body: () => Promise<T>): Promise<{ value: T; startMiB: number; peakMiB: number }> {
  const start = process.memoryUsage.rss();
  let peak = start;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  try {
    const value = await body();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, startMiB: round(start / MIB, 1), peakMiB: round(peak / MIB, 1) };
  } finally {
    clearInterval(timer);
  }
}

interface Phase {
  ms: number;
  startRssMiB: number;
  peakRssMiB: number;
  /** State transitions of every execution of the phase. */
  transitions: number;
  transitionsPerTarget: number;
  executions: number;
}

async function rolloutPhase(deps: Deps, id: string, version: string, targets: string[]): Promise<Phase & { ownTransitions: number; childTransitions: number }> {
  let own = 0;
  let child = 0;
  let executions = 0;
  let out = '';
  let err = '';
  const start = process.hrtime.bigint();
  const { value: code, startMiB, peakMiB } = await withRss(() => runRollout({
    deps,
    request: { rolloutId: id, source: `local://${PLUGIN}@${version}`, sha256: null, targets: { workspaces: targets }, maxConcurrency: CONCURRENCY, maxErrors: '0', canary: 1, rollbackOnHalt: false },
    json: true,
    out: (t) => (out += t),
    err: (t) => (err += t),
    tty: false,
    onExecution: (outcome, kind) => {
      executions++;
      if (kind === 'rollout') own += outcome.transitions;
      else child += outcome.transitions;
    },
  }));
  const ms = msSince(start);
  const report = JSON.parse(out) as { status: string; counts: { succeeded: number } };
  if (code !== 0 || report.status !== 'succeeded' || report.counts.succeeded !== targets.length) {
    throw new Error(`rollout ${id} did not succeed on every target (exit ${code}): ${out.slice(0, 2000)} ${err.slice(0, 2000)}`);
  }
  const transitions = own + child;
  return { ms: round(ms), startRssMiB: startMiB, peakRssMiB: peakMiB, transitions, transitionsPerTarget: round(transitions / targets.length), executions, ownTransitions: own, childTransitions: child };
}

async function sequentialPhase(deps: Deps, version: string, targets: string[]): Promise<Phase> {
  let transitions = 0;
  const start = process.hrtime.bigint();
  const { startMiB, peakMiB } = await withRss(async () => {
    for (const workspace of targets) {
      const stamp = newStamp();
      const outcome: RunOutcome = await runWorkflow({
        workflow: 'install',
        input: { workspace, source: `local://${PLUGIN}@${version}`, sha256: null, runtime: null, stamp },
        executionName: executionName(workspace, PLUGIN, stamp),
        deps,
      });
      if (outcome.status !== 'SUCCEEDED') throw new Error(`install on ${workspace} failed: ${outcome.error} ${outcome.cause}`);
      transitions += outcome.transitions;
    }
  });
  const ms = msSince(start);
  return { ms: round(ms), startRssMiB: startMiB, peakRssMiB: peakMiB, transitions, transitionsPerTarget: round(transitions / targets.length), executions: targets.length };
}

function expectLive(root: (ws: string) => string, targets: string[], version: string, what: string): void {
  const wrong = targets.filter((ws) => liveVersion(root(ws), PLUGIN) !== version);
  if (wrong.length) throw new Error(`${what}: ${wrong.length} workspaces are not ${version} complete (${wrong.slice(0, 5).join(', ')}: ${liveVersion(root(wrong[0]!), PLUGIN)})`);
}

async function writeCatalog(dir: string): Promise<void> {
  for (const version of ['1.0.0', '2.0.0']) {
    for (const [rel, content] of Object.entries(versionFiles({ name: PLUGIN, version, files: FILES }))) {
      const path = join(dir, PLUGIN, version, rel);
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, content);
    }
  }
}

async function measure(transport: Transport, scratch: string): Promise<Record<string, unknown>> {
  const catalog = join(scratch, 'catalog');
  await writeCatalog(catalog);
  const targets = Array.from({ length: TARGETS }, (_, i) => `${transport}-${String(i + 1).padStart(4, '0')}`);
  let deps: Deps;
  let root: (ws: string) => string;
  let stop: () => Promise<void>;
  if (transport === 'local') {
    const home = join(scratch, 'home');
    const local = localDeps({ home, catalogDir: catalog, host: { timeoutMs: 120_000 } });
    for (const ws of targets) await local.workspaces.ensure(ws);
    deps = local;
    root = (ws) => join(home, 'workspaces', ws, 'root', 'configs', 'plugins');
    stop = async () => undefined;
  } else {
    const world = await startAwsWorld(targets.map((id) => ({ id })), { ownRoots: true, catalogDir: catalog });
    deps = world.deps;
    root = (ws) => world.pluginsRoot(ws);
    stop = () => world.stop();
  }
  try {
    process.stderr.write(`${transport}: setup rollout of v1 to ${TARGETS} workspaces…\n`);
    const setup = await rolloutPhase(deps, `setup-${transport}`, '1.0.0', targets);
    expectLive(root, targets, '1.0.0', 'after the setup rollout');
    process.stderr.write(`${transport}: baseline, ${TARGETS} installs of v2 one after another…\n`);
    const baseline = await sequentialPhase(deps, '2.0.0', targets);
    expectLive(root, targets, '2.0.0', 'after the baseline');
    process.stderr.write(`${transport}: rollout of v1 to ${TARGETS} workspaces at maxConcurrency ${CONCURRENCY}…\n`);
    const rollout = await rolloutPhase(deps, `back-${transport}`, '1.0.0', targets);
    expectLive(root, targets, '1.0.0', 'after the rollout');
    return {
      transport,
      targets: TARGETS,
      maxConcurrency: CONCURRENCY,
      setupRollout: setup,
      baseline,
      rollout,
      ratios: {
        wallRolloutOverBaseline: round(rollout.ms / baseline.ms, 3),
        speedup: round(baseline.ms / rollout.ms, 2),
        peakRssRolloutOverBaseline: round(rollout.peakRssMiB / baseline.peakRssMiB, 2),
        transitionsRolloutOverBaseline: round(rollout.transitions / baseline.transitions, 2),
      },
    };
  } finally {
    await stop();
  }
}

async function main(): Promise<void> {
  const loadStart = loadavg();
  const started = new Date().toISOString();
  const parts: Record<string, unknown>[] = [];
  const lines: string[] = [];
  for (const transport of ONLY) {
    const scratch = await mkdtemp(join(tmpdir(), `bench-rollout-${transport}-`));
    try {
      const r = await measure(transport, scratch);
      parts.push(r);
      const b = r.baseline as Phase;
      const o = r.rollout as Phase & { ownTransitions: number; childTransitions: number };
      const ratios = r.ratios as Record<string, number>;
      const mine = [
        `${transport}: ${TARGETS} targets`,
        `  baseline (one after another)   ${(b.ms / 1000).toFixed(1)} s  peak RSS ${b.peakRssMiB} MiB (from ${b.startRssMiB})  transitions ${b.transitions} (${b.transitionsPerTarget}/target)`,
        `  rollout (maxConcurrency ${CONCURRENCY})    ${(o.ms / 1000).toFixed(1)} s  peak RSS ${o.peakRssMiB} MiB (from ${o.startRssMiB})  transitions ${o.transitions} (${o.transitionsPerTarget}/target: rollout ${o.ownTransitions}, installs ${o.childTransitions})`,
        `  rollout / baseline: wall ×${ratios.wallRolloutOverBaseline} (speed-up ×${ratios.speedup}), peak RSS ×${ratios.peakRssRolloutOverBaseline}, transitions ×${ratios.transitionsRolloutOverBaseline}`,
      ];
      // Each part as soon as it is measured (a 200-instance SSM part takes a while).
      process.stderr.write(`${mine.join('\n')}\n`);
      lines.push(...mine);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  const results = {
    date: started,
    finished: new Date().toISOString(),
    command: `npx tsx bench/rollout.ts ${process.argv.slice(2).join(' ')}`.trim(),
    plugin: { name: PLUGIN, files: FILES + 1 },
    machine: {
      ...machineInfo(loadStart),
      maxRssMiB: round(process.resourceUsage().maxRSS / 1024, 1),
    },
    git: gitState(),
    parts,
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'rollout.json'), JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(`fleet rollout benchmark  ${started}; node ${process.version}, ${results.machine.cpuCount} CPUs, load ${results.machine.loadavg.start.join('/')} → ${results.machine.loadavg.end.join('/')}\n${lines.join('\n')}\nwritten: ${join(RESULTS_DIR, 'rollout.json')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
