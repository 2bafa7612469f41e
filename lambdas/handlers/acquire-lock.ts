/** Lambda for the workflow state(s) using `${AcquireLockFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { acquireLock } from '../core/steps/host-workflow-steps.ts';
import { PluginTargetSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('AcquireLockFunctionArn', PluginTargetSchema, acquireLock);
export const handler = lambdaHandler(step);
