/**
 * `pluginctl sweep --json`: one object of one shape, whether the sweep ran or was refused
 * (README, "Sweep"): `{dryRun, olderThan, keepNewest, hosts, totals, error?}`. A refusal has no
 * hosts, zero totals and `error`; `olderThan`/`keepNewest` say what was asked (null when absent
 * or not valid), so a script reads every outcome the same way.
 */
import type { PluginError } from '../../lambdas/core/errors.ts';
import { assertKeep } from '../../lambdas/core/sweep/sweep-rules.ts';
import { zeroCounts } from '../../lambdas/core/sweep/sweep-counts.ts';
import type { WorkspaceSweepSummary } from '../../lambdas/core/sweep/workspace-sweep.ts';

export interface SweepJson {
  dryRun: boolean;
  olderThan: string | null;
  keepNewest: number | null;
  hosts: WorkspaceSweepSummary['hosts'];
  totals: WorkspaceSweepSummary['totals'];
  error?: { code: string; message: string; hint: string };
}

export function sweepJson(summary: WorkspaceSweepSummary, olderThan: string, keepNewest: number): SweepJson {
  return { dryRun: summary.dryRun, olderThan, keepNewest, hosts: summary.hosts, totals: summary.totals };
}

/** The value of `--flag v` or `--flag=v` in argv (the last one wins, as in commander), if any. */
function optionValue(args: string[], flag: string): string | undefined {
  let value: string | undefined;
  args.forEach((a, i) => {
    if (a === flag && i + 1 < args.length) value = args[i + 1];
    else if (a.startsWith(`${flag}=`)) value = a.slice(flag.length + 1);
  });
  return value;
}

/** The sweep-shaped refusal for `pluginctl sweep … --json`, from the raw argv (the parse may have failed). */
export function sweepRefusalJson(argv: string[], err: PluginError): SweepJson {
  const args = argv.slice(2);
  const keep = optionValue(args, '--keep') ?? '1';
  let keepNewest: number | null = null;
  try {
    keepNewest = assertKeep(keep);
  } catch {
    // Not a valid count: null says so, the error says why.
  }
  return {
    dryRun: args.includes('--dry-run'),
    olderThan: optionValue(args, '--older-than') ?? '7d',
    keepNewest,
    hosts: [],
    totals: { counts: zeroCounts(), bytes: 0 },
    error: err.toJSON(),
  };
}
