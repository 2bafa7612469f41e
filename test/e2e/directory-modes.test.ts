/**
 * A directory source keeps its files' permission bits all the way to live (a 0600 secret is not
 * handed to other users as 0644); setuid/setgid/sticky never get there; group/other write is
 * cleared on the host (docs/plugin-format.md, "The tarball").
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pluginctl } from '../helpers/cli.ts';

let base: string;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'directory-modes-'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

it('pluginctl install of a directory: 0600 stays 0600, 0755 stays 0755, a 0700 directory stays 0700, setuid is cleared', async () => {
  const home = join(base, 'home');
  const src = join(base, 'src', 'modes');
  mkdirSync(join(src, 'private'), { recursive: true });
  writeFileSync(join(src, 'plugin.yaml'), 'name: modes\nversion: 1.0.0\n');
  chmodSync(join(src, 'plugin.yaml'), 0o644);
  writeFileSync(join(src, 'secret.env'), 'API_KEY=do-not-share\n');
  chmodSync(join(src, 'secret.env'), 0o600);
  writeFileSync(join(src, 'run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(src, 'run.sh'), 0o755);
  writeFileSync(join(src, 'suid'), '#!/bin/sh\n');
  chmodSync(join(src, 'suid'), 0o4755);
  chmodSync(join(src, 'private'), 0o700);
  writeFileSync(join(src, 'private', 'key'), 'key\n');
  chmodSync(join(src, 'private', 'key'), 0o640);

  const r = await pluginctl(['install', src, '--workspace', 'w', '--json'], { PLUGINCTL_HOME: home, PLUGINCTL_RETRY_DELAY_MS: '0' });
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const live = join(home, 'workspaces/w/root/configs/plugins/modes');
  const mode = (rel: string) => (statSync(join(live, rel)).mode & 0o7777).toString(8);
  expect({
    'plugin.yaml': mode('plugin.yaml'),
    'secret.env': mode('secret.env'),
    'run.sh': mode('run.sh'),
    suid: mode('suid'),
    private: mode('private'),
    'private/key': mode('private/key'),
  }).toEqual({ 'plugin.yaml': '644', 'secret.env': '600', 'run.sh': '755', suid: '755', private: '700', 'private/key': '640' });
}, 120_000);
