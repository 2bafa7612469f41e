/**
 * Holds one host operation of one workspace until the test lets it go, so a test can look at a
 * workflow (or a fleet rollout) while it is certainly in flight, without sleeping or timing.
 * It wraps the HostResolver port (the product has no test hooks): the operation is entered,
 * `entered` resolves, and the call waits for `open()` before reaching the real host.
 */
import type { HostResolver } from '../../lambdas/core/host/host-resolver.ts';
import type { HostOp } from '../../lambdas/core/host/remote-host.ts';
import { withRun } from './wrap-host.ts';

export interface HostGate {
  resolver: HostResolver;
  /** Resolves when the gated operation has been called (and is being held). */
  entered: Promise<void>;
  /** Lets the held operation, and every later one, through. */
  open(): void;
}

export function gateHostOp(inner: HostResolver, workspace: string, op: HostOp): HostGate {
  let signalEntered!: () => void;
  const entered = new Promise<void>((resolve) => (signalEntered = resolve));
  let release!: () => void;
  const opened = new Promise<void>((resolve) => (release = resolve));
  const resolver: HostResolver = (record) => {
    const target = inner(record);
    if (record.id !== workspace) return target;
    const host = target.host;
    return {
      ...target,
      host: withRun(host, async (invocation) => {
        if (invocation.op === op) {
          signalEntered();
          await opened;
        }
        return host.run(invocation);
      }),
    };
  };
  return { resolver, entered, open: release };
}
