/**
 * Steps are reported with their attempts: a step retried and then succeeding is `succeeded` with
 * attempts > 1 (text: `↻ AcquireLock (2 attempts)`), and a RollBack that failed is `failed`
 * (text: `✗ RollBack`), in the --json `steps` and in the text lines alike.
 */

import { describe, expect, it } from 'vitest';
import { pluginctl } from '../helpers/cli.ts';
import { faultShims } from '../helpers/fault-shims.ts';
import { freshHomes } from '../helpers/fresh-homes.ts';

const freshHome = freshHomes('step-attempts-');

type Step = { name: string; status: string; ms: number; attempts: number };

function stepsOf(json: Record<string, unknown> | undefined): Step[] {
  return (json?.steps ?? []) as Step[];
}

describe('step attempts', () => {
  it('--json: a step killed once and retried is succeeded with attempts 2; every step is exactly {name, status, ms, attempts}', async () => {
    const home = freshHome();
    const shims = faultShims({ op: 'lock', command: 'mv', mode: 'kill-once' });
    try {
      const r = await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0', ...shims.env });
      expect(r.code, r.stdout).toBe(0);
      const steps = stepsOf(r.json);
      for (const s of steps) expect(Object.keys(s)).toEqual(['name', 'status', 'ms', 'attempts']);
      expect(steps.find((s) => s.name === 'AcquireLock')).toMatchObject({ status: 'succeeded', attempts: 2 });
      expect(steps.filter((s) => s.status !== 'succeeded')).toEqual([]);
      expect(steps.filter((s) => s.name !== 'AcquireLock').every((s) => s.attempts === 1)).toBe(true);
    } finally {
      shims.cleanup();
    }
  }, 120_000);

  it('text: the retried step shows ↻ with its attempts, no step shows ✗', async () => {
    const home = freshHome();
    const shims = faultShims({ op: 'lock', command: 'mv', mode: 'kill-once' });
    try {
      const r = await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0', ...shims.env });
      expect(r.code, r.stdout).toBe(0);
      expect(r.stdout).toMatch(/↻ AcquireLock \(2 attempts\)\s+\d+ ms\n/);
      expect(r.stdout).not.toContain('✗');
      expect(r.stdout).toMatch(/✓ StageOnHost\s+\d+ ms\n/);
    } finally {
      shims.cleanup();
    }
  }, 120_000);

  it('a RollBack that fails is shown failed (✗), never ✓', async () => {
    const home = freshHome();
    expect((await pluginctl(['install', 'local://hello-skills@1.0.0', '--workspace', 'w'], { PLUGINCTL_HOME: home })).code).toBe(0);
    const shims = faultShims({ op: ['snapshot', 'rollback'], command: 'mv', mode: 'fail' });
    try {
      const text = await pluginctl(['install', 'local://hello-skills@1.1.0', '--workspace', 'w'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0', ...shims.env });
      expect(text.code, text.stdout).toBe(5);
      expect(text.stdout).toMatch(/✗ RollBack\s+\d+ ms {2}RollbackFailed\n/);
      expect(text.stdout).not.toMatch(/[✓↻] RollBack\b/);
    } finally {
      shims.cleanup();
    }
  }, 120_000);
});
