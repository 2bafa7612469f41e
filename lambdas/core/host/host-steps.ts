/**
 * Typed host operations over any RemoteHost. Each method validates its arguments (again: the
 * script does too) and returns the script's parsed result line.
 */
import type { Readable } from 'node:stream';
import { assertPluginName, assertSha256, assertStamp, assertVersion, assertExecutionName } from '../names.ts';
import { PluginError } from '../errors.ts';
import { HEALTHCHECK_TIMEOUT_DEFAULT_SECONDS, HEALTHCHECK_TIMEOUT_MAX_SECONDS, healthcheckCommandFits, withoutControlCharacters, type HealthcheckSpec } from '../healthcheck.ts';
import { interpretHostResult, type HostResult } from './host-result.ts';
import type { HostOp, HostTarget } from './remote-host.ts';

export interface PluginRef {
  name: string;
  stamp: string;
}

export interface MarkerFields {
  version: string;
  sha256: string;
  execution: string;
  installedAt: string;
}

export interface VerifyResult {
  /** `passed`, or `already` when this stamp's check passed before (a retried step). */
  result: string;
  /** `built-in` (only the structural checks: no command declared) or `command`. */
  check?: string;
  /** How the command's processes were contained: `pid-namespace` or `process-group`. */
  isolation?: string;
}

/**
 * What `verify` needs beyond the check's own timeout: the structural checks, killing what the
 * check left, reading its output, and the transport around it (an SSM poll, an SSH connection).
 */
export const VERIFY_OVERHEAD_SECONDS = 30;

/** The adapters' step timeout when a HostSteps is given none. */
const DEFAULT_STEP_TIMEOUT_MS = 120_000;

export interface ListedPlugin {
  name: string;
  complete: boolean;
  stamp: string;
  /**
   * What the installer recorded when it marked this directory (root-owned, under `.meta/`:
   * never read from the agent-writable `.complete`). Absent for a directory it never marked.
   */
  marker?: { name?: string; version?: string; sha256?: string; stamp?: string; installedAt?: string; execution?: string };
}

export interface ListedSnapshot {
  name: string;
  stamp: string;
  pinned: boolean;
}

export interface ListedLock {
  name: string;
  stamp: string;
  expires: number;
}

export interface SweepRules {
  /** Stamp-time cutoffs (`YYYYMMDDTHHMMSSZ`): entries minted before them are old. */
  previousBefore: string;
  keepNewest: number;
  stagingBefore: string;
  failedBefore: string;
  nowEpochSeconds: number;
  dryRun: boolean;
}

export interface SweepReport {
  dryRun: boolean;
  deleted: { kind: 'previous' | 'staging' | 'failed' | 'locks'; path: string; bytes: number }[];
  counts: { previous: number; staging: number; failed: number; locks: number };
  bytes: number;
}

const OWNER_TOKEN = /^[A-Za-z0-9._:@+-]{1,128}$/;
const CUTOFF = /^\d{8}T\d{6}Z$/;

function ref({ name, stamp }: PluginRef): [string, string] {
  return [assertPluginName(name), assertStamp(stamp)];
}

export class HostSteps {
  constructor(readonly target: HostTarget, private readonly timeoutMs?: number) {}

  private async call(op: HostOp, args: string[], stdin?: Readable, timeoutMs = this.timeoutMs): Promise<HostResult> {
    const raw = await this.target.host.run({ op, args: [this.target.root, ...args], stdin, timeoutMs });
    return interpretHostResult(op, raw);
  }

  async lock(plugin: PluginRef, owner: string, ownerPid: number, leaseSeconds: number): Promise<{ result: string; expires: number }> {
    if (!OWNER_TOKEN.test(owner)) throw new PluginError('InvalidInput', `invalid lock owner ${JSON.stringify(owner)}`, 'owners are [A-Za-z0-9._:@+-]{1,128}');
    const r = await this.call('lock', [...ref(plugin), owner, String(Math.trunc(ownerPid)), String(Math.trunc(leaseSeconds))]);
    return { result: String(r.result), expires: Number(r.expires) };
  }

  async unlock(plugin: PluginRef): Promise<string> {
    return String((await this.call('unlock', ref(plugin))).result);
  }

  /**
   * Streams the tarball on stdin, or lets the host fetch it from `url` (SSM). `unpackedBytes`
   * lets the host refuse a full disk (HostDiskFull) before it writes anything.
   */
  async stage(plugin: PluginRef, sha256: string, stripComponents: 0 | 1, body: { stream: Readable } | { url: string }, unpackedBytes = 0): Promise<{ result: string; files?: number }> {
    const args = [...ref(plugin), assertSha256(sha256), this.target.ownerSpec, String(stripComponents), String(Math.max(0, Math.trunc(unpackedBytes)))];
    const r = 'url' in body ? await this.call('stage', [...args, body.url]) : await this.call('stage', args, body.stream);
    return { result: String(r.result), files: typeof r.files === 'number' ? r.files : undefined };
  }

  async snapshot(plugin: PluginRef): Promise<string> {
    return String((await this.call('snapshot', ref(plugin))).result);
  }

  /** `how`: the way live was replaced (`rename` for a first install, the exchange method, or `two-renames`). */
  async swap(plugin: PluginRef): Promise<{ result: string; how?: string }> {
    const r = await this.call('swap', ref(plugin));
    return { result: String(r.result), how: typeof r.how === 'string' ? r.how : undefined };
  }

  async mark(plugin: PluginRef, marker: MarkerFields): Promise<string> {
    const args = [
      ...ref(plugin),
      assertVersion(marker.version),
      assertSha256(marker.sha256),
      assertExecutionName(marker.execution),
      marker.installedAt,
      this.target.ownerSpec,
    ];
    return String((await this.call('mark', args)).result);
  }

  /**
   * After the swap, before the marker: built-in structural checks, then the plugin's health
   * check if it has one, run on the host as the plugin's owner (never root), killed with every
   * process it started at its timeout. A failure is HealthCheckFailed with the last lines of the
   * check's output in the message. The step's timeout stretches to fit the check's.
   */
  async verify(plugin: PluginRef, version: string, healthcheck?: HealthcheckSpec | null): Promise<VerifyResult> {
    const timeoutSeconds = healthcheck?.timeoutSeconds ?? HEALTHCHECK_TIMEOUT_DEFAULT_SECONDS;
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > HEALTHCHECK_TIMEOUT_MAX_SECONDS) {
      throw new PluginError('InvalidInput', `invalid health check timeout ${timeoutSeconds}`, `timeoutSeconds is a whole number from 1 to ${HEALTHCHECK_TIMEOUT_MAX_SECONDS}`);
    }
    const command = healthcheck?.command ?? '';
    if (!healthcheckCommandFits(command) || !withoutControlCharacters(command)) {
      throw new PluginError('InvalidInput', 'invalid health check command', 'see healthcheck.command in docs/plugin-format.md');
    }
    const args = [...ref(plugin), assertVersion(version), this.target.ownerSpec, String(timeoutSeconds), ...(command ? [command] : [])];
    const needed = (timeoutSeconds + VERIFY_OVERHEAD_SECONDS) * 1000;
    const r = await this.call('verify', args, undefined, Math.max(needed, this.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS));
    const out: VerifyResult = { result: String(r.result) };
    if (typeof r.check === 'string') out.check = r.check;
    if (typeof r.isolation === 'string') out.isolation = r.isolation;
    return out;
  }

  /** `changed`: whether the rollback had to put live back (this operation had changed it). */
  async rollback(plugin: PluginRef): Promise<{ live: string; changed: boolean; actions: string[]; lock: string }> {
    const r = await this.call('rollback', ref(plugin));
    return { live: String(r.live), changed: r.changed === true, actions: (r.actions as string[]) ?? [], lock: String(r.lock) };
  }

  async restore(plugin: PluginRef): Promise<{ result: string; from?: string }> {
    const r = await this.call('restore', ref(plugin));
    return { result: String(r.result), from: typeof r.from === 'string' ? r.from : undefined };
  }

  async uninstall(plugin: PluginRef): Promise<string> {
    return String((await this.call('uninstall', ref(plugin))).result);
  }

  async list(): Promise<{ plugins: ListedPlugin[]; previous: ListedSnapshot[]; locks: ListedLock[] }> {
    const r = await this.call('list', []);
    const plugins = (r.plugins as { name: string; complete: boolean; stamp: string; marker: ListedPlugin['marker'] | null }[]).map((p) => {
      const item: ListedPlugin = { name: p.name, complete: p.complete, stamp: p.stamp };
      if (p.marker && typeof p.marker === 'object') item.marker = p.marker;
      return item;
    });
    return { plugins, previous: r.previous as ListedSnapshot[], locks: (r.locks as ListedLock[] | undefined) ?? [] };
  }

  async sweep(rules: SweepRules): Promise<SweepReport> {
    for (const cutoff of [rules.previousBefore, rules.stagingBefore, rules.failedBefore]) {
      if (!CUTOFF.test(cutoff)) throw new PluginError('InvalidInput', `invalid cutoff ${cutoff}`, 'cutoffs look like 20261125T080000Z');
    }
    const r = await this.call('sweep', [
      rules.previousBefore,
      String(Math.max(0, Math.trunc(rules.keepNewest))),
      rules.stagingBefore,
      rules.failedBefore,
      String(Math.trunc(rules.nowEpochSeconds)),
      rules.dryRun ? '1' : '0',
    ]);
    return { dryRun: Boolean(r.dryRun), deleted: r.deleted as SweepReport['deleted'], counts: r.counts as SweepReport['counts'], bytes: Number(r.bytes) };
  }
}
