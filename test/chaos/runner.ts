/**
 * The seeded chaos runner: `runs` runs of `planRun(seed, i)` on one transport, each on a fresh
 * world, checking after every operation:
 *   1  live is absent or one whole version (plants aside); a successful operation left what it
 *      promised (install: that version, marked; rollback: the newest snapshot's version; uninstall:
 *      nothing), and the copy it displaced is kept byte for byte in .previous
 *   2  a failed operation left live byte-identical (sweep and list never change it) — except the
 *      documented MarkerWriteFailed (new content, unmarked) and RollbackFailed when the fault was
 *      injected into RollBack itself; any other RollbackFailed is a violation
 *   3  an upgrade or rollback of a live plugin never shows a reader a moment without it
 *   4  nothing of the plugin left in .staging or .locks; nothing outside the plugins root
 *      created, removed or changed (a sentinel directory and a root-only canary included)
 *   5  the canary's secret appears in no output, error, host step output or event
 * Violations are recorded with seed, run, operation index and a description; the host is then
 * repaired (as an operator would) so the run can go on.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { lchownSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorFromFailure, PluginError } from '../../lambdas/core/errors.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import type { HostInvocation, HostRawResult } from '../../lambdas/core/host/remote-host.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { listPlugins } from '../../lambdas/core/steps/list-plugins.ts';
import { sweepRules } from '../../lambdas/core/sweep/sweep-rules.ts';
import { runWorkflow } from '../../lambdas/core/workflow/local-runner.ts';
import type { Armed } from '../helpers/chaos-shims.ts';
import { versionFiles } from '../helpers/plugin-versions.ts';
import { judge, leftovers, sameSnapshot, snapshotDiff, snapshotDir, snapshotsOf, type DirSnapshot } from './inspect.ts';
import { startLane, type HostHooks, type Lane, type TransportName } from './lanes.ts';
import { describeFault, describeOp, FAULT_KINDS, planRun, PLUGIN, VERSIONS, type Fault, type FaultKind, type Operation, type PlannedOp, type RunPlan } from './plan.ts';

export const INVARIANTS = ['1', '2', '3', '4', '5'] as const;
export type InvariantId = (typeof INVARIANTS)[number];

export const INVARIANT_TITLES: Record<InvariantId, string> = {
  '1': 'live is absent or one whole version; success leaves what it promised',
  '2': 'a failed operation leaves live byte-identical',
  '3': 'no instant without the plugin during an upgrade or rollback',
  '4': 'no staging or lock left behind; nothing outside the plugins root touched',
  '5': 'no canary secret in any output, error or event',
};

export interface Violation {
  invariant: InvariantId;
  transport: TransportName;
  seed: number;
  run: number;
  /** Index of the operation in the run (0-based). */
  op: number;
  operation: string;
  fault: string;
  description: string;
}

/** Worth an operator's or a developer's attention, but no invariant: reported, not failed on. */
export interface Anomaly extends Omit<Violation, 'invariant'> {
  kind: string;
}

export interface RunResult {
  run: number;
  operations: number;
  violations: Violation[];
  anomalies: Anomaly[];
  armed: Record<FaultKind, number>;
  fired: Record<FaultKind, number>;
  /** Failures the documentation allows (counted, not violations). */
  documented: Record<string, number>;
  /** Outcome per operation kind: succeeded / failed with code. */
  outcomes: Record<string, number>;
  /** Host steps that hit their timeout. */
  hostTimeouts: number;
  /** Upgrade/rollback windows measured by the poller, and those that saw live absent. */
  windows: { measured: number; withAbsence: number; reads: number; absentReads: number };
  ms: number;
}

export interface ChaosReport {
  transport: TransportName;
  seed: number;
  runs: number;
  lanes: number;
  operations: number;
  faults: { armed: Record<FaultKind, number>; fired: Record<FaultKind, number> };
  documented: Record<string, number>;
  outcomes: Record<string, number>;
  hostTimeouts: number;
  windows: RunResult['windows'];
  violations: Violation[];
  violationsByInvariant: Record<InvariantId, number>;
  anomalies: Anomaly[];
  wallMs: number;
  meanRunMs: number;
}

export interface ChaosOptions {
  transport: TransportName;
  runs: number;
  seed: number;
  /** Runs executed side by side, each lane with its own world and poller (default 1). */
  lanes?: number;
  /** Only this run index (replay one run of the schedule). */
  only?: number;
  /** First run index (default 0): a long campaign split into slices runs `from`…`from + runs - 1` each time. */
  from?: number;
  /** Per host step (default 6 s locally, 20 s remote). */
  hostTimeoutMs?: number;
  /** Progress lines (one per run, and each violation as found). */
  log?: (line: string) => void;
}

const EXPECTED: Record<string, Record<string, string>> = Object.fromEntries(Object.values(VERSIONS).map((v) => [v.version, versionFiles(v)]));
const POLLER = fileURLToPath(new URL('./chaos-poller.ts', import.meta.url));

const zeroFaults = (): Record<FaultKind, number> => Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
const bump = (m: Record<string, number>, k: string, n = 1): void => {
  m[k] = (m[k] ?? 0) + n;
};

// --- the poller (invariant 3) ----------------------------------------------------------------

export class Poller {
  #child: ChildProcess;
  #buffer = '';
  #waiters: ((line: string) => void)[] = [];

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.#buffer += chunk;
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        this.#waiters.shift()?.(line);
      }
    });
  }

  static start(): Poller {
    return new Poller(spawn(process.execPath, ['--import', 'tsx', POLLER], { stdio: ['pipe', 'pipe', 'inherit'] }));
  }

  #ask(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the live poller did not answer within 60 s')), 60_000);
      this.#waiters.push((answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.#child.stdin!.write(`${line}\n`);
    });
  }

  async open(path: string): Promise<void> {
    await this.#ask(`W ${path}`);
  }

  async close(): Promise<{ reads: number; absent: number }> {
    return JSON.parse(await this.#ask('E')) as { reads: number; absent: number };
  }

  stop(): void {
    this.#child.stdin!.end();
    this.#child.kill();
  }
}

// --- one operation ----------------------------------------------------------------------------

interface Executed {
  succeeded: boolean;
  /** The workflow's Error (Fail state) and the code inside its Cause. */
  error?: string;
  code?: string;
  message?: string;
  hint?: string;
  /** Everything the operation reported, to search for the secret. */
  text: string;
}

async function execute(lane: Lane, hooks: HostHooks, op: Operation): Promise<Executed> {
  const deps = lane.deps(hooks);
  const stamp = newStamp();
  const exec = executionName(lane.workspace, PLUGIN, stamp);
  try {
    if (op.kind === 'install' || op.kind === 'rollback' || op.kind === 'uninstall') {
      const input =
        op.kind === 'install'
          ? { workspace: lane.workspace, source: lane.sources[op.version], sha256: null, runtime: null, stamp }
          : { workspace: lane.workspace, plugin: PLUGIN, stamp };
      const outcome = await runWorkflow({ workflow: op.kind, input, executionName: exec, deps, retryDelayMs: lane.retryDelayMs });
      const text = JSON.stringify(outcome);
      if (outcome.status === 'SUCCEEDED') return { succeeded: true, text };
      const err = errorFromFailure(outcome.error, outcome.cause);
      return { succeeded: false, error: outcome.error, code: err.code, message: err.message, hint: err.hint, text };
    }
    if (op.kind === 'sweep') {
      const rules = sweepRules({ now: new Date(), olderThanMs: op.sweep.olderThanMs, keepNewest: op.sweep.keepNewest, stagingOlderThanMs: op.sweep.stagingOlderThanMs, dryRun: op.sweep.dryRun });
      const report = await lane.sweep(deps, rules);
      return { succeeded: true, text: JSON.stringify(report) };
    }
    const listing = await listPlugins(deps, lane.workspace);
    const text = JSON.stringify(listing);
    if (listing.degraded) return { succeeded: false, code: 'Degraded', message: listing.reason ?? 'degraded', text };
    return { succeeded: true, text };
  } catch (err) {
    const e = err instanceof PluginError ? err : new PluginError('HostStepFailed', err instanceof Error ? err.message : String(err));
    return { succeeded: false, error: e.code, code: e.code, message: e.message, hint: e.hint, text: JSON.stringify({ ...e.toJSON(), stack: err instanceof Error ? err.stack : undefined }) };
  }
}

// --- the agent's plants -----------------------------------------------------------------------

/** Plants what the fault says where it says; returns a description, or null when there was no such directory. */
function plant(lane: Lane, fault: Extract<Fault, { kind: 'plant' }>): string | null {
  let dir: string;
  if (fault.where === 'live') {
    dir = join(lane.root, PLUGIN);
    if (!snapshotDir(dir)) return null;
  } else {
    const snaps = snapshotsOf(lane.root, PLUGIN);
    if (snaps.length === 0) return null;
    dir = join(lane.root, '.previous', snaps[Math.floor(fault.pick * snaps.length)]!);
  }
  const agent = (path: string) => {
    try {
      lchownSync(path, 1000, 1000);
    } catch {
      // Not root: the plant stays ours, which changes nothing for the host script.
    }
  };
  const link = (rel: string, target: string) => {
    rmSync(join(dir, rel), { force: true, recursive: false });
    symlinkSync(target, join(dir, rel));
    agent(join(dir, rel));
  };
  const fifo = (rel: string) => {
    rmSync(join(dir, rel), { force: true });
    execFileSync('mkfifo', ['-m', '0666', join(dir, rel)]);
    agent(join(dir, rel));
  };
  try {
    switch (fault.what) {
      case 'complete-link':
        link('.complete', lane.canary);
        break;
      case 'deep-link':
        mkdirSync(join(dir, 'x'), { recursive: true });
        agent(join(dir, 'x'));
        link('x/evil', fault.toDir ? lane.sentinel : lane.canary);
        break;
      case 'fifo':
        fifo('pipe');
        break;
      case 'stamp-link':
        link('.install-stamp', lane.canary);
        break;
      case 'restored-link':
        link('.restored-from', lane.canary);
        break;
      case 'restored-fifo':
        fifo('.restored-from');
        break;
    }
  } catch (err) {
    return `plant failed: ${err instanceof Error ? err.message : String(err)}`;
  }
  return `${fault.what}${fault.what === 'deep-link' && fault.toDir ? ' (to a directory)' : ''} in ${fault.where === 'live' ? 'live' : dir.slice(lane.root.length + 1)}`;
}

// --- repairs (what an operator does, so the run can go on) ---------------------------------------

function resetPlugin(root: string): void {
  rmSync(join(root, PLUGIN), { recursive: true, force: true });
  for (const sub of ['.staging', '.previous', '.failed', '.locks']) {
    let names: string[] = [];
    try {
      names = readdirSync(join(root, sub));
    } catch {
      continue;
    }
    for (const e of names) {
      if (e === PLUGIN || e.startsWith(`${PLUGIN}.`) || e.startsWith(`.${PLUGIN}.`) || e.startsWith(`.stage.${PLUGIN}.`) || e.startsWith(`.complete.${PLUGIN}.`)) {
        rmSync(join(root, sub, e), { recursive: true, force: true });
      }
    }
  }
}

/**
 * MarkerWriteFailed's hint says: fix what the message names, then install the same source again
 * (the new install replaces the unmarked copy whole and writes the marker). Follow it as an
 * operator would, with the fault gone; a problem when that does not leave the version marked.
 */
async function followMarkerHint(lane: Lane, op: Operation, hint: string | undefined): Promise<string | null> {
  if (op.kind !== 'install') return null;
  if (!hint?.includes('install the same source again')) return `MarkerWriteFailed's hint does not say how to fix it: ${hint ?? '(none)'}`;
  const again = await execute(lane, { record: () => undefined }, op);
  if (!again.succeeded) return `installing the same source again, as MarkerWriteFailed's hint says, failed: ${again.code ?? ''} ${again.message ?? ''}`;
  const want = VERSIONS[op.version].version;
  const verdict = judge(snapshotDir(join(lane.root, PLUGIN)), EXPECTED);
  if (verdict.state !== 'whole' || verdict.version !== want || verdict.marker !== want) {
    return `after installing the same source again, as MarkerWriteFailed's hint says, live is ${verdict.state} ${verdict.version ?? ''} marked ${verdict.marker ?? 'nothing'}`;
  }
  return null;
}

// --- one run ----------------------------------------------------------------------------------

function outsideSnapshot(lane: Lane): DirSnapshot | null {
  const unwatched = lane.unwatched;
  return snapshotDir(lane.hostRoot, (rel) => unwatched.some((u) => rel === u || rel.startsWith(`${u}/`)));
}

function faultRules(fault: Fault | null) {
  return fault && 'rules' in fault ? fault.rules : [];
}

/** One run of the schedule (or of `plan`, a hand-written sequence) on a freshly reset lane. */
export async function runOne(lane: Lane, poller: Poller, seed: number, run: number, log?: (line: string) => void, plan: RunPlan = planRun(seed, run, lane.caps)): Promise<RunResult> {
  const started = Date.now();
  const result: RunResult = {
    run,
    operations: plan.ops.length,
    violations: [],
    anomalies: [],
    armed: zeroFaults(),
    fired: zeroFaults(),
    documented: {},
    outcomes: {},
    hostTimeouts: 0,
    windows: { measured: 0, withAbsence: 0, reads: 0, absentReads: 0 },
    ms: 0,
  };
  await lane.reset();
  const live = join(lane.root, PLUGIN);

  for (const [index, planned] of plan.ops.entries()) {
    const { op, fault } = planned as PlannedOp;
    let faultText = describeFault(fault);
    // The canary's secret, plain and as base64 of the file (what `head | base64` would print).
    const needles = [lane.secret, Buffer.from(`${lane.secret}\n`).toString('base64').replace(/=+$/, ''), Buffer.from(lane.secret).toString('base64').replace(/=+$/, '')];
    const violate = (invariant: InvariantId, description: string) => {
      const v: Violation = { invariant, transport: lane.transport, seed, run, op: index, operation: describeOp(op), fault: faultText, description };
      result.violations.push(v);
      log?.(`  VIOLATION ${invariant} run ${run} op ${index} [${v.operation}; ${v.fault}]: ${description}`);
    };
    const note = (kind: string, description: string) => {
      result.anomalies.push({ kind, transport: lane.transport, seed, run, op: index, operation: describeOp(op), fault: faultText, description });
      log?.(`  anomaly (${kind}) run ${run} op ${index}: ${description}`);
    };

    // Arm the fault.
    const recorded: { inv: HostInvocation; outcome: HostRawResult | Error }[] = [];
    const hooks: HostHooks = { record: (inv, outcome) => recorded.push({ inv, outcome }) };
    let armed: Armed | undefined;
    let applied = false;
    if (fault?.kind === 'plant') {
      const where = plant(lane, fault);
      if (where) {
        applied = true;
        faultText = `agent planted ${where}`;
      }
    } else if (fault?.kind === 'repeat') {
      hooks.repeatOp = fault.op;
      applied = true;
    } else if (fault?.kind === 'drop') {
      hooks.drop = { op: fault.op, delayMs: fault.delayMs };
      applied = true;
    } else if (fault && lane.shims) {
      armed = lane.shims.arm(fault.rules);
      hooks.shimEnv = armed.env;
      applied = true;
    }
    if (fault && applied) result.armed[fault.kind]++;

    // Before.
    const before = snapshotDir(live);
    const verdictBefore = judge(before, EXPECTED);
    const outsideBefore = outsideSnapshot(lane);
    const snapsBefore = snapshotsOf(lane.root, PLUGIN);
    const newest = snapsBefore.length ? judge(snapshotDir(join(lane.root, '.previous', snapsBefore[snapsBefore.length - 1]!)), EXPECTED) : undefined;
    const measured = (op.kind === 'install' || op.kind === 'rollback') && before !== null;
    if (measured) await poller.open(live);

    const opStarted = Date.now();
    const executed = await execute(lane, hooks, op);
    const opMs = Date.now() - opStarted;

    const window = measured ? await poller.close() : undefined;
    const after = snapshotDir(live);
    const verdict = judge(after, EXPECTED);
    const outsideAfter = outsideSnapshot(lane);

    // Fault bookkeeping.
    if (fault && applied) {
      let fired = false;
      if (fault.kind === 'plant') fired = true;
      else if (fault.kind === 'repeat') fired = recorded.some((r) => r.inv.op === fault.op && !(r.outcome instanceof Error) && r.outcome.exitCode === 0);
      else if (fault.kind === 'drop') fired = Boolean(hooks.dropped);
      else fired = (armed?.fired() ?? []).some((n) => n > 0);
      if (fired) result.fired[fault.kind]++;
    }
    armed?.disarm();
    for (const r of recorded) {
      if (r.outcome instanceof PluginError && r.outcome.code === 'HostTimeout') {
        result.hostTimeouts++;
        note('host step timed out', `host step ${r.inv.op} hit its timeout: ${r.outcome.message}`);
      }
    }
    const failure = executed.error === executed.code || !executed.error ? executed.code : `${executed.error}/${executed.code}`;
    bump(result.outcomes, `${op.kind}:${executed.succeeded ? 'ok' : failure}`);

    const rules = faultRules(fault);
    const rollbackFaulted = rules.some((r) => r.op === 'rollback');
    const rollbackFailed = !executed.succeeded && (executed.error === 'RollbackFailed' || executed.code === 'RollbackFailed');
    const markerFailed = !executed.succeeded && (executed.error === 'MarkerWriteFailed' || executed.code === 'MarkerWriteFailed');
    const documentedRollbackFailure = rollbackFailed && rollbackFaulted;
    // A step that failed before live changed goes to CleanUp (the same host operation as
    // RollBack). When the fault was injected there too, CleanUp fails and the workflow ends with
    // the first error: what CleanUp did not remove (the lease, a stage lock) expires or is swept.
    const cleanupFailed =
      !executed.succeeded && !rollbackFailed && rollbackFaulted && recorded.some((r) => r.inv.op === 'rollback' && (r.outcome instanceof Error || r.outcome.exitCode !== 0));
    let reset = false;

    // 1: whole, and what success promised.
    if (verdict.state === 'mixed') {
      violate('1', `live is not one whole version: ${verdict.problem}`);
      reset = true;
    } else if (executed.succeeded) {
      if (op.kind === 'install') {
        const want = VERSIONS[op.version].version;
        if (verdict.state !== 'whole' || verdict.version !== want || verdict.marker !== want) {
          violate('1', `install of ${want} succeeded but live is ${verdict.state} ${verdict.version ?? ''} marked ${verdict.marker ?? 'nothing'}`);
        }
      } else if (op.kind === 'rollback') {
        if (verdict.state !== 'whole') violate('1', 'rollback succeeded but live is absent');
        // The newest snapshot comes back as it was: marked if it was (one that MarkerWriteFailed
        // left unmarked comes back unmarked, which the agent does not load).
        else if (verdict.marker === undefined && newest?.marker !== undefined) violate('1', `rollback succeeded but live ${verdict.version} carries no .complete (the snapshot had one)`);
        else if (newest?.state === 'whole' && newest.version !== verdict.version) violate('1', `rollback restored ${verdict.version}, but the newest snapshot was ${newest.version}`);
      } else if (op.kind === 'uninstall' && verdict.state !== 'absent') {
        violate('1', `uninstall succeeded but live is ${verdict.state} ${verdict.version ?? ''}`);
      }
      // The displaced copy is kept, byte for byte, as the newest snapshot.
      if ((op.kind === 'install' || op.kind === 'rollback' || op.kind === 'uninstall') && before) {
        const added = snapshotsOf(lane.root, PLUGIN).filter((s) => !snapsBefore.includes(s));
        const kept = added.map((s) => snapshotDir(join(lane.root, '.previous', s)));
        if (!kept.some((k) => sameSnapshot(k, before))) {
          violate('1', `the displaced live copy (${verdictBefore.version ?? verdictBefore.state}) is not kept as a snapshot (new snapshots: ${added.join(', ') || 'none'}${kept[0] ? `; differs: ${snapshotDiff(before, kept[0])}` : ''})`);
        }
      }
    }

    // 2: a failure leaves live as it was; sweep and list never change it.
    if (!executed.succeeded || op.kind === 'sweep' || op.kind === 'list') {
      if (markerFailed) {
        bump(result.documented, 'MarkerWriteFailed (new content, unmarked)');
        const want = op.kind === 'install' ? VERSIONS[op.version].version : undefined;
        if (verdict.state !== 'whole' || verdict.version !== want || (verdict.marker !== undefined && verdict.marker !== want)) {
          violate('1', `MarkerWriteFailed must leave ${want} live (unmarked), found ${verdict.state} ${verdict.version ?? ''} marked ${verdict.marker ?? 'nothing'}`);
        } else if (verdict.marker === want) {
          // The step's last attempt was cut off after the host wrote the marker: the workflow
          // cannot know, and reports a failure that did not happen.
          note('MarkerWriteFailed but marked', `MarkerWriteFailed was reported, yet live ${want} carries its .complete (${executed.message?.slice(0, 160) ?? ''})`);
        }
        // The documented fix: install the same source again. Where that does not work, the
        // host is reset so the run goes on, and the failure is a violation of the promise.
        const problem = await followMarkerHint(lane, op, executed.hint);
        if (problem) {
          violate('1', `${problem} (error: ${executed.message?.slice(0, 200) ?? ''})`);
          reset = true;
        }
      } else if (rollbackFailed) {
        if (documentedRollbackFailure) bump(result.documented, 'RollbackFailed (fault injected into RollBack)');
        else violate('2', `RollbackFailed without any fault in RollBack: ${executed.message ?? ''}`);
        reset = true;
      } else if (!sameSnapshot(before, after)) {
        violate('2', `${executed.succeeded ? `${op.kind} succeeded` : `failed with ${failure}`} but live changed: ${snapshotDiff(before, after)}${executed.message ? ` (${executed.message.slice(0, 160)})` : ''}`);
      }
    }

    // 3: no instant without the plugin.
    if (window) {
      result.windows.measured++;
      result.windows.reads += window.reads;
      result.windows.absentReads += window.absent;
      if (window.absent > 0) result.windows.withAbsence++;
      if (window.absent > 0 && !documentedRollbackFailure) {
        violate('3', `a reader found live absent in ${window.absent} of ${window.reads} reads during ${op.kind === 'install' ? 'an upgrade' : 'a rollback'} of ${verdictBefore.version ?? 'a live plugin'} (${executed.succeeded ? 'succeeded' : `failed: ${failure}`})`);
      }
    }

    // 4: nothing left behind, nothing outside touched.
    const left = leftovers(lane.root, PLUGIN);
    if (left.length) {
      // Any fault that keeps ReleaseLock from finishing (fail, killed every time, connection
      // dropped) leaves the lease to expire: documented ("ReleaseLock: not rolled back; the
      // lease expires").
      const unlockFailed = rules.some((r) => r.op === 'unlock') || (fault?.kind === 'drop' && fault.op === 'unlock');
      const onlyLease = left.every((l) => l === `.locks/${PLUGIN}`);
      if (documentedRollbackFailure) bump(result.documented, 'leftovers after RollbackFailed');
      else if (cleanupFailed && left.every((l) => l.startsWith('.locks/'))) bump(result.documented, 'lease or stage lock left by a failing CleanUp (expires / swept)');
      else if (unlockFailed && onlyLease) bump(result.documented, 'lease left by a failing ReleaseLock (expires)');
      else violate('4', `left behind: ${left.join(', ')} (${executed.succeeded ? 'operation succeeded' : `failed: ${failure}`})`);
      for (const l of left) rmSync(join(lane.root, l), { recursive: true, force: true });
    }
    if (!sameSnapshot(outsideBefore, outsideAfter)) {
      violate('4', `outside the plugins root: ${snapshotDiff(outsideBefore, outsideAfter)}`);
      await lane.reset().catch(() => undefined);
      // reset() wiped the plugins root as well: the run goes on from an empty host.
      log?.(`  (run ${run}: host reset after an outside change)`);
    }

    // 5: the secret stays secret.
    let events = '';
    try {
      events = readFileSync(lane.eventsFile, 'utf8');
    } catch {
      // No event yet.
    }
    const texts: [string, string][] = [
      ['operation result', executed.text],
      ['events.jsonl', events],
      ...recorded.map((r): [string, string] => [
        `host step ${r.inv.op} output`,
        r.outcome instanceof Error ? r.outcome.message : `${r.outcome.stdout}\n${r.outcome.stderr}`,
      ]),
    ];
    const leaks = texts.filter(([, t]) => needles.some((n) => t.includes(n))).map(([where]) => where);
    if (leaks.length) violate('5', `the canary secret appears in: ${[...new Set(leaks)].join(', ')}`);

    if (reset) resetPlugin(lane.root);
    log?.(`    run ${run} op ${index}: ${describeOp(op)}; ${faultText} → ${executed.succeeded ? 'ok' : executed.code} in ${opMs} ms`);
  }
  result.ms = Date.now() - started;
  return result;
}

// --- a campaign -------------------------------------------------------------------------------

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const from = options.from ?? 0;
  const indexes = options.only !== undefined ? [options.only] : Array.from({ length: options.runs }, (_, i) => from + i);
  const laneCount = Math.max(1, Math.min(options.lanes ?? 1, indexes.length));
  const hostTimeoutMs = options.hostTimeoutMs ?? (options.transport === 'local' ? 6_000 : 20_000);
  const results: RunResult[] = [];
  let next = 0;
  const work = async (): Promise<void> => {
    const lane = await startLane(options.transport, hostTimeoutMs);
    const poller = Poller.start();
    try {
      for (;;) {
        const i = next++;
        if (i >= indexes.length) return;
        const r = await runOne(lane, poller, options.seed, indexes[i]!, options.log);
        results.push(r);
        options.log?.(`run ${r.run}: ${r.operations} ops, ${r.violations.length} violation(s), ${r.ms} ms`);
      }
    } finally {
      poller.stop();
      await lane.stop();
    }
  };
  await Promise.all(Array.from({ length: laneCount }, () => work()));
  results.sort((a, b) => a.run - b.run);

  const report: ChaosReport = {
    transport: options.transport,
    seed: options.seed,
    runs: results.length,
    lanes: laneCount,
    operations: 0,
    faults: { armed: zeroFaults(), fired: zeroFaults() },
    documented: {},
    outcomes: {},
    hostTimeouts: 0,
    windows: { measured: 0, withAbsence: 0, reads: 0, absentReads: 0 },
    violations: [],
    violationsByInvariant: Object.fromEntries(INVARIANTS.map((i) => [i, 0])) as Record<InvariantId, number>,
    anomalies: [],
    wallMs: 0,
    meanRunMs: 0,
  };
  for (const r of results) {
    report.operations += r.operations;
    for (const k of FAULT_KINDS) {
      report.faults.armed[k] += r.armed[k];
      report.faults.fired[k] += r.fired[k];
    }
    for (const [k, n] of Object.entries(r.documented)) bump(report.documented, k, n);
    for (const [k, n] of Object.entries(r.outcomes)) bump(report.outcomes, k, n);
    report.hostTimeouts += r.hostTimeouts;
    for (const k of Object.keys(report.windows) as (keyof RunResult['windows'])[]) report.windows[k] += r.windows[k];
    report.violations.push(...r.violations);
    report.anomalies.push(...r.anomalies);
    for (const v of r.violations) report.violationsByInvariant[v.invariant]++;
  }
  report.wallMs = Date.now() - started;
  report.meanRunMs = results.length ? Math.round(results.reduce((s, r) => s + r.ms, 0) / results.length) : 0;
  return report;
}

export function summaryLine(report: ChaosReport): string {
  const faults = FAULT_KINDS.filter((k) => report.faults.armed[k] > 0)
    .map((k) => `${k}=${report.faults.armed[k]}${report.faults.fired[k] !== report.faults.armed[k] ? `(fired ${report.faults.fired[k]})` : ''}`)
    .join(' ');
  const violations = INVARIANTS.map((i) => `${i}:${report.violationsByInvariant[i]}`).join(' ');
  return `chaos ${report.transport}: seed=${report.seed} runs=${report.runs} operations=${report.operations} faults[${faults}] violations=${report.violations.length} [${violations}] wall=${(report.wallMs / 1000).toFixed(1)}s (${report.meanRunMs} ms/run, ${report.lanes} lane${report.lanes === 1 ? '' : 's'})`;
}
