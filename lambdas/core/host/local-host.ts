/**
 * Local adapter of the RemoteHost port: runs the host script with `sh` on this machine. This is
 * the embedded default (`pluginctl`), where a workspace's "host" is a directory.
 */
import { spawn } from 'node:child_process';
import { pipeline } from 'node:stream/promises';
import { PluginError } from '../errors.ts';
import { HOST_SCRIPT_PATH } from './host-script.ts';
import type { HostInvocation, HostRawResult, RemoteHost } from './remote-host.ts';

export interface LocalHostOptions {
  /** Default step timeout. */
  timeoutMs?: number;
  /** Extra environment for the script (e.g. PATH), merged over this process's. */
  env?: Record<string, string>;
}

const MAX_CAPTURE = 1024 * 1024;

export class LocalHost implements RemoteHost {
  readonly transport = 'local';
  readonly streamsStdin = true;
  readonly #timeoutMs: number;
  readonly #env: NodeJS.ProcessEnv;

  constructor(options: LocalHostOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 120_000;
    this.#env = { ...process.env, ...options.env };
  }

  run(invocation: HostInvocation): Promise<HostRawResult> {
    return new Promise((resolve, reject) => {
      // Its own process group, so a timeout kills the whole pipeline (tee, gzip, tar), not just sh.
      const child = spawn('sh', [HOST_SCRIPT_PATH, invocation.op, ...invocation.args], {
        detached: true,
        env: this.#env,
        stdio: [invocation.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        if (stdout.length < MAX_CAPTURE) stdout += chunk;
      });
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        if (stderr.length < MAX_CAPTURE) stderr += chunk;
      });
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid);
      }, invocation.timeoutMs ?? this.#timeoutMs);
      if (invocation.stdin && child.stdin) {
        // The script may legitimately stop reading early (already staged): EPIPE is not an error.
        pipeline(invocation.stdin, child.stdin).catch(() => undefined);
      }
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new PluginError('HostUnreachable', `cannot start sh for host step ${invocation.op}: ${err.message}`, 'is /bin/sh available?'));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (timedOut) {
          reject(new PluginError('HostTimeout', `host step ${invocation.op} timed out`, 'the step is idempotent and will be retried'));
          return;
        }
        resolve({ exitCode: code, signal, stdout, stderr });
      });
    });
  }
}

function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}
