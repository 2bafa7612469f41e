/**
 * Before any test file: compile the CLI (bin/build-cli.js --if-stale) so the tests that spawn
 * bin/pluginctl.js run the current sources, never a build left over from before an edit. A no-op
 * when build/fingerprint.txt already matches the sources.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const script = fileURLToPath(new URL('../bin/build-cli.js', import.meta.url));
  execFileSync(process.execPath, [script, '--if-stale'], { stdio: ['ignore', 'inherit', 'inherit'] });
}
