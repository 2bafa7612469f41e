/**
 * SSM rate controls as counts. SSM takes a percentage MaxErrors or MaxConcurrency of the command's
 * target count, and AWS documents only whole examples ("If you send a command to 50 managed nodes
 * and set MaxErrors to 10%, then the system stops sending the command to additional nodes when
 * the sixth error is received"; Systems Manager User Guide, "Run commands at scale", error
 * controls), not how a fraction rounds. Read strictly (as test/servers/ssm-api.ts does), 5% of a
 * fleet under 20 hosts is 0 errors: the first bad host stops the command for every host not yet
 * started. So the sweeper never sends a percentage: it counts the fleet first (the instances
 * carrying the target tag, one DescribeInstances page per 1,000) and sends
 * max(1, floor(p% × fleet)) — a positive percentage always tolerates at least one failed host,
 * and on a large fleet it is exactly what SSM would have made of the percentage.
 */
import { DescribeInstancesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { PluginError } from '../errors.ts';

const LIMIT = /^(\d{1,6})(%?)$/;

/** "5" → "5"; "5%" of 3 → "1"; "10%" of 1,000 → "100"; "0%" → "0" (no error tolerated, as asked). */
export function rateControlCount(value: string, fleetSize: number, what: string): string {
  const m = LIMIT.exec(value);
  if (!m || (m[2] && Number(m[1]) > 100)) throw new PluginError('InvalidInput', `invalid ${what} ${JSON.stringify(value)}`, 'a whole number (e.g. 5) or a percentage from 0% to 100%');
  const n = Number(m[1]);
  if (!m[2]) return String(n);
  if (n === 0) return '0';
  return String(Math.max(1, Math.floor((n * Math.max(0, fleetSize)) / 100)));
}

/**
 * The instances a tag-key target can reach: those carrying the tag, not terminated (a stopped
 * instance is still a managed node SSM sends to; it ends as undeliverable or delivery timed out).
 */
export async function countTaggedInstances(client: EC2Client, tagKey: string): Promise<number> {
  let count = 0;
  let token: string | undefined;
  try {
    do {
      const page = await client.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: 'tag-key', Values: [tagKey] },
            { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
          ],
          MaxResults: 1000,
          NextToken: token,
        }),
      );
      for (const reservation of page.Reservations ?? []) count += reservation.Instances?.length ?? 0;
      token = page.NextToken;
    } while (token);
  } catch (err) {
    const e = (err ?? {}) as { name?: string; message?: string; $fault?: string };
    throw new PluginError(
      e.$fault === 'server' || /Throttl|RequestLimitExceeded/.test(e.name ?? '') ? 'HostUnreachable' : 'HostStepFailed',
      `could not count the fleet: DescribeInstances failed (${e.name ?? 'Error'}: ${e.message ?? String(err)})`,
      "check the sweeper role's ec2:DescribeInstances permission; the next scheduled sweep tries again",
      { cause: err },
    );
  }
  return count;
}
