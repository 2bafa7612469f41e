/**
 * CDK app entry (`cdk.json`: `npx tsx infra/app.ts`). Context values: see infra/settings.ts and
 * docs/deploy.md. The CLI sets CDK_OUTDIR, so the app synthesizes itself on exit.
 */
import { buildInstallerApp } from './installer-app.ts';

buildInstallerApp();
