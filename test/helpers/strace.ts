/**
 * Running host steps under `strace -f` and reading back the system calls they made, in order.
 *
 * `StracedHost` is a RemoteHost like LocalHost (the same script, the same `sh`), except that each
 * step runs as `strace -f -y -e trace=… -o <file> sh plugin-host.sh <op> …`, one trace file per
 * step. `-y` prints the path behind every file descriptor (`3</abs/path>`), so a write or an fsync
 * names the file it went to without fd bookkeeping.
 *
 * `parseTrace` turns a trace into calls in the order strace saw them, with an `entry` and an
 * `exit` position: a call split by another process (`<unfinished ...>` … `<... resumed>`) keeps
 * the line where it started as `entry` and the line where it returned as `exit`, so "A finished
 * before B started" is `a.exit < b.entry`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, normalize } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PluginError } from '../../lambdas/core/errors.ts';
import { HOST_SCRIPT_PATH } from '../../lambdas/core/host/host-script.ts';
import type { HostInvocation, HostOp, HostRawResult, RemoteHost } from '../../lambdas/core/host/remote-host.ts';

export const TRACE_SET = 'trace=%file,%desc,fsync,fdatasync,syncfs,sync,renameat2,rename,renameat';

/** The strace binary, or undefined when this machine has none (CI must install the package). */
export function straceBinary(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v strace'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status !== 0 || !path) return undefined;
  // ptrace may be forbidden (containers without CAP_SYS_PTRACE): strace must actually work here.
  const probe = spawnSync(path, ['-f', '-o', '/dev/null', 'true']);
  return probe.status === 0 ? path : undefined;
}

export interface StepTrace {
  op: HostOp;
  args: readonly string[];
  file: string;
  exitCode: number | null;
}

export class StracedHost implements RemoteHost {
  readonly transport = 'local';
  readonly streamsStdin = true;
  readonly traces: StepTrace[] = [];
  #n = 0;

  constructor(
    private readonly strace: string,
    private readonly traceDir: string,
    private readonly env: Record<string, string> = {},
    /** The script to run (default: the product's); a test may trace a variant of it. */
    private readonly script: string = HOST_SCRIPT_PATH,
  ) {}

  run(invocation: HostInvocation): Promise<HostRawResult> {
    const file = join(this.traceDir, `${String(++this.#n).padStart(3, '0')}-${invocation.op}.trace`);
    return new Promise((resolve, reject) => {
      const child = spawn(this.strace, ['-f', '-y', '-e', TRACE_SET, '-o', file, 'sh', this.script, invocation.op, ...invocation.args], {
        env: { ...process.env, ...this.env },
        stdio: [invocation.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      if (invocation.stdin && child.stdin) pipeline(invocation.stdin, child.stdin).catch(() => undefined);
      child.on('error', (err) => reject(new PluginError('HostUnreachable', `cannot start strace: ${err.message}`, 'install strace')));
      child.on('close', (code, signal) => {
        this.traces.push({ op: invocation.op, args: invocation.args, file, exitCode: code });
        resolve({ exitCode: code, signal, stdout, stderr });
      });
    });
  }
}

/**
 * The trace file of one step when the host side names it: nanoseconds since the epoch, so that
 * the files of sequential steps sort in the order the steps ran. Expanded by the host's shell.
 */
const traceFileOnHost = (dir: string) => `"${dir}/$(date +%s%N).trace"`;

/**
 * EicHost's privilege prefix that runs each step under strace inside sudo: the script, as root,
 * exactly as it runs after `sudo -n` (the OS user's shell names the trace file).
 */
export function stracePrivilege(strace: string, dir: string): string {
  return `sudo -n ${strace} -f -y -e ${TRACE_SET} -o ${traceFileOnHost(dir)}`;
}

/**
 * The SSM stand-in's launcher (FakeInstance.launcher) that runs each command under strace. The
 * document runs the host script from a temp path (`sh /…/plugin-host-ssm.XXXXXX/plugin-host.sh
 * <op> …`), longer than strace's default 32-character strings: `-s 256` keeps it readable.
 */
export function straceLauncher(strace: string, dir: string): string[] {
  return ['sh', '-c', `exec ${strace} -f -y -s 256 -e ${TRACE_SET} -o ${traceFileOnHost(dir)} "$@"`, 'strace-launcher'];
}

export interface HostStepTrace {
  op: HostOp;
  file: string;
  calls: Syscall[];
}

/**
 * The steps traced into `dir`, in the order they ran (by file name), each named by the
 * operation its script was run with: the element after `plugin-host.sh` in the argv of the first
 * execve that has one (`sh -c <script> plugin-host.sh <op> …` over EIC, `sh /…/plugin-host.sh <op> …`
 * over SSM), or, for
 * StracedHost's files (`<n>-<op>.trace`; strace shortens the script's long path in the argv it
 * prints), the name.
 */
export function hostStepTraces(dir: string, from = 0): HostStepTrace[] {
  return traceFiles(dir)
    .slice(from)
    .map((f) => {
      const file = join(dir, f);
      const calls = readTrace(file);
      const op = opOf(calls) ?? /^\d+-([a-z-]+)\.trace$/.exec(f)?.[1];
      if (!op) throw new Error(`${file}: no execve of plugin-host.sh in this trace`);
      return { op: op as HostOp, file, calls };
    });
}

/** The trace files in `dir`, in the order their steps ran; `hostStepTraces(dir, n)` parses those after the first n. */
export function traceFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.trace'))
    .sort();
}

function opOf(calls: Syscall[]): HostOp | undefined {
  for (const c of calls) {
    if (c.name !== 'execve' || !c.ok) continue;
    const argv = /^\[(.*)\]$/s.exec(c.args[1] ?? '');
    if (!argv) continue;
    const items = splitArgs(argv[1]!).map((a) => unquote(a));
    const at = items.findIndex((a) => a !== undefined && /(^|\/)plugin-host\.sh$/.test(a));
    if (at >= 0 && items[at + 1]) return items[at + 1] as HostOp;
  }
  return undefined;
}

// --- parsing ---------------------------------------------------------------------------------------

export interface Syscall {
  pid: number;
  name: string;
  /** Top-level arguments as strace printed them. */
  args: string[];
  ret: string;
  ok: boolean;
  /** Line index where the call started / returned. */
  entry: number;
  exit: number;
  raw: string;
}

const START = /^(\d+)\s+([a-z_0-9]+)\((.*)$/s;
const RESUMED = /^(\d+)\s+<\.\.\. ([a-z_0-9]+) resumed>(.*)$/s;
const UNFINISHED = /\s*<unfinished \.\.\.>$/;

/** Splits an argument list at its top-level commas (outside strings, brackets and fd paths). */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inString = false;
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      current += c;
      if (c === '\\') current += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '(' || c === '[' || c === '{' || c === '<') depth++;
    else if (c === ')' || c === ']' || c === '}' || c === '>') depth--;
    if (c === ',' && depth === 0) {
      out.push(current.trim());
      current = '';
      continue;
    }
    current += c;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

function complete(pid: number, name: string, body: string, entry: number, exit: number): Syscall | undefined {
  // body: "<args>) = <ret>"  (the last top-level ") = " ends the arguments)
  const m = /^(.*)\)\s+=\s+(.*)$/s.exec(body);
  if (!m) return undefined;
  const ret = m[2]!.trim();
  return { pid, name, args: splitArgs(m[1]!), ret, ok: ret !== '?' && !ret.startsWith('-1'), entry, exit, raw: `${pid} ${name}(${body}` };
}

export function parseTrace(text: string): Syscall[] {
  const calls: Syscall[] = [];
  const pending = new Map<number, { name: string; head: string; entry: number }>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const resumed = RESUMED.exec(line);
    if (resumed) {
      const pid = Number(resumed[1]);
      const open = pending.get(pid);
      if (!open) continue;
      const rest = resumed[3]!;
      if (UNFINISHED.test(rest)) {
        open.head += rest.replace(UNFINISHED, '');
        continue;
      }
      pending.delete(pid);
      const call = complete(pid, open.name, open.head + rest, open.entry, i);
      if (call) calls.push(call);
      continue;
    }
    const start = START.exec(line);
    if (!start) continue;
    const pid = Number(start[1]);
    const name = start[2]!;
    const body = start[3]!;
    if (UNFINISHED.test(body)) {
      pending.set(pid, { name, head: body.replace(UNFINISHED, ''), entry: i });
      continue;
    }
    const call = complete(pid, name, body, i, i);
    if (call) calls.push(call);
  }
  return calls.sort((a, b) => a.entry - b.entry);
}

export function readTrace(file: string): Syscall[] {
  return parseTrace(readFileSync(file, 'utf8'));
}

// --- what a call touches ---------------------------------------------------------------------------

function unquote(token: string): string | undefined {
  const m = /^"((?:[^"\\]|\\.)*)"/.exec(token);
  if (!m) return undefined;
  return m[1]!.replace(/\\(.)/g, '$1');
}

/** The path strace printed behind a descriptor: `3</a/b>` or `AT_FDCWD</cwd>`. */
export function fdPath(token: string | undefined): string | undefined {
  if (!token) return undefined;
  const m = /^(?:-?\d+|AT_FDCWD)<(.*)>$/s.exec(token);
  return m ? m[1] : undefined;
}

function resolveAt(dirToken: string | undefined, pathToken: string | undefined): string | undefined {
  const path = pathToken === undefined ? undefined : unquote(pathToken);
  if (path === undefined) return undefined;
  if (isAbsolute(path)) return normalize(path);
  const dir = fdPath(dirToken);
  if (dir === undefined) return undefined;
  return path === '' ? dir : normalize(join(dir, path));
}

const AT_CALLS: Record<string, [number, number][]> = {
  openat: [[0, 1]],
  openat2: [[0, 1]],
  mkdirat: [[0, 1]],
  mknodat: [[0, 1]],
  fchmodat: [[0, 1]],
  fchmodat2: [[0, 1]],
  fchownat: [[0, 1]],
  utimensat: [[0, 1]],
  unlinkat: [[0, 1]],
  newfstatat: [[0, 1]],
  statx: [[0, 1]],
  faccessat: [[0, 1]],
  faccessat2: [[0, 1]],
  readlinkat: [[0, 1]],
  symlinkat: [[1, 2]],
  renameat: [[0, 1], [2, 3]],
  renameat2: [[0, 1], [2, 3]],
  linkat: [[0, 1], [2, 3]],
};

/** Absolute paths a call names (for renames: [from, to]); fd-based calls give the fd's path. */
export function pathsOf(call: Syscall): string[] {
  const at = AT_CALLS[call.name];
  if (at) return at.map(([d, p]) => resolveAt(call.args[d], call.args[p])).filter((p): p is string => p !== undefined);
  switch (call.name) {
    case 'open':
    case 'creat':
    case 'mkdir':
    case 'chmod':
    case 'chown':
    case 'lchown':
    case 'unlink':
    case 'rmdir':
    case 'truncate':
    case 'stat':
    case 'lstat':
    case 'access':
    case 'execve':
    case 'chdir': {
      const p = unquote(call.args[0] ?? '');
      return p === undefined ? [] : [normalize(p)];
    }
    case 'rename':
    case 'link':
    case 'symlink':
      return [call.args[0], call.args[1]].map((t) => unquote(t ?? '')).filter((p): p is string => p !== undefined).map((p) => normalize(p));
  }
  const fd = fdPath(call.args[0]);
  return fd === undefined ? [] : [fd];
}

export const OPENS = new Set(['open', 'openat', 'openat2', 'creat']);

/** Flags of an open call (`O_WRONLY|O_CREAT|…`). */
export function openFlags(call: Syscall): string {
  if (call.name === 'creat') return 'O_CREAT|O_WRONLY|O_TRUNC';
  return (call.name === 'open' ? call.args[1] : call.args[2]) ?? '';
}

/** A call that changes the file or directory it names (content, metadata, entries). */
export function isWrite(call: Syscall): boolean {
  if (OPENS.has(call.name)) return /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(openFlags(call));
  return /^(write|writev|pwrite64|pwritev2?|ftruncate|truncate|fallocate|fchmod|fchown|mkdir|mkdirat|mknodat|fchmodat2?|fchownat|chmod|chown|lchown|utimensat|futimesat|unlinkat|unlink|rmdir|symlinkat|linkat|link|symlink|fsetxattr|setxattr|lsetxattr|fremovexattr|removexattr|lremovexattr|copy_file_range|sendfile|splice)$/.test(call.name);
}

export const within = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);
export const inside = (path: string, dir: string): boolean => path.startsWith(`${dir}/`);

/** The last program the process `pid` executed before line `before`. */
export function programOf(calls: Syscall[], pid: number, before: number): string | undefined {
  let found: string | undefined;
  for (const c of calls) {
    if (c.entry >= before) break;
    if (c.pid === pid && c.name === 'execve' && c.ok) found = pathsOf(c)[0];
  }
  return found;
}
