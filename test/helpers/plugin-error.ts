/** Asserting on the typed errors the product throws. */
import { expect } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';

/** The PluginError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function failure(promise: Promise<unknown>): Promise<PluginError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(PluginError);
    return error as PluginError;
  }
  throw new Error('expected a PluginError, but the call succeeded');
}

/** Like failure(), and checks the error's code. */
export async function expectCode(promise: Promise<unknown>, code: string): Promise<PluginError> {
  const error = await failure(promise);
  expect(error.code, error.message).toBe(code);
  return error;
}

/** The PluginError a synchronous call throws; fails the test if it returns or throws otherwise. */
export function refusal(fn: () => unknown): PluginError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PluginError);
    return error as PluginError;
  }
  throw new Error('expected the call to be refused with a PluginError');
}
