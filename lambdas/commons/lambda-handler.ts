/**
 * Wraps a step as a Lambda handler: ports built once per container, the execution name on every
 * log line, one metric per outcome (StepSucceeded / StepFailed, dimension `step`, and on failure
 * a second with the error code), errors shaped for Step Functions.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';
import type { StepDeps } from '../core/steps/step-deps.ts';
import { logger, metrics } from './logger.ts';
import { localDepsFromEnv } from './local-deps.ts';
import { parseStepInput, toStepError, type StepDefinition } from './step-handler.ts';

let containerDeps: Promise<StepDeps> | undefined;

/**
 * Ports for this container, built on first use: the AWS adapters when the deployment configured
 * them (ARTIFACT_BUCKET), else the embedded ones under PLUGINCTL_HOME.
 */
export function getContainerDeps(): Promise<StepDeps> {
  // Imported lazily: the AWS SDK stays out of processes that only run the embedded engine
  // (pluginctl imports the step definitions through these handler modules).
  containerDeps ??= process.env.ARTIFACT_BUCKET ? import('./aws-deps.ts').then((m) => m.awsDeps()) : Promise.resolve(localDepsFromEnv());
  return containerDeps;
}

export function lambdaHandler<I, O>(step: StepDefinition<I, O>) {
  return async (event: unknown, context?: Context): Promise<O> => {
    if (context) logger.addContext(context);
    const execution = event && typeof event === 'object' && 'execution' in event ? String(event.execution) : undefined;
    const name = step.placeholder.replace(/FunctionArn$/, '');
    logger.appendKeys({ execution, step: name });
    metrics.addDimension('step', name);
    try {
      const out = await step.run(await getContainerDeps(), parseStepInput(step.schema, event));
      logger.info('step succeeded', { result: out as Record<string, unknown> });
      metrics.addMetric('StepSucceeded', MetricUnit.Count, 1);
      return out;
    } catch (err) {
      const shaped = toStepError(err);
      logger.error('step failed', { code: shaped.name, detail: shaped.message });
      metrics.addMetric('StepFailed', MetricUnit.Count, 1);
      // The code as its own metric set, so an alarm can watch e.g. RollbackFailed or HostUnreachable.
      const byCode = metrics.singleMetric();
      byCode.addDimension('step', name);
      byCode.addDimension('code', shaped.name);
      byCode.addMetric('StepErrors', MetricUnit.Count, 1);
      throw shaped;
    } finally {
      metrics.publishStoredMetrics();
      logger.removeKeys(['execution', 'step']);
    }
  };
}
