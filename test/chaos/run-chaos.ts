/**
 * The seeded chaos runner's command line:
 *   npm run chaos -- --runs N --seed S [--transport local|eic|ssm] [--lanes K] [--only I]
 *                    [--from I] [--json] [--save] [--verbose]
 * --from I runs I…I+N-1 of the schedule (a long campaign in slices: the same runs as one call).
 * Prints one summary line per transport (and each violation), or with --json one JSON object;
 * --save also writes bench/results/chaos-<transport>.json. Exit 1 if any invariant was violated.
 * The EIC and SSM transports need root (a real sshd on loopback, stand-ins of the AWS APIs).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TRANSPORTS, type TransportName } from './lanes.ts';
import { INVARIANT_TITLES, INVARIANTS, runChaos, summaryLine, type ChaosReport } from './runner.ts';

const USAGE = 'usage: npm run chaos -- --runs N --seed S [--transport local|eic|ssm[,…]] [--lanes K] [--only RUN] [--from RUN] [--json] [--save] [--verbose]';

function fail(message: string): never {
  process.stderr.write(`run-chaos: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function integer(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) fail(`--${name} must be a whole number ≥ ${min}`);
  return Number(value);
}

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    seed: { type: 'string' },
    transport: { type: 'string' },
    lanes: { type: 'string' },
    only: { type: 'string' },
    from: { type: 'string' },
    'host-timeout-ms': { type: 'string' },
    json: { type: 'boolean' },
    save: { type: 'boolean' },
    verbose: { type: 'boolean' },
    help: { type: 'boolean' },
  },
  strict: true,
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const transports = (values.transport ?? 'local').split(',').map((t) => t.trim());
for (const t of transports) if (!(TRANSPORTS as readonly string[]).includes(t)) fail(`unknown transport ${t}`);
const runs = integer(values.runs, 'runs', 20, 1);
const seed = integer(values.seed, 'seed', 1);
const only = values.only === undefined ? undefined : integer(values.only, 'only', 0);
const from = integer(values.from, 'from', 0);
const hostTimeoutMs = values['host-timeout-ms'] === undefined ? undefined : integer(values['host-timeout-ms'], 'host-timeout-ms', 0, 100);

const reports: ChaosReport[] = [];
for (const transport of transports as TransportName[]) {
  // Locally two lanes keep both cores busy (the host script is fork-bound); remote transports
  // mostly wait on their stand-ins, one lane each keeps their timings plain.
  const lanes = integer(values.lanes, 'lanes', transport === 'local' ? 2 : 1, 1);
  // Without --verbose, one progress line on stderr every 10 runs (long campaigns take minutes).
  let done = 0;
  const log = values.verbose
    ? (line: string) => process.stderr.write(`${line}\n`)
    : (line: string) => {
        if (/^run \d+:/.test(line) && ++done % 10 === 0) process.stderr.write(`chaos ${transport}: ${done}/${only === undefined ? runs : 1} runs\n`);
      };
  const report = await runChaos({ transport, runs, seed, lanes, only, from, hostTimeoutMs, log });
  reports.push(report);
  if (values.save) {
    const dir = join(fileURLToPath(new URL('../../bench/results', import.meta.url)));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `chaos-${transport}.json`), JSON.stringify({ at: new Date().toISOString(), ...report }, null, 2) + '\n');
  }
  if (!values.json) {
    process.stdout.write(`${summaryLine(report)}\n`);
    const documented = Object.entries(report.documented).map(([k, n]) => `${k}: ${n}`).join('; ');
    if (documented) process.stdout.write(`  documented outcomes (not violations): ${documented}\n`);
    if (report.windows.measured) {
      process.stdout.write(`  reader windows: ${report.windows.measured} upgrades/rollbacks of a live plugin measured, ${report.windows.withAbsence} saw live absent (${report.windows.absentReads} of ${report.windows.reads} reads)\n`);
    }
    if (report.anomalies.length) {
      const kinds = new Map<string, number>();
      for (const a of report.anomalies) kinds.set(a.kind, (kinds.get(a.kind) ?? 0) + 1);
      process.stdout.write(`  anomalies (reported, not violations): ${[...kinds].map(([k, n]) => `${k}: ${n}`).join('; ')}\n`);
      // The same anomaly of one operation (a step timing out on every retry) once, counted.
      const seen = new Map<string, number>();
      for (const a of report.anomalies) {
        const line = `seed ${a.seed} run ${a.run} op ${a.op} [${a.operation}; ${a.fault}]: ${a.description}`;
        seen.set(line, (seen.get(line) ?? 0) + 1);
      }
      for (const [line, n] of [...seen].slice(0, values.verbose ? undefined : 6)) process.stdout.write(`    ${line}${n > 1 ? ` (×${n})` : ''}\n`);
    }
    for (const i of INVARIANTS) {
      const vs = report.violations.filter((v) => v.invariant === i);
      if (!vs.length) continue;
      process.stdout.write(`  invariant ${i} (${INVARIANT_TITLES[i]}): ${vs.length}\n`);
      for (const v of vs.slice(0, values.verbose ? vs.length : 8)) {
        process.stdout.write(`    seed ${v.seed} run ${v.run} op ${v.op} [${v.operation}; ${v.fault}]: ${v.description}\n`);
      }
      if (!values.verbose && vs.length > 8) process.stdout.write(`    … ${vs.length - 8} more (--verbose or --json for all)\n`);
    }
  }
}
if (values.json) process.stdout.write(JSON.stringify(reports.length === 1 ? reports[0] : reports, null, 2) + '\n');
process.exit(reports.some((r) => r.violations.length > 0) ? 1 : 0);
