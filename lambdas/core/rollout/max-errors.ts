/**
 * `maxErrors`, as SSM Run Command takes it: a count ("3") or a percentage of the targets ("10%").
 * The rollout halts once failures EXCEED the budget, so "0" halts at the first failure.
 */
import { PluginError } from '../errors.ts';

export type MaxErrors = { kind: 'count'; count: number; spec: string } | { kind: 'percent'; percent: number; spec: string };

const COUNT = /^(0|[1-9][0-9]{0,5})$/;
const PERCENT = /^(0|[1-9][0-9]?|100)%$/;
const HINT = 'give --max-errors a count (e.g. 0, 5) or a percentage of the targets (e.g. 10%)';

export function parseMaxErrors(spec: unknown): MaxErrors {
  const text = typeof spec === 'number' ? String(spec) : spec;
  if (typeof text === 'string' && COUNT.test(text)) return { kind: 'count', count: Number(text), spec: text };
  if (typeof text === 'string' && PERCENT.test(text)) return { kind: 'percent', percent: Number(text.slice(0, -1)), spec: text };
  const shown = typeof spec === 'string' ? JSON.stringify(spec.slice(0, 40)) : String(spec);
  throw new PluginError('InvalidInput', `invalid max-errors ${shown}`, HINT);
}

/**
 * How many failures the rollout tolerates for `targets` targets. A percentage rounds down, as
 * SSM does (10% of 15 targets tolerates 1), so a percentage never tolerates more than it says.
 */
export function errorBudget(maxErrors: MaxErrors, targets: number): number {
  if (maxErrors.kind === 'count') return maxErrors.count;
  return Math.floor((targets * maxErrors.percent) / 100);
}
