/**
 * A notification that cannot be delivered does not change what the operation did. Every Notify
 * state retries, then its Catch leads to a `NotificationUndelivered…` Pass state (counted by the
 * NotificationsUndelivered metric filter and alarm on AWS) that goes on to the same end as before.
 *
 * The real failure here: the local event sink's file is a directory, so every append fails with
 * EISDIR, as a PutEvents the bus refuses would fail on AWS.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pluginctl } from '../helpers/cli.ts';
import { makeWorld, type World } from '../helpers/world.ts';

let world: World;
beforeEach(async () => {
  world = await makeWorld();
});
afterEach(async () => world?.cleanup());

const eventsFile = () => join(world.home, 'events.jsonl');

async function breakEventSink(): Promise<void> {
  await rm(eventsFile(), { force: true });
  await mkdir(eventsFile());
}

const stepNames = (steps: { name: string; status: string }[]) => steps.map((s) => `${s.name}:${s.status}`);

describe('undeliverable notifications', () => {
  it('a good install still succeeds, live and marked, with the failed Notify caught into NotificationUndeliveredInstalled', async () => {
    await breakEventSink();
    let puts = 0;
    const sink = world.deps.events;
    const put = sink.putEvents.bind(sink);
    sink.putEvents = (entries) => {
      puts++;
      return put(entries);
    };
    const r = await world.install(await world.source({ name: 'p', version: '1.0.0' }));
    expect(r.status, r.cause).toBe('SUCCEEDED');
    expect(JSON.parse(world.liveTree('p')!['.complete']!)).toMatchObject({ name: 'p', version: '1.0.0' });
    const names = stepNames(r.steps);
    expect(names).toContain('NotifyInstalled:failed');
    expect(names).toContain('NotificationUndeliveredInstalled:succeeded');
    expect(names.at(-1)).toBe('Installed:succeeded');
    // Retried before giving up: the first put and the Retry's 3 more, all against the real sink.
    expect(r.steps.find((s) => s.name === 'NotifyInstalled')!.error).toBe('Error');
    expect(puts).toBe(4);
  });

  it('a failed install, a rollback and an uninstall keep their own outcome and error', async () => {
    await world.install(await world.source({ name: 'p', version: '1.0.0' }));
    await world.install(await world.source({ name: 'p', version: '2.0.0' }));
    await breakEventSink();

    // A source that is not a plugin: refused in Prepare, nothing changed.
    const bad = join(world.home, 'sources', 'not-a-plugin');
    await mkdir(bad, { recursive: true });
    await writeFile(join(bad, 'README.md'), 'no plugin.yaml here\n');
    const refused = await world.install(bad);
    expect(refused.status).toBe('FAILED');
    expect(refused.error).toBe('InvalidManifest');
    expect(stepNames(refused.steps)).toContain('NotificationUndeliveredInstallFailed:succeeded');

    const rolledBack = await world.run('rollback', 'p');
    expect(rolledBack.status, rolledBack.cause).toBe('SUCCEEDED');
    expect(JSON.parse(world.liveTree('p')!['.complete']!)).toMatchObject({ version: '1.0.0' });
    expect(stepNames(rolledBack.steps)).toContain('NotificationUndelivered:succeeded');

    const uninstalled = await world.run('uninstall', 'p');
    expect(uninstalled.status, uninstalled.cause).toBe('SUCCEEDED');
    expect(world.liveTree('p')).toBeNull();

    const missing = await world.run('uninstall', 'p');
    expect(missing.status).toBe('FAILED');
    expect(missing.error).toBe('NotInstalled');
    expect(stepNames(missing.steps)).toContain('NotificationUndeliveredFailure:succeeded');
  });

  it('pluginctl reports the install it did: exit 0, status succeeded, the undelivered notification visible in the steps', async () => {
    await breakEventSink();
    const source = await world.source({ name: 'p', version: '1.0.0' });
    const r = await pluginctl(['install', source, '--workspace', world.workspace, '--json'], { PLUGINCTL_HOME: world.home });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.json).toMatchObject({ status: 'succeeded' });
    const steps = (r.json!.steps as { name: string; status: string }[]).map((s) => `${s.name}:${s.status}`);
    expect(steps).toContain('NotificationUndeliveredInstalled:succeeded');
    // The sink really is unusable: nothing was written anywhere.
    await expect(readFile(eventsFile(), 'utf8')).rejects.toThrow(/EISDIR/);
  });
});
