/**
 * Deployment settings, read from CDK context (`cdk.json` or `-c key=value`) and checked before
 * any construct is built, so a typo fails `cdk synth` with a readable message instead of
 * producing a stack that cannot reach its hosts.
 *
 *   stackName         the CloudFormation stack (default WorkspacePluginInstaller); the names of the
 *                     state machines and the event bus derive from it, so stacks can share a region
 *   osUser            OS user EC2 Instance Connect pushes the ephemeral key for (default ubuntu)
 *   defaultTransport  eic | ssm: the transport of instances without a PluginTransport tag (default ssm)
 *   vpcId, subnetIds, securityGroupId
 *                     optional, together: run the step Lambdas in these subnets (EIC to private IPs)
 *   eicEndpointId, eicEndpointDns
 *                     optional, together: reach hosts through this EC2 Instance Connect Endpoint
 *                     (defaultTransport=eic needs this or VPC placement: a network path to private IPs)
 *   apiCloudWatchRole true | false: set the region's API Gateway CloudWatch Logs role (the account
 *                     setting REST API logging needs) to one this stack creates (default true);
 *                     false when the account already has one, e.g. managed centrally
 *   sweepSchedule     EventBridge schedule expression of the snapshot sweeper: rate(…) or
 *                     cron(…) (default rate(1 day))
 *   sweepOlderThanDays
 *                     the sweeper removes snapshots and failed installs older than this (default 7)
 *   sweepKeep         the newest N snapshots of each plugin always stay (default 1)
 *   workspaceCidrs    optional, with an EIC Endpoint: the IPv4 CIDRs of the workspace subnets; the
 *                     functions may open tunnels only to private IPs inside them
 *   alarmEmail        optional: subscribe this address to the alarm topic (confirmed by e-mail)
 *   alarmHttpsUrl     optional: subscribe this https:// endpoint to the alarm topic
 */
import type { Node } from 'constructs';

export type DefaultTransport = 'eic' | 'ssm';

export interface VpcPlacement {
  readonly vpcId: string;
  readonly subnetIds: readonly string[];
  readonly securityGroupId: string;
}

export interface EicEndpoint {
  readonly id: string;
  readonly dnsName: string;
}

/** The snapshot sweeper's schedule and retention (lambdas/handlers/sweeper.ts). */
export interface SweepSettings {
  /** EventBridge schedule expression: `rate(…)` or `cron(…)`. */
  readonly schedule: string;
  /** SWEEP_OLDER_THAN_DAYS: snapshots and failed installs older than this many days go. */
  readonly olderThanDays: number;
  /** SWEEP_KEEP: the newest N snapshots of each plugin always stay. */
  readonly keepNewest: number;
}

export interface InstallerSettings {
  readonly stackName: string;
  readonly osUser: string;
  readonly defaultTransport: DefaultTransport;
  readonly vpc?: VpcPlacement;
  readonly eicEndpoint?: EicEndpoint;
  /** IPv4 CIDRs of the workspace subnets: OpenTunnel is allowed only to private IPs inside them. */
  readonly workspaceCidrs?: readonly string[];
  /** Create the API Gateway CloudWatch Logs role and make it the region's account setting. */
  readonly apiCloudWatchRole: boolean;
  readonly sweep: SweepSettings;
  /** Who the alarm topic notifies, besides later subscribers. */
  readonly alarmEmail?: string;
  readonly alarmHttpsUrl?: string;
}

export const DEFAULT_SWEEP: SweepSettings = {
  schedule: 'rate(1 day)',
  olderThanDays: 7,
  keepNewest: 1,
};

export const DEFAULT_SETTINGS: Pick<InstallerSettings, 'stackName' | 'osUser' | 'defaultTransport' | 'apiCloudWatchRole' | 'sweep'> = {
  stackName: 'WorkspacePluginInstaller',
  osUser: 'ubuntu',
  defaultTransport: 'ssm',
  apiCloudWatchRole: true,
  sweep: DEFAULT_SWEEP,
};

/** Upper bounds the sweeper itself accepts (lambdas/handlers/sweeper.ts). */
export const MAX_SWEEP_OLDER_THAN_DAYS = 36_500;
export const MAX_SWEEP_KEEP = 1_000_000;

/** The context keys this app reads. */
export const CONTEXT_KEYS = [
  'stackName',
  'osUser',
  'defaultTransport',
  'vpcId',
  'subnetIds',
  'securityGroupId',
  'eicEndpointId',
  'eicEndpointDns',
  'apiCloudWatchRole',
  'sweepSchedule',
  'sweepOlderThanDays',
  'sweepKeep',
  'alarmEmail',
  'alarmHttpsUrl',
  'workspaceCidrs',
] as const;

const OS_USER = /^[a-z_][a-z0-9_-]{0,31}$/;
/** Deliberately plain: one @, no spaces or quotes; SNS confirms the address by mail anyway. */
const EMAIL = /^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$/;
const HTTPS_URL = /^https:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?(?:\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$/;
/** CloudFormation: a letter, then letters, digits and hyphens, 128 characters at most. */
const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;
const VPC_ID = /^vpc-[0-9a-f]{8,17}$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8,17}$/;
const SECURITY_GROUP_ID = /^sg-[0-9a-f]{8,17}$/;
const EIC_ENDPOINT_ID = /^eice-[0-9a-f]{8,17}$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

/**
 * EventBridge schedule expressions: `rate(1 day)`, `rate(12 hours)` (singular unit for 1, plural
 * otherwise, as EventBridge requires), or `cron(<6 fields>)`. A rate below one hour is refused:
 * a sweep is followed until its command's own timeouts have passed (25 minutes with the stack's
 * 600 s delivery + 600 s execution timeouts, plus grace), and sweeps should not pile up.
 */
const RATE = /^rate\((1|[1-9]\d{0,5}) (minute|minutes|hour|hours|day|days)\)$/;
const CRON = /^cron\([0-9A-Za-z*?,/#-]+(?: [0-9A-Za-z*?,/#-]+){5}\)$/;
export const MIN_SWEEP_RATE_MINUTES = 60;

function rateOk(value: string): boolean {
  const m = RATE.exec(value);
  if (!m) return false;
  const n = Number(m[1]);
  const unit = m[2]!;
  if ((n === 1) !== !unit.endsWith('s')) return false;
  return !unit.startsWith('minute') || n >= MIN_SWEEP_RATE_MINUTES;
}

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
}

type Raw = Partial<Record<(typeof CONTEXT_KEYS)[number], unknown>>;

function text(raw: Raw, key: keyof Raw): string | undefined {
  const value = raw[key];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new SettingsError(`context ${key} must be a string, got ${JSON.stringify(value)}`);
  return value.trim() || undefined;
}

function matching(raw: Raw, key: keyof Raw, pattern: RegExp, example: string): string | undefined {
  const value = text(raw, key);
  if (value !== undefined && !pattern.test(value)) {
    throw new SettingsError(`context ${key}=${JSON.stringify(value)} is not valid (expected something like ${example})`);
  }
  return value;
}

/** A flag: a JSON boolean from cdk.json, the text `true` / `false` from `-c key=value`. */
function flag(raw: Raw, key: keyof Raw, fallback: boolean): boolean {
  const value = raw[key];
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === 'true';
  throw new SettingsError(`context ${key}=${JSON.stringify(value)} is not valid (expected true or false)`);
}

/** A whole number from 0 to `max`: a JSON number from cdk.json, digits from `-c key=value`. */
function wholeNumber(raw: Raw, key: keyof Raw, fallback: number, max: number): number {
  const value = raw[key];
  if (value === undefined || value === null || value === '') return fallback;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d{1,7}\s*$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > max) {
    throw new SettingsError(`context ${key}=${JSON.stringify(value)} is not valid (expected a whole number from 0 to ${max})`);
  }
  return n;
}

function scheduleExpression(raw: Raw): string {
  const value = text(raw, 'sweepSchedule');
  if (value === undefined) return DEFAULT_SWEEP.schedule;
  const cron = /^cron\((.*)\)$/.exec(value);
  if (rateOk(value) || (cron && CRON.test(value) && cronDaysOk(cron[1]!))) return value;
  throw new SettingsError(
    `context sweepSchedule=${JSON.stringify(value)} is not valid (expected an EventBridge schedule expression such as rate(1 day), rate(12 hours) or cron(0 3 * * ? *); rates of at least ${MIN_SWEEP_RATE_MINUTES} minutes)`,
  );
}

/** EventBridge cron: one of day-of-month and day-of-week must be `?`. */
function cronDaysOk(fields: string): boolean {
  const parts = fields.split(' ');
  return (parts[2] === '?') !== (parts[4] === '?');
}

const CIDR = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\/([8-9]|[12]\d|3[0-2])$/;

/**
 * A list setting: a JSON array from cdk.json, `a,b` from `-c key=a,b`. Entries are trimmed, empty
 * ones dropped, duplicates removed; each must match `pattern` (`what` and `example` word the refusal).
 */
function listOf(raw: Raw, key: 'subnetIds' | 'workspaceCidrs', pattern: RegExp, what: string, example: string): string[] | undefined {
  const value = raw[key];
  if (value === undefined || value === null || value === '') return undefined;
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : undefined;
  if (!list) throw new SettingsError(`context ${key} must be a list or a comma-separated string, got ${JSON.stringify(value)}`);
  const items = list.map((s) => (typeof s === 'string' ? s.trim() : s)).filter((s) => s !== '');
  for (const item of items) {
    if (typeof item !== 'string' || !pattern.test(item)) {
      throw new SettingsError(`context ${key} has ${JSON.stringify(item)}, which is not ${what} (expected something like ${example})`);
    }
  }
  if (items.length === 0) return undefined;
  return [...new Set(items as string[])];
}

/** Checks raw context values and fills in the defaults. */
export function parseSettings(raw: Raw): InstallerSettings {
  const stackName = matching(raw, 'stackName', STACK_NAME, 'WorkspacePluginInstaller or plugins-staging') ?? DEFAULT_SETTINGS.stackName;
  const osUser = matching(raw, 'osUser', OS_USER, 'ubuntu or ec2-user') ?? DEFAULT_SETTINGS.osUser;
  const transport = text(raw, 'defaultTransport') ?? DEFAULT_SETTINGS.defaultTransport;
  if (transport !== 'eic' && transport !== 'ssm') {
    throw new SettingsError(`context defaultTransport=${JSON.stringify(transport)} is not valid (expected eic or ssm)`);
  }

  const vpcId = matching(raw, 'vpcId', VPC_ID, 'vpc-0123456789abcdef0');
  const subnetIds = listOf(raw, 'subnetIds', SUBNET_ID, 'a subnet id', 'subnet-0123456789abcdef0');
  const securityGroupId = matching(raw, 'securityGroupId', SECURITY_GROUP_ID, 'sg-0123456789abcdef0');
  const vpcParts = [vpcId, subnetIds, securityGroupId].filter((v) => v !== undefined).length;
  if (vpcParts !== 0 && vpcParts !== 3) {
    throw new SettingsError('context vpcId, subnetIds and securityGroupId go together: give all three (VPC placement) or none');
  }

  const endpointId = matching(raw, 'eicEndpointId', EIC_ENDPOINT_ID, 'eice-0123456789abcdef0');
  const endpointDns = matching(raw, 'eicEndpointDns', DNS_NAME, 'eice-0123456789abcdef0.1a2b3c4d.ec2-instance-connect-endpoint.us-east-1.amazonaws.com');
  if ((endpointId === undefined) !== (endpointDns === undefined)) {
    throw new SettingsError('context eicEndpointId and eicEndpointDns go together: give both (tunnel through the endpoint) or neither');
  }

  // EIC connects from the functions to the instance's private IP: without an endpoint to tunnel
  // through or a place in the workspace VPC, every step and the rollback would end HostUnreachable.
  if (transport === 'eic' && endpointId === undefined && vpcParts === 0) {
    throw new SettingsError(
      'context defaultTransport=eic needs a network path from the functions to the instances\' private IPs: '
        + 'give eicEndpointId and eicEndpointDns (tunnel through an EC2 Instance Connect Endpoint), '
        + 'or vpcId, subnetIds and securityGroupId (run the functions in the workspace VPC), '
        + 'or use defaultTransport=ssm (see docs/deploy.md)',
    );
  }

  const workspaceCidrs = listOf(raw, 'workspaceCidrs', CIDR, 'an IPv4 CIDR from /8 to /32', '10.0.16.0/20');
  if (workspaceCidrs && endpointId === undefined) {
    throw new SettingsError('context workspaceCidrs scopes the EIC Endpoint\'s tunnels: give it together with eicEndpointId and eicEndpointDns, or drop it');
  }

  const apiCloudWatchRole = flag(raw, 'apiCloudWatchRole', DEFAULT_SETTINGS.apiCloudWatchRole);

  const sweep: SweepSettings = {
    schedule: scheduleExpression(raw),
    olderThanDays: wholeNumber(raw, 'sweepOlderThanDays', DEFAULT_SWEEP.olderThanDays, MAX_SWEEP_OLDER_THAN_DAYS),
    keepNewest: wholeNumber(raw, 'sweepKeep', DEFAULT_SWEEP.keepNewest, MAX_SWEEP_KEEP),
  };

  const alarmEmail = matching(raw, 'alarmEmail', EMAIL, 'ops@example.com');
  const alarmHttpsUrl = matching(raw, 'alarmHttpsUrl', HTTPS_URL, 'https://hooks.example.com/alarms');

  return {
    ...(alarmEmail ? { alarmEmail } : {}),
    ...(alarmHttpsUrl ? { alarmHttpsUrl } : {}),
    ...(workspaceCidrs ? { workspaceCidrs } : {}),
    stackName,
    osUser,
    defaultTransport: transport,
    apiCloudWatchRole,
    sweep,
    ...(vpcId && subnetIds && securityGroupId ? { vpc: { vpcId, subnetIds, securityGroupId } } : {}),
    ...(endpointId && endpointDns ? { eicEndpoint: { id: endpointId, dnsName: endpointDns } } : {}),
  };
}

/** The settings from a construct tree's context (the App's, usually). */
export function settingsFromContext(node: Node): InstallerSettings {
  const raw: Raw = {};
  for (const key of CONTEXT_KEYS) raw[key] = node.tryGetContext(key) as unknown;
  return parseSettings(raw);
}

/** How the functions reach instances' private IPs for EIC (EIC_NETWORK_PATH, lambdas/commons/aws-deps.ts). */
export function eicNetworkPath(settings: Pick<InstallerSettings, 'vpc' | 'eicEndpoint'>): 'endpoint' | 'vpc' | 'none' {
  return settings.eicEndpoint ? 'endpoint' : settings.vpc ? 'vpc' : 'none';
}
