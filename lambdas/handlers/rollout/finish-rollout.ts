/** Lambda for `FinishRollout` in rollout.asl.json (`${FinishRolloutFunctionArn}`): parse → core → shape. */
import { lambdaHandler } from '../../commons/lambda-handler.ts';
import { defineStep } from '../../commons/step-handler.ts';
import { finishRollout } from '../../core/rollout/finish-rollout.ts';
import { RolloutIdSchema } from '../../core/rollout/rollout-payloads.ts';

export const step = defineStep('FinishRolloutFunctionArn', RolloutIdSchema, finishRollout);
export const handler = lambdaHandler(step);
