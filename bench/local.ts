/**
 * The local benchmark: what an atomic install costs compared with the plain `tar -x` into the
 * live directory that it replaces. Timed, interleaved in one loop so machine noise hits them alike:
 *   baseline  `tar -xzf plugin.tgz -C <fresh empty dir>` (a spawned tar, what installs used to be)
 *   workflow  the install workflow in this process: runWorkflow({workflow: 'install'}) over the
 *             real local ports (localDeps), default Retry delays, alternating v1/v2 so every
 *             install validates, stores, stages, snapshots the previous version and swaps
 *   cli       `node bin/pluginctl.js install <tgz> --workspace bench --json` as a user runs it
 *             (includes Node and tsx start-up), in its own PLUGINCTL_HOME
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import { localDeps, type LocalDeps } from '../lambdas/commons/local-deps.ts';
import { executionName } from '../lambdas/core/execution-name.ts';
import { newStamp } from '../lambdas/core/stamp.ts';
import { runWorkflow, type RunOutcome } from '../lambdas/core/workflow/local-runner.ts';
import { placeholders, substitute, workflowText } from '../lambdas/core/workflow/workflow-files.ts';
import {
  CONTENT_BYTES,
  countingResolver,
  DIR_COUNT,
  FILE_COUNT,
  fmt,
  median,
  medians,
  msSince,
  PLUGIN,
  push,
  REPO,
  round,
  stats,
  table,
  timedSpawn,
  type HostCalls,
  checkLive,
  type PluginTarball,
} from './common.ts';

const CLI = join(REPO, 'bin', 'pluginctl.js');
const WORKSPACE = 'bench';

export interface LocalOptions {
  warmup: number;
  iterations: number;
  cliIterations: number;
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
 * Diagnostic: aws-local-stepfunctions validates the definition (asl-validator) in the
 * StateMachine constructor. Timed alone here, with the same substitutions local-runner.ts makes,
 * to explain the workflow's time outside its states (the runner builds each machine once per
 * process and caches it; the CLI pays it once per run).
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

export interface LocalReport {
  results: Record<string, unknown>;
  lines: string[];
}

/** Runs the local benchmark in `scratch` (which the caller removes); returns its results and report lines. */
export async function measureLocal(options: LocalOptions, scratch: string, tarballs: PluginTarball[]): Promise<LocalReport> {
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

  process.stderr.write(`local bench: ${options.warmup} warm-up + ${options.iterations} measured (CLI ${options.cliIterations}), interleaved\n`);
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

  const baseline = stats(baselineMs);
  const workflow = stats(workflowMs);
  const cli = stats(cliMs);
  const distinct = (xs: number[]) => [...new Set(xs)].sort((x, y) => x - y);
  const results = {
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

  const out: string[] = [];
  out.push('== local: workflow vs tar -xzf ==');
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
  return { results, lines: out };
}
