/**
 * The real CDK CLI, offline: `cdk synth` runs cdk.json's app (tsx), bundles the 12 step Lambdas,
 * the 6 rollout step Lambdas, the api Lambda and the sweeper with esbuild and runs cdk-nag, without reaching AWS: no credentials, no instance metadata, no
 * version check, notices or telemetry, and `--no-lookups` (a context lookup would fail the synth).
 * Then every bundle is checked: index.mjs without a source map, the host scripts next to it, and
 * an ES module that loads on this Node and exports `handler`.
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_SCRIPTS_DIR, hostScripts } from '../../infra/constructs/step-functions.ts';
import { STACK_NAME } from '../../infra/installer-app.ts';
import { ROOT, TEST_ACCOUNT, TEST_REGION } from './infra-helpers.ts';

// Generous: a synth bundles 20 Lambdas with esbuild and takes minutes on a loaded 2-core CI machine
// (13 bundles passed 420 s at load 15, with chaos campaigns and the rest of the suite beside it; 19
// bundles ran past 900 s with each esbuild taking 15–46 s on a shared machine).
const SYNTH_TIMEOUT_MS = 1_800_000;
/** 12 workflow steps + 6 rollout steps + the api Lambda + the sweeper. */
const FUNCTIONS = 20;
/**
 * A regression guard on bundle size: 2.1–2.4 MiB today with the AWS SDK bundled, which imports
 * faster than the runtime's SDK (docs/benchmarks.md part 6); a bundle past this grew by accident.
 */
const MAX_BUNDLE_BYTES = 2.75 * 1024 * 1024;

interface LambdaResource {
  Type: string;
  Properties: { Code: { S3Key: string }; Environment: { Variables: Record<string, unknown> }; Description: string };
}

/** This process's environment without anything that could let the CLI find AWS credentials. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('AWS_') || key.startsWith('CDK_')) continue;
    env[key] = value;
  }
  const nowhere = join(tmpdir(), 'no-aws-config');
  return {
    ...env,
    AWS_CONFIG_FILE: nowhere,
    AWS_SHARED_CREDENTIALS_FILE: nowhere,
    AWS_EC2_METADATA_DISABLED: 'true',
    CDK_DISABLE_VERSION_CHECK: '1',
    CDK_DISABLE_CLI_TELEMETRY: '1',
    CDK_DEFAULT_ACCOUNT: TEST_ACCOUNT,
    CDK_DEFAULT_REGION: TEST_REGION,
    CI: 'true',
  };
}

let outdir: string;
let status: number | null;
let output: string;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'cdk-synth-'));
  const run = spawnSync('npx', ['cdk', 'synth', '--quiet', '--no-notices', '--no-lookups', '-o', outdir], {
    cwd: ROOT,
    env: offlineEnv(),
    encoding: 'utf8',
    timeout: SYNTH_TIMEOUT_MS,
    maxBuffer: 64 * 1024 * 1024,
  });
  status = run.status;
  output = `${run.error ? `${String(run.error)}\n` : ''}${run.stdout}${run.stderr}`;
}, SYNTH_TIMEOUT_MS + 10_000);

afterAll(() => {
  // 19 bundles and their assets.
  rmSync(outdir, { recursive: true, force: true });
});

describe('cdk synth (CLI, offline)', () => {
  it('exits 0 and writes the stack template, no lookups pending', () => {
    expect(status, output.slice(-4000)).toBe(0);
    const templatePath = join(outdir, `${STACK_NAME}.template.json`);
    expect(existsSync(templatePath)).toBe(true);
    const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as { missing?: unknown[]; artifacts: Record<string, { environment?: string }> };
    expect(manifest.missing ?? []).toEqual([]);
    expect(manifest.artifacts[STACK_NAME]?.environment).toBe(`aws://${TEST_ACCOUNT}/${TEST_REGION}`);
    expect(output).not.toMatch(/AwsSolutions-/);
  });

  it('bundles each step Lambda, the api Lambda and the sweeper into one index.mjs (no source map) with the host scripts beside it', () => {
    const template = JSON.parse(readFileSync(join(outdir, `${STACK_NAME}.template.json`), 'utf8')) as { Resources: Record<string, LambdaResource> };
    const functions = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
    expect(functions).toHaveLength(FUNCTIONS);
    // The api Lambda lists plugins on hosts with the same host-step script as the steps.
    expect(functions.filter(([, fn]) => fn.Properties.Description.includes('lambdas/handlers/api.ts'))).toHaveLength(1);
    // The sweeper's one Run Command carries the same script.
    expect(functions.filter(([, fn]) => fn.Properties.Description.includes('lambdas/handlers/sweeper.ts'))).toHaveLength(1);
    const scripts = hostScripts();
    expect(scripts).toContain('plugin-host.sh');
    const dirs = new Set<string>();
    const probes: { dir: string; env: Record<string, string> }[] = [];
    for (const [id, fn] of functions) {
      const dir = join(outdir, `asset.${fn.Properties.Code.S3Key.replace(/\.zip$/, '')}`);
      dirs.add(dir);
      expect(existsSync(join(dir, 'index.mjs')), id).toBe(true);
      // No source map to load on the cold path, and no accidental growth.
      expect(statSync(join(dir, 'index.mjs')).size, `${id}: index.mjs`).toBeLessThan(MAX_BUNDLE_BYTES);
      expect(existsSync(join(dir, 'index.mjs.map')), id).toBe(false);
      expect(fn.Properties.Environment.Variables.NODE_OPTIONS, id).toBeUndefined();
      for (const script of scripts) {
        expect(readFileSync(join(dir, script), 'utf8'), `${id}: ${script}`).toBe(readFileSync(join(ROOT, HOST_SCRIPTS_DIR, script), 'utf8'));
      }
      // host-script.ts resolves the script relative to the bundle, where the hook put it.
      expect(readFileSync(join(dir, 'index.mjs'), 'utf8')).toContain('new URL("./plugin-host.sh",import.meta.url)');
      const env = Object.fromEntries(
        Object.entries(fn.Properties.Environment.Variables).map(([k, v]) => [k, typeof v === 'string' ? v : 'artifact-bucket-for-tests']),
      );
      probes.push({ dir, env });
    }
    // One bundle per function, not one shared asset.
    expect(dirs.size).toBe(FUNCTIONS);

    // Each bundle loads as an ES module (banner, externals, ESM output) and exports the handler.
    const script = `
      const probes = JSON.parse(process.argv[1]);
      const out = [];
      for (const { dir, env } of probes) {
        Object.assign(process.env, env);
        const m = await import(dir + '/index.mjs');
        out.push(typeof m.handler);
      }
      process.stdout.write(JSON.stringify(out));
    `;
    const loaded = JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(probes)], {
        env: { ...offlineEnv(), AWS_REGION: TEST_REGION },
        encoding: 'utf8',
        timeout: 180_000,
      }),
    ) as string[];
    expect(loaded).toEqual(Array(FUNCTIONS).fill('function'));
  }, 200_000);
});

describe('cdk synth refuses a deployment that cannot reach its hosts', () => {
  it('defaultTransport=eic without an EIC Endpoint or VPC placement fails before building anything, naming the context values to set', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cdk-synth-refused-'));
    try {
      const run = spawnSync('npx', ['cdk', 'synth', '--quiet', '--no-notices', '--no-lookups', '-c', 'defaultTransport=eic', '-o', dir], {
        cwd: ROOT,
        env: offlineEnv(),
        encoding: 'utf8',
        timeout: SYNTH_TIMEOUT_MS,
      });
      const text = `${run.stdout}${run.stderr}`;
      expect(run.status, text.slice(-4000)).not.toBe(0);
      expect(text).toMatch(/defaultTransport=eic needs a network path/);
      expect(text).toMatch(/eicEndpointId and eicEndpointDns/);
      expect(text).toMatch(/vpcId, subnetIds and securityGroupId/);
      // One line naming the value and the fix, not a stack trace.
      expect(text).not.toMatch(/\n\s+at /);
      expect(existsSync(join(dir, `${STACK_NAME}.template.json`))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, SYNTH_TIMEOUT_MS + 10_000);
});
