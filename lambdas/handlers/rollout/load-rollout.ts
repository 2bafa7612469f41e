/** Lambda for `LoadRollout` in rollout.asl.json (`${LoadRolloutFunctionArn}`): parse → core → shape. */
import { lambdaHandler } from '../../commons/lambda-handler.ts';
import { defineStep } from '../../commons/step-handler.ts';
import { loadRollout } from '../../core/rollout/load-rollout.ts';
import { RolloutExecutionSchema } from '../../core/rollout/rollout-payloads.ts';

export const step = defineStep('LoadRolloutFunctionArn', RolloutExecutionSchema, loadRollout);
export const handler = lambdaHandler(step);
