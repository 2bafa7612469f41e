/**
 * Child process of the streaming-memory benchmark (streaming-memory.ts starts it, one per variant,
 * so each measurement has a fresh heap and no earlier benchmark's garbage).
 *
 * It plays the StageOnHost Lambda with the production adapters: S3ArtifactStore.open (GetObject
 * from s3rver) or a file stream, piped by the EIC adapter (EicHost, ssh2) into the host script's
 * `stage` on the loopback sshd, through HostSteps. The servers run in the parent process, so only
 * the adapter side's memory is in this process.
 *
 *   1. a warm-up install of the 1 MiB bench plugin through the same path (lock, stage, rollback),
 *      so code loading and first-use allocations are not counted as streaming growth;
 *   2. gc() (node --expose-gc), lock, then the baseline: process.memoryUsage() just before stage;
 *   3. the kernel's peak-RSS mark is reset (`5` > /proc/self/clear_refs), then the big stage runs
 *      while a timer samples process.memoryUsage() every `sampleMs`;
 *   4. afterwards VmHWM (/proc/self/status) gives the true peak RSS since the reset, whatever the
 *      sampling missed; the stage's staging directory is removed with `rollback`.
 * Prints one line `RESULT <json>` on stdout.
 */
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { EC2InstanceConnectClient } from '@aws-sdk/client-ec2-instance-connect';
import { S3Client } from '@aws-sdk/client-s3';
import { S3ArtifactStore } from '../lambdas/core/artifacts/s3-artifact-store.ts';
import { eicHostResolver } from '../lambdas/core/host/eic-host.ts';
import { HostSteps } from '../lambdas/core/host/host-steps.ts';
import { newStamp } from '../lambdas/core/stamp.ts';

export interface ChildArtifact {
  name: string;
  file: string;
  key: string;
  sha256: string;
  bytes: number;
  /** Files in the tarball. */
  files: number;
}

export interface ChildConfig {
  source: 's3' | 'file';
  big: ChildArtifact;
  warmup: ChildArtifact;
  s3: { endpoint: string; bucket: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  eic: {
    apiEndpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
    osUser: string;
    port: number;
    rootPrefix: string;
    instanceId: string;
    endpoint?: { id: string; dnsName: string; url: string };
  };
  sampleMs: number;
}

export interface MemoryPoint {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export interface ChildResult {
  rssAtStart: number;
  rssAfterWarmup: number;
  baseline: MemoryPoint;
  peakSampled: MemoryPoint;
  /** VmHWM after the reset, in bytes; null when /proc/self/clear_refs could not be written. */
  peakRssKernel: number | null;
  samples: number;
  maxSampleGapMs: number;
  stageMs: number;
  stagedFiles: number | null;
  after: MemoryPoint;
}

const MEMORY_FIELDS = ['rss', 'heapUsed', 'external', 'arrayBuffers'] as const;

function point(): MemoryPoint {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function kernelPeakRss(): number | null {
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  return kb ? Number(kb) * 1024 : null;
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '') as ChildConfig;
  const rssAtStart = process.memoryUsage.rss();
  const eicClient = new EC2InstanceConnectClient({ endpoint: cfg.eic.apiEndpoint, region: cfg.eic.region, credentials: cfg.eic.credentials });
  const s3Client = new S3Client({ endpoint: cfg.s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: cfg.s3.credentials });
  const store = new S3ArtifactStore({ client: s3Client, bucket: cfg.s3.bucket });
  const resolver = eicHostResolver({
    client: eicClient,
    osUser: cfg.eic.osUser,
    port: cfg.eic.port,
    rootPrefix: cfg.eic.rootPrefix,
    connectTimeoutMs: 10_000,
    stepTimeoutMs: 600_000,
    ...(cfg.eic.endpoint ? { endpoint: cfg.eic.endpoint } : {}),
  });
  try {
    const target = resolver({ id: 'rss', runtime: 'claude-code', transport: 'eic', instanceId: cfg.eic.instanceId, privateIp: '127.0.0.1' });
    const steps = new HostSteps(target, 600_000);
    const open = async (a: ChildArtifact): Promise<Readable> => (cfg.source === 's3' ? store.open(a.key) : createReadStream(a.file));

    /** lock → stage (timed, with `during` around it) → rollback (removes staging, releases the lock). */
    const install = async (a: ChildArtifact, before?: () => void): Promise<{ ms: number; files: number | undefined }> => {
      const ref = { name: a.name, stamp: newStamp() };
      await steps.lock(ref, 'bench-rss', 0, 600);
      try {
        before?.();
        const body = await open(a);
        const start = process.hrtime.bigint();
        try {
          const r = await steps.stage(ref, a.sha256, 0, { stream: body });
          if (r.result !== 'staged') throw new Error(`stage of ${a.name} reported ${r.result}`);
          return { ms: Number(process.hrtime.bigint() - start) / 1e6, files: r.files };
        } finally {
          body.destroy();
        }
      } finally {
        await steps.rollback(ref);
      }
    };

    // The host script counts the files it staged, its own .install-stamp included.
    const check = (a: ChildArtifact, files: number | undefined): void => {
      if (files !== a.files + 1) throw new Error(`stage of ${a.name} reported ${files} files, expected ${a.files} + .install-stamp`);
    };
    check(cfg.warmup, (await install(cfg.warmup)).files);
    collect();
    const rssAfterWarmup = process.memoryUsage.rss();

    let baseline: MemoryPoint | undefined;
    let peak: MemoryPoint | undefined;
    let samples = 0;
    let last = 0;
    let maxGap = 0;
    let hwmReset = false;
    let timer: NodeJS.Timeout | undefined;
    const sample = (): void => {
      const now = performance.now();
      if (last) maxGap = Math.max(maxGap, now - last);
      last = now;
      const p = point();
      samples++;
      peak ??= p;
      for (const f of MEMORY_FIELDS) peak[f] = Math.max(peak[f], p[f]);
    };
    let big: { ms: number; files: number | undefined };
    try {
      big = await install(cfg.big, () => {
        collect();
        baseline = point();
        hwmReset = resetPeakRss();
        sample();
        timer = setInterval(sample, cfg.sampleMs);
      });
    } finally {
      if (timer) clearInterval(timer);
    }
    sample();
    const peakRssKernel = hwmReset ? kernelPeakRss() : null;
    check(cfg.big, big.files);
    const result: ChildResult = {
      rssAtStart,
      rssAfterWarmup,
      baseline: baseline!,
      peakSampled: peak!,
      peakRssKernel,
      samples,
      maxSampleGapMs: Math.round(maxGap * 10) / 10,
      stageMs: Math.round(big.ms * 10) / 10,
      stagedFiles: big.files ?? null,
      after: point(),
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  } finally {
    await resolver.close();
    eicClient.destroy();
    s3Client.destroy();
  }
}

main().then(
  () => {
    process.exitCode = 0;
  },
  (err: unknown) => {
    process.stderr.write(`streaming-memory child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
