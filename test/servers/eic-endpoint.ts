/**
 * Local stand-in of an EC2 Instance Connect Endpoint: a WebSocket server on 127.0.0.1 that
 * accepts `GET /openTunnel?…` only with a valid SigV4 presigned query (recomputed with the known
 * temporary test credentials over the same canonical request, `host` being the Host header the
 * client sent, the session token required and signed: test/servers/sigv4.ts), `X-Amz-Expires` ≤ 60, a fresh `X-Amz-Date`, `remotePort=22` and an allowed
 * `privateIpAddress`, and answers 403 otherwise. An accepted tunnel pipes binary frames to and
 * from a TCP connection to the test sshd, for at most `maxTunnelDuration` seconds.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import { listenOnLoopback } from './loopback.ts';
import { verifyPresignedQuery, type TestCredentials } from './sigv4.ts';

export interface EicEndpointOptions {
  /** Where remotePort 22 of every allowed private IP leads. */
  sshPort: number;
  /** What the signer must have used, session token included (test/servers/sigv4.ts). */
  credentials: TestCredentials;
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

export async function startEicEndpoint(options: EicEndpointOptions): Promise<EicEndpointHandle> {
  const allowed = new Set(options.allowedIps ?? ['127.0.0.1']);
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
    const get = (name: string): string | undefined => q.get(name) ?? undefined;
    const problem = await verifyPresignedQuery(req, 'wss:', { service: 'ec2-instance-connect', region: options.region, credentials: options.credentials, maxExpires: MAX_EXPIRES });
    if (problem) return problem;

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
