/**
 * A chaos lane: one workspace on one transport, reused run after run (its plugins root is wiped
 * between runs, which makes a fresh world for the price of one `rm -rf`), with per-operation
 * host decorations: fault shims on the script's PATH, a step repeated after success, a
 * connection dropped mid-step, and a recorder of every byte a host step printed.
 *   local  the embedded composition (local-deps.ts): `sh` on this machine
 *   ssm    the AWS composition on loopback (aws-world.ts): SSM Run Command stand-in
 *   eic    the same with a real sshd and the EC2 Instance Connect stand-in (sudo -n)
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { localDeps } from '../../lambdas/commons/local-deps.ts';
import { PluginError } from '../../lambdas/core/errors.ts';
import type { EventSink } from '../../lambdas/core/events/event-sink.ts';
import { localHostResolver, type HostResolver } from '../../lambdas/core/host/host-resolver.ts';
import { HostSteps, type SweepReport, type SweepRules } from '../../lambdas/core/host/host-steps.ts';
import type { HostInvocation, HostOp, HostRawResult } from '../../lambdas/core/host/remote-host.ts';
import { runningWorkspace } from '../../lambdas/core/steps/host-for.ts';
import type { StepDeps } from '../../lambdas/core/steps/step-deps.ts';
import { sweepWorkspaces } from '../../lambdas/core/sweep/workspace-sweep.ts';
import { startAwsWorld, type AwsWorld } from '../helpers/aws-world.ts';
import { chaosShims, type ChaosShims } from '../helpers/chaos-shims.ts';
import { writePluginDir } from '../helpers/plugin-versions.ts';
import { repeatAfterSuccess } from '../helpers/repeating-host.ts';
import { startEicHarness, type EicHarness } from '../servers/eic-harness.ts';
import { instanceIdFor } from '../servers/ssm-harness.ts';
import { VERSIONS, type TransportCaps, type VersionKey } from './plan.ts';

export type TransportName = 'local' | 'eic' | 'ssm';
export const TRANSPORTS: readonly TransportName[] = ['local', 'eic', 'ssm'];

export type ChaosDeps = StepDeps & { events: EventSink };

/** What one operation's host steps go through. */
export interface HostHooks {
  /** Environment for the host script (the armed shims). */
  shimEnv?: Record<string, string>;
  /** Repeat this host operation after it succeeded (the caller hears "connection lost"). */
  repeatOp?: HostOp;
  /** Drop the connection `delayMs` into the first run of `op`. */
  drop?: { op: HostOp; delayMs: number };
  /** Every raw result (or transport error) of every host step. */
  record(inv: HostInvocation, outcome: HostRawResult | Error): void;
  /** Set when the drop really happened while the step ran. */
  dropped?: boolean;
}

export interface Lane {
  transport: TransportName;
  caps: TransportCaps;
  workspace: string;
  /** The plugins root, as this machine sees it. */
  root: string;
  /** The host's "/" (everything outside the plugins root under it must stay as it is). */
  hostRoot: string;
  /** Relative paths under hostRoot that are not watched (the plugins root; SSM's temp dir). */
  unwatched: string[];
  /** Outside the plugins root: a root-only canary file and a sentinel directory. */
  canary: string;
  sentinel: string;
  secret: string;
  eventsFile: string;
  sources: Record<VersionKey, string>;
  /**
   * The workflows' Retry pause (their IntervalSeconds, 1 s on AWS): 1 ms locally; 250 ms over
   * EIC and SSM, where a retry within a millisecond of a dropped connection would only meet the
   * drop still under way.
   */
  retryDelayMs: number;
  shims?: ChaosShims;
  /**
   * Wraps the host of every step (innermost, as if the host itself misbehaved): the checker's
   * own tests plant a deliberately broken host here to show that each invariant is watched.
   */
  tamper?: (resolver: HostResolver) => HostResolver;
  deps(hooks: HostHooks): ChaosDeps;
  sweep(deps: ChaosDeps, rules: SweepRules): Promise<SweepReport>;
  /** A fresh world: the plugins root wiped, the canary and sentinel rewritten, no events. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

function decorate(inner: HostResolver, hooks: HostHooks, dropNow?: () => void): HostResolver {
  // One drop per operation: the first run of the op, not every retry (each step resolves its
  // host anew, so the flag lives here, not per resolved host).
  let dropArmed = Boolean(hooks.drop && dropNow);
  let recorded: HostResolver = (workspace) => {
    const target = inner(workspace);
    return {
      ...target,
      host: {
        transport: target.host.transport,
        streamsStdin: target.host.streamsStdin,
        run: async (inv: HostInvocation): Promise<HostRawResult> => {
          let timer: NodeJS.Timeout | undefined;
          let running = true;
          if (dropArmed && inv.op === hooks.drop!.op) {
            dropArmed = false;
            timer = setTimeout(() => {
              if (running) hooks.dropped = true;
              dropNow!();
            }, hooks.drop!.delayMs);
          }
          try {
            const result = await target.host.run(inv);
            hooks.record(inv, result);
            return result;
          } catch (err) {
            hooks.record(inv, err instanceof Error ? err : new Error(String(err)));
            throw err;
          } finally {
            running = false;
            // A step that ended before the drop was due was not dropped.
            clearTimeout(timer);
          }
        },
      },
    };
  };
  if (hooks.repeatOp) recorded = repeatAfterSuccess(recorded, hooks.repeatOp);
  return recorded;
}

/** A fresh world for the next run: an empty plugins root, no events, a new outside canary and sentinel. */
async function resetWorld(lane: Lane, root: string, hostRoot: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await rm(lane.eventsFile, { force: true });
  Object.assign(lane, await writeOutside(hostRoot));
}

/**
 * One connection drop over EIC: SIGKILL, once, every session process of this harness's sshd
 * (the listener started with `-f <dir>/sshd_config`) that exists right now — as a network drop
 * ends the connections of that moment. (`sshd.killSessions()` scans /proc twice and keeps killing
 * for as long as its scans take, which under load also kills the workflow's reconnections.)
 */
function dropSshSessions(sshdDir: string): void {
  const parent = new Map<number, number>();
  let listener: number | undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      if (listener === undefined && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(`${sshdDir}/sshd_config`)) {
        const ppid = parent.get(Number(entry))!;
        // The listener, not one of its sessions (whose title no longer names the config).
        if (readFileSync(`/proc/${ppid}/cmdline`, 'utf8').includes(`${sshdDir}/sshd_config`) === false) listener = Number(entry);
      }
    } catch {
      // Gone meanwhile.
    }
  }
  if (listener === undefined) return;
  const doomed: number[] = [];
  const within = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === listener) return true;
    return false;
  };
  for (const pid of parent.keys()) if (within(pid)) doomed.push(pid);
  for (const pid of doomed) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

async function writeOutside(hostRoot: string): Promise<{ canary: string; sentinel: string; secret: string }> {
  const outside = join(hostRoot, 'chaos-outside');
  await rm(outside, { recursive: true, force: true });
  const sentinel = join(outside, 'sentinel');
  await mkdir(join(sentinel, 'inner'), { recursive: true });
  await writeFile(join(sentinel, 'keep-me.txt'), 'sentinel file: must never change\n');
  await writeFile(join(sentinel, 'inner', 'data'), 'sentinel data\n');
  const secret = `CHAOS-CANARY-${Math.random().toString(36).slice(2, 12)}-${Date.now().toString(36)}`;
  const canary = join(outside, 'canary-secret');
  await writeFile(canary, `${secret}\n`, { mode: 0o600 });
  return { canary, sentinel, secret };
}

async function versionSources(dir: string): Promise<Record<VersionKey, string>> {
  const out = {} as Record<VersionKey, string>;
  for (const key of Object.keys(VERSIONS) as VersionKey[]) out[key] = await writePluginDir(dir, VERSIONS[key]);
  return out;
}

async function localLane(hostTimeoutMs: number): Promise<Lane> {
  const home = await mkdtemp(join(tmpdir(), 'chaos-local-'));
  const base = localDeps({ home, leaseSeconds: 600, host: { timeoutMs: hostTimeoutMs } });
  base.hostTimeoutMs = hostTimeoutMs;
  const workspace = 'chaos-ws';
  const record = await base.workspaces.ensure(workspace);
  const hostRoot = record.localRoot!;
  const root = join(hostRoot, 'configs', 'plugins');
  const shims = chaosShims(join(home, 'shims'));
  const sources = await versionSources(join(home, 'sources'));
  const lane: Lane = {
    transport: 'local',
    caps: { shims: true, drop: false },
    workspace,
    root,
    hostRoot,
    unwatched: ['configs/plugins'],
    canary: '',
    sentinel: '',
    secret: '',
    eventsFile: join(home, 'events.jsonl'),
    sources,
    retryDelayMs: 1,
    shims,
    deps: (hooks) => {
      const host = localHostResolver({ env: hooks.shimEnv, timeoutMs: hostTimeoutMs });
      return { ...base, hosts: decorate(lane.tamper ? lane.tamper(host) : host, hooks) };
    },
    sweep: async (deps, rules) => {
      const summary = await sweepWorkspaces({ workspaces: base.workspaces, hosts: deps.hosts, hostTimeoutMs }, rules);
      const host = summary.hosts.find((h) => h.workspace === workspace);
      if (!host) throw new Error(`sweep did not visit ${workspace}`);
      if (host.error) throw new PluginError(host.error.code as never, host.error.message, host.error.hint);
      return { dryRun: summary.dryRun, deleted: host.deleted ?? [], counts: host.counts, bytes: host.bytes };
    },
    reset: () => resetWorld(lane, root, hostRoot),
    stop: async () => {
      shims.cleanup();
      await rm(home, { recursive: true, force: true });
    },
  };
  return lane;
}

async function awsLane(transport: 'eic' | 'ssm', hostTimeoutMs: number): Promise<Lane> {
  const workspace = `chaos-${transport}`;
  let eic: EicHarness | undefined;
  let world: AwsWorld | undefined;
  try {
    if (transport === 'eic') eic = await startEicHarness({ host: { stepTimeoutMs: hostTimeoutMs } });
    world = await startAwsWorld(
      [{ id: workspace, transport }],
      eic ? { eic: { resolver: eic.resolver, hostRoot: eic.hostRoot, register: () => ({ instanceId: eic!.instanceId, privateIp: '127.0.0.1' }) } } : {},
    );
  } catch (err) {
    await world?.stop();
    await eic?.stop();
    throw err;
  }
  const aws = world;
  // The lane's versions are plugin directories on this machine: paths allowed, as the CLI allows them.
  const base: ChaosDeps = { ...aws.deps, hostTimeoutMs, sources: { ...aws.deps.sources, localPaths: 'any' } };
  const root = aws.pluginsRoot(workspace);
  const hostRoot = eic ? eic.hostRoot : aws.ssm.hostRoot;
  const scratch = await mkdtemp(join(tmpdir(), `chaos-${transport}-`));
  const sources = await versionSources(join(scratch, 'sources'));
  const instance = transport === 'ssm' ? aws.ssm.api.instances[instanceIdFor(workspace)] : undefined;
  const instanceEnv = instance ? { ...instance.env } : {};
  // sudo resets PATH over EIC, so shims only work over SSM (whose stand-in takes the env).
  const shims = transport === 'ssm' ? chaosShims(join(scratch, 'shims')) : undefined;
  const dropNow =
    transport === 'eic'
      ? () => dropSshSessions(dirname(eic!.sshd.keyStoreDir))
      : () => aws.ssm.api.failNext('GetCommandInvocation', 'InternalServerError', { status: 500, times: 6, message: 'connection reset' });
  const lane: Lane = {
    transport,
    caps: { shims: transport === 'ssm', drop: true },
    workspace,
    root,
    hostRoot,
    unwatched: transport === 'ssm' ? ['configs/plugins', 'tmp'] : ['configs/plugins'],
    canary: '',
    sentinel: '',
    secret: '',
    eventsFile: aws.eventsFile,
    sources,
    retryDelayMs: 250,
    shims,
    deps: (hooks) => {
      if (instance) instance.env = { ...instanceEnv, ...hooks.shimEnv };
      return { ...base, hosts: decorate(lane.tamper ? lane.tamper(base.hosts) : base.hosts, hooks, dropNow) };
    },
    sweep: async (deps, rules) => {
      const record = await runningWorkspace(deps, workspace);
      return new HostSteps(deps.hosts(record), hostTimeoutMs).sweep(rules);
    },
    reset: () => resetWorld(lane, root, hostRoot),
    stop: async () => {
      shims?.cleanup();
      await aws.stop();
      await eic?.stop();
      await rm(scratch, { recursive: true, force: true });
    },
  };
  return lane;
}

export function startLane(transport: TransportName, hostTimeoutMs: number): Promise<Lane> {
  return transport === 'local' ? localLane(hostTimeoutMs) : awsLane(transport, hostTimeoutMs);
}
