/**
 * Builds the CDK app in-process for the infra tests: the context of cdk.json (feature flags,
 * defaults) plus overrides, as `cdk synth` would see it.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { buildInstallerApp, type InstallerApp } from '../../infra/installer-app.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const TEST_ACCOUNT = '111111111111';
export const TEST_REGION = 'us-east-1';

/** beforeAll hooks that synthesize apps in-process (several seconds each when idle). */
type AslValidator = (definition: unknown, options?: { checkPaths?: boolean; checkArn?: boolean }) => { isValid: boolean; errors: unknown[] };
/** asl-validator is CommonJS (module.exports = validator). */
export const validateAsl = createRequire(import.meta.url)('asl-validator') as AslValidator;

/** The second deployment shape the infra tests synthesize: EIC by default, Lambdas in a VPC, through an EIC Endpoint. */
export const VARIANT_CONTEXT = {
  osUser: 'ec2-user',
  defaultTransport: 'eic',
  vpcId: 'vpc-0123456789abcdef0',
  subnetIds: 'subnet-0123456789abcdef0,subnet-0fedcba9876543210',
  securityGroupId: 'sg-0123456789abcdef0',
  eicEndpointId: 'eice-0123456789abcdef0',
  eicEndpointDns: 'eice-0123456789abcdef0.1a2b3c4d.ec2-instance-connect-endpoint.us-east-1.amazonaws.com',
};

export const SYNTH_HOOK_TIMEOUT_MS = 300_000;

export function cdkJson(): { app: string; context: Record<string, unknown> } {
  return JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')) as { app: string; context: Record<string, unknown> };
}

export interface BuiltApp extends InstallerApp {
  readonly template: Template;
}

export interface BuildOptions {
  /** Context on top of cdk.json's. */
  readonly context?: Record<string, unknown>;
  /** Account and region (CDK_DEFAULT_*); default: environment-agnostic. */
  readonly env?: { account: string; region: string };
  /**
   * Run esbuild for the 13 Lambdas (steps, api, sweeper). Default false: the template does not depend on the
   * bundles (test/infra/cdk-synth.test.ts bundles them for real through the CLI).
   */
  readonly bundle?: boolean;
}

export function buildApp(options: BuildOptions = {}): BuiltApp {
  const context: Record<string, unknown> = { ...cdkJson().context, ...options.context };
  // CDK's own switch: bundle no stack (assets get a placeholder hash), as `cdk synth --exclusively` does for others.
  if (!options.bundle) context['aws:cdk:bundling-stacks'] = [];
  const env = options.env ? { CDK_DEFAULT_ACCOUNT: options.env.account, CDK_DEFAULT_REGION: options.env.region } : {};
  const built = buildInstallerApp({ context, outdir: mkdtempSync(join(tmpdir(), 'infra-test-')) }, env);
  return { ...built, template: Template.fromStack(built.stack) };
}

type Json = Record<string, unknown>;

export interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Json;
}

export function actionsOf(s: Statement): string[] {
  return Array.isArray(s.Action) ? s.Action : [s.Action];
}

export function resourcesOf(s: Statement): unknown[] {
  return Array.isArray(s.Resource) ? s.Resource : [s.Resource];
}

/** The logical id of a construct's CloudFormation resource. */
export function logicalId(construct: IConstruct): string {
  const child = construct.node.defaultChild ?? construct;
  return Stack.of(construct).getLogicalId(child as never);
}

/** Every statement of the inline policies attached to a role (by the role's logical id). */
export function roleStatements(template: Template, roleLogicalId: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  const statements: Statement[] = [];
  for (const policy of Object.values(policies)) {
    const props = policy.Properties as { Roles: { Ref: string }[]; PolicyDocument: { Statement: Statement[] } };
    if (props.Roles.some((r) => r.Ref === roleLogicalId)) statements.push(...props.PolicyDocument.Statement);
  }
  return statements;
}

/** A CloudFormation value rendered as text, the way cdk-nag names resources: `<Logical.Attr>`, `<AWS::Region>`. */
export function flat(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const node = value as Json;
    if (Array.isArray(node['Fn::Join'])) {
      const [delimiter, items] = node['Fn::Join'] as [string, unknown[]];
      return items.map(flat).join(delimiter);
    }
    if (Array.isArray(node['Fn::GetAtt'])) return `<${(node['Fn::GetAtt'] as string[]).join('.')}>`;
    if (typeof node.Ref === 'string') return `<${node.Ref}>`;
  }
  return JSON.stringify(value);
}

/** A statement reduced to what IAM evaluates, with resources rendered as text. */
export function normalize(s: Statement) {
  return {
    sid: s.Sid ?? '',
    effect: s.Effect,
    actions: [...actionsOf(s)].sort(),
    resources: resourcesOf(s).map(flat).sort(),
    condition: s.Condition,
  };
}

export function sortStatements<T extends { sid: string; actions: string[] }>(list: T[]): T[] {
  return [...list].sort((a, b) => `${a.sid}|${a.actions.join()}`.localeCompare(`${b.sid}|${b.actions.join()}`));
}

/** Every IAM statement of the template: policies, and roles' inline policies. */
export function allStatements(template: Template): Statement[] {
  const fromPolicies = Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
    (p) => (p.Properties as { PolicyDocument: { Statement: Statement[] } }).PolicyDocument.Statement,
  );
  const fromRoles = Object.values(template.findResources('AWS::IAM::Role')).flatMap(
    (r) => ((r.Properties as { Policies?: { PolicyDocument: { Statement: Statement[] } }[] }).Policies ?? []).flatMap((p) => p.PolicyDocument.Statement),
  );
  return [...fromPolicies, ...fromRoles];
}

export interface Acknowledgement {
  path: string;
  id: string;
  reason: string;
}

/** Every cdk-nag acknowledgement in a construct tree, with the path of the construct it sits on. */
export function acknowledgements(root: IConstruct): Acknowledgement[] {
  const out: Acknowledgement[] = [];
  for (const c of root.node.findAll()) {
    for (const entry of c.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY || !entry.data) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        out.push({ path: c.node.path, id: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return out;
}
