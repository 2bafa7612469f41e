/** Deployment settings from CDK context: defaults, the `-c key=value` forms, and refusals. */
import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SWEEP, eicNetworkPath, parseSettings, settingsFromContext, SettingsError } from '../../infra/settings.ts';
import { cdkJson } from './infra-helpers.ts';

describe('settings', () => {
  it('default to the ubuntu user and the SSM transport, outside a VPC, without an endpoint, setting the API Gateway CloudWatch role', () => {
    expect(parseSettings({})).toEqual({ stackName: 'WorkspacePluginInstaller', osUser: 'ubuntu', defaultTransport: 'ssm', apiCloudWatchRole: true, sweep: { schedule: 'rate(1 day)', olderThanDays: 7, keepNewest: 1 } });
    expect(DEFAULT_SWEEP).toEqual({ schedule: 'rate(1 day)', olderThanDays: 7, keepNewest: 1 });
  });

  it('cdk.json carries the same defaults', () => {
    expect(settingsFromContext(new App({ context: cdkJson().context }).node)).toEqual({ stackName: 'WorkspacePluginInstaller', osUser: 'ubuntu', defaultTransport: 'ssm', apiCloudWatchRole: true, sweep: DEFAULT_SWEEP });
  });

  it.each([
    [true, true],
    [false, false],
    ['false', false],
    ['FALSE', false],
    [' true ', true],
    ['', true],
  ])('read apiCloudWatchRole=%j (cdk.json boolean or -c text) as %s', (value, expected) => {
    expect(parseSettings({ apiCloudWatchRole: value }).apiCloudWatchRole).toBe(expected);
    expect(settingsFromContext(new App({ context: { apiCloudWatchRole: value } }).node).apiCloudWatchRole).toBe(expected);
  });

  it('read VPC placement and the EIC endpoint, subnets as a list or comma-separated', () => {
    const vpc = { vpcId: 'vpc-0123456789abcdef0', securityGroupId: 'sg-0123456789abcdef0' };
    const endpoint = { eicEndpointId: 'eice-0123456789abcdef0', eicEndpointDns: 'eice-0123456789abcdef0.abc.ec2-instance-connect-endpoint.eu-west-1.amazonaws.com' };
    const expected = {
      stackName: 'WorkspacePluginInstaller',
      osUser: 'ec2-user',
      defaultTransport: 'eic',
      vpc: { ...vpc, subnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'] },
      eicEndpoint: { id: endpoint.eicEndpointId, dnsName: endpoint.eicEndpointDns },
      apiCloudWatchRole: true,
      sweep: DEFAULT_SWEEP,
    };
    expect(parseSettings({ osUser: 'ec2-user', defaultTransport: 'eic', ...vpc, ...endpoint, subnetIds: 'subnet-0123456789abcdef0, subnet-0fedcba9876543210' })).toEqual(expected);
    expect(parseSettings({ osUser: 'ec2-user', defaultTransport: 'eic', ...vpc, ...endpoint, subnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'] })).toEqual(expected);
    const app = new App({ context: { osUser: 'ec2-user', defaultTransport: 'eic', ...vpc, ...endpoint, subnetIds: 'subnet-0123456789abcdef0,subnet-0fedcba9876543210' } });
    expect(settingsFromContext(app.node)).toEqual(expected);
  });

  it.each([
    ['rate(1 day)', 'rate(1 day)'],
    ['rate(12 hours)', 'rate(12 hours)'],
    ['rate(1 hour)', 'rate(1 hour)'],
    ['rate(90 minutes)', 'rate(90 minutes)'],
    ['rate(7 days)', 'rate(7 days)'],
    [' cron(0 3 * * ? *) ', 'cron(0 3 * * ? *)'],
    ['cron(30 2 ? * MON-FRI *)', 'cron(30 2 ? * MON-FRI *)'],
    ['', 'rate(1 day)'],
  ])('read sweepSchedule=%j as %j', (value, expected) => {
    expect(parseSettings({ sweepSchedule: value }).sweep.schedule).toBe(expected);
    expect(settingsFromContext(new App({ context: { sweepSchedule: value } }).node).sweep.schedule).toBe(expected);
  });

  it('read sweepOlderThanDays and sweepKeep as JSON numbers (cdk.json) or digits (-c)', () => {
    expect(parseSettings({ sweepOlderThanDays: 30, sweepKeep: 3 }).sweep).toEqual({ schedule: 'rate(1 day)', olderThanDays: 30, keepNewest: 3 });
    expect(parseSettings({ sweepOlderThanDays: '14', sweepKeep: ' 0 ' }).sweep).toEqual({ schedule: 'rate(1 day)', olderThanDays: 14, keepNewest: 0 });
    const app = new App({ context: { sweepSchedule: 'rate(2 days)', sweepOlderThanDays: '0', sweepKeep: '2' } });
    expect(settingsFromContext(app.node).sweep).toEqual({ schedule: 'rate(2 days)', olderThanDays: 0, keepNewest: 2 });
  });

  it.each([
    [{ sweepSchedule: 'daily' }, /sweepSchedule/],
    [{ sweepSchedule: 'rate(1 days)' }, /sweepSchedule/],
    [{ sweepSchedule: 'rate(2 day)' }, /sweepSchedule/],
    [{ sweepSchedule: 'rate(0 hours)' }, /sweepSchedule/],
    [{ sweepSchedule: 'rate(5 minutes)' }, /at least 60 minutes/],
    [{ sweepSchedule: 'rate(1 minute)' }, /sweepSchedule/],
    [{ sweepSchedule: 'cron(0 3 * * *)' }, /sweepSchedule/],
    [{ sweepSchedule: 'cron(0 3 * * * *)' }, /sweepSchedule/],
    [{ sweepSchedule: 'cron(0 3 ? * ? *)' }, /sweepSchedule/],
    [{ sweepSchedule: 'cron(0 3 * * ? *); rm -rf /' }, /sweepSchedule/],
    [{ sweepSchedule: 7 }, /sweepSchedule must be a string/],
    [{ sweepOlderThanDays: -1 }, /sweepOlderThanDays/],
    [{ sweepOlderThanDays: 1.5 }, /sweepOlderThanDays/],
    [{ sweepOlderThanDays: '7d' }, /sweepOlderThanDays/],
    [{ sweepOlderThanDays: 36_501 }, /sweepOlderThanDays.*0 to 36500/],
    [{ sweepOlderThanDays: true }, /sweepOlderThanDays/],
    [{ sweepKeep: '-1' }, /sweepKeep/],
    [{ sweepKeep: 1_000_001 }, /sweepKeep/],
    [{ sweepKeep: 'one' }, /sweepKeep/],
  ])('refuse the sweep setting %j', (raw, message) => {
    expect(() => parseSettings(raw as never)).toThrow(SettingsError);
    expect(() => parseSettings(raw as never)).toThrow(message);
  });

  it('accept defaultTransport=eic with either network path, and report which one the functions use', () => {
    const endpoint = { eicEndpointId: 'eice-0123456789abcdef0', eicEndpointDns: 'eice-0123456789abcdef0.1a2b3c4d.ec2-instance-connect-endpoint.us-east-1.amazonaws.com' };
    const vpc = { vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0123456789abcdef0', securityGroupId: 'sg-0123456789abcdef0' };
    expect(eicNetworkPath(parseSettings({ defaultTransport: 'eic', ...endpoint }))).toBe('endpoint');
    expect(eicNetworkPath(parseSettings({ defaultTransport: 'eic', ...vpc }))).toBe('vpc');
    expect(eicNetworkPath(parseSettings({ defaultTransport: 'eic', ...vpc, ...endpoint }))).toBe('endpoint');
    expect(eicNetworkPath(parseSettings({}))).toBe('none');
  });

  it.each([
    [{ defaultTransport: 'ssh' }, /defaultTransport/],
    // EIC needs a network path to private IPs: an endpoint, or the functions in the workspace VPC.
    [{ defaultTransport: 'eic' }, /defaultTransport=eic needs a network path.*eicEndpointId and eicEndpointDns.*vpcId, subnetIds and securityGroupId.*defaultTransport=ssm/],
    [{ defaultTransport: 'eic', osUser: 'ec2-user', apiCloudWatchRole: false }, /defaultTransport=eic needs a network path/],
    [{ osUser: 'root; rm -rf /' }, /osUser/],
    [{ vpcId: 'vpc-0123456789abcdef0' }, /go together/],
    [{ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0123456789abcdef0' }, /go together/],
    [{ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-x', securityGroupId: 'sg-0123456789abcdef0' }, /subnetIds/],
    [{ vpcId: 'vpc-0123456789abcdef0', subnetIds: 42, securityGroupId: 'sg-0123456789abcdef0' }, /subnetIds/],
    [{ securityGroupId: 'default' }, /securityGroupId/],
    [{ eicEndpointId: 'eice-0123456789abcdef0' }, /go together/],
    [{ eicEndpointId: 'eice-0123456789abcdef0', eicEndpointDns: 'not a host name' }, /eicEndpointDns/],
    [{ osUser: 7 }, /must be a string/],
    [{ alarmEmail: 'not an address' }, /alarmEmail/],
    [{ workspaceCidrs: '10.0.0.0/20' }, /workspaceCidrs .*eicEndpointId/],
    [{ workspaceCidrs: '10.0.0.0/33', eicEndpointId: 'eice-0123456789abcdef0', eicEndpointDns: 'eice-0123456789abcdef0.1a2b3c4d.ec2-instance-connect-endpoint.us-east-1.amazonaws.com' }, /workspaceCidrs has "10\.0\.0\.0\/33"/],
    [{ workspaceCidrs: '300.0.0.0/8', eicEndpointId: 'eice-0123456789abcdef0', eicEndpointDns: 'eice-0123456789abcdef0.1a2b3c4d.ec2-instance-connect-endpoint.us-east-1.amazonaws.com' }, /workspaceCidrs/],
    [{ alarmHttpsUrl: 'http://hooks.example.com/alarms' }, /alarmHttpsUrl/],
    [{ stackName: '1stack' }, /stackName/],
    [{ stackName: 'my_stack' }, /stackName/],
    [{ stackName: 'x'.repeat(129) }, /stackName/],
    [{ apiCloudWatchRole: 'no' }, /apiCloudWatchRole/],
    [{ apiCloudWatchRole: 1 }, /apiCloudWatchRole/],
  ])('refuse %j', (raw, message) => {
    expect(() => parseSettings(raw as never)).toThrow(SettingsError);
    expect(() => parseSettings(raw as never)).toThrow(message);
  });
});
