/** One Powertools logger and metrics instance per Lambda container. */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';

export const SERVICE_NAME = 'workspace-plugin-installer';

export const logger = new Logger({ serviceName: SERVICE_NAME });
export const metrics = new Metrics({ namespace: 'WorkspacePluginInstaller', serviceName: SERVICE_NAME });
