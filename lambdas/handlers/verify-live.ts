/** Lambda for the workflow state(s) using `${VerifyLiveFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { verifyLive } from '../core/steps/host-workflow-steps.ts';
import { InstallPlanSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('VerifyLiveFunctionArn', InstallPlanSchema, verifyLive);
export const handler = lambdaHandler(step);
