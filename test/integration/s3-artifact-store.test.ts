/**
 * S3ArtifactStore through the real S3Client, lib-storage and presigner against s3rver on
 * loopback (test/servers/s3.ts): multipart round trip of a multi-MiB stream, two-phase
 * upload/commit/discard, content addressing, presigned GET, error mapping (NoSuchKey →
 * SourceNotFound; SlowDown/5xx/network → HostUnreachable), and Prepare streaming a tarball
 * through it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { localDeps } from '../../lambdas/commons/local-deps.ts';
import { artifactKey } from '../../lambdas/core/artifacts/artifact-store.ts';
import { S3ArtifactStore } from '../../lambdas/core/artifacts/s3-artifact-store.ts';
import { PluginError } from '../../lambdas/core/errors.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { prepareInstall } from '../../lambdas/core/steps/prepare-install.ts';
import type { StepDeps } from '../../lambdas/core/steps/step-deps.ts';
import { goodTarball, packTarGz } from '../fixtures/hostile-tarballs.ts';
import { startS3, type S3StandIn } from '../servers/s3.ts';
import { failure } from '../helpers/plugin-error.ts';

const MiB = 1024 * 1024;
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

let s3: S3StandIn;
let tmp: string;

beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 's3-store-'));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function store(client: S3Client = s3.client, extra: Partial<ConstructorParameters<typeof S3ArtifactStore>[0]> = {}): S3ArtifactStore {
  return new S3ArtifactStore({ client, bucket: s3.bucket, ...extra });
}

/** Records the S3 operations a client sends. */
function recordCommands(client: S3Client): string[] {
  const names: string[] = [];
  client.middlewareStack.add(
    (next, context) => (args) => {
      names.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize', name: `record-${Math.random()}` },
  );
  return names;
}

async function keys(prefix: string): Promise<string[]> {
  const out = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `total` pseudo-random bytes in 64 KiB chunks, produced on demand; `digest()` once read. */
function generated(total: number, seed = 1): { stream: Readable; digest: () => string; produced: () => number } {
  const hash = createHash('sha256');
  let produced = 0;
  let counter = seed;
  const stream = new Readable({
    read() {
      if (produced >= total) return this.push(null);
      const size = Math.min(64 * 1024, total - produced);
      const chunk = createHash('sha512').update(String(counter++)).digest();
      const buf = Buffer.alloc(size, chunk);
      hash.update(buf);
      produced += size;
      this.push(buf);
    },
  });
  return { stream, digest: () => hash.copy().digest('hex'), produced: () => produced };
}


/** Resolves once `check` holds (fire-and-forget cleanups), or fails after `ms` (generous: it bounds a hang on a loaded machine). */
async function eventually(check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('S3ArtifactStore', () => {
  it('streams a 12 MiB body as a multipart upload; commit stores it by sha256; open streams it back', async () => {
    const st = store();
    const commands = recordCommands(s3.client);
    const source = generated(12 * MiB);
    const pending = await st.upload(source.stream);
    expect(pending.bytes).toBe(12 * MiB);
    expect(pending.sha256).toBe(source.digest());
    expect(commands).toContain('CreateMultipartUploadCommand');
    expect(commands.filter((c) => c === 'UploadPartCommand')).toHaveLength(3);
    expect(await keys('uploads/')).toHaveLength(1);
    expect(await st.exists(artifactKey(pending.sha256))).toBe(false);

    const key = await pending.commit();
    expect(key).toBe(artifactKey(pending.sha256));
    expect(key).toMatch(/^artifacts\/sha256\/[0-9a-f]{64}\.tar\.gz$/);
    expect(await st.exists(key)).toBe(true);
    expect(await keys('uploads/')).toEqual([]);

    const back = await st.open(key);
    expect(back).toBeInstanceOf(Readable);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of back) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    expect(bytes).toBe(12 * MiB);
    expect(hash.digest('hex')).toBe(pending.sha256);
  });

  it('reads the body as it uploads: lib-storage pulls parts on demand, not the whole stream first', async () => {
    const st = store(s3.client, { queueSize: 1 });
    const source = generated(20 * MiB, 7);
    let maxAhead = 0;
    const commands = recordCommands(s3.client);
    const watcher = setInterval(() => {
      const parts = commands.filter((c) => c === 'UploadPartCommand').length;
      maxAhead = Math.max(maxAhead, source.produced() - parts * 5 * MiB);
    }, 1);
    try {
      const pending = await st.upload(source.stream);
      expect(pending.bytes).toBe(20 * MiB);
      await pending.discard();
    } finally {
      clearInterval(watcher);
    }
    // queueSize 1 × 5 MiB parts, plus stream buffers: far below the 20 MiB body.
    expect(maxAhead).toBeLessThan(12 * MiB);
  });

  it('an empty and a small body upload with a single PutObject', async () => {
    const st = store();
    for (const body of [Buffer.alloc(0), Buffer.from('tiny')]) {
      const pending = await st.upload(Readable.from([body]));
      expect(pending.bytes).toBe(body.length);
      expect(pending.sha256).toBe(sha256(body));
      const key = await pending.commit();
      expect(sha256(await collect(await st.open(key)))).toBe(sha256(body));
    }
  });

  it('discard drops the upload; nothing is committed', async () => {
    const st = store();
    const body = randomBytes(100_000);
    const pending = await st.upload(Readable.from([body]));
    expect(await keys('uploads/')).toHaveLength(1);
    await pending.discard();
    await pending.discard(); // idempotent
    expect(await keys('uploads/')).toEqual([]);
    expect(await st.exists(artifactKey(sha256(body)))).toBe(false);
  });

  it('is content-addressed: the same bytes twice give one key, the second commit skips the copy; commit is idempotent', async () => {
    const st = store();
    const body = randomBytes(300_000);
    const first = await st.upload(Readable.from([body]));
    const key = await first.commit();
    expect(await first.commit()).toBe(key);

    const commands = recordCommands(s3.client);
    const second = await st.upload(Readable.from([body.subarray(0, 1000), body.subarray(1000)]));
    expect(second.sha256).toBe(first.sha256);
    expect(await second.commit()).toBe(key);
    expect(commands).toContain('HeadObjectCommand');
    expect(commands).not.toContain('CopyObjectCommand');
    expect(await keys('uploads/')).toEqual([]);
    expect(sha256(await collect(await st.open(key)))).toBe(sha256(body));

    const other = await st.upload(Readable.from([randomBytes(1000)]));
    expect(await other.commit()).not.toBe(key);
  });

  it('exists is false for a missing artifact; open of one is SourceNotFound; malformed keys are InvalidInput', async () => {
    const st = store();
    const missing = artifactKey('0'.repeat(64));
    expect(await st.exists(missing)).toBe(false);
    const e = await failure(st.open(missing));
    expect(e.code).toBe('SourceNotFound');
    expect(e.message).toContain(missing);
    for (const bad of ['uploads/x.tar.gz', 'artifacts/sha256/../../x.tar.gz', artifactKey('A'.repeat(64))]) {
      expect((await failure(st.open(bad))).code, bad).toBe('InvalidInput');
      expect((await failure(st.exists(bad))).code, bad).toBe('InvalidInput');
      expect((await failure(st.presignGet(bad, 60))).code, bad).toBe('InvalidInput');
    }
  });

  it('presignGet gives a URL that plain fetch() can GET the bytes from; a custom presigner gets the lifetime', async () => {
    const st = store();
    const body = randomBytes(2 * MiB + 17);
    const key = await (await st.upload(Readable.from([body]))).commit();
    const url = await st.presignGet(key, 300);
    expect(url).toContain(`/${s3.bucket}/${key}?`);
    expect(url).toContain('X-Amz-Expires=300');
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(body));

    const seen: number[] = [];
    const custom = store(s3.client, {
      presigner: (_client, command, options) => {
        seen.push(options.expiresIn);
        return Promise.resolve(`https://example.invalid/${command.input.Key}`);
      },
    });
    expect(await custom.presignGet(key, 60)).toBe(`https://example.invalid/${key}`);
    expect(seen).toEqual([60]);
    expect((await failure(st.presignGet(key, 0))).code).toBe('InvalidInput');
    expect((await failure(st.presignGet(key, 8 * 24 * 3600))).code).toBe('InvalidInput');
  });

  it('a body that fails mid-stream fails the upload with its own error and leaves nothing behind', async () => {
    const st = store();
    let sent = 0;
    const broken = new Readable({
      read() {
        if (sent >= 7 * MiB) return this.destroy(new Error('source connection reset'));
        sent += MiB;
        this.push(Buffer.alloc(MiB, 1));
      },
    });
    await expect(st.upload(broken)).rejects.toThrow('source connection reset');
    expect(await keys('uploads/')).toEqual([]);
  });
});

describe('transient S3 failures are HostUnreachable', () => {
  it('SlowDown (503) and InternalError (500) on open, exists, upload and commit', async () => {
    const client = s3.newClient({ maxAttempts: 1 });
    const st = store(client);
    const key = await (await st.upload(Readable.from([Buffer.from('x')]))).commit();

    s3.failNext('SlowDown', 503);
    const e1 = await failure(st.open(key));
    expect(e1.code).toBe('HostUnreachable');
    expect(e1.retryable).toBe(true);
    expect(e1.message).toContain('SlowDown');

    s3.failNext('InternalError', 500);
    expect((await failure(st.exists(key))).code).toBe('HostUnreachable');

    s3.failNext('SlowDown', 503);
    const source = generated(MiB);
    const e3 = await failure(st.upload(source.stream));
    expect(e3.code).toBe('HostUnreachable');
    // The body is not left half-read and paused forever.
    expect(source.stream.destroyed).toBe(true);

    const pending = await st.upload(Readable.from([randomBytes(1000)]));
    s3.failNext('InternalError', 500);
    expect((await failure(pending.commit())).code).toBe('HostUnreachable');
    // The retried commit completes.
    expect(await st.exists(await pending.commit())).toBe(true);
  });

  it('a non-transient error passes through unchanged (AccessDenied is not retried)', async () => {
    const st = store(s3.newClient({ maxAttempts: 1 }));
    for (const call of [() => st.open(artifactKey('1'.repeat(64))), () => st.exists(artifactKey('1'.repeat(64)))]) {
      s3.failNext('AccessDenied', 403);
      const err = await call().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err instanceof PluginError).toBe(false);
    }
    s3.failNext('AccessDenied', 403);
    expect((await st.open(artifactKey('1'.repeat(64))).then(() => undefined, (e: unknown) => e) as Error).name).toBe('AccessDenied');
  });

  it('nothing listening (network failure) is HostUnreachable', async () => {
    const gone = await startS3();
    const client = gone.newClient({ maxAttempts: 1 });
    await gone.stop();
    const st = new S3ArtifactStore({ client, bucket: gone.bucket });
    expect((await failure(st.exists(artifactKey('2'.repeat(64))))).code).toBe('HostUnreachable');
    expect((await failure(st.open(artifactKey('2'.repeat(64))))).code).toBe('HostUnreachable');
  });
});

describe('Prepare with the S3 store', () => {
  async function deps(): Promise<StepDeps> {
    const local = localDeps({ home: tmp });
    await local.workspaces.ensure('ws-s3');
    return { ...local, artifacts: store() };
  }

  it('streams a good tarball through validation into S3 and commits it under its digest', async () => {
    const tarball = await goodTarball({ 'skills/a/SKILL.md': 'a\n'.repeat(1000), 'bin/big.bin': randomBytes(3 * MiB).toString('base64') });
    const file = join(tmp, 'plugin.tar.gz');
    await writeFile(file, tarball);
    const d = await deps();
    const plan = await prepareInstall(d, { workspace: 'ws-s3', source: file, stamp: newStamp(), execution: 'ex-1', sha256: sha256(tarball) });
    expect(plan.sha256).toBe(sha256(tarball));
    expect(plan.artifactKey).toBe(artifactKey(plan.sha256));
    expect(plan.bytes).toBe(tarball.length);
    expect(sha256(await collect(await d.artifacts.open(plan.artifactKey)))).toBe(sha256(tarball));
    expect(await keys('uploads/')).toEqual([]);
  });

  it('a hostile tarball is refused and its upload is dropped', async () => {
    const hostile = await packTarGz([
      { name: 'plugin.yaml', type: 'file', mode: 0o644, body: 'name: evil\nversion: 1.0.0\ndescription: x\n' },
      { name: '../escape.txt', type: 'file', mode: 0o644, body: 'x' },
    ]);
    const file = join(tmp, 'evil.tar.gz');
    await writeFile(file, hostile);
    const e = await failure(prepareInstall(await deps(), { workspace: 'ws-s3', source: file, stamp: newStamp(), execution: 'ex-2' }));
    expect(e.code).toBe('HostileTarball');
    expect(await store().exists(artifactKey(sha256(hostile)))).toBe(false);
    await eventually(async () => (await keys('uploads/')).length === 0);
  });

  it('a pinned sha256 that does not match is ChecksumMismatch and nothing is committed', async () => {
    const tarball = await goodTarball({ 'skills/b/SKILL.md': 'b\n' });
    const file = join(tmp, 'p.tar.gz');
    await writeFile(file, tarball);
    const e = await failure(prepareInstall(await deps(), { workspace: 'ws-s3', source: file, stamp: newStamp(), execution: 'ex-3', sha256: 'f'.repeat(64) }));
    expect(e.code).toBe('ChecksumMismatch');
    expect(await store().exists(artifactKey(sha256(tarball)))).toBe(false);
    expect(await keys('uploads/')).toEqual([]);
  });
});
