/**
 * Two installs of one plugin on one workspace at the same time, as two real pluginctl
 * processes: one waits for the other (or gives up with exit 4); the end state is one whole,
 * marked version and no lock or staging is left behind.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { pluginctlProcess } from '../helpers/cli.ts';
import { hostState } from '../helpers/host-state.ts';
import { judgeLive, readTree } from '../helpers/live-tree.ts';
import { versionFiles, writePluginDir } from '../helpers/plugin-versions.ts';

const NAME = 'contended';
const A = { name: NAME, version: '1.0.0', files: 200 };
const B = { name: NAME, version: '2.0.0', files: 150 };

let home: string;
afterEach(() => rm(home, { recursive: true, force: true }));

for (const [label, retryDelay] of [
  ['with the workflow\'s lock retries (the second waits)', undefined],
  ['without retry pauses (the second may give up: exit 4)', '0'],
] as const) {
  it(`two concurrent installs ${label}`, async () => {
    home = await mkdtemp(join(tmpdir(), 'concurrent-'));
    const sources = [await writePluginDir(join(home, 'src'), A), await writePluginDir(join(home, 'src'), B)];
    const env: Record<string, string> = { PLUGINCTL_HOME: home };
    if (retryDelay !== undefined) env.PLUGINCTL_RETRY_DELAY_MS = retryDelay;
    const results = await Promise.all(sources.map((s) => pluginctlProcess(['install', s, '--workspace', 'w', '--json'], env)));

    const codes = results.map((r) => r.code).sort();
    expect(codes[0]).toBe(0);
    expect([0, 4]).toContain(codes[1]);
    for (const r of results) {
      if (r.code === 4) expect(r.json).toMatchObject({ status: 'busy', error: { code: 'LockBusy' } });
    }
    const root = join(home, 'workspaces/w/root/configs/plugins');
    const verdict = judgeLive(readTree(join(root, NAME)), { '1.0.0': versionFiles(A), '2.0.0': versionFiles(B) });
    expect(verdict.state).toBe('whole');
    expect(verdict.markedVersion).toBe(verdict.version);
    // The winner is the install that finished last.
    const finishedLast = results.filter((r) => r.code === 0).map((r) => r.json!).sort((a, b) => String(a.stamp).localeCompare(String(b.stamp)));
    expect(finishedLast.map((r) => r.version)).toContain(verdict.version);
    expect(hostState(root, NAME)).toMatchObject({ staging: [], locked: false });
  }, 120_000);
}
