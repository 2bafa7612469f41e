/**
 * A representative subset of the hostile-host corpus (test/integration/hostile-host.test.ts)
 * over the AWS transports on loopback: SSM Run Command (the stand-in runs the script as root,
 * as the SSM agent does) and EC2 Instance Connect (a real sshd; the script runs under `sudo -n`
 * as a non-root OS user). Same lifecycle, same checks (test/helpers/hostile-lifecycle.ts): the
 * canaries and everything outside the plugins root untouched and unread, the secret in no output
 * or event, every operation ending with success or a clear typed error, live as it was after a
 * failure.
 *
 * Cases: `.complete` in live → a root-only canary; a snapshot's `.install-stamp` → the canary; a
 * fifo in live (`plugin.yaml`); `.previous` replaced by a symlink to a directory outside
 * (agent-owned legacy root). The first three share one run per transport (each at its own path)
 * and a case is re-run alone if that run finds a problem; the legacy-root case runs alone.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { PluginError, errorFromFailure } from '../../lambdas/core/errors.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { HostSteps } from '../../lambdas/core/host/host-steps.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { listPlugins } from '../../lambdas/core/steps/list-plugins.ts';
import { sweepRules } from '../../lambdas/core/sweep/sweep-rules.ts';
import { runWorkflow } from '../../lambdas/core/workflow/local-runner.ts';
import { startAwsWorld, type AwsWorld } from '../helpers/aws-world.ts';
import {
  PLUGIN,
  actingBeforeEachStep,
  findCase,
  mustExercise,
  runScenario,
  type HostileCase,
  type HostileTransport,
  type OpResult,
  type ScenarioReport,
} from '../helpers/hostile-lifecycle.ts';
import { startEicHarness, type EicHarness } from '../servers/eic-harness.ts';
import { sshdAvailable } from '../servers/sshd.ts';

const HOST_STEP_TIMEOUT_MS = 20_000;

const SHARED = [
  findCase(`<root>/${PLUGIN}/.complete`, 'link-to-canary'),
  findCase(`.previous/${PLUGIN}.<stamp>/.install-stamp`, 'link-to-canary'),
  findCase(`<root>/${PLUGIN}/plugin.yaml`, 'fifo'),
];
const ALONE = [findCase('<root>/.previous (agent-owned legacy root)', 'link-to-outside-dir')];

function errorResult(err: unknown, text: string): OpResult {
  const e = err instanceof PluginError ? err : new PluginError('HostStepFailed', err instanceof Error ? err.message : String(err));
  return { ok: false, code: e.code, message: e.message, text: `${text}\n${JSON.stringify(e.toJSON())}`, summary: `${e.code}: ${e.message}` };
}

/** One workspace of an AWS world as a HostileTransport; `hostRoot` plays the instance's `/`. */
function awsTransport(world: AwsWorld, workspace: string, hostRoot: string, exclude: string[], scratch: string): HostileTransport {
  let act: (() => void) | undefined;
  const deps = { ...world.deps, hostTimeoutMs: HOST_STEP_TIMEOUT_MS, hosts: actingBeforeEachStep(world.deps.hosts, () => act) };
  return {
    root: world.pluginsRoot(workspace),
    scope: hostRoot,
    exclude,
    scratch,
    runWorkflow: async (workflow, source) => {
      const stamp = newStamp();
      const input = workflow === 'install' ? { workspace, source, sha256: null, runtime: null, stamp } : { workspace, plugin: PLUGIN, stamp };
      const outcome = await runWorkflow({ workflow, input, executionName: executionName(workspace, PLUGIN, stamp), deps, retryDelayMs: 10 });
      const text = JSON.stringify(outcome);
      if (outcome.status === 'SUCCEEDED') return { ok: true, text, summary: 'succeeded' };
      const err = errorFromFailure(outcome.error, outcome.cause);
      const failed = outcome.steps.filter((s) => s.status === 'failed').map((s) => `${s.name}:${s.error ?? '?'}`);
      return { ok: false, code: err.code, message: err.message, text: `${text}\n${JSON.stringify(err.toJSON())}`, summary: `${err.code}: ${err.message} (${failed.join(', ')})` };
    },
    list: async () => {
      try {
        const listing = await listPlugins(deps, workspace);
        const text = JSON.stringify(listing);
        if (listing.degraded) return { ok: false, code: 'ListDegraded', message: listing.reason ?? 'degraded', text, summary: `degraded: ${listing.reason}` };
        return { ok: true, text, summary: JSON.stringify(listing.plugins) };
      } catch (err) {
        return errorResult(err, '');
      }
    },
    sweep: async (dryRun, keep = 0) => {
      try {
        const found = await deps.workspaces.lookup(workspace);
        if (found.status !== 'running') throw new Error(`workspace ${workspace} is ${found.status}`);
        const report = await new HostSteps(deps.hosts(found.workspace), HOST_STEP_TIMEOUT_MS).sweep(sweepRules({ now: new Date(), olderThanMs: 0, keepNewest: keep, dryRun }));
        return { ok: true, text: JSON.stringify(report), summary: JSON.stringify(report.counts) };
      } catch (err) {
        return errorResult(err, '');
      }
    },
    events: () => {
      try {
        return readFileSync(world.eventsFile, 'utf8');
      } catch {
        return '';
      }
    },
    beforeHostStep: (fn) => {
      act = fn;
    },
  };
}

/**
 * The cases over one transport, one scenario at a time (they share the host's plugins root,
 * which is wiped between scenarios).
 */
function remoteSuite(label: string, start: () => Promise<{ transport: HostileTransport; hostRoot: string; stop(): Promise<void> }>): void {
  describe(label, () => {
    let env: Awaited<ReturnType<typeof start>> | undefined;
    let queue: Promise<unknown> = Promise.resolve();
    const runAlone = (cases: HostileCase[]): Promise<ScenarioReport> => {
      const next = queue.then(async () => {
        try {
          return await runScenario(env!.transport, cases);
        } finally {
          rmSync(join(env!.hostRoot, 'configs'), { recursive: true, force: true });
        }
      });
      queue = next.catch(() => undefined);
      return next;
    };
    let shared: Promise<ScenarioReport> | undefined;
    beforeAll(async () => {
      env = await start();
    }, 120_000);
    afterAll(async () => env?.stop());

    it.for([...SHARED, ...ALONE].map((c) => [c.name, c] as const))('%s', { timeout: 300_000 }, async ([, c], { expect }) => {
      if (SHARED.some((s) => s.name === c.name)) {
        shared ??= runAlone(SHARED);
        const report = await shared;
        if (report.problems.length === 0) {
          expect(report.exercised[c.name], report.log.join('\n')).toEqual(expect.arrayContaining(mustExercise(c)));
          return;
        }
      }
      const alone = await runAlone([c]);
      expect(alone.problems, alone.log.join('\n')).toEqual([]);
      expect(alone.exercised[c.name]).toEqual(expect.arrayContaining(mustExercise(c)));
    });
  });
}

describe.concurrent('hostile host over the AWS transports', () => {
  remoteSuite('over SSM Run Command (the agent runs the script as root)', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'hostile-ssm-'));
    const world = await startAwsWorld([{ id: 'hostile-ssm' }]);
    const hostRoot = world.ssm.hostRoot;
    return {
      hostRoot,
      // The SSM wrapper's temp files live in <hostRoot>/tmp.
      transport: awsTransport(world, 'hostile-ssm', hostRoot, [world.ssm.tmpDir], scratch),
      stop: async () => {
        await world.stop();
        rmSync(scratch, { recursive: true, force: true });
      },
    };
  });

  if (sshdAvailable) {
    remoteSuite('over EC2 Instance Connect (a real sshd; sudo -n as a non-root user)', async () => {
      const scratch = mkdtempSync(join(tmpdir(), 'hostile-eic-'));
      let eic: EicHarness | undefined;
      try {
        eic = await startEicHarness();
        const harness = eic;
        const world = await startAwsWorld([{ id: 'hostile-eic', transport: 'eic' }], {
          eic: { resolver: harness.resolver, hostRoot: harness.hostRoot, register: () => ({ instanceId: harness.instanceId, privateIp: '127.0.0.1' }) },
        });
        return {
          hostRoot: harness.hostRoot,
          transport: awsTransport(world, 'hostile-eic', harness.hostRoot, [], scratch),
          stop: async () => {
            await world.stop();
            await harness.stop();
            rmSync(scratch, { recursive: true, force: true });
          },
        };
      } catch (err) {
        await eic?.stop();
        throw err;
      }
    });
  } else {
    describe.skip('over EC2 Instance Connect: needs root and /usr/sbin/sshd', () => {
      it('skipped', () => undefined);
    });
  }
});
