/**
 * `npm run bench:startup` (`-- --iterations N`, default 15): what starting `pluginctl` costs, each
 * figure against a baseline measured in the same run, interleaved (one of each per round), on
 * the same Node binary (`process.execPath`: under npm scripts, the node@22 devDependency):
 *
 *   node -e 0                    baseline of `pluginctl --help` (goal: within 4x)
 *   pluginctl --help             `node bin/pluginctl.js --help`
 *   npx pluginctl --help         the same through npx (npm's own start-up on top; information)
 *   tar -xzf                     baseline of `pluginctl install` (goal: within 10x): the bench
 *                                plugin (1 MiB / 1,000 files, bench/common.ts) into a fresh directory
 *   pluginctl install            `node bin/pluginctl.js install <tgz> --workspace bench --json`,
 *                                a first install in a fresh PLUGINCTL_HOME
 *
 * Results: bench/results/startup.json and stdout (medians and the two goal ratios).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildTarball, fmt, gitState, machineInfo, REPO, RESULTS_DIR, round, stats, table, timedSpawn, VERSIONS } from './common.ts';

const CLI = join(REPO, 'bin', 'pluginctl.js');
const GOALS = { helpOverNode: 4, installOverTar: 10 } as const;

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '15' }, 'npx-iterations': { type: 'string', default: '5' } } });
const iterations = Number(values.iterations);
const npxIterations = Math.min(Number(values['npx-iterations']), iterations);
if (!Number.isInteger(iterations) || iterations < 1) throw new Error('--iterations: a whole number >= 1');

const loadStart = loadavg();
const scratch = await mkdtemp(join(tmpdir(), 'bench-startup-'));
const samples: Record<string, number[]> = { node: [], help: [], npxHelp: [], tar: [], install: [] };

async function ok(what: string, r: Awaited<ReturnType<typeof timedSpawn>>): Promise<number> {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stdout}${r.stderr}`);
  return r.ms;
}

try {
  const tgz = await buildTarball(scratch, VERSIONS[0]);
  const env = { ...process.env, NODE_NO_WARNINGS: undefined, PLUGINCTL_CATALOG: undefined };
  // One untimed round first: file-system caches warm for every command alike.
  for (let i = -1; i < iterations; i++) {
    const round: Record<string, number> = {};
    round.node = await ok('node -e 0', await timedSpawn(process.execPath, ['-e', '0']));
    round.help = await ok('pluginctl --help', await timedSpawn(process.execPath, [CLI, '--help'], { cwd: REPO }));
    if (i < npxIterations) round.npxHelp = await ok('npx pluginctl --help', await timedSpawn('npx', ['--no-install', 'pluginctl', '--help'], { cwd: REPO }));
    const dir = join(scratch, `tar-${i + 1}`);
    await mkdir(dir);
    round.tar = await ok('tar -xzf', await timedSpawn('tar', ['-xzf', tgz.path, '-C', dir]));
    const home = join(scratch, `home-${i + 1}`);
    round.install = await ok('pluginctl install', await timedSpawn(process.execPath, [CLI, 'install', tgz.path, '--workspace', 'bench', '--json'], { cwd: REPO, env: { ...env, PLUGINCTL_HOME: home } }));
    await Promise.all([rm(dir, { recursive: true, force: true }), rm(home, { recursive: true, force: true })]);
    if (i >= 0) for (const [k, v] of Object.entries(round)) samples[k]!.push(v);
  }

  const s = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, stats(v)]));
  const ratios = {
    helpOverNode: round(s.help!.median / s.node!.median),
    npxHelpOverNode: round(s.npxHelp!.median / s.node!.median),
    installOverTar: round(s.install!.median / s.tar!.median),
  };
  const result = {
    when: new Date().toISOString(),
    command: `npm run bench:startup -- --iterations ${iterations}`,
    machine: machineInfo(loadStart),
    git: gitState(),
    plugin: { bytes: tgz.bytes, sha256: tgz.sha256 },
    iterations,
    npxIterations,
    ms: s,
    ratios,
    goals: { helpOverNode: GOALS.helpOverNode, installOverTar: GOALS.installOverTar, met: ratios.helpOverNode <= GOALS.helpOverNode && ratios.installOverTar <= GOALS.installOverTar },
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'startup.json'), JSON.stringify(result, null, 2) + '\n');
  const row = (name: string, key: string, ratio: string) => [name, String(s[key]!.n), fmt(s[key]!.median), fmt(s[key]!.p90), fmt(s[key]!.min), ratio];
  process.stdout.write(
    `== start-up: pluginctl against node -e 0 and tar -xzf (${process.version}, load ${loadStart.map((x) => x.toFixed(1)).join(' ')}) ==\n` +
      table(
        [
          ['', 'n', 'median ms', 'p90', 'min', 'ratio'],
          row('node -e 0', 'node', '1.00'),
          row('pluginctl --help', 'help', `${ratios.helpOverNode.toFixed(2)} (goal <= ${GOALS.helpOverNode})`),
          row('npx pluginctl --help', 'npxHelp', ratios.npxHelpOverNode.toFixed(2)),
          row('tar -xzf', 'tar', '1.00'),
          row('pluginctl install', 'install', `${ratios.installOverTar.toFixed(2)} (goal <= ${GOALS.installOverTar})`),
        ],
        ['l', 'r', 'r', 'r', 'r', 'l'],
      ) +
      `\nresults: ${join(RESULTS_DIR, 'startup.json')}\n`,
  );
} finally {
  await rm(scratch, { recursive: true, force: true });
}
