/**
 * Least privilege on the workspace hosts: the stack ships the host script as its own SSM Command
 * document and no role of the stack may send any other (AWS-RunShellScript would let it run any
 * command as root on every tagged instance). Checked over every IAM statement of the synthesized
 * templates, default and VPC + Endpoint + EIC, not role by role.
 */
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { ssmCommandDocument } from '../../lambdas/core/host/ssm-document.ts';
import { allStatements, actionsOf, buildApp, flat, resourcesOf, type BuiltApp, SYNTH_HOOK_TIMEOUT_MS, TEST_ACCOUNT, TEST_REGION } from './infra-helpers.ts';

let base: BuiltApp;
let variant: BuiltApp;
beforeAll(() => {
  base = buildApp();
  variant = buildApp({
    context: {
      stackName: 'plugins-staging',
      defaultTransport: 'eic',
      eicEndpointId: 'eice-0123456789abcdef0',
      eicEndpointDns: 'eice-0123456789abcdef0.1a2b3c4d.ec2-instance-connect-endpoint.us-east-1.amazonaws.com',
      vpcId: 'vpc-0123456789abcdef0',
      subnetIds: 'subnet-0123456789abcdef0',
      securityGroupId: 'sg-0123456789abcdef0',
    },
    env: { account: TEST_ACCOUNT, region: TEST_REGION },
  });
}, SYNTH_HOOK_TIMEOUT_MS);

/** Whether an IAM action pattern covers ssm:SendCommand. */
function coversSendCommand(action: string): boolean {
  const pattern = new RegExp(`^${action.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');
  return pattern.test('ssm:SendCommand');
}

describe('the plugin-host SSM document', () => {
  it('is one Command document with the host script inside, named after the stack, a new version on every change', () => {
    for (const app of [base, variant]) {
      const documents = Object.values(app.template.findResources('AWS::SSM::Document'));
      expect(documents).toHaveLength(1);
      const props = documents[0]!.Properties as Record<string, unknown>;
      const content = ssmCommandDocument();
      expect(props).toEqual({
        Name: `${app.stack.stackName}-plugin-host`,
        DocumentType: 'Command',
        DocumentFormat: 'JSON',
        Content: content,
        TargetType: '/AWS::EC2::Instance',
        UpdateMethod: 'NewVersion',
        VersionName: `host-${createHash('sha256').update(JSON.stringify(content)).digest('hex').slice(0, 16)}`,
      });
      expect(app.stack.hostDocument.documentName).toBe(props.Name);
    }
  });

  it('is the only document any role of the stack may send: no AWS-RunShellScript, no document wildcard, no ssm:* action', () => {
    for (const app of [base, variant]) {
      const documentArn = flat(app.stack.resolve(app.stack.hostDocument.documentArn));
      const sendable: string[] = [];
      for (const statement of allStatements(app.template)) {
        const actions = actionsOf(statement);
        if (!actions.some(coversSendCommand)) continue;
        expect(statement.Effect).toBe('Allow');
        // ssm:SendCommand by name only: a wildcard action would reach other documents' actions too.
        expect(actions, JSON.stringify(statement)).toEqual(['ssm:SendCommand']);
        for (const resource of resourcesOf(statement).map(flat)) {
          expect(resource).not.toMatch(/RunShellScript|document\/AWS-|^\*$/);
          if (resource.includes(':document/')) {
            expect(resource).not.toContain('*');
            sendable.push(resource);
          } else {
            expect(resource).toMatch(/^arn:[^/]*:ec2:.*:instance\/\*$/);
          }
        }
        // An instance statement carries the workspace tag condition.
        if (resourcesOf(statement).map(flat).some((r) => r.includes(':instance/'))) {
          expect(statement.Condition).toEqual({ Null: { 'ssm:resourceTag/WorkspaceId': 'false' } });
        }
      }
      // Every host-reaching role (the host steps, the api, the sweeper) may send it; nothing else may be sent.
      expect(new Set(sendable)).toEqual(new Set([documentArn]));
      expect(sendable.length).toBeGreaterThanOrEqual(9);
      expect(documentArn).toMatch(new RegExp(`:ssm:.+:document/${app.stack.hostDocument.documentName}$`));
    }
  });

  it('is what every function that may send it is told to send (SSM_DOCUMENT_NAME)', () => {
    for (const app of [base, variant]) {
      const functions = Object.values(app.template.findResources('AWS::Lambda::Function'));
      const named = functions.filter((f) => ((f.Properties as { Environment?: { Variables?: Record<string, unknown> } }).Environment?.Variables ?? {}).SSM_DOCUMENT_NAME !== undefined);
      expect(named.length).toBeGreaterThanOrEqual(9);
      for (const f of named) expect((f.Properties as { Environment: { Variables: Record<string, unknown> } }).Environment.Variables.SSM_DOCUMENT_NAME).toBe(app.stack.hostDocument.documentName);
    }
  });
});
