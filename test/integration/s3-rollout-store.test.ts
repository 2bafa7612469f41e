/**
 * S3RolloutStore through the real S3Client against s3rver on loopback (test/servers/s3.ts). s3rver
 * 3.7 ignores the conditional-write headers; the stand-in checks them in front of it as S3 does
 * (412 / 404, one write per key at a time), so these tests exercise the real conditional path:
 * the SDK sends If-None-Match / If-Match, and only the header makes the write refuse.
 *
 * Covered: the port's contract (get/put/create/replace/remove, versions = ETags), races with
 * exactly one winner (creates, replaces, and the rollout lock of rollout-lock.ts from two
 * "Lambdas"), and the error mapping (412/409 → false; throttling → HostUnreachable; denied,
 * missing bucket, not-JSON → HostStepFailed; a bad key refused before any request).
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3RolloutStore } from '../../lambdas/core/rollout/s3-rollout-store.ts';
import { acquireRolloutLock, lockKey, releaseRolloutLock, type RolloutLock } from '../../lambdas/core/rollout/rollout-lock.ts';
import { startS3, type S3StandIn } from '../servers/s3.ts';
import { expectCode } from '../helpers/plugin-error.ts';

let s3: S3StandIn;

beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => {
  await s3?.stop();
});

let seq = 0;
/** A fresh rollout document key per test, so tests share the bucket without sharing state. */
const key = (name = 'rollout.json') => `rollouts/t${++seq}-${Date.now().toString(36)}/${name}`;

function store(client: S3Client = s3.client, bucket = s3.bucket): S3RolloutStore {
  return new S3RolloutStore({ client, bucket });
}

describe('S3RolloutStore: the RolloutStore contract on S3', () => {
  it('get of a missing document is undefined; put then get returns the value and its ETag as version', async () => {
    const k = key();
    expect(await store().get(k)).toBeUndefined();
    await store().put(k, { phase: 'install', cursor: 3 });
    const got = await store().get<{ phase: string; cursor: number }>(k);
    expect(got?.value).toEqual({ phase: 'install', cursor: 3 });
    expect(got?.version).toMatch(/^"[0-9a-f]{32}"$/);
    // An unconditional put overwrites, and the version changes with the bytes.
    await store().put(k, { phase: 'done', cursor: 9 });
    const again = await store().get(k);
    expect(again?.value).toEqual({ phase: 'done', cursor: 9 });
    expect(again?.version).not.toBe(got?.version);
  });

  it('create writes only where nothing exists (If-None-Match: *)', async () => {
    const k = key();
    expect(await store().create(k, { holder: 'a' })).toBe(true);
    expect(await store().create(k, { holder: 'b' })).toBe(false);
    expect((await store().get(k))?.value).toEqual({ holder: 'a' });
  });

  it('replace writes only at the version read (If-Match); a stale or vanished version is false', async () => {
    const k = key();
    await store().put(k, { n: 1 });
    const v1 = (await store().get(k))!.version;
    expect(await store().replace(k, { n: 2 }, v1)).toBe(true);
    // v1 is stale now: the write is refused and the document stays at n = 2.
    expect(await store().replace(k, { n: 3 }, v1)).toBe(false);
    expect((await store().get(k))?.value).toEqual({ n: 2 });
    const v2 = (await store().get(k))!.version;
    expect(await store().remove(k, v2)).toBe(true);
    // Gone: S3 answers If-Match on a missing key with 404, which the port reports as false.
    expect(await store().replace(k, { n: 4 }, v2)).toBe(false);
    expect(await store().get(k)).toBeUndefined();
  });

  it('remove deletes only at the version read (DeleteObject If-Match)', async () => {
    const k = key();
    await store().put(k, { n: 1 });
    const v1 = (await store().get(k))!.version;
    await store().put(k, { n: 2 });
    expect(await store().remove(k, v1)).toBe(false);
    expect((await store().get(k))?.value).toEqual({ n: 2 });
    const v2 = (await store().get(k))!.version;
    expect(await store().remove(k, v2)).toBe(true);
    expect(await store().get(k)).toBeUndefined();
    expect(await store().remove(k, v2)).toBe(false);
  });

  it('accepts exactly the rollout keys, refusing others before any request', async () => {
    const before = s3.requests;
    for (const bad of ['artifacts/sha256/x.tar.gz', 'rollouts/../etc/passwd', 'rollout-locks/Bad Name.json', 'rollouts/id']) {
      const err = await expectCode(store().put(bad, {}), 'InvalidInput');
      expect(err.hint).toContain('rollouts/');
      await expectCode(store().get(bad), 'InvalidInput');
    }
    expect(s3.requests).toBe(before);
    // The lock key and a page key are rollout keys.
    await store().put(lockKey('hello-skills'), { rolloutId: 'r1', pid: 0, host: 'h', expires: 1 });
    await store().put(key('attempt-2/page-0.json'), { targets: [], entries: {} });
  });
});

describe('S3RolloutStore: races have one winner', () => {
  it('of 12 concurrent creates from separate clients, exactly one succeeds and its value is stored', async () => {
    const k = key();
    const clients = Array.from({ length: 12 }, () => s3.newClient());
    const results = await Promise.all(clients.map((c, i) => store(c).create(k, { writer: i })));
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = results.indexOf(true);
    expect((await store().get(k))?.value).toEqual({ writer: winner });
  });

  it('of 8 concurrent replaces at the same version, exactly one succeeds', async () => {
    const k = key();
    await store().put(k, { writer: -1 });
    const version = (await store().get(k))!.version;
    const clients = Array.from({ length: 8 }, () => s3.newClient());
    const results = await Promise.all(clients.map((c, i) => store(c).replace(k, { writer: i }, version)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect((await store().get(k))?.value).toEqual({ writer: results.indexOf(true) });
  });

  it('two rollouts of one plugin racing for its lock from two Lambdas: one holds it, the other is RolloutBusy until it is released', async () => {
    const plugin = `race-${++seq}`;
    const now = new Date();
    const a = store(s3.newClient());
    const b = store(s3.newClient());
    const outcomes = await Promise.allSettled([
      acquireRolloutLock(a, { plugin, rolloutId: 'rollout-a', pid: 0, leaseSeconds: 3600, now }),
      acquireRolloutLock(b, { plugin, rolloutId: 'rollout-b', pid: 0, leaseSeconds: 3600, now }),
    ]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')!;
    expect((refused.reason as { code?: string }).code).toBe('RolloutBusy');
    const holder = (await store().get<RolloutLock>(lockKey(plugin)))!.value.rolloutId;
    const other = holder === 'rollout-a' ? 'rollout-b' : 'rollout-a';
    expect((refused.reason as Error).message).toContain(holder);

    // Releasing as the other rollout changes nothing; the holder's release frees the plugin.
    await releaseRolloutLock(store(), plugin, other);
    expect((await store().get<RolloutLock>(lockKey(plugin)))?.value.rolloutId).toBe(holder);
    await releaseRolloutLock(store(), plugin, holder);
    expect(await store().get(lockKey(plugin))).toBeUndefined();
    await acquireRolloutLock(store(), { plugin, rolloutId: other, pid: 0, leaseSeconds: 3600, now });
    expect((await store().get<RolloutLock>(lockKey(plugin)))?.value.rolloutId).toBe(other);
  });

  it('an expired lock is taken over by compare-and-swap (If-Match on the expired version)', async () => {
    const plugin = `expired-${++seq}`;
    const past = new Date(Date.UTC(2020, 0, 1));
    await acquireRolloutLock(store(), { plugin, rolloutId: 'old', pid: 0, leaseSeconds: 60, now: past });
    await acquireRolloutLock(store(), { plugin, rolloutId: 'new', pid: 0, leaseSeconds: 60, now: new Date() });
    expect((await store().get<RolloutLock>(lockKey(plugin)))?.value.rolloutId).toBe('new');
  });
});

describe('S3RolloutStore: errors', () => {
  it('a concurrent conditional write S3 reports as 409 ConditionalRequestConflict is a lost precondition: false', async () => {
    const k = key();
    s3.failNext('ConditionalRequestConflict', 409);
    expect(await store().create(k, { a: 1 })).toBe(false);
    await store().put(k, { a: 1 });
    const version = (await store().get(k))!.version;
    s3.failNext('ConditionalRequestConflict', 409);
    expect(await store().replace(k, { a: 2 }, version)).toBe(false);
    s3.failNext('ConditionalRequestConflict', 409);
    expect(await store().remove(k, version)).toBe(false);
    expect((await store().get(k))?.value).toEqual({ a: 1 });
  });

  it('throttling, 5xx and an unreachable endpoint are HostUnreachable (the Tasks retry them)', async () => {
    const once = store(s3.newClient({ maxAttempts: 1 }));
    s3.failNext('SlowDown', 503);
    const slow = await expectCode(once.put(key(), {}), 'HostUnreachable');
    expect(slow.message).toContain('SlowDown');
    expect(slow.message).toContain(s3.bucket);
    s3.failNext('InternalError', 500);
    await expectCode(once.get(key()), 'HostUnreachable');
    s3.failNext('SlowDown', 503);
    await expectCode(once.create(key(), {}), 'HostUnreachable');
    // Nothing listening (a closed loopback port): the service was not reached at all.
    const nowhere = store(s3.newClient({ endpoint: 'http://127.0.0.1:9', maxAttempts: 1 }));
    await expectCode(nowhere.get(key()), 'HostUnreachable');
  });

  it('a 412 on an unconditional write is not a lost precondition but an error', async () => {
    s3.failNext('PreconditionFailed', 412);
    await expectCode(store(s3.newClient({ maxAttempts: 1 })).put(key(), {}), 'HostStepFailed');
  });

  it('access denied names the IAM grant; a missing bucket names ARTIFACT_BUCKET', async () => {
    s3.failNext('AccessDenied', 403);
    const denied = await expectCode(store().get(key()), 'HostStepFailed');
    expect(denied.hint).toContain('rollouts/*');
    expect(denied.hint).toContain('rollout-locks/*');
    const missing = await expectCode(store(s3.client, 'no-such-bucket').put(key(), {}), 'HostStepFailed');
    expect(missing.message).toContain('NoSuchBucket');
    expect(missing.hint).toContain('ARTIFACT_BUCKET');
  });

  it('a document that is not JSON is HostStepFailed naming it', async () => {
    const k = key();
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: k, Body: 'not json{' }));
    const err = await expectCode(store().get(k), 'HostStepFailed');
    expect(err.message).toContain(k);
  });
});
