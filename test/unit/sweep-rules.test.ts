/**
 * The sweeper's rules: durations, cutoffs, the reference model `planSweep`, and property tests
 * that run the REAL host script (HostSteps + LocalHost, `sh plugin-host.sh sweep`) over random
 * layouts around an injected clock and check it against the model and against the safety rules
 * directly: never a live directory, never the newest K snapshots of a plugin, never a pinned
 * snapshot, never the staging or failed entries of a plugin under an active lease.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { HostSteps, type SweepRules } from '../../lambdas/core/host/host-steps.ts';
import { LocalHost } from '../../lambdas/core/host/local-host.ts';
import { stampTime } from '../../lambdas/core/stamp.ts';
import {
  DAY_MS,
  formatDuration,
  parseDuration,
  parseEntry,
  planSweep,
  sweepRules,
  type SweepLayout,
} from '../../lambdas/core/sweep/sweep-rules.ts';

const HOUR = 60 * 60 * 1000;

function refusal(fn: () => unknown): PluginError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PluginError);
    return err as PluginError;
  }
  throw new Error('expected a refusal');
}

describe('durations', () => {
  it.each([
    ['7d', 7 * DAY_MS],
    ['12h', 12 * HOUR],
    ['30m', 30 * 60_000],
    ['45s', 45_000],
    ['0s', 0],
    ['0d', 0],
    ['36500d', 36_500 * DAY_MS],
  ])('%s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '7', 'd', '1w', '-1d', '1.5h', '7days', ' 7d', '7d ', '7D', '1e3s', '0x10s', '36501d', '999999999d', '7d2h'])('refuses %j', (text) => {
    const err = refusal(() => parseDuration(text));
    expect(err.code).toBe('InvalidInput');
    expect(err.hint || err.message).toMatch(/7d|100 years|36500d/);
  });

  it('refuses non-strings', () => {
    expect(refusal(() => parseDuration(7)).code).toBe('InvalidInput');
    expect(refusal(() => parseDuration(undefined)).code).toBe('InvalidInput');
  });

  it('formats back to the largest exact unit', () => {
    expect(formatDuration(7 * DAY_MS)).toBe('7d');
    expect(formatDuration(36 * HOUR)).toBe('36h');
    expect(formatDuration(90_000)).toBe('90s');
    expect(formatDuration(0)).toBe('0s');
    fc.assert(fc.property(fc.integer({ min: 0, max: 10_000 }), fc.constantFrom('d', 'h', 'm', 's'), (n, unit) => {
      const ms = parseDuration(`${n}${unit}`);
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }));
  });
});

describe('cutoffs', () => {
  const now = new Date('2026-03-15T12:34:56.789Z');

  it('defaults: snapshots and failures 7 days, staging 1 hour, keep 1, not a dry run', () => {
    expect(sweepRules({ now })).toEqual({
      previousBefore: '20260308T123456Z',
      keepNewest: 1,
      stagingBefore: '20260315T113456Z',
      failedBefore: '20260308T123456Z',
      nowEpochSeconds: Math.floor(now.getTime() / 1000),
      dryRun: false,
    });
  });

  it('failures follow olderThan unless given; every knob is passed through', () => {
    expect(sweepRules({ now, olderThanMs: 0, keepNewest: 0, dryRun: true })).toMatchObject({
      previousBefore: '20260315T123456Z',
      failedBefore: '20260315T123456Z',
      stagingBefore: '20260315T113456Z',
      keepNewest: 0,
      dryRun: true,
    });
    expect(sweepRules({ now, olderThanMs: DAY_MS, failedOlderThanMs: 30 * DAY_MS, stagingOlderThanMs: 30 * 60_000 })).toMatchObject({
      previousBefore: '20260314T123456Z',
      failedBefore: '20260213T123456Z',
      stagingBefore: '20260315T120456Z',
    });
  });

  it('a cutoff is the stamp time of now - age: stamps of that second or later are not older', () => {
    fc.assert(fc.property(fc.date({ min: new Date('2001-01-01'), max: new Date('2099-01-01'), noInvalidDate: true }), fc.integer({ min: 0, max: 400 * DAY_MS }), (at, age) => {
      const rules = sweepRules({ now: at, olderThanMs: age });
      expect(rules.previousBefore).toBe(stampTime(new Date(at.getTime() - age)));
      expect(rules.previousBefore).toMatch(/^\d{8}T\d{6}Z$/);
    }));
  });

  it('refuses bad values', () => {
    expect(refusal(() => sweepRules({ now, keepNewest: -1 })).code).toBe('InvalidInput');
    expect(refusal(() => sweepRules({ now, keepNewest: 1.5 })).code).toBe('InvalidInput');
    expect(refusal(() => sweepRules({ now, olderThanMs: -1 })).code).toBe('InvalidInput');
    expect(refusal(() => sweepRules({ now, olderThanMs: Number.NaN })).code).toBe('InvalidInput');
    expect(refusal(() => sweepRules({ now: new Date('invalid') })).code).toBe('InvalidInput');
  });
});

describe('planSweep (the model)', () => {
  const rules: SweepRules = { previousBefore: '20260301T000000Z', keepNewest: 1, stagingBefore: '20260301T000000Z', failedBefore: '20260301T000000Z', nowEpochSeconds: 1_000, dryRun: false };

  it('parses entries like the script', () => {
    expect(parseEntry('a.b.20260101T000000Z-ab12')).toEqual({ name: 'a.b', stamp: '20260101T000000Z-ab12' });
    expect(parseEntry('A.20260101T000000Z-ab12')).toBeUndefined();
    expect(parseEntry('.20260101T000000Z-ab12')).toBeUndefined();
    expect(parseEntry('a.20260101T000000Z-AB12')).toBeUndefined();
    expect(parseEntry('not-a-snapshot')).toBeUndefined();
  });

  it('keeps the newest K (pinned ones count), pinned ones, new ones; guards leased staging/failures; drops expired locks', () => {
    const layout: SweepLayout = {
      previous: [
        { entry: 'p.20260201T000000Z-aaaa', pinned: false },
        { entry: 'p.20260202T000000Z-aaaa', pinned: true },
        { entry: 'p.20260203T000000Z-aaaa', pinned: false },
        { entry: 'p.20260401T000000Z-aaaa', pinned: false },
        { entry: 'q.20260101T000000Z-aaaa', pinned: false },
        { entry: 'junk', pinned: false },
      ],
      staging: ['p.20260101T000000Z-aaaa.partial', 'q.20260101T000000Z-aaaa.work', 'p.20260501T000000Z-aaaa', '.complete.p.x.tmp'],
      failed: ['p.20260101T000000Z-aaaa', 'q.20260101T000000Z-aaaa'],
      locks: [
        { name: 'q', expires: '2000' },
        { name: 'p', expires: '999' },
        { name: 'r', expires: 'soon' },
        { name: '.mutex', expires: undefined },
      ],
    };
    expect(planSweep(layout, rules).map((d) => d.path)).toEqual([
      '.failed/p.20260101T000000Z-aaaa',
      '.locks/p',
      '.locks/r',
      '.previous/p.20260201T000000Z-aaaa',
      '.previous/p.20260203T000000Z-aaaa',
      '.staging/p.20260101T000000Z-aaaa.partial',
    ]);
  });
});

// --- property: the real script against the model ------------------------------------------------

const host = new LocalHost({ timeoutMs: 30_000 });
let base: string;
let runs = 0;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'sweep-prop-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

interface EntrySpec {
  offsetMs: number;
  suffix: string;
  size: number;
}
type LockSpec = { kind: 'none' } | { kind: 'active'; inSeconds: number } | { kind: 'expired'; agoSeconds: number } | { kind: 'garbage' };
interface PluginSpec {
  snapshots: (EntrySpec & { pinned: boolean })[];
  staging: (EntrySpec & { variant: '' | '.partial' | '.work' })[];
  failed: EntrySpec[];
  lock: LockSpec;
}
interface Scenario {
  now: Date;
  plugins: Record<string, PluginSpec>;
  olderThanMs: number;
  failedOlderThanMs: number | undefined;
  keepNewest: number;
  junk: boolean;
}

const suffixArb = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'), minLength: 4, maxLength: 4 });
const wide = fc.integer({ min: -30 * DAY_MS, max: 30 * DAY_MS });
// Staging ages straddle the 1-hour cutoff too.
const near = fc.integer({ min: -3 * HOUR, max: HOUR });
const entryArb = (offset: fc.Arbitrary<number>) => fc.record({ offsetMs: offset, suffix: suffixArb, size: fc.integer({ min: 0, max: 3000 }) });
const lockArb: fc.Arbitrary<LockSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 3600 }).map((inSeconds) => ({ kind: 'active' as const, inSeconds })) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 3600 }).map((agoSeconds) => ({ kind: 'expired' as const, agoSeconds })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'garbage' as const }) },
);
const pluginArb: fc.Arbitrary<PluginSpec> = fc.record({
  snapshots: fc.array(fc.record({ offsetMs: wide, suffix: suffixArb, size: fc.integer({ min: 0, max: 3000 }), pinned: fc.integer({ min: 0, max: 3 }).map((n) => n === 0) }), { maxLength: 6 }),
  staging: fc.array(fc.record({ offsetMs: fc.oneof(near, wide), suffix: suffixArb, size: fc.integer({ min: 0, max: 3000 }), variant: fc.constantFrom('' as const, '.partial' as const, '.work' as const) }), { maxLength: 3 }),
  failed: fc.array(entryArb(wide), { maxLength: 2 }),
  lock: lockArb,
});

/**
 * Plugin names, including dotted ones whose entries interleave with another plugin's when sorted
 * as plain `<name>.<stamp>` strings (`p.202603.…` sorts between `p.20260301…` and `p.20260228…`).
 */
function namePool(now: Date): string[] {
  const month = stampTime(now).slice(0, 6);
  return ['p', `p.${month}`, 'alpha', 'b-2', 'x.y'];
}

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .date({ min: new Date('2026-01-01T00:00:00Z'), max: new Date('2026-12-31T00:00:00Z'), noInvalidDate: true })
  .chain((now) =>
    fc.record({
      now: fc.constant(now),
      plugins: fc.dictionary(fc.constantFrom(...namePool(now)), pluginArb, { minKeys: 1, maxKeys: 4 }),
      olderThanMs: fc.oneof(fc.constantFrom(0, HOUR, 7 * DAY_MS, 14 * DAY_MS), fc.integer({ min: 0, max: 40 * DAY_MS })),
      failedOlderThanMs: fc.option(fc.integer({ min: 0, max: 40 * DAY_MS }), { nil: undefined }),
      keepNewest: fc.integer({ min: 0, max: 3 }),
      junk: fc.boolean(),
    }),
  );

interface Built {
  root: string;
  layout: SweepLayout;
  /** Every path under the root that the sweep may look at (relative), before the sweep. */
  paths: string[];
}

async function build(s: Scenario): Promise<Built> {
  const root = join(base, `run-${runs++}`, 'plugins');
  const nowMs = s.now.getTime();
  const nowSec = Math.floor(nowMs / 1000);
  const layout: SweepLayout = { previous: [], staging: [], failed: [], locks: [] };
  const stamp = (e: EntrySpec) => `${stampTime(new Date(nowMs + e.offsetMs))}-${e.suffix}`;
  const dir = async (rel: string, size: number, extra: Record<string, string> = {}) => {
    await mkdir(join(root, rel), { recursive: true });
    await writeFile(join(root, rel, 'data'), 'x'.repeat(size));
    for (const [f, c] of Object.entries(extra)) await writeFile(join(root, rel, f), c);
  };
  await mkdir(join(root, '.locks'), { recursive: true });
  for (const [name, p] of Object.entries(s.plugins)) {
    // Live copy: the sweep must never touch it.
    await dir(name, 100, { '.install-stamp': `${stampTime(s.now)}-live\n` });
    for (const snap of p.snapshots) {
      const entry = `${name}.${stamp(snap)}`;
      if (layout.previous.some((e) => e.entry === entry)) continue;
      await dir(`.previous/${entry}`, snap.size, snap.pinned ? { '.pinned': '' } : {});
      layout.previous.push({ entry, pinned: snap.pinned });
    }
    for (const st of p.staging) {
      const entry = `${name}.${stamp(st)}${st.variant}`;
      if (layout.staging.includes(entry)) continue;
      await dir(`.staging/${entry}`, st.size);
      layout.staging.push(entry);
    }
    for (const f of p.failed) {
      const entry = `${name}.${stamp(f)}`;
      if (layout.failed.includes(entry)) continue;
      await dir(`.failed/${entry}`, f.size);
      layout.failed.push(entry);
    }
    if (p.lock.kind !== 'none') {
      const expires = p.lock.kind === 'active' ? String(nowSec + p.lock.inSeconds) : p.lock.kind === 'expired' ? String(nowSec - p.lock.agoSeconds) : 'never';
      await writeFile(join(root, '.locks', name), `stamp=${stampTime(s.now)}-lock\nowner=x\npid=0\nhost=h\nexpires=${expires}\n`);
      layout.locks.push({ name, expires });
    }
  }
  if (s.junk) {
    // Not the sweep's to judge: misnamed and hidden entries stay.
    await dir('.previous/not-a-snapshot', 10);
    await dir('.staging/junk', 10);
    await writeFile(join(root, '.staging', `.complete.p.${stampTime(s.now)}-abcd.tmp`), '{}');
    await writeFile(join(root, '.locks', '.mutex'), '');
    layout.previous.push({ entry: 'not-a-snapshot', pinned: false });
    layout.staging.push('junk', `.complete.p.${stampTime(s.now)}-abcd.tmp`);
  }
  return { root, layout, paths: listPaths(root) };
}

function listPaths(root: string): string[] {
  const out: string[] = [];
  for (const top of readdirSync(root)) {
    if (['.previous', '.staging', '.failed', '.locks'].includes(top)) {
      // The lock mutex is the script's own (a real sweep creates it to delete leases safely).
      for (const e of readdirSync(join(root, top))) if (`${top}/${e}` !== '.locks/.mutex') out.push(`${top}/${e}`);
    } else {
      out.push(top);
    }
  }
  return out.sort();
}

function rulesOf(s: Scenario, dryRun: boolean): SweepRules {
  return sweepRules({ now: s.now, olderThanMs: s.olderThanMs, failedOlderThanMs: s.failedOlderThanMs, keepNewest: s.keepNewest, dryRun });
}

/** The safety rules, stated without the model. */
function mustSurvive(s: Scenario, layout: SweepLayout): string[] {
  const keep: string[] = [];
  for (const [name, p] of Object.entries(s.plugins)) {
    keep.push(name);
    const mine = layout.previous.map((e) => e.entry).filter((e) => parseEntry(e)?.name === name).sort().reverse();
    keep.push(...mine.slice(0, s.keepNewest).map((e) => `.previous/${e}`));
    keep.push(...layout.previous.filter((e) => e.pinned && parseEntry(e.entry)?.name === name).map((e) => `.previous/${e.entry}`));
    if (p.lock.kind === 'active') {
      keep.push(`.locks/${name}`);
      for (const e of layout.staging) if (parseEntry(e.replace(/\.partial$/, '').replace(/\.work$/, ''))?.name === name) keep.push(`.staging/${e}`);
      for (const e of layout.failed) if (parseEntry(e)?.name === name) keep.push(`.failed/${e}`);
    }
  }
  return keep;
}

describe('the real script against the model (injected clock, random layouts)', () => {
  it('deletes expired leases under the lock mutex (op_lock may be taking one over); a dry run does not wait', async () => {
    const now = new Date('2026-03-10T00:00:00Z');
    const s: Scenario = { now, plugins: { p: { snapshots: [], staging: [], failed: [], lock: { kind: 'expired', agoSeconds: 5 } } }, olderThanMs: 0, failedOlderThanMs: undefined, keepNewest: 1, junk: false };
    const { root } = await build(s);
    const steps = new HostSteps({ host, root, ownerSpec: '-' });
    // Someone holds the mutex for a second (as op_lock does while it decides).
    const holder = spawn('flock', [join(root, '.locks', '.mutex'), 'sleep', '1'], { stdio: 'ignore' });
    const released = new Promise((resolve) => holder.once('close', resolve));
    await new Promise((resolve) => setTimeout(resolve, 150));
    let t = Date.now();
    expect((await steps.sweep(rulesOf(s, true))).counts.locks).toBe(1);
    expect(Date.now() - t).toBeLessThan(700);
    t = Date.now();
    expect((await steps.sweep(rulesOf(s, false))).counts.locks).toBe(1);
    expect(Date.now() - t).toBeGreaterThanOrEqual(600);
    await released;
    expect(existsSync(join(root, '.locks', 'p'))).toBe(false);
  });

  it('keeps exactly K of a plugin whose snapshots interleave with a dotted name when sorted as text', async () => {
    // Sorted as "<name>.<stamp>", p.202603.… falls between p.20260301… and p.20260228…; the script
    // must still see p's snapshots as one run (it once kept K more of the older part).
    const now = new Date('2026-03-10T00:00:00Z');
    const s: Scenario = {
      now,
      plugins: {
        p: { snapshots: [-2, -12, -13].map((d) => ({ offsetMs: d * DAY_MS, suffix: 'aaaa', size: 10, pinned: false })), staging: [], failed: [], lock: { kind: 'none' } },
        'p.202603': { snapshots: [{ offsetMs: -DAY_MS, suffix: 'aaaa', size: 10, pinned: false }], staging: [], failed: [], lock: { kind: 'none' } },
      },
      olderThanMs: 0,
      failedOlderThanMs: undefined,
      keepNewest: 1,
      junk: false,
    };
    const { root, layout } = await build(s);
    const report = await new HostSteps({ host, root, ownerSpec: '-' }).sweep(rulesOf(s, false));
    expect(report.deleted.map((d) => d.path).sort()).toEqual(['.previous/p.20260225T000000Z-aaaa', '.previous/p.20260226T000000Z-aaaa']);
    expect(report.deleted.map((d) => d.path).sort()).toEqual(planSweep(layout, rulesOf(s, false)).map((d) => d.path));
  });

  it('deletes exactly what planSweep says, never a protected entry; dry run reports the same and deletes nothing', { timeout: 120_000 }, async () => {
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const { root, layout, paths } = await build(s);
        try {
          const steps = new HostSteps({ host, root, ownerSpec: '-' });
          const expected = planSweep(layout, rulesOf(s, false)).map((d) => d.path);

          const dry = await steps.sweep(rulesOf(s, true));
          expect(dry.dryRun).toBe(true);
          expect(dry.deleted.map((d) => d.path).sort()).toEqual(expected);
          expect(listPaths(root)).toEqual(paths);

          const real = await steps.sweep(rulesOf(s, false));
          const deleted = real.deleted.map((d) => d.path).sort();
          expect(deleted).toEqual(expected);
          expect(real.counts).toEqual({
            previous: expected.filter((p) => p.startsWith('.previous/')).length,
            staging: expected.filter((p) => p.startsWith('.staging/')).length,
            failed: expected.filter((p) => p.startsWith('.failed/')).length,
            locks: expected.filter((p) => p.startsWith('.locks/')).length,
          });
          expect(real.bytes).toBe(dry.bytes);
          expect(real.bytes).toBe(real.deleted.reduce((n, d) => n + d.bytes, 0));
          // What is gone is exactly what was reported.
          expect(listPaths(root)).toEqual(paths.filter((p) => !deleted.includes(p)));
          for (const p of mustSurvive(s, layout)) {
            expect(deleted, `${p} must survive`).not.toContain(p);
            expect(existsSync(join(root, p)), `${p} must survive`).toBe(true);
          }
          for (const name of Object.keys(s.plugins)) expect(statSync(join(root, name, 'data')).size).toBe(100);
        } finally {
          await rm(join(root, '..'), { recursive: true, force: true });
        }
      }),
      { numRuns: 60 },
    );
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
