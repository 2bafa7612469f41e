/**
 * The control plane's HTTP API on AWS: an API Gateway REST API (regional, stage `v1`) in front of
 * the api Lambda (lambdas/handlers/api.ts → lambdas/core/api/plugin-api.ts), exactly the design's
 * six routes and the fleet rollout's two, each a Lambda proxy integration with IAM (SigV4) authorization.
 *
 * Before a request reaches the function API Gateway checks:
 *   - the caller's SigV4 signature and `execute-api:Invoke` permission (AuthorizationType.IAM on
 *     every method; there is no unauthenticated route),
 *   - the required path parameters, and the install and rollout bodies against the
 *     `InstallRequest` and `RolloutRequest` models, which are the zod schemas the handler validates
 *     with (`InstallBody`, `RolloutBody`), converted to JSON Schema draft 4 (API Gateway's model
 *     dialect) by zod itself,
 *   - the stage's throttle (20 requests/s, bursts of 40; API Gateway answers 429 beyond).
 * The function validates everything again (it is also `pluginctl serve`'s code).
 *
 * Access logs: one JSON object per request (request id, caller, method, path, status, latency…)
 * in their own log group; execution logs at level ERROR (no request or response data); X-Ray.
 * Errors API Gateway answers itself (bad signature, throttled, invalid body) use the product's
 * error shape `{error: {code, message, hint}}`.
 *
 * REST API logging needs the region's API Gateway account setting (a CloudWatch Logs role). With
 * the `apiCloudWatchRole` setting (default) this construct creates that role with an inline
 * policy and sets it; both are retained when the stack is deleted, since the setting is shared by
 * every REST API of the account in the region.
 *
 * The api Lambda reads the workspace's host to answer list, download, DELETE and rollback, so it
 * gets the host steps' bundling (host scripts next to index.mjs), environment, VPC placement and
 * host-access statements, plus: states:StartExecution on the three state machines,
 * states:DescribeExecution / GetExecutionHistory on their executions, and read access to
 * artifacts/ (presigned downloads).
 *
 * Fleet rollouts (POST /rollouts, GET /rollouts/{id}): ROLLOUT_STATE_MACHINE_ARN in the
 * environment; states:StartExecution on the rollout state machine and states:DescribeExecution on
 * its executions; s3:GetObject on rollouts/* (the record and result pages a report is read from)
 * and s3:PutObject on rollouts/<id>/request.json only (a rollout starts by storing its request
 * there: a 10,000-target list does not fit an execution input). Nothing on rollout-locks/.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { toJSONSchema, type ZodType } from 'zod';
import { InstallBody, RolloutBody } from '../../lambdas/core/api/api-schemas.ts';
import { WORKFLOWS, type WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';
import type { InstallerSettings } from '../settings.ts';
import { acknowledge, acknowledgeWildcardResource } from './nag.ts';
import { ROLLOUTS_PREFIX } from './rollout-steps.ts';
import { deployedName, executionsOf, type RolloutWorkflow } from './rollout-workflow.ts';
import {
  grantHostAccess,
  grantSourceStorage,
  grantVpcNetworkInterfaces,
  grantWorkspaceLookup,
  HANDLERS_DIR,
  hostCodeBundling,
  hostOperationTimeoutMs,
  NODE_RUNTIME_REASON,
  PROJECT_ROOT,
  type StepLambdas,
} from './step-functions.ts';

export const API_STAGE = 'v1';
export const API_NAME = 'workspace-plugin-installer';
/** Stage throttle: steady requests per second, and the burst above it. */
export const API_THROTTLE = { rateLimit: 20, burstLimit: 40 } as const;
/**
 * API Gateway gives an integration at most 29 s by default; the function gets the same, so it
 * never outlives its caller. Its host operation (plugin listing) gets the host steps' budget rule,
 * the timeout less 15 s: 14 s.
 */
export const API_FUNCTION_TIMEOUT = Duration.seconds(29);
export const API_MEMORY_MB = 512;
export const INSTALL_MODEL_NAME = 'InstallRequest';
export const ROLLOUT_MODEL_NAME = 'RolloutRequest';

/** The request body models: the name docs/openapi.json gives the body, and the handler's zod schema. */
export const REQUEST_MODELS = {
  [INSTALL_MODEL_NAME]: { schema: InstallBody, route: 'POST /workspaces/{id}/plugins', shape: '{source, sha256?, runtime?}' },
  [ROLLOUT_MODEL_NAME]: { schema: RolloutBody, route: 'POST /rollouts', shape: '{source, sha256?, workspaces | selector, maxConcurrency, maxErrors, canary, rollbackOnHalt}' },
} as const;
export type RequestModelName = keyof typeof REQUEST_MODELS;

export type ApiMethod = 'GET' | 'POST' | 'DELETE';

export interface ApiRoute {
  readonly method: ApiMethod;
  readonly path: string;
  /** The method's operation name (API Gateway console, SDK generation). */
  readonly operation: string;
  /** The body model API Gateway checks before the function runs. */
  readonly model?: RequestModelName;
}

/** The design's HTTP API table and the fleet rollout's two routes, nothing more. */
export const API_ROUTES: readonly ApiRoute[] = [
  { method: 'POST', path: '/workspaces/{id}/plugins', operation: 'InstallPlugin', model: INSTALL_MODEL_NAME },
  { method: 'GET', path: '/workspaces/{id}/plugins', operation: 'ListPlugins' },
  { method: 'DELETE', path: '/workspaces/{id}/plugins/{name}', operation: 'UninstallPlugin' },
  { method: 'POST', path: '/workspaces/{id}/plugins/{name}/rollback', operation: 'RollBackPlugin' },
  { method: 'GET', path: '/workspaces/{id}/plugins/{name}/download', operation: 'DownloadPlugin' },
  { method: 'GET', path: '/executions/{id}', operation: 'DescribeExecution' },
  { method: 'POST', path: '/rollouts', operation: 'StartRollout', model: ROLLOUT_MODEL_NAME },
  { method: 'GET', path: '/rollouts/{id}', operation: 'DescribeRollout' },
];

/** The rollout state machine's ARN in the api function's environment (read through lambdas/commons/aws-deps.ts). */
export const ROLLOUT_STATE_MACHINE_ARN_VARIABLE = 'ROLLOUT_STATE_MACHINE_ARN';

/** `install` → `STATE_MACHINE_INSTALL_ARN` (read by lambdas/commons/api-deps.ts). */
export function stateMachineArnVariable(workflow: WorkflowName): string {
  return `STATE_MACHINE_${workflow.toUpperCase()}_ARN`;
}

const SCHEMA_TYPES = new Set<string>(Object.values(apigw.JsonSchemaType));
const SUBSCHEMA = new Set(['items', 'additionalItems', 'not', 'propertyNames', 'contains']);
const SUBSCHEMA_LIST = new Set(['allOf', 'anyOf', 'oneOf']);
const SUBSCHEMA_MAP = new Set(['properties', 'patternProperties', 'definitions']);
const VALUE_KEYS = new Set([
  'title', 'description', 'enum', 'default', 'format', 'multipleOf', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum',
  'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems', 'maxProperties', 'minProperties', 'required',
]);

/**
 * A draft-4 JSON Schema document (as zod writes it) in CDK's `JsonSchema` shape. Keywords outside
 * what API Gateway models support fail synthesis, so the model can never silently validate less
 * than the schema says.
 */
export function toApiGatewaySchema(json: Record<string, unknown>, at = '#'): apigw.JsonSchema {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    const where = `${at}/${key}`;
    if (key === '$schema') {
      if (value !== apigw.JsonSchemaVersion.DRAFT4) throw new Error(`${where}: API Gateway models are JSON Schema draft 4, got ${JSON.stringify(value)}`);
      out.schema = apigw.JsonSchemaVersion.DRAFT4;
    } else if (key === 'type') {
      const types = Array.isArray(value) ? value : [value];
      for (const t of types) if (typeof t !== 'string' || !SCHEMA_TYPES.has(t)) throw new Error(`${where}: unknown type ${JSON.stringify(t)}`);
      out.type = value;
    } else if (key === 'additionalProperties') {
      out.additionalProperties = typeof value === 'boolean' ? value : toApiGatewaySchema(value as Record<string, unknown>, where);
    } else if (SUBSCHEMA.has(key)) {
      out[key] = Array.isArray(value) ? value.map((v, i) => toApiGatewaySchema(v as Record<string, unknown>, `${where}/${i}`)) : toApiGatewaySchema(value as Record<string, unknown>, where);
    } else if (SUBSCHEMA_LIST.has(key)) {
      out[key] = (value as Record<string, unknown>[]).map((v, i) => toApiGatewaySchema(v, `${where}/${i}`));
    } else if (SUBSCHEMA_MAP.has(key)) {
      out[key] = Object.fromEntries(Object.entries(value as Record<string, Record<string, unknown>>).map(([k, v]) => [k, toApiGatewaySchema(v, `${where}/${k}`)]));
    } else if (VALUE_KEYS.has(key)) {
      out[key] = value;
    } else {
      throw new Error(`${where}: JSON Schema keyword ${key} has no API Gateway model equivalent here`);
    }
  }
  return out as apigw.JsonSchema;
}

/** The API Gateway model schema of a request body zod schema (what the handler validates with). */
export function modelSchema(schema: ZodType): apigw.JsonSchema {
  return toApiGatewaySchema(toJSONSchema(schema, { target: 'draft-4', io: 'input' }) as Record<string, unknown>);
}

/** The access log line: one JSON object per request. */
export function accessLogFormat(): apigw.AccessLogFormat {
  const f = apigw.AccessLogField;
  return apigw.AccessLogFormat.custom(JSON.stringify({
    requestId: f.contextRequestId(),
    requestTime: f.contextRequestTime(),
    caller: f.contextIdentityCaller(),
    userArn: f.contextIdentityUserArn(),
    accountId: f.contextCallerAccountId(),
    sourceIp: f.contextIdentitySourceIp(),
    method: f.contextHttpMethod(),
    path: f.contextPath(),
    resourcePath: f.contextResourcePath(),
    status: f.contextStatus(),
    latency: f.contextResponseLatency(),
    integrationLatency: f.contextIntegrationLatency(),
    responseLength: f.contextResponseLength(),
    errorType: f.contextErrorResponseType(),
    xrayTraceId: f.contextXrayTraceId(),
  }));
}

/** The name a state machine is deployed under: the literal when it has one (ours do), else its Name attribute. */
function physicalName(machine: sfn.StateMachine): string {
  return (machine.node.defaultChild as sfn.CfnStateMachine).stateMachineName ?? machine.stateMachineName;
}

/** `{error: {code, message, hint}}`, the product's error shape, for answers API Gateway gives itself. */
function errorTemplate(code: string, hint: string): Record<string, string> {
  return { 'application/json': `{"error":{"code":"${code}","message":$context.error.messageString,"hint":${JSON.stringify(hint)}}}` };
}

export interface ControlPlaneApiProps {
  readonly settings: InstallerSettings;
  /** Named state machines: IAM scopes the execution ARNs by their names. */
  readonly stateMachines: Readonly<Record<WorkflowName, sfn.StateMachine>>;
  /** The fleet rollout the api starts and follows. */
  readonly rollout: RolloutWorkflow;
  readonly bucket: IBucket;
  /** The step Lambdas: the api Lambda shares their environment and VPC placement. */
  readonly steps: StepLambdas;
  /** Default one month. */
  readonly logRetention?: logs.RetentionDays;
}

export class ControlPlaneApi extends Construct {
  readonly fn: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly api: apigw.RestApi;
  readonly stage: apigw.Stage;
  readonly requestValidator: apigw.RequestValidator;
  /** The body models, by name (REQUEST_MODELS). */
  readonly models: Readonly<Record<RequestModelName, apigw.Model>>;
  readonly accessLogs: logs.LogGroup;
  readonly executionLogs: logs.LogGroup;
  /** The API Gateway account setting's CloudWatch Logs role, when this stack sets it. */
  readonly cloudWatchRole?: iam.Role;
  readonly methods: readonly { route: ApiRoute; method: apigw.Method }[];

  constructor(scope: Construct, id: string, props: ControlPlaneApiProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { settings } = props;
    const retention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    // ---- the api Lambda ----------------------------------------------------------------------
    this.logGroup = new logs.LogGroup(this, 'FunctionLogs', { retention });
    this.role = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Execution role of the api Lambda (HTTP API of workspace-plugin-installer)',
    });
    const role = this.role;
    role.addToPolicy(new iam.PolicyStatement({ sid: 'WriteOwnLogs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [this.logGroup.logGroupArn] }));

    const machineArns: Record<string, string> = {};
    for (const name of WORKFLOWS) machineArns[stateMachineArnVariable(name)] = props.stateMachines[name].stateMachineArn;
    machineArns[ROLLOUT_STATE_MACHINE_ARN_VARIABLE] = props.rollout.stateMachine.stateMachineArn;

    this.fn = new NodejsFunction(this, 'Function', {
      description: `workspace-plugin-installer HTTP API (${HANDLERS_DIR}/api.ts)`,
      entry: `${PROJECT_ROOT}${HANDLERS_DIR}/api.ts`,
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: `${PROJECT_ROOT}package-lock.json`,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      timeout: API_FUNCTION_TIMEOUT,
      memorySize: API_MEMORY_MB,
      tracing: Tracing.ACTIVE,
      role,
      logGroup: this.logGroup,
      environment: { ...props.steps.environment, HOST_STEP_TIMEOUT_MS: String(hostOperationTimeoutMs(API_FUNCTION_TIMEOUT)), ...machineArns },
      ...props.steps.placement,
      bundling: hostCodeBundling(),
    });

    grantWorkspaceLookup(role);
    grantHostAccess(role, settings, 'The api Lambda lists the plugins on a workspace host (list, download, DELETE, rollback) and needs to', props.steps.hostDocument);
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'StartWorkflows',
      actions: ['states:StartExecution'],
      resources: WORKFLOWS.map((name) => props.stateMachines[name].stateMachineArn),
    }));
    const executionArns = WORKFLOWS.map((name) => stack.formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${physicalName(props.stateMachines[name])}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    }));
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'FollowWorkflows',
      actions: ['states:DescribeExecution', 'states:GetExecutionHistory'],
      resources: executionArns,
    }));
    const rolloutExecutions = executionsOf(this, deployedName(props.rollout.stateMachine));
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'StartRollouts',
      actions: ['states:StartExecution'],
      resources: [props.rollout.stateMachine.stateMachineArn],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'FollowRollouts',
      actions: ['states:DescribeExecution'],
      resources: [rolloutExecutions],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'ReadRolloutReports',
      actions: ['s3:GetObject'],
      resources: [props.bucket.arnForObjects(`${ROLLOUTS_PREFIX}*`)],
    }));
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'StoreRolloutRequests',
      actions: ['s3:PutObject'],
      resources: [props.bucket.arnForObjects(`${ROLLOUTS_PREFIX}*/request.json`)],
    }));
    // The download route presigns GETs of artifacts/ (the URL carries these rights) and, for an
    // external workspace, validates the catalog's tarball and stores it under its digest first:
    // Prepare's rights (POST …/plugins also reads catalog/ to refuse a version it lacks at once).
    grantSourceStorage(role, props.bucket, 'The api function (an external workspace\'s download, and the install route\'s source check)');
    if (settings.vpc) grantVpcNetworkInterfaces(role);

    for (const [i, arn] of executionArns.entries()) {
      acknowledgeWildcardResource(
        role,
        arn,
        `Execution names are made per request (<workspace>-<plugin>-<stamp>); the api reads status and history only of executions of the ${WORKFLOWS[i]} state machine this stack deploys.`,
      );
    }
    acknowledgeWildcardResource(
      role,
      rolloutExecutions,
      'Rollout execution names are made per request (<rollout id>-<stamp>); the api reads the status only of executions of the rollout state machine this stack deploys.',
    );
    acknowledgeWildcardResource(
      role,
      props.bucket.arnForObjects(`${ROLLOUTS_PREFIX}*`),
      'GET /rollouts/{id} reads a rollout\'s record and result pages below rollouts/<rollout id>/; the grant is read-only and limited to that prefix.',
    );
    acknowledgeWildcardResource(
      role,
      props.bucket.arnForObjects(`${ROLLOUTS_PREFIX}*/request.json`),
      'POST /rollouts stores the request (up to 10,000 targets, too big for an execution input) at rollouts/<rollout id>/request.json; the grant is write-only and limited to those keys.',
    );
    acknowledgeWildcardResource(
      role,
      '*',
      'Resource "*" only where IAM has no resource-level permissions: ec2:DescribeInstances, X-Ray PutTraceSegments/PutTelemetryRecords, ssm:GetCommandInvocation/CancelCommand/ListCommandInvocations (command ids exist only after SendCommand)'
        + (settings.vpc ? ', and the ENI actions Lambda needs to attach the function to the VPC' : '')
        + '.',
    );
    acknowledge(this.fn, 'AwsSolutions-L1', NODE_RUNTIME_REASON);

    // ---- the REST API ------------------------------------------------------------------------
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention });
    this.api = new apigw.RestApi(this, 'Api', {
      restApiName: API_NAME,
      description: 'workspace-plugin-installer HTTP API (IAM auth): install, list, uninstall, roll back, download plugins; execution status',
      endpointConfiguration: { types: [apigw.EndpointType.REGIONAL] },
      // The account setting is made below (or left to the account), not by the construct.
      cloudWatchRole: false,
      deployOptions: {
        stageName: API_STAGE,
        description: 'workspace-plugin-installer HTTP API, version 1',
        throttlingRateLimit: API_THROTTLE.rateLimit,
        throttlingBurstLimit: API_THROTTLE.burstLimit,
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: accessLogFormat(),
        tracingEnabled: true,
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        // Request and response bodies stay out of the logs.
        dataTraceEnabled: false,
        metricsEnabled: true,
      },
    });
    this.stage = this.api.deploymentStage;
    // RestApi adds an output named after its construct path; the stack outputs `ApiUrl` instead.
    this.api.node.tryRemoveChild('Endpoint');

    // API Gateway writes execution logs to this group, creating it (without retention) if missing.
    this.executionLogs = new logs.LogGroup(this, 'ExecutionLogs', {
      logGroupName: `API-Gateway-Execution-Logs_${this.api.restApiId}/${API_STAGE}`,
      retention,
    });
    this.stage.node.addDependency(this.executionLogs);

    if (settings.apiCloudWatchRole) {
      this.cloudWatchRole = new iam.Role(this, 'CloudWatchRole', {
        assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
        description: 'API Gateway account setting of this region: writes REST API execution and access logs to CloudWatch Logs',
        // Inline, so the role has its permissions the moment the account setting names it.
        inlinePolicies: {
          PushToCloudWatchLogs: new iam.PolicyDocument({
            statements: [new iam.PolicyStatement({
              sid: 'WriteApiGatewayLogs',
              actions: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:DescribeLogGroups', 'logs:DescribeLogStreams', 'logs:PutLogEvents'],
              resources: [stack.formatArn({ service: 'logs', resource: 'log-group', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
            })],
          }),
        },
      });
      // Shared by every REST API of the account in this region: deleting this stack must not
      // leave the setting pointing at a deleted role.
      this.cloudWatchRole.applyRemovalPolicy(RemovalPolicy.RETAIN);
      const account = new apigw.CfnAccount(this, 'Account', { cloudWatchRoleArn: this.cloudWatchRole.roleArn });
      account.applyRemovalPolicy(RemovalPolicy.RETAIN);
      this.stage.node.addDependency(account);
      acknowledgeWildcardResource(
        this.cloudWatchRole,
        stack.formatArn({ service: 'logs', resource: 'log-group', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
        'The API Gateway account setting serves every REST API of this account and region, and API Gateway names execution log groups per API and stage; the grant is limited to log groups of this account and region and to writing.',
      );
    }

    this.requestValidator = this.api.addRequestValidator('RequestValidator', {
      requestValidatorName: 'body-and-parameters',
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    this.models = {
      [INSTALL_MODEL_NAME]: this.api.addModel('InstallRequestModel', {
        modelName: INSTALL_MODEL_NAME,
        contentType: 'application/json',
        description: 'POST /workspaces/{id}/plugins body (InstallBody in lambdas/core/api/api-schemas.ts)',
        schema: modelSchema(InstallBody),
      }),
      [ROLLOUT_MODEL_NAME]: this.api.addModel('RolloutRequestModel', {
        modelName: ROLLOUT_MODEL_NAME,
        contentType: 'application/json',
        description: 'POST /rollouts body (RolloutBody in lambdas/core/api/api-schemas.ts)',
        schema: modelSchema(RolloutBody),
      }),
    };

    this.api.addGatewayResponse('InvalidBody', {
      type: apigw.ResponseType.BAD_REQUEST_BODY,
      // One gateway response serves both models (it cannot tell which route it answers), so its hint names both shapes.
      templates: errorTemplate(
        'InvalidInput',
        `an install body is ${REQUEST_MODELS.InstallRequest.shape}, a rollout body ${REQUEST_MODELS.RolloutRequest.shape}, nothing else (InstallRequest, RolloutRequest in docs/openapi.json)`,
      ),
    });
    this.api.addGatewayResponse('InvalidParameters', {
      type: apigw.ResponseType.BAD_REQUEST_PARAMETERS,
      templates: errorTemplate('InvalidInput', 'see docs/openapi.json for the routes and their parameters'),
    });
    this.api.addGatewayResponse('Default4xx', {
      type: apigw.ResponseType.DEFAULT_4XX,
      templates: errorTemplate('$context.error.responseType', 'sign requests with SigV4 for execute-api as a principal allowed execute-api:Invoke on this API; 429 means throttled, retry with backoff (docs/deploy.md)'),
    });
    this.api.addGatewayResponse('Default5xx', {
      type: apigw.ResponseType.DEFAULT_5XX,
      templates: errorTemplate('$context.error.responseType', 'retry shortly; the api function logs say more'),
    });

    const integration = new apigw.LambdaIntegration(this.fn, { proxy: true, allowTestInvoke: false, timeout: API_FUNCTION_TIMEOUT });
    const methods: { route: ApiRoute; method: apigw.Method }[] = [];
    for (const route of API_ROUTES) {
      const resource = this.api.root.resourceForPath(route.path);
      const pathParameters = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      const method = resource.addMethod(route.method, integration, {
        operationName: route.operation,
        authorizationType: apigw.AuthorizationType.IAM,
        requestValidator: this.requestValidator,
        requestParameters: {
          ...Object.fromEntries(pathParameters.map((p) => [`method.request.path.${p}`, true])),
          // Optional: a retried request with the same key meets the first execution.
          ...(route.method === 'GET' ? {} : { 'method.request.header.Idempotency-Key': false }),
        },
        ...(route.model ? { requestModels: { 'application/json': this.models[route.model] } } : {}),
      });
      acknowledge(method, 'AwsSolutions-COG4', 'The API authorizes with IAM (SigV4, execute-api:Invoke): its only caller is the control plane, an AWS principal, not end users of a Cognito user pool.');
      methods.push({ route, method });
    }
    this.methods = methods;

    acknowledge(
      this.stage,
      'AwsSolutions-APIG3',
      'No WAF web ACL: every method requires a SigV4 signature of a principal allowed execute-api:Invoke, so anonymous traffic is refused before any rule would run; the stage throttle (20/s, burst 40) bounds the rest.',
    );
  }

  /** `arn:…:execute-api:<region>:<account>:<api id>/v1/*\/*`: what a caller's IAM policy allows `execute-api:Invoke` on. */
  invokeArn(): string {
    return this.api.arnForExecuteApi('*', '/*', API_STAGE);
  }
}
