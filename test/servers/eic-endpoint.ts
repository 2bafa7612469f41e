/**
 * Local stand-in of an EC2 Instance Connect Endpoint: a WebSocket server on 127.0.0.1 that
 * accepts `GET /openTunnel?…` only with a valid SigV4 presigned query (recomputed with the known
 * temporary test credentials over the same canonical request, `host` being the Host header the
 * client sent, the session token required and signed: test/servers/sigv4.ts), `X-Amz-Expires` ≤ 60, a fresh `X-Amz-Date`, `remotePort=22` and an allowed
 * `privateIpAddress`, and answers 403 otherwise. An accepted tunnel pipes binary frames to and
 * from a TCP connection to the test sshd, for at most `maxTunnelDuration` seconds.
 *
 * Like the real endpoint it carries at most `maxConnections` tunnels at once (AWS: "Each EC2
 * Instance Connect Endpoint can support up to 20 concurrent connections", EC2 User Guide,
 * connect-using-eice.html, Limitations; not adjustable). A signed, allowed request past the cap is
 * refused on the upgrade: HTTP 429 with the JSON body shape the endpoint uses for every refused
 * upgrade, `{"ErrorCode": …, "Message": …}` (what the AWS CLI prints for one, e.g.
 * `{"ErrorCode":"InvalidParameter","Message":"The specified RemotePort is not valid…"}` in
 * aidansteele/rdsconn#5). AWS does not document the status the cap itself answers with; 429 is
 * the HTTP status for a request refused for load, and the adapter also treats any refusal whose
 * body names the connection limit as one (eic-tunnel.ts, `isCapacityRefusal`).
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
  /** Concurrent tunnels the endpoint carries (default 20, AWS's fixed quota). */
  maxConnections?: number;
}

export interface EicEndpointHandle {
  /** `ws://127.0.0.1:<port>`: the `url` override for the adapter. */
  url: string;
  /** Tunnels opened (signature and conditions accepted). */
  readonly tunnels: number;
  /** Requests refused for their signature or conditions (403). */
  readonly rejected: number;
  /** Signed, allowed requests refused because `maxConnections` tunnels were open (429). */
  readonly refusedAtCap: number;
  /** Tunnels open right now. */
  readonly open: number;
  /** The most tunnels that were open at once. */
  readonly peak: number;
  readonly maxConnections: number;
  /** Why the last request was refused. */
  readonly lastRejection: string | undefined;
  /** Drops every open tunnel (the endpoint going away mid-transfer). */
  dropAll(): number;
  stop(): Promise<void>;
}

const MAX_EXPIRES = 60;
export const EIC_ENDPOINT_MAX_CONNECTIONS = 20;

export async function startEicEndpoint(options: EicEndpointOptions): Promise<EicEndpointHandle> {
  const allowed = new Set(options.allowedIps ?? ['127.0.0.1']);
  let tunnels = 0;
  let rejected = 0;
  let refusedAtCap = 0;
  let peak = 0;
  const maxConnections = options.maxConnections ?? EIC_ENDPOINT_MAX_CONNECTIONS;
  /** Tunnels counted against the cap: from the accepted upgrade until both sides are closed. */
  let carried = 0;
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
        // Checked and taken in one synchronous step, so concurrent upgrades never overshoot it.
        if (carried >= maxConnections) {
          refusedAtCap++;
          const body = JSON.stringify({
            ErrorCode: 'ThrottlingException',
            Message: `The EC2 Instance Connect Endpoint has reached its maximum of ${maxConnections} concurrent connections. Try again later.`,
          });
          socket.end(`HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
          return;
        }
        carried++;
        peak = Math.max(peak, carried);
        let counted = true;
        const uncount = (): void => {
          if (counted) carried--;
          counted = false;
        };
        // A client that went away before the upgrade completed frees its slot too.
        socket.once('close', uncount);
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
    get refusedAtCap() {
      return refusedAtCap;
    },
    get open() {
      return carried;
    },
    get peak() {
      return peak;
    },
    maxConnections,
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
