/**
 * The api Lambda's ports: the AWS step ports plus the Step Functions engine, from environment
 * variables set by infra/ (STATE_MACHINE_INSTALL_ARN, STATE_MACHINE_ROLLBACK_ARN,
 * STATE_MACHINE_UNINSTALL_ARN, ROLLOUT_STATE_MACHINE_ARN, and those of aws-deps.ts).
 * POST /rollouts starts ROLLOUT_STATE_MACHINE_ARN; the rollouts' documents come with the step
 * ports (`steps.rollouts`, the RolloutStore in the artifact bucket), as the rollout's own steps
 * read them. Without that variable every other route still works and the rollout routes say
 * what is missing.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import type { ApiDeps } from '../core/api/plugin-api.ts';
import { PluginError } from '../core/errors.ts';
import { SfnWorkflowEngine } from '../core/workflow/sfn-workflow-engine.ts';
import { awsDeps } from './aws-deps.ts';

export function apiDepsFromEnv(env: NodeJS.ProcessEnv = process.env): ApiDeps {
  const arn = (name: string): string => {
    const value = env[name];
    if (!value) throw new PluginError('InvalidInput', `${name} is not set`, 'deploy with infra/ (it sets the function environment)');
    return value;
  };
  return {
    steps: awsDeps(env),
    engine: new SfnWorkflowEngine({
      client: new SFNClient({}),
      stateMachines: {
        install: arn('STATE_MACHINE_INSTALL_ARN'),
        rollback: arn('STATE_MACHINE_ROLLBACK_ARN'),
        uninstall: arn('STATE_MACHINE_UNINSTALL_ARN'),
        ...(env.ROLLOUT_STATE_MACHINE_ARN ? { rollout: env.ROLLOUT_STATE_MACHINE_ARN } : {}),
      },
    }),
    downloadUrlSeconds: 300,
  };
}
