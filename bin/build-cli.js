#!/usr/bin/env node
// Compiles the runtime sources (bin/ and lambdas/, TypeScript) to JavaScript under build/, one
// .js file per .ts file, so `pluginctl` starts without compiling anything (README, "Layout").
// `npm ci` runs this (the `prepare` script), and so does the test setup (test/global-setup.ts),
// so the e2e tests that spawn bin/pluginctl.js never run a stale build.
//
//   node bin/build-cli.js [--if-stale] [--outdir DIR]
//
// DIR (default build/, git-ignored) must be a directory of the repository's root (build/,
// build.<anything>/): the compiled files name their sources by relative paths. The build is
// written beside it and swapped in whole. --if-stale: do nothing when DIR/fingerprint.txt
// matches the sources (the test setup uses it, so a stale build is rebuilt, never tested).
//
// Two rewrites make the compiled files behave like their sources:
// - relative imports name `.ts` files; each becomes the matching `.js` (and stays a separate file:
//   imports of npm packages and of other source files are not bundled in);
// - `import.meta.url` becomes the URL of the source file, so files read next to the sources
//   (statemachine/*.asl.json, lambdas/core/host/*.sh, docs/catalog/) are the repository's own,
//   never copies that could go stale.
//
// Two more steps make it start fast:
// - aws-local-stepfunctions is bundled into build/vendor/ with the three packages it imports at
//   start-up but the embedded runner never needs on a normal run (the Lambda client and Cognito
//   credentials, only used for a Task without a local handler, and asl-validator) replaced by
//   stand-ins that load the real package on first use;
// - each workflow definition the local runner builds is validated here, once, and its SHA-256
//   recorded in build/validated-definitions.json (lambdas/core/workflow/validated-definitions.ts).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const REPO = fileURLToPath(new URL('..', import.meta.url));
/** The directories whose .ts files pluginctl and the embedded workflows run. */
export const SOURCE_DIRS = ['bin', 'lambdas'];

export function sourceFiles() {
  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(path);
    }
  };
  for (const dir of SOURCE_DIRS) walk(join(REPO, dir));
  return files.sort();
}

const LOCAL_SFN = 'aws-local-stepfunctions';
export const VENDOR_FILE = join('vendor', `${LOCAL_SFN}.js`);
/** Imported by aws-local-stepfunctions at start-up, used only when it calls AWS or validates. */
const LAZY = {
  '@aws-sdk/client-lambda': ['LambdaClient', 'InvokeCommand'],
  '@aws-sdk/credential-providers': ['fromCognitoIdentityPool'],
  'asl-validator': null, // the default export, a function
};

/** A module exporting stand-ins that require() the real package (resolved from aws-local-stepfunctions) on first use. */
function lazyModule(pkg, names) {
  let text =
    `import { createRequire } from 'node:module';\n` +
    `const from = createRequire(import.meta.url).resolve(${JSON.stringify(LOCAL_SFN)});\n` +
    `let real;\nconst load = () => (real ??= createRequire(from)(${JSON.stringify(pkg)}));\n`;
  if (!names) return text + `export default function (...args) { const m = load(); return (typeof m === 'function' ? m : m.default)(...args); }\n`;
  for (const name of names) {
    text += /^[A-Z]/.test(name)
      ? `export class ${name} { constructor(...args) { return new (load().${name})(...args); } }\n`
      : `export function ${name}(...args) { return load().${name}(...args); }\n`;
  }
  return text;
}

/** The ESM build of aws-local-stepfunctions (its `import` condition). */
function vendorEntry() {
  return createRequire(join(REPO, 'package.json')).resolve(LOCAL_SFN).replace(/main\.node\.cjs$/, 'main.node.esm.js');
}

async function buildVendor(outdir) {
  await build({
    entryPoints: [vendorEntry()],
    outfile: join(outdir, VENDOR_FILE),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    logLevel: 'warning',
    plugins: [
      {
        name: 'lazy-packages',
        setup(b) {
          b.onResolve({ filter: new RegExp(`^(${Object.keys(LAZY).join('|')})$`) }, (args) => ({ path: args.path, namespace: 'lazy' }));
          b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => ({ contents: lazyModule(args.path, LAZY[args.path]), loader: 'js', resolveDir: outdir }));
        },
      },
    ],
  });
}

/** Validates each definition the local runner builds (asl-validator, in full) and records its SHA-256. */
async function recordValidatedDefinitions(outdir) {
  const url = (rel) => pathToFileURL(join(outdir, rel)).href;
  const { localDefinitionText } = await import(url('lambdas/core/workflow/local-runner.js'));
  const { WORKFLOWS, ROLLOUT_DEFINITION } = await import(url('lambdas/core/workflow/workflow-files.js'));
  const { definitionKey, VALIDATED_DEFINITIONS_FILE } = await import(url('lambdas/core/workflow/validated-definitions.js'));
  const { StateMachine } = await import(url(VENDOR_FILE));
  const keys = [];
  for (const workflow of [...WORKFLOWS, ROLLOUT_DEFINITION]) {
    const text = localDefinitionText(workflow);
    new StateMachine(JSON.parse(text)); // throws on an invalid definition: the build fails
    keys.push(definitionKey(text));
  }
  writeFileSync(join(outdir, VALIDATED_DEFINITIONS_FILE), JSON.stringify(keys, null, 2) + '\n');
}

export const FINGERPRINT_FILE = 'fingerprint.txt';

/** SHA-256 of everything the build reads: the sources, the definitions, this script, the vendored package. */
export function fingerprint() {
  const hash = createHash('sha256');
  const definitions = readdirSync(join(REPO, 'statemachine')).filter((f) => f.endsWith('.asl.json')).map((f) => join(REPO, 'statemachine', f));
  for (const file of [...sourceFiles(), ...definitions.sort(), fileURLToPath(import.meta.url), vendorEntry()]) {
    hash.update(`${relative(REPO, file)}\0`).update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

export function isFresh(outdir = join(REPO, 'build')) {
  try {
    return readFileSync(join(outdir, FINGERPRINT_FILE), 'utf8').trim() === fingerprint();
  } catch {
    return false;
  }
}

/** Builds every source file into `outdir` (replaced whole); returns the number of files compiled. */
export async function buildCli(finalDir = join(REPO, 'build')) {
  if (dirname(resolve(finalDir)) !== resolve(REPO) || !/^build(\.|$)/.test(relative(REPO, finalDir))) {
    throw new Error(`--outdir ${finalDir}: must be build/ or build.<name>/ in ${REPO} (compiled files find their sources by relative paths)`);
  }
  const print = fingerprint();
  const outdir = `${finalDir}.tmp-${process.pid}`;
  const entryPoints = sourceFiles();
  const sources = new Set(entryPoints);
  rmSync(outdir, { recursive: true, force: true });
  const outFileOf = (source) => join(outdir, relative(REPO, source)).replace(/\.ts$/, '.js');
  const rewrite = {
    name: 'pluginctl-sources',
    setup(b) {
      b.onResolve({ filter: new RegExp(`^${LOCAL_SFN}$`) }, (args) => {
        const vendored = relative(dirname(outFileOf(args.importer)), join(outdir, VENDOR_FILE)).split(sep).join('/');
        return { path: vendored.startsWith('.') ? vendored : `./${vendored}`, external: true };
      });
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (args.kind === 'entry-point') return undefined;
        const target = resolve(args.resolveDir, args.path);
        if (!sources.has(target)) {
          return { errors: [{ text: `${relative(REPO, args.importer)} imports ${args.path}, which is not a .ts file under ${SOURCE_DIRS.join('/ or ')}/: the build would not contain it` }] };
        }
        return { path: args.path.replace(/\.ts$/, '.js'), external: true };
      });
      b.onLoad({ filter: /\.ts$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        if (/import\.meta\.(dirname|filename)/.test(text)) {
          return { errors: [{ text: `${relative(REPO, args.path)}: use fileURLToPath(new URL(..., import.meta.url)) instead of import.meta.dirname/filename (the build rewrites import.meta.url only)` }] };
        }
        const toSource = relative(dirname(outFileOf(args.path)), args.path).split(sep).join('/');
        return { contents: text.replace(/\bimport\.meta\.url\b/g, `new URL(${JSON.stringify(toSource)}, import.meta.url).href`), loader: 'ts' };
      });
    },
  };
  await build({
    entryPoints,
    outdir,
    outbase: REPO,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node22',
    plugins: [rewrite],
    logLevel: 'warning',
  });
  await buildVendor(outdir);
  await recordValidatedDefinitions(outdir);
  writeFileSync(join(outdir, FINGERPRINT_FILE), `${print}\n`);
  // Swap in whole: a concurrent reader finds the old build or the new one, build/ missing only
  // between the two renames.
  const old = `${finalDir}.old-${process.pid}`;
  if (existsSync(finalDir)) renameSync(finalDir, old);
  renameSync(outdir, finalDir);
  rmSync(old, { recursive: true, force: true });
  return entryPoints.length;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { outdir: { type: 'string' }, 'if-stale': { type: 'boolean' } } });
  const outdir = values.outdir ? resolve(values.outdir) : undefined;
  if (!(values['if-stale'] && isFresh(outdir))) {
    try {
      const count = await buildCli(outdir);
      console.log(`pluginctl: compiled ${count} files into ${relative(REPO, outdir ?? join(REPO, 'build'))}/`);
    } catch (err) {
      console.error(`build-cli: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    }
  }
}
