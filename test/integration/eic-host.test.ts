/**
 * The EC2 Instance Connect adapter (lambdas/core/host/eic-host.ts) over real protocols on
 * loopback: the real EC2InstanceConnectClient against the EIC API stand-in (SigV4-checked), a real
 * OpenSSH sshd whose AuthorizedKeysCommand serves the pushed keys, and the EIC Endpoint tunnel
 * stand-in (presigned WebSocket, signature recomputed). Host steps run as a non-root OS user
 * through `sudo -n`, exactly as on a workspace instance.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { EC2InstanceConnectClient } from '@aws-sdk/client-ec2-instance-connect';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
// @ts-expect-error ssh2 ships no types for its protocol layer; the test holds the loop right after an exec request.
import Protocol from 'ssh2/lib/protocol/Protocol.js';
import { PluginError } from '../../lambdas/core/errors.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { EicHost, eicHostResolver, type TunnelRefusal } from '../../lambdas/core/host/eic-host.ts';
import { EicEndpointAtCapacity, openEicTunnel, presignOpenTunnelPath, presignOpenTunnelUrl } from '../../lambdas/core/host/eic-tunnel.ts';
import { HostSteps, type PluginRef } from '../../lambdas/core/host/host-steps.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { goodTarball, MANIFEST } from '../fixtures/hostile-tarballs.ts';
import { TEST_CREDENTIALS, TEST_REGION } from '../servers/eic-api.ts';
import { startEicHarness, TEST_ENDPOINT_DNS, TEST_ENDPOINT_ID, type EicHarness } from '../servers/eic-harness.ts';
import { sshdAvailable } from '../servers/sshd.ts';
import { failure } from '../helpers/plugin-error.ts';

const MiB = 1024 * 1024;
const sha256 = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');


function pluginFiles(name: string, version: string): Record<string, string> {
  return {
    'plugin.yaml': `name: ${name}\nversion: ${version}\ndescription: eic test\n`,
    'skills/greet/SKILL.md': `greet v${version}\n`,
    'config/settings.yaml': `version: ${version}\n`,
  };
}

interface Installed {
  stamp: string;
  sha: string;
  /** Each step's result; swap's is `{ result, how }`. */
  results: unknown[];
}

/** The exchange methods that replace live in one system call (docs/host-layout.md). */
const ATOMIC_EXCHANGE = /^(mv-exchange|exch|perl-renameat2:(316|276)|python3-renameat2)$/;

/** One full install through HostSteps, in the workflows' order: lock → stage → swap → snapshot → mark → unlock. */
async function install(steps: HostSteps, workspaceId: string, name: string, version: string): Promise<Installed> {
  const buf = await goodTarball(pluginFiles(name, version));
  const sha = sha256(buf);
  const stamp = newStamp();
  const plugin: PluginRef = { name, stamp };
  const execution = executionName(workspaceId, name, stamp);
  const files = pluginFiles(name, version);
  const unpacked = Object.values(files).reduce((n, f) => n + Buffer.byteLength(f), 0);
  const results: unknown[] = [];
  results.push((await steps.lock(plugin, execution, process.pid, 300)).result);
  results.push((await steps.stage(plugin, sha, 0, { stream: Readable.from([buf]) }, unpacked)).result);
  results.push(await steps.swap(plugin));
  results.push(await steps.snapshot(plugin));
  results.push(await steps.mark(plugin, { version, sha256: sha, execution, installedAt: new Date().toISOString() }));
  results.push(await steps.unlock(plugin));
  return { stamp, sha, results };
}

function expectOwnedByAgent(dir: string): void {
  const queue = [dir];
  let count = 0;
  while (queue.length) {
    const path = queue.shift()!;
    const st = statSync(path);
    expect({ path, uid: st.uid, gid: st.gid }).toEqual({ path, uid: 1000, gid: 1000 });
    count++;
    if (st.isDirectory()) {
      for (const entry of readdirSync(path)) queue.push(join(path, entry));
    }
  }
  expect(count).toBeGreaterThan(3);
}

/** Waits until `predicate` holds (polling), or fails after `ms` (generous: it bounds a hang on a loaded machine, never checks speed). */
async function until(predicate: () => boolean | Promise<boolean>, ms = 60_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function partialExists(root: string, name: string, stamp: string): Promise<boolean> {
  const entries = await readdir(join(root, '.staging')).catch(() => [] as string[]);
  return entries.includes(`${name}.${stamp}.partial`);
}

/** A plugin tarball with one incompressible file of `bytes`, written to `path`; returns its sha256. */
async function bigTarball(path: string, bytes: number): Promise<string> {
  const archive = pack();
  const hash = createHash('sha256');
  const written = pipeline(
    archive,
    createGzip({ level: 1 }),
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback(null, chunk);
      },
    }),
    createWriteStream(path),
  );
  const mtime = new Date('2026-01-01T00:00:00Z');
  archive.entry({ name: 'plugin.yaml', mode: 0o644, mtime }, MANIFEST);
  let left = bytes;
  const blob = new Readable({
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(MiB, left);
      left -= n;
      this.push(randomBytes(n));
    },
  });
  const entry = archive.entry({ name: 'blob.bin', size: bytes, mode: 0o644, mtime });
  await pipeline(blob, entry);
  archive.finalize();
  await written;
  return hash.digest('hex');
}

/** Opens a WebSocket by hand and reports the HTTP status (101 when the tunnel opened). */
function rawOpen(url: string, host: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers: { host }, handshakeTimeout: 5_000 });
    ws.on('unexpected-response', (req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    ws.on('open', () => {
      resolve(101);
      ws.terminate();
    });
    ws.on('error', () => resolve(-1));
  });
}

// ---------------------------------------------------------------------------------------------

describe.skipIf(!sshdAvailable)('EIC host, direct to the private IP', () => {
  let h: EicHarness;
  beforeAll(async () => {
    h = await startEicHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('counts connecting against the step\'s time: a key push slower than the whole budget ends the step HostTimeout; the late connection serves the retry', async () => {
    const target = h.resolverWith({ stepTimeoutMs: 1_000 })(h.workspace('ws-slow-push'));
    const handshakes = h.counters.handshakes;
    // The key is stored, and the API's answer is held past the step's whole budget.
    h.eicApi.delayNextResponse(3_000);
    const error = await failure(new HostSteps(target).list());
    expect(error.code, error.message).toBe('HostTimeout');
    expect(error.message).toMatch(/could not connect within the step's 1000 ms/);
    expect(error.retryable).toBe(true);
    // The connection finished after the step gave up is kept, not leaked half-open: the retry
    // (with a budget that covers what is left of the push) uses it, with no second handshake.
    const listed = await new HostSteps(target, 20_000).list();
    expect(listed.plugins).toEqual([]);
    expect(h.counters.handshakes - handshakes).toBe(1);
  });

  it('resolves eic workspaces to <rootPrefix><runtime root>, owner 1000:1000, and refuses others', () => {
    const target = h.resolver(h.workspace('ws-a'));
    expect(target.host).toBeInstanceOf(EicHost);
    expect(target.host.transport).toBe('eic');
    expect(target.host.streamsStdin).toBe(true);
    expect(target.root).toBe(`${h.hostRoot}/configs/plugins`);
    expect(target.ownerSpec).toBe('1000:1000');
    expect(h.resolver(h.workspace('ws-b', 'hermes')).root).toBe(`${h.hostRoot}/home/ubuntu/.hermes/plugins`);
    // One host (and so one connection) per instance.
    expect(h.resolver(h.workspace('ws-c')).host).toBe(target.host);
    expect(() => h.resolver({ id: 'ws-l', runtime: 'claude-code', transport: 'local', localRoot: '/tmp/x' })).toThrow(PluginError);
    expect(() => h.resolver({ ...h.workspace('ws-x'), privateIp: undefined })).toThrow(/private IP/);
    expect(() => h.resolver(h.workspace('ws-e', 'external'))).toThrow(PluginError);
  });

  it('installs v1 then v2 through lock → stage → swap → snapshot → mark → unlock, as eicuser under sudo -n', async () => {
    const ws = h.workspace('ws-direct');
    const steps = new HostSteps(h.resolver(ws));
    const pushesBefore = h.counters.pushes;
    const handshakesBefore = h.counters.handshakes;

    // A first install renames staging onto live (nothing displaced, no snapshot); an upgrade
    // exchanges them in one renameat2 and the displaced v1 becomes the snapshot.
    const v1 = await install(steps, ws.id, 'demo', '1.0.0');
    expect(v1.results).toEqual(['acquired', 'staged', { result: 'renamed', how: 'rename' }, 'none', 'marked', 'released']);
    const v2 = await install(steps, ws.id, 'demo', '2.0.0');
    expect(v2.results).toEqual(['acquired', 'staged', { result: 'exchanged', how: expect.stringMatching(ATOMIC_EXCHANGE) }, 'moved', 'marked', 'released']);

    const root = join(h.hostRoot, 'configs/plugins');
    const live = join(root, 'demo');
    expect(readFileSync(join(live, 'skills/greet/SKILL.md'), 'utf8')).toBe('greet v2.0.0\n');
    expect(JSON.parse(readFileSync(join(live, '.complete'), 'utf8'))).toMatchObject({ name: 'demo', version: '2.0.0', sha256: v2.sha, stamp: v2.stamp });
    // Nothing of the installer's own inside the agent's directory but .complete.
    expect(readdirSync(live).sort()).toEqual(['.complete', 'config', 'plugin.yaml', 'skills']);
    expectOwnedByAgent(live);
    const snapshot = join(root, `.previous/demo.${v2.stamp}`);
    expect(readFileSync(join(snapshot, 'skills/greet/SKILL.md'), 'utf8')).toBe('greet v1.0.0\n');
    expectOwnedByAgent(snapshot);
    // The root and its management directories are root's (sudo -n), although eicuser connected.
    const owner = (path: string) => {
      const st = statSync(path);
      return { path, uid: st.uid, mode: (st.mode & 0o7777).toString(8) };
    };
    expect(owner(root)).toEqual({ path: root, uid: 0, mode: '755' });
    for (const dir of ['.staging', '.previous', '.failed', '.locks', '.meta']) {
      expect(owner(join(root, dir))).toEqual({ path: join(root, dir), uid: 0, mode: '700' });
    }
    // The marker record list reports from is root's, keyed by live's inode.
    const { dev, ino } = statSync(live);
    expect(readFileSync(join(root, `.meta/demo@${dev}-${ino}`), 'utf8').split('\n')).toEqual(expect.arrayContaining([`stamp=${v2.stamp}`, 'version=2.0.0', `sha256=${v2.sha}`]));
    expect(statSync(join(root, `.meta/demo@${dev}-${ino}`)).uid).toBe(0);

    const listed = await steps.list();
    expect(listed.plugins).toEqual([
      { name: 'demo', complete: true, stamp: v2.stamp, marker: { name: 'demo', version: '2.0.0', sha256: v2.sha, stamp: v2.stamp, installedAt: expect.any(String), execution: executionName(ws.id, 'demo', v2.stamp) } },
    ]);
    expect(listed.previous).toEqual([{ name: 'demo', stamp: v2.stamp, pinned: false }]);

    // Logged in as the non-root user; 13 steps over one reused connection and one pushed key.
    expect(h.sshd.log()).toMatch(/Accepted publickey for eicuser from 127\.0\.0\.1/);
    expect(h.counters.handshakes - handshakesBefore).toBe(1);
    expect(h.counters.pushes - pushesBefore).toBe(1);
  });

  it('shares one connection between concurrent steps, and opens one per step with idleTimeoutMs 0', async () => {
    const pooled = new HostSteps(h.resolverWith({})(h.workspace('ws-concurrent')));
    let handshakes = h.counters.handshakes;
    const lists = await Promise.all(Array.from({ length: 5 }, () => pooled.list()));
    expect(lists.every((l) => Array.isArray(l.plugins))).toBe(true);
    expect(h.counters.handshakes - handshakes).toBe(1);

    const unpooled = new HostSteps(h.resolverWith({ idleTimeoutMs: 0 })(h.workspace('ws-unpooled')));
    handshakes = h.counters.handshakes;
    const pushes = h.counters.pushes;
    await unpooled.list();
    await unpooled.list();
    expect(h.counters.handshakes - handshakes).toBe(2);
    expect(h.counters.pushes - pushes).toBe(2);
  });

  it('maps what the script reported to typed errors (LockBusy, StagingMissing) like any transport', async () => {
    const ws = h.workspace('ws-errors');
    const steps = new HostSteps(h.resolver(ws));
    const a: PluginRef = { name: 'busy', stamp: newStamp() };
    const b: PluginRef = { name: 'busy', stamp: newStamp() };
    await steps.lock(a, executionName(ws.id, 'busy', a.stamp), process.pid, 300);
    expect((await failure(steps.lock(b, executionName(ws.id, 'busy', b.stamp), process.pid, 300))).code).toBe('LockBusy');
    expect((await failure(steps.swap(a))).code).toBe('StagingMissing');
    expect((await failure(steps.snapshot(a))).code).toBe('LiveNotOurs');
    expect(await steps.unlock(a)).toBe('released');
  });

  it('a sudo that wants a password is HostPermissionDenied; a run as eicuser itself refuses the root-owned layout (UnsafeHostLayout)', async () => {
    // sudo -n refused: played by first becoming a user who is not in sudoers.
    const refused = new HostSteps(h.resolverWith({ privilege: 'sudo -n -u nobody sudo -n' })(h.workspace('ws-nosudo')));
    const a: PluginRef = { name: 'layout', stamp: newStamp() };
    const denied = await failure(refused.lock(a, executionName('ws-nosudo', 'layout', a.stamp), process.pid, 300));
    expect(denied.code, denied.message).toBe('HostPermissionDenied');
    expect(denied.message).toMatch(/sudo refused/);
    expect(denied.hint).toMatch(/NOPASSWD/);
    expect(denied.retryable).toBe(false);

    // The plugins root (made by an earlier step under sudo) is root's: the OS user without sudo
    // must not act on it, and is told why.
    const steps = new HostSteps(h.resolver(h.workspace('ws-layout')));
    await steps.lock(a, executionName('ws-layout', 'layout', a.stamp), process.pid, 300);
    expect(await steps.unlock(a)).toBe('released');
    const unprivileged = new HostSteps(h.resolverWith({ privilege: '' })(h.workspace('ws-layout')));
    const unsafe = await failure(unprivileged.lock(a, executionName('ws-layout', 'layout', a.stamp), process.pid, 300));
    expect(unsafe.code, unsafe.message).toBe('UnsafeHostLayout');
    expect(unsafe.message).toMatch(/configs\/plugins is owned by another user/);
    expect(existsSync(join(h.hostRoot, 'configs/plugins/.locks/layout'))).toBe(false);
  });

  it('streams a 64 MiB tarball through the channel with bounded memory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eic-big-'));
    try {
      const file = join(dir, 'big.tar.gz');
      const sha = await bigTarball(file, 64 * MiB);
      const size = statSync(file).size;
      expect(size).toBeGreaterThan(64 * MiB);

      const ws = h.workspace('ws-big');
      const steps = new HostSteps(h.resolver(ws));
      const plugin: PluginRef = { name: 'big', stamp: newStamp() };
      await steps.lock(plugin, executionName(ws.id, 'big', plugin.stamp), process.pid, 300);

      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 20);
      const started = Date.now();
      try {
        const staged = await steps.stage(plugin, sha, 0, { stream: createReadStream(file, { highWaterMark: 256 * 1024 }) }, 64 * MiB + MANIFEST.length);
        expect(staged.result).toBe('staged');
      } finally {
        clearInterval(sampler);
      }
      const growth = peak - baseline;
      console.info(`[eic] staged ${(size / MiB).toFixed(1)} MiB in ${Date.now() - started} ms; RSS growth ${(growth / MiB).toFixed(1)} MiB`);
      expect(growth).toBeLessThan(64 * MiB);
      const blob = join(h.hostRoot, `configs/plugins/.staging/big.${plugin.stamp}/blob.bin`);
      expect(statSync(blob).size).toBe(64 * MiB);
      expect(statSync(blob).uid).toBe(1000);
      expect(await steps.unlock(plugin)).toBe('released');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe.skipIf(!sshdAvailable)('EIC host through an EIC Endpoint tunnel', () => {
  let h: EicHarness;
  beforeAll(async () => {
    h = await startEicHarness({ viaEndpoint: true });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('builds the open-tunnel URL as the AWS CLI does, presigned for 60 s', async () => {
    const url = new URL(
      await presignOpenTunnelUrl({
        dnsName: TEST_ENDPOINT_DNS,
        endpointId: TEST_ENDPOINT_ID,
        privateIp: '10.0.1.5',
        remotePort: 22,
        maxTunnelDurationSeconds: 600,
        credentials: TEST_CREDENTIALS,
        region: TEST_REGION,
        signingDate: new Date('2026-03-01T12:00:00Z'),
      }),
    );
    expect(`${url.protocol}//${url.host}${url.pathname}`).toBe(`wss://${TEST_ENDPOINT_DNS}/openTunnel`);
    expect([...url.searchParams.keys()].slice(0, 4)).toEqual(['instanceConnectEndpointId', 'remotePort', 'privateIpAddress', 'maxTunnelDuration']);
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      instanceConnectEndpointId: TEST_ENDPOINT_ID,
      remotePort: '22',
      privateIpAddress: '10.0.1.5',
      maxTunnelDuration: '600',
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
      'X-Amz-Credential': `${TEST_CREDENTIALS.accessKeyId}/20260301/${TEST_REGION}/ec2-instance-connect/aws4_request`,
      'X-Amz-Date': '20260301T120000Z',
      'X-Amz-Expires': '60',
      'X-Amz-SignedHeaders': 'host',
    });
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('installs through the tunnel (the stand-in verified the presigned signature)', async () => {
    const ws = h.workspace('ws-tunnel');
    const steps = new HostSteps(h.resolver(ws));
    const tunnelsBefore = h.counters.tunnels;
    const v1 = await install(steps, ws.id, 'tunneled', '1.0.0');
    expect(v1.results).toEqual(['acquired', 'staged', { result: 'renamed', how: 'rename' }, 'none', 'marked', 'released']);
    const live = join(h.hostRoot, 'configs/plugins/tunneled');
    expect(readFileSync(join(live, 'skills/greet/SKILL.md'), 'utf8')).toBe('greet v1.0.0\n');
    expectOwnedByAgent(live);
    expect(h.counters.tunnels - tunnelsBefore).toBe(1);
    expect(h.endpoint!.rejected).toBe(0);
  });

  it('rejects a tampered signature, a tampered parameter, a wrong secret and a disallowed IP with 403', async () => {
    const endpoint = h.endpoint!;
    const request = { dnsName: TEST_ENDPOINT_DNS, endpointId: TEST_ENDPOINT_ID, privateIp: '127.0.0.1', remotePort: 22, credentials: TEST_CREDENTIALS, region: TEST_REGION };
    const path = await presignOpenTunnelPath(request);
    // Control: the untouched URL opens.
    expect(await rawOpen(`${endpoint.url}${path}`, TEST_ENDPOINT_DNS)).toBe(101);

    const rejectedBefore = endpoint.rejected;
    const tamperedSignature = path.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
    expect(tamperedSignature).not.toBe(path);
    expect(await rawOpen(`${endpoint.url}${tamperedSignature}`, TEST_ENDPOINT_DNS)).toBe(403);
    expect(endpoint.lastRejection).toBe('signature does not match');

    const tamperedIp = path.replace('privateIpAddress=127.0.0.1', 'privateIpAddress=127.0.0.2');
    expect(await rawOpen(`${endpoint.url}${tamperedIp}`, TEST_ENDPOINT_DNS)).toBe(403);
    expect(endpoint.lastRejection).toBe('signature does not match');

    // Signed for another host name than the one presented.
    expect(await rawOpen(`${endpoint.url}${path}`, 'eice-other.example.com')).toBe(403);

    const wrongSecret = await failure(openEicTunnel({ ...request, url: endpoint.url, credentials: { ...TEST_CREDENTIALS, secretAccessKey: 'not-the-secret' } }));
    expect(wrongSecret.code).toBe('HostUnreachable');
    expect(wrongSecret.message).toMatch(/HTTP 403/);

    const otherIp = await failure(openEicTunnel({ ...request, url: endpoint.url, privateIp: '10.0.0.9' }));
    expect(otherIp.code).toBe('HostUnreachable');
    expect(endpoint.lastRejection).toMatch(/privateIpAddress 10\.0\.0\.9 is not allowed/);

    const otherPort = await failure(openEicTunnel({ ...request, url: endpoint.url, remotePort: 2222 }));
    expect(otherPort.code).toBe('HostUnreachable');
    expect(endpoint.lastRejection).toMatch(/remotePort 2222/);

    // Temporary credentials, as Lambda has them: the session token must travel in the URL and be
    // covered by the signature.
    expect(path).toMatch(/[?&]X-Amz-Security-Token=/);
    const stripped = path.replace(/&?X-Amz-Security-Token=[^&]*/, '');
    expect(await rawOpen(`${endpoint.url}${stripped}`, TEST_ENDPOINT_DNS)).toBe(403);
    expect(endpoint.lastRejection).toMatch(/X-Amz-Security-Token is missing/);
    const otherToken = path.replace(/X-Amz-Security-Token=[^&]*/, 'X-Amz-Security-Token=another-token');
    expect(await rawOpen(`${endpoint.url}${otherToken}`, TEST_ENDPOINT_DNS)).toBe(403);
    expect(endpoint.lastRejection).toMatch(/security token .* invalid/);
    const { sessionToken: _dropped, ...longTerm } = TEST_CREDENTIALS;
    void _dropped;
    const withoutToken = await failure(openEicTunnel({ ...request, url: endpoint.url, credentials: longTerm }));
    expect(withoutToken.code).toBe('HostUnreachable');
    expect(endpoint.lastRejection).toMatch(/X-Amz-Security-Token is missing/);

    expect(endpoint.rejected - rejectedBefore).toBe(9);
  });

  it('turns a tunnel dropped mid-stage into a retryable error, and the retry succeeds', async () => {
    const ws = h.workspace('ws-tunnel-drop');
    const resolver = h.resolverWith({});
    const steps = new HostSteps(resolver(ws));
    const buf = await goodTarball(pluginFiles('dropped', '1.0.0'));
    const plugin: PluginRef = { name: 'dropped', stamp: newStamp() };
    await steps.lock(plugin, executionName(ws.id, 'dropped', plugin.stamp), process.pid, 300);
    const slow = new PassThrough();
    // Half the tarball, and no end: the host waits for more.
    slow.write(buf.subarray(0, buf.length >> 1));
    const staging = failure(steps.stage(plugin, sha256(buf), 0, { stream: slow }));
    const root = join(h.hostRoot, 'configs/plugins');
    await until(() => partialExists(root, 'dropped', plugin.stamp), 60_000, 'the stage to start');
    expect(h.endpoint!.dropAll()).toBeGreaterThanOrEqual(1);
    const error = await staging;
    expect(error.retryable, `${error.code}: ${error.message}`).toBe(true);
    expect(['HostStepInterrupted', 'HostUnreachable']).toContain(error.code);
    expect(slow.destroyed).toBe(true);
    // The host saw EOF after half the bytes: sha256 mismatch, partial removed.
    await until(async () => !(await partialExists(root, 'dropped', plugin.stamp)), 60_000, 'the host to clean up');
    // The step is idempotent: the workflow's retry, with the same stamp, stages cleanly.
    expect((await steps.stage(plugin, sha256(buf), 0, { stream: Readable.from([buf]) })).result).toBe('staged');
    expect(await steps.unlock(plugin)).toBe('released');
  });
});

// ---------------------------------------------------------------------------------------------

/** Opens a tunnel by hand (as another client of the endpoint would) and keeps it open. */
async function holdTunnel(endpointUrl: string, credentials = TEST_CREDENTIALS): Promise<WebSocket> {
  const path = await presignOpenTunnelPath({ dnsName: TEST_ENDPOINT_DNS, endpointId: TEST_ENDPOINT_ID, privateIp: '127.0.0.1', remotePort: 22, credentials, region: TEST_REGION });
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${endpointUrl}${path}`, { headers: { host: TEST_ENDPOINT_DNS }, handshakeTimeout: 5_000 });
    ws.on('open', () => resolve(ws));
    ws.on('unexpected-response', (_req, res) => reject(new Error(`tunnel refused: HTTP ${res.statusCode}`)));
    ws.on('error', reject);
  });
}

describe.skipIf(!sshdAvailable)('EIC Endpoint at its connection limit', () => {
  const CAP = 2;
  let h: EicHarness;
  let held: WebSocket[] = [];
  /** Takes every slot of the endpoint, once the tunnels of earlier steps have closed. */
  const fill = async (): Promise<void> => {
    await until(() => h.endpoint!.open === held.length, 60_000, 'earlier tunnels to close');
    while (held.length < CAP) held.push(await holdTunnel(h.endpoint!.url));
    expect(h.endpoint!.open).toBe(CAP);
  };
  const releaseAll = async (): Promise<void> => {
    for (const ws of held) ws.terminate();
    held = [];
    await until(() => h.endpoint!.open === 0, 60_000, 'the held tunnels to close');
  };
  beforeAll(async () => {
    h = await startEicHarness({ viaEndpoint: true, maxConnections: CAP, host: { idleTimeoutMs: 0 } });
  });
  afterAll(async () => {
    for (const ws of held) ws.terminate();
    await h?.stop();
  });

  it('the stand-in refuses a signed tunnel past its cap with 429 naming the limit, and never carries more', async () => {
    await fill();
    const endpoint = h.endpoint!;
    const before = endpoint.refusedAtCap;
    const refused = await failure(openEicTunnel({ dnsName: TEST_ENDPOINT_DNS, endpointId: TEST_ENDPOINT_ID, privateIp: '127.0.0.1', remotePort: 22, credentials: TEST_CREDENTIALS, region: TEST_REGION, url: endpoint.url }));
    expect(refused).toBeInstanceOf(EicEndpointAtCapacity);
    expect(refused.code).toBe('HostUnreachable');
    expect(refused.message).toMatch(/HTTP 429 .*ThrottlingException.*maximum of 2 concurrent connections/);
    expect(endpoint.refusedAtCap - before).toBe(1);
    expect(endpoint.peak).toBe(CAP);
    await releaseAll();
  });

  it('waits for a refused tunnel (jittered retries) instead of failing the step, and reports each refusal', async () => {
    await fill();
    const refusals: TunnelRefusal[] = [];
    const resolver = h.resolverWith({ idleTimeoutMs: 0, tunnelBackoff: { baseMs: 20, maxMs: 200 }, onTunnelRefused: (r) => refusals.push(r) });
    const ws = h.workspace('ws-at-cap');
    const listing = new HostSteps(resolver(ws)).list();
    await until(() => refusals.length >= 3, 60_000, 'the endpoint to refuse the adapter a few times');
    await releaseAll();
    const listed = await listing;
    expect(listed.plugins).toEqual([]);
    expect(refusals.every((r) => r.status === 429 && r.endpointId === TEST_ENDPOINT_ID && r.instanceId === h.instanceId)).toBe(true);
    expect(refusals.map((r) => r.attempt).slice(0, 3)).toEqual([1, 2, 3]);
    expect(refusals.every((r) => r.delayMs >= 0 && r.delayMs < 200)).toBe(true);
    const { host } = resolver(ws);
    expect((host as EicHost).tunnelRefusals).toBe(refusals.length);
    expect(h.endpoint!.peak).toBe(CAP);
  });

  it('ends a step still refused at its deadline as HostTimeout naming the limit; the host serves the next step', async () => {
    await fill();
    const refusals: TunnelRefusal[] = [];
    // 10 s, not less: the budget also pays for the key push, and on a loaded machine a shorter
    // one could run out before the first tunnel is even asked for (no refusal to report).
    const resolver = h.resolverWith({ idleTimeoutMs: 0, stepTimeoutMs: 10_000, tunnelBackoff: { baseMs: 20, maxMs: 200 }, onTunnelRefused: (r) => refusals.push(r) });
    const ws = h.workspace('ws-cap-deadline');
    const error = await failure(new HostSteps(resolver(ws)).list());
    expect(error.code).toBe('HostTimeout');
    expect(error.retryable).toBe(true);
    // The step's deadline timer or the adapter's own wait, whichever notices first, says it.
    expect(error.message).toMatch(/could not connect .*within the step's .*: EIC endpoint eice-0123456789abcdef0 refused the tunnel \d+ times in \d+ ms at its limit of 20 concurrent connections/);
    expect(error.hint).toMatch(/at most 20 tunnels at once .*not adjustable/);
    expect(refusals.length).toBeGreaterThan(0);
    await releaseAll();
    // The next step, on a fresh connection with a budget that cannot run out on a busy machine.
    expect((await new HostSteps(h.resolverWith({ idleTimeoutMs: 0, stepTimeoutMs: 60_000 })(ws)).list()).plugins).toEqual([]);
  });

  it('a 403 (bad signature) fails at once, even with the endpoint full: no wait, no retry', async () => {
    await fill();
    const endpoint = h.endpoint!;
    const refusals: TunnelRefusal[] = [];
    const rejectedBefore = endpoint.rejected;
    const atCapBefore = endpoint.refusedAtCap;
    const resolver = h.resolverWith({
      idleTimeoutMs: 0,
      onTunnelRefused: (r) => refusals.push(r),
      endpoint: { ...h.hostOptions.endpoint!, credentials: { ...TEST_CREDENTIALS, secretAccessKey: 'not-the-secret' } },
    });
    const error = await failure(new HostSteps(resolver(h.workspace('ws-bad-sig'))).list());
    expect(error.code).toBe('HostUnreachable');
    expect(error).not.toBeInstanceOf(EicEndpointAtCapacity);
    expect(error.message).toMatch(/HTTP 403/);
    expect(error.hint).toMatch(/OpenTunnel/);
    // One request, refused for its signature: the endpoint's cap was not what answered.
    expect(endpoint.rejected - rejectedBefore).toBe(1);
    expect(endpoint.refusedAtCap).toBe(atCapBefore);
    expect(refusals).toEqual([]);
    await releaseAll();
  });
});

// ---------------------------------------------------------------------------------------------

describe.skipIf(!sshdAvailable)('EIC host key expiry', () => {
  let h: EicHarness;
  beforeAll(async () => {
    h = await startEicHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('re-pushes the key once when it expired before the connection authenticated', async () => {
    const steps = new HostSteps(h.resolverWith({})(h.workspace('ws-expiry')));
    // The key is stored already expired, as if the answer had been held until it expired (a slow
    // API, a long GC); a fixed expiry, not a race against a 1 s TTL on a loaded machine.
    h.eicApi.expireNextKeys(1);
    const pushes = h.counters.pushes;
    const failed = h.sshd.failedAuth;
    const handshakes = h.counters.handshakes;
    const listed = await steps.list();
    expect(listed.plugins).toEqual([]);
    expect(h.counters.pushes - pushes).toBe(2);
    expect(h.sshd.failedAuth - failed).toBeGreaterThanOrEqual(1);
    expect(h.counters.handshakes - handshakes).toBe(1);
  });

  it('gives up after one re-push: a user the instance refuses is HostUnreachable with a hint', async () => {
    const steps = new HostSteps(h.resolverWith({ osUser: 'nosuchuser' })(h.workspace('ws-user')));
    const pushes = h.counters.pushes;
    const error = await failure(steps.list());
    expect(error.code).toBe('HostUnreachable');
    expect(error.message).toMatch(/authentication as nosuchuser@/);
    expect(error.hint).toMatch(/OS user nosuchuser/);
    expect(h.counters.pushes - pushes).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------

describe.skipIf(!sshdAvailable)('EIC host failures', () => {
  let h: EicHarness;
  let blackhole: Server;
  let blackholePort = 0;
  const held = new Set<Socket>();
  beforeAll(async () => {
    h = await startEicHarness();
    // Accepts TCP and never says a word: an SSH handshake that cannot finish.
    blackhole = createServer((socket) => {
      held.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => held.delete(socket));
    });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    const address = blackhole.address();
    blackholePort = typeof address === 'object' && address ? address.port : 0;
  });
  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => (blackhole ? blackhole.close(() => resolve()) : resolve()));
    await h?.stop();
  });

  it('times out a step whose stdin never ends: HostTimeout, source released, host usable after', async () => {
    const ws = h.workspace('ws-timeout');
    // Only the stalled stage gets the short budget: a lock under that budget timed out at load 15
    // (the budget counts the connection). The stage cannot finish, so it ends HostTimeout whether
    // the deadline catches it connecting or streaming.
    const steps = new HostSteps(h.resolverWith({ stepTimeoutMs: 60_000 })(ws));
    const quick = new HostSteps(h.resolverWith({ stepTimeoutMs: 1_500 })(ws));
    const plugin: PluginRef = { name: 'slow', stamp: newStamp() };
    await steps.lock(plugin, executionName(ws.id, 'slow', plugin.stamp), process.pid, 300);
    const never = new PassThrough();
    never.write(randomBytes(1024));
    const error = await failure(quick.stage(plugin, 'a'.repeat(64), 0, { stream: never }));
    // HostTimeout (not the harness's test timeout) is the step deadline firing.
    expect(error.code).toBe('HostTimeout');
    expect(error.retryable).toBe(true);
    expect(never.destroyed).toBe(true);
    // A fresh connection serves the next step.
    expect(await steps.unlock(plugin)).toBe('released');
  });

  it('a stdin stream that fails while the connection is still being made is TransferCorrupted at once, with no unhandled error', async () => {
    // A fresh connection per step, and a slow key push: the stream breaks off before the channel opens.
    const steps = new HostSteps(h.resolverWith({ idleTimeoutMs: 0, stepTimeoutMs: 20_000 })(h.workspace('ws-early-drop')));
    const buf = await goodTarball(pluginFiles('early', '1.0.0'));
    const plugin: PluginRef = { name: 'early', stamp: newStamp() };
    await steps.lock(plugin, executionName('ws-early-drop', 'early', plugin.stamp), process.pid, 300);
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => void uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const source = new Readable({ read() {} });
      source.push(buf.subarray(0, buf.length >> 1));
      h.eicApi.delayNextResponse(600);
      setTimeout(() => source.destroy(new Error('download broke off')), 50);
      const error = await failure(steps.stage(plugin, sha256(buf), 0, { stream: source }));
      // TransferCorrupted, not HostTimeout: the step ended on the short stream, not at its 20 s deadline.
      expect(error.code, error.message).toBe('TransferCorrupted');
      expect(error.retryable).toBe(true);
      expect(source.destroyed).toBe(true);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
    expect(await partialExists(join(h.hostRoot, 'configs/plugins'), 'early', plugin.stamp)).toBe(false);
    expect((await steps.stage(plugin, sha256(buf), 0, { stream: Readable.from([buf]) })).result).toBe('staged');
    expect(await steps.rollback(plugin)).toEqual({ live: 'absent', changed: false, actions: ['removed-staging'], lock: 'released' });
  });

  it('turns an sshd session killed mid-stage into a retryable error, and the retry succeeds', async () => {
    const resolver = h.resolverWith({});
    const ws = h.workspace('ws-drop');
    const steps = new HostSteps(resolver(ws));
    const buf = await goodTarball(pluginFiles('killed', '1.0.0'));
    const plugin: PluginRef = { name: 'killed', stamp: newStamp() };
    await steps.lock(plugin, executionName(ws.id, 'killed', plugin.stamp), process.pid, 300);
    const slow = new PassThrough();
    slow.write(buf.subarray(0, buf.length >> 1));
    const staging = failure(steps.stage(plugin, sha256(buf), 0, { stream: slow }));
    await until(() => partialExists(join(h.hostRoot, 'configs/plugins'), 'killed', plugin.stamp), 60_000, 'the stage to start');
    expect(await h.sshd.killSessions()).toBeGreaterThan(0);
    const error = await staging;
    expect(error.retryable, `${error.code}: ${error.message}`).toBe(true);
    expect(['HostStepInterrupted', 'HostUnreachable']).toContain(error.code);
    expect((await steps.stage(plugin, sha256(buf), 0, { stream: Readable.from([buf]) })).result).toBe('staged');
    expect(await steps.unlock(plugin)).toBe('released');
  });

  it('keeps the exit status when the whole reply (channel open, output, exit status, close) arrives in one read', async () => {
    // A busy event loop (a loaded machine, a Lambda sharing its CPU) reads sshd's whole answer
    // at once: ssh2 then emits the channel's 'exit' in the same parse as the exec callback,
    // before any promise continuation could attach a listener.
    const steps = new HostSteps(h.resolverWith({ idleTimeoutMs: 30_000 })(h.workspace('ws-one-read')));
    expect((await steps.list()).plugins).toEqual([]);
    const handshakes = h.counters.handshakes;
    // Hold the event loop right after the exec request goes out, while sshd runs the step and
    // answers: its whole reply then waits in the socket and is parsed in one go.
    const original = Protocol.prototype.exec;
    let held = 0;
    Protocol.prototype.exec = function (this: unknown, ...args: unknown[]) {
      const sent = original.apply(this, args);
      held++;
      const until = Date.now() + 2_000;
      while (Date.now() < until) {
        // Busy on purpose: nothing else may run on this event loop now.
      }
      return sent;
    };
    let listed;
    try {
      listed = await steps.list();
    } finally {
      Protocol.prototype.exec = original;
    }
    expect(held).toBe(1);
    expect(listed.plugins).toEqual([]);
    expect(h.counters.handshakes - handshakes).toBe(0);
  });

  it('replaces a pooled connection that died while idle, transparently', async () => {
    const steps = new HostSteps(h.resolverWith({ idleTimeoutMs: 30_000 })(h.workspace('ws-idle')));
    const handshakes = h.counters.handshakes;
    expect((await steps.list()).plugins).toBeInstanceOf(Array);
    expect(await h.sshd.killSessions()).toBeGreaterThan(0);
    expect((await steps.list()).plugins).toBeInstanceOf(Array);
    expect(h.counters.handshakes - handshakes).toBe(2);
  });

  it('maps a handshake that never completes to HostUnreachable within connectTimeoutMs', async () => {
    const steps = new HostSteps(h.resolverWith({ port: blackholePort, connectTimeoutMs: 500 })(h.workspace('ws-blackhole')));
    const error = await failure(steps.list());
    expect(error.code).toBe('HostUnreachable');
    // The adapter's own connect deadline fired (its message names it), not the step's.
    expect(error.message).toMatch(/timed out after 500 ms/);
  });

  it('maps SendSSHPublicKey refusals: unknown instance and bad credentials are HostStepFailed, throttling is HostUnreachable', async () => {
    const unknown = await failure(new HostSteps(h.resolver(h.workspace('ws-gone', 'claude-code', 'i-00000000000000000'))).list());
    expect(unknown.code).toBe('HostStepFailed');
    expect(unknown.message).toMatch(/EC2InstanceNotFoundException/);
    expect(unknown.hint).toMatch(/instance id/);

    const badClient = new EC2InstanceConnectClient({ endpoint: h.eicApi.endpoint, region: TEST_REGION, credentials: { ...TEST_CREDENTIALS, secretAccessKey: 'wrong' }, maxAttempts: 1 });
    try {
      const denied = await failure(new HostSteps(h.resolverWith({ client: badClient })(h.workspace('ws-denied'))).list());
      expect(denied.code).toBe('HostStepFailed');
      expect(denied.hint).toMatch(/ec2-instance-connect:SendSSHPublicKey/);
    } finally {
      badClient.destroy();
    }

    const oneShot = new EC2InstanceConnectClient({ endpoint: h.eicApi.endpoint, region: TEST_REGION, credentials: { ...TEST_CREDENTIALS }, maxAttempts: 1 });
    try {
      h.eicApi.failNext({ status: 400, type: 'ThrottlingException', message: 'Rate exceeded' });
      const throttled = await failure(new HostSteps(h.resolverWith({ client: oneShot })(h.workspace('ws-throttled'))).list());
      expect(throttled.code).toBe('HostUnreachable');
      expect(throttled.retryable).toBe(true);
      h.eicApi.failNext({ status: 500, type: 'ServiceException', message: 'internal' });
      expect((await failure(new HostSteps(h.resolverWith({ client: oneShot })(h.workspace('ws-5xx'))).list())).code).toBe('HostUnreachable');
    } finally {
      oneShot.destroy();
    }
  });

  it('reports HostUnreachable once sshd is gone (pooled connection and new ones), with no unhandled error', async () => {
    const resolver = eicHostResolver({ ...h.hostOptions, idleTimeoutMs: 30_000 });
    try {
      const steps = new HostSteps(resolver(h.workspace('ws-stopped')));
      expect((await steps.list()).plugins).toBeInstanceOf(Array);
      await h.sshd.kill();
      const pooled = await failure(steps.list());
      expect(pooled.code).toBe('HostUnreachable');
      expect(pooled.message).toMatch(/ECONNREFUSED/);
      const fresh = await failure(new HostSteps(h.resolverWith({})(h.workspace('ws-stopped-2'))).list());
      expect(fresh.code).toBe('HostUnreachable');
      expect(fresh.retryable).toBe(true);
    } finally {
      await resolver.close();
    }
  });
});
