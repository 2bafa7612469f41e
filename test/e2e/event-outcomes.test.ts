/**
 * Every event matches its JSON schema (docs/events/*.schema.json, checked with ajv against what the
 * real workflows emitted), and every failure event says in one typed field what became of the
 * workspace (docs/events.md):
 * `nothing-changed` (failed before live was touched), `rolled-back` (live had changed and was put
 * back; a failed health check is one, its error HealthCheckFailed), `rollback-failed` (left as found for an operator), `marker-failed` (the new version is
 * live but unmarked). Each case is produced for real: a refused source, and host commands made to
 * fail by fault shims on the host script's PATH.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterEach, describe, expect, it } from 'vitest';
import { PLUGIN_EVENT_TYPES } from '../../infra/constructs/event-bus.ts';
import { ROLLOUT_EVENT_TYPES } from '../../lambdas/core/events/event-sink.ts';
import { definitionText, ROLLOUT_DEFINITION, WORKFLOWS } from '../../lambdas/core/workflow/workflow-files.ts';
import { faultShims, type Fault } from '../helpers/fault-shims.ts';
import { makeWorld, type World } from '../helpers/world.ts';

const SCHEMA_DIR = new URL('../../docs/events/', import.meta.url);
type Schema = { title: string; oneOf?: Schema[]; properties?: Record<string, { const?: unknown }> };
const schemas = new Map<string, Schema>(
  readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.schema.json')).map((f) => {
    const schema = JSON.parse(readFileSync(new URL(f, SCHEMA_DIR), 'utf8')) as Schema;
    return [schema.title.replace(/: detail$/, ''), schema];
  }),
);
const ajv = new Ajv({ strict: true, allErrors: true });
const validators = new Map([...schemas].map(([type, schema]) => [type, ajv.compile(schema)]));

let world: World | undefined;
afterEach(async () => {
  // Whatever a test made the workflows emit matches the schema of its type.
  if (world) {
    for (const event of events(world)) {
      const validate = validators.get(event.detailType);
      expect(validate, event.detailType).toBeDefined();
      expect(validate!(event.detail), `${event.detailType}: ${ajv.errorsText(validate!.errors)}\n${JSON.stringify(event.detail)}`).toBe(true);
    }
  }
  await world?.cleanup();
  world = undefined;
});

function events(w: World): PluginEvent[] {
  let text = '';
  try {
    text = readFileSync(join(w.home, 'events.jsonl'), 'utf8');
  } catch {
    return [];
  }
  return text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as PluginEvent);
}

type PluginEvent = { detailType: string; detail: Record<string, unknown> };

function lastEvent(w: World): PluginEvent {
  return events(w).at(-1)!;
}

async function installWithFault(w: World, version: string, fault?: Fault) {
  const source = await w.source({ name: 'p', version });
  if (!fault) return w.install(source);
  const shims = faultShims(fault);
  try {
    return await w.withHostEnv(shims.env).install(source);
  } finally {
    shims.cleanup();
  }
}

describe('the outcome of a failed install, in its event', () => {
  it('nothing-changed: refused before any host step', async () => {
    world = await makeWorld();
    const r = await world.install(join(world.home, 'no-such-source'));
    expect(r.status).toBe('FAILED');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Install Failed', detail: { outcome: 'nothing-changed', changed: false } });
  });

  it('rolled-back: the swap happened, then a step failed and the previous version came back', async () => {
    world = await makeWorld();
    await installWithFault(world, '1.0.0');
    const r = await installWithFault(world, '2.0.0', { op: 'snapshot', command: 'mv', mode: 'fail' });
    expect(r.status).toBe('FAILED');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Install Failed', detail: { outcome: 'rolled-back', rolledBack: true } });
  });

  it('rolled-back with error HealthCheckFailed: the new version failed its health check and the previous one came back', async () => {
    world = await makeWorld();
    await installWithFault(world, '1.0.0');
    const source = await world.source({ name: 'p', version: '2.0.0', healthcheck: { command: 'echo "no answer on :8080" >&2; exit 1', timeoutSeconds: 5 } });
    const r = await world.install(source);
    expect(r.error).toBe('HealthCheckFailed');
    const event = lastEvent(world);
    expect(event).toMatchObject({
      detailType: 'Plugin Install Failed',
      detail: { outcome: 'rolled-back', rolledBack: true, changed: true, error: { Error: 'HealthCheckFailed' }, rollback: { live: 'restored' } },
    });
    // The cause carries the check's last lines, as pluginctl and the API show them.
    const cause = JSON.parse((event.detail.error as { Cause: string }).Cause) as { code: string; message: string; hint: string };
    expect(cause).toMatchObject({ code: 'HealthCheckFailed', message: expect.stringContaining('no answer on :8080') });
    expect(cause.hint).toContain('.failed/p.');
  });

  it('rollback-failed: the rollback itself could not finish', async () => {
    world = await makeWorld();
    await installWithFault(world, '1.0.0');
    const r = await installWithFault(world, '2.0.0', { op: ['snapshot', 'rollback'], command: 'mv', mode: 'fail' });
    expect(r.error).toBe('RollbackFailed');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Install Failed', detail: { outcome: 'rollback-failed' } });
  });

  it('marker-failed: the new version is live, its marker could not be written', async () => {
    world = await makeWorld();
    const r = await installWithFault(world, '1.0.0', { op: 'mark', command: 'mv', mode: 'fail' });
    expect(r.error).toBe('MarkerWriteFailed');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Install Failed', detail: { outcome: 'marker-failed', version: '1.0.0' } });
  });
});

describe('the outcome of a failed rollback or uninstall, in its event', () => {
  it('nothing-changed: nothing to restore', async () => {
    world = await makeWorld();
    await installWithFault(world, '1.0.0');
    const r = await world.run('rollback', 'p');
    expect(r.error).toBe('NothingToRestore');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Operation Failed', detail: { outcome: 'nothing-changed', changed: false } });
  });
});

describe('the events that report success', () => {
  it('Plugin Installed, Plugin Rolled Back, Plugin Uninstalled', async () => {
    world = await makeWorld();
    await installWithFault(world, '1.0.0');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Installed', detail: { plugin: 'p', version: '1.0.0' } });
    await installWithFault(world, '2.0.0');
    expect((await world.run('rollback', 'p')).status).toBe('SUCCEEDED');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Rolled Back', detail: { plugin: 'p' } });
    expect((await world.run('uninstall', 'p')).status).toBe('SUCCEEDED');
    expect(lastEvent(world)).toMatchObject({ detailType: 'Plugin Uninstalled', detail: { plugin: 'p' } });
  });
});

describe('the schemas and the workflows agree', () => {
  type Notify = { Parameters: { Entries: { DetailType: string; Detail: Record<string, unknown> }[] } };
  const notifies = [...WORKFLOWS, ROLLOUT_DEFINITION as typeof ROLLOUT_DEFINITION].flatMap((w) =>
    Object.entries((JSON.parse(definitionText(w)) as { States: Record<string, Notify & { Resource?: string }> }).States)
      .filter(([, st]) => st.Resource === 'arn:aws:states:::events:putEvents')
      .map(([name, st]) => [`${w}.${name}`, st.Parameters.Entries[0]!] as const),
  );

  it('one schema per event type, nothing else', () => {
    // The rollout's events are not on the stack's bus rule yet: the rollout is not deployed (docs/workflows.md).
    expect([...schemas.keys()].sort()).toEqual([...PLUGIN_EVENT_TYPES, ...ROLLOUT_EVENT_TYPES].sort());
  });

  it('each Notify state\'s Detail has exactly the fields of one variant of its type\'s schema, with its outcome', () => {
    for (const [where, entry] of notifies) {
      const schema = schemas.get(entry.DetailType)!;
      const fields = Object.keys(entry.Detail).map((k) => k.replace(/\.\$$/, '')).sort();
      const variants = schema.oneOf ?? [schema];
      const match = variants.filter((v) => JSON.stringify(Object.keys(v.properties ?? {}).sort()) === JSON.stringify(fields));
      expect(match, `${where}: ${fields.join(', ')}`).toHaveLength(1);
      const outcome = match[0]!.properties!.outcome?.const;
      expect(entry.Detail.outcome, where).toBe(outcome);
    }
    // Every failure outcome a schema documents is emitted somewhere.
    const emitted = new Set(notifies.map(([, e]) => `${e.DetailType}/${String(e.Detail.outcome)}`));
    for (const [type, schema] of schemas) {
      for (const v of schema.oneOf ?? []) expect(emitted.has(`${type}/${String(v.properties!.outcome!.const)}`), `${type}/${String(v.properties!.outcome!.const)}`).toBe(true);
    }
  });
});
