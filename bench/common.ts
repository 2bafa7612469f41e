/**
 * What the benchmarks share: the deterministic 1 MiB / 1,000-file bench plugin, timing and
 * statistics helpers, the host-call counting resolver, table formatting and machine facts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import type { HostResolver } from '../lambdas/core/host/host-resolver.ts';
import type { HostInvocation, RemoteHost } from '../lambdas/core/host/remote-host.ts';
import { mulberry32 } from '../test/chaos/prng.ts';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
export const PLUGIN = 'bench-plugin';
export const VERSIONS = ['1.0.0', '2.0.0'] as const;

export const FILE_COUNT = 1000;
export const DIR_COUNT = 20;
export const CONTENT_BYTES = 1024 * 1024;

// --- the plugin tarballs ------------------------------------------------------------------------

/** mulberry32 (the chaos runner's seeded PRNG), so both tarballs are the same bytes on every run. */
export const prng = mulberry32;

const WORDS = (
  'agent skill tool prompt context workspace plugin install command hook model token stream ' +
  'file directory version manifest snapshot stage swap marker lock lease retry workflow step ' +
  'the a of to and in for with on is be that this when use each return value input output ' +
  'error result config option default user request response task check run test build data'
).split(' ');

/** 1,000 sizes between ~0.5 and ~1.5 KiB summing to exactly 1 MiB (same for both versions). */
export function fileSizes(): number[] {
  const rand = prng(1);
  const sizes = Array.from({ length: FILE_COUNT }, () => 524 + Math.floor(rand() * 1049));
  let diff = CONTENT_BYTES - sizes.reduce((a, b) => a + b, 0);
  for (let i = 0; diff !== 0; i = (i + 1) % FILE_COUNT) {
    const step = Math.sign(diff);
    sizes[i]! += step;
    diff -= step;
  }
  return sizes;
}

/** Text-like content (compresses roughly like source and markdown), version in every file. */
export function fileContent(version: string, index: number, rel: string, size: number): Buffer {
  const rand = prng(Number(version.split('.')[0]) * 1_000_003 + index);
  let text = `# ${rel} version=${version}\n`;
  while (text.length < size) {
    text += WORDS[Math.floor(rand() * WORDS.length)]!;
    text += rand() < 0.08 ? '\n' : ' ';
  }
  return Buffer.from(text.slice(0, size - 1) + '\n');
}

export interface PluginTarball {
  version: string;
  path: string;
  bytes: number;
  sha256: string;
}

export async function buildTarball(dir: string, version: string): Promise<PluginTarball> {
  const path = join(dir, `${PLUGIN}-${version}.tar.gz`);
  const tar = pack();
  const header = { mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' };
  const written = pipeline(tar, createGzip({ level: 6 }), createWriteStream(path));
  tar.entry({ ...header, name: 'plugin.yaml' }, `name: ${PLUGIN}\nversion: ${version}\ndescription: benchmark plugin (${FILE_COUNT} files, ${CONTENT_BYTES} bytes)\n`);
  tar.entry({ ...header, name: 'skills', type: 'directory', mode: 0o755 });
  const sizes = fileSizes();
  const perDir = FILE_COUNT / DIR_COUNT;
  for (let d = 0; d < DIR_COUNT; d++) {
    const dirName = `skills/skill-${String(d).padStart(2, '0')}`;
    tar.entry({ ...header, name: dirName, type: 'directory', mode: 0o755 });
    for (let f = 0; f < perDir; f++) {
      const index = d * perDir + f;
      const rel = `${dirName}/file-${String(index).padStart(4, '0')}.md`;
      tar.entry({ ...header, name: rel }, fileContent(version, index, rel, sizes[index]!));
    }
  }
  tar.finalize();
  await written;
  const data = await readFile(path);
  return { version, path, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

// --- timing helpers -----------------------------------------------------------------------------

export const msSince = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;

export interface Spawned {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Wall time from spawn to the child's exit and closed pipes. `stdinFd`: an open file as its stdin. */
export function timedSpawn(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; stdinFd?: number } = {}): Promise<Spawned> {
  const { stdinFd, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(command, args, { ...spawnOptions, stdio: [stdinFd ?? 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ ms: msSince(start), code, stdout, stderr }));
  });
}

export interface Stats {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
}

export function stats(values: number[]): Stats {
  if (values.length === 0) return { n: 0, median: NaN, p90: NaN, min: NaN, max: NaN, mean: NaN };
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  // Nearest-rank percentile.
  const p90 = s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]!;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, median: round(median), p90: round(p90), min: round(s[0]!), max: round(s[s.length - 1]!), mean: round(mean) };
}

export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/** The machine a result was measured on, and its load when the run began (`loadStart`) and now. */
export function machineInfo(loadStart: number[]) {
  const cpuList = cpus();
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cpuCount: cpuList.length,
    cpuModel: cpuList[0]?.model ?? 'unknown',
    loadavg: { start: loadStart.map((x) => round(x)), end: loadavg().map((x) => round(x)) },
  };
}
export const median = (values: number[]): number => stats(values).median;

export function push<K>(map: Map<K, number[]>, key: K, value: number): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

export function medians(map: Map<string, number[]>): Record<string, number> {
  return Object.fromEntries([...map].map(([k, v]) => [k, median(v)]));
}

// --- counting host calls ------------------------------------------------------------------------

/** Counts and times every host-script invocation the workflow makes. */
export interface HostCalls {
  ops: string[];
  ms: number[];
}

export function countingResolver(inner: HostResolver, calls: HostCalls): HostResolver {
  const wrapped = new WeakMap<RemoteHost, RemoteHost>();
  return (workspace) => {
    const target = inner(workspace);
    let host = wrapped.get(target.host);
    if (!host) {
      const real = target.host;
      const run = async (invocation: HostInvocation) => {
        const start = process.hrtime.bigint();
        try {
          return await real.run(invocation);
        } finally {
          calls.ops.push(invocation.op);
          calls.ms.push(msSince(start));
        }
      };
      // A proxy, so every other member (transport, streamsStdin, close, whatever the port grows)
      // is the real host's, with methods bound to it (adapters keep state in private fields).
      host = new Proxy(real, {
        get(obj, prop) {
          if (prop === 'run') return run;
          const value: unknown = Reflect.get(obj, prop, obj);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(obj) : value;
        },
      });
      wrapped.set(real, host);
    }
    return { ...target, host };
  };
}

/** Live `plugin.yaml` and `.complete` must both show `version` after an install. */
export async function checkLive(live: string, version: string, what: string): Promise<void> {
  const manifest = await readFile(join(live, 'plugin.yaml'), 'utf8');
  const complete = JSON.parse(await readFile(join(live, '.complete'), 'utf8')) as { version?: string };
  if (!manifest.includes(`version: ${version}`) || complete.version !== version) {
    throw new Error(`${what}: live ${live} is not ${version} after the install`);
  }
}

// --- cleanup ------------------------------------------------------------------------------------

/**
 * Stop functions of servers and temp files, run newest first, each at most once: by the bench
 * part that started them when it ends (also on failure), or by the signal handler.
 */
export class Cleanups {
  readonly #items: { what: string; fn: () => Promise<void> }[] = [];

  add(what: string, fn: () => Promise<void>): void {
    this.#items.push({ what, fn });
  }

  /** Runs (and forgets) every cleanup; returns what failed, without throwing. */
  async run(): Promise<string[]> {
    const failed: string[] = [];
    for (let item = this.#items.pop(); item; item = this.#items.pop()) {
      try {
        await item.fn();
      } catch (err) {
        failed.push(`${item.what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return failed;
  }
}

// --- machine facts and output ---------------------------------------------------------------------

export function toolVersion(command: string): string {
  const r = spawnSync(command, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : 'unknown';
}

/** `ssh -V` (OpenSSH prints its version on stderr). */
export function sshVersion(): string {
  const r = spawnSync('ssh', ['-V'], { encoding: 'utf8' });
  return r.status === 0 ? (r.stderr.split('\n')[0] ?? '').trim() : 'unknown';
}

/** The code measured: HEAD and whether the working tree differs from it (outside bench/). */
export function gitState(): { commit: string; dirty: boolean | null } {
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: REPO, encoding: 'utf8' });
  const status = spawnSync('git', ['status', '--porcelain', '--', '.', ':!bench', ':!docs/benchmarks.md'], { cwd: REPO, encoding: 'utf8' });
  return { commit: head.status === 0 ? head.stdout.trim() : 'unknown', dirty: status.status === 0 ? status.stdout.trim() !== '' : null };
}

export function table(rows: string[][], align: ('l' | 'r')[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (align[c] === 'r' ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

export const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');
