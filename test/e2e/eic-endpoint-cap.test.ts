/**
 * 50 installs at once, each on its own EC2 Instance Connect workspace, all through ONE EIC
 * Endpoint, which carries at most `maxConnections` tunnels (AWS: 20, not adjustable; the
 * stand-in enforces it and refuses more with 429). The real install workflow (aws-local-
 * stepfunctions over statemachine/install.asl.json) with the real handlers: workspaces found
 * through the EC2 API stand-in, tarballs in s3rver, every host step over real ssh2 through the
 * endpoint stand-in to a real sshd, as eicuser under sudo -n.
 *
 * Each workspace has its own resolver, hence its own adapter and connections, as each Lambda
 * container has in production, with the Lambdas' endpoint-mode settings (no idle connection
 * kept, lambdas/commons/aws-deps.ts) and the production step budget (45 s). Every install must
 * succeed, and no host step may fail on a refused tunnel: a refusal is a jittered wait inside the
 * step (only a step whose whole budget passed waiting may end, HostTimeout, and the workflow
 * retries it). The stand-in must have refused tunnels (the wait was really exercised) and never
 * carried more than its cap.
 *
 * (This test process plays the 50 Lambdas, the endpoint, S3 and the EC2 APIs on one event loop
 * of a small shared machine: connecting gets 15 s instead of the Lambdas' 10 s.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { PluginError } from '../../lambdas/core/errors.ts';
import type { HostResolver } from '../../lambdas/core/host/host-resolver.ts';
import type { TunnelRefusal } from '../../lambdas/core/host/eic-host.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { runWorkflow } from '../../lambdas/core/workflow/local-runner.ts';
import { startAwsWorld } from '../helpers/aws-world.ts';
import { hostState } from '../helpers/host-state.ts';
import { withRun } from '../helpers/wrap-host.ts';
import { startEicHarness } from '../servers/eic-harness.ts';
import { sshdAvailable } from '../servers/sshd.ts';

const INSTALLS = 50;
/** AWS's quota per endpoint, and the stand-in's default. */
const CAP = 20;
/** A step that failed on the refusal itself (what the adapter did before it waited). */
const REFUSED_AT_ONCE = /refused the tunnel: HTTP 429/;
/** A step whose whole budget passed waiting for the endpoint (typed, retried by the workflow). */
const WAITED_OUT = /at its limit of \d+ concurrent connections/;

describe.skipIf(!sshdAvailable)('EIC Endpoint connection limit under concurrent installs', () => {
  it(`${INSTALLS} concurrent installs through one endpoint capped at ${CAP} tunnels all succeed; no step fails for the cap`, async () => {
    const refusals: TunnelRefusal[] = [];
    /** Every error a host step threw (each attempt), as the step handler saw it. */
    const stepErrors: { workspace: string; op: string; code: string; message: string }[] = [];
    const eic = await startEicHarness({ viaEndpoint: true, instances: INSTALLS + 1, maxConnections: CAP, host: { connectTimeoutMs: 15_000 } });
    const ids = Array.from({ length: INSTALLS }, (_, i) => `cap-ws-${String(i).padStart(2, '0')}`);
    const warmup = 'cap-warmup';
    const instanceOf = new Map([...ids, warmup].map((id, i) => [id, eic.instanceIds[i]!]));
    // One resolver (one adapter, its own connections) per workspace, like one Lambda container
    // each; every workspace gets its own plugins root on the one sshd.
    const resolvers = new Map([...ids, warmup].map((id) => [id, eic.resolverWith({ rootPrefix: join(eic.hostRoot, id), idleTimeoutMs: 0, onTunnelRefused: (r) => refusals.push(r) })]));
    const resolver: HostResolver = (workspace) => {
      const resolved = resolvers.get(workspace.id)!(workspace);
      const { host } = resolved;
      const watched = withRun(host, async (invocation) => {
        try {
          return await host.run(invocation);
        } catch (error) {
          const e = error instanceof PluginError ? error : new PluginError('HostStepFailed', String(error));
          stepErrors.push({ workspace: workspace.id, op: invocation.op, code: e.code, message: e.message });
          throw error;
        }
      });
      return { ...resolved, host: watched };
    };
    const world = await startAwsWorld(
      [...ids, warmup].map((id) => ({ id, transport: 'eic' as const })),
      { eic: { resolver, hostRoot: eic.hostRoot, register: (spec) => ({ instanceId: instanceOf.get(spec.id)!, privateIp: '127.0.0.1' }) } },
    );
    // The deployed budget of the short host steps (docs/deploy.md: the function's 60 s less 15 s).
    world.deps.hostTimeoutMs = 45_000;
    const install = (id: string) => {
      const stamp = newStamp();
      return runWorkflow({
        workflow: 'install',
        input: { workspace: id, source: 'local://hello-skills@1.0.0', sha256: null, runtime: null, stamp },
        executionName: executionName(id, 'hello-skills', stamp),
        deps: world.deps,
        // The ASL's own retry intervals (1 s, then backoff), as deployed: with 10 ms between
        // attempts, a step caught in a burst of 50 connections at once (on a loaded machine
        // sshd drops some sessions mid-step: HostStepInterrupted) used all its attempts within
        // the same burst.
      });
    };
    try {
      // One install first, so the artifact is in the bucket before the 50 Prepare steps look:
      // s3rver's CopyObject is not atomic (S3's is), and 50 copies of one new key at once let
      // a reader find it missing (SourceNotFound), which is not what this test is about.
      expect((await install(warmup)).status).toBe('SUCCEEDED');
      const endpoint = eic.endpoint!;
      await expect.poll(() => endpoint.open).toBe(0);
      const tunnelsBefore = endpoint.tunnels;
      const outcomes = await Promise.all(ids.map((id) => install(id)));
      const summary = { cap: CAP, peak: endpoint.peak, refusedAtCap: endpoint.refusedAtCap, tunnels: endpoint.tunnels - tunnelsBefore, adapterRefusals: refusals.length, stepErrors: stepErrors.length };
      console.info(`endpoint cap: ${JSON.stringify(summary)}`);
      if (stepErrors.length) console.info(stepErrors.map((e) => `${e.workspace} ${e.op} ${e.code}: ${e.message}`).join('\n'));

      // Refused tunnels were waited for inside the step, never surfaced to the workflow as such.
      expect(stepErrors.filter((e) => REFUSED_AT_ONCE.test(e.message))).toEqual([]);
      for (const e of stepErrors.filter((x) => WAITED_OUT.test(x.message))) expect(e.code).toBe('HostTimeout');
      for (const [i, outcome] of outcomes.entries()) {
        expect(outcome.status, `${ids[i]}: ${outcome.error} ${outcome.cause}`).toBe('SUCCEEDED');
      }
      for (const id of ids) {
        const root = join(eic.hostRoot, id, 'configs/plugins');
        expect(JSON.parse(readFileSync(join(root, 'hello-skills/.complete'), 'utf8')), id).toMatchObject({ name: 'hello-skills', version: '1.0.0' });
        expect(hostState(root, 'hello-skills'), id).toMatchObject({ staging: [], locked: false });
      }
      // The cap was really hit, and never exceeded.
      expect(endpoint.refusedAtCap).toBeGreaterThan(0);
      expect(endpoint.peak).toBeLessThanOrEqual(CAP);
      expect(endpoint.rejected).toBe(0);
      // The refusals reached the adapter as such (429) and each became a wait. (A refusal can
      // also land after its client gave up on the handshake, so the stand-in may count more.)
      expect(refusals.length).toBeGreaterThan(0);
      expect(refusals.length).toBeLessThanOrEqual(endpoint.refusedAtCap);
      expect(refusals.every((r) => r.status === 429)).toBe(true);
      // Seven host steps per install (lock, stage, swap, snapshot, verify, mark, unlock), at least
      // one tunnel each (no idle connection kept), and none left open.
      expect(endpoint.tunnels - tunnelsBefore).toBeGreaterThanOrEqual(INSTALLS * 7);
      await expect.poll(() => endpoint.open).toBe(0);
    } finally {
      await world.stop();
      await eic.stop();
    }
  }, 600_000);
});
