/**
 * Fleet rollouts over the remote transports (issue 11, "Done when": the same rollout over SSM
 * and EIC). statemachine/rollout.asl.json run by the local runner with the real handlers over the
 * AWS adapters on loopback, driven by pluginctl's own rollout loop (bin/cli/run-rollout.ts):
 * workspaces found (and, by tag selector, targeted) through the EC2 API stand-in, the source
 * stored once in s3rver, every host step a real SSM Run Command of the stack's document on a
 * stand-in instance (each instance its own filesystem) or a real ssh2 session to a real sshd
 * under sudo (each workspace its own plugins root on the one sshd). Hosts fail for real: an `mv`
 * shim inside the snapshot step of chosen workspaces (test/helpers/fleet-faults.ts), so those
 * installs swap, fail and roll back on the host. The outcome is read from each host's files.
 *
 * The rollout's documents live in a directory (the S3 adapter of the RolloutStore comes with the
 * infra pass, docs/workflows.md); everything the rollout does to a host goes through the transport.
 */
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRollout } from '../../bin/cli/run-rollout.ts';
import type { HostResolver } from '../../lambdas/core/host/host-resolver.ts';
import type { RolloutRequest } from '../../lambdas/core/rollout/rollout-record.ts';
import { startAwsWorld, type AwsWorld } from '../helpers/aws-world.ts';
import { writeCatalog } from '../helpers/catalog-versions.ts';
import { fleetFaults, type FleetFaults } from '../helpers/fleet-faults.ts';
import { hostState, liveVersion } from '../helpers/host-state.ts';
import { startEicHarness, type EicHarness } from '../servers/eic-harness.ts';
import { instanceIdFor } from '../servers/ssm-harness.ts';
import { sshdAvailable } from '../servers/sshd.ts';

interface Contract {
  status: string;
  rollout: string;
  plugin: string;
  version: string;
  counts: Record<string, number>;
  workspaces: { workspace: string; status: string; execution?: string; error?: { code: string; message: string; hint: string } }[];
}

/** pluginctl rollout --json, in this process, over the world's ports. */
async function rollout(world: AwsWorld, request: Pick<RolloutRequest, 'rolloutId' | 'source' | 'targets'> & Partial<RolloutRequest>): Promise<{ code: number; report: Contract }> {
  let out = '';
  let err = '';
  const code = await runRollout({
    deps: world.deps,
    request: { sha256: null, maxConcurrency: 10, maxErrors: '0', canary: 1, rollbackOnHalt: false, ...request },
    json: true,
    out: (t) => (out += t),
    err: (t) => (err += t),
    tty: false,
    // Retry timing is not what these tests are about.
    retryDelayMs: 50,
  });
  expect(out.trim().split('\n'), err).toHaveLength(1);
  return { code, report: JSON.parse(out) as Contract };
}

const byStatus = (c: Contract, status: string) => c.workspaces.filter((w) => w.status === status).map((w) => w.workspace);

function rolloutEvents(world: AwsWorld, id: string): { detailType: string; detail: Record<string, unknown> }[] {
  return readFileSync(world.eventsFile, 'utf8').trim().split('\n')
    .map((l) => JSON.parse(l) as { detailType: string; detail: Record<string, unknown> | string })
    .map((e) => ({ detailType: e.detailType, detail: (typeof e.detail === 'string' ? JSON.parse(e.detail) : e.detail) as Record<string, unknown> }))
    .filter((e) => e.detailType.startsWith('Plugin Rollout') && e.detail.rollout === id);
}

// --- SSM Run Command: 50 instances picked by tag, 3 more that the selector leaves out -------------

const BLUE = Array.from({ length: 50 }, (_, i) => `blue-${String(i + 1).padStart(2, '0')}`);
const GREEN = ['green-1', 'green-2', 'green-3'];
// Waves with canary 1 and maxConcurrency 10: [01] [02-11] [12-21] [22-31] …; blue-05 fails (1 ≤
// maxErrors 2: go on), blue-14 and blue-18 fail (3 > 2: halt after that wave), blue-40 is never
// reached.
const BROKEN = ['blue-05', 'blue-14', 'blue-18', 'blue-40'];
const FAILED = ['blue-05', 'blue-14', 'blue-18'];
const UPGRADED = BLUE.slice(0, 21).filter((w) => !FAILED.includes(w));
const LEFT = BLUE.slice(21);

describe('fleet rollout over SSM Run Command (stand-in): 50 instances by tag selector, v1 → v2, maxConcurrency 10, maxErrors 2, 4 hosts failing', () => {
  let world: AwsWorld;
  let faults: FleetFaults;
  let catalog: string;
  let first: { code: number; report: Contract };
  let sendsBefore: number;
  const root = (ws: string) => world.pluginsRoot(ws);
  const live = (ids: string[]) => Object.fromEntries(ids.map((ws) => [ws, liveVersion(root(ws), 'p')]));
  const on = (ids: string[], version: string) => Object.fromEntries(ids.map((ws) => [ws, version]));

  beforeAll(async () => {
    catalog = await writeCatalog(await mkdtemp(join(tmpdir(), 'rollout-catalog-')), 'p', ['1.0.0', '2.0.0']);
    faults = fleetFaults('snapshot');
    world = await startAwsWorld(
      [...BLUE.map((id) => ({ id, tags: { Fleet: 'blue' } })), ...GREEN.map((id) => ({ id, tags: { Fleet: 'green' } }))],
      { ownRoots: true, ssm: { env: faults.env }, catalogDir: catalog },
    );
    // Every workspace on v1, put there by a rollout as a fleet would be.
    const setup = await rollout(world, { rolloutId: 'setup', source: 'local://p@1.0.0', targets: { all: true } });
    expect(setup.code, JSON.stringify(setup.report.workspaces.filter((w) => w.error))).toBe(0);
    expect(live([...BLUE, ...GREEN])).toEqual(on([...BLUE, ...GREEN], '1.0.0'));

    faults.breakRoots(BROKEN.map(root));
    sendsBefore = world.ssm.api.invocations().length;
    first = await rollout(world, { rolloutId: 'to-v2', source: 'local://p@2.0.0', targets: { selector: { Fleet: 'blue' } }, maxConcurrency: 10, maxErrors: '2' });
  }, 900_000);

  afterAll(async () => {
    await world?.stop();
    faults?.cleanup();
    if (catalog) await rm(catalog, { recursive: true, force: true });
  });

  it('halts (exit 3) after the wave whose failures exceeded maxErrors; the selector took the 50 blue instances only', () => {
    expect(first.code).toBe(3);
    expect(first.report).toMatchObject({ status: 'halted', rollout: 'to-v2', plugin: 'p', version: '2.0.0' });
    expect(first.report.workspaces.map((w) => w.workspace)).toEqual(BLUE);
    expect(first.report.counts).toEqual({ targets: 50, succeeded: 18, failed: 3, skipped: 0, notStarted: 29, rolledBack: 0 });
    expect(byStatus(first.report, 'succeeded')).toEqual(UPGRADED);
    expect(byStatus(first.report, 'failed')).toEqual(FAILED);
    expect(byStatus(first.report, 'not-started')).toEqual(LEFT);
    for (const w of first.report.workspaces.filter((x) => x.status === 'failed')) {
      expect(w.error!.code, w.error!.message).toBe('HostIoError');
      expect(w.execution).toMatch(new RegExp(`^${w.workspace}-p-`));
    }
    expect(rolloutEvents(world, 'to-v2').at(-1)).toMatchObject({ detailType: 'Plugin Rollout Halted', detail: { status: 'halted', reason: 'max-errors' } });
  });

  it('on each instance\'s filesystem: succeeded ones v2 complete, failed and not-started ones v1 complete, the untargeted ones v1; nothing staged or locked', () => {
    expect(live(UPGRADED)).toEqual(on(UPGRADED, '2.0.0'));
    expect(live([...FAILED, ...LEFT])).toEqual(on([...FAILED, ...LEFT], '1.0.0'));
    expect(live(GREEN)).toEqual(on(GREEN, '1.0.0'));
    for (const ws of [...BLUE, ...GREEN]) expect(hostState(root(ws), 'p'), ws).toMatchObject({ staging: [], locked: false });
  });

  it('every command went to a blue instance; after the halt, the not-started ones got no command but the read-only list', () => {
    const invocations = world.ssm.api.invocations().slice(sendsBefore);
    const blue = new Set(BLUE.map(instanceIdFor));
    expect(invocations.filter((i) => !blue.has(i.instanceId))).toEqual([]);
    const notStarted = new Set(LEFT.map(instanceIdFor));
    const ops = invocations.filter((i) => notStarted.has(i.instanceId)).map((i) => i.parameters.operation?.[0]);
    expect(ops.filter((op) => op !== 'list')).toEqual([]);
    // Each upgraded instance ran a whole install over SSM.
    for (const ws of UPGRADED) {
      const mine = invocations.filter((i) => i.instanceId === instanceIdFor(ws)).map((i) => i.parameters.operation?.[0]);
      expect(mine, ws).toEqual(expect.arrayContaining(['lock', 'stage', 'snapshot', 'swap', 'mark', 'unlock']));
    }
  });

  it('after the hosts are repaired, the same rollout id reaches v2 on every blue instance; the earlier successes are skipped (exit 0)', async () => {
    faults.repair();
    const again = await rollout(world, { rolloutId: 'to-v2', source: 'local://p@2.0.0', targets: { selector: { Fleet: 'blue' } }, maxConcurrency: 10, maxErrors: '2' });
    expect(again.code, JSON.stringify(again.report.workspaces.filter((w) => w.error))).toBe(0);
    expect(again.report.status).toBe('succeeded');
    expect(byStatus(again.report, 'skipped')).toEqual(UPGRADED);
    expect(again.report.counts).toEqual({ targets: 50, succeeded: 32, failed: 0, skipped: 18, notStarted: 0, rolledBack: 0 });
    expect(live(BLUE)).toEqual(on(BLUE, '2.0.0'));
    expect(live(GREEN)).toEqual(on(GREEN, '1.0.0'));
    for (const ws of BLUE) expect(hostState(root(ws), 'p'), ws).toMatchObject({ staging: [], locked: false });
  }, 900_000);
});

// --- EC2 Instance Connect: 4 workspaces on the real sshd --------------------------------------

const EIC_FLEET = ['eic-1', 'eic-2', 'eic-3', 'eic-4'];

describe.skipIf(!sshdAvailable)('fleet rollout over EC2 Instance Connect (real sshd): 4 workspaces, each its own plugins root', () => {
  let eic: EicHarness;
  let world: AwsWorld;
  let faults: FleetFaults;
  let catalog: string;
  const root = (ws: string) => world.pluginsRoot(ws);
  const live = () => Object.fromEntries(EIC_FLEET.map((ws) => [ws, liveVersion(root(ws), 'p')]));

  beforeAll(async () => {
    catalog = await writeCatalog(await mkdtemp(join(tmpdir(), 'rollout-catalog-')), 'p', ['1.0.0', '2.0.0', '3.0.0']);
    faults = fleetFaults('snapshot');
    // (This process plays the Lambdas, S3, the APIs and the sshd's clients on a small shared
    // machine: connecting gets 15 s.)
    eic = await startEicHarness({ instances: EIC_FLEET.length, host: { connectTimeoutMs: 15_000 } });
    const instanceOf = new Map(EIC_FLEET.map((id, i) => [id, eic.instanceIds[i]!]));
    // One resolver per workspace, with its own plugins root; the fault shims' environment on
    // every host step (sudo -n env …), the broken roots list deciding where they fire.
    const resolvers = new Map(EIC_FLEET.map((id) => [id, eic.resolverWith({ rootPrefix: join(eic.hostRoot, id), privilege: faults.privilege })]));
    const resolver: HostResolver = (workspace) => resolvers.get(workspace.id)!(workspace);
    world = await startAwsWorld(EIC_FLEET.map((id) => ({ id, transport: 'eic' as const })), {
      catalogDir: catalog,
      eic: { resolver, hostRoot: eic.hostRoot, register: (spec) => ({ instanceId: instanceOf.get(spec.id)!, privateIp: '127.0.0.1', hostRoot: join(eic.hostRoot, spec.id) }) },
    });
    const setup = await rollout(world, { rolloutId: 'setup', source: 'local://p@1.0.0', targets: { all: true }, maxConcurrency: 2 });
    expect(setup.code, JSON.stringify(setup.report.workspaces.filter((w) => w.error))).toBe(0);
    expect(live()).toEqual({ 'eic-1': '1.0.0', 'eic-2': '1.0.0', 'eic-3': '1.0.0', 'eic-4': '1.0.0' });
  }, 600_000);

  afterAll(async () => {
    await world?.stop();
    await eic?.stop();
    faults?.cleanup();
    if (catalog) await rm(catalog, { recursive: true, force: true });
  });

  it('a rollout to v2 succeeds everywhere (exit 0): every host v2 complete, the files the agent\'s', async () => {
    const r = await rollout(world, { rolloutId: 'eic-v2', source: 'local://p@2.0.0', targets: { workspaces: EIC_FLEET }, maxConcurrency: 2 });
    expect(r.code, JSON.stringify(r.report.workspaces.filter((w) => w.error))).toBe(0);
    expect(r.report).toMatchObject({ status: 'succeeded', version: '2.0.0' });
    expect(r.report.counts).toEqual({ targets: 4, succeeded: 4, failed: 0, skipped: 0, notStarted: 0, rolledBack: 0 });
    expect(live()).toEqual({ 'eic-1': '2.0.0', 'eic-2': '2.0.0', 'eic-3': '2.0.0', 'eic-4': '2.0.0' });
    for (const ws of EIC_FLEET) {
      expect(statSync(join(root(ws), 'p', 'plugin.yaml')).uid, ws).toBe(1000);
      expect(hostState(root(ws), 'p'), ws).toMatchObject({ staging: [], failed: [], locked: false });
      expect(hostState(root(ws), 'p').previous, ws).toHaveLength(1);
    }
  }, 600_000);

  it('a failing target halts the next rollout (maxErrors 0): waves [eic-1] [eic-2, eic-3]; eic-3 rolled back on its host, eic-4 never started; re-run after repair finishes it', async () => {
    faults.breakRoots([root('eic-3')]);
    const r = await rollout(world, { rolloutId: 'eic-v3', source: 'local://p@3.0.0', targets: { workspaces: EIC_FLEET }, maxConcurrency: 2, maxErrors: '0' });
    expect(r.code).toBe(3);
    expect(r.report.status).toBe('halted');
    expect(r.report.counts).toEqual({ targets: 4, succeeded: 2, failed: 1, skipped: 0, notStarted: 1, rolledBack: 0 });
    expect(byStatus(r.report, 'failed')).toEqual(['eic-3']);
    expect(r.report.workspaces.find((w) => w.workspace === 'eic-3')!.error!.code).toBe('HostIoError');
    expect(live()).toEqual({ 'eic-1': '3.0.0', 'eic-2': '3.0.0', 'eic-3': '2.0.0', 'eic-4': '2.0.0' });
    expect(hostState(root('eic-3'), 'p')).toMatchObject({ staging: [], locked: false });

    faults.repair();
    const again = await rollout(world, { rolloutId: 'eic-v3', source: 'local://p@3.0.0', targets: { workspaces: EIC_FLEET }, maxConcurrency: 2, maxErrors: '0' });
    expect(again.code, JSON.stringify(again.report.workspaces.filter((w) => w.error))).toBe(0);
    expect(byStatus(again.report, 'skipped')).toEqual(['eic-1', 'eic-2']);
    expect(again.report.counts).toEqual({ targets: 4, succeeded: 2, failed: 0, skipped: 2, notStarted: 0, rolledBack: 0 });
    expect(live()).toEqual({ 'eic-1': '3.0.0', 'eic-2': '3.0.0', 'eic-3': '3.0.0', 'eic-4': '3.0.0' });
  }, 600_000);
});
