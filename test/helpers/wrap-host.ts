/**
 * A RemoteHost decorator's one moving part: the same host with `run` replaced. Every other member
 * of the port (transport, streamsStdin, close) is the real host's, so a test that watches, holds
 * or repeats host steps changes nothing else about the transport.
 */
import type { HostInvocation, HostRawResult, RemoteHost } from '../../lambdas/core/host/remote-host.ts';

export function withRun(host: RemoteHost, run: (invocation: HostInvocation) => Promise<HostRawResult>): RemoteHost {
  return {
    transport: host.transport,
    streamsStdin: host.streamsStdin,
    run,
    ...(host.close ? { close: () => host.close!() } : {}),
  };
}
