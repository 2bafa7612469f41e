/**
 * Install latency per remote transport, against a naive `ssh … tar -x` through the same sshd.
 *
 * Servers (all on loopback, from test/servers and test/helpers): one EIC harness with the EIC
 * Endpoint stand-in (a real OpenSSH sshd, the EC2 Instance Connect API stand-in, the Endpoint
 * WebSocket tunnel stand-in), and the AWS world around it (EC2 API stand-in as the workspace
 * directory, s3rver as the artifact store, the SSM Run Command stand-in). Three workspaces:
 *   eic-direct    EIC adapter, ssh2 straight to 127.0.0.1:<sshd port>
 *   eic-endpoint  EIC adapter through the Endpoint stand-in (WebSocket tunnel → the same sshd)
 *   ssm           SSM adapter: SendCommand + GetCommandInvocation polling, the host pulls the
 *                 tarball from s3rver with a presigned URL (curl)
 * Each iteration runs, in this order: the baseline, then one install workflow per transport
 * (runWorkflow over the AWS-world ports, default Retry delays, the .tar.gz path as the source).
 *
 * Baseline: `ssh -p <port> -i <key> … eicuser@127.0.0.1 'sudo -n tar -xzf - -C <dir>' < plugin.tgz`
 * into a fresh empty directory (created before, removed after the clock). Its ed25519 key is made
 * once with ssh-keygen and authorized the way the EIC API stand-in authorizes pushed keys (a file
 * in the sshd's key store, here valid for a day), so the baseline pays no key push.
 *
 * After each EIC install the adapter's connections are closed (untimed), so every install starts
 * without an open SSH connection, as one install in a fresh Lambda container would.
 */
import { openSync, closeSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { executionName } from '../lambdas/core/execution-name.ts';
import type { HostResolver } from '../lambdas/core/host/host-resolver.ts';
import { newStamp } from '../lambdas/core/stamp.ts';
import type { StepDeps } from '../lambdas/core/steps/step-deps.ts';
import type { EventSink } from '../lambdas/core/events/event-sink.ts';
import { runWorkflow, type RunOutcome } from '../lambdas/core/workflow/local-runner.ts';
import { startAwsWorld, type AwsWorld } from '../test/helpers/aws-world.ts';
import { startEicHarness, type EicHarness } from '../test/servers/eic-harness.ts';
import { sshdAvailable, SSHD_PATH } from '../test/servers/sshd.ts';
import {
  checkLive,
  countingResolver,
  FILE_COUNT,
  fmt,
  median,
  medians,
  msSince,
  PLUGIN,
  push,
  round,
  stats,
  table,
  timedSpawn,
  type Cleanups,
  type HostCalls,
  type PluginTarball,
} from './common.ts';

const run = promisify(execFile);

export interface TransportOptions {
  warmup: number;
  iterations: number;
}

export const TRANSPORTS = ['eic-direct', 'eic-endpoint', 'ssm'] as const;
export type TransportName = (typeof TRANSPORTS)[number];

/** The counters one install moved. */
interface InstallCounters {
  /** sshd "Accepted publickey" lines: SSH connections that authenticated. */
  handshakes: number;
  /** SendSSHPublicKey calls the EIC API stand-in stored. */
  keyPushes: number;
  /** WebSocket tunnels the Endpoint stand-in opened. */
  tunnels: number;
  /** sshd "Starting session: command" lines: exec channels the server started. */
  sshExecSessions: number;
  /** Host-script invocations as the RemoteHost port saw them (run() calls). */
  hostCommands: number;
  /** SSM API calls, by action. */
  ssmCalls: Record<string, number>;
  /** Requests that reached s3rver (Prepare's upload, head, delete; the stage's GetObject or presigned GET). */
  s3Requests: number;
}

interface InstallSample {
  ms: number;
  outcome: RunOutcome;
  counters: InstallCounters;
  hostOps: string[];
  hostMs: number[];
}

interface Setup {
  harness: EicHarness;
  world: AwsWorld;
  deps: StepDeps & { events: EventSink };
  calls: HostCalls;
  live: Record<TransportName, string>;
  /** Closes the EIC adapter's connections (each install starts without one). */
  closeEic: Record<TransportName, () => Promise<void>>;
  baselineKey: string;
  baselineDir: string;
}

const countMatches = (text: string, pattern: RegExp): number => text.match(pattern)?.length ?? 0;

function snapshotCounters(s: Setup, hostCommands: number): InstallCounters {
  const log = s.harness.sshd.log();
  return {
    handshakes: s.harness.counters.handshakes,
    keyPushes: s.harness.counters.pushes,
    tunnels: s.harness.counters.tunnels,
    sshExecSessions: countMatches(log, /Starting session: command /g),
    hostCommands,
    ssmCalls: { ...s.world.ssm.api.calls },
    s3Requests: s.world.s3.requests,
  };
}

function diffCounters(after: InstallCounters, before: InstallCounters): InstallCounters {
  const ssmCalls: Record<string, number> = {};
  for (const action of new Set([...Object.keys(after.ssmCalls), ...Object.keys(before.ssmCalls)])) {
    const d = (after.ssmCalls[action] ?? 0) - (before.ssmCalls[action] ?? 0);
    if (d !== 0) ssmCalls[action] = d;
  }
  return {
    handshakes: after.handshakes - before.handshakes,
    keyPushes: after.keyPushes - before.keyPushes,
    tunnels: after.tunnels - before.tunnels,
    sshExecSessions: after.sshExecSessions - before.sshExecSessions,
    hostCommands: after.hostCommands - before.hostCommands,
    ssmCalls,
    s3Requests: after.s3Requests - before.s3Requests,
  };
}

/** sshd logs from its own processes through a pipe: give the last lines a moment to arrive. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 100));

async function setUp(scratch: string, cleanups: Cleanups): Promise<Setup> {
  const harness = await startEicHarness({ viaEndpoint: true });
  cleanups.add('EIC harness (sshd, EIC API, Endpoint stand-ins)', () => harness.stop());

  // The direct workspace gets its own plugins root on the same sshd (rootPrefix), so each
  // transport replaces its own previous version.
  const directRoot = await mkdtemp(join(tmpdir(), 'bench-eic-direct-'));
  cleanups.add('EIC direct root', () => rm(directRoot, { recursive: true, force: true }));
  await chmod(directRoot, 0o755);
  const { stdout: uid } = await run('id', ['-u', harness.sshd.user]);
  const { stdout: gid } = await run('id', ['-g', harness.sshd.user]);
  await chown(directRoot, Number(uid.trim()), Number(gid.trim()));
  const direct = harness.resolverWith({ port: harness.sshd.port, endpoint: undefined, rootPrefix: directRoot });
  const viaEndpoint = harness.resolver;
  const eicResolver: HostResolver = (workspace) => (workspace.id === 'eic-direct' ? direct : viaEndpoint)(workspace);

  const world = await startAwsWorld(
    [
      { id: 'eic-direct', transport: 'eic' },
      { id: 'eic-endpoint', transport: 'eic' },
      { id: 'ssm', transport: 'ssm' },
    ],
    { eic: { resolver: eicResolver, hostRoot: harness.hostRoot, register: () => ({ instanceId: harness.instanceId, privateIp: '127.0.0.1' }) } },
  );
  cleanups.add('AWS world (EC2 API stand-in, s3rver, SSM stand-in)', () => world.stop());

  const calls: HostCalls = { ops: [], ms: [] };
  const deps = { ...world.deps, hosts: countingResolver(world.deps.hosts, calls) };

  // The baseline's static key, authorized as the EIC API stand-in authorizes pushed keys.
  const keyDir = join(scratch, 'baseline-key');
  await mkdir(keyDir, { mode: 0o700 });
  const baselineKey = join(keyDir, 'id_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'pluginctl-bench-baseline', '-f', baselineKey]);
  const publicKey = await readFile(`${baselineKey}.pub`, 'utf8');
  const userKeys = join(harness.sshd.keyStoreDir, harness.sshd.user);
  await mkdir(userKeys, { recursive: true, mode: 0o755 });
  await writeFile(join(userKeys, `${Date.now() + 24 * 3600 * 1000}-bench.pub`), publicKey, { mode: 0o644 });

  const baselineDir = join(directRoot, 'baseline');
  await mkdir(baselineDir, { mode: 0o755 });

  const plugins = (root: string) => join(root, 'configs/plugins', PLUGIN);
  return {
    harness,
    world,
    deps,
    calls,
    live: { 'eic-direct': plugins(directRoot), 'eic-endpoint': plugins(harness.hostRoot), ssm: plugins(world.ssm.hostRoot) },
    closeEic: { 'eic-direct': () => direct.close(), 'eic-endpoint': () => viaEndpoint.close(), ssm: async () => undefined },
    baselineKey,
    baselineDir,
  };
}

function sshArgs(s: Setup, remoteCommand: string, extra: string[] = []): string[] {
  return [
    '-p', String(s.harness.sshd.port),
    '-i', s.baselineKey,
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'LogLevel=ERROR',
    '-F', '/dev/null',
    ...extra,
    `${s.harness.sshd.user}@127.0.0.1`,
    remoteCommand,
  ];
}

const baselineArgs = (s: Setup, dir: string): string[] => sshArgs(s, `sudo -n tar -xzf - -C ${dir}`);

/**
 * Diagnostic: the same ssh with a command that does nothing, to split the baseline's time.
 * `curve25519`: OpenSSH 9 negotiates sntrup761x25519-sha512 by default; ssh2 (the EIC adapter)
 * does not offer it and gets curve25519-sha256@libssh.org.
 */
async function sshOnly(s: Setup, remoteCommand: string, curve25519 = false): Promise<number> {
  const r = await timedSpawn('ssh', sshArgs(s, remoteCommand, curve25519 ? ['-o', 'KexAlgorithms=curve25519-sha256@libssh.org'] : []));
  if (r.code !== 0) throw new Error(`ssh ${remoteCommand} exited ${r.code}: ${r.stderr}`);
  return r.ms;
}

async function baselineOnce(s: Setup, tarballs: PluginTarball[], i: number): Promise<{ ms: number; counters: InstallCounters }> {
  const tgz = tarballs[i % 2]!;
  const dir = join(s.baselineDir, `live-${i}`);
  await mkdir(dir);
  const before = snapshotCounters(s, 0);
  const fd = openSync(tgz.path, 'r');
  let r;
  try {
    r = await timedSpawn('ssh', baselineArgs(s, dir), { stdinFd: fd });
  } finally {
    closeSync(fd);
  }
  if (r.code !== 0) throw new Error(`baseline ssh exited ${r.code}: ${r.stderr}`);
  await settle();
  const counters = diffCounters(snapshotCounters(s, 1), before);
  if (i === 0) {
    const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
    if (files !== FILE_COUNT + 1) throw new Error(`baseline extracted ${files} files, expected ${FILE_COUNT + 1}`);
  }
  await rm(dir, { recursive: true, force: true });
  return { ms: r.ms, counters };
}

async function installOnce(s: Setup, transport: TransportName, tarballs: PluginTarball[], i: number): Promise<InstallSample> {
  const tgz = tarballs[i % 2]!;
  s.calls.ops = [];
  s.calls.ms = [];
  const before = snapshotCounters(s, 0);
  const stamp = newStamp();
  const start = process.hrtime.bigint();
  const outcome = await runWorkflow({
    workflow: 'install',
    input: { workspace: transport, source: tgz.path, sha256: null, runtime: null, stamp },
    executionName: executionName(transport, PLUGIN, stamp),
    deps: s.deps,
  });
  const ms = msSince(start);
  const hostOps = s.calls.ops;
  const hostMs = s.calls.ms;
  await s.closeEic[transport]();
  await settle();
  const counters = diffCounters(snapshotCounters(s, hostOps.length), before);
  if (outcome.status !== 'SUCCEEDED') throw new Error(`${transport} install ${i} ${outcome.status}: ${outcome.error} ${outcome.cause}`);
  const snapshot = (outcome.outputs.SnapshotLive as { last?: { snapshot?: string } } | undefined)?.last?.snapshot;
  if (i > 0 && snapshot !== 'moved') throw new Error(`${transport} install ${i}: SnapshotLive reported ${snapshot}, expected moved`);
  await checkLive(s.live[transport], tgz.version, `${transport} install ${i}`);
  return { ms, outcome, counters, hostOps, hostMs };
}

export interface TransportReport {
  results: Record<string, unknown>;
  lines: string[];
}

/** Why the transport bench cannot run here, or undefined. */
export function transportsUnavailable(): string | undefined {
  if (!sshdAvailable) return `needs root and ${SSHD_PATH} (openssh-server) for the loopback sshd`;
  return undefined;
}

export async function measureTransports(options: TransportOptions, scratch: string, tarballs: PluginTarball[], cleanups: Cleanups): Promise<TransportReport> {
  const s = await setUp(scratch, cleanups);

  const baselineMs: number[] = [];
  const sshTrueMs: number[] = [];
  const sshSudoTrueMs: number[] = [];
  const sshCurveTrueMs: number[] = [];
  const baselineCounters: InstallCounters[] = [];
  const ms = new Map<TransportName, number[]>(TRANSPORTS.map((t) => [t, []]));
  const paired = new Map<TransportName, number[]>(TRANSPORTS.map((t) => [t, []]));
  const counters = new Map<TransportName, InstallCounters[]>(TRANSPORTS.map((t) => [t, []]));
  const transitions = new Map<TransportName, number[]>(TRANSPORTS.map((t) => [t, []]));
  const retries = new Map<TransportName, number>(TRANSPORTS.map((t) => [t, 0]));
  const stepMs = new Map<TransportName, Map<string, number[]>>(TRANSPORTS.map((t) => [t, new Map()]));
  const hostOpMs = new Map<TransportName, Map<string, number[]>>(TRANSPORTS.map((t) => [t, new Map()]));
  const untrackedMs = new Map<TransportName, number[]>(TRANSPORTS.map((t) => [t, []]));
  const sequences = new Map<TransportName, string[]>();

  const total = options.warmup + options.iterations;
  process.stderr.write(`transport bench: ${options.warmup} warm-up + ${options.iterations} measured, interleaved (baseline, ${TRANSPORTS.join(', ')})\n`);
  for (let i = 0; i < total; i++) {
    const measured = i >= options.warmup;
    const b = await baselineOnce(s, tarballs, i);
    const samples = new Map<TransportName, InstallSample>();
    for (const t of TRANSPORTS) samples.set(t, await installOnce(s, t, tarballs, i));
    const diagnostic = measured ? [await sshOnly(s, 'true'), await sshOnly(s, 'sudo -n true'), await sshOnly(s, 'true', true)] : [];
    process.stderr.write(`  ${measured ? `#${i - options.warmup + 1}` : 'warm-up'}: baseline ${fmt(b.ms)} ms, ${TRANSPORTS.map((t) => `${t} ${fmt(samples.get(t)!.ms)} ms`).join(', ')}\n`);
    if (!measured) continue;
    baselineMs.push(b.ms);
    sshTrueMs.push(diagnostic[0]!);
    sshSudoTrueMs.push(diagnostic[1]!);
    sshCurveTrueMs.push(diagnostic[2]!);
    baselineCounters.push(b.counters);
    for (const t of TRANSPORTS) {
      const w = samples.get(t)!;
      ms.get(t)!.push(w.ms);
      paired.get(t)!.push(w.ms / b.ms);
      counters.get(t)!.push(w.counters);
      transitions.get(t)!.push(w.outcome.transitions);
      retries.set(t, retries.get(t)! + w.outcome.steps.reduce((n, step) => n + step.attempts - 1, 0));
      sequences.set(t, w.hostOps);
      let stepSum = 0;
      for (const step of w.outcome.steps) {
        push(stepMs.get(t)!, step.name, step.ms);
        stepSum += step.ms;
      }
      untrackedMs.get(t)!.push(w.ms - stepSum);
      w.hostOps.forEach((op, k) => push(hostOpMs.get(t)!, op, w.hostMs[k]!));
    }
  }

  const distinct = (xs: number[]) => [...new Set(xs)].sort((x, y) => x - y);
  const summarize = (list: InstallCounters[]) => {
    const field = (f: (c: InstallCounters) => number) => ({ median: median(list.map(f)), distinct: distinct(list.map(f)) });
    const actions = [...new Set(list.flatMap((c) => Object.keys(c.ssmCalls)))].sort();
    return {
      sshHandshakes: field((c) => c.handshakes),
      eicKeyPushes: field((c) => c.keyPushes),
      eicTunnels: field((c) => c.tunnels),
      sshExecSessions: field((c) => c.sshExecSessions),
      hostCommands: field((c) => c.hostCommands),
      ssmApiCalls: Object.fromEntries(actions.map((a) => [a, field((c) => c.ssmCalls[a] ?? 0)])),
      ssmApiCallsTotal: field((c) => Object.values(c.ssmCalls).reduce((x, y) => x + y, 0)),
      s3Requests: field((c) => c.s3Requests),
    };
  };

  const baseline = stats(baselineMs);
  const perTransport = Object.fromEntries(
    TRANSPORTS.map((t) => {
      const st = stats(ms.get(t)!);
      return [
        t,
        {
          wallMs: st,
          overBaseline: round(st.median / baseline.median),
          pairedOverBaseline: round(median(paired.get(t)!)),
          minusBaselineMs: round(st.median - baseline.median),
          perInstall: { transitions: { median: median(transitions.get(t)!), distinct: distinct(transitions.get(t)!) }, ...summarize(counters.get(t)!), hostCommandSequence: sequences.get(t) ?? [] },
          retriedAttempts: retries.get(t)!,
          stepMedianMs: medians(stepMs.get(t)!),
          outsideStatesMedianMs: median(untrackedMs.get(t)!),
          /** Each run() of the RemoteHost port, by operation: connect (first), exec, stream, exit (EIC); SendCommand + polls (SSM). */
          hostCommandMedianMs: medians(hostOpMs.get(t)!),
          samplesMs: ms.get(t)!.map((x) => round(x)),
        },
      ];
    }),
  ) as Record<TransportName, { wallMs: ReturnType<typeof stats>; overBaseline: number; pairedOverBaseline: number; minusBaselineMs: number; perInstall: ReturnType<typeof summarize> & { transitions: { median: number; distinct: number[] }; hostCommandSequence: string[] }; retriedAttempts: number; stepMedianMs: Record<string, number>; outsideStatesMedianMs: number; hostCommandMedianMs: Record<string, number>; samplesMs: number[] }>;

  const sshd = s.harness.sshd;
  const results = {
    iterations: { warmup: options.warmup, measured: options.iterations, order: `per iteration: baseline, ${TRANSPORTS.join(', ')}` },
    baseline: {
      command: `ssh ${baselineArgs(s, '<fresh empty dir>').map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')} < plugin.tgz`.replace(s.baselineKey, '<key>').replace(`-p ${sshd.port}`, '-p <port>'),
      key: 'static ed25519 key, authorized through the sshd key store (as the EIC API stand-in stores pushed keys), no push per run',
      wallMs: baseline,
      perRun: summarize(baselineCounters),
      samplesMs: baselineMs.map((x) => round(x)),
      /**
       * Diagnostics, after the installs of each measured iteration: the same ssh running `true`,
       * `sudo -n true` (no data), and `true` with -o KexAlgorithms=curve25519-sha256@libssh.org
       * (the key exchange ssh2 negotiates; OpenSSH's default is sntrup761x25519-sha512).
       */
      sshTrueMs: stats(sshTrueMs),
      sshSudoTrueMs: stats(sshSudoTrueMs),
      sshCurve25519TrueMs: stats(sshCurveTrueMs),
    },
    transports: perTransport,
    setup: {
      sshd: 'OpenSSH sshd on 127.0.0.1 (test/servers/sshd.ts): AuthorizedKeysCommand key store, UsePAM no, LogLevel VERBOSE',
      eicAdapter: 'default EicHost options (idle 2 s), connectTimeoutMs 5000; connections closed after each install (untimed)',
      ssmAdapter: 'pollInitialMs 25, pollMaxMs 250 (test/servers/ssm-harness.ts); stand-in delivery delay 50 ms, 1 invisible poll per invocation',
      artifacts: 's3rver (S3ArtifactStore); EIC stages stream GetObject into the SSH channel, SSM hosts curl a presigned URL',
      retryDelays: 'ASL defaults',
    },
  };

  const out: string[] = [];
  out.push('== remote transports: install workflow vs ssh | tar -xzf through the same sshd ==');
  out.push(`iterations: ${options.warmup} warm-up + ${options.iterations} measured, per iteration baseline, ${TRANSPORTS.join(', ')}`);
  out.push(`baseline: ${results.baseline.command}`);
  out.push('');
  out.push(
    table(
      [
        ['wall time (ms)', 'n', 'median', 'p90', 'min', 'max', 'median / baseline', 'paired ratio'],
        ['baseline      ssh | sudo tar -xzf', String(baseline.n), fmt(baseline.median), fmt(baseline.p90), fmt(baseline.min), fmt(baseline.max), '1.00', '1.00'],
        ...TRANSPORTS.map((t) => {
          const r = perTransport[t];
          return [`${t.padEnd(13)} install workflow`, String(r.wallMs.n), fmt(r.wallMs.median), fmt(r.wallMs.p90), fmt(r.wallMs.min), fmt(r.wallMs.max), r.overBaseline.toFixed(2), r.pairedOverBaseline.toFixed(2)];
        }),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  out.push('');
  const d = (f: { median: number; distinct: number[] }) =>
    f.distinct.length <= 2 ? f.distinct.join('/') : `${f.median} (${f.distinct[0]}–${f.distinct[f.distinct.length - 1]})`;
  const ssmCallText = (c: ReturnType<typeof summarize>) =>
    Object.entries(c.ssmApiCalls).map(([a, f]) => `${a} ${d(f)}`).join(', ') || '0';
  out.push(
    table(
      [
        ['per install (values seen; median (range))', 'SSH handshakes', 'key pushes', 'tunnels', 'sshd exec sessions', 'host commands', 'SSM API calls', 's3 requests'],
        ['baseline', d(results.baseline.perRun.sshHandshakes), d(results.baseline.perRun.eicKeyPushes), d(results.baseline.perRun.eicTunnels), d(results.baseline.perRun.sshExecSessions), '1', '0', '0'],
        ...TRANSPORTS.map((t) => {
          const c = perTransport[t].perInstall;
          return [t, d(c.sshHandshakes), d(c.eicKeyPushes), d(c.eicTunnels), d(c.sshExecSessions), d(c.hostCommands), ssmCallText(c), d(c.s3Requests)];
        }),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  out.push(
    `diagnostic, same ssh without data (medians): 'true' ${fmt(results.baseline.sshTrueMs.median)} ms, 'sudo -n true' ${fmt(results.baseline.sshSudoTrueMs.median)} ms, ` +
      `'true' with KexAlgorithms=curve25519-sha256@libssh.org ${fmt(results.baseline.sshCurve25519TrueMs.median)} ms (baseline ${fmt(baseline.median)} ms)`,
  );
  out.push(`host commands per install: ${TRANSPORTS.map((t) => `${t} ${perTransport[t].perInstall.hostCommandSequence.join(',')}`).join('; ')}`);
  const retried = TRANSPORTS.filter((t) => perTransport[t].retriedAttempts > 0);
  out.push(retried.length ? `retried attempts: ${retried.map((t) => `${t} ${perTransport[t].retriedAttempts}`).join(', ')}` : 'retried attempts: none');
  out.push('');
  const stepNames = [...new Set(TRANSPORTS.flatMap((t) => Object.keys(perTransport[t].stepMedianMs)))];
  out.push(
    table(
      [
        ['step (median ms)', ...TRANSPORTS],
        ...stepNames.map((n) => [n, ...TRANSPORTS.map((t) => fmt(perTransport[t].stepMedianMs[n] ?? NaN))]),
        ['(outside states)', ...TRANSPORTS.map((t) => fmt(perTransport[t].outsideStatesMedianMs))],
      ],
      ['l', 'r', 'r', 'r'],
    ),
  );
  return { results, lines: out };
}
