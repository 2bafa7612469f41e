/**
 * A local stand-in of the EC2 Query API, just `DescribeInstances`, on loopback. The real
 * `EC2Client` reaches it through `endpoint` alone: POST `/`, `application/x-www-form-urlencoded`
 * (`Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag:WorkspaceId&Filter.1.Value.1=…`),
 * answered with EC2's XML (reservationSet → instancesSet → instanceState, privateIpAddress,
 * tagSet, launchTime) or EC2's error document (`<Response><Errors><Error><Code>…`).
 *
 * Supported: filters `tag:<Key>`, `tag-key`, `instance-state-name`, `instance-id`,
 * `private-ip-address` (values OR-ed, filters AND-ed, `*`/`?` wildcards as in EC2);
 * `InstanceId.N` (an unknown id is `InvalidInstanceID.NotFound`, 400); pagination with
 * `MaxResults` (5-1000, not together with instance ids, as in EC2) and `NextToken`.
 * Faults: `failNext(code, status, times)` (e.g. `RequestLimitExceeded`, 503 — EC2 throttles with
 * 503 — or `InternalError`, 500). Every request counts in `calls`; `requests` keeps their params.
 * Requests whose SigV4 signature does not verify with the known temporary test credentials
 * (session token required and signed: test/servers/sigv4.ts) are refused (401 `AuthFailure`), as
 * EC2 would.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './loopback.ts';
import { TEST_CREDENTIALS, TEST_REGION, verifyHeaderSignature, type TestCredentials } from './sigv4.ts';

export type Ec2State = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

export interface StandInInstance {
  instanceId: string;
  state: Ec2State;
  privateIp?: string;
  tags: Record<string, string>;
  /** ISO time; default a fixed time in the past. */
  launchTime?: string;
  /** Instances sharing a reservation id are listed in one reservation (default: one each). */
  reservationId?: string;
}

export interface Ec2ApiStandIn {
  endpoint: string;
  /** Requests received (faulted ones included). */
  readonly calls: number;
  /** The decoded form parameters of every request, oldest first. */
  readonly requests: ReadonlyArray<Record<string, string>>;
  failNext(code: string, status: number, times?: number): void;
  setInstances(instances: StandInInstance[]): void;
  stop(): Promise<void>;
}

const STATE_CODES: Record<Ec2State, number> = {
  pending: 0,
  running: 16,
  'shutting-down': 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
};

const XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function requestId(): string {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly status = 400) {
    super(message);
  }
}

function errorDocument(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${xml(code)}</Code><Message>${xml(message)}</Message></Error></Errors><RequestID>${requestId()}</RequestID></Response>`;
}

/** EC2 filter values: `*` any run of characters, `?` one character, `\` escapes. */
function globMatch(pattern: string, value: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${re}$`).test(value);
}

/** `Prefix.N` (and `Prefix.N.Sub`) lists out of the flat form parameters, in index order. */
function indexed(params: Record<string, string>, prefix: string): Map<number, string> {
  const out = new Map<number, string>();
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.(\\d+)$`);
  for (const [k, v] of Object.entries(params)) {
    const m = re.exec(k);
    if (m) out.set(Number(m[1]), v);
  }
  return new Map([...out].sort((a, b) => a[0] - b[0]));
}

interface Filter {
  name: string;
  values: string[];
}

function parseFilters(params: Record<string, string>): Filter[] {
  const filters: Filter[] = [];
  const names = new Map<number, string>();
  for (const [k, v] of Object.entries(params)) {
    const m = /^Filter\.(\d+)\.Name$/.exec(k);
    if (m) names.set(Number(m[1]), v);
  }
  for (const [n, name] of [...names].sort((a, b) => a[0] - b[0])) {
    const values = [...indexed(params, `Filter.${n}.Value`).values()];
    if (values.length === 0) throw new ApiError('InvalidParameterValue', `The filter '${name}' requires at least one value`);
    filters.push({ name, values });
  }
  return filters;
}

function matches(instance: StandInInstance, filter: Filter): boolean {
  const any = (value: string | undefined) => value !== undefined && filter.values.some((p) => globMatch(p, value));
  if (filter.name.startsWith('tag:')) return any(instance.tags[filter.name.slice(4)]);
  switch (filter.name) {
    case 'tag-key':
      return Object.keys(instance.tags).some((k) => any(k));
    case 'instance-state-name':
      return any(instance.state);
    case 'instance-state-code':
      return any(String(STATE_CODES[instance.state]));
    case 'instance-id':
      return any(instance.instanceId);
    case 'private-ip-address':
      return any(instance.privateIp);
    default:
      throw new ApiError('InvalidParameterValue', `The filter '${filter.name}' is invalid`);
  }
}

function instanceXml(i: StandInInstance): string {
  const tags = Object.entries(i.tags)
    .map(([k, v]) => `<item><key>${xml(k)}</key><value>${xml(v)}</value></item>`)
    .join('');
  const running = i.state !== 'terminated';
  return [
    '<item>',
    `<instanceId>${xml(i.instanceId)}</instanceId>`,
    '<imageId>ami-0123456789abcdef0</imageId>',
    `<instanceState><code>${STATE_CODES[i.state]}</code><name>${i.state}</name></instanceState>`,
    running && i.privateIp ? `<privateDnsName>ip-${xml(i.privateIp.replace(/\./g, '-'))}.ec2.internal</privateDnsName>` : '<privateDnsName/>',
    '<instanceType>t4g.medium</instanceType>',
    `<launchTime>${xml(i.launchTime ?? '2026-01-01T00:00:00.000Z')}</launchTime>`,
    running && i.privateIp ? `<privateIpAddress>${xml(i.privateIp)}</privateIpAddress>` : '',
    '<architecture>arm64</architecture>',
    tags ? `<tagSet>${tags}</tagSet>` : '',
    '</item>',
  ].join('');
}

function describeInstances(all: StandInInstance[], params: Record<string, string>): string {
  const ids = [...indexed(params, 'InstanceId').values()];
  const filters = parseFilters(params);
  const maxRaw = params.MaxResults;
  if (maxRaw !== undefined && ids.length > 0) {
    throw new ApiError('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
  }
  let max: number | undefined;
  if (maxRaw !== undefined) {
    max = Number(maxRaw);
    if (!Number.isInteger(max) || max < 5 || max > 1000) {
      throw new ApiError('InvalidParameterValue', `Value ( ${maxRaw} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`);
    }
  }
  if (ids.length > 0) {
    const missing = ids.filter((id) => !all.some((i) => i.instanceId === id));
    if (missing.length > 0) throw new ApiError('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`);
  }
  const selected = all.filter((i) => (ids.length === 0 || ids.includes(i.instanceId)) && filters.every((f) => matches(i, f)));

  let offset = 0;
  if (params.NextToken !== undefined) {
    const decoded = /^o:(\d+)$/.exec(Buffer.from(params.NextToken, 'base64url').toString());
    if (!decoded) throw new ApiError('InvalidParameterValue', 'The specified NextToken is not valid');
    offset = Number(decoded[1]);
  }
  const page = max === undefined ? selected.slice(offset) : selected.slice(offset, offset + max);
  const next = max !== undefined && offset + max < selected.length ? Buffer.from(`o:${offset + max}`).toString('base64url') : undefined;

  // Group the page into reservations, keeping the instances' order.
  const reservations = new Map<string, StandInInstance[]>();
  for (const i of page) {
    const r = i.reservationId ?? `r-${i.instanceId.replace(/^i-/, '')}`;
    reservations.set(r, [...(reservations.get(r) ?? []), i]);
  }
  const reservationXml = [...reservations]
    .map(([id, instances]) => `<item><reservationId>${xml(id)}</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>${instances.map(instanceXml).join('')}</instancesSet></item>`)
    .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="${XMLNS}"><requestId>${requestId()}</requestId><reservationSet>${reservationXml}</reservationSet>${next ? `<nextToken>${next}</nextToken>` : ''}</DescribeInstancesResponse>`;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 1024 * 1024) throw new ApiError('RequestEntityTooLarge', 'request too large', 413);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startEc2Api(options: { instances?: StandInInstance[]; credentials?: TestCredentials } = {}): Promise<Ec2ApiStandIn> {
  const credentials = options.credentials ?? TEST_CREDENTIALS;
  let instances: StandInInstance[] = [...(options.instances ?? [])];
  const faults: Array<{ code: string; status: number }> = [];
  const requests: Array<Record<string, string>> = [];
  let calls = 0;

  const send = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'content-length': String(Buffer.byteLength(body)), ...headers });
    res.end(body);
  };

  const server = createServer((req, res) => {
    calls++;
    void (async () => {
      try {
        const body = await readBody(req);
        const params = Object.fromEntries(new URLSearchParams(body));
        requests.push(params);
        const fault = faults.shift();
        if (fault) {
          return send(res, fault.status, errorDocument(fault.code, `injected ${fault.code}`), fault.status === 503 ? { 'retry-after': '1' } : {});
        }
        if (req.method !== 'POST' || !/^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '')) {
          throw new ApiError('InvalidAction', 'The EC2 Query API expects a form-encoded POST');
        }
        const problem = await verifyHeaderSignature(req, body, { service: 'ec2', region: TEST_REGION, credentials });
        if (problem) {
          // EC2 answers every SigV4 problem the same way, 401 AuthFailure (the detail is ours).
          throw new ApiError('AuthFailure', `AWS was not able to validate the provided access credentials (${problem})`, 401);
        }
        if (params.Version !== '2016-11-15') throw new ApiError('InvalidParameterValue', `unsupported API version ${params.Version ?? '(none)'}`);
        if (params.Action !== 'DescribeInstances') {
          throw new ApiError('InvalidAction', `The action ${params.Action ?? '(none)'} is not valid for this web service.`);
        }
        send(res, 200, describeInstances(instances, params));
      } catch (err) {
        if (err instanceof ApiError) return send(res, err.status, errorDocument(err.code, err.message));
        send(res, 500, errorDocument('InternalError', err instanceof Error ? err.message : String(err)));
      }
    })();
  });
  const port = await listenOnLoopback(server);

  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get calls() {
      return calls;
    },
    get requests() {
      return requests;
    },
    failNext(code: string, status: number, times = 1) {
      for (let i = 0; i < times; i++) faults.push({ code, status });
    },
    setInstances(next: StandInInstance[]) {
      instances = [...next];
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
