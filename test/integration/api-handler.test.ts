/**
 * The api Lambda (lambdas/handlers/api.ts) driven with real API Gateway REST proxy events
 * (test/fixtures/events/*.json), over the AWS ports on loopback: the EC2 API stand-in as the
 * workspace directory, SSM for the hosts, s3rver for tarballs; executions run in-process (the
 * fleet rollout too, its documents in a directory RolloutStore). Every route, every status code
 * of the design's table.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutStatusBody } from '../../lambdas/core/api/api-schemas.ts';
import type { ApiDeps } from '../../lambdas/core/api/plugin-api.ts';
import { DirectoryRolloutStore } from '../../lambdas/core/rollout/directory-rollout-store.ts';
import { acquireRolloutLock, releaseRolloutLock } from '../../lambdas/core/rollout/rollout-lock.ts';
import { listPlugins } from '../../lambdas/core/steps/list-plugins.ts';
import { LocalWorkflowEngine } from '../../lambdas/core/workflow/local-workflow-engine.ts';
import { apiHandler } from '../../lambdas/handlers/api.ts';
import { startAwsWorld, type AwsWorld } from '../helpers/aws-world.ts';
import { gateHostOp } from '../helpers/host-gate.ts';
import { instanceIdFor } from '../servers/ssm-harness.ts';

let world: AwsWorld;
let engine: LocalWorkflowEngine;
let handler: ReturnType<typeof apiHandler>;
let rolloutDir: string;
let rollouts: DirectoryRolloutStore;

function fixture(name: string, change: (e: APIGatewayProxyEvent) => void = () => {}): APIGatewayProxyEvent {
  const event = JSON.parse(readFileSync(new URL(`../fixtures/events/${name}.json`, import.meta.url), 'utf8')) as APIGatewayProxyEvent;
  change(event);
  return event;
}

/** Points a fixture at another workspace/plugin, keeping the rest of the event as API Gateway sends it. */
function retarget(event: APIGatewayProxyEvent, workspace: string, plugin?: string): void {
  event.path = event.path.replace('/ws-api/', `/${workspace}/`).replace(/\/ws-api$/, `/${workspace}`);
  if (plugin) event.path = event.path.replace('/hello-skills', `/${plugin}`);
  event.pathParameters = { ...event.pathParameters, id: workspace, ...(plugin ? { name: plugin } : {}) };
}

async function call(event: APIGatewayProxyEvent) {
  const r = await handler(event);
  return { status: r.statusCode, headers: r.headers ?? {}, json: r.body ? (JSON.parse(r.body) as Record<string, unknown>) : undefined };
}

async function settle(statusUrl: string) {
  await engine.idle();
  const id = statusUrl.replace(/^\/v1\/executions\//, '');
  return call(fixture('get-execution', (e) => {
    e.path = `/executions/${id}`;
    e.pathParameters = { id };
  }));
}

beforeAll(async () => {
  world = await startAwsWorld([
    { id: 'ws-api' }, { id: 'ws-stopped', state: 'stopped' }, { id: 'ws-ext', runtime: 'external' }, { id: 'ws-gone' },
    { id: 'ws-r1' }, { id: 'ws-r2' }, { id: 'ws-r3' },
  ]);
  // ws-gone's instance is running in EC2 but its SSM agent is not reachable.
  world.ssm.api.instances[instanceIdFor('ws-gone')]!.managed = false;
  // The rollouts' documents: the directory adapter of the RolloutStore port (S3 on AWS).
  rolloutDir = await mkdtemp(join(tmpdir(), 'api-rollouts-'));
  rollouts = new DirectoryRolloutStore(rolloutDir);
  world.deps.rollouts = rollouts;
  engine = new LocalWorkflowEngine(world.deps, { retryDelayMs: 5 });
  const deps: ApiDeps = { steps: world.deps, engine };
  handler = apiHandler(async () => deps);
}, 180_000);
afterAll(async () => {
  await engine?.idle();
  await world?.stop();
  if (rolloutDir) await rm(rolloutDir, { recursive: true, force: true });
});

describe('POST /workspaces/{id}/plugins', () => {
  it('202 with installId, executionArn and statusUrl (stage prefix), and the same execution for a retried Idempotency-Key', async () => {
    const r = await call(fixture('post-install'));
    expect(r.status).toBe(202);
    expect(r.json).toMatchObject({ installId: expect.stringMatching(/^install\.ws-api-hello-skills-k/), statusUrl: expect.stringMatching(/^\/v1\/executions\/install\./) });
    expect(r.headers.location).toBe(r.json!.statusUrl);
    const again = await call(fixture('post-install'));
    expect(again.status).toBe(202);
    expect(again.json!.installId).toBe(r.json!.installId);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const done = await settle(String(r.json!.statusUrl));
    expect(done.json).toMatchObject({ status: 'SUCCEEDED' });
  });

  it('422 IdempotencyKeyReused, naming the key, for the same Idempotency-Key with another body; nothing started', async () => {
    // The fixture's key already started the install above (local://hello-skills@1.0.0).
    const key = fixture('post-install').headers['Idempotency-Key']!;
    const first = await call(fixture('post-install'));
    expect(first.headers['idempotent-replayed']).toBe('true');
    for (const other of [{ source: 'local://hello-skills@1.1.0' }, { source: 'local://hello-skills@1.0.0', runtime: 'claude-code' }]) {
      const reused = await call(fixture('post-install', (e) => (e.body = JSON.stringify(other))));
      expect(reused, JSON.stringify(other)).toMatchObject({ status: 422, json: { error: { code: 'IdempotencyKeyReused' } } });
      const error = reused.json!.error as { message: string; hint: string };
      expect(error.message).toContain(JSON.stringify(key));
      expect(error.message).toContain(String(first.json!.installId));
      expect(error.hint).toMatch(/new Idempotency-Key/);
    }
    // Nothing new started: the same body still replays the first execution.
    expect(await call(fixture('post-install'))).toMatchObject({ status: 202, json: { installId: first.json!.installId } });
  });

  it('400 for a body that is not JSON or not the schema', async () => {
    expect((await call(fixture('post-install', (e) => (e.body = '{source:')))).status).toBe(400);
    expect((await call(fixture('post-install', (e) => (e.body = JSON.stringify({ source: 'x', unknown: true }))))).status).toBe(400);
    expect((await call(fixture('post-install', (e) => retarget(e, '..%2Fetc')))).status).toBe(400);
  });

  it('404 for an unknown workspace', async () => {
    expect(await call(fixture('post-install', (e) => retarget(e, 'ws-nobody')))).toMatchObject({ status: 404, json: { error: { code: 'WorkspaceNotFound' } } });
  });

  it('409 when the instance is not running', async () => {
    expect(await call(fixture('post-install', (e) => retarget(e, 'ws-stopped')))).toMatchObject({ status: 409, json: { error: { code: 'WorkspaceNotRunning' } } });
  });

  it('413 for a body over 64 KiB', async () => {
    expect((await call(fixture('post-install', (e) => (e.body = JSON.stringify({ source: 'x'.repeat(70_000) }))))).status).toBe(413);
  });

  it('422 with the hint for an external workspace, and for an unpinned https source', async () => {
    const ext = await call(fixture('post-install', (e) => retarget(e, 'ws-ext')));
    expect(ext).toMatchObject({ status: 422, json: { error: { code: 'ExternalRuntime', hint: expect.stringMatching(/^publish the plugin to the catalog \(pluginctl publish\), then the workspace pulls it: GET \/workspaces\/\{id\}\/plugins\/\{name\}\/download/) } } });
    const unpinned = await call(fixture('post-install', (e) => (e.body = JSON.stringify({ source: 'https://example.com/p.tar.gz' }))));
    expect(unpinned).toMatchObject({ status: 422, json: { error: { code: 'UnpinnedSource' } } });
  });

  it('503 with Retry-After when the workspace lookup fails transiently', async () => {
    world.ec2.failNext('RequestLimitExceeded', 503, 1);
    const r = await call(fixture('post-install', (e) => (e.headers['Idempotency-Key'] = 'other-key')));
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('5');
  });
});

describe('GET /workspaces/{id}/plugins', () => {
  it('200 with the installed plugins', async () => {
    const r = await call(fixture('get-plugins'));
    expect(r).toMatchObject({ status: 200, json: { workspace: 'ws-api', degraded: false, plugins: [{ name: 'hello-skills', version: '1.0.0', complete: true }] } });
  });

  it('200, empty and degraded, when the host cannot be reached', async () => {
    expect(await call(fixture('get-plugins', (e) => retarget(e, 'ws-gone')))).toMatchObject({ status: 200, json: { plugins: [], degraded: true } });
  });

  it('404 for an unknown workspace', async () => {
    expect(await call(fixture('get-plugins', (e) => retarget(e, 'ws-nobody')))).toMatchObject({ status: 404 });
  });
});

describe('GET /workspaces/{id}/plugins/{name}/download', () => {
  it('302 to a presigned URL of the validated tarball', async () => {
    const r = await call(fixture('get-download'));
    expect(r.status).toBe(302);
    const location = String(r.headers.location);
    expect(location).toContain('X-Amz-Signature=');
    const body = Buffer.from(await (await fetch(location)).arrayBuffer());
    expect(body.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  });

  it('404 for a plugin that is not installed', async () => {
    expect(await call(fixture('get-download', (e) => retarget(e, 'ws-api', 'nothing-here')))).toMatchObject({ status: 404 });
  });
});

describe('POST /workspaces/{id}/plugins/{name}/rollback and DELETE /workspaces/{id}/plugins/{name}', () => {
  it('409 when there is nothing to roll back to', async () => {
    expect(await call(fixture('post-rollback'))).toMatchObject({ status: 409, json: { error: { code: 'NothingToRestore' } } });
  });

  it('202 for DELETE; 404 once it is gone; 202 for the rollback that brings it back', async () => {
    const del = await call(fixture('delete-plugin'));
    expect(del.status).toBe(202);
    expect((await settle(String(del.json!.statusUrl))).json).toMatchObject({ status: 'SUCCEEDED' });
    expect(await call(fixture('delete-plugin'))).toMatchObject({ status: 404, json: { error: { code: 'NotInstalled' } } });
    const back = await call(fixture('post-rollback'));
    expect(back.status).toBe(202);
    expect((await settle(String(back.json!.statusUrl))).json).toMatchObject({ status: 'SUCCEEDED' });
  });

  it('422 for an external workspace', async () => {
    expect(await call(fixture('delete-plugin', (e) => retarget(e, 'ws-ext')))).toMatchObject({ status: 422 });
    expect(await call(fixture('post-rollback', (e) => retarget(e, 'ws-ext')))).toMatchObject({ status: 422 });
  });
});

describe('GET /executions/{id}', () => {
  it('404 for an unknown execution, 200 with per-step summary for a known one', async () => {
    expect((await call(fixture('get-execution'))).status).toBe(404);
    const started = await call(fixture('post-install', (e) => (e.headers['Idempotency-Key'] = 'exec-status')));
    const done = await settle(String(started.json!.statusUrl));
    expect(done.status).toBe(200);
    expect((done.json!.steps as { name: string }[]).map((s) => s.name)).toContain('SwapIntoPlace');
  });
});

const CONTRACT_KEYS = ['status', 'rollout', 'plugin', 'version', 'sha256', 'counts', 'workspaces'];
const FLEET = ['ws-r1', 'ws-r2', 'ws-r3'];

function postRollout(body: Record<string, unknown>, key?: string): APIGatewayProxyEvent {
  return fixture('post-rollout', (e) => {
    e.body = JSON.stringify(body);
    if (key === undefined) {
      delete e.headers['Idempotency-Key'];
      delete e.multiValueHeaders['Idempotency-Key'];
    } else {
      e.headers['Idempotency-Key'] = key;
      e.multiValueHeaders['Idempotency-Key'] = [key];
    }
  });
}

function getRollout(statusUrlOrId: string): APIGatewayProxyEvent {
  const id = statusUrlOrId.replace(/^\/v1\/rollouts\//, '');
  return fixture('get-rollout', (e) => {
    e.path = `/rollouts/${id}`;
    e.pathParameters = { id };
  });
}

const rolloutBody = (over: Record<string, unknown> = {}) => ({ source: 'local://hello-skills@1.1.0', workspaces: FLEET, maxConcurrency: 2, maxErrors: 0, canary: 1, rollbackOnHalt: false, ...over });

/** The rollouts the store knows (each POST that got past its checks stored one). */
async function storedRollouts(): Promise<string[]> {
  return readdir(join(rolloutDir, 'rollouts')).catch(() => []);
}

async function liveVersions(): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const ws of FLEET) out[ws] = (await listPlugins(world.deps, ws)).plugins.find((p) => p.name === 'hello-skills')?.version ?? null;
  return out;
}

describe('POST /rollouts and GET /rollouts/{id}', () => {
  it('202 with rolloutId, executionArn and statusUrl; GET is the pluginctl rollout --json object while it runs and after; the same Idempotency-Key and body replays it', async () => {
    // The canary (ws-r1) is held at its stage step: the rollout is certainly in flight.
    const gate = gateHostOp(world.deps.hosts, 'ws-r1', 'stage');
    const hosts = world.deps.hosts;
    world.deps.hosts = gate.resolver;
    try {
      const r = await call(fixture('post-rollout'));
      expect(r.status).toBe(202);
      expect(Object.keys(r.json!).sort()).toEqual(['executionArn', 'rolloutId', 'statusUrl']);
      const rolloutId = String(r.json!.rolloutId);
      expect(rolloutId).toMatch(/^rollout-k[0-9a-f]{24}$/);
      expect(r.json!.statusUrl).toBe(`/v1/rollouts/${rolloutId}`);
      expect(r.json!.executionArn).toMatch(new RegExp(`:execution:plugin-rollout:${rolloutId}$`));
      expect(r.headers.location).toBe(r.json!.statusUrl);

      await gate.entered;
      const running = await call(getRollout(String(r.json!.statusUrl)));
      expect(running.status).toBe(200);
      RolloutStatusBody.parse(running.json);
      expect(Object.keys(running.json!)).toEqual(CONTRACT_KEYS);
      expect(running.json).toMatchObject({
        status: 'running',
        rollout: rolloutId,
        plugin: 'hello-skills',
        version: '1.1.0',
        counts: { targets: 3, succeeded: 0, failed: 0, skipped: 0, notStarted: 2, rolledBack: 0 },
        workspaces: [{ workspace: 'ws-r1', status: 'in-flight' }, { workspace: 'ws-r2', status: 'not-started' }, { workspace: 'ws-r3', status: 'not-started' }],
      });
      expect(running.json!.sha256).toMatch(/^[0-9a-f]{64}$/);

      // A retry (same key, same body) while it runs: the same rollout, nothing new started.
      const again = await call(fixture('post-rollout'));
      expect(again.status).toBe(202);
      expect(again.json).toEqual(r.json);
      expect(again.headers['idempotent-replayed']).toBe('true');
      // The same key with another body is not a retry.
      const reused = await call(fixture('post-rollout', (e) => (e.body = JSON.stringify(rolloutBody({ maxConcurrency: 3 })))));
      expect(reused).toMatchObject({ status: 422, json: { error: { code: 'IdempotencyKeyReused' } } });

      gate.open();
      await engine.idle();
      const done = await call(getRollout(rolloutId));
      expect(done.status).toBe(200);
      RolloutStatusBody.parse(done.json);
      expect(Object.keys(done.json!)).toEqual(CONTRACT_KEYS);
      // The SSM stand-in's instances share one host filesystem (ssm-harness.ts): once the canary
      // has installed 1.1.0 there, the other two are already at the rollout's sha256 and skipped.
      expect(done.json).toMatchObject({
        status: 'succeeded',
        rollout: rolloutId,
        plugin: 'hello-skills',
        version: '1.1.0',
        sha256: running.json!.sha256,
        counts: { targets: 3, succeeded: 1, failed: 0, skipped: 2, notStarted: 0, rolledBack: 0 },
        workspaces: [{ workspace: 'ws-r1', status: 'succeeded', execution: (running.json!.workspaces as { execution: string }[])[0]!.execution }, { workspace: 'ws-r2', status: 'skipped' }, { workspace: 'ws-r3', status: 'skipped' }],
      });
      expect(await liveVersions()).toEqual({ 'ws-r1': '1.1.0', 'ws-r2': '1.1.0', 'ws-r3': '1.1.0' });
      // Its execution is an execution like any other: GET /executions/rollout.<name>.
      const execution = await call(fixture('get-execution', (e) => {
        e.path = `/executions/rollout.${rolloutId}`;
        e.pathParameters = { id: `rollout.${rolloutId}` };
      }));
      expect(execution.json).toMatchObject({ status: 'SUCCEEDED', workflow: 'rollout' });
      expect((execution.json!.steps as { name: string }[]).map((s) => s.name)).toContain('PlanRollout');

      // After it ended, the retry still meets the same rollout.
      const late = await call(fixture('post-rollout'));
      expect(late.json).toEqual(r.json);
      expect(late.headers['idempotent-replayed']).toBe('true');
    } finally {
      gate.open();
      world.deps.hosts = hosts;
    }
  });

  it('refuses bad input at once (400/422, 409 when another rollout holds the plugin) and starts nothing', async () => {
    const before = await storedRollouts();
    const refusals: [string, APIGatewayProxyEvent, number, string][] = [
      ['not JSON', fixture('post-rollout', (e) => (e.body = '{source:')), 400, 'InvalidInput'],
      ['an unknown field', postRollout(rolloutBody({ force: true }), 'r-1'), 400, 'InvalidInput'],
      ['both workspaces and selector', postRollout(rolloutBody({ selector: { Team: 'a' } }), 'r-2'), 400, 'InvalidInput'],
      ['neither workspaces nor selector', postRollout(rolloutBody({ workspaces: undefined }), 'r-3'), 400, 'InvalidInput'],
      ['maxConcurrency 0', postRollout(rolloutBody({ maxConcurrency: 0 }), 'r-4'), 400, 'InvalidInput'],
      ['maxConcurrency 41', postRollout(rolloutBody({ maxConcurrency: 41 }), 'r-5'), 400, 'InvalidInput'],
      ['maxErrors "ten"', postRollout(rolloutBody({ maxErrors: 'ten' }), 'r-6'), 400, 'InvalidInput'],
      ['maxErrors "150%"', postRollout(rolloutBody({ maxErrors: '150%' }), 'r-7'), 400, 'InvalidInput'],
      ['maxErrors -1', postRollout(rolloutBody({ maxErrors: -1 }), 'r-8'), 400, 'InvalidInput'],
      ['canary 0', postRollout(rolloutBody({ canary: 0 }), 'r-9'), 400, 'InvalidInput'],
      ['a source that is not in the catalog', postRollout(rolloutBody({ source: 'local://no-such-plugin' }), 'r-10'), 400, 'SourceNotFound'],
      ['an unpinned https source', postRollout(rolloutBody({ source: 'https://example.com/p.tar.gz' }), 'r-11'), 422, 'UnpinnedSource'],
      ['an unknown workspace', postRollout(rolloutBody({ workspaces: ['ws-r1', 'ws-nobody'] }), 'r-12'), 422, 'WorkspaceNotFound'],
      ['a selector that matches nothing', postRollout(rolloutBody({ workspaces: undefined, selector: { Team: 'nobody' } }), 'r-13'), 400, 'InvalidInput'],
      ['a body over 1 MiB', postRollout(rolloutBody({ source: 'x'.repeat(1_100_000) })), 413, 'InvalidInput'],
    ];
    for (const [what, event, status, code] of refusals) {
      const r = await call(event);
      expect(r.status, what).toBe(status);
      expect(Object.keys(r.json!.error as object), what).toEqual(['code', 'message', 'hint']);
      expect((r.json!.error as { code: string }).code, what).toBe(code);
    }
    const unknown = await call(postRollout(rolloutBody({ workspaces: ['ws-r1', 'ws-nobody'] })));
    expect((unknown.json!.error as { message: string }).message).toContain('ws-nobody');

    // Another rollout holds hello-skills (a live lease of a live process).
    await acquireRolloutLock(rollouts, { plugin: 'hello-skills', rolloutId: 'other-rollout', pid: process.pid, leaseSeconds: 600, now: new Date() });
    try {
      const busy = await call(postRollout(rolloutBody(), 'r-busy'));
      expect(busy).toMatchObject({ status: 409, json: { error: { code: 'RolloutBusy' } } });
      expect((busy.json!.error as { message: string }).message).toContain('other-rollout');
    } finally {
      await releaseRolloutLock(rollouts, 'hello-skills', 'other-rollout');
    }
    await engine.idle();
    expect(await storedRollouts()).toEqual(before);
  });

  it('reports a refusal found once the tarball is read (an external workspace among the targets) as refused, with nothing installed', async () => {
    const live = await liveVersions();
    const r = await call(postRollout(rolloutBody({ source: 'local://hello-skills@1.0.0', workspaces: ['ws-r1', 'ws-ext'] })));
    expect(r.status).toBe(202);
    await engine.idle();
    const got = await call(getRollout(String(r.json!.statusUrl)));
    expect(got.status).toBe(200);
    RolloutStatusBody.parse(got.json);
    expect(got.json).toMatchObject({ status: 'refused', rollout: r.json!.rolloutId, plugin: null, counts: null, workspaces: [], error: { code: 'RuntimeMismatch' } });
    expect(await liveVersions()).toEqual(live);
  });

  it('404 for an unknown rollout, 400 for a malformed rollout id', async () => {
    expect(await call(getRollout('rollout-nobody'))).toMatchObject({ status: 404, json: { error: { code: 'NotFound' } } });
    expect(await call(getRollout('..%2Fetc'))).toMatchObject({ status: 400, json: { error: { code: 'InvalidInput' } } });
    expect(await call(getRollout('r'.repeat(49)))).toMatchObject({ status: 400, json: { error: { code: 'InvalidInput' } } });
  });
});
