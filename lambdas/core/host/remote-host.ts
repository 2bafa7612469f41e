/**
 * The `RemoteHost` port: run one host step (the shared script, one operation, quoted arguments,
 * optionally a byte stream on stdin) on a workspace host and return what it printed.
 *
 * Adapters: local (sh on this machine), EIC (ssh2 after SendSSHPublicKey), SSM (SendCommand).
 * Adapters throw PluginError only for transport failures (HostUnreachable, HostTimeout,
 * HostStepInterrupted); what the script itself reported is parsed in host-result.ts.
 */
import type { Readable } from 'node:stream';

export const HOST_OPS = [
  'lock', 'unlock', 'stage', 'snapshot', 'swap', 'mark', 'rollback', 'restore', 'uninstall', 'list', 'sweep', 'verify',
] as const;
export type HostOp = (typeof HOST_OPS)[number];

export interface HostInvocation {
  op: HostOp;
  /** Already validated; adapters pass each as one argument, never through string concatenation. */
  args: readonly string[];
  /** The tarball for `stage` on stream transports. */
  stdin?: Readable;
  timeoutMs?: number;
}

export interface HostRawResult {
  exitCode: number | null;
  /** Set when the step was killed (process signal locally, channel signal over SSH). */
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface RemoteHost {
  /** `local`, `eic` or `ssm`: recorded in step outputs for operators. */
  readonly transport: string;
  /**
   * Whether `stdin` reaches the script (local, SSH). SSM Run Command has no stdin: the host
   * pulls the tarball from a presigned URL instead.
   */
  readonly streamsStdin: boolean;
  run(invocation: HostInvocation): Promise<HostRawResult>;
  /** Releases connections; safe to call more than once. */
  close?(): Promise<void>;
}

/** Where a workspace's plugin steps run, and how they address the plugins root. */
export interface HostTarget {
  host: RemoteHost;
  /** Absolute plugins root as the host sees it (e.g. /configs/plugins). */
  root: string;
  /** `uid:gid` files are handed to (the agent user), or `-` to leave ownership alone. */
  ownerSpec: string;
}
