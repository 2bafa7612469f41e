/** Lambda for the workflow state(s) using `${RollBackFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { rollBack } from '../core/steps/host-workflow-steps.ts';
import { PluginTargetSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('RollBackFunctionArn', PluginTargetSchema, rollBack);
export const handler = lambdaHandler(step);
