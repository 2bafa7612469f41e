/**
 * A tunnel the EIC Endpoint refused at its connection limit is counted by the Lambdas as the
 * `TunnelRefused` metric (EMF on stdout, dimension `service` only: one series per deployment,
 * what the operations dashboard graphs) with a warn log line naming the instance.
 */
import { expect, it, vi } from 'vitest';
import { countTunnelRefused } from '../../lambdas/commons/aws-deps.ts';

it('publishes TunnelRefused = 1 with the service dimension, and logs the refusal', () => {
  const lines: string[] = [];
  const capture = (chunk: string | Uint8Array): boolean => {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  };
  // The metric goes to stdout (EMF), the warning to stderr.
  const spies = [vi.spyOn(process.stdout, 'write').mockImplementation(capture), vi.spyOn(process.stderr, 'write').mockImplementation(capture)];
  try {
    countTunnelRefused({ instanceId: 'i-0123456789abcdef0', endpointId: 'eice-0123456789abcdef0', status: 429, attempt: 3, delayMs: 812, message: 'refused the tunnel: HTTP 429' });
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
  const docs = lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
  const metric = docs.find((d) => 'TunnelRefused' in d);
  expect(metric).toMatchObject({ TunnelRefused: 1, service: 'workspace-plugin-installer' });
  expect(metric).not.toHaveProperty('step');
  const dimensions = (metric!._aws as { CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[] }).CloudWatchMetrics[0]!;
  expect(dimensions).toMatchObject({ Namespace: 'WorkspacePluginInstaller', Dimensions: [['service']] });
  expect(docs.filter((d) => d.level === 'WARN')).toEqual([
    expect.objectContaining({ message: expect.stringMatching(/connection limit/), instanceId: 'i-0123456789abcdef0', status: 429, attempt: 3, answer: 'refused the tunnel: HTTP 429' }),
  ]);
});
