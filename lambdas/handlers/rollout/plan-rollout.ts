/** Lambda for `PlanRollout` in rollout.asl.json (`${PlanRolloutFunctionArn}`): parse → core → shape. */
import { lambdaHandler } from '../../commons/lambda-handler.ts';
import { defineStep } from '../../commons/step-handler.ts';
import { planRollout } from '../../core/rollout/plan-rollout.ts';
import { RolloutExecutionSchema } from '../../core/rollout/rollout-payloads.ts';

export const step = defineStep('PlanRolloutFunctionArn', RolloutExecutionSchema, planRollout);
export const handler = lambdaHandler(step);
