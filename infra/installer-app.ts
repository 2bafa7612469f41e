/**
 * Builds the CDK app: the stack from context settings, checked by cdk-nag's AWS Solutions pack.
 * `infra/app.ts` runs it for the CDK CLI; tests build it in-process.
 *
 * cdk-nag 3 is a CDK validation plugin (`Validations.of(app).addPlugins`), the successor of v2's
 * `Aspects.of(app).add(new AwsSolutionsChecks())`: an unacknowledged finding fails synthesis.
 */
import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { PluginInstallerStack } from './plugin-installer-stack.ts';
import { DEFAULT_SETTINGS, settingsFromContext } from './settings.ts';

/** The default stack name (context `stackName` picks another). */
export const STACK_NAME = DEFAULT_SETTINGS.stackName;

export interface InstallerApp {
  readonly app: App;
  readonly stack: PluginInstallerStack;
}

export function buildInstallerApp(props: AppProps = {}, env: NodeJS.ProcessEnv = process.env): InstallerApp {
  const app = new App(props);
  const settings = settingsFromContext(app.node);
  const stack = new PluginInstallerStack(app, settings.stackName, {
    settings,
    // Environment-agnostic unless the CLI (or the caller) names an account and region.
    env: { account: env.CDK_DEFAULT_ACCOUNT, region: env.CDK_DEFAULT_REGION },
  });
  // writeSuppressionsToCloudFormation keeps every acknowledgement and its reason in the template
  // (Metadata.cdk_nag), as cdk-nag 2 did: the audit trail travels with the deployment.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
  return { app, stack };
}
