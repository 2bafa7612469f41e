/** Lambda for the workflow state(s) using `${SwapIntoPlaceFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { swapIntoPlace } from '../core/steps/host-workflow-steps.ts';
import { PluginTargetSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('SwapIntoPlaceFunctionArn', PluginTargetSchema, swapIntoPlace);
export const handler = lambdaHandler(step);
