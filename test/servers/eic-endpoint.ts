/**
 * Local stand-in of an EC2 Instance Connect Endpoint: a WebSocket server on 127.0.0.1 that
 * accepts `GET /openTunnel?…` only with a valid SigV4 presigned query (recomputed with the known
 * test credentials over the same canonical request, `host` being the Host header the client
 * sent), `X-Amz-Expires` ≤ 60, a fresh `X-Amz-Date`, `remotePort=22` and an allowed
 * `privateIpAddress`, and answers 403 otherwise. An accepted tunnel pipes binary frames to and
 * from a TCP connection to the test sshd, for at most `maxTunnelDuration` seconds.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import { listenOnLoopback } from './loopback.ts';

export interface EicEndpointOptions {
  /** Where remotePort 22 of every allowed private IP leads. */
  sshPort: number;
  credentials: { accessKeyId: string; secretAccessKey: string };
  region: string;
  /** Default ['127.0.0.1']. */
  allowedIps?: string[];
  /** When set, the only accepted instanceConnectEndpointId. */
  endpointId?: string;
}

export interface EicEndpointHandle {
  /** `ws://127.0.0.1:<port>`: the `url` override for the adapter. */
  url: string;
  /** Tunnels opened (signature and conditions accepted). */
  readonly tunnels: number;
  /** Requests refused (403/400). */
  readonly rejected: number;
  /** Why the last request was refused. */
  readonly lastRejection: string | undefined;
  /** Drops every open tunnel (the endpoint going away mid-transfer). */
  dropAll(): number;
  stop(): Promise<void>;
}

const MAX_EXPIRES = 60;
const CLOCK_SKEW_MS = 5 * 60_000;

function parseAmzDate(value: string | undefined): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  if (!m) return undefined;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

export async function startEicEndpoint(options: EicEndpointOptions): Promise<EicEndpointHandle> {
  const allowed = new Set(options.allowedIps ?? ['127.0.0.1']);
  const signer = new SignatureV4({ service: 'ec2-instance-connect', region: options.region, credentials: options.credentials, sha256: Sha256 });
  let tunnels = 0;
  let rejected = 0;
  let lastRejection: string | undefined;
  const open = new Set<{ ws: WebSocket; tcp: Socket; timer?: NodeJS.Timeout }>();
  const sockets = new Set<Socket>();

  /** Returns why the request is refused, or the tunnel's parameters. */
  async function check(req: IncomingMessage): Promise<string | { maxSeconds?: number }> {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    if (url.pathname !== '/openTunnel') return `no route ${url.pathname}`;
    const q = url.searchParams;
    for (const name of q.keys()) {
      if (q.getAll(name).length > 1) return `parameter ${name} repeated`;
    }
    const get = (name: string): string | undefined => q.get(name) ?? undefined;
    if (get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return 'X-Amz-Algorithm must be AWS4-HMAC-SHA256';
    const credential = /^([^/]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request$/.exec(get('X-Amz-Credential') ?? '');
    if (!credential) return 'malformed X-Amz-Credential';
    const [, accessKeyId, day, region, service] = credential;
    if (accessKeyId !== options.credentials.accessKeyId) return `unknown access key ${accessKeyId}`;
    if (service !== 'ec2-instance-connect') return `signed for service ${service}`;
    if (region !== options.region) return `signed for region ${region}`;
    const amzDate = get('X-Amz-Date');
    const signedAt = parseAmzDate(amzDate);
    if (!signedAt || !amzDate!.startsWith(day!)) return 'malformed X-Amz-Date';
    const expires = Number(get('X-Amz-Expires'));
    if (!Number.isInteger(expires) || expires < 1 || expires > MAX_EXPIRES) return `X-Amz-Expires must be 1..${MAX_EXPIRES}`;
    const now = Date.now();
    if (signedAt.getTime() > now + CLOCK_SKEW_MS) return 'X-Amz-Date is in the future';
    if (now > signedAt.getTime() + expires * 1000) return 'the presigned URL has expired';
    const signature = get('X-Amz-Signature');
    if (!signature || !/^[0-9a-f]{64}$/.test(signature)) return 'missing X-Amz-Signature';
    const signedHeaders = (get('X-Amz-SignedHeaders') ?? '').split(';');
    if (!signedHeaders.includes('host')) return 'host must be signed';
    const host = req.headers.host;
    if (!host) return 'no Host header';

    // Recompute: the same request, unsigned, presigned at the same instant with the known secret.
    const query: Record<string, string> = {};
    for (const [name, value] of q) {
      if (!/^X-Amz-/i.test(name)) query[name] = value;
    }
    const headers: Record<string, string> = {};
    for (const name of signedHeaders) {
      const value = req.headers[name];
      if (value === undefined) return `signed header ${name} is missing`;
      headers[name] = Array.isArray(value) ? value.join(',') : value;
    }
    const presigned = await signer.presign(
      { method: 'GET', protocol: 'wss:', hostname: host, path: url.pathname, query, headers },
      { signingDate: signedAt, expiresIn: expires },
    );
    const expected = presigned.query?.['X-Amz-Signature'];
    if (typeof expected !== 'string') return 'cannot recompute the signature';
    const a = Buffer.from(expected, 'hex');
    const b = Buffer.from(signature, 'hex');
    if (a.length !== b.length || !timingSafeEqual(a, b)) return 'signature does not match';

    // The IAM conditions the real endpoint evaluates.
    if (options.endpointId && get('instanceConnectEndpointId') !== options.endpointId) return `unknown endpoint ${get('instanceConnectEndpointId')}`;
    if (!get('instanceConnectEndpointId')) return 'instanceConnectEndpointId is required';
    if (get('remotePort') !== '22') return `remotePort ${get('remotePort')} is not allowed`;
    const ip = get('privateIpAddress');
    if (!ip || !allowed.has(ip)) return `privateIpAddress ${ip} is not allowed`;
    const max = get('maxTunnelDuration');
    if (max !== undefined) {
      const seconds = Number(max);
      if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600) return 'maxTunnelDuration must be 1..3600';
      return { maxSeconds: seconds };
    }
    return {};
  }

  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('WebSocket upgrade required\n');
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    check(req).then(
      (verdict) => {
        if (typeof verdict === 'string') {
          rejected++;
          lastRejection = verdict;
          const body = JSON.stringify({ message: verdict });
          socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => {
          tunnels++;
          const tcp = connect({ host: '127.0.0.1', port: options.sshPort });
          const entry: { ws: WebSocket; tcp: Socket; timer?: NodeJS.Timeout } = { ws, tcp };
          open.add(entry);
          const stream = createWebSocketStream(ws);
          const finish = (): void => {
            if (!open.delete(entry)) return;
            if (entry.timer) clearTimeout(entry.timer);
            tcp.destroy();
            stream.destroy();
          };
          stream.on('error', finish).on('close', finish);
          tcp.on('error', finish).on('close', finish);
          stream.pipe(tcp);
          tcp.pipe(stream);
          if (verdict.maxSeconds) {
            entry.timer = setTimeout(finish, verdict.maxSeconds * 1000);
            entry.timer.unref();
          }
        });
      },
      (err: unknown) => {
        rejected++;
        lastRejection = err instanceof Error ? err.message : String(err);
        socket.destroy();
      },
    );
  });
  const port = await listenOnLoopback(server);

  const dropAll = (): number => {
    let n = 0;
    for (const entry of [...open]) {
      n++;
      entry.ws.terminate();
      entry.tcp.destroy();
    }
    return n;
  };

  return {
    url: `ws://127.0.0.1:${port}`,
    get tunnels() {
      return tunnels;
    },
    get rejected() {
      return rejected;
    },
    get lastRejection() {
      return lastRejection;
    },
    dropAll,
    async stop() {
      dropAll();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      wss.close();
      await closed;
    },
  };
}
