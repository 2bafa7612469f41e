/**
 * bin/pluginctl.js runs the JavaScript that bin/build-cli.js compiles into build/ (README,
 * "Layout"): --version and --help work from it, --help loads no TypeScript and none of the
 * packages only the commands need, an install loads neither asl-validator nor the AWS SDK, and
 * build/ is exactly what the build makes of the current sources.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { PLUGINCTL, pluginctlProcess } from '../helpers/cli.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BUILD_SCRIPT = join(REPO, 'bin', 'build-cli.js');
const home = mkdtempSync(join(tmpdir(), 'compiled-cli-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

/** Every module URL the process resolves, reported on stderr by a module.registerHooks hook. */
const TRACE_HOOK = `data:text/javascript,${encodeURIComponent(
  "import { registerHooks } from 'node:module'; registerHooks({ resolve(s, c, next) { const r = next(s, c); process.stderr.write('RESOLVED ' + r.url + '\\n'); return r; } });",
)}`;

function tracedRun(args: string[]): Promise<{ code: number | null; stdout: string; loaded: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TRACE_HOOK, PLUGINCTL, ...args], { env: { ...process.env, PLUGINCTL_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, loaded: [...stderr.matchAll(/^RESOLVED (.+)$/gm)].map((m) => m[1]!) }));
  });
}

const HEAVY = ['aws-local-stepfunctions', 'asl-validator', '@aws-sdk', 'ssh2', 'tar-stream', 'yaml', 'zod', 'tsx'];
const heavyIn = (loaded: string[], names: string[]) => loaded.filter((url) => names.some((n) => url.includes(`/node_modules/${n}/`) || url.includes(`/vendor/${n}`)));

describe('the compiled pluginctl', () => {
  it('--version prints the package version and exits 0', async () => {
    const r = await pluginctlProcess(['--version'], { PLUGINCTL_HOME: home });
    expect(r.code, r.stderr).toBe(0);
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('--help lists every command from build/, loading no .ts file and none of the packages only the commands need', async () => {
    const r = await tracedRun(['--help']);
    expect(r.code).toBe(0);
    for (const command of ['install', 'rollback', 'uninstall', 'rollout', 'publish', 'list', 'sweep', 'serve']) expect(r.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    const own = r.loaded.filter((url) => url.startsWith(pathToFileURL(REPO).href) && !url.includes('/node_modules/'));
    expect(own.filter((url) => !url.includes('/build/') && !url.endsWith('/bin/pluginctl.js'))).toEqual([]);
    expect(own.filter((url) => url.endsWith('.ts'))).toEqual([]);
    expect(heavyIn(r.loaded, HEAVY)).toEqual([]);
  });

  it('install runs the workflow without loading asl-validator or the AWS SDK (the build validated the definitions)', async () => {
    const r = await tracedRun(['install', 'local://hello-skills@1.0.0', '--workspace', 'compiled', '--json']);
    expect(r.code, r.stdout).toBe(0);
    expect((JSON.parse(r.stdout) as { status: string }).status).toBe('succeeded');
    expect(heavyIn(r.loaded, ['asl-validator', '@aws-sdk', 'tsx'])).toEqual([]);
    expect(r.loaded.some((url) => url.endsWith('/build/vendor/aws-local-stepfunctions.js'))).toBe(true);
  });
});

describe('build/ is in sync with the sources', () => {
  const files = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .filter((f) => statSync(join(dir, f)).isFile())
      .sort();

  it('build/fingerprint.txt matches the sources (the test setup rebuilt a stale build)', async () => {
    const { fingerprint } = (await import(pathToFileURL(BUILD_SCRIPT).href)) as { fingerprint: () => string };
    expect(readFileSync(join(REPO, 'build', 'fingerprint.txt'), 'utf8').trim()).toBe(fingerprint());
  });

  it('a fresh build of the sources is byte for byte build/, one .js file per source .ts file', async () => {
    const check = join(REPO, `build.check-${process.pid}`);
    try {
      const { buildCli, sourceFiles } = (await import(pathToFileURL(BUILD_SCRIPT).href)) as { buildCli: (dir: string) => Promise<number>; sourceFiles: () => string[] };
      await buildCli(check);
      const built = files(check);
      expect(files(join(REPO, 'build'))).toEqual(built);
      for (const f of built) expect(readFileSync(join(REPO, 'build', f)).equals(readFileSync(join(check, f))), f).toBe(true);
      for (const source of sourceFiles()) expect(built).toContain(relative(REPO, source).replace(/\.ts$/, '.js'));
    } finally {
      rmSync(check, { recursive: true, force: true });
    }
  }, 120_000);
});
