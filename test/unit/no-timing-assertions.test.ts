/**
 * No test asserts elapsed time (issue 12): on a loaded machine a stopwatch bound fails a correct
 * program. A "fails fast" property is asserted by its outcome (a typed timeout error, the killed
 * process gone: test/helpers/processes.ts); speed lives in the benchmarks (bench/). Printing a
 * measurement (console.info of ms) is fine: only an `expect(` on an elapsed time is refused.
 *
 * This scans every .ts file under test/ for an `expect(` whose argument computes elapsed time
 * (`Date.now() - t`, `performance.now() - t`, `process.hrtime…`), or is a variable or field
 * assigned such a difference in the same file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const TEST_DIR = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);

/** A clock read: the start of an elapsed-time computation. */
const CLOCK = String.raw`(?:Date\.now\(\)|performance\.now\(\)|process\.hrtime)`;
/** `const x = Date.now() - t`, `x: Date.now() - t`, `x = performance.now() - t`. */
const ELAPSED_NAME = new RegExp(String.raw`(?:\b(\w+)\s*=|\b(\w+)\s*:)\s*${CLOCK}\s*-`, 'g');

/** The argument of each `expect(` on a line: up to its matching `)` (or the end of the line). */
function expectArguments(line: string): string[] {
  const args: string[] = [];
  for (let at = line.indexOf('expect('); at !== -1; at = line.indexOf('expect(', at + 1)) {
    let depth = 1;
    let end = at + 'expect('.length;
    for (; end < line.length && depth > 0; end++) {
      if (line[end] === '(') depth++;
      else if (line[end] === ')') depth--;
    }
    args.push(line.slice(at + 'expect('.length, end - 1));
  }
  return args;
}

/** The lines of `source` (1-based) whose `expect(` measures elapsed time. */
function timingAssertions(source: string): { line: number; text: string }[] {
  const names = new Set<string>();
  for (const m of source.matchAll(ELAPSED_NAME)) names.add((m[1] ?? m[2])!);
  const clock = new RegExp(CLOCK);
  // The elapsed variable itself, or a field of that name (`r.ms`), as the whole argument.
  const elapsed = names.size === 0 ? undefined : new RegExp(String.raw`^\s*(?:[\w!?]+\.)*(?:${[...names].join('|')})\s*!?\s*$`);
  const found: { line: number; text: string }[] = [];
  source.split('\n').forEach((text, i) => {
    if (expectArguments(text).some((arg) => clock.test(arg) || elapsed?.test(arg))) found.push({ line: i + 1, text: text.trim() });
  });
  return found;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(path);
    return e.isFile() && e.name.endsWith('.ts') ? [path] : [];
  });
}

describe('no test asserts elapsed time', () => {
  it('finds the forms it is meant to refuse, and leaves measurements that are only printed', () => {
    const sample = [
      'const started = Date.now();',
      'expect(Date.now() - started).toBeLessThan(30_000);',
      'expect(performance.now() - t0).toBeLessThan(5);',
      'expect(Number(process.hrtime.bigint() - t)).toBeLessThan(1e9);',
      'const took = Date.now() - started;',
      'expect(took).toBeLessThan(60_000);',
      'return { ref, ms: Date.now() - started };',
      'expect(r.ms).toBeLessThan(60_000);',
      'console.info(`staged in ${Date.now() - started} ms`);',
      'expect(summary.polls).toBe(2);',
      'expect(new Date(Date.parse(x)).toISOString()).toBe(x);',
      'expect(Math.round((Date.now() - t) / 1000)).toBe(0);',
      'expect(lease.expires).toBeGreaterThan(Date.now());',
    ].join('\n');
    expect(timingAssertions(sample).map((f) => f.line)).toEqual([2, 3, 4, 6, 8, 12]);
  });

  it('no .ts file under test/ has one', () => {
    const offenders = tsFiles(TEST_DIR)
      .filter((file) => file !== SELF)
      .flatMap((file) => timingAssertions(readFileSync(file, 'utf8')).map((f) => `${relative(TEST_DIR, file)}:${f.line}: ${f.text}`));
    // Assert the outcome that proves the property instead (a typed timeout error, the process
    // gone); a speed figure belongs in bench/.
    expect(offenders).toEqual([]);
  });
});
