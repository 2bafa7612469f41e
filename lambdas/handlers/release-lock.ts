/** Lambda for the workflow state(s) using `${ReleaseLockFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { releaseLock } from '../core/steps/host-workflow-steps.ts';
import { PluginTargetSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('ReleaseLockFunctionArn', PluginTargetSchema, releaseLock);
export const handler = lambdaHandler(step);
