/** Lambda for the workflow state(s) using `${RemoveLiveFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { removeLive } from '../core/steps/host-workflow-steps.ts';
import { PluginTargetSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('RemoveLiveFunctionArn', PluginTargetSchema, removeLive);
export const handler = lambdaHandler(step);
