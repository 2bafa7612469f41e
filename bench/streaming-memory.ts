/**
 * Peak RSS growth of the adapter process while a big plugin (default 256 MiB) streams through the
 * EIC adapter into a host's `stage`. Goal: under 64 MiB, i.e. the tarball is never held whole.
 *
 * Here (the parent): build the plugin tarball on disk, streaming (incompressible random content in
 * a few large files + plugin.yaml), store it and the 1 MiB bench plugin in s3rver with
 * S3ArtifactStore, start the EIC harness (sshd, EIC API, Endpoint stand-ins), then run
 * streaming-memory-child.ts once per variant, each in a fresh Node process:
 *   s3 → eic-direct     GetObject stream → ssh2 channel stdin (what StageOnHost does)
 *   file → eic-direct   a file read stream → ssh2 channel stdin
 *   s3 → eic-endpoint   GetObject stream → ssh2 over the Endpoint WebSocket tunnel
 * The product's Prepare refuses tarballs above maxUnpackedBytes (default 100 MiB), so this goes
 * straight to the host step (HostSteps.stage), which has no size limit of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { S3ArtifactStore } from '../lambdas/core/artifacts/s3-artifact-store.ts';
import { TEST_CREDENTIALS, TEST_REGION } from '../test/servers/eic-api.ts';
import { startEicHarness } from '../test/servers/eic-harness.ts';
import { startS3 } from '../test/servers/s3.ts';
import { FILE_COUNT, fmt, msSince, PLUGIN, REPO, round, table, type Cleanups, type PluginTarball } from './common.ts';
import type { ChildArtifact, ChildConfig, ChildResult } from './streaming-memory-child.ts';
import { digestStream } from '../lambdas/core/artifacts/digest-stream.ts';

const CHILD = fileURLToPath(new URL('./streaming-memory-child.ts', import.meta.url));
const MiB = 1024 * 1024;
export const GOAL_MIB = 64;
const BIG_PLUGIN = 'bench-big-plugin';
const BIG_FILES = 4;
const CHILD_TIMEOUT_MS = 15 * 60 * 1000;

export interface StreamingMemoryOptions {
  /** Content size of the big plugin in MiB (split over BIG_FILES files). */
  mib: number;
  sampleMs: number;
}

export const VARIANTS = [
  { name: 's3 → eic-direct', source: 's3', via: 'direct' },
  { name: 'file → eic-direct', source: 'file', via: 'direct' },
  { name: 's3 → eic-endpoint', source: 's3', via: 'endpoint' },
] as const;

interface BigTarball {
  path: string;
  bytes: number;
  sha256: string;
  contentBytes: number;
  files: number;
  buildMs: number;
}

/** Streams the tar.gz to disk: at most a few MiB of it are in memory at any time. */
async function buildBigTarball(dir: string, mib: number): Promise<BigTarball> {
  const start = process.hrtime.bigint();
  const path = join(dir, `${BIG_PLUGIN}.tar.gz`);
  const digest = digestStream();
  const tar = pack();
  // Random bytes do not compress: level 1 costs the least time for the same size.
  const written = pipeline(tar, createGzip({ level: 1 }), digest.transform, createWriteStream(path));
  const header = { mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' };
  const fileBytes = Math.floor((mib * MiB) / BIG_FILES);
  const entryDone = (fill: (entry: NodeJS.WritableStream) => Promise<void>, h: Record<string, unknown>): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const entry = tar.entry(h as never, (err) => (err ? reject(err) : resolve()));
      fill(entry as unknown as NodeJS.WritableStream).catch(reject);
    });
  await new Promise<void>((resolve, reject) =>
    tar.entry({ ...header, name: 'plugin.yaml' }, `name: ${BIG_PLUGIN}\nversion: 1.0.0\ndescription: streaming-memory benchmark plugin (${BIG_FILES} random files, ${mib} MiB)\n`, (err) => (err ? reject(err) : resolve())),
  );
  tar.entry({ ...header, name: 'data', type: 'directory', mode: 0o755 });
  for (let f = 0; f < BIG_FILES; f++) {
    await entryDone(
      async (entry) => {
        for (let left = fileBytes; left > 0; ) {
          const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(MiB, left)));
          left -= chunk.length;
          if (!entry.write(chunk)) await new Promise<void>((r) => entry.once('drain', () => r()));
        }
        entry.end();
      },
      { ...header, name: `data/blob-${f}.bin`, size: fileBytes },
    );
  }
  tar.finalize();
  await written;
  const { sha256, bytes } = digest.result();
  return { path, bytes, sha256, contentBytes: fileBytes * BIG_FILES, files: BIG_FILES + 1, buildMs: msSince(start) };
}

/** Runs one child; resolves with its RESULT line. Registered for cleanup while it runs. */
function runChild(config: ChildConfig, cleanups: Cleanups): Promise<ChildResult> {
  return new Promise<ChildResult>((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD, JSON.stringify(config)], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let exited = false;
    cleanups.add('streaming-memory child', async () => {
      if (!exited) child.kill('SIGKILL');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) {
        reject(new Error(`streaming-memory child exited ${code ?? signal}: ${stderr.slice(-3000)}${stdout.slice(-1000)}`));
        return;
      }
      resolve(JSON.parse(line.slice('RESULT '.length)) as ChildResult);
    });
  });
}

export interface StreamingMemoryReport {
  results: Record<string, unknown>;
  lines: string[];
}

const mib = (bytes: number): number => round(bytes / MiB, 1);

export async function measureStreamingMemory(options: StreamingMemoryOptions, scratch: string, tarballs: PluginTarball[], cleanups: Cleanups): Promise<StreamingMemoryReport> {
  const dir = join(scratch, 'streaming-memory');
  await mkdir(dir);
  process.stderr.write(`streaming-memory bench: building a ${options.mib} MiB plugin tarball (random content, ${BIG_FILES} files + plugin.yaml)\n`);
  const big = await buildBigTarball(dir, options.mib);
  process.stderr.write(`  built ${big.bytes} bytes .tar.gz in ${fmt(big.buildMs / 1000)} s\n`);

  const s3 = await startS3();
  cleanups.add('s3rver', () => s3.stop());
  const store = new S3ArtifactStore({ client: s3.client, bucket: s3.bucket });
  const put = async (name: string, file: string, sha256: string, bytes: number, files: number): Promise<ChildArtifact> => {
    const upload = await store.upload(createReadStream(file));
    if (upload.sha256 !== sha256) throw new Error(`s3rver stored ${name} with sha256 ${upload.sha256}, expected ${sha256}`);
    return { name, file, key: await upload.commit(), sha256, bytes, files };
  };
  const small = tarballs[0]!;
  const warmup = await put(PLUGIN, small.path, small.sha256, small.bytes, FILE_COUNT + 1);
  const bigArtifact = await put(BIG_PLUGIN, big.path, big.sha256, big.bytes, big.files);

  const harness = await startEicHarness({ viaEndpoint: true });
  cleanups.add('EIC harness (sshd, EIC API, Endpoint stand-ins)', () => harness.stop());
  const endpoint = harness.hostOptions.endpoint;

  const variants = [];
  for (const v of VARIANTS) {
    process.stderr.write(`  ${v.name}: staging ${big.bytes} bytes in a fresh process…\n`);
    const config: ChildConfig = {
      source: v.source,
      big: bigArtifact,
      warmup,
      s3: { endpoint: s3.endpoint, bucket: s3.bucket, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } },
      eic: {
        apiEndpoint: harness.eicApi.endpoint,
        region: TEST_REGION,
        credentials: { ...TEST_CREDENTIALS },
        osUser: harness.sshd.user,
        port: v.via === 'endpoint' ? 22 : harness.sshd.port,
        rootPrefix: harness.hostRoot,
        instanceId: harness.instanceId,
        ...(v.via === 'endpoint' && endpoint?.url ? { endpoint: { id: endpoint.id, dnsName: endpoint.dnsName, url: endpoint.url } } : {}),
      },
      sampleMs: options.sampleMs,
    };
    const r = await runChild(config, cleanups);
    const peakRss = Math.max(r.peakSampled.rss, r.peakRssKernel ?? 0);
    const growth = peakRss - r.baseline.rss;
    variants.push({
      name: v.name,
      source: v.source,
      via: v.via,
      rssMiB: {
        atStart: mib(r.rssAtStart),
        afterWarmup: mib(r.rssAfterWarmup),
        baseline: mib(r.baseline.rss),
        peakSampled: mib(r.peakSampled.rss),
        peakKernel: r.peakRssKernel === null ? null : mib(r.peakRssKernel),
        peak: mib(peakRss),
        growth: mib(growth),
        after: mib(r.after.rss),
      },
      growthUnderGoal: growth < GOAL_MIB * MiB,
      /** Peaks during the stage (sampled), and their growth over the baseline. */
      heapUsedMiB: { baseline: mib(r.baseline.heapUsed), peak: mib(r.peakSampled.heapUsed) },
      externalMiB: { baseline: mib(r.baseline.external), peak: mib(r.peakSampled.external) },
      arrayBuffersMiB: { baseline: mib(r.baseline.arrayBuffers), peak: mib(r.peakSampled.arrayBuffers) },
      samples: r.samples,
      maxSampleGapMs: r.maxSampleGapMs,
      stageMs: r.stageMs,
      throughputMiBps: round(big.bytes / MiB / (r.stageMs / 1000), 1),
      stagedFiles: r.stagedFiles,
    });
  }

  const results = {
    goalMiB: GOAL_MIB,
    plugin: { name: BIG_PLUGIN, files: big.files, contentBytes: big.contentBytes, tarballBytes: big.bytes, sha256: big.sha256, content: `${BIG_FILES} files of random bytes + plugin.yaml, gzip level 1`, buildMs: round(big.buildMs) },
    method:
      'one fresh node process (--expose-gc) per variant; warm-up 1 MiB stage through the same path; gc; lock; baseline = process.memoryUsage() just before HostSteps.stage; ' +
      `peak = max(process.memoryUsage().rss sampled every ${options.sampleMs} ms, VmHWM after resetting it via /proc/self/clear_refs); growth = peak − baseline. Servers run in the parent.`,
    limits: 'straight to HostSteps.stage: Prepare (maxUnpackedBytes, default 100 MiB) is not involved',
    variants,
  };

  const out: string[] = [];
  out.push(`== streaming memory: ${mib(big.bytes)} MiB plugin through the EIC adapter (goal: RSS growth < ${GOAL_MIB} MiB) ==`);
  out.push(`plugin: ${big.files - 1} random files + plugin.yaml, ${big.contentBytes} content bytes, ${big.bytes} bytes .tar.gz`);
  out.push('');
  out.push(
    table(
      [
        ['variant', 'RSS baseline MiB', 'peak MiB', 'growth MiB', `< ${GOAL_MIB} MiB`, 'heap peak', 'arrayBuffers peak', 'samples', 'max gap ms', 'stage s', 'MiB/s'],
        ...variants.map((v) => [
          v.name,
          fmt(v.rssMiB.baseline),
          fmt(v.rssMiB.peak),
          fmt(v.rssMiB.growth),
          v.growthUnderGoal ? 'yes' : 'NO',
          fmt(v.heapUsedMiB.peak),
          fmt(v.arrayBuffersMiB.peak),
          String(v.samples),
          fmt(v.maxSampleGapMs),
          fmt(v.stageMs / 1000),
          fmt(v.throughputMiBps),
        ]),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  out.push(`peak = max(sampled RSS, kernel VmHWM since reset: ${variants.map((v) => (v.rssMiB.peakKernel === null ? 'n/a' : fmt(v.rssMiB.peakKernel))).join(' / ')} MiB)`);
  return { results, lines: out };
}
