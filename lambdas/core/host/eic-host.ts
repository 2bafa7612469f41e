/**
 * EC2 Instance Connect adapter of the RemoteHost port.
 *
 * For each SSH connection: an ed25519 key generated in memory (never written anywhere), pushed
 * with SendSSHPublicKey (valid for 60 s on the instance), then an ssh2 connection as the OS user,
 * either straight to the instance's private IP or through an EIC Endpoint tunnel
 * (eic-tunnel.ts). An authentication failure (the pushed key expired or had not reached the
 * instance yet) re-pushes the key once and connects again.
 *
 * Each run() execs `[sudo -n] sh -c '<script>' plugin-host.sh '<op>' '<arg>'…` (host-command.ts),
 * streams `invocation.stdin` into the channel with backpressure, and resolves with the exit
 * status once the channel closes. A connection is reused by later run()s on the same host while
 * it is busy or idle for less than `idleTimeoutMs`; `close()` ends every connection.
 *
 * An EIC Endpoint carries at most 20 tunnels at once (an AWS limit, not adjustable) and refuses
 * more. Such a refusal is a wait, not a failure: the tunnel is tried again after a full-jitter
 * exponential backoff (so refused callers do not come back in step) until the step's deadline,
 * and only then does the step end, HostTimeout with a hint naming the limit. Each refusal is
 * reported to `onTunnelRefused` (the Lambdas count it as the `TunnelRefused` metric). A 403 (bad
 * signature, no OpenTunnel grant) is not a refusal for load and still fails at once.
 *
 * Every failure of the transport is a typed PluginError: HostUnreachable (cannot connect, auth,
 * throttled API), HostTimeout (step timeout), HostStepInterrupted (connection lost during a
 * step), HostStepFailed (the API refused the request: unknown instance, bad arguments, access
 * denied). ssh2 'error' events never escape.
 */
import { connect as tcpConnect, isIP } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { EC2InstanceConnectClient, SendSSHPublicKeyCommand } from '@aws-sdk/client-ec2-instance-connect';
// ssh2 is CommonJS: Node's ESM loader only exposes its default export.
import ssh2, { type Client, type ClientChannel } from 'ssh2';

const { Client: SshClient, utils: sshUtils } = ssh2;
import { PluginError } from '../errors.ts';
import { pluginsRoot } from '../runtimes.ts';
import { hostCommandLine } from './host-command.ts';
import { AGENT_OWNER, type HostResolver } from './host-resolver.ts';
import { EicEndpointAtCapacity, EIC_ENDPOINT_MAX_CONNECTIONS, openEicTunnel, type EicCredentialSource, type EicRegionSource } from './eic-tunnel.ts';
import type { HostInvocation, HostRawResult, RemoteHost } from './remote-host.ts';

export interface EicEndpointOptions {
  /** The EC2 Instance Connect Endpoint id (`eice-…`). */
  id: string;
  /** Its DnsName (what the tunnel URL and signature name). */
  dnsName: string;
  /** Override of `wss://<dnsName>` (a local stand-in); the signature still names `dnsName`. */
  url?: string;
  /** Default: the EC2 Instance Connect client's credentials. */
  credentials?: EicCredentialSource;
  /** Default: the EC2 Instance Connect client's region. */
  region?: EicRegionSource;
  /** 1..3600; omitted (the endpoint's default, 3600) when unset. */
  maxTunnelDurationSeconds?: number;
}

export interface EicHostOptions {
  client: EC2InstanceConnectClient;
  /** OS user the key is pushed for and SSH logs in as (default `ubuntu`). */
  osUser?: string;
  /** SSH port on the instance (default 22); with an endpoint, the tunnel's remotePort. */
  port?: number;
  /** TCP connect + SSH handshake + auth, per attempt (default 10 s). */
  connectTimeoutMs?: number;
  /** Default step timeout when the invocation has none (default 120 s). */
  stepTimeoutMs?: number;
  /** Connect through an EC2 Instance Connect Endpoint instead of straight to the private IP. */
  endpoint?: EicEndpointOptions;
  /** Prepended to the runtime's plugins root (tests use a temp directory). */
  rootPrefix?: string;
  /** Default `sudo -n`; `''` when `osUser` is root. */
  privilege?: string;
  /** How long an idle connection is kept for the next run() (default 2 s; 0 closes at once). */
  idleTimeoutMs?: number;
  /**
   * Waits between tunnels refused because the endpoint is at its connection limit: a random
   * time in [0, min(maxMs, baseMs · 2^n)) before try n + 1 (default 200 ms, 2 s). A short
   * ceiling: a host step frees its tunnel within seconds, and a long one would let newcomers
   * (short waits) keep overtaking a caller that has waited longest.
   */
  tunnelBackoff?: { baseMs?: number; maxMs?: number };
  /** Called for each tunnel the endpoint refused at its connection limit (metrics, logs). */
  onTunnelRefused?: (refusal: TunnelRefusal) => void;
}

export interface TunnelRefusal {
  instanceId: string;
  endpointId: string;
  /** The HTTP status of the refused upgrade. */
  status: number;
  /** 1 for the first refusal of this connection attempt. */
  attempt: number;
  /** How long the adapter waits before trying again (never past the step's deadline). */
  delayMs: number;
  message: string;
}

export interface EicInstance {
  instanceId: string;
  privateIp: string;
}

const MAX_CAPTURE = 1024 * 1024;
/**
 * A pushed key is served for 60 s: a connection that waited longer than this for the endpoint
 * to take its tunnel pushes the key again before logging in, instead of failing auth first.
 */
const KEY_FRESH_MS = 40_000;
const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const OS_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/** A session channel whose command started, and its exit status once the host sent it. */
interface OpenChannel {
  channel: ClientChannel;
  exit: { code: number | null; signal: string | null } | undefined;
}

interface Connection {
  client: Client;
  /** The TCP socket, or the tunnel stream when connected through an endpoint. */
  sock: Duplex;
  /** Runs currently using it. */
  active: number;
  /** Runs it has served, to tell a reused connection from a fresh one. */
  uses: number;
  lastUsed: number;
  dead: boolean;
  deadReason?: string;
  idleTimer?: NodeJS.Timeout;
  closed: Promise<void>;
}

/** ssh2 tags its errors with a `level` (client-socket, client-timeout, client-authentication, protocol…). */
function levelOf(error: unknown): string | undefined {
  return error && typeof error === 'object' && 'level' in error && typeof error.level === 'string' ? error.level : undefined;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) {
    const code = 'code' in error && typeof error.code === 'string' ? ` (${error.code})` : '';
    return `${error.message}${code}`;
  }
  return String(error);
}

/**
 * A fresh ed25519 key pair in OpenSSH format, in memory only. ssh2 1.17's generator drops
 * leading zero bytes of the key material now and then (about 1 key in 150 comes out with a
 * 30- or 31-byte public key that neither ssh2 nor sshd accepts): check and draw again.
 */
export function ephemeralKey(): { publicKey: string; privateKey: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = sshUtils.generateKeyPairSync('ed25519');
    const blob = Buffer.from(pair.public.split(' ')[1] ?? '', 'base64');
    const parsed = sshUtils.parseKey(pair.private);
    // string "ssh-ed25519" (4 + 11) + string key (4 + 32)
    if (blob.length !== 51 || parsed instanceof Error) continue;
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (key && key.getPublicSSH().equals(blob)) return { publicKey: pair.public, privateKey: pair.private };
  }
  throw new PluginError('HostUnreachable', 'could not generate a usable ed25519 key', 'retry');
}

export class EicHost implements RemoteHost {
  readonly transport = 'eic';
  readonly streamsStdin = true;
  readonly #instance: EicInstance;
  readonly #client: EC2InstanceConnectClient;
  readonly #osUser: string;
  readonly #port: number;
  readonly #connectTimeoutMs: number;
  readonly #stepTimeoutMs: number;
  readonly #endpoint?: EicEndpointOptions;
  readonly #privilege: string;
  readonly #idleTimeoutMs: number;
  readonly #backoff: { baseMs: number; maxMs: number };
  readonly #onTunnelRefused?: (refusal: TunnelRefusal) => void;
  readonly #connections = new Set<Connection>();
  /** Ends a wait for endpoint capacity (and a tunnel being opened) when the host is closed. */
  readonly #closing = new AbortController();
  #current?: Promise<Connection>;
  #closed = false;
  #tunnelRefusals = 0;
  /** From the endpoint's first refusal until connecting is over (so a step timeout can name it). */
  #capacityWait?: { refusals: number; since: number };

  constructor(instance: EicInstance, options: EicHostOptions) {
    if (!INSTANCE_ID.test(instance.instanceId)) {
      throw new PluginError('HostUnreachable', `invalid instance id ${JSON.stringify(instance.instanceId)}`, 'the workspace directory must record the instance id (i-…)');
    }
    if (!isIP(instance.privateIp)) {
      throw new PluginError('HostUnreachable', `invalid private IP ${JSON.stringify(instance.privateIp)}`, 'the workspace directory must record the instance\'s private IP');
    }
    this.#instance = { ...instance };
    this.#client = options.client;
    this.#osUser = options.osUser ?? 'ubuntu';
    if (!OS_USER.test(this.#osUser)) {
      throw new PluginError('HostStepFailed', `invalid OS user ${JSON.stringify(this.#osUser)}`, 'use the instance\'s login user, e.g. ubuntu or ec2-user');
    }
    this.#port = options.port ?? 22;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#stepTimeoutMs = options.stepTimeoutMs ?? 120_000;
    this.#endpoint = options.endpoint;
    this.#privilege = options.privilege ?? (this.#osUser === 'root' ? '' : 'sudo -n');
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 2_000;
    this.#backoff = { baseMs: options.tunnelBackoff?.baseMs ?? 200, maxMs: options.tunnelBackoff?.maxMs ?? 2_000 };
    this.#onTunnelRefused = options.onTunnelRefused;
  }

  get instance(): EicInstance {
    return { ...this.#instance };
  }

  /** Tunnels the endpoint refused at its connection limit, over this host's life. */
  get tunnelRefusals(): number {
    return this.#tunnelRefusals;
  }

  async run(invocation: HostInvocation): Promise<HostRawResult> {
    const source = invocation.stdin;
    // Until the channel is open nothing consumes the caller's stream: an error it emits meanwhile
    // (a download that broke off) must not become an unhandled 'error' event. #drive finds the
    // stream destroyed and gives the script EOF at once (a short stream: TransferCorrupted).
    const early = (): void => undefined;
    source?.on('error', early);
    try {
      return await this.#run(invocation);
    } catch (error) {
      if (source) {
        // The step never got to read it: do not leave the caller's stream open and paused.
        source.on('error', () => undefined);
        if (!source.destroyed) source.destroy();
      }
      throw error;
    } finally {
      source?.off('error', early);
    }
  }

  async #run(invocation: HostInvocation): Promise<HostRawResult> {
    const command = hostCommandLine(invocation, { privilege: this.#privilege });
    const timeoutMs = invocation.timeoutMs ?? this.#stepTimeoutMs;
    // The step's time starts now: pushing the key, the tunnel and the SSH handshake count against
    // it, so a step ends within its budget (and so within the Lambda's timeout) however slow
    // connecting is, instead of starting its clock only once connected.
    const deadline = Date.now() + timeoutMs;
    let { conn, reused } = await this.#acquireBefore(false, deadline, invocation.op, timeoutMs);
    let channel: OpenChannel;
    try {
      channel = await this.#exec(conn, command, invocation.op, deadline - Date.now());
    } catch (error) {
      this.#release(conn);
      // A reused connection may have died while idle (a frozen Lambda, a server-side timeout):
      // nothing ran yet, so one fresh connection is safe.
      if (!reused || (error instanceof PluginError && error.code === 'HostTimeout')) throw error;
      this.#retire(conn, 'exec failed on a reused connection');
      ({ conn, reused } = await this.#acquireBefore(true, deadline, invocation.op, timeoutMs));
      try {
        channel = await this.#exec(conn, command, invocation.op, deadline - Date.now());
      } catch (retryError) {
        this.#release(conn);
        throw retryError;
      }
    }
    return this.#drive(conn, channel, invocation, Math.max(1, deadline - Date.now()));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#closing.abort();
    const pending = this.#current;
    this.#current = undefined;
    if (pending) await pending.catch(() => undefined);
    const all = [...this.#connections];
    for (const conn of all) this.#retire(conn, 'host closed');
    await Promise.all(all.map((conn) => conn.closed));
  }

  // --- connections ----------------------------------------------------------------------------

  #usable(conn: Connection): boolean {
    // A connection nobody has used yet was made for the run asking (or one waiting with it).
    return !conn.dead && (conn.active > 0 || conn.uses === 0 || Date.now() - conn.lastUsed < this.#idleTimeoutMs);
  }

  /**
   * #acquire, bounded by the step's deadline. A connection still being made when the deadline
   * passes is not abandoned half-open: once it is ready it is released (idle, reusable) or, if it
   * fails, forgotten, as for any other run.
   */
  async #acquireBefore(fresh: boolean, deadline: number, op: string, budgetMs: number): Promise<{ conn: Connection; reused: boolean }> {
    const acquiring = this.#acquire(fresh, deadline);
    let timer: NodeJS.Timeout | undefined;
    let late = false;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        late = true;
        reject(
          this.#capacityWait
            ? this.#atCapacityTimeout(`host step ${op} on ${this.#instance.instanceId} could not connect within the step's ${budgetMs} ms`)
            : new PluginError(
              'HostTimeout',
              `host step ${op} on ${this.#instance.instanceId} could not connect within the step's ${budgetMs} ms (key push, ${this.#endpoint ? 'tunnel, ' : ''}SSH handshake)`,
              'the step is idempotent and will be retried',
            ),
        );
      }, Math.max(1, deadline - Date.now()));
    });
    acquiring.then((got) => {
      if (late) this.#release(got.conn);
    }, () => undefined);
    try {
      return await Promise.race([acquiring, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The step's time ran out while the endpoint kept refusing the tunnel at its connection limit. */
  #atCapacityTimeout(what: string): PluginError {
    const wait = this.#capacityWait;
    const endpoint = this.#endpoint?.id ?? 'endpoint';
    return new PluginError(
      'HostTimeout',
      `${what}: EIC endpoint ${endpoint} refused the tunnel ${wait?.refusals ?? 0} times in ${Date.now() - (wait?.since ?? Date.now())} ms at its limit of ${EIC_ENDPOINT_MAX_CONNECTIONS} concurrent connections`,
      `the endpoint carries at most ${EIC_ENDPOINT_MAX_CONNECTIONS} tunnels at once (an AWS limit, not adjustable): keep concurrent EIC operations per endpoint below it (docs/deploy.md, "Quotas that bound the system"); the step is idempotent and will be retried`,
    );
  }

  /**
   * The connection for a run: the current one if usable, else a new one. A connection being made
   * is shared by every run that asks meanwhile; `deadline` (the asking step's) bounds how long
   * making it waits for endpoint capacity.
   */
  async #acquire(fresh: boolean, deadline: number): Promise<{ conn: Connection; reused: boolean }> {
    for (;;) {
      if (this.#closed) throw new PluginError('HostUnreachable', `EIC host ${this.#instance.instanceId} is closed`, 'create a new host');
      let pending = this.#current;
      if (!pending || fresh) {
        fresh = false;
        const created = this.#open(deadline);
        this.#current = pending = created;
        created.catch(() => {
          if (this.#current === created) this.#current = undefined;
        });
      }
      const conn = await pending; // a failed connect fails every run waiting for it, with its typed error
      if (this.#usable(conn)) {
        conn.active++;
        conn.uses++;
        if (conn.idleTimer) clearTimeout(conn.idleTimer);
        conn.idleTimer = undefined;
        return { conn, reused: conn.uses > 1 };
      }
      if (this.#current === pending) this.#current = undefined;
      this.#retire(conn, 'stale');
    }
  }

  #release(conn: Connection): void {
    conn.active = Math.max(0, conn.active - 1);
    conn.lastUsed = Date.now();
    if (conn.active > 0 || conn.dead) return;
    if (this.#closed || this.#idleTimeoutMs <= 0) {
      this.#retire(conn, 'idle');
      return;
    }
    conn.idleTimer = setTimeout(() => {
      if (conn.active === 0) this.#retire(conn, 'idle');
    }, this.#idleTimeoutMs);
    conn.idleTimer.unref();
  }

  /** Ends a connection (politely, then for sure) and forgets it. */
  #retire(conn: Connection, reason: string): void {
    if (conn.idleTimer) clearTimeout(conn.idleTimer);
    conn.idleTimer = undefined;
    if (!conn.dead) {
      conn.dead = true;
      conn.deadReason = reason;
    }
    try {
      conn.client.end();
    } catch {
      // Already gone.
    }
    // end() sends SSH_MSG_DISCONNECT and half-closes; never wait on the server to finish it.
    setImmediate(() => conn.sock.destroy());
  }

  async #open(deadline: number): Promise<Connection> {
    try {
      return await this.#connect(deadline);
    } finally {
      this.#capacityWait = undefined;
    }
  }

  async #connect(deadline: number): Promise<Connection> {
    const { publicKey, privateKey } = ephemeralKey();
    await this.#pushKey(publicKey);
    let pushedAt = Date.now();
    // Once the tunnel is open: a key pushed before a long wait for endpoint capacity is pushed again.
    const freshKey = async (): Promise<void> => {
      if (Date.now() - pushedAt < KEY_FRESH_MS) return;
      await this.#pushKey(publicKey);
      pushedAt = Date.now();
    };
    let conn: Connection;
    try {
      conn = await this.#handshake(privateKey, deadline, freshKey);
    } catch (error) {
      if (levelOf(error) !== 'client-authentication') throw this.#connectError(error);
      // The pushed key is served for 60 s, and may reach the instance a moment after the API
      // answers: push it again, once.
      await this.#pushKey(publicKey);
      pushedAt = Date.now();
      try {
        conn = await this.#handshake(privateKey, deadline, freshKey);
      } catch (retryError) {
        throw this.#connectError(retryError);
      }
    }
    if (this.#closed) {
      this.#retire(conn, 'host closed');
      throw new PluginError('HostUnreachable', `EIC host ${this.#instance.instanceId} was closed while connecting`, 'create a new host');
    }
    return conn;
  }

  async #pushKey(publicKey: string): Promise<void> {
    const { instanceId } = this.#instance;
    let response;
    try {
      response = await this.#client.send(
        new SendSSHPublicKeyCommand({ InstanceId: instanceId, InstanceOSUser: this.#osUser, SSHPublicKey: publicKey }),
      );
    } catch (error) {
      throw sendKeyError(error, instanceId, this.#osUser);
    }
    if (response.Success === false) {
      throw new PluginError('HostUnreachable', `SendSSHPublicKey for ${instanceId} did not succeed (request ${response.RequestId ?? '?'})`, 'retry; check the instance is running');
    }
  }

  /**
   * A tunnel through the endpoint. Refused at the endpoint's connection limit, it is tried again
   * after a full-jitter exponential backoff until `deadline`; past it the step ends HostTimeout.
   */
  async #tunnel(endpoint: EicEndpointOptions, deadline: number): Promise<Duplex> {
    const { instanceId, privateIp } = this.#instance;
    const closed = (): PluginError => new PluginError('HostUnreachable', `EIC host ${instanceId} was closed while connecting`, 'create a new host');
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw closed();
      if (this.#capacityWait && Date.now() >= deadline) throw this.#atCapacityTimeout(`could not connect to ${instanceId} within the step's time`);
      try {
        return await openEicTunnel({
          dnsName: endpoint.dnsName,
          url: endpoint.url,
          endpointId: endpoint.id,
          privateIp,
          remotePort: this.#port,
          maxTunnelDurationSeconds: endpoint.maxTunnelDurationSeconds,
          credentials: endpoint.credentials ?? (() => this.#client.config.credentials()),
          region: endpoint.region ?? (() => this.#client.config.region()),
          timeoutMs: this.#connectTimeoutMs,
          signal: this.#closing.signal,
        });
      } catch (error) {
        if (!(error instanceof EicEndpointAtCapacity) || this.#closed) throw error;
        this.#tunnelRefusals++;
        // Kept until connecting is over (#open), so a deadline that passes meanwhile names the wait.
        const wait = (this.#capacityWait ??= { refusals: 0, since: Date.now() });
        wait.refusals++;
        // Full jitter: refused callers spread over the whole window instead of retrying together.
        const ceiling = Math.min(this.#backoff.maxMs, this.#backoff.baseMs * 2 ** Math.min(attempt - 1, 30));
        const delayMs = Math.min(Math.floor(Math.random() * ceiling), Math.max(0, deadline - Date.now()));
        try {
          this.#onTunnelRefused?.({ instanceId, endpointId: endpoint.id, status: error.status, attempt, delayMs, message: error.message });
        } catch {
          // Counting a refusal must never fail the step.
        }
        try {
          await sleep(delayMs, undefined, { signal: this.#closing.signal });
        } catch {
          throw closed();
        }
      }
    }
  }

  async #handshake(privateKey: string, deadline: number, beforeLogin: () => Promise<void>): Promise<Connection> {
    const { instanceId, privateIp } = this.#instance;
    let sock: Duplex | undefined;
    if (this.#endpoint) {
      sock = await this.#tunnel(this.#endpoint, deadline);
      try {
        await beforeLogin();
      } catch (error) {
        sock.destroy();
        throw error;
      }
    } else {
      // Our own socket (ssh2 waits for its 'connect'), so close() can always destroy it.
      sock = tcpConnect({ host: privateIp, port: this.#port, noDelay: true });
    }
    const socket = sock;
    return new Promise<Connection>((resolve, reject) => {
      const client = new SshClient();
      let ready = false;
      let resolveClosed!: () => void;
      const conn: Connection = {
        client,
        sock: socket,
        active: 0,
        uses: 0,
        lastUsed: Date.now(),
        dead: false,
        closed: new Promise<void>((r) => (resolveClosed = r)),
      };
      const markDead = (reason: string): void => {
        if (!conn.dead) {
          conn.dead = true;
          conn.deadReason = reason;
        }
      };
      client.on('ready', () => {
        ready = true;
        this.#connections.add(conn);
        resolve(conn);
      });
      client.on('error', (err: Error) => {
        markDead(messageOf(err));
        if (!ready) {
          reject(err);
          socket.destroy();
        }
      });
      client.on('end', () => markDead('connection ended by the host'));
      client.on('close', () => {
        markDead('connection closed');
        if (conn.idleTimer) clearTimeout(conn.idleTimer);
        this.#connections.delete(conn);
        socket.destroy();
        if (this.#current) {
          const current = this.#current;
          current.then((c) => {
            if (c === conn && this.#current === current) this.#current = undefined;
          }, () => undefined);
        }
        resolveClosed();
        if (!ready) reject(Object.assign(new Error(`connection to ${instanceId} closed during the SSH handshake`), { level: 'client-socket' }));
      });
      try {
        client.connect({
          sock: socket as Readable,
          username: this.#osUser,
          privateKey,
          readyTimeout: this.#connectTimeoutMs,
          keepaliveInterval: 10_000,
          keepaliveCountMax: 3,
          // EIC gives no host key to pin; the key push and the private network path are the trust.
          hostVerifier: () => true,
        });
      } catch (error) {
        socket.destroy();
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  #connectError(error: unknown): PluginError {
    if (error instanceof PluginError) return error;
    const { instanceId, privateIp } = this.#instance;
    const via = this.#endpoint ? ` via EIC endpoint ${this.#endpoint.id}` : '';
    const where = `${this.#osUser}@${instanceId} (${privateIp}:${this.#port})${via}`;
    const level = levelOf(error);
    if (level === 'client-authentication') {
      return new PluginError(
        'HostUnreachable',
        `SSH authentication as ${where} failed after pushing the key twice`,
        `check that OS user ${this.#osUser} exists on the instance, that ec2-instance-connect (its AuthorizedKeysCommand) is installed and enabled in sshd, and that the role may ec2-instance-connect:SendSSHPublicKey for this user`,
        { cause: error },
      );
    }
    if (level === 'client-timeout') {
      return new PluginError(
        'HostUnreachable',
        `timed out after ${this.#connectTimeoutMs} ms connecting to ${where}`,
        'check the instance is running and its security group allows SSH from this network path',
        { cause: error },
      );
    }
    return new PluginError(
      'HostUnreachable',
      `cannot connect to ${where}: ${messageOf(error)}`,
      'check the instance is running, sshd listens on the port, and the security group allows SSH; the step will be retried',
      { cause: error },
    );
  }

  /** Opens the session channel and starts the command; bounded by what is left of the step's time. */
  #exec(conn: Connection, command: string, op: string, timeoutMs: number): Promise<OpenChannel> {
    return new Promise<OpenChannel>((resolve, reject) => {
      const failed = (error: unknown): PluginError =>
        new PluginError('HostUnreachable', `cannot start host step ${op} on ${this.#instance.instanceId}: ${messageOf(error)}`, 'the step will be retried', { cause: error });
      if (conn.dead) {
        reject(failed(new Error(conn.deadReason ?? 'connection closed')));
        return;
      }
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        // A connection that cannot open a channel in time is wedged: drop it.
        this.#retire(conn, `opening a channel for ${op} timed out`);
        reject(new PluginError('HostTimeout', `host step ${op} on ${this.#instance.instanceId} could not start within ${timeoutMs} ms`, 'the step is idempotent and will be retried'));
      }, Math.max(1, timeoutMs));
      try {
        conn.client.exec(command, (err, channel) => {
          if (done) {
            if (!err) channel.close();
            return;
          }
          done = true;
          clearTimeout(timer);
          if (err) {
            reject(failed(err));
            return;
          }
          // Listen for the exit status now, inside ssh2's parse: on a busy event loop sshd's whole
          // answer (exec accepted, output, exit status, close) arrives in one read and ssh2 emits
          // 'exit' in the same synchronous parse as this callback, before any promise
          // continuation (#drive) could listen. Output is buffered by the stream; 'exit' is not.
          const opened: OpenChannel = { channel, exit: undefined };
          channel.once('exit', (code: number | null, signal?: string) => {
            opened.exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
          });
          resolve(opened);
        });
      } catch (error) {
        done = true;
        clearTimeout(timer);
        reject(failed(error));
      }
    });
  }

  #drive(conn: Connection, opened: OpenChannel, invocation: HostInvocation, timeoutMs: number): Promise<HostRawResult> {
    const { op } = invocation;
    const { channel } = opened;
    const instanceId = this.#instance.instanceId;
    return new Promise<HostRawResult>((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let settled = false;
      const source: Readable | undefined = invocation.stdin;

      const detachSource = (): void => {
        if (!source) return;
        source.unpipe(channel);
        source.off('error', onSourceError);
        // A late error from a stream we let go of must not become an unhandled 'error' event.
        source.on('error', () => undefined);
        // The host stopped reading (already staged, failed, timed out): do not leave the
        // caller's stream (a file, a download) open and paused forever.
        if (!source.readableEnded && !source.destroyed) source.destroy();
      };
      const settle = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        detachSource();
        this.#release(conn);
        outcome();
      };

      const timer = setTimeout(() => {
        settle(() => reject(new PluginError('HostTimeout', `host step ${op} on ${instanceId} timed out after ${timeoutMs} ms`, 'the step is idempotent and will be retried')));
        try {
          channel.signal('TERM');
          channel.close();
        } catch {
          // The connection is going anyway.
        }
        // A step that overran may have wedged the connection: never reuse it.
        this.#retire(conn, `host step ${op} timed out`);
      }, timeoutMs);

      channel.setEncoding('utf8');
      channel.on('data', (chunk: string) => {
        if (stdout.length < MAX_CAPTURE) stdout += chunk;
      });
      channel.stderr.setEncoding('utf8');
      channel.stderr.on('data', (chunk: string) => {
        if (stderr.length < MAX_CAPTURE) stderr += chunk;
      });
      // Write-after-close and similar stream errors: the exit status (or its absence) decides.
      channel.on('error', () => undefined);
      channel.stderr.on('error', () => undefined);
      channel.on('close', () => {
        const { exit } = opened;
        if (!exit && conn.dead) {
          settle(() =>
            reject(
              new PluginError(
                'HostStepInterrupted',
                `connection to ${instanceId} was lost during host step ${op} (${conn.deadReason ?? 'closed'})`,
                'the step is idempotent and will be retried',
              ),
            ),
          );
          return;
        }
        settle(() => resolve({ exitCode: exit?.code ?? null, signal: exit?.signal ?? null, stdout, stderr }));
      });

      function onSourceError(): void {
        // Like the local adapter: the script sees a short stream, its sha256 check fails, and
        // the step reports TransferCorrupted (retried).
        if (!settled) channel.end();
      }
      if (source && source.destroyed && !source.readableEnded) {
        // The stream failed (or was destroyed) while the connection was being made: EOF now,
        // as when it fails mid-transfer, instead of waiting for an end that never comes.
        channel.end();
      } else if (source) {
        source.on('error', onSourceError);
        // pipe() honours channel.write()'s backpressure (the SSH window) and ends the channel's
        // stdin (EOF) when the source ends.
        source.pipe(channel);
      } else {
        channel.end();
      }
    });
  }
}

/** Maps a SendSSHPublicKey failure to a typed error. */
export function sendKeyError(error: unknown, instanceId: string, osUser: string): PluginError {
  const name = error instanceof Error ? error.name : '';
  const meta = error && typeof error === 'object' && '$metadata' in error ? (error.$metadata as { httpStatusCode?: number }) : undefined;
  const status = meta?.httpStatusCode;
  const fault = error && typeof error === 'object' && '$fault' in error ? error.$fault : undefined;
  const detail = `${name || 'Error'}: ${messageOf(error)}`;
  const failed = (hint: string): PluginError =>
    new PluginError('HostStepFailed', `EC2 Instance Connect refused to push a key to ${instanceId} as ${osUser}: ${detail}`, hint, { cause: error });
  const unreachable = (hint: string): PluginError =>
    new PluginError('HostUnreachable', `EC2 Instance Connect could not push a key to ${instanceId}: ${detail}`, hint, { cause: error });

  switch (name) {
    case 'EC2InstanceNotFoundException':
      return failed('the instance does not exist in this region: check the workspace directory\'s instance id and the client\'s region');
    case 'InvalidArgsException':
      return failed(`check the instance id and OS user (${osUser}); EIC accepts ssh-ed25519 and ssh-rsa keys`);
    case 'AuthException':
    case 'AccessDeniedException':
    case 'AccessDenied':
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
      return failed(`grant ec2-instance-connect:SendSSHPublicKey on the instance (condition ec2:osuser = ${osUser}) to this role, and check its credentials`);
    case 'EC2InstanceTypeInvalidException':
      return failed('this instance type does not support EC2 Instance Connect; use the SSM transport');
    case 'ThrottlingException':
    case 'TooManyRequestsException':
    case 'ServiceException':
    case 'EC2InstanceUnavailableException':
    case 'EC2InstanceStateInvalidException':
      return unreachable('the instance or the EIC API is not available right now; the step will be retried');
  }
  if (status === 403) return failed(`grant ec2-instance-connect:SendSSHPublicKey on the instance (condition ec2:osuser = ${osUser}) to this role`);
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429 && fault !== 'server') {
    return failed('the EC2 Instance Connect API refused the request; check the instance id, OS user and region');
  }
  return unreachable('the EC2 Instance Connect API is not reachable or failed; the step will be retried');
}

export interface EicHostResolver extends HostResolver {
  /** Closes every host this resolver created. */
  close(): Promise<void>;
}

/**
 * Resolves `eic` workspaces to one EicHost per instance (so its connection is reused across
 * steps). The plugins root is `rootPrefix` + the runtime's root; files go to the agent user.
 */
export function eicHostResolver(options: EicHostOptions): EicHostResolver {
  const hosts = new Map<string, EicHost>();
  const resolve: HostResolver = (workspace) => {
    if (workspace.transport !== 'eic') {
      throw new PluginError('HostUnreachable', `workspace ${workspace.id} uses transport ${workspace.transport}, which this resolver does not serve`, 'configure the matching host adapter');
    }
    const root = `${options.rootPrefix ?? ''}${pluginsRoot(workspace.runtime)}`;
    if (!workspace.instanceId || !workspace.privateIp) {
      throw new PluginError('HostUnreachable', `workspace ${workspace.id} has no instance id or private IP recorded`, 'the workspace directory must record the instance (is it still starting?)');
    }
    const key = `${workspace.instanceId}@${workspace.privateIp}`;
    let host = hosts.get(key);
    if (!host) {
      host = new EicHost({ instanceId: workspace.instanceId, privateIp: workspace.privateIp }, options);
      hosts.set(key, host);
    }
    return { host, root, ownerSpec: AGENT_OWNER };
  };
  return Object.assign(resolve, {
    close: async (): Promise<void> => {
      const all = [...hosts.values()];
      hosts.clear();
      await Promise.all(all.map((host) => host.close()));
    },
  });
}
