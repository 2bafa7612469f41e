/**
 * The host-step script after bundling. lambdas/core/host/host-script.ts finds plugin-host.sh with
 * `new URL('./plugin-host.sh', import.meta.url)`; bundled, `import.meta.url` is the bundle's own
 * URL (index.mjs), so the script must sit next to it. This bundles host-script.ts with the step
 * Lambdas' esbuild settings, runs the construct's afterBundling commands, and reads the script
 * through the bundle in a fresh Node process.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it, onTestFinished } from 'vitest';
import { copyHostScriptsCommands, hostScripts, PROJECT_ROOT, STEP_BUNDLING } from '../../infra/constructs/step-functions.ts';

describe('host scripts in the step bundles', () => {
  it('ships every lambdas/core/host/*.sh, plugin-host.sh included', () => {
    expect(hostScripts()).toContain('plugin-host.sh');
    for (const script of hostScripts()) expect(script).toMatch(/^[\w.-]+\.sh$/);
  });

  it('the bundled host-script.ts reads plugin-host.sh from next to index.mjs', async () => {
    const work = mkdtempSync(join(tmpdir(), 'infra-bundle-'));
    onTestFinished(() => rmSync(work, { recursive: true, force: true }));
    const out = join(work, 'asset');
    const entry = join(work, 'entry.ts');
    writeFileSync(entry, `export { hostScriptText, HOST_SCRIPT_PATH } from ${JSON.stringify(join(PROJECT_ROOT, 'lambdas/core/host/host-script.ts'))};\n`);
    await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: STEP_BUNDLING.format,
      target: STEP_BUNDLING.target,
      minify: STEP_BUNDLING.minify,
      sourcemap: STEP_BUNDLING.sourceMap,
      keepNames: STEP_BUNDLING.keepNames,
      mainFields: [...STEP_BUNDLING.mainFields],
      external: [...STEP_BUNDLING.externalModules],
      banner: { js: STEP_BUNDLING.banner },
      outfile: join(out, 'index.mjs'),
      logLevel: 'silent',
    });
    for (const command of copyHostScriptsCommands(PROJECT_ROOT.replace(/\/$/, ''), out)) execFileSync('bash', ['-c', command]);

    const probe = `const m = await import(${JSON.stringify(join(out, 'index.mjs'))}); process.stdout.write(JSON.stringify({ path: m.HOST_SCRIPT_PATH, text: m.hostScriptText() }));`;
    const result = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: work, encoding: 'utf8' })) as { path: string; text: string };
    expect(result.path).toBe(join(out, 'plugin-host.sh'));
    expect(result.text).toBe(readFileSync(join(PROJECT_ROOT, 'lambdas/core/host/plugin-host.sh'), 'utf8'));
  });
});
