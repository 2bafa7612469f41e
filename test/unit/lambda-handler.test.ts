/**
 * The step Lambda wrapper: a thrown error leaves as `name = code`, message = the JSON error, and
 * every invocation publishes its outcome as an EMF metric (Powertools) on stdout.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { handler as acquireLock } from '../../lambdas/handlers/acquire-lock.ts';

let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'lambda-handler-'));
  process.env.PLUGINCTL_HOME = home;
});
afterAll(async () => {
  delete process.env.PLUGINCTL_HOME;
  await rm(home, { recursive: true, force: true });
});

function emfDocuments(lines: string[]): Record<string, unknown>[] {
  return lines.flatMap((l) => {
    try {
      const doc = JSON.parse(l) as Record<string, unknown>;
      return doc._aws ? [doc] : [];
    } catch {
      return [];
    }
  });
}

it('shapes a refused input as Error InvalidInput with the JSON message, and publishes StepFailed and StepErrors by code', async () => {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  });
  let thrown: Error | undefined;
  try {
    await acquireLock({ workspace: '../x', plugin: 'p', stamp: '20261125T090000Z-0000', execution: 'e' });
  } catch (err) {
    thrown = err as Error;
  } finally {
    spy.mockRestore();
  }
  expect(thrown?.name).toBe('InvalidInput');
  expect(JSON.parse(thrown!.message)).toMatchObject({ code: 'InvalidInput', hint: expect.any(String) });
  const docs = emfDocuments(lines);
  expect(docs.find((d) => 'StepFailed' in d)).toMatchObject({ step: 'AcquireLock', StepFailed: 1 });
  expect(docs.find((d) => 'StepErrors' in d)).toMatchObject({ step: 'AcquireLock', code: 'InvalidInput', StepErrors: 1 });
});
