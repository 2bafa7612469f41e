/**
 * CDK app entry (`cdk.json`: `npx tsx infra/app.ts`). Context values: see infra/settings.ts and
 * docs/deploy.md. The CLI sets CDK_OUTDIR, so the app synthesizes itself on exit.
 *
 * A context value that is refused (SettingsError) prints one line naming the value and the fix,
 * not a stack trace.
 */
import { buildInstallerApp } from './installer-app.ts';
import { SettingsError } from './settings.ts';

try {
  buildInstallerApp();
} catch (err) {
  if (!(err instanceof SettingsError)) throw err;
  process.stderr.write(`workspace-plugin-installer: ${err.message}\n`);
  process.exit(1);
}
