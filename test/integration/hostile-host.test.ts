/**
 * The hostile-host corpus on the local transport (the host script runs as root, as it does on
 * EC2): at every path the script reads, writes, renames, chowns or deletes inside the plugins
 * root, the agent (uid 1000) plants a symlink to a root-only canary file, a symlink to a
 * directory outside the root, a fifo, or an entry of the wrong type; then install, upgrade,
 * rollback ×2, uninstall and rollback after uninstall run through the real workflows, and list,
 * sweep --dry-run and sweep through pluginctl. What is checked after every operation, and when
 * the agent plants: test/helpers/hostile-lifecycle.ts.
 *
 * Each (path × plant) is its own test. To fit the time budget, runs are shared where that
 * cannot hide anything:
 * - the inside-a-plugin-directory cases expected to succeed throughout run fifteen to a world:
 *   each of the four groups holds every inside path once, the plant kinds rotating (a Latin
 *   square), all plants in place for every operation. A case passes when its group's run found
 *   no problem and its plant was in place for every operation it must meet; if the group's run
 *   found any problem, the case runs again alone and that run decides, so a failure names the
 *   case that causes it;
 * - the four plants of one management directory run one after another on one legacy root
 *   (every operation is refused there, so each case starts from the same state);
 * - every other case runs alone.
 */
import { execFileSync } from 'node:child_process';
import { lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { errorFromFailure } from '../../lambdas/core/errors.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { runWorkflow } from '../../lambdas/core/workflow/local-runner.ts';
import { pluginctl, type CliResult } from '../helpers/cli.ts';
import {
  CASES,
  PLUGIN,
  SOURCES,
  actingBeforeEachStep,
  limiter,
  mustExercise,
  runScenario,
  type HostileCase,
  type HostileTransport,
  type OpResult,
  type ScenarioReport,
} from '../helpers/hostile-lifecycle.ts';
import { AGENT_GID, AGENT_UID, makeSentinel, outsideChanges, snapshotOutside } from '../helpers/hostile-plants.ts';
import { makeWorld } from '../helpers/world.ts';

/** A host step blocked (on a fifo, say) is killed after this and reported as HostTimeout. */
const HOST_STEP_TIMEOUT_MS = 20_000;

/** pluginctl in-process sets process.env for its duration: one call at a time across scenarios. */
let cliQueue: Promise<unknown> = Promise.resolve();
function cli(args: string[], env: Record<string, string>): Promise<CliResult> {
  const next = cliQueue.then(() => pluginctl(args, env));
  cliQueue = next.catch(() => undefined);
  return next;
}

function cliText(...results: CliResult[]): string {
  return results.map((r) => `${r.stdout}\n${r.stderr}`).join('\n');
}

/** A fresh embedded installation: one workspace whose host is a directory, steps run as root. */
async function localTransport(): Promise<HostileTransport & { cleanup(): void }> {
  const world = await makeWorld();
  await world.deps.workspaces.ensure(world.workspace);
  let act: (() => void) | undefined;
  const deps = { ...world.deps, hostTimeoutMs: HOST_STEP_TIMEOUT_MS, hosts: actingBeforeEachStep(world.deps.hosts, () => act) };
  const env = { PLUGINCTL_HOME: world.home, PLUGINCTL_RETRY_DELAY_MS: '0' };
  const ws = ['--workspace', world.workspace];
  return {
    root: world.root,
    scope: join(world.home, 'workspaces', world.workspace, 'root'),
    exclude: [],
    scratch: world.home,
    runWorkflow: async (workflow, source) => {
      const stamp = newStamp();
      const input = workflow === 'install' ? { workspace: world.workspace, source, sha256: null, runtime: null, stamp } : { workspace: world.workspace, plugin: PLUGIN, stamp };
      const outcome = await runWorkflow({ workflow, input, executionName: executionName(world.workspace, PLUGIN, stamp), deps, retryDelayMs: 0 });
      const text = JSON.stringify(outcome);
      if (outcome.status === 'SUCCEEDED') return { ok: true, text, summary: 'succeeded' };
      const err = errorFromFailure(outcome.error, outcome.cause);
      const failed = outcome.steps.filter((s) => s.status === 'failed').map((s) => `${s.name}:${s.error ?? '?'}`);
      return { ok: false, code: err.code, message: err.message, text: `${text}\n${JSON.stringify(err.toJSON())}`, summary: `${err.code}: ${err.message} (${failed.join(', ')})` };
    },
    list: async (): Promise<OpResult> => {
      const json = await cli(['list', ...ws, '--json'], env);
      const human = await cli(['list', ...ws], env);
      const listing = json.json as { degraded?: boolean; plugins?: unknown; error?: { code: string; message: string } } | undefined;
      const ok = json.code === 0 && human.code === 0 && listing?.degraded === false;
      const error = listing?.error ?? (ok ? undefined : { code: 'ListDegraded', message: `${json.stdout} ${human.stdout}` });
      return { ok, code: error?.code, message: error?.message, text: cliText(json, human), summary: `exit ${json.code}: ${JSON.stringify(listing?.plugins ?? listing?.error)}` };
    },
    sweep: async (dryRun, keep = 0): Promise<OpResult> => {
      const r = await cli(['sweep', '--older-than', '0s', '--keep', String(keep), ...(dryRun ? ['--dry-run'] : []), '--json'], env);
      const report = r.json as { hosts?: { counts?: unknown; error?: { code: string; message: string } }[]; error?: { code: string; message: string } } | undefined;
      const error = report?.error ?? report?.hosts?.find((h) => h.error)?.error;
      return { ok: r.code === 0 && !error, code: error?.code, message: error?.message, text: cliText(r), summary: `exit ${r.code}: ${JSON.stringify(error ?? report?.hosts?.[0]?.counts)}` };
    },
    events: () => {
      try {
        return readFileSync(join(world.home, 'events.jsonl'), 'utf8');
      } catch {
        return '';
      }
    },
    beforeHostStep: (fn) => {
      act = fn;
    },
    // rm -rf semantics: links are removed, never followed.
    cleanup: () => rmSync(world.home, { recursive: true, force: true }),
  };
}

/** Runs share the two cores: a few at a time, so that no host step waits seconds for a CPU. */
const slot = limiter(4);

/**
 * The units of work, each in its own world: a group (its cases' plants all in place at once), a
 * management directory (its cases one after another on one legacy root: every operation is
 * refused there, so nothing changes between them), or one case alone.
 */
function unitOf(c: HostileCase): string {
  if (c.group !== undefined) return `group ${c.group}`;
  if (c.location.kind === 'mgmt') return `mgmt ${c.location.dir}`;
  return `alone ${c.name}`;
}

function runUnit(cases: HostileCase[]): Promise<Map<string, ScenarioReport>> {
  return slot(async () => {
    const t = await localTransport();
    const reports = new Map<string, ScenarioReport>();
    try {
      if (cases.some((c) => c.group !== undefined)) {
        const report = await runScenario(t, cases);
        for (const c of cases) reports.set(c.name, report);
      } else {
        for (const [i, c] of cases.entries()) reports.set(c.name, await runScenario(t, [c], { continueLegacyRoot: i > 0 }));
      }
      return reports;
    } finally {
      t.cleanup();
    }
  });
}

const units = new Map<string, Promise<Map<string, ScenarioReport>>>();
function unitRun(c: HostileCase): Promise<Map<string, ScenarioReport>> {
  const key = unitOf(c);
  let run = units.get(key);
  if (!run) {
    run = runUnit(CASES.filter((x) => unitOf(x) === key));
    units.set(key, run);
  }
  return run;
}

describe('the sentinel (test/helpers/hostile-plants.ts)', () => {
  it('notices a read, a listing, a changed mode, a created and a removed file outside the plugins root', () => {
    const scope = mkdtempSync(join(tmpdir(), 'hostile-sentinel-check-'));
    try {
      const root = join(scope, 'configs', 'plugins');
      mkdirSync(root, { recursive: true });
      const sentinel = makeSentinel(join(scope, 'configs', 'sentinel'), scope, [root], scope);
      const before = snapshotOutside(sentinel);
      expect(outsideChanges(before, snapshotOutside(sentinel))).toEqual({ changed: [], read: [] });
      // What a root process following a link would do, from another process.
      execFileSync('sh', ['-c', 'cat "$1" >/dev/null; ls "$2" >/dev/null; chmod 0644 "$1"; : >"$2/planted"; rm "$2/sub/note"', 'sh', sentinel.canary, sentinel.outsideDir]);
      const changes = outsideChanges(before, snapshotOutside(sentinel));
      expect(changes.read).toEqual(['configs/sentinel/outside (listed)', 'configs/sentinel/root-only-canary (read)']);
      expect(changes.changed).toEqual([
        'configs/sentinel/outside/sub/note removed',
        expect.stringMatching(/^configs\/sentinel\/outside: mtimeMs /),
        'configs/sentinel/outside/planted created (file 644 0:0)',
        expect.stringMatching(/^configs\/sentinel\/outside\/sub: mtimeMs /),
        'configs/sentinel/root-only-canary: mode 600 -> 644',
      ]);
      expect(readFileSync(sentinel.canary, 'utf8')).toContain(sentinel.secret);
    } finally {
      rmSync(scope, { recursive: true, force: true });
    }
  });
});

describe('a plant the product filed under .previous/ (agent-owned legacy root)', () => {
  it('is no snapshot for sweep either: --keep 1 keeps the newest snapshot rollback can restore', async () => {
    const t = await localTransport();
    try {
      mkdirSync(t.root, { recursive: true, mode: 0o755 });
      for (const source of [SOURCES.v1, SOURCES.v2]) expect((await t.runWorkflow('install', source)).summary).toBe('succeeded');
      // v2 live, v1 the one snapshot. The agent, owning the root, swaps live for a symlink...
      const outside = mkdtempSync(join(tmpdir(), 'hostile-outside-'));
      try {
        lchownSync(t.root, AGENT_UID, AGENT_GID);
        renameSync(join(t.root, PLUGIN), join(t.root, '.agent-kept'));
        symlinkSync(outside, join(t.root, PLUGIN));
        // ...which the next install exchanges out of live and files as the newest "snapshot".
        expect((await t.runWorkflow('install', SOURCES.v1)).summary).toBe('succeeded');
        const previous = readdirSync(join(t.root, '.previous')).sort();
        expect(previous.map((e) => lstatSync(join(t.root, '.previous', e)).isSymbolicLink())).toEqual([false, true]);
        await new Promise((resolve) => setTimeout(resolve, 1100)); // stamps are per second: both now older than 0s
        const swept = await t.sweep(false, 1);
        expect(swept.ok, swept.summary).toBe(true);
        // restore never takes a symlink, so sweep must not count one towards --keep: v1 stays.
        expect(readdirSync(join(t.root, '.previous')), 'snapshots left by sweep --keep 1').toContain(previous[0]);
        expect((await t.runWorkflow('rollback')).summary, 'rollback after the sweep').toBe('succeeded');
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    } finally {
      t.cleanup();
    }
  });
});

describe.concurrent('hostile host (local transport): whatever the agent plants, every operation ends clearly and root follows nothing', () => {
  // eslint-disable-next-line no-empty-pattern -- vitest passes the suite second, after a fixture object
  beforeAll(({}, suite) => {
    // Start every unit with a test to run (-t may filter) now, so that they overlap.
    const runnable = new Set(suite.tasks.filter((t) => t.mode === 'run').map((t) => t.name));
    for (const c of CASES) if (runnable.has(c.name)) void unitRun(c).catch(() => undefined);
  });

  it.for(CASES.map((c) => [c.name, c] as const))('%s', { timeout: 300_000 }, async ([, c], { expect }) => {
    const report = (await unitRun(c)).get(c.name)!;
    if (c.group !== undefined && report.problems.length > 0) {
      // The shared run found a problem: this case alone decides whether it is this one's.
      const alone = (await runUnit([{ ...c, group: undefined }])).get(c.name)!;
      expect(alone.problems, alone.log.join('\n')).toEqual([]);
      expect(alone.exercised[c.name], 'operations during which the plant was in place').toEqual(expect.arrayContaining(mustExercise(c)));
      return;
    }
    expect(report.problems, report.log.join('\n')).toEqual([]);
    expect(report.exercised[c.name], `operations during which the plant was in place\n${report.log.join('\n')}`).toEqual(expect.arrayContaining(mustExercise(c)));
  });
});
