/**
 * Ec2WorkspaceDirectory through the real EC2Client against the local EC2 Query API stand-in
 * (test/servers/ec2-api.ts): running / not running / not found kept apart, tags read, transient
 * errors (throttling, 5xx, network) turned into a retryable HostUnreachable. Also the stand-in's
 * own filters and pagination, which the fleet sweeper will rely on.
 */
import { DescribeInstancesCommand, EC2Client, paginateDescribeInstances, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { Ec2WorkspaceDirectory } from '../../lambdas/core/workspaces/ec2-workspace-directory.ts';
import { startEc2Api, type Ec2ApiStandIn, type StandInInstance } from '../servers/ec2-api.ts';
import { TEST_CREDENTIALS } from '../servers/sigv4.ts';

let api: Ec2ApiStandIn;
const clients: EC2Client[] = [];

function client(config: Partial<EC2ClientConfig> = {}, endpoint = api.endpoint): EC2Client {
  const c = new EC2Client({
    endpoint,
    region: 'us-east-1',
    credentials: { ...TEST_CREDENTIALS },
    // Transient-error tests must see the first failure, not the SDK's retry of it.
    maxAttempts: 1,
    ...config,
  });
  clients.push(c);
  return c;
}

function directory(config: Partial<EC2ClientConfig> = {}, defaultTransport: 'eic' | 'ssm' = 'eic'): Ec2WorkspaceDirectory {
  return new Ec2WorkspaceDirectory({ client: client(config), defaultTransport });
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
}

function instance(instanceId: string, state: StandInInstance['state'], tags: Record<string, string>, extra: Partial<StandInInstance> = {}): StandInInstance {
  return { instanceId, state, privateIp: `10.0.${instanceId.length}.${instanceId.charCodeAt(instanceId.length - 1)}`, tags, ...extra };
}

beforeAll(async () => {
  api = await startEc2Api({ instances: [] });
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await api.stop();
});
beforeEach(() => {
  api.setInstances([]);
});

describe('Ec2WorkspaceDirectory.lookup', () => {
  it('a running instance: id, private IP, default runtime and transport; the request is the EC2 Query shape', async () => {
    api.setInstances([
      instance('i-0aaa', 'running', { WorkspaceId: 'ws-1', Name: 'workspace ws-1' }, { privateIp: '10.0.1.15' }),
      instance('i-0bbb', 'running', { WorkspaceId: 'ws-2' }),
    ]);
    const before = api.calls;
    const found = await directory().lookup('ws-1');
    expect(found).toEqual({
      status: 'running',
      workspace: { id: 'ws-1', runtime: 'claude-code', transport: 'eic', instanceId: 'i-0aaa', privateIp: '10.0.1.15' },
    });
    expect(api.calls).toBe(before + 1);
    expect(api.requests.at(-1)).toMatchObject({
      Action: 'DescribeInstances',
      Version: '2016-11-15',
      'Filter.1.Name': 'tag:WorkspaceId',
      'Filter.1.Value.1': 'ws-1',
    });
  });

  it('reads the Runtime and PluginTransport tags; an unknown transport falls back to the default', async () => {
    api.setInstances([
      instance('i-1', 'running', { WorkspaceId: 'herm', Runtime: 'hermes', PluginTransport: 'ssm' }),
      instance('i-2', 'running', { WorkspaceId: 'lang', Runtime: 'langgraph', PluginTransport: 'eic' }),
      instance('i-3', 'running', { WorkspaceId: 'ext', Runtime: 'external', PluginTransport: 'carrier-pigeon' }),
      instance('i-4', 'running', { WorkspaceId: 'blank', Runtime: '' }),
    ]);
    const dir = directory({}, 'ssm');
    const ws = async (id: string) => {
      const r = await dir.lookup(id);
      if (r.status !== 'running') throw new Error(`expected running, got ${r.status}`);
      return r.workspace;
    };
    expect(await ws('herm')).toMatchObject({ runtime: 'hermes', transport: 'ssm', instanceId: 'i-1' });
    expect(await ws('lang')).toMatchObject({ runtime: 'langgraph', transport: 'eic' });
    expect(await ws('ext')).toMatchObject({ runtime: 'external', transport: 'ssm' });
    expect(await ws('blank')).toMatchObject({ runtime: 'claude-code', transport: 'ssm' });
  });

  it('an unknown Runtime tag on a running instance is refused, not guessed; on a stopped one the answer stays not-running', async () => {
    api.setInstances([
      instance('i-5', 'running', { WorkspaceId: 'odd', Runtime: 'emacs' }),
      instance('i-6', 'stopped', { WorkspaceId: 'odd-stopped', Runtime: 'emacs' }),
    ]);
    const e = await failure(directory().lookup('odd'));
    expect(e).toBeInstanceOf(PluginError);
    expect((e as PluginError).code).toBe('InvalidInput');
    expect((e as PluginError).message).toContain('"emacs"');
    expect((e as PluginError).hint).toContain('claude-code');
    expect(await directory().lookup('odd-stopped')).toEqual({ status: 'not-running', reason: 'instance i-6 is stopped' });
  });

  it.each(['stopped', 'stopping', 'pending', 'shutting-down', 'terminated'] as const)('a %s instance is not-running, with the state as reason', async (state) => {
    api.setInstances([instance('i-7', state, { WorkspaceId: 'ws-s', Runtime: 'hermes' })]);
    const found = await directory().lookup('ws-s');
    expect(found.status).toBe('not-running');
    if (found.status !== 'not-running') return;
    expect(found.reason).toBe(`instance i-7 is ${state}`);
    expect(found.workspace).toMatchObject({ id: 'ws-s', runtime: 'hermes', instanceId: 'i-7' });
  });

  it('no instance with the tag is not-found (other workspaces exist; the filter is exact)', async () => {
    api.setInstances([instance('i-8', 'running', { WorkspaceId: 'ws-10' }), instance('i-9', 'running', { WorkspaceId: 'ws-1x' })]);
    expect(await directory().lookup('ws-1')).toEqual({ status: 'not-found' });
  });

  it('several instances: a running one wins over terminated/pending; among running, the newest launch', async () => {
    api.setInstances([
      instance('i-old', 'terminated', { WorkspaceId: 'multi' }),
      instance('i-new', 'pending', { WorkspaceId: 'multi' }),
      instance('i-run', 'running', { WorkspaceId: 'multi' }),
    ]);
    expect(await directory().lookup('multi')).toMatchObject({ status: 'running', workspace: { instanceId: 'i-run' } });

    api.setInstances([
      instance('i-a', 'running', { WorkspaceId: 'two' }, { launchTime: '2026-03-01T00:00:00.000Z' }),
      instance('i-b', 'running', { WorkspaceId: 'two' }, { launchTime: '2026-04-01T00:00:00.000Z' }),
    ]);
    expect(await directory().lookup('two')).toMatchObject({ status: 'running', workspace: { instanceId: 'i-b' } });

    // None running: the state that explains it best (a stopped instance over a terminated one).
    api.setInstances([instance('i-t', 'terminated', { WorkspaceId: 'gone' }), instance('i-s', 'stopped', { WorkspaceId: 'gone' })]);
    expect(await directory().lookup('gone')).toMatchObject({ status: 'not-running', reason: 'instance i-s is stopped' });
  });

  it('an invalid workspace id is InvalidInput before any call', async () => {
    const before = api.calls;
    for (const id of ['', 'a b', '../x', '*', 'x'.repeat(65)]) {
      const e = await failure(directory().lookup(id));
      expect((e as PluginError).code, id).toBe('InvalidInput');
    }
    expect(api.calls).toBe(before);
  });
});

describe('transient errors are HostUnreachable (retryable)', () => {
  it.each([
    ['RequestLimitExceeded', 503],
    ['Unavailable', 503],
    ['InternalError', 500],
  ])('%s (%i)', async (code, status) => {
    api.setInstances([instance('i-1', 'running', { WorkspaceId: 'ws-t' })]);
    api.failNext(code, status);
    const e = await failure(directory().lookup('ws-t'));
    expect(e).toBeInstanceOf(PluginError);
    expect((e as PluginError).code).toBe('HostUnreachable');
    expect((e as PluginError).retryable).toBe(true);
    expect((e as PluginError).message).toContain(code);
    // The next call goes through.
    expect((await directory().lookup('ws-t')).status).toBe('running');
  });

  it('a network failure (nothing listening) is HostUnreachable', async () => {
    const gone = await startEc2Api();
    const endpoint = gone.endpoint;
    await gone.stop();
    const dir = new Ec2WorkspaceDirectory({ client: client({}, endpoint), defaultTransport: 'eic' });
    const e = await failure(dir.lookup('ws-net'));
    expect((e as PluginError).code).toBe('HostUnreachable');
  });

  it('with the SDK default retries, one throttled answer is absorbed by the client', async () => {
    api.setInstances([instance('i-1', 'running', { WorkspaceId: 'ws-r' })]);
    api.failNext('InternalError', 500);
    const before = api.calls;
    expect((await directory({ maxAttempts: 3 }).lookup('ws-r')).status).toBe('running');
    expect(api.calls - before).toBe(2);
  });

  it('a definitive error (AuthFailure, UnauthorizedOperation) is not turned into HostUnreachable', async () => {
    for (const [code, status] of [['AuthFailure', 401], ['UnauthorizedOperation', 403]] as const) {
      api.failNext(code, status);
      const e = await failure(directory().lookup('ws-a'));
      expect(e instanceof PluginError && e.code === 'HostUnreachable', code).toBe(false);
      expect((e as Error).name).toBe(code);
    }
  });
});

describe('the EC2 stand-in', () => {
  it('pages 1,000 instances with MaxResults/NextToken, and filters by state, tag and instance id', async () => {
    const fleet: StandInInstance[] = Array.from({ length: 1000 }, (_, n) => ({
      instanceId: `i-${n.toString(16).padStart(8, '0')}`,
      state: n % 10 === 0 ? 'stopped' : 'running',
      privateIp: `10.1.${Math.floor(n / 256)}.${n % 256}`,
      tags: { WorkspaceId: `ws-${n}`, Fleet: n % 2 === 0 ? 'even' : 'odd' },
    }));
    api.setInstances(fleet);
    const c = client();
    const seen: string[] = [];
    let pages = 0;
    for await (const page of paginateDescribeInstances({ client: c, pageSize: 100 }, { Filters: [{ Name: 'tag-key', Values: ['WorkspaceId'] }] })) {
      pages++;
      for (const r of page.Reservations ?? []) for (const i of r.Instances ?? []) seen.push(i.InstanceId!);
    }
    expect(pages).toBe(10);
    expect(seen).toEqual(fleet.map((i) => i.instanceId));

    const running = await c.send(new DescribeInstancesCommand({
      Filters: [{ Name: 'instance-state-name', Values: ['stopped'] }, { Name: 'tag:Fleet', Values: ['ev*'] }],
    }));
    const stopped = (running.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    expect(stopped).toHaveLength(100);
    expect(stopped.every((i) => i.State?.Name === 'stopped' && i.State.Code === 80)).toBe(true);

    const byId = await c.send(new DescribeInstancesCommand({ InstanceIds: ['i-00000001', 'i-00000002'] }));
    const ids = (byId.Reservations ?? []).flatMap((r) => r.Instances ?? []);
    expect(ids.map((i) => [i.InstanceId, i.PrivateIpAddress, i.Tags?.find((t) => t.Key === 'WorkspaceId')?.Value])).toEqual([
      ['i-00000001', '10.1.0.1', 'ws-1'],
      ['i-00000002', '10.1.0.2', 'ws-2'],
    ]);

    const missing = await failure(c.send(new DescribeInstancesCommand({ InstanceIds: ['i-ffffffff'] })));
    expect((missing as Error).name).toBe('InvalidInstanceID.NotFound');
    const badCombination = await failure(c.send(new DescribeInstancesCommand({ InstanceIds: ['i-00000001'], MaxResults: 5 })));
    expect((badCombination as Error).name).toBe('InvalidParameterCombination');
  });
});

describe('Ec2WorkspaceDirectory.list (a rollout\'s --all / tag selector)', () => {
  it('every WorkspaceId of the fleet, once each, sorted, across pages; terminated instances and malformed ids left out', async () => {
    const fleet = Array.from({ length: 1203 }, (_, i) => instance(`i-${String(i).padStart(5, '0')}`, i % 10 === 0 ? 'stopped' : 'running', { WorkspaceId: `ws-${String(i).padStart(4, '0')}` }));
    api.setInstances([
      ...fleet,
      instance('i-dup', 'running', { WorkspaceId: 'ws-0001' }),
      instance('i-gone', 'terminated', { WorkspaceId: 'ws-gone' }),
      instance('i-bad', 'running', { WorkspaceId: 'not ok!' }),
      instance('i-none', 'running', { Name: 'no workspace tag' }),
    ]);
    const before = api.calls;
    const ids = await directory().list();
    expect(ids).toEqual(fleet.map((f) => f.tags.WorkspaceId).sort());
    expect(api.calls - before).toBeGreaterThan(1);
    expect(api.requests.at(-1)).toMatchObject({ 'Filter.1.Name': 'tag-key', 'Filter.1.Value.1': 'WorkspaceId' });
  });

  it('a tag selector keeps the instances carrying every selected tag value', async () => {
    api.setInstances([
      instance('i-1', 'running', { WorkspaceId: 'a', Team: 'red', Env: 'prod' }),
      instance('i-2', 'running', { WorkspaceId: 'b', Team: 'red', Env: 'dev' }),
      instance('i-3', 'running', { WorkspaceId: 'c', Team: 'blue', Env: 'prod' }),
    ]);
    expect(await directory().list({ Team: 'red', Env: 'prod' })).toEqual(['a']);
    expect(await directory().list({ Team: 'red' })).toEqual(['a', 'b']);
  });
});
