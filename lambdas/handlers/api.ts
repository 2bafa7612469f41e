/**
 * The api Lambda behind API Gateway (REST, IAM auth, proxy integration): API Gateway event →
 * route code (lambdas/core/api/plugin-api.ts) → proxy result. Ports are built once per container.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import type { ApiDeps } from '../core/api/plugin-api.ts';
import { handleApiRequest } from '../core/api/plugin-api.ts';
import { logger } from '../commons/logger.ts';

let deps: Promise<ApiDeps> | undefined;

export function apiHandler(getDeps: () => Promise<ApiDeps>) {
  return async (event: APIGatewayProxyEvent, context?: Context): Promise<APIGatewayProxyResult> => {
    if (context) logger.addContext(context);
    const headers = Object.fromEntries(Object.entries(event.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v ?? undefined]));
    const rawBody = event.body && event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
    const stage = event.requestContext?.stage;
    const base = await getDeps();
    try {
      const response = await handleApiRequest(
        { method: event.httpMethod, path: event.path, query: { ...event.queryStringParameters }, headers, body: rawBody },
        { ...base, basePath: stage && stage !== '$default' ? `/${stage}` : '' },
      );
      logger.info('api request', { method: event.httpMethod, path: event.path, status: response.status, caller: event.requestContext?.identity?.userArn });
      return { statusCode: response.status, headers: response.headers, body: response.body ?? '' };
    } catch (err) {
      logger.error('api request failed', { method: event.httpMethod, path: event.path, error: err as Error });
      return { statusCode: 500, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: { code: 'InternalError', message: 'internal error', hint: 'see the api function logs' } }) };
    }
  };
}

export const handler = apiHandler(() => {
  deps ??= import('../commons/api-deps.ts').then((m) => m.apiDepsFromEnv());
  return deps;
});
