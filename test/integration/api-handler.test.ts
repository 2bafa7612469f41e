/**
 * The api Lambda (lambdas/handlers/api.ts) driven with real API Gateway REST proxy events
 * (test/fixtures/events/*.json), over the AWS ports on loopback: the EC2 API stand-in as the
 * workspace directory, SSM for the hosts, s3rver for tarballs; executions run in-process. Every
 * route, every status code of the design's table.
 */
import { readFileSync } from 'node:fs';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiDeps } from '../../lambdas/core/api/plugin-api.ts';
import { LocalWorkflowEngine } from '../../lambdas/core/workflow/local-workflow-engine.ts';
import { apiHandler } from '../../lambdas/handlers/api.ts';
import { startAwsWorld, type AwsWorld } from '../helpers/aws-world.ts';
import { instanceIdFor } from '../servers/ssm-harness.ts';

let world: AwsWorld;
let engine: LocalWorkflowEngine;
let handler: ReturnType<typeof apiHandler>;

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
  world = await startAwsWorld([{ id: 'ws-api' }, { id: 'ws-stopped', state: 'stopped' }, { id: 'ws-ext', runtime: 'external' }, { id: 'ws-gone' }]);
  // ws-gone's instance is running in EC2 but its SSM agent is not reachable.
  world.ssm.api.instances[instanceIdFor('ws-gone')]!.managed = false;
  engine = new LocalWorkflowEngine(world.deps, { retryDelayMs: 5 });
  const deps: ApiDeps = { steps: world.deps, engine };
  handler = apiHandler(async () => deps);
}, 60_000);
afterAll(async () => {
  await engine?.idle();
  await world?.stop();
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
    expect(ext).toMatchObject({ status: 422, json: { error: { code: 'ExternalRuntime', hint: 'external workspaces pull plugins via GET /workspaces/:id/plugins/:name/download' } } });
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
