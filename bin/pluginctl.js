#!/usr/bin/env node
// pluginctl: the embedded installer. Runs the JavaScript that bin/build-cli.js compiled from
// the TypeScript sources into build/ (`npm ci` builds it; `npm run build` after editing a source).
let main;
try {
  ({ main } = await import('../build/bin/cli/main.js'));
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('/build/bin/cli/main.js')) throw err;
  process.stderr.write('pluginctl: the compiled CLI (build/) is missing\n  hint: run `npm run build` (or `npm ci`) in the repository first\n');
  process.exit(1);
}
process.exitCode = await main(process.argv);
