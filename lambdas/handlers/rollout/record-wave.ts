/** Lambda for `RecordWave` in rollout.asl.json (`${RecordWaveFunctionArn}`): parse → core → shape. */
import { lambdaHandler } from '../../commons/lambda-handler.ts';
import { defineStep } from '../../commons/step-handler.ts';
import { recordWave } from '../../core/rollout/record-wave.ts';
import { RecordWaveSchema } from '../../core/rollout/rollout-payloads.ts';

export const step = defineStep('RecordWaveFunctionArn', RecordWaveSchema, recordWave);
export const handler = lambdaHandler(step);
