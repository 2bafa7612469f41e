/** Lambda for the workflow state(s) using `${SnapshotLiveFunctionArn}`: parse → core → shape. */
import { lambdaHandler } from '../commons/lambda-handler.ts';
import { defineStep } from '../commons/step-handler.ts';
import { snapshotLive } from '../core/steps/host-workflow-steps.ts';
import { PluginTargetSchema } from '../core/steps/step-payloads.ts';

export const step = defineStep('SnapshotLiveFunctionArn', PluginTargetSchema, snapshotLive);
export const handler = lambdaHandler(step);
