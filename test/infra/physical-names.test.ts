/**
 * Names that would break a real deployment: a retained resource with a fixed name makes the next
 * `cdk deploy` after `cdk destroy` fail with "already exists", and a region-unique name that does
 * not derive from the stack makes a second stack in the region fail the same way. Checked over
 * every resource of the synthesized templates, not resource by resource.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { stackScopedName } from '../../infra/constructs/physical-names.ts';
import { buildApp, type BuiltApp, SYNTH_HOOK_TIMEOUT_MS } from './infra-helpers.ts';

type Resource = { Type: string; DeletionPolicy?: string; UpdateReplacePolicy?: string; Properties?: Record<string, unknown> };

/**
 * Name properties whose value AWS keeps unique per account and region (or per account), by
 * resource type. Names scoped inside another resource (an API's stage, model or validator names,
 * inline policy names) are not here: they cannot collide across stacks.
 */
const REGION_UNIQUE_NAMES: Record<string, readonly string[]> = {
  'AWS::Logs::LogGroup': ['LogGroupName'],
  'AWS::StepFunctions::StateMachine': ['StateMachineName'],
  'AWS::Events::EventBus': ['Name'],
  'AWS::Events::Archive': ['ArchiveName'],
  'AWS::Events::Rule': ['Name'],
  'AWS::Lambda::Function': ['FunctionName'],
  'AWS::IAM::Role': ['RoleName'],
  'AWS::IAM::ManagedPolicy': ['ManagedPolicyName'],
  'AWS::SNS::Topic': ['TopicName'],
  'AWS::SQS::Queue': ['QueueName'],
  'AWS::S3::Bucket': ['BucketName'],
  'AWS::KMS::Alias': ['AliasName'],
  'AWS::CloudWatch::Alarm': ['AlarmName'],
  'AWS::CloudWatch::Dashboard': ['DashboardName'],
  'AWS::SSM::Document': ['Name'],
  'AWS::SSM::Parameter': ['Name'],
  'AWS::Scheduler::Schedule': ['Name'],
};

const RETAINED = new Set(['Retain', 'RetainExceptOnCreate', 'Snapshot']);

function resources(app: BuiltApp): Record<string, Resource> {
  return (app.template.toJSON() as { Resources: Record<string, Resource> }).Resources;
}

/** Every region-unique name a template sets: [logical id, property, value]. */
function namesOf(app: BuiltApp): [string, string, unknown][] {
  const out: [string, string, unknown][] = [];
  for (const [id, r] of Object.entries(resources(app))) {
    for (const key of REGION_UNIQUE_NAMES[r.Type] ?? []) {
      const value = r.Properties?.[key];
      if (value !== undefined) out.push([id, key, value]);
    }
  }
  return out;
}

/** Does a CloudFormation value depend on something new at every creation (the stack id, a generated resource id)? */
function variesPerCreation(value: unknown): boolean {
  if (typeof value === 'string' || value === null || value === undefined) return false;
  if (Array.isArray(value)) return value.some(variesPerCreation);
  const node = value as Record<string, unknown>;
  if (node.Ref === 'AWS::StackId') return true;
  // A Ref or GetAtt of one of the stack's resources: a physical id CloudFormation generates.
  if (typeof node.Ref === 'string' && !node.Ref.startsWith('AWS::')) return true;
  if (node['Fn::GetAtt'] !== undefined) return true;
  return Object.values(node).some(variesPerCreation);
}

/** The literal text of a name (tokens as `<…>`), to compare names across two stacks. */
function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(text).join('');
  const node = value as Record<string, unknown>;
  if (node['Fn::Join']) {
    const [sep, parts] = node['Fn::Join'] as [string, unknown[]];
    return parts.map(text).join(sep);
  }
  return `<${JSON.stringify(value)}>`;
}

let apps: BuiltApp[];
beforeAll(() => {
  const variant = { defaultTransport: 'eic', eicEndpointId: 'eice-0123456789abcdef0', eicEndpointDns: 'eice-0123456789abcdef0.1a2b3c4d.ec2-instance-connect-endpoint.us-east-1.amazonaws.com' };
  apps = [buildApp(), buildApp({ context: { stackName: 'plugins-staging' } }), buildApp({ context: { ...variant, stackName: 'plugins-eu' } })];
}, SYNTH_HOOK_TIMEOUT_MS);

describe('physical names', () => {
  it('no resource the stack retains on delete has a name the next creation would ask for again', () => {
    for (const app of apps) {
      const retained = Object.entries(resources(app)).filter(([, r]) => RETAINED.has(r.DeletionPolicy ?? ''));
      expect(retained.length).toBeGreaterThan(0);
      for (const [id, r] of retained) {
        for (const key of REGION_UNIQUE_NAMES[r.Type] ?? []) {
          const value = r.Properties?.[key];
          if (value === undefined) continue;
          expect(variesPerCreation(value), `${app.stack.stackName} ${id} (${r.Type}, retained) ${key}=${JSON.stringify(value)}`).toBe(true);
        }
      }
    }
  });

  it('every region-unique name derives from the stack name: stacks can share a region', () => {
    const seen = new Map<string, string>();
    for (const app of apps) {
      for (const [id, key, value] of namesOf(app)) {
        const name = text(value);
        // A name AWS dictates from a generated id (API Gateway's execution log group) is unique already.
        if (!name.includes(app.stack.stackName) && variesPerCreation(value)) continue;
        expect(name, `${id} ${key}`).toContain(app.stack.stackName);
        const owner = seen.get(name);
        expect(owner, `${name} is set by ${owner} and ${app.stack.stackName}/${id}`).toBeUndefined();
        seen.set(name, `${app.stack.stackName}/${id}`);
      }
    }
    // The state machines, the bus, and the execution log group at least.
    expect(namesOf(apps[0]!).length).toBeGreaterThanOrEqual(5);
  });

  it('the stack name picks the stack: template, state machines and bus follow it', () => {
    const staging = apps[1]!;
    expect(staging.stack.stackName).toBe('plugins-staging');
    const machines = Object.values(staging.template.findResources('AWS::StepFunctions::StateMachine')).map((r) => (r.Properties as { StateMachineName: string }).StateMachineName);
    expect(machines.sort()).toEqual(['plugins-staging-install', 'plugins-staging-rollback', 'plugins-staging-rollout', 'plugins-staging-sweep', 'plugins-staging-uninstall']);
    Template.fromStack(staging.stack).hasResourceProperties('AWS::Events::EventBus', { Name: 'plugins-staging-events' });
  });

  it('a stack name too long for a state machine name keeps a readable head and stays distinct', () => {
    const long = 'a'.repeat(70);
    const one = buildNameOnly(`${long}-one`, 'rollback');
    const two = buildNameOnly(`${long}-two`, 'rollback');
    expect(one.length).toBeLessThanOrEqual(80);
    expect(one).toMatch(/^a+-[0-9a-f]{8}-rollback$/);
    expect(one).not.toBe(two);
  });
});

function buildNameOnly(stackName: string, suffix: string): string {
  return stackScopedName(new Stack(new App(), 'S', { stackName }), suffix, 80);
}
