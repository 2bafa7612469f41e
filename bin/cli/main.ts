/**
 * pluginctl: install, roll back, uninstall and list plugins on embedded (local) workspaces, by
 * running the same workflows and handlers as the AWS deployment. Commands, flags, exit codes and
 * the --json shape are a contract (README, "pluginctl").
 */
import { Command, CommanderError, Option } from 'commander';
// Only what every command needs is imported here; each action imports its own modules (the
// workflow engine, tar, YAML, ...) when it runs, so `pluginctl --help` loads none of them.
import type { LocalDeps } from '../../lambdas/commons/local-deps.ts';
import { PluginError } from '../../lambdas/core/errors.ts';
import { executionName } from '../../lambdas/core/execution-name.ts';
import { assertPluginName, assertSha256, assertWorkspaceId } from '../../lambdas/core/names.ts';
import { assertRuntime, RUNTIMES, type Runtime } from '../../lambdas/core/runtimes.ts';
import { newStamp } from '../../lambdas/core/stamp.ts';
import { assertKeep, DEFAULT_STAGING_OLDER_THAN_MS, formatDuration, parseDuration, sweepRules } from '../../lambdas/core/sweep/sweep-rules.ts';
import type { WorkspaceSweepSummary } from '../../lambdas/core/sweep/workspace-sweep.ts';
import type { InstallPlan } from '../../lambdas/core/steps/step-payloads.ts';
import { EXIT, statusOfError } from './exit-codes.ts';
import { packageVersion } from './version.ts';
import type { OperationReport } from './run-operation.ts';
import { assertServeToken } from './serve-token.ts';
import { sweepJson, sweepRefusalJson } from './sweep-json.ts';
import { addWorkspaceCommands } from './workspace-commands.ts';
import { rolloutRefusalJson } from './rollout-refusal-json.ts';
import { forgetRefusedWorkspace, workspaceForInstall } from './install-workspace.ts';
import { DEFAULT_CANARY, DEFAULT_MAX_CONCURRENCY, MAX_CANARY, MAX_CONCURRENCY } from '../../lambdas/core/rollout/rollout-limits.ts';

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** False when `out` is not the process's stdout (tests): no terminal progress line then. */
  tty?: boolean;
}

function retryDelayFromEnv(): number | undefined {
  const v = process.env.PLUGINCTL_RETRY_DELAY_MS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

async function liveDescription(deps: LocalDeps, workspace: string, plugin: string): Promise<Pick<OperationReport, 'plugin' | 'version' | 'sha256'>> {
  const { listPlugins } = await import('../../lambdas/core/steps/list-plugins.ts');
  const listing = await listPlugins(deps, workspace);
  const live = listing.plugins.find((p) => p.name === plugin);
  return { plugin, version: live?.version ?? null, sha256: live?.sha256 ?? null };
}

/**
 * Reports a refusal that happens before any workflow starts (usage, names, workspace): the
 * message and its hint on stderr, always; with --json also the contract's object on stdout.
 */
function refuse(io: Io, json: boolean, err: PluginError, argv: string[]): number {
  const mapped = statusOfError(err.code, false);
  if (json) {
    // Each command's --json refusal has the shape of that command's report.
    const command = commandOf(argv);
    const report =
      command === 'sweep'
        ? sweepRefusalJson(argv, err)
        : command === 'rollout'
          ? rolloutRefusalJson(mapped.status, rolloutIdOf(argv), err)
          : command === 'publish'
            ? { status: mapped.status, plugin: null, version: null, sha256: null, catalog: null, key: null, error: err.toJSON() }
            : { status: mapped.status, workspace: null, plugin: null, version: null, sha256: null, stamp: null, execution: null, steps: [], error: err.toJSON() };
    io.out(JSON.stringify(report) + '\n');
  }
  io.err(refusalText(err));
  return mapped.exit;
}

/** The absolute path of an existing directory an option names; refused (exit 2) otherwise. */
async function assertDirectory(path: string, option: string): Promise<string> {
  const { realpath, stat } = await import('node:fs/promises');
  const isDir = await stat(path).then((s) => s.isDirectory(), () => false);
  if (!isDir) throw new PluginError('InvalidInput', `${option} ${JSON.stringify(path)} is not a directory`, `give ${option} an existing directory holding the plugin sources to serve`);
  return realpath(path);
}

function refusalText(err: PluginError): string {
  return `pluginctl: ${err.message}\n${err.hint ? `  hint: ${err.hint}\n` : ''}`;
}

function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** `pluginctl sweep` for a person: what the rules were, one row per workspace, what a dry run would delete. */
function sweepTable(summary: WorkspaceSweepSummary, olderThan: string, keep: number, file: string): string {
  let text = `pluginctl sweep: snapshots and failed installs older than ${olderThan} (keeping the newest ${keep} snapshot${keep === 1 ? '' : 's'} of each plugin), staging older than ${formatDuration(DEFAULT_STAGING_OLDER_THAN_MS)}, expired locks${summary.dryRun ? ' — dry run, nothing deleted' : ''}\n`;
  if (summary.hosts.length === 0) return `${text}no workspaces registered in ${file}\n`;
  const rows = [['WORKSPACE', 'PREVIOUS', 'STAGING', 'FAILED', 'LOCKS', summary.dryRun ? 'WOULD FREE' : 'FREED']];
  for (const h of summary.hosts) {
    if (h.error) rows.push([h.workspace, '-', '-', '-', '-', `FAILED (${h.error.code})`]);
    else rows.push([h.workspace, String(h.counts.previous), String(h.counts.staging), String(h.counts.failed), String(h.counts.locks), humanBytes(h.bytes)]);
  }
  const t = summary.totals;
  rows.push(['TOTAL', String(t.counts.previous), String(t.counts.staging), String(t.counts.failed), String(t.counts.locks), humanBytes(t.bytes)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) text += r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  if (summary.dryRun) {
    for (const h of summary.hosts) {
      for (const d of h.deleted ?? []) text += `would delete ${h.workspace}: ${d.path} (${humanBytes(d.bytes)})\n`;
    }
  }
  return text;
}

/** The command argv runs (its first word after the program's own options), if any. */
function commandOf(argv: string[]): string | undefined {
  return argv.slice(2).find((a) => !a.startsWith('-'));
}

/** `--rollout-id` as given, for a refused rollout's report (null when absent). */
function rolloutIdOf(argv: string[]): string | null {
  const i = argv.lastIndexOf('--rollout-id');
  const eq = argv.findLast((a) => a.startsWith('--rollout-id='));
  return i >= 0 && i + 1 < argv.length ? argv[i + 1]! : eq ? eq.slice('--rollout-id='.length) : null;
}

/** `pluginctl <command>` when argv names one of its commands, else `pluginctl`: where the help for a usage error is. */
function usageOf(program: Command, argv: string[]): string {
  const command = commandOf(argv);
  return command !== undefined && program.commands.some((c) => c.name() === command) ? `pluginctl ${command}` : 'pluginctl';
}

export async function main(argv: string[], io: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), tty: true }): Promise<number> {
  const json = argv.includes('--json');
  let exitCode: number = EXIT.ok;
  const program = new Command('pluginctl')
    .description('Atomic, reversible plugin installs into workspaces (embedded mode: no AWS account needed).\nState lives under $PLUGINCTL_HOME (default ./.pluginctl).')
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .exitOverride()
    // A usage error is reported once, by `refuse` below (message and hint), not by commander too.
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: () => undefined });

  program
    .command('install')
    .description('install a plugin: a directory, a .tar.gz, or local://name[@version] from the catalog')
    .argument('<source>', 'plugin directory, .tar.gz file, or local://name[@version]')
    .requiredOption('--workspace <id>', 'workspace to install into (registered on first use, see pluginctl workspace add)')
    .addOption(new Option('--runtime <rt>', 'workspace runtime, used when the workspace is created').choices([...RUNTIMES]))
    .option('--sha256 <hex>', 'refuse the source unless its tarball has this SHA-256')
    .option('--json', 'print one JSON object instead of progress lines')
    .action(async (source: string, opts: { workspace: string; runtime?: string; sha256?: string; json?: boolean }) => {
      const [{ localDepsFromEnv }, { pluginNameForExecution }, { runOperation }] = await Promise.all([
        import('../../lambdas/commons/local-deps.ts'),
        import('../../lambdas/core/sources/name-hint.ts'),
        import('./run-operation.ts'),
      ]);
      const deps = localDepsFromEnv();
      const workspace = assertWorkspaceId(opts.workspace);
      const runtime: Runtime | undefined = opts.runtime ? assertRuntime(opts.runtime) : undefined;
      const sha256 = opts.sha256 ? assertSha256(opts.sha256.toLowerCase()) : null;
      const { ws, created } = await workspaceForInstall(deps, workspace, runtime);
      const stamp = newStamp(deps.clock());
      const execution = executionName(workspace, await pluginNameForExecution(source), stamp);
      if (!opts.json) io.out(`pluginctl install ${source} → workspace ${workspace} (${ws.runtime})\n`);
      const { exit } = await runOperation({
        workflow: 'install',
        input: { workspace, source, sha256, runtime: runtime ?? null, stamp },
        executionName: execution,
        deps,
        json: Boolean(opts.json),
        write: io.out,
        writeErr: io.err,
        retryDelayMs: retryDelayFromEnv(),
        describe: async (outputs) => {
          const plan = (outputs.Prepare as { plan?: InstallPlan } | undefined)?.plan;
          return { plugin: plan?.plugin ?? null, version: plan?.version ?? null, sha256: plan?.sha256 ?? null };
        },
        successLine: (r, ms) =>
          `installed ${r.plugin} ${r.version} on ${workspace} in ${ms} ms (sha256 ${r.sha256?.slice(0, 12)}…)\n  live: ${deps.hosts(ws).root}/${r.plugin}`,
      });
      // A refused install leaves no workspace behind: one this install registered is unregistered.
      if (created && exit === EXIT.refused) await forgetRefusedWorkspace(deps, ws);
      exitCode = exit;
    });

  for (const [command, workflow, verb, description] of [
    ['rollback', 'rollback', 'rolled back', 'restore the newest snapshot of a plugin (run again to undo)'],
    ['uninstall', 'uninstall', 'uninstalled', 'remove a plugin (kept as a snapshot, so rollback brings it back)'],
  ] as const) {
    program
      .command(command)
      .description(description)
      .argument('<name>', 'plugin name')
      .requiredOption('--workspace <id>', 'workspace')
      .option('--json', 'print one JSON object instead of progress lines')
      .action(async (name: string, opts: { workspace: string; json?: boolean }) => {
        const [{ localDepsFromEnv }, { runOperation }] = await Promise.all([import('../../lambdas/commons/local-deps.ts'), import('./run-operation.ts')]);
        const deps = localDepsFromEnv();
        const workspace = assertWorkspaceId(opts.workspace);
        const plugin = assertPluginName(name);
        const found = await deps.workspaces.lookup(workspace);
        if (found.status === 'not-found') throw new PluginError('WorkspaceNotFound', `workspace ${workspace} does not exist`, 'install a plugin into it first, or check the id');
        const stamp = newStamp(deps.clock());
        if (!opts.json) io.out(`pluginctl ${command} ${plugin} on workspace ${workspace}\n`);
        const { exit } = await runOperation({
          workflow,
          input: { workspace, plugin, stamp },
          executionName: executionName(workspace, plugin, stamp),
          deps,
          json: Boolean(opts.json),
          write: io.out,
          writeErr: io.err,
          retryDelayMs: retryDelayFromEnv(),
          describe: () => liveDescription(deps, workspace, plugin),
          successLine: (r, ms) => `${verb} ${plugin} on ${workspace} in ${ms} ms${r.version ? `: live is now ${r.version} (sha256 ${r.sha256?.slice(0, 12)}…)` : ''}`,
        });
        exitCode = exit;
      });
  }

  program
    .command('rollout')
    .description('install a plugin version on many workspaces: canary first, then at most N at once, halting when failures exceed --max-errors')
    .argument('<source>', 'plugin directory, .tar.gz file, or local://name[@version]')
    .option('--workspaces <ids>', 'comma-separated workspace ids')
    .option('--all', 'every workspace in the workspace directory')
    .option('--max-concurrency <n>', `installs in flight at once (1-${MAX_CONCURRENCY})`, String(DEFAULT_MAX_CONCURRENCY))
    .option('--max-errors <n|p%>', 'failures tolerated before the rollout halts: a count or a percentage of the targets', '0')
    .option('--canary <n>', `how many go first, alone; a failure among them halts the rollout (1-${MAX_CANARY})`, String(DEFAULT_CANARY))
    .option('--rollback-on-halt', 'when the rollout halts, put the workspaces it upgraded back to what they had')
    .option('--rollout-id <id>', 'name the rollout (default: generated); the same id again finishes what is left')
    .option('--json', 'print one JSON object instead of progress lines')
    .action(async (source: string, opts: { workspaces?: string; all?: boolean; maxConcurrency: string; maxErrors: string; canary: string; rollbackOnHalt?: boolean; rolloutId?: string; json?: boolean }) => {
      if (Boolean(opts.workspaces) === Boolean(opts.all)) {
        throw new PluginError('InvalidInput', opts.all ? 'give either --workspaces or --all, not both' : 'name the targets: --workspaces <id,id,…> or --all', 'pluginctl rollout <source> (--workspaces <id,id,…> | --all)');
      }
      const int = (text: string, flag: string, max: number) => {
        if (!/^[0-9]{1,6}$/.test(text) || Number(text) < 1 || Number(text) > max) throw new PluginError('InvalidInput', `invalid ${flag} ${JSON.stringify(text.slice(0, 20))}`, `give ${flag} a whole number from 1 to ${max}`);
        return Number(text);
      };
      const [{ localDepsFromEnv }, { parseWorkspaceList, runRollout }, { checkRolloutRequest, newRolloutId }] = await Promise.all([
        import('../../lambdas/commons/local-deps.ts'),
        import('./run-rollout.ts'),
        import('../../lambdas/core/rollout/rollout-request.ts'),
      ]);
      const deps = localDepsFromEnv();
      const request = checkRolloutRequest({
        rolloutId: opts.rolloutId ?? newRolloutId(deps.clock()),
        source,
        sha256: null,
        targets: opts.all ? { all: true } : { workspaces: parseWorkspaceList(opts.workspaces!).map(assertWorkspaceId) },
        maxConcurrency: int(opts.maxConcurrency, '--max-concurrency', MAX_CONCURRENCY),
        maxErrors: opts.maxErrors,
        canary: int(opts.canary, '--canary', MAX_CANARY),
        rollbackOnHalt: Boolean(opts.rollbackOnHalt),
      });
      exitCode = await runRollout({ deps, request, json: Boolean(opts.json), out: io.out, err: io.err, tty: Boolean(process.stdout.isTTY) && !opts.json && io.tty !== false, retryDelayMs: retryDelayFromEnv() });
    });

  addWorkspaceCommands(program, io, (code) => (exitCode = code));

  program
    .command('publish')
    .description('validate a plugin and put it into the catalog local:// names (an S3 bucket\'s catalog/ with --bucket, else $PLUGINCTL_CATALOG)')
    .argument('<source>', 'plugin directory, .tar.gz file, or local://name[@version]')
    .option('--bucket <name>', 'the AWS deployment\'s artifact bucket: s3://<name>/catalog/<plugin>/<version>.tar.gz')
    .option('--json', 'print one JSON object')
    .action(async (source: string, opts: { bucket?: string; json?: boolean }) => {
      const { runPublish } = await import('./publish.ts');
      exitCode = await runPublish({ source, bucket: opts.bucket, json: Boolean(opts.json), out: io.out, err: io.err });
    });

  program
    .command('list')
    .description('list installed plugins with version, sha256, install time and completeness')
    .requiredOption('--workspace <id>', 'workspace')
    .option('--json', 'print one JSON object')
    .action(async (opts: { workspace: string; json?: boolean }) => {
      const [{ localDepsFromEnv }, { listPlugins }] = await Promise.all([import('../../lambdas/commons/local-deps.ts'), import('../../lambdas/core/steps/list-plugins.ts')]);
      const deps = localDepsFromEnv();
      const workspace = assertWorkspaceId(opts.workspace);
      const listing = await listPlugins(deps, workspace);
      if (opts.json) {
        const plugins = listing.plugins.map(({ name, version, sha256, installedAt, complete }) => ({ name, version, sha256, installedAt, complete }));
        io.out(JSON.stringify({ workspace, plugins, degraded: listing.degraded }) + '\n');
        return;
      }
      if (listing.degraded) io.out(`(degraded: ${listing.reason ?? 'host unreachable'})\n`);
      if (listing.plugins.length === 0) {
        io.out(`no plugins installed on ${workspace}\n`);
        return;
      }
      const rows = [['NAME', 'VERSION', 'COMPLETE', 'INSTALLED', 'SHA256']];
      for (const p of listing.plugins) {
        rows.push([p.name, p.version ?? '-', p.complete ? 'yes' : 'NO', p.installedAt ?? '-', p.sha256 ? `${p.sha256.slice(0, 12)}…` : '-']);
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) io.out(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n');
    });

  program
    .command('sweep')
    .description('delete old snapshots, abandoned staging, old failed installs and expired locks on every workspace (never a live plugin)')
    .option('--older-than <duration>', 'snapshots and failed installs older than this go: 7d, 12h, 30m, 45s, 0s', '7d')
    .option('--keep <n>', 'always keep the newest n snapshots of each plugin', '1')
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('--json', 'print one JSON object')
    .action(async (opts: { olderThan: string; keep: string; dryRun?: boolean; json?: boolean }) => {
      const olderThanMs = parseDuration(opts.olderThan);
      const keepNewest = assertKeep(opts.keep);
      const [{ localDepsFromEnv }, { sweepWorkspaces }] = await Promise.all([import('../../lambdas/commons/local-deps.ts'), import('../../lambdas/core/sweep/workspace-sweep.ts')]);
      const deps = localDepsFromEnv();
      const rules = sweepRules({ now: deps.clock(), olderThanMs, keepNewest, dryRun: Boolean(opts.dryRun) });
      const summary = await sweepWorkspaces(deps, rules);
      const failed = summary.hosts.filter((h) => h.error);
      if (opts.json) {
        io.out(JSON.stringify(sweepJson(summary, opts.olderThan, keepNewest)) + '\n');
      } else {
        io.out(sweepTable(summary, opts.olderThan, keepNewest, deps.workspaces.file));
      }
      // On stderr with --json too, as every failure is.
      for (const h of failed) io.err(`pluginctl: sweep of workspace ${h.workspace} failed: ${h.error!.code}: ${h.error!.message}\n${h.error!.hint ? `  hint: ${h.error!.hint}\n` : ''}`);
      // 3: some workspace failed (the others were swept); the report names which.
      if (failed.length) exitCode = EXIT.rolledBack;
    });

  program
    .command('serve')
    .description('serve the HTTP API on localhost (same routes as API Gateway); needs PLUGINCTL_TOKEN')
    .option('--port <n>', 'port to listen on (0 picks a free one)', '8787')
    .option('--sources-dir <dir>', 'serve filesystem path sources under this directory only (default: none; local:// catalog sources always)')
    .action(async (opts: { port: string; sourcesDir?: string }) => {
      const token = assertServeToken(process.env.PLUGINCTL_TOKEN);
      const port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new PluginError('InvalidInput', `invalid port ${JSON.stringify(opts.port)}`, 'use 0-65535');
      const [{ startServer }, { localDepsFromEnv }] = await Promise.all([import('./serve.ts'), import('../../lambdas/commons/local-deps.ts')]);
      const deps = localDepsFromEnv();
      const sourcesDir = opts.sourcesDir === undefined ? undefined : await assertDirectory(opts.sourcesDir, '--sources-dir');
      const running = await startServer({
        home: deps.home,
        catalogDir: deps.catalog.dir,
        sourcesDir,
        leaseSeconds: deps.leaseSeconds,
        token,
        port,
        retryDelayMs: retryDelayFromEnv(),
        log: (line) => io.err(`${new Date().toISOString()} ${line}\n`),
      });
      io.out(`pluginctl serve: listening on ${running.url} (state in ${deps.home}); Ctrl-C to stop\n`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await running.close();
    });

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return refuse(io, json, new PluginError('InvalidInput', err.message.replace(/^error: /, ''), `see ${usageOf(program, argv)} --help`), argv);
    }
    if (err instanceof PluginError) return refuse(io, json, err, argv);
    throw err;
  }
}
