/**
 * EC2 Instance Connect Endpoint tunnel, as the AWS CLI's `ec2-instance-connect open-tunnel` opens
 * it: a WebSocket to
 *
 *   wss://<endpoint DnsName>/openTunnel?instanceConnectEndpointId=…&remotePort=22&privateIpAddress=…[&maxTunnelDuration=…]
 *
 * presigned with SigV4 (signing name `ec2-instance-connect`, GET, 60 s expiry, `host` the only
 * signed header, the payload hash that of an empty body). Once open, the socket carries the raw
 * TCP stream to `privateIpAddress:remotePort` in binary frames; `openEicTunnel` hands it back as
 * a Duplex that ssh2 uses as its socket.
 */
import type { Duplex } from 'node:stream';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import WebSocket, { createWebSocketStream } from 'ws';
import { PluginError } from '../errors.ts';

export interface EicCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export type EicCredentialSource = EicCredentials | (() => Promise<EicCredentials>);
export type EicRegionSource = string | (() => Promise<string>);

export const EIC_SIGNING_NAME = 'ec2-instance-connect';
/** What the CLI uses; the endpoint refuses anything longer. */
export const OPEN_TUNNEL_EXPIRES_SECONDS = 60;

export interface OpenTunnelRequest {
  /** The endpoint's DnsName (signed as the `host` header). */
  dnsName: string;
  endpointId: string;
  privateIp: string;
  remotePort: number;
  /** 1..3600 seconds; omitted from the URL when unset, as the CLI does. */
  maxTunnelDurationSeconds?: number;
  credentials: EicCredentialSource;
  region: EicRegionSource;
  /** Signing time, for tests; defaults to now. */
  signingDate?: Date;
}

export interface EicTunnelOptions extends OpenTunnelRequest {
  /**
   * Where to connect instead of `wss://<dnsName>` (a local stand-in such as `ws://127.0.0.1:port`);
   * the signature still covers `host: <dnsName>`, which is sent as the Host header.
   */
  url?: string;
  /** WebSocket handshake timeout (default 10 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** RFC 3986 encoding, as SigV4 canonicalises query values. */
function escapeUri(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function validate(request: OpenTunnelRequest): void {
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(request.dnsName)) {
    throw new PluginError('HostUnreachable', `invalid EIC endpoint DNS name ${JSON.stringify(request.dnsName)}`, 'configure the endpoint\'s DnsName');
  }
  if (!/^[A-Za-z0-9-]{1,64}$/.test(request.endpointId)) {
    throw new PluginError('HostUnreachable', `invalid EIC endpoint id ${JSON.stringify(request.endpointId)}`, 'configure the endpoint id (eice-…)');
  }
  if (!Number.isInteger(request.remotePort) || request.remotePort < 1 || request.remotePort > 65535) {
    throw new PluginError('HostUnreachable', `invalid remote port ${request.remotePort}`, 'use the instance\'s SSH port (22)');
  }
  const max = request.maxTunnelDurationSeconds;
  if (max !== undefined && (!Number.isInteger(max) || max < 1 || max > 3600)) {
    throw new PluginError('HostUnreachable', `invalid maxTunnelDuration ${max}`, 'use 1..3600 seconds');
  }
}

/** The tunnel's query parameters before signing, in the CLI's order. */
export function openTunnelQuery(request: Pick<OpenTunnelRequest, 'endpointId' | 'remotePort' | 'privateIp' | 'maxTunnelDurationSeconds'>): Record<string, string> {
  const query: Record<string, string> = {
    instanceConnectEndpointId: request.endpointId,
    remotePort: String(request.remotePort),
    privateIpAddress: request.privateIp,
  };
  if (request.maxTunnelDurationSeconds) query.maxTunnelDuration = String(request.maxTunnelDurationSeconds);
  return query;
}

/** `/openTunnel?…` with the SigV4 query parameters (path and query only; the caller picks the origin). */
export async function presignOpenTunnelPath(request: OpenTunnelRequest): Promise<string> {
  validate(request);
  const signer = new SignatureV4({ service: EIC_SIGNING_NAME, region: request.region, credentials: request.credentials, sha256: Sha256 });
  const presigned = await signer.presign(
    {
      method: 'GET',
      protocol: 'wss:',
      hostname: request.dnsName,
      path: '/openTunnel',
      query: openTunnelQuery(request),
      headers: { host: request.dnsName },
    },
    { expiresIn: OPEN_TUNNEL_EXPIRES_SECONDS, ...(request.signingDate ? { signingDate: request.signingDate } : {}) },
  );
  const pairs = Object.entries(presigned.query ?? {}).flatMap(([key, value]) =>
    (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string').map((v) => `${escapeUri(key)}=${escapeUri(v)}`),
  );
  return `/openTunnel?${pairs.join('&')}`;
}

/** The full presigned `wss://<dnsName>/openTunnel?…` URL, exactly what the CLI connects to. */
export async function presignOpenTunnelUrl(request: OpenTunnelRequest): Promise<string> {
  return `wss://${request.dnsName}${await presignOpenTunnelPath(request)}`;
}

/**
 * Tunnels one endpoint carries at once: "Each EC2 Instance Connect Endpoint can support up to 20
 * concurrent connections" (EC2 User Guide, connect-using-eice.html, Limitations); not adjustable.
 */
export const EIC_ENDPOINT_MAX_CONNECTIONS = 20;

/**
 * The endpoint refused the tunnel because it already carries its maximum of concurrent
 * connections. Not a failure of this request: the adapter waits and tries again (eic-host.ts).
 * A HostUnreachable like any refused tunnel, so a caller that does not know it still retries.
 */
export class EicEndpointAtCapacity extends PluginError {
  readonly status: number;

  constructor(message: string, status: number) {
    super(
      'HostUnreachable',
      message,
      `the EIC endpoint carries at most ${EIC_ENDPOINT_MAX_CONNECTIONS} concurrent connections (an AWS limit, not adjustable); the step will be retried`,
    );
    this.status = status;
  }
}

/** What the endpoint may say when it is at its connection limit (docs do not fix one answer). */
const CAPACITY_BODY = /ThrottlingException|TooManyRequests|LimitExceeded|ServiceQuotaExceeded|too many (concurrent )?connections|maximum (number )?of \d* ?concurrent connections|connection limit/i;

/**
 * Whether a refused upgrade means "at capacity, try again later" rather than "not allowed".
 * AWS documents the limit (20) but not the status the endpoint answers with past it: 429 and 503
 * are the HTTP answers for a request refused for load, and any refusal whose body names the limit
 * counts too. A 403 for a bad signature or a missing OpenTunnel grant never names it, so it stays
 * an immediate failure.
 */
export function isCapacityRefusal(status: number | undefined, body: string): boolean {
  return status === 429 || status === 503 || CAPACITY_BODY.test(body);
}

function unreachable(message: string, cause?: unknown): PluginError {
  return new PluginError(
    'HostUnreachable',
    message,
    'check the EIC endpoint (state create-complete, same VPC), its security group to the instance on port 22, and that the role may ec2-instance-connect:OpenTunnel for this private IP and port',
    { cause },
  );
}

/**
 * Opens the tunnel and resolves once the WebSocket is open. The returned Duplex carries the TCP
 * stream (binary frames both ways); destroying it closes the WebSocket.
 */
export async function openEicTunnel(options: EicTunnelOptions): Promise<Duplex> {
  let path: string;
  try {
    path = await presignOpenTunnelPath(options);
  } catch (error) {
    if (error instanceof PluginError) throw error;
    throw unreachable(`cannot sign the EIC tunnel request: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  const origin = (options.url ?? `wss://${options.dnsName}`).replace(/\/+$/, '');
  const target = `${origin}${path}`;
  const where = `EIC endpoint ${options.endpointId} → ${options.privateIp}:${options.remotePort}`;
  if (options.signal?.aborted) throw unreachable(`tunnel via ${where} aborted before it was opened`);

  return new Promise<Duplex>((resolve, reject) => {
    const ws = new WebSocket(target, {
      handshakeTimeout: options.timeoutMs ?? 10_000,
      perMessageDeflate: false,
      // Only differs from what ws would send when `url` points at a stand-in.
      headers: { host: options.dnsName },
      followRedirects: false,
    });
    let settled = false;
    const onAbort = (): void => fail(unreachable(`tunnel via ${where} aborted`));
    const fail = (error: PluginError): void => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      ws.terminate();
      reject(error);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 2000) body += chunk;
      });
      res.on('error', () => undefined);
      const refused = (): PluginError => {
        const message = `${where} refused the tunnel: HTTP ${res.statusCode}${body ? ` ${body.trim().slice(0, 300)}` : ''}`;
        return isCapacityRefusal(res.statusCode, body) ? new EicEndpointAtCapacity(message, res.statusCode ?? 0) : unreachable(message);
      };
      res.on('end', () => fail(refused()));
      // A server that never ends the body: the handshake timeout is not running any more.
      setTimeout(() => fail(refused()), 2_000).unref();
    });
    // Errors after the open are surfaced by the stream (and so by ssh2), not here.
    ws.on('error', (err) => fail(unreachable(`cannot open tunnel via ${where}: ${err.message}`, err)));
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      const stream = createWebSocketStream(ws, { allowHalfOpen: false });
      // ssh2 attaches its own handler; this one keeps a late error (after ssh2 let go of the
      // socket) from becoming an unhandled 'error' event.
      stream.on('error', () => undefined);
      resolve(stream);
    });
  });
}
