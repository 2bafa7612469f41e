/**
 * Lambda for `Prepare` in install.asl.json: the execution input arrives as `request`, the
 * execution name (from the context object) as `execution`.
 */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { prepareInstall } from '../core/steps/prepare-install.ts';
import { InstallRequestSchema } from '../core/steps/step-payloads.ts';

const PrepareInputSchema = InstallRequestSchema.omit({ execution: true })
  .extend({ execution: InstallRequestSchema.shape.execution })
  .strip();

export const step = defineStep('PrepareInstallFunctionArn', PrepareInputSchema, prepareInstall);
export const handler = lambdaHandler(step);
