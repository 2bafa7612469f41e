/**
 * A burst against `pluginctl serve` from a real load tool (autocannon): one autocannon instance
 * per route, all at once, so each route gets its own latencies and status counts. Installs of two
 * versions go round the workspaces (each workspace gets both, interleaved); lists, downloads and
 * execution reads hit the same workspaces meanwhile. Every install answer is kept (status, body,
 * workspace) for the invariants (burst-invariants.ts); the other routes keep the bodies of their
 * errors. Used by bench/api-load.ts and test/e2e/serve-burst.test.ts.
 */
import autocannon from 'autocannon';

export const BURST_ROUTES = ['install', 'list', 'download', 'execution'] as const;
export type BurstRoute = (typeof BURST_ROUTES)[number];

export interface BurstPlan {
  url: string;
  token: string;
  workspaces: string[];
  plugin: string;
  versions: readonly [string, string];
  /** Concurrent connections per route; their sum is the burst's concurrency. */
  connections: Record<BurstRoute, number>;
  /** Requests per connection: each route sends connections × rounds requests. */
  rounds: number;
  /** Execution ids to read while the burst's own installs have not answered yet. */
  knownExecutions: string[];
  /** Seconds without an answer before autocannon counts a timeout (a hang). */
  timeoutSeconds: number;
}

export interface Answer {
  route: BurstRoute | 'floor';
  status: number;
  body: string;
  workspace?: string;
  version?: string;
  /** The Idempotency-Key replay header, which a key-less request must never get. */
  replayed?: boolean;
}

export interface RouteRun {
  route: string;
  connections: number;
  requests: number;
  /** Answers per second over the route's run. */
  rps: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  statuses: Record<string, number>;
  /** Connection errors and timeouts autocannon counted (a hang shows here). */
  errors: number;
  timeouts: number;
}

export interface BurstRun {
  routes: Record<BurstRoute, RouteRun>;
  /** Every install answer, and the other routes' answers of status >= 400. */
  answers: Answer[];
}

/** Nearest-rank percentile. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

interface RouteSpec {
  route: BurstRoute | 'floor';
  connections: number;
  amount: number;
  timeoutSeconds: number;
  request: autocannon.Request;
  keepBody: (status: number) => boolean;
}

/** One autocannon instance: its latencies from each `response` event, its answers by onResponse. */
async function runRoute(url: string, spec: RouteSpec, answers: Answer[]): Promise<RouteRun> {
  const latencies: number[] = [];
  const onResponse = spec.request.onResponse;
  const instance = autocannon({
    url,
    connections: spec.connections,
    amount: spec.amount,
    timeout: spec.timeoutSeconds,
    title: spec.route,
    requests: [
      {
        ...spec.request,
        onResponse: (status, body, context, headers) => {
          onResponse?.(status, body, context, headers);
          if (spec.keepBody(status)) {
            answers.push({
              route: spec.route,
              status,
              body: String(body),
              ...(typeof context.workspace === 'string' ? { workspace: context.workspace } : {}),
              ...(typeof context.version === 'string' ? { version: context.version } : {}),
              replayed: headers['idempotent-replayed'] !== undefined,
            });
          }
        },
      },
    ],
  });
  instance.on('response', (_client, _status, _bytes, ms) => void latencies.push(ms));
  const result = await instance;
  const statuses = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, Number(count)]));
  return {
    route: spec.route,
    connections: spec.connections,
    requests: latencies.length,
    rps: round1(latencies.length / Math.max(result.duration, 0.001)),
    p50Ms: round1(percentile(latencies, 50)),
    p95Ms: round1(percentile(latencies, 95)),
    maxMs: round1(Math.max(...latencies)),
    statuses,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

/**
 * The server's floor: an unauthenticated GET through the same server (401 before any route code
 * runs), at the burst's whole concurrency and request count.
 */
export function runFloor(plan: BurstPlan, answers: Answer[]): Promise<RouteRun> {
  const connections = Object.values(plan.connections).reduce((a, b) => a + b, 0);
  return runRoute(plan.url, {
    route: 'floor',
    connections,
    amount: connections * plan.rounds,
    timeoutSeconds: plan.timeoutSeconds,
    request: { method: 'GET', path: `/workspaces/${plan.workspaces[0]}/plugins` },
    keepBody: (status) => status !== 401,
  }, answers);
}

export async function runBurst(plan: BurstPlan): Promise<BurstRun> {
  const answers: Answer[] = [];
  const auth = { authorization: `Bearer ${plan.token}` };
  const executions = [...plan.knownExecutions];
  let installs = 0;
  let lists = 0;
  let downloads = 0;
  let reads = 0;
  const ws = (i: number) => plan.workspaces[i % plan.workspaces.length]!;
  const amount = (route: BurstRoute) => plan.connections[route] * plan.rounds;
  const failures = (status: number) => status >= 400;

  const specs: RouteSpec[] = [
    {
      route: 'install',
      connections: plan.connections.install,
      amount: amount('install'),
      timeoutSeconds: plan.timeoutSeconds,
      keepBody: () => true,
      request: {
        method: 'POST',
        path: '/',
        setupRequest: (req, context) => {
          // Workspace i mod N, and the version flips on each pass over the workspaces, so every
          // workspace gets both versions, interleaved, from different connections at once.
          const i = installs++;
          const workspace = ws(i);
          const version = plan.versions[Math.floor(i / plan.workspaces.length) % 2]!;
          Object.assign(context, { workspace, version });
          return { ...req, path: `/workspaces/${workspace}/plugins`, headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ source: `local://${plan.plugin}@${version}` }) };
        },
        onResponse: (status, body) => {
          if (status !== 202) return;
          try {
            executions.push(String((JSON.parse(body) as { installId: unknown }).installId));
          } catch {
            // An unreadable 202 is reported by the invariants, from the answer kept below.
          }
        },
      },
    },
    {
      route: 'list',
      connections: plan.connections.list,
      amount: amount('list'),
      timeoutSeconds: plan.timeoutSeconds,
      keepBody: failures,
      request: { method: 'GET', setupRequest: (req) => ({ ...req, path: `/workspaces/${ws(lists++)}/plugins`, headers: auth }) },
    },
    {
      route: 'download',
      connections: plan.connections.download,
      amount: amount('download'),
      timeoutSeconds: plan.timeoutSeconds,
      keepBody: failures,
      request: { method: 'GET', setupRequest: (req) => ({ ...req, path: `/workspaces/${ws(downloads++)}/plugins/${plan.plugin}/download`, headers: auth }) },
    },
    {
      route: 'execution',
      connections: plan.connections.execution,
      amount: amount('execution'),
      timeoutSeconds: plan.timeoutSeconds,
      keepBody: failures,
      // The newest executions first half the time (those are running), any known one otherwise.
      request: {
        method: 'GET',
        setupRequest: (req) => {
          const n = reads++;
          const id = n % 2 ? executions[executions.length - 1 - (n % Math.min(executions.length, 10))]! : executions[n % executions.length]!;
          return { ...req, path: `/executions/${id}`, headers: auth };
        },
      },
    },
  ];
  const runs = await Promise.all(specs.map((spec) => runRoute(plan.url, spec, answers)));
  return { routes: Object.fromEntries(runs.map((r) => [r.route, r])) as Record<BurstRoute, RouteRun>, answers };
}
