/**
 * WorkspaceDirectory on EC2 tags: the AWS deployment's source of truth for "which instance is
 * this workspace, and is it running".
 *
 *   tag WorkspaceId      the workspace id (the lookup filter)
 *   tag Runtime          claude-code (default when absent) | hermes | langgraph | external
 *   tag PluginTransport  eic | ssm (absent or anything else: the configured default)
 *
 * Three outcomes stay apart (see workspace-directory.ts):
 * - running: an instance in state `running` carries the tag (if several match, a running one wins;
 *   among several running ones, the most recently launched, then the lowest instance id);
 * - definitively not running: only `pending`, `stopping`, `stopped`, `shutting-down` or
 *   `terminated` instances match (→ `not-running` with the state as reason), or none at all
 *   (→ `not-found`);
 * - a transient error (throttling such as `RequestLimitExceeded`, 5xx, network): thrown as
 *   PluginError('HostUnreachable'), which the workflows retry and the HTTP API answers with 503.
 *
 * An unknown `Runtime` tag value on a running instance is refused (InvalidInput naming the tag)
 * rather than guessed: the runtime decides which directory on the host is written, and writing a
 * hermes host's plugins into claude-code's root would be silently wrong. On a non-running
 * instance the lookup still answers `not-running` (the record is left out).
 */
import { DescribeInstancesCommand, type EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { describeAwsError, isTransientAwsError } from '../aws-errors.ts';
import { PluginError } from '../errors.ts';
import { assertWorkspaceId, WORKSPACE_ID } from '../names.ts';
import { DEFAULT_RUNTIME, RUNTIMES, type Runtime } from '../runtimes.ts';
import type { WorkspaceDirectory, WorkspaceLookup, WorkspaceRecord } from './workspace-directory.ts';

export const WORKSPACE_ID_TAG = 'WorkspaceId';
export const RUNTIME_TAG = 'Runtime';
export const TRANSPORT_TAG = 'PluginTransport';

export type Ec2Transport = 'eic' | 'ssm';

export interface Ec2WorkspaceDirectoryOptions {
  client: EC2Client;
  defaultTransport: Ec2Transport;
}

/** A workspace has one instance (a few during a replacement): a handful of pages at most. */
const MAX_PAGES = 10;

/** Which non-running instance explains the situation best, when no instance is running. */
const NOT_RUNNING_ORDER = ['pending', 'stopping', 'stopped', 'shutting-down', 'terminated'];

function tagOf(instance: Instance, key: string): string | undefined {
  return instance.Tags?.find((t) => t.Key === key)?.Value;
}

function launchedAt(instance: Instance): number {
  const t = instance.LaunchTime;
  return t instanceof Date ? t.getTime() : 0;
}

export class Ec2WorkspaceDirectory implements WorkspaceDirectory {
  readonly client: EC2Client;
  readonly defaultTransport: Ec2Transport;

  constructor(options: Ec2WorkspaceDirectoryOptions) {
    this.client = options.client;
    this.defaultTransport = options.defaultTransport;
  }

  async lookup(id: string): Promise<WorkspaceLookup> {
    assertWorkspaceId(id);
    const instances = await this.describe(id);
    if (instances.length === 0) return { status: 'not-found' };

    const running = instances
      .filter((i) => i.State?.Name === 'running')
      .sort((a, b) => launchedAt(b) - launchedAt(a) || (a.InstanceId ?? '').localeCompare(b.InstanceId ?? ''));
    const chosen = running[0];
    if (chosen) return { status: 'running', workspace: this.record(id, chosen, true) };

    const rank = (i: Instance) => {
      const r = NOT_RUNNING_ORDER.indexOf(i.State?.Name ?? '');
      return r < 0 ? NOT_RUNNING_ORDER.length : r;
    };
    const best = [...instances].sort((a, b) => rank(a) - rank(b) || launchedAt(b) - launchedAt(a))[0]!;
    const state = best.State?.Name ?? 'unknown';
    const workspace = this.record(id, best, false);
    return {
      status: 'not-running',
      reason: `instance ${best.InstanceId ?? '(unknown)'} is ${state}`,
      ...(workspace ? { workspace } : {}),
    };
  }

  /**
   * Workspace ids of the fleet (a rollout's `--all` / tag selector): every instance carrying the
   * WorkspaceId tag and, with a selector, each selected tag value; terminated ones left out.
   * Paginated without a page cap (a fleet of thousands is the point), one id per workspace.
   */
  async list(selector: Record<string, string> = {}): Promise<string[]> {
    const filters = [
      { Name: 'tag-key', Values: [WORKSPACE_ID_TAG] },
      { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ...Object.entries(selector).map(([key, value]) => ({ Name: `tag:${key}`, Values: [value] })),
    ];
    const ids = new Set<string>();
    let token: string | undefined;
    do {
      let answer;
      try {
        answer = await this.client.send(new DescribeInstancesCommand({ Filters: filters, MaxResults: 1000, ...(token ? { NextToken: token } : {}) }));
      } catch (err) {
        if (isTransientAwsError(err)) {
          throw new PluginError('HostUnreachable', `cannot list workspaces in EC2: ${describeAwsError(err)}`, 'EC2 was throttling or unreachable; retry in a few seconds', { cause: err });
        }
        throw err;
      }
      for (const reservation of answer.Reservations ?? []) {
        for (const instance of reservation.Instances ?? []) {
          const id = tagOf(instance, WORKSPACE_ID_TAG);
          // Ids that could not name a workspace (a mistyped tag) are not ours to touch.
          if (id && WORKSPACE_ID.test(id) && Object.entries(selector).every(([k, v]) => tagOf(instance, k) === v)) ids.add(id);
        }
      }
      token = answer.NextToken || undefined;
    } while (token);
    return [...ids].sort();
  }

  private async describe(id: string): Promise<Instance[]> {
    const out: Instance[] = [];
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      let answer;
      try {
        answer = await this.client.send(new DescribeInstancesCommand({
          Filters: [{ Name: `tag:${WORKSPACE_ID_TAG}`, Values: [id] }],
          ...(token ? { NextToken: token } : {}),
        }));
      } catch (err) {
        if (isTransientAwsError(err)) {
          throw new PluginError('HostUnreachable', `cannot look up workspace ${id} in EC2: ${describeAwsError(err)}`, 'EC2 was throttling or unreachable; retry in a few seconds', { cause: err });
        }
        throw err;
      }
      for (const reservation of answer.Reservations ?? []) out.push(...(reservation.Instances ?? []));
      token = answer.NextToken || undefined;
      if (!token) break;
    }
    // The filter is exact, but the tag must match exactly here too (wildcards in ids are impossible,
    // the id pattern has none; this guards against a stand-in or proxy ignoring the filter).
    return out.filter((i) => tagOf(i, WORKSPACE_ID_TAG) === id);
  }

  /** The record of an instance; for a running one, an unknown Runtime tag is refused. */
  private record(id: string, instance: Instance, running: true): WorkspaceRecord;
  private record(id: string, instance: Instance, running: false): WorkspaceRecord | undefined;
  private record(id: string, instance: Instance, running: boolean): WorkspaceRecord | undefined {
    const tagged = tagOf(instance, RUNTIME_TAG);
    let runtime: Runtime = DEFAULT_RUNTIME;
    if (tagged !== undefined && tagged !== '') {
      if (!(RUNTIMES as readonly string[]).includes(tagged)) {
        if (!running) return undefined;
        throw new PluginError(
          'InvalidInput',
          `workspace ${id} (instance ${instance.InstanceId ?? '?'}) has ${RUNTIME_TAG} tag ${JSON.stringify(tagged.slice(0, 64))}, which is not a known runtime`,
          `fix the instance's ${RUNTIME_TAG} tag: one of ${RUNTIMES.join(', ')} (or remove it for ${DEFAULT_RUNTIME})`,
        );
      }
      runtime = tagged as Runtime;
    }
    const transportTag = tagOf(instance, TRANSPORT_TAG);
    const transport: Ec2Transport = transportTag === 'eic' || transportTag === 'ssm' ? transportTag : this.defaultTransport;
    return {
      id,
      runtime,
      transport,
      ...(instance.InstanceId ? { instanceId: instance.InstanceId } : {}),
      ...(instance.PrivateIpAddress ? { privateIp: instance.PrivateIpAddress } : {}),
    };
  }
}
