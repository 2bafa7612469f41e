/**
 * A reader polling the live directory (from another process) during 100 alternating installs of
 * two versions never sees a directory whose .complete names one version while its files are the
 * other's, or a mix of both, and, once the plugin is installed, never finds it absent: every
 * upgrade replaces live with one renameat2(RENAME_EXCHANGE).
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { expectedTree, makeWorld, type World } from '../helpers/world.ts';
import { propertyRuns, propertyTimeout } from '../helpers/property-runs.ts';

const NAME = 'alternating';
const A = { name: NAME, version: '1.0.0', files: 40 };
const B = { name: NAME, version: '2.0.0', files: 40 };
/** Each install is a whole workflow (~2 s at load 8-14): PROPERTY_RUNS_SCALE scales the count. */
const INSTALLS = propertyRuns(100);

let world: World;
afterEach(async () => world?.cleanup());

it(`never shows a mixed, mismarked or absent plugin across ${INSTALLS} alternating upgrades`, { timeout: propertyTimeout(INSTALLS, 6_000) }, async () => {
  world = await makeWorld();
  const sources = [await world.source(A), await world.source(B)];
  const versionsFile = join(world.home, 'versions.json');
  await writeFile(versionsFile, JSON.stringify({ '1.0.0': expectedTree(A), '2.0.0': expectedTree(B) }));
  // The first install is a plain rename (nothing to exchange with); the reader starts after it.
  expect((await world.install(sources[0]!)).status).toBe('SUCCEEDED');

  const poller = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../helpers/live-poller.ts'), world.live(NAME), versionsFile], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  poller.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise((resolve) => poller.on('exit', resolve));

  let succeeded = 0;
  for (let i = 1; i <= INSTALLS; i++) {
    const outcome = await world.install(sources[i % 2]!);
    if (outcome.status === 'SUCCEEDED') succeeded++;
  }
  poller.stdin.write('stop\n');
  await exited;
  const { counts, problems } = JSON.parse(out) as { counts: Record<string, number>; problems: string[] };

  expect(succeeded).toBe(INSTALLS);
  expect(problems).toEqual([]);
  expect(counts.mixed).toBe(0);
  expect(counts.absent).toBe(0);
  expect(counts.unreadable).toBe(0);
  // The poll really raced the installs: it saw both versions and plenty of reads.
  expect(counts.whole).toBeGreaterThan(100);
  expect(counts.reads).toBeGreaterThan(INSTALLS);
  console.log(`live reader: ${JSON.stringify(counts)}`);
});
