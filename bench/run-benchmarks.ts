/**
 * `npm run bench` (`npm run bench -- --quick`): what an atomic install costs. Three parts, run in
 * this order, each against a baseline measured in the same run:
 *
 *   local       (local.ts) the install workflow and `pluginctl install` against a bare
 *               `tar -xzf` into a fresh directory
 *   transports  (transports.ts) the install workflow over EIC (direct and through the EIC
 *               Endpoint stand-in) and SSM (stand-in, tarball pulled from s3rver) against
 *               `ssh … 'sudo -n tar -xzf - -C <dir>' < plugin.tgz` through the same loopback
 *               sshd; SSH handshakes, host commands and SSM API calls per install
 *   memory      (streaming-memory.ts) peak RSS growth of the adapter process while a 256 MiB
 *               plugin streams through the EIC adapter (goal < 64 MiB), in child processes
 *   hostops     (host-ops.ts) each small host operation as a process against `sh -c true`,
 *               `list` on a root of 400 plugins, and the cost of the durability flushes
 *
 * The plugin of the first two parts is built here, deterministically: 1,000 files totalling 1 MiB
 * in 20 directories plus plugin.yaml (bench-plugin 1.0.0 / 2.0.0). Results go to
 * bench/results/latest.json and stdout. Servers and temp files are removed at the end of each part,
 * also when it fails or the run is interrupted (SIGINT/SIGTERM).
 *
 * Options: --quick (local 1 warm-up + 5 measured, 5 CLI; transports 1 + 3), --warmup N,
 * --iterations N, --cli-iterations N (local part), --transport-warmup N, --transport-iterations N,
 * --rss-mib N (content size of the big plugin, default 256), --rss-sample-ms N (default 20),
 * --hostops-iterations N (default 30, quick 5), --list-plugins N (default 400),
 * --only local,transports,memory,hostops (default: all four).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  buildTarball,
  Cleanups,
  CONTENT_BYTES,
  DIR_COUNT,
  FILE_COUNT,
  gitState,
  machineInfo,
  RESULTS_DIR,
  sshVersion,
  toolVersion,
  VERSIONS,
  type PluginTarball,
} from './common.ts';
import { measureHostOps } from './host-ops.ts';
import { measureLocal } from './local.ts';
import { measureStreamingMemory } from './streaming-memory.ts';
import { measureTransports, transportsUnavailable } from './transports.ts';

// --- options ------------------------------------------------------------------------------------

const PARTS = ['local', 'transports', 'memory', 'hostops'] as const;
type Part = (typeof PARTS)[number];

interface Options {
  quick: boolean;
  warmup: number;
  iterations: number;
  cliIterations: number;
  transportWarmup: number;
  transportIterations: number;
  rssMib: number;
  rssSampleMs: number;
  hostOpsIterations: number;
  listPlugins: number;
  parts: Set<Part>;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      warmup: { type: 'string' },
      iterations: { type: 'string' },
      'cli-iterations': { type: 'string' },
      'transport-warmup': { type: 'string' },
      'transport-iterations': { type: 'string' },
      'rss-mib': { type: 'string' },
      'rss-sample-ms': { type: 'string' },
      'hostops-iterations': { type: 'string' },
      'list-plugins': { type: 'string' },
      only: { type: 'string' },
    },
    strict: true,
  });
  const count = (value: string | undefined, fallback: number, min: number, what: string): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${what} must be an integer >= ${min}, got ${value}`);
    return n;
  };
  const quick = values.quick ?? false;
  const iterations = count(values.iterations, quick ? 5 : 30, 1, 'iterations');
  const cliIterations = count(values['cli-iterations'], quick ? 5 : 10, 0, 'cli-iterations');
  if (cliIterations > iterations) throw new Error(`--cli-iterations (${cliIterations}) cannot exceed --iterations (${iterations}): CLI runs are spread over the measured loop`);
  const parts = new Set<Part>();
  for (const p of (values.only ?? PARTS.join(',')).split(',').map((x) => x.trim()).filter(Boolean)) {
    if (!(PARTS as readonly string[]).includes(p)) throw new Error(`--only takes ${PARTS.join(', ')}; got ${p}`);
    parts.add(p as Part);
  }
  if (parts.size === 0) throw new Error('--only names no part');
  return {
    quick,
    warmup: count(values.warmup, quick ? 1 : 5, 0, 'warmup'),
    iterations,
    cliIterations,
    transportWarmup: count(values['transport-warmup'], quick ? 1 : 3, 0, 'transport-warmup'),
    transportIterations: count(values['transport-iterations'], quick ? 3 : 10, 1, 'transport-iterations'),
    rssMib: count(values['rss-mib'], 256, 4, 'rss-mib'),
    rssSampleMs: count(values['rss-sample-ms'], 20, 1, 'rss-sample-ms'),
    hostOpsIterations: count(values['hostops-iterations'], quick ? 5 : 30, 1, 'hostops-iterations'),
    listPlugins: count(values['list-plugins'], 400, 1, 'list-plugins'),
    parts,
  };
}

// --- main ---------------------------------------------------------------------------------------

/** Cleanups of the part now running, for the signal handler. */
const active = new Set<Cleanups>();

async function withCleanups<T>(body: (cleanups: Cleanups) => Promise<T>): Promise<T> {
  const cleanups = new Cleanups();
  active.add(cleanups);
  try {
    return await body(cleanups);
  } finally {
    const failed = await cleanups.run();
    active.delete(cleanups);
    for (const f of failed) process.stderr.write(`cleanup failed: ${f}\n`);
  }
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  const scratch = await mkdtemp(join(tmpdir(), 'pluginctl-bench-'));
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write('bench interrupted: stopping servers, removing temp files\n');
    const hardStop = setTimeout(() => process.exit(130), 15_000);
    hardStop.unref();
    void (async () => {
      for (const c of active) await c.run();
      rmSync(scratch, { recursive: true, force: true });
      process.exit(130);
    })();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await measure(options, scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function measure(options: Options, scratch: string): Promise<number> {
  const loadStart = loadavg();
  const started = new Date().toISOString();
  const tarballs: PluginTarball[] = [];
  for (const version of VERSIONS) tarballs.push(await buildTarball(scratch, version));
  const lines: string[] = [];
  const sections: Record<string, unknown> = {};

  let local: Record<string, unknown> = { local: { skipped: 'not selected (--only)' } };
  if (options.parts.has('local')) {
    await mkdir(join(scratch, 'local'));
    const r = await measureLocal(options, join(scratch, 'local'), tarballs);
    local = r.results;
    lines.push('', ...r.lines);
  }

  if (options.parts.has('transports')) {
    const why = transportsUnavailable();
    if (why) {
      sections.remoteTransports = { skipped: why };
      lines.push('', `== remote transports: SKIPPED (${why}) ==`);
    } else {
      await mkdir(join(scratch, 'transports'));
      const r = await withCleanups((c) => measureTransports({ warmup: options.transportWarmup, iterations: options.transportIterations }, join(scratch, 'transports'), tarballs, c));
      sections.remoteTransports = r.results;
      lines.push('', ...r.lines);
    }
  } else sections.remoteTransports = { skipped: 'not selected (--only)' };

  if (options.parts.has('memory')) {
    const why = transportsUnavailable();
    if (why) {
      sections.streamingMemory = { skipped: why };
      lines.push('', `== streaming memory: SKIPPED (${why}) ==`);
    } else {
      await mkdir(join(scratch, 'memory'));
      const r = await withCleanups((c) => measureStreamingMemory({ mib: options.rssMib, sampleMs: options.rssSampleMs }, join(scratch, 'memory'), tarballs, c));
      sections.streamingMemory = r.results;
      lines.push('', ...r.lines);
    }
  } else sections.streamingMemory = { skipped: 'not selected (--only)' };

  if (options.parts.has('hostops')) {
    await mkdir(join(scratch, 'hostops'));
    const r = await measureHostOps(options, join(scratch, 'hostops'), tarballs);
    sections.hostOperations = r.results.hostOps;
    lines.push(r.text);
  } else sections.hostOperations = { skipped: 'not selected (--only)' };

  const results = {
    date: started,
    finished: new Date().toISOString(),
    mode: options.quick ? 'quick' : 'full',
    parts: [...options.parts],
    machine: {
      ...machineInfo(loadStart),
      tar: toolVersion('tar'),
      ssh: sshVersion(),
    },
    git: gitState(),
    ...local,
    ...sections,
  };

  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'latest.json'), JSON.stringify(results, null, 2) + '\n');

  const m = results.machine;
  const out: string[] = [];
  out.push(`pluginctl install benchmark  ${results.date}  (${results.mode}; ${results.parts.join(', ')})`);
  out.push(`node ${m.node}, ${m.platform}, ${m.cpuCount} CPUs (${m.cpuModel}), ${m.tar}, ${m.ssh}, load ${m.loadavg.start.join('/')} → ${m.loadavg.end.join('/')}`);
  out.push(
    `plugin: ${FILE_COUNT} files + plugin.yaml in ${DIR_COUNT} directories, ${CONTENT_BYTES} bytes; ` +
      tarballs.map((t) => `v${t.version} ${t.bytes} bytes .tar.gz`).join(', '),
  );
  out.push(`code: ${results.git.commit.slice(0, 12)}${results.git.dirty ? ' + uncommitted changes' : ''}`);
  out.push(...lines);
  out.push('');
  out.push(`written: ${join(RESULTS_DIR, 'latest.json')}`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
