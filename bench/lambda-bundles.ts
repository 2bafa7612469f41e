/**
 * `npm run bench:bundles`: the size of every Lambda bundle and how long importing it takes (the
 * module-loading part of a cold start), built with the stack's own esbuild settings (STEP_BUNDLING)
 * and, in the same run, with the settings before issue 10 (source map loaded through
 * --enable-source-maps; the zod import, also changed since, cannot be undone here, so this
 * baseline is if anything kind to it) and with the AWS SDK clients left to the runtime.
 *
 * Import time: median of N fresh `node` processes that `await import()` the bundle, less the
 * median of `node -e 0` (process start), on every Node given with --node (default: this one; add
 * a Node 22 binary, Lambda's runtime, e.g. `--node "$(npx -y node@22 -p process.execPath)"`).
 * For the SDK-external variant, the runtime's SDK clients are linked next to the bundles from
 * node_modules (the Lambda runtime also loads them as npm packages, file by file).
 * Results: bench/results/bundles.json and stdout.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { PROJECT_ROOT, STEP_BUNDLING, STEP_SPECS } from '../infra/constructs/step-functions.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const runs = Number(option('--runs', '7'));
const nodes = args.flatMap((a, i) => (a === '--node' && args[i + 1] ? [args[i + 1]!] : []));
if (nodes.length === 0) nodes.push(process.execPath);

const HANDLERS = [...STEP_SPECS.map((s) => s.file), 'api', 'sweeper'];
const work = mkdtempSync(join(tmpdir(), 'bench-bundles-'));

type Variant = 'before' | 'sdkExternal' | 'now';
/**
 * before: issue 9's settings (source map, --enable-source-maps); sdkExternal: today's settings with
 * the AWS SDK clients left to the runtime (under 1 MiB); now: STEP_BUNDLING.
 */
const VARIANTS: readonly Variant[] = ['before', 'sdkExternal', 'now'];

async function bundle(variant: Variant, file: string): Promise<string> {
  const out = join(work, variant, file);
  await build({
    entryPoints: [join(PROJECT_ROOT, 'lambdas/handlers', `${file}.ts`)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: STEP_BUNDLING.target,
    minify: true,
    keepNames: variant === 'before' ? false : STEP_BUNDLING.keepNames,
    sourcemap: variant === 'before',
    mainFields: [...STEP_BUNDLING.mainFields],
    external: variant === 'sdkExternal' ? [...STEP_BUNDLING.externalModules, '@aws-sdk/client-*'] : [...STEP_BUNDLING.externalModules],
    banner: { js: STEP_BUNDLING.banner },
    outfile: join(out, 'index.mjs'),
    logLevel: 'silent',
  });
  return join(out, 'index.mjs');
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Wall time of `node <flags> -e <code>`, ms, median of `runs`. */
function time(node: string, code: string, flags: string[] = []): number {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    execFileSync(node, [...flags, '--input-type=module', '-e', code], { env: { ...process.env, AWS_REGION: 'us-east-1', NODE_NO_WARNINGS: '1', ARTIFACT_BUCKET: 'bench' }, stdio: 'ignore' });
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(samples);
}

try {
  // The runtime's SDK clients, for the "now" bundles.
  const provided = join(work, 'node_modules', '@aws-sdk');
  mkdirSync(provided, { recursive: true });
  for (const name of readdirSync(join(PROJECT_ROOT, 'node_modules', '@aws-sdk')).filter((n) => n.startsWith('client-'))) {
    symlinkSync(join(PROJECT_ROOT, 'node_modules', '@aws-sdk', name), join(provided, name));
  }
  const rows: Record<string, unknown>[] = [];
  for (const node of nodes) {
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    const start = time(node, '0');
    for (const file of HANDLERS) {
      const row: Record<string, unknown> = { node: version, handler: file, processStartMs: Math.round(start) };
      for (const variant of VARIANTS) {
        const path = await bundle(variant, file);
        const map = `${path}.map`;
        const flags = variant === 'before' ? ['--enable-source-maps'] : [];
        const ms = time(node, `await import(${JSON.stringify(path)})`, flags) - start;
        row[`${variant}Bytes`] = statSync(path).size;
        row[`${variant}MapBytes`] = variant === 'before' ? statSync(map).size : 0;
        row[`${variant}ImportMs`] = Math.round(ms);
      }
      row.sizeRatio = Number(((row.nowBytes as number) / (row.beforeBytes as number)).toFixed(2));
      row.importRatio = Number(((row.nowImportMs as number) / Math.max(1, row.beforeImportMs as number)).toFixed(2));
      rows.push(row);
      const kib = (v: Variant) => `${(Number(row[`${v}Bytes`]) / 1024).toFixed(0)} KiB`;
      const ms = (v: Variant) => `${String(row[`${v}ImportMs`])} ms`;
      console.log(`${version} ${file.padEnd(16)} before ${kib('before')} ${ms('before')} | SDK external ${kib('sdkExternal')} ${ms('sdkExternal')} | now ${kib('now')} ${ms('now')} (size ×${String(row.sizeRatio)}, import ×${String(row.importRatio)})`);
    }
  }
  mkdirSync(join(PROJECT_ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(PROJECT_ROOT, 'bench/results/bundles.json'), JSON.stringify({ date: new Date().toISOString(), runs, rows }, null, 2) + '\n');
} finally {
  rmSync(work, { recursive: true, force: true });
}
