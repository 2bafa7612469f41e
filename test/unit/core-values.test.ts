/**
 * The small values everything else trusts: names and ids (what may reach a host path or a shell
 * argument), stamps, execution names, errors read back from Step Functions, and the CLI's exit
 * codes per error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EXIT, statusOfError } from '../../bin/cli/exit-codes.ts';
import { toStepError } from '../../lambdas/commons/step-handler.ts';
import { ERROR_CATEGORIES, errorFromFailure, PluginError, RETRYABLE_CODES, type ErrorCode } from '../../lambdas/core/errors.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import {
  assertExecutionName,
  assertPluginName,
  assertSha256,
  assertStamp,
  assertVersion,
  assertWorkspaceId,
  EXECUTION_NAME,
  STAMP,
  WORKSPACE_ID,
} from '../../lambdas/core/names.ts';
import { newStamp, stampDate, stampTime } from '../../lambdas/core/stamp.ts';
import { refusal } from '../helpers/plugin-error.ts';


// --- names ----------------------------------------------------------------------------------------

describe('names', () => {
  const validators: [string, (v: unknown) => string, unknown[], unknown[]][] = [
    [
      'assertPluginName',
      assertPluginName,
      ['a', '0', 'hello-skills', 'a.b_c-d', 'x'.repeat(128), '1.0', 'a..b'],
      ['', '.', '..', 'A', 'Hello', '-a', '.a', '_a', 'a/b', '../x', 'a b', 'a\nb', 'a\n', 'a$', 'a;b', 'a`b', 'x'.repeat(129), 'é', 1, null, undefined, ['a']],
    ],
    [
      'assertWorkspaceId',
      assertWorkspaceId,
      ['ws1', 'W', 'a_b-C', 'x'.repeat(64)],
      ['', '-ws', '_ws', 'a.b', 'a/b', 'a b', 'x'.repeat(65), 'ws\n', 7],
    ],
    [
      'assertStamp',
      assertStamp,
      ['20260101T000000Z-abcd', '99991231T235959Z-0z9a'],
      ['', '20260101T000000Z', '20260101T000000Z-ABCD', '20260101T000000Z-abc', '20260101T000000Z-abcde', '2026-01-01T00:00:00Z-abcd', '20260101T000000Z-abcd\n', 20260101],
    ],
    [
      'assertVersion',
      assertVersion,
      ['1', '1.0.0', '1.0.0-rc.1+build_7', 'v2', 'x'.repeat(64)],
      ['', '.1', '-1', '1 0', '1/0', '1;0', '1"', 'x'.repeat(65), 1],
    ],
    [
      'assertSha256',
      assertSha256,
      ['0'.repeat(64), 'abcdef0123456789'.repeat(4)],
      ['', 'A'.repeat(64), 'g'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), `${'a'.repeat(64)}\n`],
    ],
    [
      'assertExecutionName',
      assertExecutionName,
      ['a', 'ws1-p-20260101T000000Z-abcd', 'x'.repeat(80), 'A_b-9'],
      ['', 'x'.repeat(81), 'a.b', 'a b', 'a:b', 'a/b'],
    ],
  ];

  for (const [label, assert, good, bad] of validators) {
    it(`${label} accepts ${good.length} values and returns them unchanged`, () => {
      for (const v of good) expect(assert(v)).toBe(v);
    });

    it(`${label} refuses ${bad.length} values with InvalidInput and a hint`, () => {
      for (const v of bad) {
        const e = refusal(() => assert(v));
        expect(e.code, JSON.stringify(v)).toBe('InvalidInput');
        expect(e.hint).not.toBe('');
        expect(e.message.length).toBeLessThan(200);
      }
    });
  }

  it('property: every accepted plugin name is path- and shell-safe', () => {
    const hostile = 'aZ09._-/\\ \t\n$;`\'"&|<>()*?[]{}!#~%^=+,:@\u0000\u00e9\u0130';
    const arbitraryName = fc.oneof(
      fc.string({ unit: fc.constantFrom(...hostile), maxLength: 140 }),
      fc.string({ maxLength: 140 }),
      fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,130}$/),
    );
    fc.assert(
      fc.property(arbitraryName, (name) => {
        let accepted: string;
        try {
          accepted = assertPluginName(name);
        } catch (e) {
          return e instanceof PluginError && e.code === 'InvalidInput';
        }
        return (
          accepted === name &&
          /^[a-z0-9][a-z0-9._-]{0,127}$/.test(name) &&
          !/[/\s$;`]/.test(name) &&
          name !== '.' &&
          name !== '..'
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('property: every name of the documented shape is accepted', () => {
    fc.assert(fc.property(fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,127}$/), (name) => assertPluginName(name) === name));
  });
});

// --- stamps ---------------------------------------------------------------------------------------

describe('stamps', () => {
  const dates = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59.999Z'), noInvalidDate: true });

  it('newStamp is the UTC second of the date plus four random characters', () => {
    expect(newStamp(new Date('2026-11-25T08:00:00.999Z'))).toMatch(/^20261125T080000Z-[a-z0-9]{4}$/);
    expect(stampTime(new Date('2026-01-02T03:04:05.678Z'))).toBe('20260102T030405Z');
    expect(newStamp()).toMatch(STAMP);
  });

  it('property: stampDate(newStamp(d)) is d truncated to the second', () => {
    fc.assert(
      fc.property(dates, (d) => {
        const stamp = newStamp(d);
        expect(assertStamp(stamp)).toBe(stamp);
        expect(stampDate(stamp).getTime()).toBe(Math.floor(d.getTime() / 1000) * 1000);
        expect(stamp.startsWith(stampTime(d))).toBe(true);
      }),
    );
  });

  it('property: stamp order is time order', () => {
    fc.assert(
      fc.property(dates, dates, (a, b) => {
        const sa = stampTime(a);
        const sb = stampTime(b);
        const ta = Math.floor(a.getTime() / 1000);
        const tb = Math.floor(b.getTime() / 1000);
        return (sa < sb ? -1 : sa > sb ? 1 : 0) === Math.sign(ta - tb);
      }),
    );
  });

  it('1,000 stamps minted in one second are distinct and sort in minting order', () => {
    const base = Date.parse('2026-11-25T08:00:00Z');
    const stamps = Array.from({ length: 1000 }, (_, ms) => newStamp(new Date(base + ms)));
    expect(new Set(stamps).size).toBe(1000);
    expect([...stamps].sort()).toEqual(stamps);
  });

  it('stamps minted in the same millisecond still (almost always) differ', () => {
    const now = new Date('2026-11-25T08:00:00.123Z');
    const stamps = Array.from({ length: 20 }, () => newStamp(now));
    // 2 random base-36 characters: 1,296 values; 20 draws collide rarely.
    expect(new Set(stamps).size).toBeGreaterThanOrEqual(17);
    expect(new Set(stamps.map((s) => s.slice(-2))).size).toBeGreaterThanOrEqual(17);
  });

  it('stampDate refuses what is not a stamp', () => {
    expect(() => stampDate('yesterday')).toThrow(/not a stamp/);
  });
});

// --- execution names ------------------------------------------------------------------------------

describe('executionName', () => {
  it('reads <workspace>-<plugin>-<stamp>', () => {
    expect(executionName('ws1', 'hello-skills', '20260101T000000Z-abcd')).toBe('ws1-hello-skills-20260101T000000Z-abcd');
    expect(executionName('ws1', 'Hello Skills!', '20260101T000000Z-abcd')).toBe('ws1-hello-skills-20260101T000000Z-abcd');
    expect(executionName('ws1', '', '20260101T000000Z-abcd')).toBe('ws1-plugin-20260101T000000Z-abcd');
    expect(executionName('ws1', '@@@', '20260101T000000Z-abcd')).toBe('ws1-plugin-20260101T000000Z-abcd');
  });

  it('refuses an invalid workspace id or stamp', () => {
    expect(refusal(() => executionName('bad ws', 'p', '20260101T000000Z-abcd')).code).toBe('InvalidInput');
    expect(refusal(() => executionName('ws', 'p', 'nope')).code).toBe('InvalidInput');
  });

  it('property: always ≤ 80 characters, a valid execution name, ending with the whole stamp', () => {
    const stamps = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true }).map((d) => newStamp(d));
    const hints = fc.oneof(fc.string({ maxLength: 200 }), fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,127}$/), fc.constant(''));
    fc.assert(
      fc.property(fc.stringMatching(WORKSPACE_ID), hints, stamps, (ws, hint, stamp) => {
        const name = executionName(ws, hint, stamp);
        expect(name.length).toBeLessThanOrEqual(80);
        expect(name).toMatch(EXECUTION_NAME);
        expect(name.endsWith(`-${stamp}`)).toBe(true);
        // Enough of the workspace id to recognise it.
        expect(name.startsWith(ws.slice(0, 8))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

// --- errors read back from Step Functions ---------------------------------------------------------

describe('errorFromFailure', () => {
  const ours = { code: 'ExtractFailed', message: 'extraction failed (gzip 1, tar 2)', hint: 'check disk space' };

  it('a plain message keeps the Error name as code', () => {
    const e = errorFromFailure('LockBusy', 'plugin x is busy');
    expect(e).toBeInstanceOf(PluginError);
    expect(e).toMatchObject({ code: 'LockBusy', message: 'plugin x is busy', hint: '' });
  });

  it('an unknown Error name becomes HostStepFailed; a missing cause says so', () => {
    expect(errorFromFailure('States.Timeout', 'took too long')).toMatchObject({ code: 'HostStepFailed', message: 'took too long' });
    expect(errorFromFailure('States.Timeout', undefined)).toMatchObject({ code: 'HostStepFailed', message: 'States.Timeout (no details)' });
    expect(errorFromFailure(undefined, undefined)).toMatchObject({ code: 'HostStepFailed', message: 'Error (no details)' });
  });

  it('our JSON message (local runner) gives code, message and hint', () => {
    expect(errorFromFailure('ExtractFailed', JSON.stringify(ours)).toJSON()).toEqual(ours);
  });

  it("Lambda's JSON error document wrapping our JSON (AWS) gives the same", () => {
    const doc = JSON.stringify({ errorType: 'ExtractFailed', errorMessage: JSON.stringify(ours), trace: ['Error: ...', '    at x'] });
    expect(errorFromFailure('ExtractFailed', doc).toJSON()).toEqual(ours);
  });

  it("Lambda's document wrapping plain text gives the text", () => {
    const doc = JSON.stringify({ errorType: 'Error', errorMessage: 'Task timed out after 60.00 seconds' });
    expect(errorFromFailure('Sandbox.Timedout', doc)).toMatchObject({ code: 'HostStepFailed', message: 'Task timed out after 60.00 seconds' });
  });

  it('the code inside the JSON wins over the Error name; an unknown inner code does not', () => {
    expect(errorFromFailure('States.TaskFailed', JSON.stringify(ours)).code).toBe('ExtractFailed');
    expect(errorFromFailure('LockLost', JSON.stringify({ ...ours, code: 'NoSuchCode' })).code).toBe('LockLost');
  });

  it('JSON that is not an error shape is kept as text', () => {
    expect(errorFromFailure('HostIoError', '{"foo":1}')).toMatchObject({ code: 'HostIoError', message: '{"foo":1}' });
    expect(errorFromFailure('HostIoError', '[1,2]')).toMatchObject({ code: 'HostIoError', message: '[1,2]' });
  });

  it('round-trips every code through the step handler shape', () => {
    for (const code of Object.keys(ERROR_CATEGORIES) as ErrorCode[]) {
      const sent = new PluginError(code, `message for ${code} with "quotes" and \\ slashes`, `hint for ${code}`);
      const err = toStepError(sent);
      expect(err.name).toBe(code);
      const local = errorFromFailure(err.name, err.message);
      const aws = errorFromFailure(err.name, JSON.stringify({ errorType: err.name, errorMessage: err.message }));
      for (const back of [local, aws]) expect(back.toJSON()).toEqual(sent.toJSON());
    }
  });

  it('a non-PluginError thrown by a step arrives as HostStepFailed with its message', () => {
    const err = toStepError(new TypeError('cannot read x of undefined'));
    expect(errorFromFailure(err.name, err.message)).toMatchObject({ code: 'HostStepFailed', message: 'cannot read x of undefined' });
  });
});

// --- CLI exit codes -------------------------------------------------------------------------------

describe('statusOfError', () => {
  const BY_CATEGORY = {
    refused: { status: 'refused', exit: 2 },
    busy: { status: 'busy', exit: 4 },
    transient: { status: 'rolled-back', exit: 3 },
    failed: { status: 'rolled-back', exit: 3 },
    operator: { status: 'needs-operator', exit: 5 },
  } as const;

  it.each(Object.entries(ERROR_CATEGORIES))('%s (%s)', (code, category) => {
    expect(statusOfError(code)).toEqual(BY_CATEGORY[category]);
  });

  it('matches the README contract for the codes users meet', () => {
    const contract: Record<string, number> = {
      InvalidInput: 2,
      HostileTarball: 2,
      InvalidManifest: 2,
      ChecksumMismatch: 2,
      NothingToRestore: 2,
      LockBusy: 4,
      ExtractFailed: 3,
      LockLost: 3,
      HostTimeout: 3,
      RollbackFailed: 5,
      MarkerWriteFailed: 5,
    };
    for (const [code, exit] of Object.entries(contract)) expect(statusOfError(code).exit, code).toBe(exit);
    expect(new Set(Object.values(EXIT))).toEqual(new Set([0, 2, 3, 4, 5]));
  });

  it('an unknown code is treated as a failure that was rolled back', () => {
    expect(statusOfError('SomethingNew')).toEqual({ status: 'rolled-back', exit: 3 });
  });

  it('only transient errors are retryable', () => {
    expect([...RETRYABLE_CODES].sort()).toEqual(['HostStepInterrupted', 'HostTimeout', 'HostUnreachable', 'TransferCorrupted']);
  });
});
