/**
 * Lambda for `SummarizeFailure` in rollout.asl.json (`${SummarizeTargetFailureFunctionArn}`):
 * a failed target's caught error → its child's error code, message and hint, cut short.
 */
import { lambdaHandler } from '../../commons/lambda-handler.ts';
import { defineStep } from '../../commons/step-handler.ts';
import { summarizeTargetFailure } from '../../core/rollout/target-failure.ts';
import { TargetFailureSchema } from '../../core/rollout/rollout-payloads.ts';

export const step = defineStep('SummarizeTargetFailureFunctionArn', TargetFailureSchema, async (_deps, input) => summarizeTargetFailure(input.item, input.error));
export const handler = lambdaHandler(step);
