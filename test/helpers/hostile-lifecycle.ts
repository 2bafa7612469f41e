/**
 * The hostile-host corpus as data, and the lifecycle that runs it on any transport.
 *
 * A case is (location × plant): where the agent (uid 1000) plants (hostile-plants.ts) and what.
 * `runScenario` runs the whole lifecycle (install, upgrade, rollback ×2, uninstall, rollback after
 * uninstall, list, sweep --dry-run, sweep) with the plants of one or more cases in place, and
 * returns every broken promise as a readable problem. After each operation it checks:
 *
 * - outside the plugins root (the host's filesystem `scope`): nothing created, removed or changed
 *   (content, mode, owner, mtime), and nothing read or listed (atime);
 * - the secret of the root-only canaries: in no output of the operation, in no event, in no file
 *   under the plugins root;
 * - the operation succeeded, or failed with a typed error code (not a hang, not HostTimeout or
 *   HostStepFailed) and a message; a failure left live as it was (lstat level, byte for byte),
 *   except MarkerWriteFailed, which by design leaves the new content unmarked;
 * - it ended as the case expects.
 *
 * Plants inside plugin directories are re-applied before every host step (the agent acts at any
 * moment, also between SwapIntoPlace and WriteMarker, and keeps a handle on a directory renamed
 * under .previous/). `<root>/<name>` itself and the management directories can only be replaced
 * while the agent owns the plugins root (an older layout): for those cases the product first
 * installs with the root clean, then before every operation the root is handed back to the agent,
 * which plants again; the operation's first `lock` takes the root over.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, lchownSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isErrorCode } from '../../lambdas/core/errors.ts';
import type { HostResolver } from '../../lambdas/core/host/host-resolver.ts';
import type { HostInvocation } from '../../lambdas/core/host/remote-host.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { withRun } from './wrap-host.ts';
import type { WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import {
  AGENT_GID,
  AGENT_UID,
  PLANTS,
  describeTree,
  filesContaining,
  isRealDirectory,
  makeSentinel,
  outsideChanges,
  plantAt,
  plantLabel,
  pluginDirsIn,
  seedPluginDir,
  snapshotOutside,
  type Belongs,
  type Plant,
} from './hostile-plants.ts';

/** The bundled catalog's plugin (`local://hello-skills@1.0.0` and `@1.1.0`): every transport can install it. */
export const PLUGIN = 'hello-skills';
export const SOURCES = { v1: `local://${PLUGIN}@1.0.0`, v2: `local://${PLUGIN}@1.1.0` } as const;

export type Family = 'live' | 'previous' | 'failed';

export type Location =
  | { kind: 'inside'; family: Family; rel: string; belongs: Belongs; label: string }
  | { kind: 'live-entry'; label: string }
  | { kind: 'mgmt'; dir: string; label: string };

/** Paths inside a plugin directory the script has (or, in earlier versions, had) reasons to touch. */
const INSIDE: [rel: string, belongs: Belongs][] = [
  ['.complete', 'file'],
  ['plugin.yaml', 'file'],
  ['skills', 'dir'],
  // Legacy product metadata: must now be ignored.
  ['.install-stamp', 'file'],
  ['.restored-from', 'file'],
];

const FAMILY_PREFIX: Record<Family, string> = {
  live: `<root>/${PLUGIN}/`,
  previous: `.previous/${PLUGIN}.<stamp>/`,
  failed: `.failed/${PLUGIN}.<stamp>/`,
};

export const MGMT_DIRS = ['.staging', '.previous', '.failed', '.locks', '.meta'] as const;

export const LOCATIONS: Location[] = [
  ...(['live', 'previous', 'failed'] as const).flatMap((family) =>
    INSIDE.map(([rel, belongs]): Location => ({ kind: 'inside', family, rel, belongs, label: `${FAMILY_PREFIX[family]}${rel}` })),
  ),
  { kind: 'live-entry', label: `<root>/${PLUGIN} itself (agent-owned legacy root)` },
  ...MGMT_DIRS.map((dir): Location => ({ kind: 'mgmt', dir, label: `<root>/${dir} (agent-owned legacy root)` })),
];

export const OPS = ['install', 'upgrade', 'rollback', 'rollback again', 'uninstall', 'rollback after uninstall', 'list', 'sweep --dry-run', 'sweep'] as const;
export type OpName = (typeof OPS)[number];
const WORKFLOW_OPS = new Set<OpName>(['install', 'upgrade', 'rollback', 'rollback again', 'uninstall', 'rollback after uninstall']);

export interface HostileCase {
  name: string;
  location: Location;
  plant: Plant;
  /** 'succeeded', or the error code each operation must end with. */
  expected: Record<OpName, string>;
  /** Cases with the same group run in one world (each at its own path); none: alone. */
  group?: number;
}

function belongsOf(location: Location): Belongs {
  return location.kind === 'inside' ? location.belongs : 'dir';
}

function expectedOutcomes(location: Location, plant: Plant): Record<OpName, string> {
  const all = Object.fromEntries(OPS.map((op) => [op, 'succeeded'])) as Record<OpName, string>;
  if (location.kind === 'mgmt') {
    // `lock` (first step of every workflow) and `sweep` take the root over, then refuse the planted directory.
    for (const op of OPS) if (WORKFLOW_OPS.has(op) || op === 'sweep') all[op] = 'UnsafeHostLayout';
  }
  if (location.kind !== 'inside') {
    // The agent owns the root: the read-only operations change nothing, so they cannot take it
    // over, and reading .meta records in a directory the agent may rename under them could leak
    // what a planted link points at. They refuse and say how to fix it.
    all.list = 'UnsafeHostLayout';
    all['sweep --dry-run'] = 'UnsafeHostLayout';
  }
  if (location.kind === 'live-entry') {
    // Each operation meets the plant as live (the agent put its real directory aside): install,
    // upgrade and uninstall file the plant under .previous/ (renames only); a planted snapshot
    // is never restored, so once the setup's one real snapshot is used up there is nothing to
    // roll back to.
    all['rollback again'] = 'NothingToRestore';
    all['rollback after uninstall'] = 'NothingToRestore';
  }
  if (location.kind === 'inside' && location.family === 'live' && location.rel === '.complete' && plant === 'wrong-type') {
    // A directory at live/.complete between SwapIntoPlace and WriteMarker: the marker cannot be
    // renamed in. Documented: MarkerWriteFailed, live has the new content unmarked, and the
    // message names the path.
    all.install = 'MarkerWriteFailed';
    all.upgrade = 'MarkerWriteFailed';
  }
  return all;
}

function allSucceed(expected: Record<OpName, string>): boolean {
  return OPS.every((op) => expected[op] === 'succeeded');
}

/** Every (location × plant). Inside cases that all succeed share a world in four groups (see `group`). */
export const CASES: HostileCase[] = LOCATIONS.flatMap((location, index) =>
  PLANTS.map((plant, plantIndex): HostileCase => {
    const expected = expectedOutcomes(location, plant);
    const c: HostileCase = { name: `${location.label} × ${plantLabel(plant, belongsOf(location))}`, location, plant, expected };
    // A Latin square: every group holds each inside path once, the plant kinds rotating.
    if (location.kind === 'inside' && allSucceed(expected)) c.group = (index + plantIndex) % PLANTS.length;
    return c;
  }),
);

export function findCase(label: string, plant: Plant): HostileCase {
  const c = CASES.find((x) => x.location.label === label && x.plant === plant);
  if (!c) throw new Error(`no case ${label} × ${plant}`);
  return c;
}

export interface OpResult {
  ok: boolean;
  code?: string;
  message?: string;
  /** Everything the operation printed or returned, searched for the secret. */
  text: string;
  /** One line for the log. */
  summary: string;
}

/** What a scenario needs from the world it runs in (local, EIC, SSM). */
export interface HostileTransport {
  /** The plugins root, as a path on this machine. */
  root: string;
  /** The host's filesystem that must not change apart from the root (and `exclude`). */
  scope: string;
  exclude: string[];
  /** Scratch directory on the root's filesystem, outside `scope`. */
  scratch: string;
  runWorkflow(workflow: WorkflowName, source?: string): Promise<OpResult>;
  list(): Promise<OpResult>;
  /** `sweep --older-than 0s --keep <keep, default 0>`. */
  sweep(dryRun: boolean, keep?: number): Promise<OpResult>;
  /** Everything the event sink received so far. */
  events(): string;
  /** The agent's move before every host step (undefined: none). */
  beforeHostStep(act: (() => void) | undefined): void;
}

/** A RemoteHost resolver that lets `act()` run before every host step. */
export function actingBeforeEachStep(inner: HostResolver, act: () => (() => void) | undefined): HostResolver {
  return (workspace) => {
    const target = inner(workspace);
    const host = withRun(target.host, (inv: HostInvocation) => {
      act()?.();
      return target.host.run(inv);
    });
    return { ...target, host };
  };
}

/** Error codes that are no clear answer: a hang, a crash of the script, a protocol mix-up. */
const UNCLEAR = new Set(['HostStepFailed', 'HostProtocolError', 'HostTimeout', 'HostStepInterrupted', 'HostUnreachable']);

export interface ScenarioReport {
  problems: string[];
  log: string[];
  /** Per case: the operations during which its plant was in place. */
  exercised: Record<string, OpName[]>;
}

export interface ScenarioOptions {
  /** An operation still running after this long hung (default 90 s; host steps time out sooner). */
  opDeadlineMs?: number;
  /**
   * A management-directory case continuing on the root a previous one of the same directory
   * left (where every operation was refused, so nothing changed): instead of a fresh root and
   * the setup install, the agent takes its previous plant out and renames the real directory
   * back. Saves one install per case; each case still gets the whole lifecycle.
   */
  continueLegacyRoot?: boolean;
}

function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms: it hung`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function legacyOf(cases: HostileCase[]): HostileCase | undefined {
  const legacy = cases.filter((c) => c.location.kind !== 'inside');
  if (legacy.length && cases.length > 1) throw new Error('a legacy-root case runs alone');
  return legacy[0];
}

/**
 * Runs the lifecycle with the plants of `cases` in place (at most one case per path) on a
 * transport whose plugins root is empty, and reports every problem found.
 */
export async function runScenario(t: HostileTransport, cases: HostileCase[], options: ScenarioOptions = {}): Promise<ScenarioReport> {
  const problems: string[] = [];
  const log: string[] = [];
  const exercised: Record<string, Set<OpName>> = Object.fromEntries(cases.map((c) => [c.name, new Set<OpName>()]));
  const expected: Record<OpName, string> = cases.length === 1 ? cases[0]!.expected : (Object.fromEntries(OPS.map((op) => [op, 'succeeded'])) as Record<OpName, string>);
  if (cases.length > 1 && !cases.every((c) => allSucceed(c.expected))) throw new Error('only cases where everything succeeds share a world');
  const legacy = legacyOf(cases);
  const { root } = t;
  const live = join(root, PLUGIN);
  let current: OpName = 'install';
  const continuing = options.continueLegacyRoot === true && legacy?.location.kind === 'mgmt';

  if (continuing && legacy?.location.kind === 'mgmt') {
    // The previous case's plant out (rm does not follow a link), the real directory back.
    const path = join(root, legacy.location.dir);
    rmSync(path, { recursive: true, force: true });
    const kept = readdirSync(root).filter((e) => e.startsWith('.agent-kept-')).map((e) => join(root, e)).filter(isRealDirectory);
    if (kept.length !== 1) throw new Error(`cannot continue: ${kept.length} directories put aside in ${root}`);
    renameSync(kept[0]!, path);
  } else {
    // The operator's plugins root (what the product's first `lock` would create: root-owned,
    // 0755), and an install that failed two days ago, kept as evidence (agent-owned content).
    mkdirSync(root, { recursive: true, mode: 0o755 });
    chmodSync(root, 0o755);
    mkdirSync(join(root, '.failed'), { mode: 0o700 });
    seedPluginDir(join(root, '.failed', `${PLUGIN}.${newStamp(new Date(Date.now() - 2 * 24 * 3600 * 1000))}`), {
      'plugin.yaml': `name: ${PLUGIN}\nversion: 0.9.0\n`,
      'skills/greet/SKILL.md': 'an install that failed\n',
      '.complete': '{}\n',
    });
  }
  const sentinelDir = join(dirname(root), 'hostile-sentinel');
  rmSync(sentinelDir, { recursive: true, force: true });
  const sentinel = makeSentinel(sentinelDir, t.scope, [root, ...t.exclude], t.scratch);

  const plantInside = (): void => {
    for (const c of cases) {
      const loc = c.location;
      if (loc.kind !== 'inside') continue;
      const dirs = loc.family === 'live' ? (isRealDirectory(live) ? [live] : []) : pluginDirsIn(join(root, `.${loc.family}`), PLUGIN);
      for (const dir of dirs) plantAt(join(dir, loc.rel), c.plant, loc.belongs, sentinel);
      if (dirs.length) exercised[c.name]!.add(current);
    }
  };
  const handRootToAgent = (): void => {
    lchownSync(root, AGENT_UID, AGENT_GID);
    chmodSync(root, 0o755);
  };
  const plantLegacy = (c: HostileCase): void => {
    handRootToAgent();
    const loc = c.location;
    // The agent owns the root: it renames what it cannot empty (root-owned, 0700) out of the way
    // (to a dot-name the product ignores) and plants in its place.
    const path = loc.kind === 'mgmt' ? join(root, loc.dir) : live;
    if (isRealDirectory(path)) renameSync(path, join(root, `.agent-kept-${randomBytes(4).toString('hex')}`));
    plantAt(path, c.plant, 'dir', sentinel);
    exercised[c.name]!.add(current);
  };

  const run = async (op: OpName): Promise<OpResult> => {
    switch (op) {
      case 'install':
        return t.runWorkflow('install', SOURCES.v1);
      case 'upgrade':
        return t.runWorkflow('install', SOURCES.v2);
      case 'rollback':
      case 'rollback again':
      case 'rollback after uninstall':
        return t.runWorkflow('rollback');
      case 'uninstall':
        return t.runWorkflow('uninstall');
      case 'list':
        return t.list();
      case 'sweep --dry-run':
        return t.sweep(true);
      case 'sweep':
        return t.sweep(false);
    }
  };

  try {
    if (legacy && !continuing) {
      // What an older installer left: installed with the root clean (the legacy root-entry case
      // gets a real snapshot to roll back to), then the root handed to the agent.
      for (const source of legacy.location.kind === 'live-entry' ? [SOURCES.v1, SOURCES.v2] : [SOURCES.v1]) {
        const setup = await t.runWorkflow('install', source);
        if (!setup.ok) {
          problems.push(`setup: install of ${source} on a clean root failed: ${setup.summary}`);
          return { problems, log, exercised: {} };
        }
      }
      snapshotOutside(sentinel);
    } else {
      t.beforeHostStep(plantInside);
    }

    for (const op of OPS) {
      current = op;
      if (legacy) plantLegacy(legacy);
      else plantInside();
      const liveBefore = describeTree(live);
      const before = snapshotOutside(sentinel);
      const started = Date.now();
      let r: OpResult;
      try {
        r = await withDeadline(run(op), options.opDeadlineMs ?? 90_000, op);
      } catch (err) {
        problems.push(`${op}: ${(err as Error).message}`);
        break;
      }
      log.push(`${op}: ${r.summary} (${Date.now() - started} ms)`);
      const at = `${op} [${r.summary}]`;

      const after = snapshotOutside(sentinel);
      const changes = outsideChanges(before, after);
      if (changes.changed.length) problems.push(`${at}: outside the plugins root changed: ${changes.changed.join('; ')}`);
      if (changes.read.length) problems.push(`${at}: root read or listed, outside the plugins root: ${changes.read.join(', ')}`);

      if (r.text.includes(sentinel.secret)) problems.push(`${at}: the canary's secret is in the operation's output`);
      if (t.events().includes(sentinel.secret)) problems.push(`${at}: the canary's secret is in the events`);
      const holding = filesContaining(root, sentinel.secret);
      if (holding.length) problems.push(`${at}: files under the plugins root hold the canary's secret: ${holding.join(', ')}`);

      if (!r.ok) {
        if (!isErrorCode(r.code) || UNCLEAR.has(r.code)) problems.push(`${at}: failed without a clear, typed error code`);
        if (!r.message?.trim()) problems.push(`${at}: failed without an error message`);
        if (r.code === 'MarkerWriteFailed') {
          if (!r.message?.includes('.complete')) problems.push(`${at}: the message does not name what blocks the marker`);
        } else if (JSON.stringify(describeTree(live)) !== JSON.stringify(liveBefore)) {
          problems.push(`${at}: failed, and live is not as it was: before ${JSON.stringify(liveBefore)}, after ${JSON.stringify(describeTree(live))}`);
        }
      }
      const outcome = r.ok ? 'succeeded' : (r.code ?? 'unknown');
      if (outcome !== expected[op]) problems.push(`${at}: ended ${outcome}, expected ${expected[op]}`);
    }
  } finally {
    t.beforeHostStep(undefined);
  }
  return { problems, log, exercised: Object.fromEntries(Object.entries(exercised).map(([k, v]) => [k, OPS.filter((op) => v.has(op))])) };
}

/** The operations during which a case's plant must have been in place. */
export function mustExercise(c: HostileCase): OpName[] {
  // Snapshots exist from the upgrade's SnapshotLive on (the plant goes in before its next step).
  if (c.location.kind === 'inside' && c.location.family === 'previous') return OPS.filter((op) => op !== 'install');
  return [...OPS];
}

/** Runs at most `n` tasks at a time. */
export function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    // A finishing task hands its slot straight to the next waiter.
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    else active++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}
