/**
 * PROPERTY_RUNS_SCALE (test/helpers/property-runs.ts): the heavy property tests run their modest
 * CI default unless a soak asks for more; a bad value is refused naming the variable and the fix.
 */
import { describe, expect, it } from 'vitest';
import { propertyRuns, propertyRunsScale, propertyTimeout } from '../helpers/property-runs.ts';

describe('propertyRuns', () => {
  it('is the CI default when PROPERTY_RUNS_SCALE is unset or empty', () => {
    expect(propertyRuns(40, {})).toBe(40);
    expect(propertyRuns(40, { PROPERTY_RUNS_SCALE: '' })).toBe(40);
  });

  it('multiplies the default for a soak, rounds, and never drops below one run', () => {
    expect(propertyRuns(40, { PROPERTY_RUNS_SCALE: '10' })).toBe(400);
    expect(propertyRuns(8, { PROPERTY_RUNS_SCALE: '2.5' })).toBe(20);
    expect(propertyRuns(2, { PROPERTY_RUNS_SCALE: '0.1' })).toBe(1);
  });

  it.each(['0', '-1', 'ten', 'NaN', 'Infinity'])('refuses PROPERTY_RUNS_SCALE=%s naming the variable and what to set', (value) => {
    expect(() => propertyRunsScale({ PROPERTY_RUNS_SCALE: value })).toThrow(/PROPERTY_RUNS_SCALE=.* is not a positive number: set it to a multiplier .* or unset it/);
  });

  it('gives a timeout that grows with the run count', () => {
    expect(propertyTimeout(40, 15_000)).toBe(120_000 + 600_000);
    expect(propertyTimeout(400, 15_000)).toBe(120_000 + 6_000_000);
  });
});
