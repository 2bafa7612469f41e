/**
 * Command shims for the chaos runner (a generalisation of fault-shims.ts): `mv`, `rm`, `tar`,
 * `mkdir`, `chown` and `perl` (the exchange) first on the host script's PATH. Each shim finds the host operation it
 * runs in from its parent's argv, for both ways the script is started:
 *   local, SSM:  sh /…/plugin-host.sh <op> …                  (argv[1] ends in plugin-host.sh;
 *                                                             SSM: unpacked by the document)
 *   EIC:         sh -c '<script text>' plugin-host.sh <op> …   (argv[3] is plugin-host.sh)
 * and applies the first armed rule `op:command:mode` (space-separated in FAULT_SPEC) that
 * matches:
 *   fail, fail-once   exit 1 without doing anything ("once": only the first time it matches)
 *   kill, kill-once   do the real work, then SIGKILL the step's whole process group
 *   enospc            (tar) extract, then lose the second half of the files and truncate the
 *                     last one kept, report "No space left on device" and exit 2, as GNU tar
 *                     does when the disk fills up mid-extraction
 * Every firing appends a line to `$FAULT_STATE.<rule index>`, so the runner can tell an armed
 * fault from one that fired. The product script has no test hooks: the shims change its world.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostOp } from '../../lambdas/core/host/remote-host.ts';

export const SHIM_COMMANDS = ['mv', 'rm', 'tar', 'mkdir', 'chown', 'perl'] as const;
export type ShimCommand = (typeof SHIM_COMMANDS)[number];
export type ShimMode = 'fail' | 'fail-once' | 'kill' | 'kill-once' | 'enospc';

export interface ArmedRule {
  op: HostOp;
  command: ShimCommand;
  mode: ShimMode;
}

function shimText(command: ShimCommand): string {
  const real = `/bin/${command}`;
  return `#!/bin/sh
# Chaos shim for ${command}: see test/helpers/chaos-shims.ts
case " \${FAULT_CMDS:-} " in *" ${command} "*) ;; *) exec ${real} "$@" ;; esac
op=$(tr '\\0\\n' '\\n\\001' < /proc/$PPID/cmdline 2>/dev/null | sed -n -e '2{' -e '/plugin-host\\.sh$/{' -e n -e p -e q -e '}' -e '}' -e '4{' -e '/^plugin-host\\.sh$/{' -e n -e p -e q -e '}' -e '}')
i=0
for rule in \${FAULT_SPEC:-}; do
  i=$((i + 1))
  r_op=\${rule%%:*}
  rest=\${rule#*:}
  r_cmd=\${rest%%:*}
  r_mode=\${rest#*:}
  [ "$r_op" = "$op" ] && [ "$r_cmd" = ${command} ] || continue
  case $r_mode in
    *-once) if [ -e "$FAULT_STATE.$i" ]; then exec ${real} "$@"; fi ;;
  esac
  echo "$op ${command} $r_mode" >>"$FAULT_STATE.$i"
  case $r_mode in
    fail | fail-once)
      echo "chaos: injected failure of ${command} in $op" >&2
      exit 1
      ;;
    kill | kill-once)
      ${real} "$@"
      read -r _ _ _ _ pgid _ </proc/$$/stat
      kill -KILL "-$pgid"
      exit 137
      ;;
    enospc)
      dir=
      prev=
      for a in "$@"; do
        [ "$prev" = -C ] && dir=$a
        prev=$a
      done
      ${real} "$@" 2>/dev/null
      if [ -n "$dir" ] && [ -d "$dir" ]; then
        n=$(find "$dir" -type f | wc -l)
        keep=$((n / 2))
        k=0
        find "$dir" -type f | sort | while IFS= read -r f; do
          k=$((k + 1))
          if [ "$k" -gt "$keep" ]; then /bin/rm -f "$f"; elif [ "$k" -eq "$keep" ]; then : >"$f"; fi
        done
      fi
      echo "tar: skills/s1/file-1.md: Cannot write: No space left on device" >&2
      echo "tar: Exiting with failure status due to previous errors" >&2
      exit 2
      ;;
  esac
done
exec ${real} "$@"
`;
}

export interface Armed {
  /** Environment for the host script (PATH first, then the rules). */
  env: Record<string, string>;
  /** How many times each rule fired so far. */
  fired(): number[];
  /** Forgets the firings (the state files). */
  disarm(): void;
}

export interface ChaosShims {
  dir: string;
  arm(rules: ArmedRule[], basePath?: string): Armed;
  cleanup(): void;
}

export function chaosShims(parent: string = tmpdir()): ChaosShims {
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, 'chaos-shims-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const command of SHIM_COMMANDS) {
    writeFileSync(join(bin, command), shimText(command));
    chmodSync(join(bin, command), 0o755);
  }
  // The step may run as root on a file system whose tmp dirs are private: keep the shims readable.
  chmodSync(dir, 0o755);
  let armings = 0;
  return {
    dir,
    arm(rules, basePath = process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin') {
      const state = join(dir, `state-${++armings}`);
      const files = rules.map((_, i) => `${state}.${i + 1}`);
      const read = (file: string): number => {
        try {
          return readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
        } catch {
          return 0;
        }
      };
      return {
        env: {
          PATH: `${bin}:${basePath}`,
          FAULT_CMDS: [...new Set(rules.map((r) => r.command))].join(' '),
          FAULT_SPEC: rules.map((r) => `${r.op}:${r.command}:${r.mode}`).join(' '),
          FAULT_STATE: state,
        },
        fired: () => files.map(read),
        disarm: () => {
          for (const f of files) rmSync(f, { force: true });
        },
      };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
