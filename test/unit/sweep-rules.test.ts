/**
 * The sweeper's rules: durations, cutoffs, the reference model `planSweep`, and property tests
 * that run the REAL host script (HostSteps + LocalHost, `sh plugin-host.sh sweep`) over random
 * layouts around an injected clock and check it against the model and against the safety rules
 * directly: never a live directory, never the newest K snapshots of a plugin, never a pinned
 * snapshot (pinned by its root-owned `.meta/<name>.<stamp>.pin`; a legacy `.pinned` file inside
 * the agent's directory pins nothing), never the staging, failed entries or stage locks of a
 * plugin under an active lease, never a marker record or pin under `.meta/`.
 */
import { spawn, spawnSync } from 'node:child_process';
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
  pinOf,
  planRecordSweep,
  planSweep,
  sweepRules,
  type SweepLayout,
} from '../../lambdas/core/sweep/sweep-rules.ts';
import { propertyRuns, propertyTimeout } from '../helpers/property-runs.ts';

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

  const layout: SweepLayout = {
    previous: [
      'p.20260201T000000Z-aaaa',
      'p.20260202T000000Z-aaaa',
      'p.20260203T000000Z-aaaa',
      'p.20260401T000000Z-aaaa',
      'q.20260101T000000Z-aaaa',
      'junk',
    ],
    staging: [
      'p.20260101T000000Z-aaaa.partial',
      'q.20260101T000000Z-aaaa.work',
      'p.20260501T000000Z-aaaa',
      '.complete.p.x.tmp',
      // Marker temp files a killed mark left: as staging.
      '.complete.p.20260101T000000Z-bbbb.tmp',
      '.complete.q.20260101T000000Z-bbbb.tmp',
      '.complete.p.20260501T000000Z-bbbb.tmp',
      // Other hidden entries are not the sweep's.
      '.p.20260101T000000Z-aaaa',
    ],
    failed: ['p.20260101T000000Z-aaaa', 'q.20260101T000000Z-aaaa'],
    locks: [
      { name: 'q', expires: '2000' },
      { name: 'p', expires: '999' },
      { name: 'r', expires: 'soon' },
      { name: '.mutex', expires: undefined },
      // Stage locks an interrupted stage left: as staging.
      { name: '.stage.p.20260101T000000Z-cccc', expires: undefined },
      { name: '.stage.q.20260101T000000Z-cccc', expires: undefined },
      { name: '.stage.p.20260501T000000Z-cccc', expires: undefined },
      { name: '.stage.bad', expires: undefined },
    ],
    meta: [
      // The pin of p.20260202 (the snapshot itself holds no pin: nothing inside it is read).
      'p.20260202T000000Z-aaaa.pin',
      // A pin of a snapshot that is gone pins nothing and is never swept.
      'p.20260101T000000Z-zzzz.pin',
      // Operation records: of a swept staging (goes), of a kept snapshot (stays), of a swept
      // snapshot (goes), of a leased plugin (stays), orphans old (goes) and new (stays).
      'p.20260101T000000Z-aaaa',
      'p.20260202T000000Z-aaaa',
      'p.20260203T000000Z-aaaa',
      'q.20260101T000000Z-aaaa',
      'r.20260101T000000Z-dddd',
      'r.20260501T000000Z-dddd',
      // Marker records and the exchange method: never.
      'p@2049-1234',
      'r@2049-99',
      'exchange',
      'junk',
    ],
  };

  it('keeps the newest K (pinned ones count), pinned ones, new ones; guards leased staging/failures/stage locks; drops expired locks', () => {
    expect(planSweep(layout, rules).map((d) => d.path)).toEqual([
      '.failed/p.20260101T000000Z-aaaa',
      '.locks/.stage.p.20260101T000000Z-cccc',
      '.locks/p',
      '.locks/r',
      '.previous/p.20260201T000000Z-aaaa',
      '.previous/p.20260203T000000Z-aaaa',
      '.staging/.complete.p.20260101T000000Z-bbbb.tmp',
      '.staging/p.20260101T000000Z-aaaa.partial',
    ]);
    expect(pinOf('p.20260202T000000Z-aaaa')).toBe('p.20260202T000000Z-aaaa.pin');
  });

  it('a legacy .pinned inside a snapshot is no pin: only .meta/<name>.<stamp>.pin is', () => {
    // The layout lists no file inside a snapshot at all: take the pin away and p.20260202 goes.
    const unpinned = { ...layout, meta: layout.meta.filter((m) => !m.endsWith('.pin')) };
    expect(planSweep(unpinned, rules).filter((d) => d.kind === 'previous').map((d) => d.path)).toEqual([
      '.previous/p.20260201T000000Z-aaaa',
      '.previous/p.20260202T000000Z-aaaa',
      '.previous/p.20260203T000000Z-aaaa',
    ]);
  });

  it('removes operation records whose entries are gone after the sweep (unreported), never markers, pins or records of leased plugins; a dry run none', () => {
    expect(planRecordSweep(layout, rules)).toEqual(['.meta/p.20260101T000000Z-aaaa', '.meta/p.20260203T000000Z-aaaa', '.meta/r.20260101T000000Z-dddd']);
    expect(planRecordSweep(layout, { ...rules, dryRun: true })).toEqual([]);
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
/** `meta`: pinned by `.meta/<name>.<stamp>.pin`; `legacy`: a `.pinned` file inside the snapshot (an older layout: pins nothing). */
type PinSpec = 'none' | 'meta' | 'legacy';
/** `.complete`: the marker temp file `.staging/.complete.<name>.<stamp>.tmp` a killed mark left. */
type StagingVariant = '' | '.partial' | '.work' | '.complete';
interface PluginSpec {
  /** `recorded`: the operation record `.meta/<name>.<stamp>` exists, as the real ops leave it. */
  snapshots: (EntrySpec & { pin: PinSpec; recorded: boolean })[];
  staging: (EntrySpec & { variant: StagingVariant; recorded: boolean })[];
  failed: (EntrySpec & { recorded: boolean })[];
  /** `.locks/.stage.<name>.<stamp>` left by interrupted stages. */
  stageLocks: EntrySpec[];
  /** Operation records whose directories are gone. */
  records: EntrySpec[];
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
const pinArb: fc.Arbitrary<PinSpec> = fc.integer({ min: 0, max: 5 }).map((n) => (n === 0 ? 'meta' : n === 1 ? 'legacy' : 'none'));
const size = fc.integer({ min: 0, max: 3000 });
const pluginArb: fc.Arbitrary<PluginSpec> = fc.record({
  snapshots: fc.array(fc.record({ offsetMs: wide, suffix: suffixArb, size, pin: pinArb, recorded: fc.boolean() }), { maxLength: 6 }),
  staging: fc.array(
    fc.record({ offsetMs: fc.oneof(near, wide), suffix: suffixArb, size, variant: fc.constantFrom('' as const, '.partial' as const, '.work' as const, '.complete' as const), recorded: fc.boolean() }),
    { maxLength: 3 },
  ),
  failed: fc.array(fc.record({ offsetMs: wide, suffix: suffixArb, size, recorded: fc.boolean() }), { maxLength: 2 }),
  // At most one of each: every process the sweep forks counts against the time budget below.
  stageLocks: fc.array(entryArb(fc.oneof(near, wide)), { maxLength: 1 }),
  records: fc.array(entryArb(fc.oneof(near, wide)), { maxLength: 1 }),
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
  const layout: SweepLayout = { previous: [], staging: [], failed: [], locks: [], meta: [] };
  const stamp = (e: EntrySpec) => `${stampTime(new Date(nowMs + e.offsetMs))}-${e.suffix}`;
  const dir = async (rel: string, size: number, extra: Record<string, string> = {}) => {
    await mkdir(join(root, rel), { recursive: true });
    await writeFile(join(root, rel, 'data'), 'x'.repeat(size));
    for (const [f, c] of Object.entries(extra)) await writeFile(join(root, rel, f), c);
  };
  const file = async (rel: string, content: string) => {
    await writeFile(join(root, rel), content);
  };
  const record = async (entry: string) => {
    if (layout.meta.includes(entry)) return;
    await file(`.meta/${entry}`, 'staged=2049-1\n');
    layout.meta.push(entry);
  };
  // Every management directory exists, as the real operations leave them (a real sweep creates
  // any that is missing: the root must look the same to the dry run and to the real one).
  for (const d of MGMT) await mkdir(join(root, d), { recursive: true, mode: 0o700 });
  let ino = 100;
  for (const [name, p] of Object.entries(s.plugins)) {
    // Live copy: the sweep must never touch it, nor its marker record.
    await dir(name, 100, { '.complete': '{}' });
    await file(`.meta/${name}@2049-${ino}`, `stamp=${stampTime(s.now)}-live\n`);
    layout.meta.push(`${name}@2049-${ino++}`);
    for (const snap of p.snapshots) {
      const entry = `${name}.${stamp(snap)}`;
      if (layout.previous.includes(entry)) continue;
      await dir(`.previous/${entry}`, snap.size, snap.pin === 'legacy' ? { '.pinned': '' } : {});
      layout.previous.push(entry);
      if (snap.pin === 'meta') {
        await file(`.meta/${pinOf(entry)}`, '');
        layout.meta.push(pinOf(entry));
      }
      if (snap.recorded) await record(entry);
    }
    for (const st of p.staging) {
      const entry = st.variant === '.complete' ? `.complete.${name}.${stamp(st)}.tmp` : `${name}.${stamp(st)}${st.variant}`;
      if (layout.staging.includes(entry)) continue;
      if (st.variant === '.complete') await file(`.staging/${entry}`, '{}');
      else await dir(`.staging/${entry}`, st.size);
      layout.staging.push(entry);
      if (st.recorded) await record(`${name}.${stamp(st)}`);
    }
    for (const f of p.failed) {
      const entry = `${name}.${stamp(f)}`;
      if (layout.failed.includes(entry)) continue;
      await dir(`.failed/${entry}`, f.size);
      layout.failed.push(entry);
      if (f.recorded) await record(entry);
    }
    for (const sl of p.stageLocks) {
      const lockName = `.stage.${name}.${stamp(sl)}`;
      if (layout.locks.some((l) => l.name === lockName)) continue;
      await file(`.locks/${lockName}`, '');
      layout.locks.push({ name: lockName, expires: undefined });
    }
    for (const r of p.records) await record(`${name}.${stamp(r)}`);
    if (p.lock.kind !== 'none') {
      const expires = p.lock.kind === 'active' ? String(nowSec + p.lock.inSeconds) : p.lock.kind === 'expired' ? String(nowSec - p.lock.agoSeconds) : 'never';
      await writeFile(join(root, '.locks', name), `stamp=${stampTime(s.now)}-lock\nowner=x\npid=0\nhost=h\nexpires=${expires}\n`);
      layout.locks.push({ name, expires });
    }
  }
  if (s.junk) {
    // Not the sweep's to judge: misnamed and hidden entries, the mutex, the exchange method, a
    // pin whose snapshot is gone, a legacy pin file in .previous, a misnamed record.
    const old = `${stampTime(new Date(nowMs - 30 * DAY_MS))}-abcd`;
    await dir('.previous/not-a-snapshot', 10);
    await dir('.staging/junk', 10);
    await dir(`.staging/.p.${old}`, 10);
    await file(`.staging/.complete.p.${stampTime(s.now)}-abcd.tmp`, '{}');
    await file('.locks/.mutex', '');
    await file(`.locks/.p.${old}.tmp`, 'stamp=x\n');
    await file('.meta/exchange', 'method=perl-renameat2:316\n');
    await file(`.meta/${pinOf(`zz.${old}`)}`, '');
    await file(`.meta/.p.${old}`, '');
    await file('.meta/Bad.Name', '');
    layout.previous.push('not-a-snapshot');
    layout.staging.push('junk', `.p.${old}`, `.complete.p.${stampTime(s.now)}-abcd.tmp`);
    layout.locks.push({ name: `.p.${old}.tmp`, expires: undefined });
    layout.meta.push('exchange', pinOf(`zz.${old}`), `.p.${old}`, 'Bad.Name');
  }
  return { root, layout, paths: listPaths(root) };
}

const plugin = (over: Partial<PluginSpec>): PluginSpec => ({ snapshots: [], staging: [], failed: [], stageLocks: [], records: [], lock: { kind: 'none' }, ...over });

const MGMT = ['.previous', '.staging', '.failed', '.locks', '.meta'];

function listPaths(root: string): string[] {
  const out: string[] = [];
  for (const top of readdirSync(root)) {
    if (MGMT.includes(top)) {
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
    keep.push(name, `${name}/.complete`);
    const mine = layout.previous.filter((e) => parseEntry(e)?.name === name).sort().reverse();
    keep.push(...mine.slice(0, s.keepNewest).map((e) => `.previous/${e}`));
    keep.push(...mine.filter((e) => layout.meta.includes(pinOf(e))).map((e) => `.previous/${e}`));
    if (p.lock.kind === 'active') {
      keep.push(`.locks/${name}`);
      const ofName = (e: string) => parseEntry(e.replace(/^\.complete\./, '').replace(/\.tmp$/, '').replace(/\.partial$/, '').replace(/\.work$/, ''))?.name === name;
      for (const e of layout.staging) if (ofName(e)) keep.push(`.staging/${e}`);
      for (const e of layout.failed) if (parseEntry(e)?.name === name) keep.push(`.failed/${e}`);
      for (const l of layout.locks) if (l.name.startsWith('.stage.') && parseEntry(l.name.slice(7))?.name === name) keep.push(`.locks/${l.name}`);
      // The records of a leased plugin (its operation may be running).
      for (const e of layout.meta) if (parseEntry(e)?.name === name) keep.push(`.meta/${e}`);
    }
  }
  // Marker records, pins and the exchange method are never the sweep's.
  for (const e of layout.meta) if (e.includes('@') || e.endsWith('.pin') || e === 'exchange') keep.push(`.meta/${e}`);
  return keep;
}

/** Whether someone holds the flock on path (flock -n fails while it is held). */
function mutexHeld(path: string): boolean {
  return spawnSync('flock', ['-n', path, 'true']).status === 1;
}

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('the real script against the model (injected clock, random layouts)', () => {
  it('deletes expired leases under the lock mutex (op_lock may be taking one over); a dry run does not wait', async () => {
    const now = new Date('2026-03-10T00:00:00Z');
    const s: Scenario = { now, plugins: { p: plugin({ lock: { kind: 'expired', agoSeconds: 5 } }) }, olderThanMs: 0, failedOlderThanMs: undefined, keepNewest: 1, junk: false };
    const { root } = await build(s);
    const steps = new HostSteps({ host, root, ownerSpec: '-' });
    // Someone holds the mutex (as op_lock does while it decides) until we release it.
    const holder = spawn('flock', [join(root, '.locks', '.mutex'), 'sleep', '600'], { stdio: 'ignore', detached: true });
    const events: string[] = [];
    const released = new Promise((resolve) => holder.once('close', () => { events.push('released'); resolve(undefined); }));
    await waitFor(() => mutexHeld(join(root, '.locks', '.mutex')));
    // A dry run reports the expired lease without waiting for the mutex.
    expect((await steps.sweep(rulesOf(s, true))).counts.locks).toBe(1);
    expect(events).toEqual([]);
    expect(existsSync(join(root, '.locks', 'p'))).toBe(true);
    // A real sweep waits for it and only then deletes.
    const real = steps.sweep(rulesOf(s, false)).then((r) => { events.push('swept'); return r; });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(existsSync(join(root, '.locks', 'p'))).toBe(true);
    process.kill(-holder.pid!, 'SIGTERM');
    await released;
    expect((await real).counts.locks).toBe(1);
    expect(events).toEqual(['released', 'swept']);
    expect(existsSync(join(root, '.locks', 'p'))).toBe(false);
  });

  it('keeps exactly K of a plugin whose snapshots interleave with a dotted name when sorted as text', async () => {
    // Sorted as "<name>.<stamp>", p.202603.… falls between p.20260301… and p.20260228…; the script
    // must still see p's snapshots as one run (it once kept K more of the older part).
    const now = new Date('2026-03-10T00:00:00Z');
    const s: Scenario = {
      now,
      plugins: {
        p: plugin({ snapshots: [-2, -12, -13].map((d) => ({ offsetMs: d * DAY_MS, suffix: 'aaaa', size: 10, pin: 'none' as const, recorded: false })) }),
        'p.202603': plugin({ snapshots: [{ offsetMs: -DAY_MS, suffix: 'aaaa', size: 10, pin: 'none', recorded: false }] }),
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

  // Each run builds a layout on disk and runs the real script twice: PROPERTY_RUNS_SCALE scales it.
  const RUNS = propertyRuns(60);
  it('deletes exactly what planSweep says, never a protected entry; dry run reports the same and deletes nothing', { timeout: propertyTimeout(RUNS, 5_000) }, async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const { root, layout, paths } = await build(s);
        try {
          const steps = new HostSteps({ host, root, ownerSpec: '-' });
          const expected = planSweep(layout, rulesOf(s, false)).map((d) => d.path);

          const records = planRecordSweep(layout, rulesOf(s, false));

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
          // What is gone is exactly what was reported, and the operation records the model says.
          expect(listPaths(root)).toEqual(paths.filter((p) => !deleted.includes(p) && !records.includes(p)));
          for (const p of mustSurvive(s, layout)) {
            expect(deleted, `${p} must survive`).not.toContain(p);
            expect(existsSync(join(root, p)), `${p} must survive`).toBe(true);
          }
          for (const p of records) expect(p, `${p} is an operation record`).toMatch(/^\.meta\/[^@]+\.\d{8}T\d{6}Z-[a-z0-9]{4}$/);
          for (const name of Object.keys(s.plugins)) expect(statSync(join(root, name, 'data')).size).toBe(100);
          // The management directories are the installer's alone.
          for (const d of MGMT) expect(statSync(join(root, d)).mode & 0o777, d).toBe(0o700);
        } finally {
          await rm(join(root, '..'), { recursive: true, force: true });
        }
      }),
      { numRuns: RUNS },
    );
  });
});
