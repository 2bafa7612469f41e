/**
 * The HTTP API end to end over real HTTP against `pluginctl serve` (in-process server, real
 * workflows and host steps): install, list, download, uninstall, rollback, execution status;
 * 401 without the token; 422 with the hint for an external workspace; one execution per
 * Idempotency-Key; a fleet rollout (POST /rollouts, GET /rollouts/{id}) run in-process as
 * `pluginctl rollout` runs it.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutStatusBody } from '../../lambdas/core/api/api-schemas.ts';
import { openApiDocument } from '../../lambdas/core/api/openapi.ts';
import { startServer, type RunningServer } from '../../bin/cli/serve.ts';
import { gateHostOp } from '../helpers/host-gate.ts';

const TOKEN = 'test-token-0123456789abcdef0123456789';
let home: string;
let server: RunningServer;
const FLEET = ['f1', 'f2', 'f3', 'f4', 'f5'];

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    redirect: 'manual',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** Polls until the execution is no longer RUNNING; the deadline (not a count of polls, which a loaded machine spends in seconds) only bounds a hang. */
async function finished(statusUrl: string, deadlineMs = 120_000) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const r = await call('GET', statusUrl);
    if (r.json?.status !== 'RUNNING') return r.json!;
    if (Date.now() > deadline) throw new Error(`execution ${statusUrl} did not finish within ${deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'serve-'));
  await writeFile(
    join(home, 'workspaces.json'),
    JSON.stringify({
      workspaces: {
        ws1: { runtime: 'claude-code' },
        ext: { runtime: 'external' },
        sleepy: { runtime: 'hermes', state: 'stopped' },
        ...Object.fromEntries(FLEET.map((id) => [id, { runtime: 'claude-code' }])),
      },
    }),
  );
  server = await startServer({ home, token: TOKEN, port: 0, retryDelayMs: 5 });
});
afterAll(async () => {
  await server?.close();
  await rm(home, { recursive: true, force: true });
});

describe('pluginctl serve', () => {
  it('refuses every route without the bearer token (401)', async () => {
    for (const [method, path] of [['GET', '/workspaces/ws1/plugins'], ['POST', '/workspaces/ws1/plugins'], ['GET', '/openapi.json'], ['GET', '/executions/install.x'], ['POST', '/rollouts'], ['GET', '/rollouts/r1']]) {
      const res = await fetch(`${server.url}${path}`, { method });
      expect(res.status, path).toBe(401);
      const wrong = await fetch(`${server.url}${path}`, { method, headers: { authorization: 'Bearer nope' } });
      expect(wrong.status, path).toBe(401);
    }
  });

  it('installs, lists, downloads, uninstalls and rolls back, with execution status', async () => {
    const started = await call('POST', '/workspaces/ws1/plugins', { source: 'local://hello-skills@1.0.0' });
    expect(started.status).toBe(202);
    expect(started.json).toMatchObject({ installId: expect.stringMatching(/^install\.ws1-hello-skills-/), statusUrl: expect.stringMatching(/^\/executions\//) });
    const done = await finished(String(started.json!.statusUrl));
    expect(done.status).toBe('SUCCEEDED');
    expect((done.steps as { name: string }[]).map((s) => s.name)).toEqual(['Prepare', 'AcquireLock', 'StageOnHost', 'SwapIntoPlace', 'SnapshotLive', 'VerifyLive', 'WriteMarker', 'ReleaseLock', 'NotifyInstalled', 'Installed']);

    const v2 = await call('POST', '/workspaces/ws1/plugins', { source: 'local://hello-skills@1.1.0' });
    expect((await finished(String(v2.json!.statusUrl))).status).toBe('SUCCEEDED');

    const listed = await call('GET', '/workspaces/ws1/plugins');
    expect(listed.status).toBe(200);
    expect(listed.json).toMatchObject({ workspace: 'ws1', degraded: false, plugins: [{ name: 'hello-skills', version: '1.1.0', complete: true }] });
    const sha = (listed.json!.plugins as { sha256: string }[])[0]!.sha256;

    const dl = await call('GET', '/workspaces/ws1/plugins/hello-skills/download');
    expect(dl.status).toBe(302);
    const location = dl.headers.get('location')!;
    const tarball = Buffer.from(await (await fetch(location)).arrayBuffer());
    expect(createHash('sha256').update(tarball).digest('hex')).toBe(sha);
    // The link's signature is its credential: tampering with it is refused.
    const tampered = location.replace(/signature=(.)/, (_m, c: string) => `signature=${c === '0' ? '1' : '0'}`);
    expect(tampered).not.toBe(location);
    expect((await fetch(tampered)).status).toBe(403);

    const rolled = await call('POST', '/workspaces/ws1/plugins/hello-skills/rollback');
    expect(rolled.status).toBe(202);
    expect((await finished(String(rolled.json!.statusUrl))).status).toBe('SUCCEEDED');
    expect((await call('GET', '/workspaces/ws1/plugins')).json).toMatchObject({ plugins: [{ name: 'hello-skills', version: '1.0.0' }] });

    const removed = await call('DELETE', '/workspaces/ws1/plugins/hello-skills');
    expect(removed.status).toBe(202);
    expect((await finished(String(removed.json!.statusUrl))).status).toBe('SUCCEEDED');
    expect((await call('GET', '/workspaces/ws1/plugins')).json).toMatchObject({ plugins: [] });
    expect((await call('DELETE', '/workspaces/ws1/plugins/hello-skills')).status).toBe(404);

    // Uninstall can be rolled back.
    const back = await call('POST', '/workspaces/ws1/plugins/hello-skills/rollback');
    expect((await finished(String(back.json!.statusUrl))).status).toBe('SUCCEEDED');
    expect((await call('GET', '/workspaces/ws1/plugins')).json).toMatchObject({ plugins: [{ name: 'hello-skills', version: '1.0.0' }] });
    const events = (await readFile(join(home, 'events.jsonl'), 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { detailType: string }).detailType);
    expect(events).toEqual(['Plugin Installed', 'Plugin Installed', 'Plugin Rolled Back', 'Plugin Uninstalled', 'Plugin Rolled Back']);
  });

  it('answers 422 with the download hint for an external workspace', async () => {
    for (const [method, path, body] of [['POST', '/workspaces/ext/plugins', { source: 'local://hello-skills' }], ['DELETE', '/workspaces/ext/plugins/hello-skills', undefined]] as const) {
      const r = await call(method, path, body);
      expect(r.status).toBe(422);
      expect(r.json).toMatchObject({ error: { code: 'ExternalRuntime', hint: expect.stringMatching(/^publish the plugin to the catalog \(pluginctl publish\), then the workspace pulls it: GET \/workspaces\/\{id\}\/plugins\/\{name\}\/download/) } });
    }
  });

  it('gives one execution for the same Idempotency-Key', async () => {
    const first = await call('POST', '/workspaces/ws1/plugins', { source: 'local://hello-skills@1.1.0' }, { 'idempotency-key': 'req-42' });
    const second = await call('POST', '/workspaces/ws1/plugins', { source: 'local://hello-skills@1.1.0' }, { 'idempotency-key': 'req-42' });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.json!.installId).toBe(first.json!.installId);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    await finished(String(first.json!.statusUrl));
    const other = await call('POST', '/workspaces/ws1/plugins', { source: 'local://hello-skills@1.1.0' }, { 'idempotency-key': 'req-43' });
    expect(other.json!.installId).not.toBe(first.json!.installId);
    await finished(String(other.json!.statusUrl));
  });

  it('answers the rest of the status table', async () => {
    expect((await call('POST', '/workspaces/nope/plugins', { source: 'local://hello-skills' })).status).toBe(404);
    expect((await call('POST', '/workspaces/sleepy/plugins', { source: 'local://hello-skills' })).status).toBe(409);
    expect((await call('POST', '/workspaces/ws1/plugins', 'not json')).status).toBe(400);
    expect((await call('POST', '/workspaces/ws1/plugins', { source: 'x', extra: 1 })).status).toBe(400);
    expect((await call('POST', '/workspaces/ws1/plugins', { source: 'x'.repeat(70 * 1024) })).status).toBe(413);
    const unpinned = await call('POST', '/workspaces/ws1/plugins', { source: 'https://example.com/p.tar.gz' });
    expect(unpinned.status).toBe(422);
    expect(unpinned.json).toMatchObject({ error: { code: 'UnpinnedSource' } });
    expect((await call('POST', '/workspaces/ws1/plugins/never-installed/rollback')).status).toBe(409);
    expect((await call('GET', '/workspaces/ws1/plugins/never-installed/download')).status).toBe(404);
    expect((await call('GET', '/workspaces/..%2Fetc/plugins')).status).toBe(400);
    expect((await call('GET', '/executions/install.nope')).status).toBe(404);
    const put = await call('PUT', '/workspaces/ws1/plugins');
    expect(put).toMatchObject({ status: 405, json: { error: { code: 'MethodNotAllowed', hint: 'this route answers POST, GET (see GET /openapi.json)' } } });
  });

  it('serves the OpenAPI document generated from the schemas, equal to docs/openapi.json', async () => {
    const r = await call('GET', '/openapi.json');
    expect(r.status).toBe(200);
    expect(r.json).toEqual(openApiDocument());
    const committed = JSON.parse(await readFile(new URL('../../docs/openapi.json', import.meta.url), 'utf8')) as unknown;
    expect(committed, 'docs/openapi.json is stale: run npm run openapi').toEqual(openApiDocument());
  });

  it('rolls a plugin out to a fleet: v1 everywhere, then v2, GET /rollouts/{id} reporting it while it runs and after', async () => {
    const body = (version: string) => ({ source: `local://hello-skills@${version}`, workspaces: FLEET, maxConcurrency: 2, maxErrors: 0, canary: 1, rollbackOnHalt: false });
    const report = async (statusUrl: string) => {
      const r = await call('GET', statusUrl);
      expect(r.status).toBe(200);
      return RolloutStatusBody.parse(r.json);
    };

    const v1 = await call('POST', '/rollouts', body('1.0.0'));
    expect(v1.status).toBe(202);
    expect(v1.json).toMatchObject({ rolloutId: expect.stringMatching(/^rollout-/), executionArn: expect.stringMatching(/:execution:plugin-rollout:/), statusUrl: `/rollouts/${String(v1.json!.rolloutId)}` });
    await server.engine.idle();
    expect(await report(String(v1.json!.statusUrl))).toMatchObject({ status: 'succeeded', version: '1.0.0', counts: { targets: 5, succeeded: 5, failed: 0, skipped: 0, notStarted: 0, rolledBack: 0 } });

    // f3 is held at its stage step (it is in the second wave, with f2): the rollout is in flight.
    const hosts = server.deps.hosts;
    const gate = gateHostOp(hosts, 'f3', 'stage');
    server.deps.hosts = gate.resolver;
    try {
      const v2 = await call('POST', '/rollouts', body('1.1.0'), { 'idempotency-key': 'fleet-v2' });
      expect(v2.status).toBe(202);
      const statusUrl = String(v2.json!.statusUrl);
      await gate.entered;
      const running = await report(statusUrl);
      expect(running).toMatchObject({ status: 'running', rollout: v2.json!.rolloutId, plugin: 'hello-skills', version: '1.1.0' });
      expect(running.workspaces.find((w) => w.workspace === 'f1')?.status).toBe('succeeded');
      expect(running.workspaces.find((w) => w.workspace === 'f3')?.status).toBe('in-flight');
      expect(running.workspaces.filter((w) => ['f4', 'f5'].includes(w.workspace)).map((w) => w.status)).toEqual(['not-started', 'not-started']);
      expect(running.counts!.notStarted).toBe(2);
      // Another rollout of the same plugin meanwhile: refused, naming the one that holds it.
      const busy = await call('POST', '/rollouts', body('1.0.0'));
      expect(busy.status).toBe(409);
      expect(busy.json).toMatchObject({ error: { code: 'RolloutBusy', message: expect.stringContaining(String(v2.json!.rolloutId)) } });
      // The retry of the first request (same key, same body) is the same rollout.
      const again = await call('POST', '/rollouts', body('1.1.0'), { 'idempotency-key': 'fleet-v2' });
      expect(again.json).toEqual(v2.json);
      expect(again.headers.get('idempotent-replayed')).toBe('true');

      gate.open();
      await server.engine.idle();
      const done = await report(statusUrl);
      expect(done).toMatchObject({ status: 'succeeded', version: '1.1.0', counts: { targets: 5, succeeded: 5, failed: 0, skipped: 0, notStarted: 0, rolledBack: 0 } });
      expect(Object.keys(done)).toEqual(['status', 'rollout', 'plugin', 'version', 'sha256', 'counts', 'workspaces']);
      expect(done.workspaces.map((w) => [w.workspace, w.status])).toEqual(FLEET.map((id) => [id, 'succeeded']));
    } finally {
      gate.open();
      server.deps.hosts = hosts;
    }
    for (const id of FLEET) {
      expect((await call('GET', `/workspaces/${id}/plugins`)).json, id).toMatchObject({ plugins: [{ name: 'hello-skills', version: '1.1.0', complete: true }] });
    }

    // The same version again: every workspace is already there, so each is skipped.
    const rerun = await call('POST', '/rollouts', body('1.1.0'));
    await server.engine.idle();
    expect(await report(String(rerun.json!.statusUrl))).toMatchObject({ status: 'succeeded', counts: { targets: 5, succeeded: 0, skipped: 5 } });

    // Refused input over HTTP too, and an unknown rollout.
    const unknown = await call('POST', '/rollouts', { ...body('1.1.0'), workspaces: ['f1', 'nobody'] });
    expect(unknown).toMatchObject({ status: 422, json: { error: { code: 'WorkspaceNotFound' } } });
    expect((await call('POST', '/rollouts', { ...body('1.1.0'), selector: {} })).status).toBe(400);
    // 10,000 targets of 64-character ids (~680 KB of JSON) are a rollout body, not a 413: the
    // function looks them up (all unknown here); 1 MiB and more is refused before parsing.
    const many = Array.from({ length: 10_000 }, (_, i) => `w${String(i).padStart(63, '0')}`);
    const big = await call('POST', '/rollouts', { ...body('1.1.0'), workspaces: many });
    expect(big).toMatchObject({ status: 422, json: { error: { code: 'WorkspaceNotFound' } } });
    expect(Buffer.byteLength(JSON.stringify({ ...body('1.1.0'), workspaces: many }))).toBeGreaterThan(64 * 1024);
    const tooBig = await call('POST', '/rollouts', { ...body('1.1.0'), workspaces: [...many, ...many.map((w) => `${w.slice(0, -1)}x`)] });
    expect(tooBig).toMatchObject({ status: 413, json: { error: { code: 'InvalidInput' } } });
    expect((await call('GET', '/rollouts/rollout-nobody')).status).toBe(404);
    expect((await call('GET', '/rollouts/not%2Fan-id')).status).toBe(400);
    // Three rollouts of 5 workspaces on a busy 2-core machine: more room than the default 60 s.
  }, 240_000);
});
