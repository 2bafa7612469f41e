/** Lambda for the workflow state(s) using `${PrepareTargetFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { prepareTarget } from '../core/steps/prepare-target.ts';
import { PluginTargetSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('PrepareTargetFunctionArn', PluginTargetSchema, prepareTarget);
export const handler = lambdaHandler(step);
