/**
 * Polls a live plugin directory until told to stop (a line on stdin), judging every read against
 * the known versions; prints one JSON summary line. Runs as its own process so its reads really
 * race the installer's renames.
 *   node --import tsx test/helpers/live-poller.ts <live-dir> <versions.json>
 */
import { readFileSync } from 'node:fs';
import { judgeLive, readTree, type Tree } from './live-tree.ts';

const [live, versionsFile] = process.argv.slice(2) as [string, string];
const versions = JSON.parse(readFileSync(versionsFile, 'utf8')) as Record<string, Tree>;
let stop = false;
process.stdin.on('data', () => (stop = true));

const counts = { reads: 0, absent: 0, whole: 0, marked: 0, mixed: 0, unreadable: 0 };
const problems: string[] = [];

function pollOnce(): void {
  counts.reads++;
  let tree: Tree | null;
  try {
    tree = readTree(live);
  } catch {
    // The directory was renamed away between opening and listing: that read saw nothing.
    counts.unreadable++;
    return;
  }
  const verdict = judgeLive(tree, versions);
  counts[verdict.state]++;
  if (verdict.markedVersion) counts.marked++;
  if (verdict.state === 'mixed' && problems.length < 5) problems.push(verdict.problem ?? 'mixed');
}

const loop = () => {
  if (stop) {
    process.stdout.write(JSON.stringify({ counts, problems }) + '\n');
    process.exit(0);
  }
  for (let i = 0; i < 20; i++) pollOnce();
  setImmediate(loop);
};
loop();
