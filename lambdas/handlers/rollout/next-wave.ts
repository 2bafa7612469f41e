/** Lambda for `NextWave` in rollout.asl.json (`${NextWaveFunctionArn}`): parse → core → shape. */
import { lambdaHandler } from '../../commons/lambda-handler.ts';
import { defineStep } from '../../commons/step-handler.ts';
import { nextWave } from '../../core/rollout/next-wave.ts';
import { RolloutIdSchema } from '../../core/rollout/rollout-payloads.ts';

export const step = defineStep('NextWaveFunctionArn', RolloutIdSchema, nextWave);
export const handler = lambdaHandler(step);
