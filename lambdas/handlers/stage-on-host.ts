/** Lambda for the workflow state(s) using `${StageOnHostFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { stageOnHost } from '../core/steps/host-workflow-steps.ts';
import { InstallPlanSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('StageOnHostFunctionArn', InstallPlanSchema, stageOnHost);
export const handler = lambdaHandler(step);
