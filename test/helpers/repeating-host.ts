/**
 * A RemoteHost decorator for "the step is repeated after it already succeeded": the host really
 * runs the operation, then the caller is told the connection died, as when a Lambda times out
 * after the host did the work. Step Functions' Retry then runs the operation again.
 */
import type { HostInvocation, HostRawResult } from '../../lambdas/core/host/remote-host.ts';
import type { HostResolver } from '../../lambdas/core/host/host-resolver.ts';
import { withRun } from './wrap-host.ts';

export function repeatAfterSuccess(inner: HostResolver, op: string, times = 1): HostResolver {
  let remaining = times;
  return (workspace) => {
    const target = inner(workspace);
    const host = withRun(target.host, async (inv: HostInvocation): Promise<HostRawResult> => {
      const result = await target.host.run(inv);
      if (inv.op === op && remaining > 0 && result.exitCode === 0) {
        remaining--;
        return { exitCode: null, signal: 'SIGKILL', stdout: '', stderr: 'connection lost after the step ran' };
      }
      return result;
    });
    return { ...target, host };
  };
}
