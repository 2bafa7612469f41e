/**
 * interpretHostResult: what the host script printed (and its exit status) → a result or a typed
 * PluginError. The exit-code table is checked against the script's own EX_* constants and its
 * `fail` calls, so the two cannot drift apart unnoticed.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isErrorCode, PluginError } from '../../lambdas/core/errors.ts';
import { HOST_EXIT_CODES, interpretHostResult } from '../../lambdas/core/host/host-result.ts';
import { HOST_SCRIPT_PATH } from '../../lambdas/core/host/host-script.ts';
import { HOST_OPS, type HostRawResult } from '../../lambdas/core/host/remote-host.ts';

const raw = (over: Partial<HostRawResult>): HostRawResult => ({ exitCode: 0, signal: null, stdout: '', stderr: '', ...over });

function thrown(fn: () => unknown): PluginError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PluginError);
    return error as PluginError;
  }
  throw new Error('expected interpretHostResult to throw');
}

const script = readFileSync(HOST_SCRIPT_PATH, 'utf8');
/** EX_NAME → number, as the script defines them. */
const EX = Object.fromEntries([...script.matchAll(/^(EX_[A-Z_]+)=(\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
/** Every `fail "$EX_…" Code` and `stage_failed "$EX_…" Code` (a fail after cleaning up) in the script. */
const FAILS = [...script.matchAll(/(?:^|[\s;|&{(])(?:stage_)?fail(?:ed)? "\$(EX_[A-Z_]+)" ([A-Za-z]+)/gm)].map((m) => ({ ex: m[1]!, code: m[2]! }));

describe('the exit-code table matches the script', () => {
  it('defines the same exit codes as the script', () => {
    expect(Object.keys(EX).length).toBeGreaterThanOrEqual(10);
    expect(Object.values(EX).sort((a, b) => a - b)).toEqual(Object.keys(HOST_EXIT_CODES).map(Number).sort((a, b) => a - b));
  });

  it('every code the script reports is an ErrorCode, and its exit status maps to that code', () => {
    expect(FAILS.length).toBeGreaterThan(30);
    for (const { ex, code } of FAILS) {
      expect(isErrorCode(code), `${code} is not an ErrorCode`).toBe(true);
      expect(EX[ex], `${ex} is not defined`).toBeDefined();
      expect(HOST_EXIT_CODES[EX[ex]!], `${ex} ${code}`).toBe(code);
    }
  });

  it('every exit code the script defines is reported by some failure path', () => {
    const used = new Set(FAILS.map((f) => f.ex));
    for (const ex of Object.keys(EX)) expect(used.has(ex), `${ex} is never reported`).toBe(true);
    // The classifier of failed file operations reports the disk, permission and I/O classes.
    const ioFail = /^io_fail\(\) \{\n([\s\S]*?)^\}/m.exec(script)?.[1] ?? '';
    expect([...ioFail.matchAll(/fail "\$(EX_[A-Z_]+)" ([A-Za-z]+)/g)].map((m) => m[2])).toEqual(['HostDiskFull', 'HostDiskFull', 'HostPermissionDenied', 'HostIoError']);
  });

  it('gives each new fault its own code: tools, disk, permissions, unsafe layout, rollback', () => {
    expect(HOST_EXIT_CODES[EX.EX_NO_DOWNLOADER!]).toBe('HostToolMissing');
    expect(HOST_EXIT_CODES[EX.EX_TOOL_MISSING!]).toBe('HostToolMissing');
    expect(HOST_EXIT_CODES[EX.EX_DISK_FULL!]).toBe('HostDiskFull');
    expect(HOST_EXIT_CODES[EX.EX_PERMISSION!]).toBe('HostPermissionDenied');
    expect(HOST_EXIT_CODES[EX.EX_UNSAFE_LAYOUT!]).toBe('UnsafeHostLayout');
    expect(HOST_EXIT_CODES[EX.EX_ROLLBACK!]).toBe('RollbackFailed');
    expect(HOST_EXIT_CODES[EX.EX_HEALTH!]).toBe('HealthCheckFailed');
    expect(EX).toMatchObject({ EX_NO_DOWNLOADER: 22, EX_DISK_FULL: 23, EX_PERMISSION: 24, EX_TOOL_MISSING: 25, EX_UNSAFE_LAYOUT: 26, EX_ROLLBACK: 27, EX_HEALTH: 28 });
  });
});

describe('interpretHostResult', () => {
  it('returns the parsed ok line, the last one when the script printed other lines first', () => {
    const r = interpretHostResult('lock', raw({ stdout: 'noise from a tool\n{"ok":true,"op":"lock","result":"acquired","expires":123}\n\n' }));
    expect(r).toEqual({ ok: true, op: 'lock', result: 'acquired', expires: 123 });
  });

  it('an ok:false line gives its code, message and the hint for the code', () => {
    const e = thrown(() =>
      interpretHostResult('lock', raw({ exitCode: 11, stdout: '{"ok":false,"op":"lock","code":"LockBusy","message":"plugin x is busy"}\n' })),
    );
    expect(e).toMatchObject({ code: 'LockBusy', name: 'LockBusy', message: 'plugin x is busy' });
    expect(e.hint).toMatch(/retry/);
  });

  it('the line wins over the exit status', () => {
    // RollbackFailed has its own exit status (27) ...
    const own = thrown(() =>
      interpretHostResult('rollback', raw({ exitCode: EX.EX_ROLLBACK!, stdout: '{"ok":false,"op":"rollback","code":"RollbackFailed","message":"cannot move x"}' })),
    );
    expect(own).toMatchObject({ code: 'RollbackFailed', message: 'cannot move x' });
    expect(own.category).toBe('operator');
    // ... but whatever status came with it, the code on the result line is the one reported.
    const e = thrown(() =>
      interpretHostResult('rollback', raw({ exitCode: EX.EX_IO!, stdout: '{"ok":false,"op":"rollback","code":"RollbackFailed","message":"cannot move x"}' })),
    );
    expect(e.code).toBe('RollbackFailed');
    expect(e.category).toBe('operator');
  });

  it('an ok:false line with an unknown code falls back to the exit status, or HostStepFailed', () => {
    const line = '{"ok":false,"op":"stage","code":"Bogus","message":"m"}';
    expect(thrown(() => interpretHostResult('stage', raw({ exitCode: 13, stdout: line }))).code).toBe('TransferCorrupted');
    expect(thrown(() => interpretHostResult('stage', raw({ exitCode: 99, stdout: line }))).code).toBe('HostStepFailed');
    const noMessage = thrown(() => interpretHostResult('stage', raw({ exitCode: 14, stdout: '{"ok":false}' })));
    expect(noMessage).toMatchObject({ code: 'ExtractFailed', message: 'host step stage failed' });
  });

  it.each(Object.entries(HOST_EXIT_CODES).map(([exit, code]) => [Number(exit), code] as const))(
    'exit %i without a result line → %s',
    (exit, code) => {
      const e = thrown(() => interpretHostResult('stage', raw({ exitCode: exit, stderr: 'one\ntwo\nthree\nfour\n' })));
      expect(e.code).toBe(code);
      expect(e.message).toContain(`exited ${exit} without a result line`);
      // The last three stderr lines, for the logs.
      expect(e.message).toContain('two | three | four');
      expect(e.message).not.toContain('one');
      expect(e.hint).not.toBe('');
    },
  );

  it('an exit status the script never uses → HostStepFailed', () => {
    expect(thrown(() => interpretHostResult('list', raw({ exitCode: 1 }))).code).toBe('HostStepFailed');
    expect(thrown(() => interpretHostResult('list', raw({ exitCode: 127, stderr: 'sh: flock: not found' }))).message).toContain('flock: not found');
  });

  it('a signal, or no exit status at all → HostStepInterrupted (transient), whatever stdout says', () => {
    for (const r of [
      raw({ exitCode: null, signal: 'SIGKILL' }),
      raw({ exitCode: null, signal: 'SIGTERM', stdout: '{"ok":false,"op":"swap","code":"LivePresent","message":"x"}' }),
      raw({ exitCode: null, signal: null }),
      raw({ exitCode: 137, signal: 'SIGKILL' }),
    ]) {
      const e = thrown(() => interpretHostResult('swap', r));
      expect(e.code).toBe('HostStepInterrupted');
      expect(e.retryable).toBe(true);
    }
    expect(thrown(() => interpretHostResult('swap', raw({ exitCode: null, signal: 'SIGKILL' }))).message).toContain('SIGKILL');
  });

  it('garbage stdout is never taken for a result', () => {
    const cases: [string, number][] = [
      ['not json at all', 0],
      ['{"ok":true,"op":"lock"', 0],
      ['[{"ok":true}]', 0],
      ['"ok"', 0],
      ['null', 0],
      ['{"ok":"true","op":"lock"}', 0],
      // A result line followed by something else: only the last line counts.
      ['{"ok":true,"op":"lock"}\ntrailing garbage', 0],
      ['', 0],
      ['{not json', 12],
    ];
    for (const [stdout, exitCode] of cases) {
      const e = thrown(() => interpretHostResult('lock', raw({ stdout, exitCode })));
      expect(e.code, JSON.stringify(stdout)).toBe(exitCode === 0 ? 'HostStepFailed' : HOST_EXIT_CODES[exitCode]);
      expect(e.message).toContain('without a result line');
    }
  });

  it('an ok line with a non-zero exit status is not success', () => {
    const e = thrown(() => interpretHostResult('mark', raw({ exitCode: 21, stdout: '{"ok":true,"op":"mark","result":"marked"}' })));
    expect(e.code).toBe('HostIoError');
  });

  it('names the operation in its messages', () => {
    for (const op of HOST_OPS) {
      expect(thrown(() => interpretHostResult(op, raw({ exitCode: 1 }))).message).toContain(`host step ${op}`);
    }
  });
});
