/**
 * The thin handler shape every workflow step shares: parse the input (zod) → call the core →
 * return its small result. Errors leave as `name = code`, `message = JSON {code, message, hint}`
 * so Step Functions' Retry/Catch see the code and the CLI/API get the hint back.
 */
import type { ZodType } from '../core/zod.ts';
import { PluginError } from '../core/errors.ts';
import type { StepDeps } from '../core/steps/step-deps.ts';

export interface StepDefinition<I, O> {
  /** The `${…FunctionArn}` placeholder this step fills in the ASL files. */
  placeholder: string;
  schema: ZodType<I>;
  run: (deps: StepDeps, input: I) => Promise<O>;
}

export function defineStep<I, O>(placeholder: string, schema: ZodType<I>, run: (deps: StepDeps, input: I) => Promise<O>): StepDefinition<I, O> {
  return { placeholder, schema, run };
}

/** The error Step Functions should see for anything a step throws. */
export function toStepError(err: unknown): Error {
  const plugin =
    err instanceof PluginError
      ? err
      : new PluginError('HostStepFailed', err instanceof Error ? err.message : String(err), 'see the step\'s logs');
  const out = new Error(JSON.stringify(plugin.toJSON()));
  out.name = plugin.code;
  return out;
}

export function parseStepInput<I>(schema: ZodType<I>, input: unknown): I {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    throw new PluginError('InvalidInput', `invalid step input: ${issues}`, 'the workflow passed a malformed payload; check the execution input');
  }
  return parsed.data;
}

/** A step bound to a set of ports: what the local runner calls for a Task state. */
export function bindStep<I, O>(step: StepDefinition<I, O>, deps: StepDeps): (input: unknown) => Promise<O> {
  return async (input) => {
    try {
      return await step.run(deps, parseStepInput(step.schema, input));
    } catch (err) {
      throw toStepError(err);
    }
  };
}
