/**
 * The Step Functions WorkflowEngine adapter: how SDK errors map to what the API answers
 * (aws-sdk-client-mock stands in for Step Functions: error mapping only), and how an execution
 * history becomes the per-step summary.
 */
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  InvalidArn,
  SFNClient,
  SFNServiceException,
  StartExecutionCommand,
  type HistoryEvent,
} from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { SfnWorkflowEngine, summarizeHistory } from '../../lambdas/core/workflow/sfn-workflow-engine.ts';

const sfn = mockClient(SFNClient);
afterEach(() => sfn.reset());

const SM = 'arn:aws:states:us-east-1:111111111111:stateMachine:plugin-install';
const engine = () =>
  new SfnWorkflowEngine({
    client: new SFNClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }),
    stateMachines: { install: SM, rollback: SM.replace('install', 'rollback'), uninstall: SM.replace('install', 'uninstall') },
  });

function serviceError(name: string, status: number): SFNServiceException {
  return new SFNServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message: `${name} happened` });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return err instanceof PluginError ? err.code : `raw:${(err as Error).name}`;
  }
  return 'resolved';
}

describe('start', () => {
  it('returns the new execution', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: `${SM.replace(':stateMachine:', ':execution:')}:ws-p-1`, startDate: new Date() });
    const r = await engine().start('install', 'ws-p-1', { a: 1 });
    expect(r).toMatchObject({ id: 'install.ws-p-1', existing: false });
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input).toMatchObject({ stateMachineArn: SM, name: 'ws-p-1', input: '{"a":1}' });
  });

  it('maps ExecutionAlreadyExists to the existing execution (idempotent retry)', async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    const r = await engine().start('install', 'ws-p-k1', {});
    expect(r).toEqual({ id: 'install.ws-p-k1', executionArn: 'arn:aws:states:us-east-1:111111111111:execution:plugin-install:ws-p-k1', executionName: 'ws-p-k1', existing: true });
  });

  it.each([
    ['ThrottlingException', 400, 'HostUnreachable'],
    ['ServiceUnavailable', 503, 'HostUnreachable'],
    ['InternalServerError', 500, 'HostUnreachable'],
    ['AccessDeniedException', 400, 'HostStepFailed'],
    ['StateMachineDoesNotExist', 400, 'HostStepFailed'],
  ])('maps %s (%d) to %s', async (name, status, code) => {
    sfn.on(StartExecutionCommand).rejects(serviceError(name, status));
    expect(await codeOf(engine().start('install', 'x', {}))).toBe(code);
  });

  it('lets unexpected client errors through unchanged', async () => {
    sfn.on(StartExecutionCommand).rejects(serviceError('InvalidExecutionInput', 400));
    expect(await codeOf(engine().start('install', 'x', {}))).toBe('raw:InvalidExecutionInput');
  });
});

describe('describe', () => {
  it('is undefined for an unknown execution', async () => {
    sfn.on(DescribeExecutionCommand).rejects(new ExecutionDoesNotExist({ message: 'no', $metadata: {} }));
    expect(await engine().describe('install.nope')).toBeUndefined();
  });

  it('maps InvalidArn and throttling', async () => {
    sfn.on(DescribeExecutionCommand).rejectsOnce(new InvalidArn({ message: 'bad', $metadata: {} })).rejectsOnce(serviceError('ThrottlingException', 400));
    expect(await codeOf(engine().describe('install.x'))).toBe('HostStepFailed');
    expect(await codeOf(engine().describe('install.x'))).toBe('HostUnreachable');
  });

  it('refuses a malformed id before calling AWS', async () => {
    expect(await codeOf(engine().describe('frobnicate.x'))).toBe('InvalidInput');
    expect(sfn.calls()).toHaveLength(0);
  });

  it('summarises a failed execution with the original error code and hint', async () => {
    const t0 = new Date('2026-11-25T08:00:00Z').getTime();
    sfn.on(DescribeExecutionCommand).resolves({
      status: 'FAILED',
      startDate: new Date(t0),
      stopDate: new Date(t0 + 900),
      error: 'LockBusy',
      cause: JSON.stringify({ errorType: 'LockBusy', errorMessage: JSON.stringify({ code: 'LockBusy', message: 'plugin p is busy', hint: 'retry later' }) }),
    });
    sfn.on(GetExecutionHistoryCommand).resolves({ events: HISTORY(t0) });
    const s = await engine().describe('install.ws-p-1');
    expect(s).toMatchObject({ status: 'FAILED', error: { code: 'LockBusy', message: 'plugin p is busy', hint: 'retry later' } });
    expect(s!.steps).toEqual([
      { name: 'Prepare', status: 'succeeded', ms: 100, attempts: 1 },
      { name: 'AcquireLock', status: 'failed', ms: 200, attempts: 2, error: 'LockBusy' },
      { name: 'RollBack', status: 'succeeded', ms: 100, attempts: 1 },
      { name: 'InstallFailed', status: 'failed', ms: 0, attempts: 1, error: 'LockBusy' },
    ]);
  });
});

function HISTORY(t0: number): HistoryEvent[] {
  let id = 0;
  const ev = (ms: number, type: string, extra: Partial<HistoryEvent> = {}): HistoryEvent => ({ id: ++id, timestamp: new Date(t0 + ms), type: type as HistoryEvent['type'], ...extra });
  return [
    ev(0, 'ExecutionStarted'),
    ev(0, 'TaskStateEntered', { stateEnteredEventDetails: { name: 'Prepare' } }),
    ev(5, 'LambdaFunctionScheduled'),
    ev(100, 'TaskStateExited', { stateExitedEventDetails: { name: 'Prepare' } }),
    ev(100, 'TaskStateEntered', { stateEnteredEventDetails: { name: 'AcquireLock' } }),
    ev(105, 'LambdaFunctionScheduled'),
    ev(150, 'LambdaFunctionFailed', { lambdaFunctionFailedEventDetails: { error: 'LockBusy' } }),
    ev(250, 'LambdaFunctionScheduled'),
    ev(300, 'LambdaFunctionFailed', { lambdaFunctionFailedEventDetails: { error: 'LockBusy' } }),
    ev(400, 'TaskStateEntered', { stateEnteredEventDetails: { name: 'RollBack' } }),
    ev(405, 'LambdaFunctionScheduled'),
    ev(500, 'TaskStateExited', { stateExitedEventDetails: { name: 'RollBack' } }),
    ev(500, 'FailStateEntered', { stateEnteredEventDetails: { name: 'InstallFailed' } }),
    ev(500, 'ExecutionFailed', { executionFailedEventDetails: { error: 'LockBusy' } }),
  ];
}

it('summarizeHistory counts retries as attempts of one step', () => {
  const steps = summarizeHistory(HISTORY(0));
  expect(steps.find((s) => s.name === 'AcquireLock')!.attempts).toBe(2);
});

describe('find', () => {
  it('answers the existing execution of a name, or undefined, with one DescribeExecution', async () => {
    const input = { workspace: 'ws', source: 'local://p@1.0.0', sha256: null, runtime: null, stamp: '20260101T000000Z-ab12' };
    sfn.on(DescribeExecutionCommand).rejectsOnce(new ExecutionDoesNotExist({ message: 'no', $metadata: {} })).resolvesOnce({ status: 'RUNNING' }).resolves({ status: 'RUNNING', input: JSON.stringify(input) });
    expect(await engine().find('install', 'ws-p-k1')).toBeUndefined();
    expect(await engine().find('install', 'ws-p-k1')).toEqual({ id: 'install.ws-p-k1', executionArn: 'arn:aws:states:us-east-1:111111111111:execution:plugin-install:ws-p-k1', executionName: 'ws-p-k1', existing: true });
    // With the input DescribeExecution returns (what an Idempotency-Key replay is compared with).
    expect(await engine().find('install', 'ws-p-k1')).toMatchObject({ existing: true, input });
    expect(sfn.commandCalls(DescribeExecutionCommand)).toHaveLength(3);
    expect(sfn.commandCalls(GetExecutionHistoryCommand)).toHaveLength(0);
  });
});

describe('the fleet rollout (POST /rollouts, GET /rollouts/{id})', () => {
  const ROLLOUT_SM = SM.replace('plugin-install', 'plugin-rollout');
  const withRollout = () =>
    new SfnWorkflowEngine({
      client: new SFNClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }),
      stateMachines: { install: SM, rollback: SM.replace('install', 'rollback'), uninstall: SM.replace('install', 'uninstall'), rollout: ROLLOUT_SM },
    });

  it('starts the rollout state machine, and meets an existing execution of the same name', async () => {
    sfn.on(StartExecutionCommand).resolvesOnce({ executionArn: `${ROLLOUT_SM.replace(':stateMachine:', ':execution:')}:r-1`, startDate: new Date() })
      .rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    expect(await withRollout().start('rollout', 'r-1', { rolloutId: 'r-1', resume: false })).toMatchObject({ id: 'rollout.r-1', existing: false });
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input).toEqual({ stateMachineArn: ROLLOUT_SM, name: 'r-1', input: '{"rolloutId":"r-1","resume":false}' });
    expect(await withRollout().start('rollout', 'r-1', {})).toMatchObject({ id: 'rollout.r-1', existing: true, executionArn: `${ROLLOUT_SM.replace(':stateMachine:', ':execution:')}:r-1` });
  });

  it('describes its status without reading the (long) history when asked for no steps', async () => {
    sfn.on(DescribeExecutionCommand).resolves({ status: 'RUNNING', startDate: new Date(0) });
    const s = await withRollout().describe('rollout.r-1', { steps: false });
    expect(s).toMatchObject({ id: 'rollout.r-1', workflow: 'rollout', status: 'RUNNING', steps: [] });
    expect(sfn.commandCalls(GetExecutionHistoryCommand)).toHaveLength(0);
  });

  it('says which setting is missing when the deployment has no rollout state machine, calling nothing', async () => {
    const err = await engine().start('rollout', 'r-1', {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect((err as PluginError).message).toContain('ROLLOUT_STATE_MACHINE_ARN');
    expect(sfn.calls()).toHaveLength(0);
  });
});

/** A GetExecutionHistory answer stored under test/fixtures/sfn/history/, its timestamps as the SDK gives them (Dates). */
function historyFixture(name: string): HistoryEvent[] {
  const raw = JSON.parse(readFileSync(new URL(`../fixtures/sfn/history/${name}.json`, import.meta.url), 'utf8')) as { events: (Omit<HistoryEvent, 'timestamp'> & { timestamp: string })[] };
  return raw.events.map((e) => ({ ...e, timestamp: new Date(e.timestamp) }) as HistoryEvent);
}

describe('summarizeHistory on Step Functions history shapes (GET /executions/{id})', () => {
  it('a Lambda Task failure caught by Catch is failed with its error, though TaskStateExited follows it; a failed RollBack is failed', () => {
    expect(summarizeHistory(historyFixture('lambda-failure-caught'))).toEqual([
      { name: 'Prepare', status: 'succeeded', ms: 101, attempts: 1 },
      { name: 'SwapIntoPlace', status: 'failed', ms: 199, attempts: 1, error: 'HostIoError' },
      { name: 'RollBack', status: 'failed', ms: 199, attempts: 1, error: 'RollbackFailed' },
      { name: 'NotifyRollbackFailed', status: 'succeeded', ms: 40, attempts: 1 },
      { name: 'RollbackFailed', status: 'failed', ms: 1, attempts: 1, error: 'RollbackFailed' },
    ]);
  });

  it('a Task retried and then succeeding is succeeded with its attempts (legacy Lambda integration events)', () => {
    expect(summarizeHistory(historyFixture('lambda-retried-then-succeeded'))).toEqual([
      { name: 'AcquireLock', status: 'succeeded', ms: 5201, attempts: 3 },
      { name: 'Installed', status: 'succeeded', ms: 0, attempts: 1 },
    ]);
  });

  it('our install workflow (Lambda ARNs as Resource, so LambdaFunction* events): a retried VerifyLive then caught HealthCheckFailed is failed with 2 attempts, RollBack succeeded, the Fail state carries the error', () => {
    const ok = (name: string) => ({ name, status: 'succeeded', ms: 322, attempts: 1 });
    expect(summarizeHistory(historyFixture('health-check-failed-caught'))).toEqual([
      ok('Prepare'),
      ok('AcquireLock'),
      ok('StageOnHost'),
      ok('SwapIntoPlace'),
      ok('SnapshotLive'),
      // 1 + 20 + 150 ms (HostStepInterrupted), 2 s backoff, 20 + 4,000 ms (HealthCheckFailed): up to the failure, not the exit.
      { name: 'VerifyLive', status: 'failed', ms: 6191, attempts: 2, error: 'HealthCheckFailed' },
      { name: 'RollBack', status: 'succeeded', ms: 422, attempts: 1 },
      { name: 'NotifyRolledBack', status: 'succeeded', ms: 37, attempts: 1 },
      { name: 'Unhealthy?', status: 'succeeded', ms: 0, attempts: 1 },
      { name: 'RolledBackUnhealthy', status: 'failed', ms: 1, attempts: 1, error: 'HealthCheckFailed' },
    ]);
  });

  it('a LambdaFunctionTimedOut caught by Catch (TaskStateExited follows) is failed with States.Timeout', () => {
    const steps = summarizeHistory(historyFixture('lambda-timed-out-caught'));
    expect(steps.find((s) => s.name === 'SwapIntoPlace')).toEqual({ name: 'SwapIntoPlace', status: 'failed', ms: 90021, attempts: 1, error: 'States.Timeout' });
    expect(steps.map((s) => `${s.name}:${s.status}`)).toEqual(['Prepare:succeeded', 'AcquireLock:succeeded', 'StageOnHost:succeeded', 'SwapIntoPlace:failed', 'RollBack:succeeded', 'NotifyRolledBack:succeeded', 'Unhealthy?:succeeded', 'RolledBack:failed']);
  });

  it('a Task that times out is failed with States.Timeout', () => {
    expect(summarizeHistory(historyFixture('task-timed-out'))).toEqual([{ name: 'VerifyLive', status: 'failed', ms: 390000, attempts: 1, error: 'States.Timeout' }]);
  });

  it('child executions (startExecution.sync:2) in a Map: interleaved iterations are told apart, a throttled start retried counts 2 attempts, a failed child caught is failed', () => {
    const steps = summarizeHistory(historyFixture('map-child-executions'));
    expect(steps).toEqual([
      { name: 'RunWave', status: 'succeeded', ms: 8102, attempts: 1 },
      { name: 'InstallTarget', status: 'succeeded', ms: 5998, attempts: 1 },
      { name: 'InstallTarget', status: 'failed', ms: 7997, attempts: 2, error: 'States.TaskFailed' },
      { name: 'TargetSucceeded', status: 'succeeded', ms: 1, attempts: 1 },
      { name: 'SummarizeFailure', status: 'succeeded', ms: 100, attempts: 1 },
      { name: 'Continued', status: 'succeeded', ms: 0, attempts: 1 },
    ]);
  });
});
