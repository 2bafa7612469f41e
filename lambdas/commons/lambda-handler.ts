/**
 * Wraps a step as a Lambda handler: ports built once per container, the execution name on every
 * log line, errors shaped for Step Functions.
 */
import type { Context } from 'aws-lambda';
import type { StepDeps } from '../core/steps/step-deps.ts';
import { logger } from './logger.ts';
import { localDepsFromEnv } from './local-deps.ts';
import { parseStepInput, toStepError, type StepDefinition } from './step-handler.ts';

let containerDeps: StepDeps | undefined;

/** Ports for this container. The AWS adapters replace the local ones when configured. */
export function getContainerDeps(): StepDeps {
  containerDeps ??= localDepsFromEnv();
  return containerDeps;
}

export function lambdaHandler<I, O>(step: StepDefinition<I, O>) {
  return async (event: unknown, context?: Context): Promise<O> => {
    if (context) logger.addContext(context);
    const execution = event && typeof event === 'object' && 'execution' in event ? String(event.execution) : undefined;
    logger.appendKeys({ execution, step: step.placeholder.replace(/FunctionArn$/, '') });
    try {
      const out = await step.run(getContainerDeps(), parseStepInput(step.schema, event));
      logger.info('step succeeded', { result: out as Record<string, unknown> });
      return out;
    } catch (err) {
      const shaped = toStepError(err);
      logger.error('step failed', { code: shaped.name, detail: shaped.message });
      throw shaped;
    } finally {
      logger.removeKeys(['execution', 'step']);
    }
  };
}
