/**
 * The HTTP API against its document: every route and every status `pluginctl serve` can answer
 * here goes through Prism (a contract-checking proxy, `prism proxy docs/openapi.json`) in front of
 * a real `pluginctl serve`; Prism checks each request and each answer against docs/openapi.json
 * and reports what does not match in the `sl-violations` header, which must hold no response
 * violation for any case (and no request violation for a request the document allows).
 *
 * Prism runs without `--errors`: with it, Prism answers a request the document refuses itself
 * (422 problem+json) instead of forwarding it, so the server's own 400/413 answers to such requests
 * would never be checked. Without it Prism forwards everything and still reports request and
 * response violations in the header.
 *
 * Answers Prism cannot see are checked against the document with ajv
 * (test/helpers/openapi-response.ts): the 302 of download (Prism's forwarder follows redirects),
 * 405 and an unknown path (Prism answers those itself, from the document), and the 413 of a
 * 1 MiB rollout body (serve answers and closes before Prism has written it all). 503 and 500 come
 * from the workspace directory, the rollout store and the workflow engine failing (their methods
 * swapped for the case).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../../lambdas/core/api/openapi.ts';
import { PluginError } from '../../lambdas/core/errors.ts';
import { startServer, type RunningServer } from '../../bin/cli/serve.ts';
import { gateHostOp } from '../helpers/host-gate.ts';
import { documentValidator } from '../helpers/openapi-response.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The document under test (docs/openapi.json; API_CONTRACT_DOCUMENT names another, e.g. an older one to see this test fail on it). */
const DOCUMENT = process.env.API_CONTRACT_DOCUMENT ?? 'docs/openapi.json';
const TOKEN = 'contract-token-0123456789abcdef01234567';
const PRISM_START_MS = 180_000;

let home: string;
let server: RunningServer;
let prism: ChildProcess;
let prismUrl: string;
let prismOutput = '';
/** Checks an answer against DOCUMENT with ajv, for what Prism cannot see. */
let validate: ReturnType<typeof documentValidator>;

interface Violation {
  location: string[];
  severity: string;
  message: string;
}

interface Sent {
  status: number;
  headers: Headers;
  json: Record<string, unknown> | undefined;
  violations: Violation[];
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** One request through Prism; `violations` is what Prism found wrong with it or its answer. */
async function viaPrism(method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; token?: string } = {}): Promise<Sent> {
  const res = await fetch(`${prismUrl}${path}`, {
    method,
    redirect: 'manual',
    headers: { authorization: `Bearer ${options.token ?? TOKEN}`, ...(options.body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  const header = res.headers.get('sl-violations');
  return { status: res.status, headers: res.headers, json, violations: header ? (JSON.parse(header) as Violation[]) : [] };
}

const responseViolations = (sent: Sent) => sent.violations.filter((v) => v.location[0] === 'response').map((v) => v.message);
const requestViolations = (sent: Sent) => sent.violations.filter((v) => v.location[0] === 'request').map((v) => `${v.location.join('.')}: ${v.message}`);

/** Through Prism: the expected status and code, and nothing the document contradicts. */
async function expectConforming(method: string, path: string, status: number, options: Parameters<typeof viaPrism>[2] & { code?: string; invalidRequest?: boolean } = {}): Promise<Sent> {
  const sent = await viaPrism(method, path, options);
  const label = `${method} ${path} → ${sent.status} ${JSON.stringify(sent.json)}`;
  expect(sent.status, label).toBe(status);
  if (options.code) expect((sent.json?.error as { code?: string } | undefined)?.code, label).toBe(options.code);
  expect(responseViolations(sent), label).toEqual([]);
  // A request the document refuses must be refused by the document too (and answered 4xx by the server).
  if (options.invalidRequest) expect(requestViolations(sent), label).not.toEqual([]);
  else expect(requestViolations(sent), label).toEqual([]);
  return sent;
}

/** Polls (through Prism, each answer checked) until the execution is no longer RUNNING; the deadline only bounds a hang. */
async function finished(statusUrl: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const r = await expectConforming('GET', statusUrl, 200);
    if (r.json!.status !== 'RUNNING') return r.json!;
    if (Date.now() > deadline) throw new Error(`${statusUrl} still RUNNING`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Directly to the server, bypassing Prism (for what Prism cannot forward). */
async function direct(method: string, path: string, body?: unknown): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    redirect: 'manual',
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
}

const rollout = (version: string, workspaces: string[]) => ({ source: `local://hello-skills@${version}`, workspaces, maxConcurrency: 1, maxErrors: 0, canary: 1, rollbackOnHalt: false });

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'api-contract-'));
  await writeFile(
    join(home, 'workspaces.json'),
    JSON.stringify({
      workspaces: {
        ws1: { runtime: 'claude-code' },
        ws2: { runtime: 'hermes' },
        ext: { runtime: 'external' },
        sleepy: { runtime: 'hermes', state: 'stopped' },
        f1: { runtime: 'claude-code' },
        f2: { runtime: 'claude-code' },
      },
    }),
  );
  validate = documentValidator(JSON.parse(await readFile(resolve(ROOT, DOCUMENT), 'utf8')) as Record<string, unknown>);
  server = await startServer({ home, token: TOKEN, port: 0, retryDelayMs: 5 });
  const port = await freePort();
  prismUrl = `http://127.0.0.1:${port}`;
  // Loopback only, and no telemetry (Prism's dependencies phone home unless told not to).
  prism = spawn(join(ROOT, 'node_modules/.bin/prism'), ['proxy', DOCUMENT, server.url, '-p', String(port), '-h', '127.0.0.1'], {
    cwd: ROOT,
    env: { ...process.env, SCARF_ANALYTICS: 'false', DO_NOT_TRACK: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Prism did not start within ${PRISM_START_MS} ms:\n${prismOutput}`)), PRISM_START_MS);
    const onData = (chunk: Buffer) => {
      prismOutput += chunk.toString();
      if (prismOutput.includes('Prism is listening on')) {
        clearTimeout(timer);
        resolve();
      }
    };
    prism.stdout!.on('data', onData);
    prism.stderr!.on('data', onData);
    prism.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Prism exited (${code}) before listening:\n${prismOutput}`));
    });
  });
}, PRISM_START_MS + 60_000);

afterAll(async () => {
  if (prism && prism.exitCode === null) {
    const exited = new Promise((resolve) => prism.once('exit', resolve));
    prism.kill('SIGTERM');
    await exited;
  }
  await server?.close();
  await rm(home, { recursive: true, force: true });
});

describe('the API answers as docs/openapi.json says (Prism in front of pluginctl serve)', () => {
  it('the document Prism checks against is the one the code generates', async () => {
    const served = await viaPrism('GET', '/workspaces/ws1/plugins');
    expect(served.status).toBe(200);
    // Not a Prism-checked route (GET /openapi.json is not an operation): read it from the server.
    expect(JSON.parse((await direct('GET', '/openapi.json')).body)).toEqual(openApiDocument());
  });

  it('POST /workspaces/{id}/plugins: 202 (new and replayed), 400, 401, 404, 409, 413, 422', async () => {
    const first = await expectConforming('POST', '/workspaces/ws1/plugins', 202, { body: { source: 'local://hello-skills@1.0.0' }, headers: { 'idempotency-key': 'contract-1' } });
    expect(first.headers.get('location')).toBe(first.json!.statusUrl);
    expect((await finished(String(first.json!.statusUrl))).status).toBe('SUCCEEDED');
    const replay = await expectConforming('POST', '/workspaces/ws1/plugins', 202, { body: { source: 'local://hello-skills@1.0.0' }, headers: { 'idempotency-key': 'contract-1' } });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    await expectConforming('POST', '/workspaces/ws1/plugins', 422, { body: { source: 'local://hello-skills@1.1.0' }, headers: { 'idempotency-key': 'contract-1' }, code: 'IdempotencyKeyReused' });
    await expectConforming('POST', '/workspaces/ws1/plugins', 400, { body: { source: 'local://hello-skills@1.0.0', runtime: 'hermes' }, code: 'InvalidInput' });
    await expectConforming('POST', '/workspaces/ws1/plugins', 400, { body: { source: 'local://hello-skills@1.0.0', extra: 1 }, code: 'InvalidInput', invalidRequest: true });
    await expectConforming('POST', '/workspaces/bad%20id!/plugins', 400, { body: { source: 'local://hello-skills@1.0.0' }, code: 'InvalidInput', invalidRequest: true });
    await expectConforming('POST', '/workspaces/ws1/plugins', 401, { body: { source: 'local://hello-skills@1.0.0' }, token: 'wrong-token', code: 'Unauthorized' });
    await expectConforming('POST', '/workspaces/nope/plugins', 404, { body: { source: 'local://hello-skills@1.0.0' }, code: 'WorkspaceNotFound' });
    await expectConforming('POST', '/workspaces/sleepy/plugins', 409, { body: { source: 'local://hello-skills@1.0.0' }, code: 'WorkspaceNotRunning' });
    await expectConforming('POST', '/workspaces/ws1/plugins', 413, { body: { source: 'local://hello-skills@1.0.0', padding: 'x'.repeat(70_000) }, code: 'InvalidInput', invalidRequest: true });
    await expectConforming('POST', '/workspaces/ext/plugins', 422, { body: { source: 'local://hello-skills@1.0.0' }, code: 'ExternalRuntime' });
    await expectConforming('POST', '/workspaces/ws1/plugins', 422, { body: { source: 'https://plugins.example.com/hello.tar.gz' }, code: 'UnpinnedSource' });
  }, 600_000);

  it('POST /workspaces/{id}/plugins: 409 while the plugin is busy', async () => {
    const hosts = server.deps.hosts;
    const gate = gateHostOp(hosts, 'ws2', 'stage');
    server.deps.hosts = gate.resolver;
    try {
      const held = await expectConforming('POST', '/workspaces/ws2/plugins', 202, { body: { source: 'local://hello-skills@1.0.0' } });
      await gate.entered;
      await expectConforming('POST', '/workspaces/ws2/plugins', 409, { body: { source: 'local://hello-skills@1.1.0' }, code: 'LockBusy' });
      await expectConforming('DELETE', '/workspaces/ws2/plugins/hello-skills', 409, { code: 'LockBusy' });
      gate.open();
      expect((await finished(String(held.json!.statusUrl))).status).toBe('SUCCEEDED');
    } finally {
      gate.open();
      server.deps.hosts = hosts;
    }
  }, 600_000);

  it('GET /workspaces/{id}/plugins: 200 (and degraded), 400, 401, 404', async () => {
    const listed = await expectConforming('GET', '/workspaces/ws1/plugins', 200);
    expect(listed.json).toMatchObject({ workspace: 'ws1', degraded: false });
    expect((await expectConforming('GET', '/workspaces/ext/plugins', 200)).json).toMatchObject({ degraded: true });
    await expectConforming('GET', '/workspaces/bad%20id!/plugins', 400, { code: 'InvalidInput', invalidRequest: true });
    await expectConforming('GET', '/workspaces/ws1/plugins', 401, { token: 'wrong-token', code: 'Unauthorized' });
    await expectConforming('GET', '/workspaces/nope/plugins', 404, { code: 'WorkspaceNotFound' });
  }, 300_000);

  it('GET …/{name}/download: 302 (checked directly: Prism follows redirects), 400, 401, 404, 409', async () => {
    const redirect = await direct('GET', '/workspaces/ws1/plugins/hello-skills/download');
    expect(redirect.status).toBe(302);
    expect(validate('GET', '/workspaces/{id}/plugins/{name}/download', { status: redirect.status, headers: redirect.headers, body: redirect.body || null })).toEqual([]);
    await expectConforming('GET', '/workspaces/ws1/plugins/bad%20name!/download', 400, { code: 'InvalidInput', invalidRequest: true });
    await expectConforming('GET', '/workspaces/ws1/plugins/hello-skills/download', 401, { token: 'wrong-token', code: 'Unauthorized' });
    await expectConforming('GET', '/workspaces/ws1/plugins/absent/download', 404, { code: 'NotInstalled' });
    await expectConforming('GET', '/workspaces/nope/plugins/hello-skills/download', 404, { code: 'WorkspaceNotFound' });
    await expectConforming('GET', '/workspaces/sleepy/plugins/hello-skills/download', 409, { code: 'WorkspaceNotRunning' });
  }, 300_000);

  it('POST …/{name}/rollback and DELETE …/{name}: 202, 400, 401, 404, 409, 422', async () => {
    await expectConforming('POST', '/workspaces/ws1/plugins/hello-skills/rollback', 409, { code: 'NothingToRestore' });
    const v2 = await expectConforming('POST', '/workspaces/ws1/plugins', 202, { body: { source: 'local://hello-skills@1.1.0' } });
    expect((await finished(String(v2.json!.statusUrl))).status).toBe('SUCCEEDED');
    const rolled = await expectConforming('POST', '/workspaces/ws1/plugins/hello-skills/rollback', 202);
    expect((await finished(String(rolled.json!.statusUrl))).status).toBe('SUCCEEDED');
    await expectConforming('POST', '/workspaces/ws1/plugins/bad%20name!/rollback', 400, { code: 'InvalidInput', invalidRequest: true });
    await expectConforming('POST', '/workspaces/ws1/plugins/hello-skills/rollback', 401, { token: 'wrong-token', code: 'Unauthorized' });
    await expectConforming('POST', '/workspaces/nope/plugins/hello-skills/rollback', 404, { code: 'WorkspaceNotFound' });
    await expectConforming('POST', '/workspaces/sleepy/plugins/hello-skills/rollback', 409, { code: 'WorkspaceNotRunning' });
    await expectConforming('POST', '/workspaces/ext/plugins/hello-skills/rollback', 422, { code: 'ExternalRuntime' });

    const removed = await expectConforming('DELETE', '/workspaces/ws1/plugins/hello-skills', 202, { headers: { 'idempotency-key': 'contract-rm' } });
    expect((await finished(String(removed.json!.statusUrl))).status).toBe('SUCCEEDED');
    const replayed = await expectConforming('DELETE', '/workspaces/ws1/plugins/hello-skills', 202, { headers: { 'idempotency-key': 'contract-rm' } });
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
    await expectConforming('DELETE', '/workspaces/ws1/plugins/hello-skills', 404, { code: 'NotInstalled' });
    await expectConforming('DELETE', '/workspaces/nope/plugins/hello-skills', 404, { code: 'WorkspaceNotFound' });
    await expectConforming('DELETE', '/workspaces/ws1/plugins/bad%20name!', 400, { code: 'InvalidInput', invalidRequest: true });
    await expectConforming('DELETE', '/workspaces/ws1/plugins/hello-skills', 401, { token: 'wrong-token', code: 'Unauthorized' });
    await expectConforming('DELETE', '/workspaces/sleepy/plugins/hello-skills', 409, { code: 'WorkspaceNotRunning' });
    await expectConforming('DELETE', '/workspaces/ext/plugins/hello-skills', 422, { code: 'ExternalRuntime' });
  }, 600_000);

  it('GET /executions/{id}: 200, 401, 404', async () => {
    const started = await expectConforming('POST', '/workspaces/f1/plugins', 202, { body: { source: 'local://hello-skills@1.0.0' } });
    await finished(String(started.json!.statusUrl));
    await expectConforming('GET', String(started.json!.statusUrl), 401, { token: 'wrong-token', code: 'Unauthorized' });
    await expectConforming('GET', '/executions/install.nothing-here', 404, { code: 'NotFound' });
  }, 300_000);

  it('POST /rollouts and GET /rollouts/{id}: 202, 200, 400, 401, 404, 409, 413, 422', async () => {
    const hosts = server.deps.hosts;
    const gate = gateHostOp(hosts, 'f2', 'stage');
    server.deps.hosts = gate.resolver;
    let statusUrl: string;
    try {
      const started = await expectConforming('POST', '/rollouts', 202, { body: rollout('1.1.0', ['f1', 'f2']), headers: { 'idempotency-key': 'contract-rollout' } });
      statusUrl = String(started.json!.statusUrl);
      expect(started.headers.get('location')).toBe(statusUrl);
      await gate.entered;
      expect((await expectConforming('GET', statusUrl, 200)).json).toMatchObject({ status: 'running' });
      await expectConforming('POST', '/rollouts', 409, { body: rollout('1.0.0', ['f1']), code: 'RolloutBusy' });
      const replay = await expectConforming('POST', '/rollouts', 202, { body: rollout('1.1.0', ['f1', 'f2']), headers: { 'idempotency-key': 'contract-rollout' } });
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      await expectConforming('POST', '/rollouts', 422, { body: rollout('1.1.0', ['f1']), headers: { 'idempotency-key': 'contract-rollout' }, code: 'IdempotencyKeyReused' });
    } finally {
      gate.open();
      server.deps.hosts = hosts;
    }
    await server.engine.idle();
    expect((await expectConforming('GET', statusUrl, 200)).json).toMatchObject({ status: 'succeeded' });
    await expectConforming('POST', '/rollouts', 400, { body: { ...rollout('1.1.0', ['f1']), selector: {} }, code: 'InvalidInput', invalidRequest: true });
    await expectConforming('POST', '/rollouts', 400, { body: rollout('9.9.9', ['f1']), code: 'SourceNotFound' });
    await expectConforming('POST', '/rollouts', 401, { body: rollout('1.1.0', ['f1']), token: 'wrong-token', code: 'Unauthorized' });
    // Directly: serve answers 413 and closes while Prism may still be writing a body this large (EPIPE).
    const huge = await direct('POST', '/rollouts', rollout('1.1.0', Array.from({ length: 20_000 }, (_, i) => `w${i}-${'x'.repeat(50)}`)));
    expect(huge.status).toBe(413);
    expect(validate('POST', '/rollouts', { status: huge.status, headers: huge.headers, body: huge.body })).toEqual([]);
    await expectConforming('POST', '/rollouts', 422, { body: rollout('1.1.0', ['f1', 'ghost']), code: 'WorkspaceNotFound' });
    await expectConforming('GET', '/rollouts/rollout-nothing-here', 404, { code: 'NotFound' });
    await expectConforming('GET', '/rollouts/bad%20id!', 400, { code: 'InvalidInput', invalidRequest: true });
    await expectConforming('GET', statusUrl, 401, { token: 'wrong-token', code: 'Unauthorized' });
  }, 600_000);

  it('503 with Retry-After and 500 on every route, from a failing workspace directory, rollout store and workflow engine', async () => {
    // The ports' own methods are swapped (the product has no test hooks) and put back after.
    const { workspaces, rollouts } = server.deps;
    const original = { lookup: workspaces.lookup, list: workspaces.list, describe: server.engine.describe, get: rollouts.get };
    const failWith = (error: Error) => {
      const fail = () => Promise.reject(error);
      Object.assign(workspaces, { lookup: fail, list: fail });
      Object.assign(rollouts, { get: fail });
      server.engine.describe = fail;
    };
    const routes: [string, string, unknown][] = [
      ['POST', '/workspaces/ws1/plugins', { source: 'local://hello-skills@1.0.0' }],
      ['GET', '/workspaces/ws1/plugins', undefined],
      ['DELETE', '/workspaces/ws1/plugins/hello-skills', undefined],
      ['POST', '/workspaces/ws1/plugins/hello-skills/rollback', undefined],
      ['GET', '/workspaces/ws1/plugins/hello-skills/download', undefined],
      ['POST', '/rollouts', rollout('1.1.0', ['f1'])],
      ['GET', '/rollouts/rollout-nothing-here', undefined],
    ];
    try {
      failWith(new PluginError('HostUnreachable', 'the directory is unreachable', 'retry shortly'));
      for (const [method, path, body] of routes) {
        const sent = await expectConforming(method, path, 503, { body, code: 'HostUnreachable' });
        expect(sent.headers.get('retry-after'), `${method} ${path}`).toMatch(/^\d+$/);
      }
      failWith(new Error('a bug'));
      for (const [method, path, body] of [...routes, ['GET', '/executions/install.x', undefined] as [string, string, unknown]]) {
        await expectConforming(method, path, 500, { body, code: 'InternalError' });
      }
    } finally {
      Object.assign(workspaces, { lookup: original.lookup, list: original.list });
      Object.assign(rollouts, { get: original.get });
      server.engine.describe = original.describe;
    }
  }, 300_000);

  it('405 with Allow and an unknown path (Prism answers these itself; checked directly)', async () => {
    const put = await direct('PUT', '/workspaces/ws1/plugins');
    expect(put.status).toBe(405);
    expect(put.headers.allow).toBe('POST, GET');
    expect(validate('POST', '/workspaces/{id}/plugins', { status: put.status, headers: put.headers, body: put.body })).toEqual([]);
    expect(validate('GET', '/workspaces/{id}/plugins', { status: put.status, headers: put.headers, body: put.body })).toEqual([]);
    const get = await direct('GET', '/rollouts');
    expect(get.status).toBe(405);
    expect(validate('POST', '/rollouts', { status: get.status, headers: get.headers, body: get.body })).toEqual([]);
    // An unknown path is no operation: its 404 has the Error shape every error has.
    const nowhere = await direct('GET', '/nowhere');
    expect(nowhere.status).toBe(404);
    expect(validate('GET', '/executions/{id}', { status: nowhere.status, headers: nowhere.headers, body: nowhere.body })).toEqual([]);
  }, 120_000);
});
