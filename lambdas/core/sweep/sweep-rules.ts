/**
 * The sweeper's rules, in TypeScript: what a sweep policy (`older than 7 days, keep the newest
 * snapshot`) means as arguments of the host script's `sweep` operation, and a pure reference model
 * of what that operation must delete given a listing of a plugins root (used by the property tests
 * to check the real script, and by nobody in production: the script decides on the host).
 *
 * Stamps are `YYYYMMDDTHHMMSSZ-xxxx`: an entry is "older than" a cutoff when the time part of its
 * stamp (`YYYYMMDDTHHMMSSZ`) sorts strictly before the cutoff, so a cutoff at second S spares
 * everything minted during S or later. Within one plugin, "newest" orders by the whole stamp (the
 * suffix's first two characters are the millisecond), as `restore` does.
 */
import { PluginError } from '../errors.ts';
import type { SweepRules } from '../host/host-steps.ts';
import { PLUGIN_NAME, STAMP } from '../names.ts';
import { stampTime } from '../stamp.ts';

export const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_OLDER_THAN_MS = 7 * DAY_MS;
export const DEFAULT_KEEP_NEWEST = 1;
export const DEFAULT_STAGING_OLDER_THAN_MS = 60 * 60 * 1000;
/** Longest duration accepted (100 years): beyond it the cutoff leaves Date's comfortable range. */
export const MAX_DURATION_MS = 36_500 * DAY_MS;
/** Largest keep count accepted (the script takes up to 12 digits; nobody keeps more). */
export const MAX_KEEP = 1_000_000;

export interface SweepPolicy {
  /** The sweep's "now" (injected: tests and scheduled events pin it). */
  now: Date;
  /** `.previous` snapshots minted longer ago than this may go. Default 7 days. */
  olderThanMs?: number;
  /** The newest this many snapshots of each plugin always stay, however old. Default 1. */
  keepNewest?: number;
  /** `.staging` entries (abandoned extractions) older than this may go. Default 1 hour. */
  stagingOlderThanMs?: number;
  /** `.failed` entries (rolled-back installs, kept as evidence) older than this may go. Default: olderThanMs. */
  failedOlderThanMs?: number;
  /** Report what would go, delete nothing. */
  dryRun?: boolean;
}

const UNITS = { d: DAY_MS, h: 60 * 60 * 1000, m: 60 * 1000, s: 1000 } as const;
const DURATION = /^(\d{1,8})([dhms])$/;
const DURATION_HINT = 'durations are a whole number and one unit: 7d, 12h, 30m, 45s, 0s';

/** `7d`, `12h`, `30m`, `45s`, `0s` → milliseconds; anything else is refused with InvalidInput. */
export function parseDuration(text: unknown): number {
  const m = typeof text === 'string' ? DURATION.exec(text) : null;
  if (!m) {
    const shown = typeof text === 'string' ? JSON.stringify(text.slice(0, 40)) : String(text);
    throw new PluginError('InvalidInput', `invalid duration ${shown}`, DURATION_HINT);
  }
  const ms = Number(m[1]) * UNITS[m[2] as keyof typeof UNITS];
  if (ms > MAX_DURATION_MS) throw new PluginError('InvalidInput', `duration ${text as string} is too long`, 'at most 36500d (100 years)');
  return ms;
}

/** Milliseconds → the largest exact unit (`604800000` → `7d`, `90000` → `90s`). */
export function formatDuration(ms: number): string {
  assertDurationMs(ms, 'duration');
  for (const unit of ['d', 'h', 'm'] as const) {
    if (ms > 0 && ms % UNITS[unit] === 0) return `${ms / UNITS[unit]}${unit}`;
  }
  return `${Math.floor(ms / 1000)}s`;
}

function assertDurationMs(ms: number, what: string): number {
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_DURATION_MS) {
    throw new PluginError('InvalidInput', `invalid ${what} ${String(ms)} ms`, 'a duration from 0 to 100 years');
  }
  return ms;
}

export function assertKeep(value: unknown): number {
  const n = typeof value === 'string' && /^\d{1,7}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > MAX_KEEP) {
    throw new PluginError('InvalidInput', `invalid keep count ${JSON.stringify(value)}`, `keep is a whole number from 0 to ${MAX_KEEP}`);
  }
  return n;
}

/** The policy as the host script's `sweep` arguments (cutoff stamps, keep, now, dry-run). */
export function sweepRules(policy: SweepPolicy): SweepRules {
  const now = policy.now.getTime();
  if (!Number.isFinite(now)) throw new PluginError('InvalidInput', 'invalid sweep time', 'pass a valid Date as now');
  const olderThan = assertDurationMs(policy.olderThanMs ?? DEFAULT_OLDER_THAN_MS, 'snapshot age');
  const staging = assertDurationMs(policy.stagingOlderThanMs ?? DEFAULT_STAGING_OLDER_THAN_MS, 'staging age');
  const failed = assertDurationMs(policy.failedOlderThanMs ?? olderThan, 'failed-install age');
  const cutoff = (ms: number): string => {
    const at = new Date(now - ms);
    if (at.getUTCFullYear() < 1000) throw new PluginError('InvalidInput', `a cutoff ${formatDuration(ms)} before ${policy.now.toISOString()} predates year 1000`, 'use a shorter duration');
    return stampTime(at);
  };
  return {
    previousBefore: cutoff(olderThan),
    keepNewest: assertKeep(policy.keepNewest ?? DEFAULT_KEEP_NEWEST),
    stagingBefore: cutoff(staging),
    failedBefore: cutoff(failed),
    nowEpochSeconds: Math.floor(now / 1000),
    dryRun: policy.dryRun ?? false,
  };
}

// --- the reference model ---------------------------------------------------------------------

export type SweepKind = 'previous' | 'staging' | 'failed' | 'locks';

/**
 * What a plugins root holds, as the sweep sees it. Only the management directories: live
 * directories are never the sweep's business, and nothing inside a plugin directory is read
 * (a legacy `.pinned` file inside a snapshot pins nothing).
 */
export interface SweepLayout {
  /** Directories under `.previous/` (`<name>.<stamp>` snapshots, or anything else found there). */
  previous: string[];
  /** Entries under `.staging/` (of any type): `.partial` / `.work` companions and `.complete.<name>.<stamp>.tmp` marker temp files included. */
  staging: string[];
  /** Entries under `.failed/`. */
  failed: string[];
  /**
   * Regular files under `.locks/` and the first `expires=` value in each (undefined if none):
   * leases (`<name>`), stage locks (`.stage.<name>.<stamp>`), the mutex (`.mutex`).
   */
  locks: { name: string; expires: string | undefined }[];
  /**
   * Regular files under `.meta/`: operation records (`<name>.<stamp>`), marker records
   * (`<name>@<dev>-<ino>`), pins (`<name>.<stamp>.pin`), `exchange`.
   */
  meta: string[];
}

export interface PlannedDeletion {
  kind: SweepKind;
  /** Relative to the plugins root, as the script reports it: `.previous/<name>.<stamp>`. */
  path: string;
}

/** `<name>.<stamp>` → its parts, when both are valid (the script skips anything else). */
export function parseEntry(entry: string): { name: string; stamp: string } | undefined {
  const dot = entry.lastIndexOf('.');
  if (dot < 0) return undefined;
  const name = entry.slice(0, dot);
  const stamp = entry.slice(dot + 1);
  return validName(name) && STAMP.test(stamp) ? { name, stamp } : undefined;
}

function validName(name: string): boolean {
  return name !== '.' && name !== '..' && PLUGIN_NAME.test(name);
}

function validUint(text: string | undefined): text is string {
  return text !== undefined && /^\d{1,12}$/.test(text);
}

const older = (stamp: string, cutoff: string): boolean => stamp.slice(0, 16) < cutoff;

const stripSuffix = (text: string, suffix: string): string => (text.endsWith(suffix) ? text.slice(0, -suffix.length) : text);
const stripPrefix = (text: string, prefix: string): string => (text.startsWith(prefix) ? text.slice(prefix.length) : text);

function leaseActive(layout: SweepLayout, name: string, nowSeconds: number): boolean {
  const lock = layout.locks.find((l) => l.name === name);
  return lock !== undefined && validUint(lock.expires) && Number(lock.expires) > nowSeconds;
}

/** The pin of snapshot `.previous/<entry>`: the root-owned file `.meta/<entry>.pin`. */
export const pinOf = (entry: string): string => `${entry}.pin`;

/**
 * What `sweep` must delete (and report) under `rules`, sorted by path:
 * - `.previous/<name>.<stamp>`: not among the newest `keepNewest` of its plugin (pinned ones
 *   count), not pinned by `.meta/<name>.<stamp>.pin`, and minted before `previousBefore`;
 * - `.staging/<name>.<stamp>[.partial|.work]`, `.staging/.complete.<name>.<stamp>.tmp` and
 *   `.failed/<name>.<stamp>`: minted before their cutoff, and the plugin holds no unexpired lease;
 * - `.locks/<name>`: its lease has expired (or is unreadable);
 * - `.locks/.stage.<name>.<stamp>`: as staging;
 * never a live directory, another hidden entry, or anything not named `<name>.<stamp>`.
 * (Operation records under `.meta/` go too, unreported: see planRecordSweep.)
 */
export function planSweep(layout: SweepLayout, rules: SweepRules): PlannedDeletion[] {
  const out: PlannedDeletion[] = [];
  const pins = new Set(layout.meta);
  const byPlugin = new Map<string, { entry: string; stamp: string; pinned: boolean }[]>();
  for (const entry of layout.previous) {
    if (entry.startsWith('.')) continue;
    const parsed = parseEntry(entry);
    if (!parsed) continue;
    const list = byPlugin.get(parsed.name) ?? [];
    list.push({ entry, stamp: parsed.stamp, pinned: pins.has(pinOf(entry)) });
    byPlugin.set(parsed.name, list);
  }
  for (const list of byPlugin.values()) {
    list.sort((a, b) => (a.stamp < b.stamp ? 1 : a.stamp > b.stamp ? -1 : 0));
    list.forEach((snap, index) => {
      if (index < rules.keepNewest || snap.pinned || !older(snap.stamp, rules.previousBefore)) return;
      out.push({ kind: 'previous', path: `.previous/${snap.entry}` });
    });
  }
  for (const entry of layout.staging) {
    // Hidden entries are not the sweep's, except the marker temp files a killed mark left.
    if (entry.startsWith('.') && !/^\.complete\..*\.tmp$/.test(entry)) continue;
    // As the script strips them, in this order.
    const base = stripSuffix(stripSuffix(stripPrefix(stripSuffix(entry, '.tmp'), '.complete.'), '.partial'), '.work');
    const parsed = parseEntry(base);
    if (!parsed || leaseActive(layout, parsed.name, rules.nowEpochSeconds) || !older(parsed.stamp, rules.stagingBefore)) continue;
    out.push({ kind: 'staging', path: `.staging/${entry}` });
  }
  for (const entry of layout.failed) {
    if (entry.startsWith('.')) continue;
    const parsed = parseEntry(entry);
    if (!parsed || leaseActive(layout, parsed.name, rules.nowEpochSeconds) || !older(parsed.stamp, rules.failedBefore)) continue;
    out.push({ kind: 'failed', path: `.failed/${entry}` });
  }
  for (const lock of layout.locks) {
    if (lock.name.startsWith('.stage.')) {
      // A stage lock an interrupted stage left behind.
      const parsed = parseEntry(lock.name.slice('.stage.'.length));
      if (!parsed || leaseActive(layout, parsed.name, rules.nowEpochSeconds) || !older(parsed.stamp, rules.stagingBefore)) continue;
      out.push({ kind: 'locks', path: `.locks/${lock.name}` });
      continue;
    }
    if (!validName(lock.name)) continue;
    if (validUint(lock.expires) && Number(lock.expires) > rules.nowEpochSeconds) continue;
    out.push({ kind: 'locks', path: `.locks/${lock.name}` });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The operation records (`.meta/<name>.<stamp>`) a real sweep removes without reporting them
 * (a dry run removes none), sorted: minted before `stagingBefore`, and once the sweep's own
 * deletions are done no `.staging/<name>.<stamp>`, `.previous/<name>.<stamp>`,
 * `.failed/<name>.<stamp>` or lease `.locks/<name>` remains. Marker records (`<name>@<dev>-<ino>`),
 * pins and `exchange` always stay. Paths are relative to the plugins root.
 */
export function planRecordSweep(layout: SweepLayout, rules: SweepRules): string[] {
  if (rules.dryRun) return [];
  const gone = new Set(planSweep(layout, rules).map((d) => d.path));
  const remains = (path: string) => !gone.has(path);
  const staging = new Set(layout.staging.map((e) => `.staging/${e}`).filter(remains));
  const previous = new Set(layout.previous.map((e) => `.previous/${e}`).filter(remains));
  const failed = new Set(layout.failed.map((e) => `.failed/${e}`).filter(remains));
  const locks = new Set(layout.locks.map((l) => `.locks/${l.name}`).filter(remains));
  const out: string[] = [];
  for (const entry of layout.meta) {
    if (entry.startsWith('.') || entry.includes('@') || entry.endsWith('.pin') || entry === 'exchange') continue;
    const parsed = parseEntry(entry);
    if (!parsed || !older(parsed.stamp, rules.stagingBefore)) continue;
    if (staging.has(`.staging/${entry}`) || previous.has(`.previous/${entry}`) || failed.has(`.failed/${entry}`) || locks.has(`.locks/${parsed.name}`)) continue;
    out.push(`.meta/${entry}`);
  }
  return out.sort();
}
