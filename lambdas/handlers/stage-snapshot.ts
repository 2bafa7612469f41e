/** Lambda for the workflow state(s) using `${StageSnapshotFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { stageSnapshot } from '../core/steps/host-workflow-steps.ts';
import { PluginTargetSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('StageSnapshotFunctionArn', PluginTargetSchema, stageSnapshot);
export const handler = lambdaHandler(step);
