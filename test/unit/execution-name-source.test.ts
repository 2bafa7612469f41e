/**
 * Execution names are `<workspace>-<plugin>-<stamp>` (docs/workflows.md): the plugin's manifest
 * name whenever the source can be read before the workflow starts (local://, a directory, a
 * local .tar.gz whatever its file name); for s3://, https:// and github:// sources, the last
 * path segment less `.tar.gz`/`.tgz` and a trailing version.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pluginNameForExecution } from '../../lambdas/core/sources/name-hint.ts';
import { packTarGz } from '../fixtures/hostile-tarballs.ts';
import { pluginctl } from '../helpers/cli.ts';

let base: string;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'execution-name-'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('pluginNameForExecution', () => {
  it('a local .tar.gz: the manifest name, whatever the file is called, at the top or under one directory', async () => {
    const top = join(base, 'release-key.tar.gz');
    writeFileSync(top, await packTarGz([{ name: 'README.md', body: 'x\n' }, { name: 'plugin.yaml', body: 'name: real-name\nversion: 1.0.0\n' }]));
    expect(await pluginNameForExecution(top)).toBe('real-name');
    const nested = join(base, 'key.tgz');
    writeFileSync(nested, await packTarGz([{ name: 'pkg/', type: 'directory' }, { name: 'pkg/plugin.yaml', body: 'name: nested-name\nversion: 1.0.0\n' }]));
    expect(await pluginNameForExecution(nested)).toBe('nested-name');
    expect(await pluginNameForExecution(`file://${nested}`)).toBe('nested-name');
  });

  it('falls back to the file name when the file is not a readable plugin tarball', async () => {
    const junk = join(base, 'junk-2.0.tar.gz');
    writeFileSync(junk, 'not a tarball');
    expect(await pluginNameForExecution(junk)).toBe('junk');
    const noManifest = join(base, 'empty.tar.gz');
    writeFileSync(noManifest, await packTarGz([{ name: 'README.md', body: 'x\n' }]));
    expect(await pluginNameForExecution(noManifest)).toBe('empty');
    expect(await pluginNameForExecution(join(base, 'missing.tar.gz'))).toBe('missing');
    // Bounded: past 16 MiB of unpacked data without a manifest it stops reading.
    const late = join(base, 'late.tar.gz');
    writeFileSync(late, await packTarGz([{ name: 'big.bin', body: Buffer.alloc(17 * 1024 * 1024) }, { name: 'plugin.yaml', body: 'name: too-late\nversion: 1.0.0\n' }]));
    expect(await pluginNameForExecution(late)).toBe('late');
  });

  it('directories and local:// read the manifest; remote sources use the last path segment', async () => {
    const dir = join(base, 'some-dir');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'plugin.yaml'), 'name: from-dir\nversion: 1.0.0\n');
    expect(await pluginNameForExecution(dir)).toBe('from-dir');
    expect(await pluginNameForExecution('local://hello-skills@1.0.0')).toBe('hello-skills');
    expect(await pluginNameForExecution('s3://bucket/releases/key')).toBe('key');
    expect(await pluginNameForExecution('https://example.com/dl/my-plugin-1.2.3.tar.gz')).toBe('my-plugin');
  });
});

it('pluginctl install of a .tar.gz not named after its plugin: the execution is <workspace>-<plugin>-<stamp>', async () => {
  const file = join(base, 'key.tar.gz');
  writeFileSync(file, await packTarGz([{ name: 'plugin.yaml', body: 'name: named-right\nversion: 1.0.0\n' }]));
  const r = await pluginctl(['install', file, '--workspace', 'w1', '--json'], { PLUGINCTL_HOME: join(base, 'home'), PLUGINCTL_RETRY_DELAY_MS: '0' });
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(r.json).toMatchObject({ plugin: 'named-right' });
  expect(r.json!.execution).toBe(`w1-named-right-${String(r.json!.stamp)}`);
}, 120_000);
