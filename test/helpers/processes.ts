/**
 * "The process is gone" as an outcome a test can wait for, instead of a stopwatch or a fixed
 * sleep: a health check whose children must be killed gives them a command line no other
 * process has (e.g. `sleep 613`), and the test waits until no process on the machine runs it.
 * /proc shows processes of every PID namespace (with their outer pids), so this also sees the
 * children of a check run under `unshare --pid`.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Pids of the live processes whose argv, joined with spaces, contains `token`. */
export function processesRunning(token: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue; // it exited while we looked
    }
    // A zombie has an empty cmdline: it is dead, only not reaped yet.
    if (cmdline !== '' && cmdline.split('\0').join(' ').includes(token)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Resolves once no process runs `token`; rejects naming the survivors after `deadlineMs`. The
 * deadline is generous (a loaded 2-core machine can take seconds to deliver a kill): it bounds
 * a failure, it does not measure speed, so the process under test must outlive it by far when
 * nothing kills it (sleep for minutes).
 */
export async function untilNoProcessRuns(token: string, deadlineMs = 60_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const pids = processesRunning(token);
    if (pids.length === 0) return;
    if (Date.now() > deadline) throw new Error(`still running after ${deadlineMs} ms: "${token}" (pids ${pids.join(', ')}): it was not killed`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A `sleep` command line no other process on the machine has (other test files and other
 * checkouts run beside this one): `sleep <seconds>.<random digits>`, which GNU and busybox
 * sleep both accept. Pass the same string to untilNoProcessRuns.
 */
export function uniqueSleep(seconds = 600): string {
  return `sleep ${seconds}.${String(Math.floor(Math.random() * 1e6)).padStart(6, '0')}`;
}
