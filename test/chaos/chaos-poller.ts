/**
 * The reader side of invariant 3, in its own process so its reads really race the installer's
 * renames: on `W <path>` it starts polling whether `<path>` exists (lstat, about every
 * millisecond, without reading anything an agent may have planted) and answers `w`; on `E` it
 * stops and answers one JSON line `{reads, absent}`. Idle between windows, so it costs no CPU
 * while nothing is measured.
 *   node --import tsx test/chaos/chaos-poller.ts
 */
import { lstatSync } from 'node:fs';
import { createInterface } from 'node:readline';

let path: string | null = null;
let counts = { reads: 0, absent: 0 };
let timer: NodeJS.Timeout | undefined;

function poll(): void {
  if (path === null) return;
  counts.reads++;
  try {
    lstatSync(path);
  } catch {
    counts.absent++;
  }
}

function loop(): void {
  for (let i = 0; i < 4; i++) poll();
  timer = path === null ? undefined : setTimeout(loop, 0);
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.startsWith('W ')) {
    path = line.slice(2);
    counts = { reads: 0, absent: 0 };
    poll();
    process.stdout.write('w\n');
    if (!timer) loop();
  } else if (line === 'E') {
    poll();
    const result = counts;
    path = null;
    if (timer) clearTimeout(timer);
    timer = undefined;
    process.stdout.write(JSON.stringify(result) + '\n');
  }
});
lines.on('close', () => process.exit(0));
