/**
 * What must hold after a burst against `pluginctl serve` (api-burst.ts), whatever the timing:
 *
 * - no 5xx, no connection error or timeout (a hang) on any route;
 * - lists answer 200, downloads 302, execution reads 200;
 * - an install answers 202 or 409, and a 409 is LockBusy with a message and a hint;
 * - no lost or duplicated execution: every 202 names its own execution (no two 202s share one,
 *   none is marked as an Idempotency-Key replay: the burst sends no key), which GET
 *   /executions/{id} finds and which ends, SUCCEEDED or FAILED with LockBusy (it waited for the
 *   lock and gave up); serve's own record (its events.jsonl: one terminal event per execution)
 *   counts the same executions per workspace as the 202s;
 * - every workspace ends with one whole, marked version (one of the two, files exactly that
 *   version's, `.complete` naming it and an execution that succeeded), no lock or staging left,
 *   and GET /workspaces/{id}/plugins says the same.
 *
 * Returns the problems found (empty when all hold) and the counts, for a test to assert and a
 * bench to refuse to report on.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Answer, BurstRun } from './api-burst.ts';
import { hostState } from './host-state.ts';
import { judgeLive, readTree, type Tree } from './live-tree.ts';
import { versionFiles } from './plugin-versions.ts';

export interface BurstWorld {
  url: string;
  token: string;
  home: string;
  plugin: string;
  versions: readonly [string, string];
  workspaces: string[];
  /** Files per version of the sample plugin. */
  files: number;
}

/** The sample plugin's two versions in a catalog directory, and the workspaces registered (running, local). */
export async function prepareBurstHome(world: BurstWorld, catalogDir: string): Promise<void> {
  for (const version of world.versions) {
    for (const [rel, content] of Object.entries(versionFiles({ name: world.plugin, version, files: world.files }))) {
      const path = join(catalogDir, world.plugin, version, rel);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
    }
  }
  await mkdir(world.home, { recursive: true });
  await writeFile(join(world.home, 'workspaces.json'), JSON.stringify({ workspaces: Object.fromEntries(world.workspaces.map((id) => [id, { runtime: 'claude-code' }])) }));
}

async function api(world: BurstWorld, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(`${world.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${world.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    // fetch says only "fetch failed"; the cause (ECONNREFUSED: serve is gone, ECONNRESET…) is the news.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`${method} ${path}: ${cause?.code ?? ''} ${cause?.message ?? String(err)}`, { cause: err });
  }
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

interface Ended {
  status: string;
  error?: { code: string };
}

/** Polls until the execution ends; the deadline only bounds a hang (a loaded machine is slow, not wrong). */
export async function waitForExecution(world: BurstWorld, id: string, deadline: number): Promise<Ended | { missing: number }> {
  for (;;) {
    const r = await api(world, 'GET', `/executions/${id}`);
    if (r.status !== 200) return { missing: r.status };
    if (r.json.status !== 'RUNNING') return r.json as unknown as Ended;
    if (Date.now() > deadline) return { status: 'RUNNING' };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The first version on every workspace before the burst (so downloads and reads have something to find); its execution ids. */
export async function seedInstalls(world: BurstWorld, deadlineMs: number): Promise<string[]> {
  const ids: string[] = [];
  for (const ws of world.workspaces) {
    const r = await api(world, 'POST', `/workspaces/${ws}/plugins`, { source: `local://${world.plugin}@${world.versions[0]}` });
    if (r.status !== 202) throw new Error(`seed install on ${ws}: ${r.status} ${JSON.stringify(r.json)}`);
    ids.push(String(r.json.installId));
  }
  const deadline = Date.now() + deadlineMs;
  for (const id of ids) {
    const ended = await waitForExecution(world, id, deadline);
    if (!('status' in ended) || ended.status !== 'SUCCEEDED') throw new Error(`seed install ${id} did not succeed: ${JSON.stringify(ended)}`);
  }
  return ids;
}

export interface BurstCounts {
  /** Per status, over every route. */
  statuses: Record<string, number>;
  installs: { accepted: number; busy: number; succeeded: number; failedBusy: number };
  perWorkspace: Record<string, { accepted: number; executions: number; events: number; live: string }>;
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export async function burstProblems(world: BurstWorld, run: BurstRun, seeds: string[], deadlineMs: number): Promise<{ problems: string[]; counts: BurstCounts }> {
  const problems: string[] = [];
  const statuses: Record<string, number> = {};
  for (const r of Object.values(run.routes)) {
    for (const [code, n] of Object.entries(r.statuses)) statuses[code] = (statuses[code] ?? 0) + n;
    if (r.errors || r.timeouts) problems.push(`${r.route}: ${r.errors} connection errors, ${r.timeouts} timeouts`);
    const expected = { install: ['202', '409'], list: ['200'], download: ['302'], execution: ['200'] }[r.route as 'install'] ?? [];
    for (const [code, n] of Object.entries(r.statuses)) if (!expected.includes(code)) problems.push(`${r.route}: ${n} answers ${code} (expected ${expected.join(' or ')})`);
  }
  for (const a of run.answers.filter((x) => x.status >= 500 || (x.route !== 'install' && x.status >= 400)).slice(0, 5)) problems.push(`${a.route} answered ${a.status}: ${a.body.slice(0, 300)}`);

  const installs = run.answers.filter((a): a is Answer & { workspace: string } => a.route === 'install' && a.workspace !== undefined);
  const perWorkspace: BurstCounts['perWorkspace'] = Object.fromEntries(world.workspaces.map((ws) => [ws, { accepted: 0, executions: 0, events: 0, live: '' }]));
  const byId = new Map<string, string>();
  for (const a of installs) {
    const body = parseJson(a.body);
    if (a.status === 409) {
      const error = body?.error as { code?: string; message?: string; hint?: string } | undefined;
      if (error?.code !== 'LockBusy' || !error.message || !error.hint) problems.push(`a 409 on ${a.workspace} is not LockBusy with a message and a hint: ${a.body.slice(0, 300)}`);
      continue;
    }
    if (a.status !== 202) continue;
    perWorkspace[a.workspace]!.accepted++;
    const id = body?.installId;
    if (typeof id !== 'string' || body?.statusUrl !== `/executions/${id}`) {
      problems.push(`a 202 on ${a.workspace} names no execution: ${a.body.slice(0, 300)}`);
      continue;
    }
    if (a.replayed) problems.push(`a key-less install on ${a.workspace} got an Idempotency-Key replay of ${id}`);
    if (byId.has(id)) problems.push(`two key-less installs got the same execution ${id} (one execution lost)`);
    byId.set(id, a.workspace);
  }

  // Every accepted execution exists and ends.
  const deadline = Date.now() + deadlineMs;
  const outcomes = new Map<string, Ended>();
  let succeeded = 0;
  let failedBusy = 0;
  for (const [id, ws] of byId) {
    const ended = await waitForExecution(world, id, deadline);
    if ('missing' in ended) {
      problems.push(`GET /executions/${id} answers ${ended.missing}: the 202 named an execution serve does not know`);
      continue;
    }
    outcomes.set(id, ended);
    perWorkspace[ws]!.executions++;
    if (ended.status === 'SUCCEEDED') succeeded++;
    else if (ended.status === 'FAILED' && ended.error?.code === 'LockBusy') failedBusy++;
    else problems.push(`execution ${id} on ${ws} ended ${ended.status}${ended.error ? ` ${JSON.stringify(ended.error)}` : ''} (only SUCCEEDED, or FAILED with LockBusy after waiting, are expected)`);
  }

  // Serve's own record: one terminal event per execution it ran.
  const events = (await readFile(join(world.home, 'events.jsonl'), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { detailType: string; detail: { workspace?: string; execution?: string } });
  const seen = new Map<string, number>();
  for (const e of events) {
    if (e.detailType !== 'Plugin Installed' && e.detailType !== 'Plugin Install Failed') continue;
    const id = `install.${e.detail.execution}`;
    seen.set(id, (seen.get(id) ?? 0) + 1);
    if (byId.has(id)) perWorkspace[byId.get(id)!]!.events++;
    else if (!seeds.includes(id)) problems.push(`serve ran execution ${id} that no 202 named`);
  }
  for (const id of [...byId.keys(), ...seeds]) {
    const n = seen.get(id) ?? 0;
    if (n !== 1) problems.push(`execution ${id} has ${n} terminal events in serve's events.jsonl (expected 1)`);
  }
  for (const [ws, c] of Object.entries(perWorkspace)) {
    if (c.accepted !== c.executions || c.accepted !== c.events) problems.push(`${ws}: ${c.accepted} installs accepted, ${c.executions} executions found, ${c.events} ended in serve's events`);
  }

  // One whole, marked version per workspace, vouched for by an execution that succeeded.
  const trees: Record<string, Tree> = Object.fromEntries(world.versions.map((v) => [v, versionFiles({ name: world.plugin, version: v, files: world.files })]));
  const succeededIds = new Set([...seeds, ...[...outcomes].filter(([, o]) => o.status === 'SUCCEEDED').map(([id]) => id)]);
  for (const ws of world.workspaces) {
    const root = join(world.home, 'workspaces', ws, 'root', 'configs', 'plugins');
    const tree = readTree(join(root, world.plugin));
    const verdict = judgeLive(tree, trees);
    perWorkspace[ws]!.live = verdict.state === 'whole' ? `${verdict.version}${verdict.markedVersion === verdict.version ? '' : ' (unmarked)'}` : verdict.state;
    if (verdict.state !== 'whole' || verdict.markedVersion !== verdict.version) {
      problems.push(`${ws}: live is not one whole marked version: ${JSON.stringify(verdict)}`);
      continue;
    }
    const marker = JSON.parse(tree!['.complete']!) as { execution?: string };
    if (!succeededIds.has(`install.${marker.execution}`)) problems.push(`${ws}: .complete names execution ${marker.execution}, which did not succeed here`);
    const state = hostState(root, world.plugin);
    if (state.locked || state.staging.length) problems.push(`${ws}: left behind ${state.locked ? 'a lock ' : ''}${state.staging.join(' ')}`);
    const listed = await api(world, 'GET', `/workspaces/${ws}/plugins`);
    const entry = (listed.json.plugins as { name: string; version: string; complete: boolean }[] | undefined)?.find((p) => p.name === world.plugin);
    if (entry?.version !== verdict.version || !entry?.complete) problems.push(`${ws}: GET …/plugins says ${JSON.stringify(entry)}, live is ${verdict.version}`);
  }

  const busy = installs.filter((a) => a.status === 409).length;
  return { problems, counts: { statuses, installs: { accepted: byId.size, busy, succeeded, failedBusy }, perWorkspace } };
}
