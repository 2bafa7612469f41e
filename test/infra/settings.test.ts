/** Deployment settings from CDK context: defaults, the `-c key=value` forms, and refusals. */
import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { parseSettings, settingsFromContext, SettingsError } from '../../infra/settings.ts';
import { cdkJson } from './infra-helpers.ts';

describe('settings', () => {
  it('default to the ubuntu user and the SSM transport, outside a VPC, without an endpoint, setting the API Gateway CloudWatch role', () => {
    expect(parseSettings({})).toEqual({ osUser: 'ubuntu', defaultTransport: 'ssm', apiCloudWatchRole: true });
  });

  it('cdk.json carries the same defaults', () => {
    expect(settingsFromContext(new App({ context: cdkJson().context }).node)).toEqual({ osUser: 'ubuntu', defaultTransport: 'ssm', apiCloudWatchRole: true });
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
      osUser: 'ec2-user',
      defaultTransport: 'eic',
      vpc: { ...vpc, subnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'] },
      eicEndpoint: { id: endpoint.eicEndpointId, dnsName: endpoint.eicEndpointDns },
      apiCloudWatchRole: true,
    };
    expect(parseSettings({ osUser: 'ec2-user', defaultTransport: 'eic', ...vpc, ...endpoint, subnetIds: 'subnet-0123456789abcdef0, subnet-0fedcba9876543210' })).toEqual(expected);
    expect(parseSettings({ osUser: 'ec2-user', defaultTransport: 'eic', ...vpc, ...endpoint, subnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'] })).toEqual(expected);
    const app = new App({ context: { osUser: 'ec2-user', defaultTransport: 'eic', ...vpc, ...endpoint, subnetIds: 'subnet-0123456789abcdef0,subnet-0fedcba9876543210' } });
    expect(settingsFromContext(app.node)).toEqual(expected);
  });

  it.each([
    [{ defaultTransport: 'ssh' }, /defaultTransport/],
    [{ osUser: 'root; rm -rf /' }, /osUser/],
    [{ vpcId: 'vpc-0123456789abcdef0' }, /go together/],
    [{ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-0123456789abcdef0' }, /go together/],
    [{ vpcId: 'vpc-0123456789abcdef0', subnetIds: 'subnet-x', securityGroupId: 'sg-0123456789abcdef0' }, /subnetIds/],
    [{ vpcId: 'vpc-0123456789abcdef0', subnetIds: 42, securityGroupId: 'sg-0123456789abcdef0' }, /subnetIds/],
    [{ securityGroupId: 'default' }, /securityGroupId/],
    [{ eicEndpointId: 'eice-0123456789abcdef0' }, /go together/],
    [{ eicEndpointId: 'eice-0123456789abcdef0', eicEndpointDns: 'not a host name' }, /eicEndpointDns/],
    [{ osUser: 7 }, /must be a string/],
    [{ apiCloudWatchRole: 'no' }, /apiCloudWatchRole/],
    [{ apiCloudWatchRole: 1 }, /apiCloudWatchRole/],
  ])('refuse %j', (raw, message) => {
    expect(() => parseSettings(raw as never)).toThrow(SettingsError);
    expect(() => parseSettings(raw as never)).toThrow(message);
  });
});
