/**
 * `GET /executions/{id}` from `pluginctl serve` counts attempts as the CLI does: a step killed
 * once and retried is `succeeded` with attempts 2, not `failed`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../bin/cli/serve.ts';
import { faultShims, type ShimDir } from '../helpers/fault-shims.ts';

const TOKEN = 'serve-step-attempts-token-0123456789abcdef';
let home: string;
let server: RunningServer;
let shims: ShimDir;
const savedEnv: Record<string, string | undefined> = {};

async function call(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return (await res.json()) as Record<string, unknown>;
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'serve-attempts-'));
  await writeFile(join(home, 'workspaces.json'), JSON.stringify({ workspaces: { ws1: { runtime: 'claude-code' } } }));
  // The host script runs with this process's environment: the shims make its first lock fail by SIGKILL.
  shims = faultShims({ op: 'lock', command: 'mv', mode: 'kill-once' });
  for (const [k, v] of Object.entries(shims.env)) {
    savedEnv[k] = process.env[k];
    process.env[k] = v;
  }
  server = await startServer({ home, token: TOKEN, port: 0, retryDelayMs: 0 });
});
afterAll(async () => {
  await server?.close();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  shims?.cleanup();
  await rm(home, { recursive: true, force: true });
});

it('a step retried and then succeeding is succeeded with its attempts in GET /executions/{id}', async () => {
  const started = await call('POST', '/workspaces/ws1/plugins', { source: 'local://hello-skills@1.0.0' });
  let done: Record<string, unknown> = {};
  for (let i = 0; i < 1200; i++) {
    done = await call('GET', String(started.statusUrl));
    if (done.status !== 'RUNNING') break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(done.status).toBe('SUCCEEDED');
  const steps = done.steps as { name: string; status: string; attempts: number }[];
  expect(steps.find((s) => s.name === 'AcquireLock')).toMatchObject({ status: 'succeeded', attempts: 2 });
  expect(steps.filter((s) => s.status !== 'succeeded')).toEqual([]);
}, 120_000);
