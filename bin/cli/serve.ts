/**
 * `pluginctl serve`: the control plane's HTTP API on localhost, over the same route code as the
 * api Lambda, backed by the in-process workflow engine and the embedded ports (fleet rollouts
 * included: POST /rollouts runs statemachine/rollout.asl.json in this process, as `pluginctl
 * rollout` does, its documents in the directory RolloutStore under $PLUGINCTL_HOME/artifacts).
 * Every route needs `Authorization: Bearer $PLUGINCTL_TOKEN`, except the signed download links it
 * hands out (their signature is the credential, as with S3 presigned URLs).
 * Filesystem path sources are served only under `sourcesDir` (`--sources-dir`), none without it:
 * the server must not read whatever path a caller names.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { localDeps, type LocalDeps, type LocalDepsOptions } from '../../lambdas/commons/local-deps.ts';
import { bodyLimit } from '../../lambdas/core/api/api-schemas.ts';
import { openApiDocument } from '../../lambdas/core/api/openapi.ts';
import { handleApiRequest } from '../../lambdas/core/api/plugin-api.ts';
import { DirectoryArtifactStore } from '../../lambdas/core/artifacts/directory-artifact-store.ts';
import { LocalWorkflowEngine } from '../../lambdas/core/workflow/local-workflow-engine.ts';
import { PluginError } from '../../lambdas/core/errors.ts';
import { assertServeToken } from './serve-token.ts';

export interface ServeOptions extends Omit<LocalDepsOptions, 'host' | 'sourcesDir' | 'cwd'> {
  /** The only directory filesystem path sources may be under (default: none are served). */
  sourcesDir?: string;
  token: string;
  port: number;
  /** Loopback only unless told otherwise. */
  hostname?: string;
  retryDelayMs?: number;
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  server: Server;
  deps: LocalDeps;
  engine: LocalWorkflowEngine;
  close(): Promise<void>;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string | null): void {
  res.writeHead(status, headers);
  res.end(body ?? undefined);
}

/**
 * How much of an oversized body is read and thrown away so that the client, still sending, gets
 * the 413 rather than a reset connection; past it the connection is cut.
 */
const DISCARD_MAX_BYTES = 8 * 1024 * 1024;

/** Buffers at most `limit` bytes, so an oversized body is detected without holding it. */
async function readBody(req: IncomingMessage, limit: number): Promise<{ text: string; tooLarge: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    // Leaving the loop destroys the request, and with it the socket the answer would go out on.
    if (size > limit + DISCARD_MAX_BYTES) return { text: '', tooLarge: true };
    if (size <= limit) chunks.push(chunk as Buffer);
  }
  return size > limit ? { text: '', tooLarge: true } : { text: Buffer.concat(chunks).toString('utf8'), tooLarge: false };
}

/**
 * How long an idle keep-alive connection stays open. With Node's default (5 s) serve closed
 * connections that a client starved by a burst left idle a little longer, while that client was
 * sending its next request on them: the request was lost (autocannon waited for an answer that
 * never came). Far above any client's idle limit (undici's fetch: 4 s), the client is the side
 * that closes an idle connection, as it should be (the same rule as behind a load balancer).
 */
const KEEP_ALIVE_MS = 65_000;

/** Why the server could not listen, as a refusal a person can act on (exit 2, one line and a hint). */
function listenError(err: NodeJS.ErrnoException, hostname: string, port: number): Error {
  if (err.code === 'EADDRINUSE') return new PluginError('InvalidInput', `port ${port} on ${hostname} is already in use`, 'stop what listens there, or pick another port: pluginctl serve --port <n> (0 picks a free one)');
  if (err.code === 'EACCES') return new PluginError('InvalidInput', `not allowed to listen on port ${port} on ${hostname}`, 'pick a port above 1023: pluginctl serve --port <n>');
  if (err.code === 'EADDRNOTAVAIL') return new PluginError('InvalidInput', `address ${hostname} is not available on this machine`, 'serve on 127.0.0.1');
  return err;
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  assertServeToken(options.token);
  const hostname = options.hostname ?? '127.0.0.1';
  const secret = randomBytes(32);
  const base = localDeps({ ...options, sourcesDir: options.sourcesDir ?? null });
  const server = createServer({ keepAliveTimeout: KEEP_ALIVE_MS });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, hostname, options.port)));
    server.listen(options.port, hostname, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${hostname}:${port}`;
  const artifacts = new DirectoryArtifactStore(base.artifacts instanceof DirectoryArtifactStore ? base.artifacts.dir : `${base.home}/artifacts`, { baseUrl: url, secret });
  const deps: LocalDeps = { ...base, artifacts };
  const engine = new LocalWorkflowEngine(deps, { retryDelayMs: options.retryDelayMs });
  const openapi = JSON.stringify(openApiDocument(), null, 2);

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const parsed = new URL(req.url ?? '/', url);
      const path = parsed.pathname;
      try {
        if (req.method === 'GET' && path.startsWith('/artifacts/')) {
          const key = path.slice(1);
          if (!/^artifacts\/sha256\/[0-9a-f]{64}\.tar\.gz$/.test(key) || !artifacts.verifyPresigned(key, parsed.searchParams.get('expires'), parsed.searchParams.get('signature'))) {
            send(res, 403, { 'content-type': 'application/json' }, JSON.stringify({ error: { code: 'Forbidden', message: 'invalid or expired download link', hint: 'ask GET /workspaces/{id}/plugins/{name}/download for a new one' } }));
            return;
          }
          res.writeHead(200, { 'content-type': 'application/gzip', 'cache-control': 'no-store' });
          createReadStream(artifacts.pathOf(key)).on('error', () => res.destroy()).pipe(res);
          return;
        }
        if (!tokenMatches(req.headers.authorization, options.token)) {
          send(res, 401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }, JSON.stringify({ error: { code: 'Unauthorized', message: 'missing or wrong bearer token', hint: 'send Authorization: Bearer $PLUGINCTL_TOKEN' } }));
          return;
        }
        if (req.method === 'GET' && path === '/openapi.json') {
          send(res, 200, { 'content-type': 'application/json' }, openapi);
          return;
        }
        const limit = bodyLimit(req.method ?? 'GET', path);
        const body = await readBody(req, limit);
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(',') : v]));
        const response = body.tooLarge
          ? { status: 413, headers: { 'content-type': 'application/json', connection: 'close' }, body: JSON.stringify({ error: { code: 'InvalidInput', message: `request body is larger than ${limit} bytes`, hint: 'send only the fields of the route\'s request body (GET /openapi.json)' } }) }
          : await handleApiRequest({ method: req.method ?? 'GET', path, query: Object.fromEntries(parsed.searchParams), headers, body: body.text || null }, { steps: deps, engine });
        options.log?.(`${req.method} ${path} → ${response.status}`);
        send(res, response.status, response.headers, response.body);
      } catch (err) {
        options.log?.(`${req.method} ${path} → 500 ${err instanceof Error ? err.stack : String(err)}`);
        if (!res.headersSent) send(res, 500, { 'content-type': 'application/json' }, JSON.stringify({ error: { code: 'InternalError', message: 'internal error', hint: 'see the server log' } }));
      }
    })();
  });

  return {
    url,
    server,
    deps,
    engine,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await engine.idle();
    },
  };
}
