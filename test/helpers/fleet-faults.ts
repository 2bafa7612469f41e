/**
 * Host faults for some workspaces of a fleet: an `mv` shim first on the host script's PATH that
 * fails (exit 1, doing nothing) inside one host operation, and only on the workspaces whose
 * plugins root is listed in a file. Emptying the file "repairs" those hosts. The product script
 * has no test hooks: the shim changes the world it runs in (as fault-shims.ts does).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostOp } from '../../lambdas/core/host/remote-host.ts';

export interface FleetFaults {
  /** Environment for the process that runs the host script (pluginctl, or the test itself). */
  env: Record<string, string>;
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
  writeFileSync(join(dir, 'mv'), `#!/bin/sh
# Test shim for mv: see test/helpers/fleet-faults.ts
op=$(tr '\\0' '\\n' < /proc/$PPID/cmdline 2>/dev/null | sed -n 3p)
root=$(tr '\\0' '\\n' < /proc/$PPID/cmdline 2>/dev/null | sed -n 4p)
if [ "$op" = "$FLEET_FAULT_OP" ] && [ -n "$root" ] && grep -qxF -- "$root" "$FLEET_FAULT_ROOTS"; then
  echo "injected failure of mv in $op on $root" >&2
  exit 1
fi
exec /bin/mv "$@"
`);
  chmodSync(join(dir, 'mv'), 0o755);
  return {
    env: { PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`, FLEET_FAULT_OP: op, FLEET_FAULT_ROOTS: list },
    breakRoots: (roots) => writeFileSync(list, roots.map((r) => `${r}\n`).join('')),
    repair: () => writeFileSync(list, ''),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
