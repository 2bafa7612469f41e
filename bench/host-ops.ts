/**
 * Part 4 of `npm run bench` (`--only hostops`): what each host operation costs as a process, and
 * what `list` costs on a root with many plugins. Baseline: `sh -c true`, spawned the same way in
 * the same loop, so fork/exec cost and machine noise hit both alike.
 *
 *   small ops   lock, swap (the exchange), snapshot, mark, unlock of an upgrade, each one
 *               `sh plugin-host.sh <op> …` process (median of N upgrades)
 *   list        `sh plugin-host.sh list` on a root holding `--list-plugins` (default 400)
 *               installed plugins, laid out exactly as installs leave them
 *   flush       what the durability flushes add: `sync -f` (syncfs) after writing the bench
 *               plugin's 1,000 files, and `sync <file>` + `sync <dir>` for a marker
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HOST_SCRIPT_PATH } from '../lambdas/core/host/host-script.ts';
import { newStamp } from '../lambdas/core/stamp.ts';
import { CONTENT_BYTES, median, round, stats, timedSpawn, type PluginTarball, type Stats } from './common.ts';

export interface HostOpsOptions {
  hostOpsIterations: number;
  listPlugins: number;
}

const SMALL_OPS = ['lock', 'swap', 'snapshot', 'mark', 'unlock'] as const;

function sh(args: string[], stdinFd?: number) {
  return timedSpawn('sh', [HOST_SCRIPT_PATH, ...args], { stdinFd });
}

async function ok(args: string[], stdinFd?: number): Promise<{ ms: number; line: Record<string, unknown> }> {
  const r = await sh(args, stdinFd);
  const line = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
  if (r.code !== 0 || line.ok !== true) throw new Error(`host op ${args[0]} failed: ${r.stdout} ${r.stderr}`);
  return { ms: r.ms, line };
}

/** A root with `count` installed, marked plugins, laid out as the script leaves them. */
function layOutPlugins(root: string, count: number): void {
  for (const d of ['.staging', '.previous', '.failed', '.locks', '.meta']) mkdirSync(join(root, d), { recursive: true, mode: 0o700 });
  for (let i = 0; i < count; i++) {
    const name = `plugin-${String(i).padStart(4, '0')}`;
    const live = join(root, name);
    mkdirSync(join(live, 'skills', 'one'), { recursive: true });
    writeFileSync(join(live, 'plugin.yaml'), `name: ${name}\nversion: 1.0.${i}\n`);
    writeFileSync(join(live, 'skills', 'one', 'SKILL.md'), `# ${name}\n`);
    const stamp = `20261201T0${String(Math.floor(i / 60) % 10).padStart(1, '0')}${String(i % 60).padStart(2, '0')}00Z-${String(i % 10000).padStart(4, '0')}`;
    const sha = createHash('sha256').update(name).digest('hex');
    const marker = { name, version: `1.0.${i}`, sha256: sha, stamp, installedAt: '2026-12-01T00:00:00Z', execution: `bench-${name}` };
    writeFileSync(join(live, '.complete'), JSON.stringify(marker) + '\n');
    const st = statSync(live);
    writeFileSync(join(root, '.meta', `${name}@${st.dev}-${st.ino}`), `stamp=${stamp}\nversion=1.0.${i}\nsha256=${sha}\ninstalledAt=2026-12-01T00:00:00Z\nexecution=bench-${name}\n`);
  }
}

export async function measureHostOps(options: HostOpsOptions, scratch: string, tarballs: PluginTarball[]) {
  const root = join(scratch, 'plugins');
  const name = 'bench-plugin';
  const baseline: number[] = [];
  const byOp = new Map<string, number[]>(SMALL_OPS.map((op) => [op, []]));
  const how = new Set<string>();
  const stageMs: number[] = [];

  const install = async (tb: PluginTarball, timed: boolean) => {
    const stamp = newStamp();
    const base = [root, name, stamp];
    const time = (op: string, ms: number) => timed && byOp.get(op)!.push(ms);
    if (timed) baseline.push((await timedSpawn('sh', ['-c', 'true'])).ms);
    time('lock', (await ok(['lock', ...base, 'bench', String(process.pid), '600'])).ms);
    const fd = openSync(tb.path, 'r');
    try {
      const staged = await ok(['stage', ...base, tb.sha256, '-', '0', String(CONTENT_BYTES)], fd);
      if (timed) stageMs.push(staged.ms);
    } finally {
      closeSync(fd);
    }
    const swapped = await ok(['swap', ...base]);
    time('swap', swapped.ms);
    if (timed && typeof swapped.line.how === 'string') how.add(swapped.line.how);
    time('snapshot', (await ok(['snapshot', ...base])).ms);
    time('mark', (await ok(['mark', ...base, tb.version, tb.sha256, `bench-${stamp.slice(-4)}`, new Date().toISOString().replace(/\.\d+Z$/, 'Z'), '-'])).ms);
    time('unlock', (await ok(['unlock', ...base])).ms);
  };

  // First install, then one warm-up upgrade, then measured upgrades alternating the versions.
  await install(tarballs[0]!, false);
  await install(tarballs[1]!, false);
  for (let i = 0; i < options.hostOpsIterations; i++) await install(tarballs[i % 2]!, true);

  // list on a root with many plugins.
  const listRoot = join(scratch, 'list-root');
  layOutPlugins(listRoot, options.listPlugins);
  const listMs: number[] = [];
  let listed = 0;
  for (let i = 0; i < 5; i++) {
    const r = await ok(['list', listRoot]);
    listMs.push(r.ms);
    listed = (r.line.plugins as { complete: boolean }[]).filter((p) => p.complete).length;
  }
  if (listed !== options.listPlugins) throw new Error(`list saw ${listed} complete plugins of ${options.listPlugins}`);

  // The flushes' cost: syncfs after writing the bench plugin's files; fsync of a file and a dir.
  const syncfsMs: number[] = [];
  const markerSyncMs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const dir = join(scratch, `flush-${i}`);
    const files = readFileSync(tarballs[0]!.path);
    mkdirSync(dir);
    await timedSpawn('tar', ['-xzf', tarballs[0]!.path, '-C', dir]);
    syncfsMs.push((await timedSpawn('sync', ['-f', dir])).ms);
    writeFileSync(join(dir, 'marker.tmp'), files.subarray(0, 200));
    markerSyncMs.push((await timedSpawn('sync', [join(dir, 'marker.tmp')])).ms + (await timedSpawn('sync', [dir])).ms);
  }

  const s = (v: number[]): Stats => stats(v);
  const baselineMedian = median(baseline);
  const ops = Object.fromEntries(SMALL_OPS.map((op) => [op, { ...s(byOp.get(op)!), overShTrue: round(median(byOp.get(op)!) / baselineMedian) }]));
  const results = {
    hostOps: {
      iterations: options.hostOpsIterations,
      baselineShTrue: s(baseline),
      ops,
      exchange: [...how],
      stage: s(stageMs),
      list: { plugins: options.listPlugins, ...s(listMs), overShTrue: round(median(listMs) / baselineMedian) },
      flush: { syncfsAfterStage: s(syncfsMs), markerFsyncFileAndDir: s(markerSyncMs) },
    },
  };
  const lines = [
    '',
    `## host operations (${options.hostOpsIterations} upgrades; exchange: ${[...how].join(', ')})`,
    `| process | median ms | p90 | median / sh -c true |`,
    `|---|---:|---:|---:|`,
    `| sh -c true (baseline) | ${baselineMedian} | ${s(baseline).p90} | 1.00 |`,
    ...SMALL_OPS.map((op) => `| ${op} | ${ops[op]!.median} | ${ops[op]!.p90} | ${ops[op]!.overShTrue.toFixed(2)} |`),
    `| stage (1,000 files, 1 MiB) | ${s(stageMs).median} | ${s(stageMs).p90} | ${round(median(stageMs) / baselineMedian).toFixed(2)} |`,
    `| list, ${options.listPlugins} plugins | ${s(listMs).median} | ${s(listMs).p90} | ${results.hostOps.list.overShTrue.toFixed(2)} |`,
    `flush cost: syncfs after staging ${s(syncfsMs).median} ms (median), marker fsync (file + dir) ${s(markerSyncMs).median} ms`,
  ];
  return { results, text: lines.join('\n') };
}
