/**
 * Host faults for some workspaces of a fleet: an `mv` shim first on the host script's PATH that
 * fails (exit 1, doing nothing) inside one host operation, and only on the workspaces whose
 * plugins root is listed in a file (as the script sees it: over SSM and EIC, the host's path). Emptying the file "repairs" those hosts. The product script
 * has no test hooks: the shim changes the world it runs in (as fault-shims.ts does).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostOp } from '../../lambdas/core/host/remote-host.ts';

export interface FleetFaults {
  /** Environment for the process that runs the host script (pluginctl, the test itself, an SSM stand-in instance). */
  env: Record<string, string>;
  /**
   * The EIC adapter's privilege prefix that puts the same environment on the host script (sudo
   * resets the environment; `env` after it sets it again, as root).
   */
  privilege: string;
  /** Makes these plugins roots fail from now on. */
  breakRoots(roots: string[]): void;
  /** Repairs every host. */
  repair(): void;
  cleanup(): void;
}

export function fleetFaults(op: HostOp): FleetFaults {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-faults-'));
  const list = join(dir, 'broken-roots');
  writeFileSync(list, '');
  // The script's operation and plugins root are the two arguments after its own name in its
  // argv: `sh /…/plugin-host.sh <op> <root> …` locally and over SSM, `sh -c '<script text>'
  // plugin-host.sh <op> <root> …` over EIC (the script text spans lines, hence perl on the NULs).
  writeFileSync(join(dir, 'mv'), `#!/bin/sh
# Test shim for mv: see test/helpers/fleet-faults.ts
args=$(perl -e 'open(my $f, "<", "/proc/$ARGV[0]/cmdline") or exit; local $/; my @a = split(/\\0/, <$f>); for my $i (0 .. $#a - 2) { if ($a[$i] =~ m{(?:^|/)plugin-host\\.sh\\z}) { print "$a[$i + 1]\\n$a[$i + 2]\\n"; exit } }' "$PPID" 2>/dev/null)
op=$(printf '%s\\n' "$args" | sed -n 1p)
root=$(printf '%s\\n' "$args" | sed -n 2p)
if [ "$op" = "$FLEET_FAULT_OP" ] && [ -n "$root" ] && grep -qxF -- "$root" "$FLEET_FAULT_ROOTS"; then
  echo "injected failure of mv in $op on $root" >&2
  exit 1
fi
exec /bin/mv "$@"
`);
  chmodSync(join(dir, 'mv'), 0o755);
  const env = { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`, FLEET_FAULT_OP: op, FLEET_FAULT_ROOTS: list };
  return {
    env,
    privilege: `sudo -n env PATH=${dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin FLEET_FAULT_OP=${op} FLEET_FAULT_ROOTS=${list}`,
    breakRoots: (roots) => writeFileSync(list, roots.map((r) => `${r}\n`).join('')),
    repair: () => writeFileSync(list, ''),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
