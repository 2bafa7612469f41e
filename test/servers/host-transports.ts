/**
 * One host, three ways to reach it, for suites that run host steps (HostSteps) unchanged over
 * every transport: `local` (the script under sh on this machine, as pluginctl does), `eic` (a real
 * OpenSSH sshd after SendSSHPublicKey to the EIC API stand-in; `sudo -n` as a non-root user) and
 * `ssm` (the SSM API stand-in running the command as root, the tarball pulled over loopback
 * HTTP). Each gives the target, this machine's path of its plugins root, and the ways a tarball
 * reaches the host on that transport.
 *
 * `strace` runs every host step under `strace -f` on the host side — inside `sudo` over EIC,
 * around the SSM agent's shell over SSM — one trace file per step in `strace.dir`
 * (test/helpers/strace.ts reads them back).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { AGENT_OWNER } from '../../lambdas/core/host/host-resolver.ts';
import { LocalHost } from '../../lambdas/core/host/local-host.ts';
import type { HostTarget } from '../../lambdas/core/host/remote-host.ts';
import { StracedHost, straceLauncher, stracePrivilege } from '../helpers/strace.ts';
import { mountTmpfs, unmount } from '../helpers/tmpfs.ts';
import { startEicHarness } from './eic-harness.ts';
import { startSsmHarness } from './ssm-harness.ts';
import { sshdAvailable } from './sshd.ts';
import { startTarballServer } from './tarball-server.ts';

export type HostTransportName = 'local' | 'eic' | 'ssm';

/** How the tarball reaches the host: streamed on stdin (local, EIC) or pulled from a URL (SSM). */
export type Body = { stream: Readable } | { url: string };

export interface HostTransport {
  name: HostTransportName;
  target: HostTarget;
  /** This machine's path of the plugins root the target addresses. */
  root: string;
  body(tarball: Buffer): Body;
  /** Half the tarball now, the rest on `release()`: a stage still receiving bytes. */
  held(tarball: Buffer): { body: Body; release(): void };
  stop(): Promise<void>;
}

export interface HostTransportOptions {
  /** Every step under `strace -f` on the host, one trace file per step in `dir`. */
  strace?: { binary: string; dir: string };
  /** A tmpfs of this size (e.g. `256m`) under the plugins root: flushes then cost nothing. */
  tmpfs?: string;
  /** Default step timeout (local) or the adapter's (EIC, SSM). */
  stepTimeoutMs?: number;
}

/** The transports this machine can run: EIC needs root and an sshd. */
export const HOST_TRANSPORTS: HostTransportName[] = sshdAvailable ? ['local', 'eic', 'ssm'] : ['local', 'ssm'];

const streamed = {
  body: (tarball: Buffer): Body => ({ stream: Readable.from([tarball]) }),
  held: (tarball: Buffer) => {
    const stream = new PassThrough();
    const half = tarball.length >> 1;
    stream.write(tarball.subarray(0, half));
    return { body: { stream }, release: () => void stream.end(tarball.subarray(half)) };
  },
};

/** `<base>/configs/plugins` (a claude-code workspace's root), with a tmpfs on `configs` if asked. */
function pluginsRootUnder(base: string, options: HostTransportOptions): { root: string; unmount(): void } {
  const root = join(base, 'configs', 'plugins');
  if (!options.tmpfs) return { root, unmount: () => undefined };
  mountTmpfs(dirname(root), options.tmpfs);
  return { root, unmount: () => unmount(dirname(root)) };
}

export async function startHostTransport(name: HostTransportName, options: HostTransportOptions = {}): Promise<HostTransport> {
  const timeoutMs = options.stepTimeoutMs ?? 60_000;
  switch (name) {
    case 'local': {
      const base = await mkdtemp(join(tmpdir(), 'host-local-'));
      const { root, unmount: release } = pluginsRootUnder(base, options);
      const host = options.strace ? new StracedHost(options.strace.binary, options.strace.dir) : new LocalHost({ timeoutMs });
      // As localHostResolver: the agent owns what root installs; without root, nothing is chowned.
      const ownerSpec = process.getuid?.() === 0 ? AGENT_OWNER : '-';
      return {
        name,
        target: { host, root, ownerSpec },
        root,
        ...streamed,
        stop: async () => {
          release();
          await rm(base, { recursive: true, force: true });
        },
      };
    }
    case 'eic': {
      const privilege = options.strace ? stracePrivilege(options.strace.binary, options.strace.dir) : undefined;
      const h = await startEicHarness({ host: { stepTimeoutMs: timeoutMs, ...(privilege ? { privilege } : {}) } });
      const { root, unmount: release } = pluginsRootUnder(h.hostRoot, options);
      return {
        name,
        target: h.resolver(h.workspace('hosts')),
        root,
        ...streamed,
        stop: async () => {
          release();
          await h.stop();
        },
      };
    }
    case 'ssm': {
      const launcher = options.strace ? straceLauncher(options.strace.binary, options.strace.dir) : undefined;
      const h = await startSsmHarness({ host: { stepTimeoutMs: timeoutMs }, ...(launcher ? { launcher } : {}) });
      const { root, unmount: release } = pluginsRootUnder(h.hostRoot, options);
      const files = await startTarballServer();
      return {
        name,
        target: h.resolver(h.workspace('hosts')),
        root,
        body: files.ok,
        held: files.held,
        stop: async () => {
          await files.close();
          release();
          await h.stop();
        },
      };
    }
  }
}
