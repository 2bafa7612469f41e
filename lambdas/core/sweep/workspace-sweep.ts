/**
 * Sweeps every workspace of a JSON workspace directory (the embedded default, `pluginctl sweep`):
 * one host-script `sweep` per workspace's plugins root, through the workspace's RemoteHost.
 * External workspaces have no host root and are left out.
 */
import { readFile } from 'node:fs/promises';
import { PluginError } from '../errors.ts';
import type { HostResolver } from '../host/host-resolver.ts';
import { HostSteps, type SweepReport, type SweepRules } from '../host/host-steps.ts';
import type { WorkspaceLookup } from '../workspaces/workspace-directory.ts';
import { addCounts, zeroCounts, type SweepCounts } from './sweep-counts.ts';

export interface WorkspaceSweepResult {
  workspace: string;
  counts: SweepCounts;
  bytes: number;
  /** What was deleted (or, dry run, would be), relative to the plugins root. */
  deleted?: SweepReport['deleted'];
  error?: { code: string; message: string; hint: string };
}

export interface WorkspaceSweepSummary {
  dryRun: boolean;
  hosts: WorkspaceSweepResult[];
  totals: { counts: SweepCounts; bytes: number };
}

export interface WorkspaceSweepDeps {
  /** The JSON directory: its file lists the workspaces, lookup() resolves each. */
  workspaces: { file: string; lookup(id: string): Promise<WorkspaceLookup> };
  hosts: HostResolver;
  hostTimeoutMs?: number;
}

/** Workspace ids registered in the directory file, sorted (none when the file does not exist). */
export async function registeredWorkspaces(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PluginError('InvalidInput', `${file} is not valid JSON`, 'fix or delete the file');
  }
  const workspaces = parsed && typeof parsed === 'object' ? (parsed as { workspaces?: unknown }).workspaces : undefined;
  if (!workspaces || typeof workspaces !== 'object' || Array.isArray(workspaces)) {
    throw new PluginError('InvalidInput', `${file} is not a valid workspace directory: no "workspaces" object`, 'fix or delete the file');
  }
  return Object.keys(workspaces).sort();
}

function toErrorJson(err: unknown): { code: string; message: string; hint: string } {
  if (err instanceof PluginError) return err.toJSON();
  return { code: 'HostStepFailed', message: err instanceof Error ? err.message : String(err), hint: 'see the message; the sweep can be run again safely' };
}

/** Sweeps each registered workspace in turn; a failing one is reported, the others still swept. */
export async function sweepWorkspaces(deps: WorkspaceSweepDeps, rules: SweepRules): Promise<WorkspaceSweepSummary> {
  const hosts: WorkspaceSweepResult[] = [];
  const totals = { counts: zeroCounts(), bytes: 0 };
  for (const id of await registeredWorkspaces(deps.workspaces.file)) {
    const found = await deps.workspaces.lookup(id);
    if (found.status === 'not-found' || !found.workspace) continue;
    // A stopped workspace's files are still there; only external workspaces have none of ours.
    if (found.workspace.runtime === 'external') continue;
    try {
      const report = await new HostSteps(deps.hosts(found.workspace), deps.hostTimeoutMs).sweep(rules);
      hosts.push({ workspace: id, counts: report.counts, bytes: report.bytes, deleted: report.deleted });
      addCounts(totals.counts, report.counts);
      totals.bytes += report.bytes;
    } catch (err) {
      hosts.push({ workspace: id, counts: zeroCounts(), bytes: 0, error: toErrorJson(err) });
    }
  }
  return { dryRun: rules.dryRun, hosts, totals };
}
