/**
 * Local stand-in of the EC2 Instance Connect API (awsJson1_1 over HTTP on 127.0.0.1), for the real
 * `EC2InstanceConnectClient`. It serves `SendSSHPublicKey`: verifies the request's SigV4
 * signature (service `ec2-instance-connect`, the known temporary test credentials, session token
 * required: test/servers/sigv4.ts), checks
 * InstanceId/InstanceOSUser/SSHPublicKey, and stores the key as
 * `<keyStoreDir>/<user>/<expiresAtMs>-<n>.pub`, which the test sshd's AuthorizedKeysCommand
 * serves until it expires (60 s, like EIC, or `keyTtlSeconds`).
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { listenOnLoopback } from './loopback.ts';
import { TEST_CREDENTIALS, TEST_REGION, verifyHeaderSignature, type TestCredentials } from './sigv4.ts';

export { TEST_CREDENTIALS, TEST_REGION } from './sigv4.ts';
const TARGET_PREFIX = 'AWSEC2InstanceConnectService.';
const KEY_LINE = /^(ssh-ed25519|ssh-rsa) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$/;

export interface EicApiOptions {
  keyStoreDir: string;
  instances: string[];
  /** How long a pushed key is served (default 60, as EIC). */
  keyTtlSeconds?: number;
  credentials?: TestCredentials;
  region?: string;
}

export interface InjectedFailure {
  status: number;
  type: string;
  message?: string;
}

export interface EicApiHandle {
  endpoint: string;
  /** Keys stored (successful SendSSHPublicKey calls). */
  readonly pushes: number;
  /** Requests answered with an error. */
  readonly errors: number;
  /** Hold the next successful answer(s) for `ms` after the key was stored (lets a key expire in transit). */
  delayNextResponse(ms: number, count?: number): void;
  /**
   * Store the next key(s) already expired: the answer is a success, but sshd will not accept the
   * key (a key that expired in transit, deterministically, however loaded the machine is).
   */
  expireNextKeys(count?: number): void;
  /** Answer the next request(s) with these errors, in order. */
  failNext(...failures: InjectedFailure[]): void;
  stop(): Promise<void>;
}

export async function startEicApi(options: EicApiOptions): Promise<EicApiHandle> {
  const credentials = options.credentials ?? TEST_CREDENTIALS;
  const region = options.region ?? TEST_REGION;
  const ttlMs = (options.keyTtlSeconds ?? 60) * 1000;
  const instances = new Set(options.instances);
  let pushes = 0;
  let errors = 0;
  let sequence = 0;
  const delays: number[] = [];
  let expireNext = 0;
  const failures: InjectedFailure[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const reply = (res: ServerResponse, status: number, body: unknown): void => {
    if (status >= 400) errors++;
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': randomUUID(),
    });
    res.end(text);
  };
  const error = (res: ServerResponse, status: number, type: string, message: string): void => reply(res, status, { __type: type, message });

  const verifySignature = (req: IncomingMessage, body: string): Promise<string | undefined> =>
    verifyHeaderSignature(req, body, { service: 'ec2-instance-connect', region, credentials });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > 64 * 1024) {
        error(res, 413, 'InvalidArgsException', 'request too large');
        return;
      }
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.method !== 'POST' || (req.url ?? '/').split('?')[0] !== '/') {
      error(res, 404, 'UnknownOperationException', `${req.method} ${req.url} is not served`);
      return;
    }
    const problem = await verifySignature(req, body);
    if (problem) {
      error(res, 403, problem.startsWith('unknown access key') ? 'UnrecognizedClientException' : 'InvalidSignatureException', problem);
      return;
    }
    const injected = failures.shift();
    if (injected) {
      error(res, injected.status, injected.type, injected.message ?? `injected ${injected.type}`);
      return;
    }
    const target = String(req.headers['x-amz-target'] ?? '');
    if (target !== `${TARGET_PREFIX}SendSSHPublicKey`) {
      error(res, 400, 'UnknownOperationException', `operation ${target} is not served by this stand-in`);
      return;
    }
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(body) as Record<string, unknown>;
    } catch {
      error(res, 400, 'SerializationException', 'body is not JSON');
      return;
    }
    const { InstanceId, InstanceOSUser, SSHPublicKey } = input;
    if (typeof InstanceId !== 'string' || typeof InstanceOSUser !== 'string' || typeof SSHPublicKey !== 'string') {
      error(res, 400, 'InvalidArgsException', 'InstanceId, InstanceOSUser and SSHPublicKey are required');
      return;
    }
    if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(InstanceOSUser)) {
      error(res, 400, 'InvalidArgsException', `invalid InstanceOSUser ${JSON.stringify(InstanceOSUser)}`);
      return;
    }
    if (!KEY_LINE.test(SSHPublicKey.trim())) {
      error(res, 400, 'InvalidArgsException', 'SSHPublicKey must be an OpenSSH ssh-ed25519 or ssh-rsa public key');
      return;
    }
    if (!instances.has(InstanceId)) {
      error(res, 400, 'EC2InstanceNotFoundException', `Instance ${InstanceId} not found`);
      return;
    }
    const userDir = join(options.keyStoreDir, InstanceOSUser);
    // Not recursive: a key store that is gone (its sshd stopped) is not silently recreated.
    await mkdir(userDir, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    await chmod(userDir, 0o755);
    const expired = expireNext > 0;
    if (expired) expireNext--;
    const file = join(userDir, `${expired ? Date.now() - 1 : Date.now() + ttlMs}-${++sequence}.pub`);
    await writeFile(file, `${SSHPublicKey.trim()}\n`, { mode: 0o644 });
    pushes++;
    const delay = delays.shift();
    if (delay) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          resolve();
        }, delay);
        timers.add(timer);
      });
    }
    reply(res, 200, { RequestId: randomUUID(), Success: true });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) error(res, 500, 'ServiceException', err instanceof Error ? err.message : String(err));
      else res.destroy();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listenOnLoopback(server);

  return {
    endpoint: `http://127.0.0.1:${port}`,
    get pushes() {
      return pushes;
    },
    get errors() {
      return errors;
    },
    delayNextResponse(ms: number, count = 1) {
      for (let i = 0; i < count; i++) delays.push(ms);
    },
    expireNextKeys(count = 1) {
      expireNext += count;
    },
    failNext(...next: InjectedFailure[]) {
      failures.push(...next);
    },
    async stop() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
