/**
 * Fencing between two holders of one plugin's lease (docs/host-layout.md, "Operations": a step
 * whose lease was taken over fails with LockLost and changes nothing).
 *
 * Holder A takes the lease, lets it expire, and holder B takes it over. From then on no step of
 * A may succeed: A's stage, swap, snapshot, mark, restore and uninstall (with A's stamp) are
 * raced against B's whole install, many times, and each must fail with LockLost while B's
 * install completes and live is only ever B's or the version before it (a reader polls live
 * from another process the whole time). A stage of A that is already streaming when B takes
 * over must not move its staging into place, and A's clean-up afterwards (the workflow's
 * CleanUp: the host's `rollback` with A's stamp) must not touch B's live copy.
 *
 * On every transport (test/servers/host-transports.ts): locally, over EIC (a real sshd, the
 * steps of both holders over one adapter, as two executions in one Lambda container would) and
 * over SSM (A's streaming stage is a download held halfway). The remote transports race fewer
 * rounds: each round is a dozen host round trips.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { HostSteps, type PluginRef } from '../../lambdas/core/host/host-steps.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { goodTarball } from '../fixtures/hostile-tarballs.ts';
import { judgeLive, readTree, type Tree } from '../helpers/live-tree.ts';
import { versionFiles } from '../helpers/plugin-versions.ts';
import { canMount } from '../helpers/tmpfs.ts';
import { propertyRuns, propertyTimeout } from '../helpers/property-runs.ts';
import { HOST_TRANSPORTS, startHostTransport, type HostTransport, type HostTransportName } from '../servers/host-transports.ts';

/** Rounds of the race per transport (3-10 s a round at load 8-14): PROPERTY_RUNS_SCALE scales them. */
const ROUNDS: Record<HostTransportName, number> = { local: propertyRuns(30), eic: propertyRuns(8), ssm: propertyRuns(8) };

interface Tarball {
  version: string;
  buf: Buffer;
  sha: string;
  tree: Tree;
}

/** Each test races on its own plugin (one plugins root per transport). */
let NAME = 'fenced';
let plugins = 0;

async function tarball(version: string): Promise<Tarball> {
  const tree = versionFiles({ name: NAME, version, files: 7 });
  const buf = await goodTarball(tree);
  return { version, buf, sha: createHash('sha256').update(buf).digest('hex'), tree };
}

let t: HostTransport;
let root: string;
let steps: HostSteps;
const live = () => join(root, NAME);
const ref = (stamp: string): PluginRef => ({ name: NAME, stamp });

describe.each(HOST_TRANSPORTS)('fencing over %s', (transport) => {
  beforeAll(async () => {
    // On a tmpfs when this process may mount one (root): the steps' flushes (syncfs, fsync) then
    // cost nothing, and fencing does not depend on the filesystem. Elsewhere, on the temp dir.
    t = await startHostTransport(transport, canMount() ? { tmpfs: '256m' } : {});
    root = t.root;
    steps = new HostSteps(t.target, 60_000);
  }, 120_000);
  beforeEach(() => {
    NAME = `fenced-${plugins++}`;
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** 'ok:<result>' or the error code: what a step came to, without throwing. */
  async function outcome(p: Promise<unknown>): Promise<string> {
    try {
      const r = await p;
      const result = typeof r === 'string' ? r : (r as { result?: unknown }).result;
      return `ok:${String(result)}`;
    } catch (err) {
      if (err instanceof PluginError) return err.code;
      throw err;
    }
  }

  /** Waits for a condition on the host's filesystem (a synchronisation point, never asserted on); the deadline only bounds a hang. */
  async function until(what: string, condition: () => boolean, deadlineMs = 120_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${deadlineMs} ms waiting until ${what}`);
      await sleep(10);
    }
  }

  function entries(sub: string, stamp?: string): string[] {
    try {
      return readdirSync(join(root, sub))
        .filter((e) => stamp === undefined || e.includes(stamp))
        .sort();
    } catch {
      return [];
    }
  }

  async function leaseStamp(): Promise<string | null> {
    try {
      const text = await readFile(join(root, '.locks', NAME), 'utf8');
      return /^stamp=(.*)$/m.exec(text)?.[1] ?? null;
    } catch {
      return null;
    }
  }

  const stageBuf = (plugin: PluginRef, tb: Tarball) => steps.stage(plugin, tb.sha, 0, t.body(tb.buf), 0);

  /** B's whole install, step by step as the workflow runs them; the result of each step. */
  async function fullInstall(plugin: PluginRef, tb: Tarball, lock = true): Promise<string[]> {
    const results: string[] = [];
    if (lock) results.push((await steps.lock(plugin, 'holder-b', process.pid, 600)).result);
    results.push((await stageBuf(plugin, tb)).result);
    results.push((await steps.swap(plugin)).result);
    results.push(await steps.snapshot(plugin));
    results.push(await steps.mark(plugin, { version: tb.version, sha256: tb.sha, execution: `race-${plugin.stamp}`, installedAt: new Date().toISOString() }));
    results.push(await steps.unlock(plugin));
    return results;
  }

  /** Starts a stage whose bytes arrive in two parts: the second only when `finish()` is called. */
  function streamingStage(plugin: PluginRef, tb: Tarball) {
    const held = t.held(tb.buf);
    const result = outcome(steps.stage(plugin, tb.sha, 0, held.body, 0));
    return { result, finish: held.release };
  }

  function expectLive(tb: Tarball): void {
    expect(judgeLive(readTree(live()), { [tb.version]: tb.tree })).toMatchObject({ state: 'whole', version: tb.version, markedVersion: tb.version });
  }

  /** Nothing of A's stamp anywhere but (when it had staged before the takeover) its own staging. */
  function expectNothingOfA(a: string, stagedBeforeTakeover: boolean): void {
    expect(entries('.staging', a)).toEqual(stagedBeforeTakeover ? [`${NAME}.${a}`] : []);
    expect(entries('.previous', a)).toEqual([]);
    expect(entries('.failed', a)).toEqual([]);
    expect(entries('.locks', a)).toEqual([]);
    // A stage that never placed a staging leaves no record claiming one: live is judged "ours"
    // by comparing its inode with that record, and inode numbers are reused.
    if (!stagedBeforeTakeover) expect(entries('.meta', a), 'operation record of a stage that placed nothing').toEqual([]);
  }

  describe('a lease taken over while its holder is still working', () => {
    it('A (1 s lease) is streaming its stage when B takes over: A fails LockLost at the end and leaves no staging', async () => {
      const v0 = await tarball('0.1.0');
      const ta = await tarball('0.2.0-a');
      const tb = await tarball('0.2.0-b');
      await fullInstall(ref(newStamp()), v0);

      const a = newStamp();
      expect((await steps.lock(ref(a), 'holder-a', process.pid, 1)).result).toBe('acquired');
      const stage = streamingStage(ref(a), ta);
      const partial = join(root, '.staging', `${NAME}.${a}.partial`);
      await until('A has started extracting', () => existsSync(partial));

      // B waits for A's lease to run out (LockBusy until then), then takes it over.
      const b = newStamp();
      let takeover: string | undefined;
      for (let attempt = 0; attempt < 100 && takeover === undefined; attempt++) {
        const r = await outcome(steps.lock(ref(b), 'holder-b', process.pid, 600));
        if (r === 'LockBusy') await sleep(100);
        else takeover = r;
      }
      expect(takeover).toBe('ok:took-over-expired');
      expect(await leaseStamp()).toBe(b);
      // A's stage was still streaming when B took over.
      expect(existsSync(partial)).toBe(true);

      stage.finish();
      expect(await stage.result).toBe('LockLost');
      expectNothingOfA(a, false);
      expectLive(v0);
      expect(await leaseStamp()).toBe(b);

      // B's install goes through; A's clean-up afterwards changes nothing of B's.
      expect(await fullInstall(ref(b), tb, false)).toEqual(['staged', 'exchanged', 'moved', 'marked', 'released']);
      expectLive(tb);
      expect(await steps.rollback(ref(a))).toMatchObject({ changed: false, live: 'untouched' });
      expectLive(tb);
      expect(entries('.failed')).toEqual([]);
    });

    it('A whose lease was taken over: every mutating step fails LockLost, also after B released the lock', async () => {
      const t1 = await tarball('1.0.0');
      const ta = await tarball('1.1.0-a');
      const tb = await tarball('1.1.0-b');
      await fullInstall(ref(newStamp()), t1);
      const a = newStamp();
      await steps.lock(ref(a), 'holder-a', process.pid, 0);
      expect((await stageBuf(ref(a), ta)).result).toBe('staged');
      const b = newStamp();
      expect((await steps.lock(ref(b), 'holder-b', process.pid, 600)).result).toBe('took-over-expired');
      const tryA = async () => [
        await outcome(stageBuf(ref(a), ta)),
        await outcome(steps.swap(ref(a))),
        await outcome(steps.snapshot(ref(a))),
        await outcome(steps.mark(ref(a), { version: ta.version, sha256: ta.sha, execution: `race-${a}`, installedAt: new Date().toISOString() })),
        await outcome(steps.restore(ref(a))),
        await outcome(steps.uninstall(ref(a))),
      ];
      expect(await tryA()).toEqual(Array(6).fill('LockLost'));
      expectLive(t1);
      expect(await fullInstall(ref(b), tb, false)).toEqual(['staged', 'exchanged', 'moved', 'marked', 'released']);
      // No lease at all now: A still holds nothing.
      expect(await tryA()).toEqual(Array(6).fill('LockLost'));
      expectLive(tb);
      expectNothingOfA(a, true);
    });
  });

  const A_STEPS = ['stage', 'swap', 'snapshot', 'mark', 'restore', 'uninstall'] as const;
  type AStep = (typeof A_STEPS)[number];

  describe(`A's steps raced against B's install (${ROUNDS[transport]} rounds)`, () => {
    it('no step of A succeeds once B holds the lease; B always completes; live is never A\'s', { timeout: propertyTimeout(ROUNDS[transport], 45_000) }, async () => {
      const v0 = await tarball('2.0.0');
      const bs: Tarball[] = [];
      const as: Tarball[] = [];
      for (let i = 0; i < ROUNDS[transport] * 2; i++) {
        bs.push(await tarball(`3.${i}.0-b`));
        as.push(await tarball(`3.${i}.0-a`));
      }
      await fullInstall(ref(newStamp()), v0);

      // A reader in another process, judging live against v0 and B's versions only: a read of
      // A's files (or of a mix) counts as "mixed", a read of no plugin as "absent".
      const versionsFile = join(root, '..', `versions-${NAME}.json`);
      await writeFile(versionsFile, JSON.stringify(Object.fromEntries([v0, ...bs].map((t) => [t.version, t.tree]))));
      // Niced: it reads whenever a core is idle, without starving the steps it watches.
      const poller = spawn('nice', ['-n', '19', process.execPath, '--import', 'tsx', join(import.meta.dirname, '../helpers/live-poller.ts'), live(), versionsFile], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      let pollerOut = '';
      poller.stdout.on('data', (c: Buffer) => (pollerOut += c.toString()));
      const pollerExited = new Promise((resolve) => poller.on('exit', resolve));

      let round = 0;
      let previous = v0;
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.record({
              // A's stage finished before the takeover (its staging sits beside live, ready to swap).
              stagedBefore: fc.boolean(),
              // Otherwise: A's stage is streaming across the takeover and finishes during the race.
              streaming: fc.boolean(),
              steps: fc.shuffledSubarray([...A_STEPS], { minLength: 1 }),
              // Scheduling offsets (ms) of A's steps and of the end of A's stream, so that they land
              // before, between and after B's steps. Never asserted on.
              delays: fc.array(fc.integer({ min: 0, max: 80 }), { minLength: A_STEPS.length + 1, maxLength: A_STEPS.length + 1 }),
            }),
            async (plan) => {
              const i = round++;
              const ta = as[i % as.length]!;
              const tb = bs[i % bs.length]!;
              const streaming = plan.streaming && !plan.stagedBefore;
              const a = newStamp();
              const b = newStamp();

              expect((await steps.lock(ref(a), 'holder-a', process.pid, 0)).result).toBe('acquired');
              if (plan.stagedBefore) expect((await stageBuf(ref(a), ta)).result).toBe('staged');
              let stream: ReturnType<typeof streamingStage> | undefined;
              if (streaming) {
                stream = streamingStage(ref(a), ta);
                await until('A has started extracting', () => existsSync(join(root, '.staging', `${NAME}.${a}.partial`)));
              }
              // A's lease (0 s) has expired: B takes over.
              expect((await steps.lock(ref(b), 'holder-b', process.pid, 600)).result).toBe('took-over-expired');

              const runA = (op: AStep): Promise<unknown> => {
                switch (op) {
                  case 'stage':
                    return stageBuf(ref(a), ta);
                  case 'swap':
                    return steps.swap(ref(a));
                  case 'snapshot':
                    return steps.snapshot(ref(a));
                  case 'mark':
                    return steps.mark(ref(a), { version: ta.version, sha256: ta.sha, execution: `race-${a}`, installedAt: new Date().toISOString() });
                  case 'restore':
                    return steps.restore(ref(a));
                  case 'uninstall':
                    return steps.uninstall(ref(a));
                }
              };
              const [aResults, bResults, streamed] = await Promise.all([
                Promise.all(plan.steps.map(async (op, k) => {
                  await sleep(plan.delays[k]!);
                  return [op, await outcome(runA(op))] as const;
                })),
                fullInstall(ref(b), tb, false),
                (async () => {
                  if (!stream) return 'none';
                  await sleep(plan.delays[A_STEPS.length]!);
                  stream.finish();
                  return stream.result;
                })(),
              ]);

              // Every step of A failed with LockLost; B's install completed.
              expect(Object.fromEntries(aResults)).toEqual(Object.fromEntries(plan.steps.map((op) => [op, 'LockLost'])));
              expect(streamed).toBe(streaming ? 'LockLost' : 'none');
              expect(bResults).toEqual(['staged', 'exchanged', 'moved', 'marked', 'released']);

              // Live is B's; the version before it is B's snapshot; nothing of A was moved anywhere.
              expectLive(tb);
              expect(judgeLive(readTree(join(root, '.previous', `${NAME}.${b}`)), { [previous.version]: previous.tree })).toMatchObject({ state: 'whole', version: previous.version });
              expectNothingOfA(a, plan.stagedBefore);
              if (plan.stagedBefore) {
                // A's staging is still A's, untouched.
                expect(judgeLive(readTree(join(root, '.staging', `${NAME}.${a}`)), { [ta.version]: ta.tree })).toMatchObject({ state: 'whole', version: ta.version });
              }
              expect(await leaseStamp()).toBeNull();

              // A's workflow then cleans up (CleanUp = the host's rollback with A's stamp): it may
              // remove A's own staging, and must not touch live.
              const cleanup = await steps.rollback(ref(a));
              expect(cleanup).toMatchObject({ changed: false });
              expectLive(tb);
              expect(entries('.staging', a)).toEqual([]);
              expect(entries('.failed')).toEqual([]);
              previous = tb;
            },
          ),
          { numRuns: ROUNDS[transport], endOnFailure: true },
        );
      } finally {
        poller.stdin.write('stop\n');
        await pollerExited;
      }
      const { counts, problems } = JSON.parse(pollerOut) as { counts: Record<string, number>; problems: string[] };
      expect(round).toBe(ROUNDS[transport]);
      expect(problems).toEqual([]);
      expect(counts.mixed, 'reads of live that were A\'s files or a mix').toBe(0);
      expect(counts.absent, 'reads that found no plugin').toBe(0);
      // The reader really ran alongside the rounds.
      expect(counts.whole).toBeGreaterThan(ROUNDS[transport]);
      console.log(`live reader during the race over ${transport}: ${JSON.stringify(counts)}`);
    });
  });
});
