/**
 * The HTTP API in the stack: the REST API with exactly the design's routes (the same as the
 * OpenAPI document), IAM auth on every method, request validation with the install body model
 * generated from the handler's zod schema, throttling, access logs and tracing on stage v1, the
 * api Lambda (nodejs22.x/arm64, the environment lambdas/commons/api-deps.ts reads) and its IAM:
 * StartExecution on the three state machines only, Describe/GetExecutionHistory on their
 * executions only, the host steps' host access, read access to artifacts/.
 */
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { toJSONSchema } from 'zod';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { apiDepsFromEnv } from '../../lambdas/commons/api-deps.ts';
import { InstallBody, RolloutBody } from '../../lambdas/core/api/api-schemas.ts';
import { openApiDocument } from '../../lambdas/core/api/openapi.ts';
import type { SfnWorkflowEngineOptions } from '../../lambdas/core/workflow/sfn-workflow-engine.ts';
import { WORKFLOWS } from '../../lambdas/core/workflow/workflow-files.ts';
import {
  API_FUNCTION_TIMEOUT,
  API_ROUTES,
  API_STAGE,
  API_THROTTLE,
  INSTALL_MODEL_NAME,
  REQUEST_MODELS,
  ROLLOUT_MODEL_NAME,
  stateMachineArnVariable,
  toApiGatewaySchema,
} from '../../infra/constructs/control-plane-api.ts';
import { MIN_REASON_LENGTH } from '../../infra/constructs/nag.ts';
import { STEP_SPECS, stepPlaceholder } from '../../infra/constructs/step-functions.ts';
import { buildInstallerApp } from '../../infra/installer-app.ts';
import { acknowledgements, actionsOf, allStatements, buildApp, type BuiltApp, cdkJson, flat, logicalId, normalize, roleStatements, sortStatements, TEST_ACCOUNT, TEST_REGION, SYNTH_HOOK_TIMEOUT_MS, VARIANT_CONTEXT } from './infra-helpers.ts';

const VARIANT_ENV = { account: TEST_ACCOUNT, region: TEST_REGION };

let base: BuiltApp;
let variant: BuiltApp;
let noCloudWatchRole: BuiltApp;

// Synthesizing takes seconds on an idle machine and minutes on a loaded 2-core one (CI shares
// its machine): a timeout, not a speed check.
beforeAll(() => {
  base = buildApp();
  variant = buildApp({ context: VARIANT_CONTEXT, env: VARIANT_ENV });
  noCloudWatchRole = buildApp({ context: { apiCloudWatchRole: 'false' } });
}, SYNTH_HOOK_TIMEOUT_MS);

afterEach(() => {
  vi.restoreAllMocks();
});

type Resource = { Type: string; Properties: Record<string, unknown>; DependsOn?: string[]; DeletionPolicy?: string };

function resources(app: BuiltApp, type: string): Record<string, Resource> {
  return app.template.findResources(type) as Record<string, Resource>;
}

function only(app: BuiltApp, type: string): [string, Resource] {
  const found = Object.entries(resources(app, type));
  expect(found, type).toHaveLength(1);
  return found[0]!;
}

/** `METHOD /path/{param}` of every method in the template, from the resource tree. */
function templateRoutes(app: BuiltApp): { route: string; props: Record<string, unknown> }[] {
  const apiId = logicalId(app.stack.api.api);
  const parts = resources(app, 'AWS::ApiGateway::Resource');
  const pathOf = (id: unknown): string => {
    if (typeof id === 'object' && id !== null && 'Fn::GetAtt' in id) {
      expect((id as { 'Fn::GetAtt': string[] })['Fn::GetAtt']).toEqual([apiId, 'RootResourceId']);
      return '';
    }
    const ref = (id as { Ref: string }).Ref;
    const part = parts[ref]!;
    return `${pathOf(part.Properties.ParentId)}/${part.Properties.PathPart as string}`;
  };
  return Object.values(resources(app, 'AWS::ApiGateway::Method')).map((m) => ({
    route: `${m.Properties.HttpMethod as string} ${pathOf(m.Properties.ResourceId)}`,
    props: m.Properties,
  }));
}

const DESIGN_ROUTES = [
  'POST /workspaces/{id}/plugins',
  'GET /workspaces/{id}/plugins',
  'DELETE /workspaces/{id}/plugins/{name}',
  'POST /workspaces/{id}/plugins/{name}/rollback',
  'GET /workspaces/{id}/plugins/{name}/download',
  'GET /executions/{id}',
];

/** The fleet rollout's routes (issue 11). */
const ROLLOUT_ROUTES = ['POST /rollouts', 'GET /rollouts/{id}'];
const ALL_ROUTES = [...DESIGN_ROUTES, ...ROLLOUT_ROUTES];

describe('REST API', () => {
  it('is one regional REST API with exactly the design\'s routes, the same as the OpenAPI document', () => {
    const [, api] = only(base, 'AWS::ApiGateway::RestApi');
    expect(api.Properties).toEqual(expect.objectContaining({ Name: 'workspace-plugin-installer', EndpointConfiguration: { Types: ['REGIONAL'] } }));
    expect(API_ROUTES.map((r) => `${r.method} ${r.path}`).sort()).toEqual([...ALL_ROUTES].sort());
    expect(templateRoutes(base).map((r) => r.route).sort()).toEqual([...ALL_ROUTES].sort());
    const documented = Object.entries(openApiDocument().paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(documented.sort()).toEqual([...ALL_ROUTES].sort());
  });

  it('requires IAM (SigV4) auth on every method and proxies each to the api Lambda', () => {
    const fnArn = { 'Fn::GetAtt': [logicalId(base.stack.api.fn), 'Arn'] };
    const methods = templateRoutes(base);
    expect(methods).toHaveLength(ALL_ROUTES.length);
    for (const { route, props } of methods) {
      expect(props.AuthorizationType, route).toBe('AWS_IAM');
      expect(props.AuthorizerId, route).toBeUndefined();
      expect(props.ApiKeyRequired, route).toBeUndefined();
      const integration = props.Integration as { Type: string; IntegrationHttpMethod: string; TimeoutInMillis: number; Uri: unknown };
      expect(integration.Type, route).toBe('AWS_PROXY');
      expect(integration.IntegrationHttpMethod).toBe('POST');
      expect(integration.TimeoutInMillis).toBe(29_000);
      expect(flat(integration.Uri)).toBe(`arn:<AWS::Partition>:apigateway:<AWS::Region>:lambda:path/2015-03-31/functions/${flat(fnArn)}/invocations`);
    }
  });

  it('lets API Gateway invoke the function per method on stage v1 only (no test-invoke grants)', () => {
    const fnArn = { 'Fn::GetAtt': [logicalId(base.stack.api.fn), 'Arn'] };
    const all = Object.values(resources(base, 'AWS::Lambda::Permission'));
    // Nothing but API Gateway may invoke the api function.
    expect(all.filter((p) => JSON.stringify(p.Properties.FunctionName) === JSON.stringify(fnArn)).every((p) => p.Properties.Principal === 'apigateway.amazonaws.com')).toBe(true);
    const permissions = all.filter((p) => p.Properties.Principal === 'apigateway.amazonaws.com');
    expect(permissions).toHaveLength(ALL_ROUTES.length);
    const stage = logicalId(base.stack.api.stage);
    const arns = permissions.map((p) => {
      expect(p.Properties.Principal).toBe('apigateway.amazonaws.com');
      expect(p.Properties.Action).toBe('lambda:InvokeFunction');
      expect(p.Properties.FunctionName).toEqual(fnArn);
      return flat(p.Properties.SourceArn);
    });
    const prefix = `arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${logicalId(base.stack.api.api)}>/<${stage}>`;
    expect(arns.sort()).toEqual(ALL_ROUTES.map((r) => {
      const [method, path] = r.split(' ');
      return `${prefix}/${method}${path!.replace(/\{\w+\}/g, '*')}`;
    }).sort());
  });

  it('validates body and parameters: one validator on every method, required path parameters, the install model on POST …/plugins, the rollout model on POST /rollouts', () => {
    const [validatorId, validator] = only(base, 'AWS::ApiGateway::RequestValidator');
    expect(validator.Properties).toEqual(expect.objectContaining({ ValidateRequestBody: true, ValidateRequestParameters: true }));
    const models = resources(base, 'AWS::ApiGateway::Model');
    const modelId = (name: string) => Object.entries(models).find(([, m]) => m.Properties.Name === name)![0];
    for (const { route, props } of templateRoutes(base)) {
      expect(props.RequestValidatorId, route).toEqual({ Ref: validatorId });
      const path = route.split(' ')[1]!;
      const expected: Record<string, boolean> = Object.fromEntries([...path.matchAll(/\{(\w+)\}/g)].map((m) => [`method.request.path.${m[1]!}`, true]));
      if (!route.startsWith('GET ')) expected['method.request.header.Idempotency-Key'] = false;
      expect(props.RequestParameters, route).toEqual(expected);
      if (route === 'POST /workspaces/{id}/plugins') expect(props.RequestModels).toEqual({ 'application/json': { Ref: modelId(INSTALL_MODEL_NAME) } });
      else if (route === 'POST /rollouts') expect(props.RequestModels).toEqual({ 'application/json': { Ref: modelId(ROLLOUT_MODEL_NAME) } });
      else expect(props.RequestModels, route).toBeUndefined();
    }
  });

  it('has the install model from the handler\'s own zod schema (InstallBody), as JSON Schema draft 4', () => {
    const models = Object.values(resources(base, 'AWS::ApiGateway::Model'));
    expect(models.map((m) => m.Properties.Name).sort()).toEqual([INSTALL_MODEL_NAME, ROLLOUT_MODEL_NAME]);
    const model = models.find((m) => m.Properties.Name === INSTALL_MODEL_NAME)!;
    expect(model.Properties.ContentType).toBe('application/json');
    const draft4 = toJSONSchema(InstallBody, { target: 'draft-4', io: 'input' });
    expect(model.Properties.Schema).toEqual(draft4);
    // What the model enforces, spelled out: source required, nothing unknown, sha256 and runtime shaped.
    expect(model.Properties.Schema).toEqual(expect.objectContaining({
      $schema: 'http://json-schema.org/draft-04/schema#',
      type: 'object',
      required: ['source'],
      additionalProperties: false,
      properties: expect.objectContaining({
        sha256: expect.objectContaining({ pattern: '^[0-9a-f]{64}$' }),
        runtime: expect.objectContaining({ enum: ['claude-code', 'hermes', 'langgraph', 'external'] }),
      }),
    }));
  });

  it('has the rollout model from RolloutBody, as JSON Schema draft 4, named as docs/openapi.json names the body', () => {
    const model = Object.values(resources(base, 'AWS::ApiGateway::Model')).find((m) => m.Properties.Name === ROLLOUT_MODEL_NAME)!;
    expect(model.Properties.ContentType).toBe('application/json');
    expect(model.Properties.Schema).toEqual(toJSONSchema(RolloutBody, { target: 'draft-4', io: 'input' }));
    expect(model.Properties.Schema).toEqual(expect.objectContaining({
      required: ['source', 'maxConcurrency', 'maxErrors', 'canary', 'rollbackOnHalt'],
      additionalProperties: false,
      properties: expect.objectContaining({
        maxConcurrency: expect.objectContaining({ type: 'integer', minimum: 1, maximum: 40 }),
        maxErrors: expect.objectContaining({ anyOf: [expect.objectContaining({ type: 'integer' }), expect.objectContaining({ type: 'string' })] }),
        workspaces: expect.objectContaining({ maxItems: 10_000 }),
      }),
    }));
    // The document's request body names the same model.
    const post = (openApiDocument().paths as Record<string, Record<string, { requestBody: { content: Record<string, { schema: { $ref: string } }> } }>>)['/rollouts']!.post!;
    expect(post.requestBody.content['application/json']!.schema.$ref).toBe(`#/components/schemas/${ROLLOUT_MODEL_NAME}`);
    expect(REQUEST_MODELS.RolloutRequest.route).toBe('POST /rollouts');
    expect(API_ROUTES.filter((r) => r.model).map((r) => `${r.method} ${r.path} ${r.model}`)).toEqual(
      Object.entries(REQUEST_MODELS).map(([name, m]) => `${m.route} ${name}`),
    );
  });

  it('refuses to turn a schema into a model when API Gateway could not enforce it', () => {
    expect(() => toApiGatewaySchema({ $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object' })).toThrow(/draft 4/);
    expect(() => toApiGatewaySchema({ type: 'object', properties: { a: { type: 'string', $ref: '#/x' } } })).toThrow(/#\/properties\/a\/\$ref/);
    expect(() => toApiGatewaySchema({ type: 'bytes' })).toThrow(/unknown type/);
  });

  it('answers its own refusals (signature, throttle, invalid body) in the product\'s error shape', () => {
    const responses = Object.values(resources(base, 'AWS::ApiGateway::GatewayResponse'));
    expect(responses.map((r) => r.Properties.ResponseType).sort()).toEqual(['BAD_REQUEST_BODY', 'BAD_REQUEST_PARAMETERS', 'DEFAULT_4XX', 'DEFAULT_5XX']);
    for (const r of responses) {
      const template = (r.Properties.ResponseTemplates as Record<string, string>)['application/json']!;
      // API Gateway substitutes the variables; with them as JSON values the rest parses as {error: {code, message, hint}}.
      const filled = template.replace('$context.error.messageString', '"Invalid request body"').replace('$context.error.responseType', 'THROTTLED');
      const body = JSON.parse(filled) as { error: { code: string; message: string; hint: string } };
      expect(Object.keys(body.error)).toEqual(['code', 'message', 'hint']);
      expect(body.error.hint.length).toBeGreaterThan(10);
      if (String(r.Properties.ResponseType).startsWith('BAD_REQUEST')) expect(body.error.code).toBe('InvalidInput');
    }
  });
});

describe('stage v1', () => {
  it('throttles, logs errors without request data, and traces', () => {
    const [, stage] = only(base, 'AWS::ApiGateway::Stage');
    expect(stage.Properties.StageName).toBe(API_STAGE);
    expect(stage.Properties.TracingEnabled).toBe(true);
    expect(stage.Properties.MethodSettings).toEqual([{
      HttpMethod: '*',
      ResourcePath: '/*',
      ThrottlingRateLimit: API_THROTTLE.rateLimit,
      ThrottlingBurstLimit: API_THROTTLE.burstLimit,
      LoggingLevel: 'ERROR',
      DataTraceEnabled: false,
      MetricsEnabled: true,
    }]);
    expect(API_THROTTLE).toEqual({ rateLimit: 20, burstLimit: 40 });
  });

  it('writes a JSON access log line per request (request id, caller, method, path, status, latency) to its own log group', () => {
    const [, stage] = only(base, 'AWS::ApiGateway::Stage');
    const setting = stage.Properties.AccessLogSetting as { DestinationArn: unknown; Format: string };
    expect(flat(setting.DestinationArn)).toBe(`arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:<${logicalId(base.stack.api.accessLogs)}>`);
    const format = JSON.parse(setting.Format) as Record<string, string>;
    expect(format).toEqual(expect.objectContaining({
      requestId: '$context.requestId',
      caller: '$context.identity.caller',
      userArn: '$context.identity.userArn',
      method: '$context.httpMethod',
      path: '$context.path',
      resourcePath: '$context.resourcePath',
      status: '$context.status',
      latency: '$context.responseLatency',
      integrationLatency: '$context.integrationLatency',
    }));
    base.template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    expect(resources(base, 'AWS::Logs::LogGroup')[logicalId(base.stack.api.accessLogs)]!.Properties.RetentionInDays).toBe(30);
  });

  it('keeps execution logs in a group of its own retention, created before the stage can log', () => {
    const executionLogs = logicalId(base.stack.api.executionLogs);
    const group = resources(base, 'AWS::Logs::LogGroup')[executionLogs]!;
    expect(flat(group.Properties.LogGroupName)).toBe(`API-Gateway-Execution-Logs_<${logicalId(base.stack.api.api)}>/v1`);
    expect(group.Properties.RetentionInDays).toBe(30);
    const [, stage] = only(base, 'AWS::ApiGateway::Stage');
    expect(stage.DependsOn).toContain(executionLogs);
  });

  it('sets the region\'s API Gateway CloudWatch role (inline policy, retained) before the stage, unless told not to', () => {
    const [accountId, account] = only(base, 'AWS::ApiGateway::Account');
    const role = base.stack.api.cloudWatchRole!;
    expect(account.Properties.CloudWatchRoleArn).toEqual({ 'Fn::GetAtt': [logicalId(role), 'Arn'] });
    expect(account.DeletionPolicy).toBe('Retain');
    const roleResource = resources(base, 'AWS::IAM::Role')[logicalId(role)]!;
    expect(roleResource.DeletionPolicy).toBe('Retain');
    expect(roleResource.Properties.ManagedPolicyArns).toBeUndefined();
    expect((roleResource.Properties.AssumeRolePolicyDocument as { Statement: unknown[] }).Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'apigateway.amazonaws.com' } },
    ]);
    const statements = (roleResource.Properties.Policies as { PolicyDocument: { Statement: Parameters<typeof normalize>[0][] } }[]).flatMap((p) => p.PolicyDocument.Statement);
    expect(statements.map(normalize)).toEqual([{
      sid: 'WriteApiGatewayLogs',
      effect: 'Allow',
      actions: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:DescribeLogGroups', 'logs:DescribeLogStreams', 'logs:PutLogEvents'],
      resources: ['arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*'],
      condition: undefined,
    }]);
    const [, stage] = only(base, 'AWS::ApiGateway::Stage');
    expect(stage.DependsOn).toContain(accountId);

    noCloudWatchRole.template.resourceCountIs('AWS::ApiGateway::Account', 0);
    expect(noCloudWatchRole.stack.api.cloudWatchRole).toBeUndefined();
    expect(Object.values(resources(noCloudWatchRole, 'AWS::IAM::Role')).some((r) => JSON.stringify(r.Properties).includes('apigateway.amazonaws.com'))).toBe(false);
  });

  it('outputs the API URL and the ARN callers need execute-api:Invoke on', () => {
    const api = logicalId(base.stack.api.api);
    const outputs = base.template.findOutputs('*') as Record<string, { Value: unknown }>;
    expect(flat(outputs.ApiUrl!.Value)).toBe(`https://<${api}>.execute-api.<AWS::Region>.<AWS::URLSuffix>/<${logicalId(base.stack.api.stage)}>/`);
    expect(flat(outputs.ApiInvokeArn!.Value)).toBe(`arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${api}>/v1/*/*`);
    // Only the stack's own outputs: RestApi's construct-path-named Endpoint output is not there.
    expect(Object.keys(outputs).filter((k) => k.startsWith('Api')).sort()).toEqual(['ApiInvokeArn', 'ApiUrl']);
  });
});

function apiFunction(app: BuiltApp) {
  return resources(app, 'AWS::Lambda::Function')[logicalId(app.stack.api.fn)]!.Properties as {
    Runtime: string;
    Architectures: string[];
    Handler: string;
    Timeout: number;
    MemorySize: number;
    TracingConfig: unknown;
    LoggingConfig: unknown;
    Role: unknown;
    Description: string;
    VpcConfig?: unknown;
    Environment: { Variables: Record<string, unknown> };
  };
}

describe('api Lambda', () => {
  it('runs lambdas/handlers/api.ts on nodejs22.x/arm64 with tracing and its own log group, within API Gateway\'s 29 s', () => {
    for (const app of [base, variant]) {
      const fn = apiFunction(app);
      expect(fn.Runtime).toBe('nodejs22.x');
      expect(fn.Architectures).toEqual(['arm64']);
      expect(fn.Handler).toBe('index.handler');
      expect(fn.TracingConfig).toEqual({ Mode: 'Active' });
      expect(fn.LoggingConfig).toEqual({ LogGroup: { Ref: logicalId(app.stack.api.logGroup) } });
      expect(fn.Role).toEqual({ 'Fn::GetAtt': [logicalId(app.stack.api.role), 'Arn'] });
      expect(fn.Timeout).toBe(29);
      expect(fn.Description).toContain('lambdas/handlers/api.ts');
    }
    expect(apiFunction(base).VpcConfig).toBeUndefined();
    expect(apiFunction(variant).VpcConfig).toEqual({ SubnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'], SecurityGroupIds: ['sg-0123456789abcdef0'] });
  });

  it('gets the steps\' environment, the three state machine ARNs, and a host-operation timeout shorter than its own', () => {
    for (const app of [base, variant]) {
      const stepEnv = (resources(app, 'AWS::Lambda::Function')[logicalId(app.stack.steps.forPlaceholder(stepPlaceholder('prepare-target'))!.fn)]!.Properties as { Environment: { Variables: Record<string, unknown> } }).Environment.Variables;
      const variables = apiFunction(app).Environment.Variables;
      expect(variables).toEqual({
        ...stepEnv,
        HOST_STEP_TIMEOUT_MS: '14000',
        STATE_MACHINE_INSTALL_ARN: { Ref: logicalId(app.stack.stateMachines.install) },
        STATE_MACHINE_ROLLBACK_ARN: { Ref: logicalId(app.stack.stateMachines.rollback) },
        STATE_MACHINE_UNINSTALL_ARN: { Ref: logicalId(app.stack.stateMachines.uninstall) },
        // Read by the rollout routes (POST /rollouts, GET /rollouts/{id}).
        ROLLOUT_STATE_MACHINE_ARN: { Ref: logicalId(app.stack.rollout.stateMachine) },
      });
      expect(Number(variables.HOST_STEP_TIMEOUT_MS)).toBeLessThan(API_FUNCTION_TIMEOUT.toMilliseconds());
    }
    expect(apiFunction(variant).Environment.Variables).toEqual(expect.objectContaining({ DEFAULT_TRANSPORT: 'eic', EIC_OS_USER: 'ec2-user', EIC_ENDPOINT_ID: VARIANT_CONTEXT.eicEndpointId }));
  });

  it('sets exactly what lambdas/commons/api-deps.ts reads', () => {
    const variables = apiFunction(base).Environment.Variables;
    const env = Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, typeof v === 'string' ? v : `arn:aws:states:us-east-1:111111111111:stateMachine:${k}`]));
    const deps = apiDepsFromEnv(env);
    expect(deps.steps.hostTimeoutMs).toBe(14_000);
    const options = (deps.engine as unknown as { options: SfnWorkflowEngineOptions }).options;
    for (const name of WORKFLOWS) expect(options.stateMachines[name]).toBe(`arn:aws:states:us-east-1:111111111111:stateMachine:${stateMachineArnVariable(name)}`);
  });
});

describe('api Lambda IAM', () => {
  const HOST_SIDS = ['PushEphemeralSshKey', 'TunnelThroughEndpoint', 'PluginHostDocument', 'RunOnWorkspaceInstances', 'FollowCommands'];

  function statements(app: BuiltApp) {
    return sortStatements(roleStatements(app.template, logicalId(app.stack.api.role)).map(normalize));
  }

  it('may start exactly the three state machines and the rollout, and read only their executions', () => {
    for (const [app, arn] of [
      [base, { partition: '<AWS::Partition>', region: '<AWS::Region>', account: '<AWS::AccountId>' }],
      [variant, { partition: 'aws', region: TEST_REGION, account: TEST_ACCOUNT }],
    ] as const) {
      const list = statements(app);
      const start = list.filter((s) => s.actions.some((a) => a.startsWith('states:')));
      expect(start).toEqual(sortStatements([
        {
          sid: 'StartWorkflows',
          effect: 'Allow',
          actions: ['states:StartExecution'],
          resources: WORKFLOWS.map((n) => `<${logicalId(app.stack.stateMachines[n])}>`).sort(),
          condition: undefined,
        },
        {
          sid: 'FollowWorkflows',
          effect: 'Allow',
          actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
          resources: ['install', 'rollback', 'uninstall'].map((w) => `WorkspacePluginInstaller-${w}`).map((m) => `arn:${arn.partition}:states:${arn.region}:${arn.account}:execution:${m}:*`),
          condition: undefined,
        },
        { sid: 'StartRollouts', effect: 'Allow', actions: ['states:StartExecution'], resources: [`<${logicalId(app.stack.rollout.stateMachine)}>`], condition: undefined },
        {
          sid: 'FollowRollouts',
          effect: 'Allow',
          actions: ['states:DescribeExecution'],
          resources: [`arn:${arn.partition}:states:${arn.region}:${arn.account}:execution:WorkspacePluginInstaller-rollout:*`],
          condition: undefined,
        },
      ]));
    }
  });

  it('has no states:* and no other state machine permission anywhere in the stack', () => {
    for (const app of [base, variant, noCloudWatchRole]) {
      const actions = allStatements(app.template).flatMap(actionsOf);
      expect(actions.filter((a) => a.includes('*'))).toEqual([]);
      // StopExecution: the rollout stops a child execution when it is stopped itself (test/infra/rollout.test.ts).
      expect([...new Set(actions.filter((a) => a.startsWith('states:')))].sort()).toEqual(['states:DescribeExecution', 'states:GetExecutionHistory', 'states:StartExecution', 'states:StopExecution']);
    }
  });

  it('reaches hosts with exactly the host steps\' statements and conditions, reads artifacts/ and rollouts/, and writes only rollout requests', () => {
    for (const app of [base, variant]) {
      const host = (list: ReturnType<typeof statements>) => list.filter((s) => HOST_SIDS.includes(s.sid));
      const acquireLock = STEP_SPECS.find((s) => s.file === 'acquire-lock')!;
      const stepStatements = sortStatements(roleStatements(app.template, logicalId(app.stack.steps.forPlaceholder(stepPlaceholder(acquireLock.file))!.role)).map(normalize));
      expect(host(statements(app))).toEqual(host(stepStatements));
      expect(host(statements(app)).length).toBe(app === variant ? 5 : 4);
    }
    const bucket = `<${logicalId(base.stack.bucket)}.Arn>`;
    const s3 = statements(base).filter((s) => s.actions.some((a) => a.startsWith('s3:')));
    expect(s3).toEqual(sortStatements([
      // Prepare's rights: an external workspace's download validates and stores the catalog's tarball.
      { sid: 'StreamUploads', effect: 'Allow', actions: ['s3:AbortMultipartUpload', 's3:DeleteObject', 's3:GetObject', 's3:PutObject'], resources: [`${bucket}/uploads/*`], condition: undefined },
      { sid: 'CommitArtifacts', effect: 'Allow', actions: ['s3:GetObject', 's3:PutObject'], resources: [`${bucket}/artifacts/*`], condition: undefined },
      { sid: 'ReadCatalog', effect: 'Allow', actions: ['s3:GetObject'], resources: [`${bucket}/catalog/*`], condition: undefined },
      { sid: 'TellMissingFromDenied', effect: 'Allow', actions: ['s3:ListBucket'], resources: [bucket], condition: undefined },
      { sid: 'ReadRolloutReports', effect: 'Allow', actions: ['s3:GetObject'], resources: [`${bucket}/rollouts/*`], condition: undefined },
      { sid: 'StoreRolloutRequests', effect: 'Allow', actions: ['s3:PutObject'], resources: [`${bucket}/rollouts/*/request.json`], condition: undefined },
    ]));
    // Never the rollout locks: only the rollout's own steps take and release them.
    expect(s3.flatMap((s) => s.resources).filter((r) => r.includes('rollout-locks'))).toEqual([]);
  });

  it('has nothing else: own logs, X-Ray, the workspace lookup (and the ENI actions with VPC placement)', () => {
    const known = new Set([...HOST_SIDS, 'StartWorkflows', 'FollowWorkflows', 'StartRollouts', 'FollowRollouts', 'StreamUploads', 'CommitArtifacts', 'ReadCatalog', 'TellMissingFromDenied', 'ReadRolloutReports', 'StoreRolloutRequests']);
    const rest = (app: BuiltApp) => statements(app).filter((s) => !known.has(s.sid));
    expect(rest(base)).toEqual(sortStatements([
      { sid: 'WriteOwnLogs', effect: 'Allow', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [`<${logicalId(base.stack.api.logGroup)}.Arn>`], condition: undefined },
      { sid: '', effect: 'Allow', actions: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'], resources: ['*'], condition: undefined },
      { sid: 'LookUpWorkspaces', effect: 'Allow', actions: ['ec2:DescribeInstances'], resources: ['*'], condition: undefined },
    ]));
    expect(rest(variant).map((s) => s.sid).sort()).toEqual(['', 'LookUpWorkspaces', 'ManageVpcNetworkInterfaces', 'WriteOwnLogs']);
  });
});

describe('cdk-nag on the API', () => {
  it('reports nothing unacknowledged, with or without the CloudWatch role', () => {
    for (const app of [base, variant, noCloudWatchRole]) {
      const report = new AwsSolutionsChecks().validateScope(app.app);
      expect(report.violations.map((v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    }
  });

  it('fixes APIG1/2/4/6 (access logs, validation, IAM auth, execution logs) rather than acknowledging them; WAF and Cognito are acknowledged with reasons', () => {
    const apiPath = base.stack.api.node.path;
    const acks = acknowledgements(base.app).filter((a) => a.path.startsWith(`${apiPath}/`));
    for (const rule of ['AwsSolutions-APIG1', 'AwsSolutions-APIG2', 'AwsSolutions-APIG4', 'AwsSolutions-APIG6', 'AwsSolutions-IAM4']) {
      expect(acks.filter((a) => a.id === rule), rule).toEqual([]);
    }
    expect(acks.filter((a) => a.id === 'AwsSolutions-APIG3').map((a) => a.path)).toEqual([base.stack.api.stage.node.path]);
    expect(acks.filter((a) => a.id === 'AwsSolutions-COG4').map((a) => a.path).sort()).toEqual(base.stack.api.methods.map((m) => m.method.node.path).sort());
    for (const ack of acks) expect(ack.reason.trim().length, `${ack.id} on ${ack.path}`).toBeGreaterThanOrEqual(MIN_REASON_LENGTH);
  });

  it('acknowledges only findings that exist without the CloudWatch role too', () => {
    const props = { context: { ...cdkJson().context, apiCloudWatchRole: false, 'aws:cdk:bundling-stacks': [] } };
    const acks = acknowledgements(buildInstallerApp(props, {}).app).filter((a) => a.id.startsWith('AwsSolutions-'));
    vi.spyOn(Validations.prototype, 'acknowledge').mockImplementation(() => undefined);
    const { app } = buildInstallerApp(props, {});
    const raw = new AwsSolutionsChecks().validateScope(app).violations.flatMap((v) => v.violatingResources.map((r) => ({ id: v.ruleName, path: r.constructPath ?? '' })));
    const covers = (a: { id: string; path: string }, f: { id: string; path: string }) => a.id === f.id && (f.path === a.path || f.path.startsWith(`${a.path}/`));
    for (const ack of acks) expect(raw.some((f) => covers(ack, f)), `${ack.id} on ${ack.path} matches no finding`).toBe(true);
    for (const finding of raw) expect(acks.some((a) => covers(a, finding)), `${finding.id} on ${finding.path}`).toBe(true);
  });
});
