/**
 * The chaos schedule: for run `i` of seed `S`, a sequence of 5-12 operations on one plugin
 * (install version A/B/C, rollback, uninstall, sweep, list), each optionally with one fault.
 * Pure: it depends on the seed, the run index and what the transport can inject, nothing else.
 */
import type { HostOp } from '../../lambdas/core/host/remote-host.ts';
import type { PluginVersionSpec } from '../helpers/plugin-versions.ts';
import type { ShimCommand, ShimMode } from '../helpers/chaos-shims.ts';
import { makeRng, runSeed, type Rng } from './prng.ts';

export const PLUGIN = 'chaos';

export type VersionKey = 'A' | 'B' | 'C';
/** Different file counts, so a mix of two versions can never look like one. */
export const VERSIONS: Record<VersionKey, PluginVersionSpec> = {
  A: { name: PLUGIN, version: '1.0.0', files: 4 },
  B: { name: PLUGIN, version: '2.0.0', files: 6 },
  C: { name: PLUGIN, version: '3.0.0', files: 9 },
};

export interface SweepArgs {
  olderThanMs: number;
  keepNewest: number;
  stagingOlderThanMs: number;
  dryRun: boolean;
}

export type Operation =
  | { kind: 'install'; version: VersionKey }
  | { kind: 'rollback' }
  | { kind: 'uninstall' }
  | { kind: 'sweep'; sweep: SweepArgs }
  | { kind: 'list' };
export type OpKind = Operation['kind'];

/** One armed shim: inside host operation `op`, command `command` behaves as `mode`. */
export interface ShimRule {
  op: HostOp;
  command: ShimCommand;
  mode: ShimMode;
}

export type PlantWhat =
  /** `.complete` → the canary (a marker the agent replaced with a link to a root-only file). */
  | 'complete-link'
  /** `x/evil` → the canary file, or the sentinel directory. */
  | 'deep-link'
  /** a fifo `pipe` (anyone opening it blocks). */
  | 'fifo'
  /** `.install-stamp` → the canary. */
  | 'stamp-link'
  /** `.restored-from` → the canary. */
  | 'restored-link'
  /** `.restored-from` as a fifo. */
  | 'restored-fifo';

export type Fault =
  | { kind: 'fail' | 'kill' | 'enospc' | 'fail+rollback-fail' | 'fail+rollback-kill'; rules: ShimRule[] }
  | { kind: 'repeat'; op: HostOp }
  | { kind: 'drop'; op: HostOp; delayMs: number }
  | { kind: 'plant'; where: 'live' | 'snapshot'; what: PlantWhat; toDir: boolean; pick: number };
export type FaultKind = Fault['kind'];
export const FAULT_KINDS: readonly FaultKind[] = ['fail', 'kill', 'enospc', 'fail+rollback-fail', 'fail+rollback-kill', 'repeat', 'drop', 'plant'];

export interface PlannedOp {
  op: Operation;
  fault: Fault | null;
}

export interface RunPlan {
  seed: number;
  run: number;
  ops: PlannedOp[];
}

export interface TransportCaps {
  /** Command shims on the host's PATH (local, SSM; not EIC, whose sudo resets PATH). */
  shims: boolean;
  /** Connection drops mid-step (EIC, SSM). */
  drop: boolean;
}

/**
 * The host operations each workflow (or direct call) runs, in order; `rollback` only on failure.
 * The swap comes before the snapshot: one exchange puts the new version in and the old one in
 * staging, and `snapshot` then files that under .previous.
 */
export const HOST_OPS_OF: Record<OpKind, HostOp[]> = {
  install: ['lock', 'stage', 'swap', 'snapshot', 'verify', 'mark', 'unlock'],
  rollback: ['lock', 'restore', 'swap', 'snapshot', 'unlock'],
  uninstall: ['lock', 'uninstall', 'unlock'],
  sweep: ['sweep'],
  list: ['list'],
};

/**
 * Shimmed commands each host operation runs on its normal path. `perl` is the exchange here
 * (renameat2 through perl's syscall(): this machine's coreutils and util-linux are too old for
 * `mv --exchange` and `exch`, like the hosts').
 */
export const COMMANDS_OF: Partial<Record<HostOp, ShimCommand[]>> = {
  lock: ['mkdir', 'mv'],
  unlock: ['rm'],
  stage: ['mkdir', 'rm', 'tar', 'mv'],
  snapshot: ['mv'],
  swap: ['perl', 'mv'],
  mark: ['mv', 'rm'],
  rollback: ['perl', 'rm', 'mv'],
  restore: ['mv'],
  uninstall: ['mv'],
  sweep: ['rm'],
};

function planOperation(rng: Rng, first: boolean): Operation {
  const kind: OpKind = first ? 'install' : rng.weighted<OpKind>([['install', 5], ['rollback', 3], ['uninstall', 1.5], ['sweep', 1.5], ['list', 1]]);
  switch (kind) {
    case 'install':
      return { kind, version: rng.pick<VersionKey>(['A', 'B', 'C']) };
    case 'sweep':
      return {
        kind,
        sweep: {
          olderThanMs: rng.pick([0, 7 * 24 * 3600 * 1000]),
          keepNewest: rng.int(0, 2),
          stagingOlderThanMs: rng.pick([0, 3600 * 1000]),
          dryRun: rng.chance(0.2),
        },
      };
    default:
      return { kind };
  }
}

function shimRule(rng: Rng, ops: HostOp[], modes: ShimMode[]): ShimRule {
  const candidates = ops.filter((op) => COMMANDS_OF[op]?.length);
  const op = rng.pick(candidates);
  return { op, command: rng.pick(COMMANDS_OF[op]!), mode: rng.pick(modes) };
}

function planFault(rng: Rng, op: Operation, caps: TransportCaps): Fault | null {
  const hostOps = HOST_OPS_OF[op.kind];
  const mutating = op.kind === 'install' || op.kind === 'rollback' || op.kind === 'uninstall';
  const kinds: [FaultKind, number][] = [['plant', 2], ['repeat', op.kind === 'list' ? 0.5 : 2]];
  if (caps.shims && op.kind !== 'list') {
    kinds.push(['fail', mutating ? 3 : 1], ['kill', mutating ? 3 : 1]);
    if (mutating) kinds.push(['fail+rollback-fail', 1], ['fail+rollback-kill', 1]);
    if (op.kind === 'install') kinds.push(['enospc', 1]);
  }
  if (caps.drop && op.kind !== 'list') kinds.push(['drop', 1.5]);
  const kind = rng.weighted(kinds);
  switch (kind) {
    case 'fail':
      return { kind, rules: [shimRule(rng, hostOps, ['fail', 'fail-once'])] };
    case 'kill':
      return { kind, rules: [shimRule(rng, hostOps, ['kill', 'kill-once'])] };
    case 'enospc':
      return { kind, rules: [{ op: 'stage', command: 'tar', mode: 'enospc' }] };
    case 'fail+rollback-fail':
      // The workflow fails at one step and its RollBack fails too: RollbackFailed is the
      // documented outcome (operator needed).
      return { kind, rules: [shimRule(rng, hostOps, ['fail']), shimRule(rng, ['rollback'], ['fail'])] };
    case 'fail+rollback-kill':
      // The workflow fails at one step and its RollBack is killed mid-way (once, or every time
      // the command runs): the retried RollBack must still leave a consistent host.
      return { kind, rules: [shimRule(rng, hostOps, ['fail']), shimRule(rng, ['rollback'], ['kill-once', 'kill'])] };
    case 'repeat':
      return { kind, op: rng.pick(hostOps) };
    case 'drop':
      return { kind, op: rng.pick(hostOps), delayMs: rng.int(0, 40) };
    case 'plant':
      return {
        kind,
        where: rng.pick(['live', 'live', 'snapshot'] as const),
        what: rng.weighted<PlantWhat>([['complete-link', 3], ['deep-link', 3], ['fifo', 3], ['stamp-link', 2], ['restored-link', 2], ['restored-fifo', 0.5]]),
        toDir: rng.chance(0.3),
        pick: rng.next(),
      };
  }
}

export function planRun(seed: number, run: number, caps: TransportCaps): RunPlan {
  const rng = makeRng(runSeed(seed, run));
  const length = rng.int(5, 12);
  const ops: PlannedOp[] = [];
  for (let i = 0; i < length; i++) {
    const op = planOperation(rng, i === 0);
    ops.push({ op, fault: rng.chance(0.6) ? planFault(rng, op, caps) : null });
  }
  return { seed, run, ops };
}

export function describeOp(op: Operation): string {
  switch (op.kind) {
    case 'install':
      return `install ${op.version} (${VERSIONS[op.version].version})`;
    case 'sweep':
      return `sweep older-than=${op.sweep.olderThanMs / 1000}s keep=${op.sweep.keepNewest} staging-older-than=${op.sweep.stagingOlderThanMs / 1000}s${op.sweep.dryRun ? ' dry-run' : ''}`;
    default:
      return op.kind;
  }
}

export function describeFault(fault: Fault | null): string {
  if (!fault) return 'no fault';
  switch (fault.kind) {
    case 'repeat':
      return `repeat ${fault.op} after success`;
    case 'drop':
      return `connection drop ${fault.delayMs}ms into ${fault.op}`;
    case 'plant':
      return `agent plants ${fault.what}${fault.what === 'deep-link' && fault.toDir ? ' (to a directory)' : ''} in ${fault.where}`;
    default:
      return `${fault.kind}: ${fault.rules.map((r) => `${r.command} ${r.mode} in ${r.op}`).join(', ')}`;
  }
}
