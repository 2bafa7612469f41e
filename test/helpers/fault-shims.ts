/**
 * Real fault injection for the host script: a directory of shims (`mv`, `rm`, `tar`, `perl`, `find`) put first on
 * the script's PATH. A shim fires only inside the chosen host operation (it reads the script's
 * argv from /proc), and then either fails (exit 1, doing nothing) or does the real work and
 * SIGKILLs the whole step (the step dies after its effect, before reporting it).
 *
 * The product script has no test hooks: the shims change the world it runs in.
 */
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostOp } from '../../lambdas/core/host/remote-host.ts';

export type FaultMode = 'fail' | 'kill' | 'kill-once' | 'fail-once';

export interface Fault {
  /** One operation, or several (space-separated in the shim's environment). */
  op: HostOp | HostOp[];
  command: 'mv' | 'rm' | 'tar' | 'perl' | 'find';
  mode: FaultMode;
}

/**
 * Which command each mutating operation's decisive action uses when a version is live: `swap`
 * (and the exchange back in `rollback`) is renameat2(RENAME_EXCHANGE) through perl on this
 * machine (docs/host-layout.md); a first install's swap is a plain `mv`. `verify` asks `find` what
 * plugin.yaml is (its first built-in check).
 */
export const DECISIVE_COMMAND: Partial<Record<HostOp, Fault['command']>> = {
  lock: 'mv',
  stage: 'tar',
  snapshot: 'mv',
  swap: 'perl',
  verify: 'find',
  mark: 'mv',
  unlock: 'rm',
  rollback: 'perl',
  restore: 'mv',
  uninstall: 'mv',
};

const REAL = { mv: '/bin/mv', rm: '/bin/rm', tar: '/bin/tar', perl: '/usr/bin/perl', find: '/usr/bin/find' } as const;

function shimText(command: keyof typeof REAL): string {
  return `#!/bin/sh
# Test shim for ${command}: see test/helpers/fault-shims.ts
op=$(tr '\\0' '\\n' < /proc/$PPID/cmdline 2>/dev/null | sed -n 3p)
case " $FAULT_OP " in *" $op "*) match=1 ;; *) match=0 ;; esac
if [ "$FAULT_CMD" = ${command} ] && [ "$match" = 1 ]; then
  case $FAULT_MODE in
    fail-once|kill-once) if [ -e "$FAULT_DIR/fired" ]; then exec ${REAL[command]} "$@"; fi; : > "$FAULT_DIR/fired" ;;
  esac
  case $FAULT_MODE in
    fail|fail-once) echo "injected failure of ${command} in $op" >&2; exit 1 ;;
    kill|kill-once)
      ${REAL[command]} "$@"
      read -r _ _ _ _ pgid _ < /proc/$$/stat
      kill -KILL "-$pgid"
      exit 137 ;;
  esac
fi
exec ${REAL[command]} "$@"
`;
}

export interface ShimDir {
  env: Record<string, string>;
  cleanup(): void;
}

export function faultShims(fault: Fault): ShimDir {
  const dir = mkdtempSync(join(tmpdir(), 'fault-shims-'));
  for (const command of Object.keys(REAL) as (keyof typeof REAL)[]) {
    writeFileSync(join(dir, command), shimText(command));
    chmodSync(join(dir, command), 0o755);
  }
  return {
    env: {
      PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      FAULT_CMD: fault.command,
      FAULT_OP: ([] as HostOp[]).concat(fault.op).join(' '),
      FAULT_MODE: fault.mode,
      FAULT_DIR: dir,
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
