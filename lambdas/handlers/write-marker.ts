/** Lambda for the workflow state(s) using `${WriteMarkerFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { writeMarker } from '../core/steps/host-workflow-steps.ts';
import { InstallPlanSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('WriteMarkerFunctionArn', InstallPlanSchema, writeMarker);
export const handler = lambdaHandler(step);
