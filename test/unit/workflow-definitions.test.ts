/**
 * The workflow definitions (statemachine/*.asl.json) as data: the graph is closed and connected,
 * every Lambda Task has a handler, the retry/catch policy is the designed one, and every failure
 * of a host step ends in a Fail state.
 */
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { ROLLOUT_STEP_BY_PLACEHOLDER, STEP_BY_PLACEHOLDER } from '../../lambdas/handlers/all-steps.ts';
import { RETRYABLE_CODES } from '../../lambdas/core/errors.ts';
import { definitionText, placeholders, ROLLOUT_DEFINITION, substitute, WORKFLOWS, workflowText, type WorkflowName } from '../../lambdas/core/workflow/workflow-files.ts';

interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds?: number;
  MaxAttempts?: number;
  BackoffRate?: number;
  JitterStrategy?: string;
}
interface Catcher {
  ErrorEquals: string[];
  Next: string;
}
interface State {
  Type: string;
  Resource?: string;
  Next?: string;
  End?: boolean;
  Default?: string;
  Choices?: { Next: string }[];
  Catch?: Catcher[];
  Retry?: Retrier[];
  TimeoutSeconds?: number;
  QueryLanguage?: string;
}
interface Definition {
  StartAt: string;
  States: Record<string, State>;
  QueryLanguage?: string;
}

const FUNCTION_ARN = /^\$\{([A-Za-z0-9]+FunctionArn)\}$/;
/**
 * What invoking a Lambda may fail with besides our own codes, retried as AWS recommends
 * (docs: Step Functions, "Handle Lambda service exceptions": 2 s, 6 attempts, backoff 2):
 * Lambda's transient service errors, throttling, and Lambda.Unknown (a function timeout, an
 * out-of-memory or crashed runtime): every step is idempotent, so running it again is safe.
 */
const LAMBDA_SERVICE_ERRORS = [
  'Lambda.ClientExecutionTimeoutException',
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.Unknown',
];

function load(name: WorkflowName): Definition {
  return JSON.parse(workflowText(name)) as Definition;
}

/** Every state a state can pass control to, failures included. */
function successors(state: State): string[] {
  return [state.Next, state.Default, ...(state.Choices ?? []).map((c) => c.Next), ...(state.Catch ?? []).map((c) => c.Next)].filter(
    (n): n is string => typeof n === 'string',
  );
}

function reachable(def: Definition, from: string): Set<string> {
  const seen = new Set<string>();
  const todo = [from];
  while (todo.length) {
    const name = todo.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const state = def.States[name];
    if (state) todo.push(...successors(state));
  }
  return seen;
}

const isTerminal = (s: State) => s.Type === 'Succeed' || s.Type === 'Fail' || s.End === true;
const lambdaPlaceholder = (s: State) => (s.Type === 'Task' ? FUNCTION_ARN.exec(s.Resource ?? '')?.[1] : undefined);
const isNotify = (name: string, s: State) => s.Type === 'Task' && name.startsWith('Notify') && s.Resource === 'arn:aws:states:::events:putEvents';

describe.each(WORKFLOWS.map((w) => [w] as const))('%s.asl.json', (workflow) => {
  const text = workflowText(workflow);
  const def = load(workflow);
  const states = Object.entries(def.States);

  it('parses, and aws-local-stepfunctions accepts it once its placeholders are filled', () => {
    expect(def.StartAt).toBeTypeOf('string');
    expect(states.length).toBeGreaterThan(3);
    const values = Object.fromEntries(placeholders(text).map((p) => [p, p.endsWith('FunctionArn') ? `arn:aws:lambda:us-east-1:123456789012:function:${p}` : p]));
    expect(() => new StateMachine(JSON.parse(substitute(text, values)) as never)).not.toThrow();
  });

  it('every Next, Default, Choice and Catch target exists', () => {
    expect(def.States[def.StartAt]).toBeDefined();
    for (const [name, state] of states) {
      for (const target of successors(state)) expect(def.States[target], `${name} → ${target}`).toBeDefined();
      if (!isTerminal(state) && state.Type !== 'Choice') expect(state.Next, `${name} has no Next`).toBeTypeOf('string');
    }
  });

  it('every state is reachable from StartAt', () => {
    const seen = reachable(def, def.StartAt);
    expect(states.map(([n]) => n).filter((n) => !seen.has(n))).toEqual([]);
  });

  it('every ${…FunctionArn} Task has a step handler; the only other placeholder is the event bus', () => {
    const used = states.map(([, s]) => lambdaPlaceholder(s)).filter((p): p is string => p !== undefined);
    expect(used.length).toBeGreaterThan(0);
    for (const p of used) expect(STEP_BY_PLACEHOLDER.has(p), p).toBe(true);
    expect(placeholders(text).filter((p) => !p.endsWith('FunctionArn'))).toEqual(['EventBusName']);
    // No Task names a Lambda any other way.
    for (const [name, s] of states) if (s.Type === 'Task' && !lambdaPlaceholder(s)) expect(isNotify(name, s), name).toBe(true);
  });

  it('uses JSONPath only (no JSONata)', () => {
    expect(def.QueryLanguage).toBeUndefined();
    for (const [name, s] of states) expect(s.QueryLanguage, name).toBeUndefined();
    expect(text).not.toContain('QueryLanguage');
    expect(text).not.toContain('{%');
  });

  it('every Lambda Task has a timeout and retries only transient errors (Notify tasks may retry States.ALL)', () => {
    for (const [name, s] of states) {
      if (s.Type !== 'Task') continue;
      expect(s.Retry?.length, `${name} has no Retry`).toBeGreaterThan(0);
      if (isNotify(name, s)) continue;
      expect(Number.isInteger(s.TimeoutSeconds) && s.TimeoutSeconds! > 0, `${name} TimeoutSeconds`).toBe(true);
      const retried = s.Retry!.flatMap((r) => r.ErrorEquals);
      expect(retried, name).not.toContain('States.ALL');
      expect(retried.filter((e) => !LAMBDA_SERVICE_ERRORS.includes(e) && e !== 'LockBusy').sort(), name).toEqual([...RETRYABLE_CODES].sort());
      for (const r of s.Retry!) expect(r.MaxAttempts, name).toBeGreaterThan(0);
    }
  });

  it('every Lambda Task retries the Lambda service errors, Lambda.ClientExecutionTimeoutException and Lambda.Unknown as AWS recommends, jittered', () => {
    for (const [name, s] of states) {
      if (!lambdaPlaceholder(s)) continue;
      const lambda = s.Retry!.filter((r) => r.ErrorEquals.some((e) => e.startsWith('Lambda.')));
      expect(lambda, name).toEqual([{ ErrorEquals: LAMBDA_SERVICE_ERRORS, IntervalSeconds: 2, MaxAttempts: 6, BackoffRate: 2, JitterStrategy: 'FULL' }]);
      // States.Timeout (the Task's own timeout) is not retried: the Task outlasts the function
      // (test/infra/timeouts.test.ts), so a slow step surfaces as Lambda.Unknown, retried above.
      expect(s.Retry!.flatMap((r) => r.ErrorEquals), name).not.toContain('States.Timeout');
    }
  });

  it('LockBusy is retried only while acquiring the lock', () => {
    for (const [name, s] of states) {
      const retriesBusy = (s.Retry ?? []).some((r) => r.ErrorEquals.includes('LockBusy'));
      expect(retriesBusy, name).toBe(lambdaPlaceholder(s) === 'AcquireLockFunctionArn');
    }
  });

  it('every Catch ends with a single States.ALL catcher (a narrower one may come first)', () => {
    for (const [name, s] of states) {
      if (!s.Catch) continue;
      expect(s.Catch.at(-1)?.ErrorEquals, name).toEqual(['States.ALL']);
      for (const c of s.Catch.slice(0, -1)) expect(c.ErrorEquals, name).not.toContain('States.ALL');
    }
  });

  it('a failure before live is touched goes to CleanUp (a plain failure, never RollbackFailed); after, to RollBack', () => {
    const before = new Set(['AcquireLock', 'StageOnHost', 'StageSnapshot']);
    const after = new Set(['SwapIntoPlace', 'SnapshotLive', 'VerifyLive', 'RemoveLive']);
    for (const [name, s] of states) {
      if (before.has(name)) expect(s.Catch?.at(-1)?.Next, name).toBe('CleanUp');
      if (after.has(name)) expect(s.Catch?.at(-1)?.Next, name).toBe('RollBack');
    }
    expect(reachable(def, 'CleanUp')).not.toContain('RollbackFailed');
    expect(def.States.CleanUp?.Catch?.[0]?.Next).not.toBe('NotifyRollbackFailed');
    expect(reachable(def, 'RollBack')).toContain('RollbackFailed');
  });

  it('every failure of a Lambda Task ends in a Fail state (a failed lock release is not a failure)', () => {
    for (const [name, s] of states) {
      const placeholder = lambdaPlaceholder(s);
      if (!placeholder) continue;
      expect(s.Catch?.length, `${name} has no Catch`).toBeGreaterThan(0);
      for (const c of s.Catch!) {
        if (placeholder === 'ReleaseLockFunctionArn') {
          // The lease expires on its own: the workflow carries on as if the release had worked.
          expect(c.Next, name).toBe(s.Next);
          continue;
        }
        const ends = [...reachable(def, c.Next)].map((n) => [n, def.States[n]!] as const).filter(([, t]) => isTerminal(t));
        expect(ends.length, name).toBeGreaterThan(0);
        for (const [end, t] of ends) expect(t.Type, `${name} → Catch → … → ${end}`).toBe('Fail');
      }
    }
  });
});

describe('install.asl.json', () => {
  const def = load('install');

  it("has the design's states", () => {
    const design = [
      'Prepare', 'AcquireLock', 'StageOnHost', 'SnapshotLive', 'SwapIntoPlace', 'VerifyLive', 'WriteMarker', 'ReleaseLock', 'NotifyInstalled',
      'RollBack', 'InstallFailed', 'RollbackFailed', 'MarkerWriteFailed',
    ];
    const names = Object.keys(def.States);
    for (const n of design) expect(names, n).toContain(n);
    expect(def.States.InstallFailed?.Type).toBe('Fail');
    expect(def.States.RollbackFailed?.Type).toBe('Fail');
    expect(def.States.MarkerWriteFailed?.Type).toBe('Fail');
  });

  it('runs the steps in the designed order on success', () => {
    const path: string[] = [];
    for (let n: string | undefined = def.StartAt; n; n = def.States[n]?.Next) path.push(n);
    expect(path).toEqual(['Prepare', 'AcquireLock', 'StageOnHost', 'SwapIntoPlace', 'SnapshotLive', 'VerifyLive', 'WriteMarker', 'ReleaseLock', 'NotifyInstalled', 'Installed']);
    expect(def.States.Installed?.Type).toBe('Succeed');
  });

  it('cleans up before the swap, rolls back after it; a marker failure is not rolled back', () => {
    expect(def.States.Prepare?.Catch?.[0]?.Next).toBe('NotifyInstallFailed');
    for (const n of ['AcquireLock', 'StageOnHost']) expect(def.States[n]?.Catch?.[0]?.Next, n).toBe('CleanUp');
    // A failed health check (or any other VerifyLive failure) rolls back: the new version is live by then.
    for (const n of ['SwapIntoPlace', 'SnapshotLive', 'VerifyLive']) expect(def.States[n]?.Catch?.[0]?.Next, n).toBe('RollBack');
    expect(reachable(def, def.States.WriteMarker!.Catch![0]!.Next)).not.toContain('RollBack');
    expect(reachable(def, def.States.WriteMarker!.Catch![0]!.Next)).toContain('MarkerWriteFailed');
    expect(def.States.CleanUp?.Next).toBe('NotifyInstallFailed');
    expect(def.States.CleanUp?.Catch?.[0]?.Next).toBe('NotifyInstallFailed');
    expect(def.States.RollBack?.Next).toBe('NotifyRolledBack');
    expect(def.States.RollBack?.Catch?.[0]?.Next).toBe('NotifyRollbackFailed');
  });

  it('a failed health check ends in its own Fail state (RolledBackUnhealthy), every other rolled-back failure in RolledBack', () => {
    const choice = def.States['Unhealthy?'] as State & { Choices: { Variable: string; StringEquals: string; Next: string }[] };
    expect(def.States.NotifyRolledBack?.Next).toBe('Unhealthy?');
    expect(def.States.NotificationUndeliveredRolledBack?.Next).toBe('Unhealthy?');
    expect(choice.Choices).toEqual([{ Variable: '$.error.Error', StringEquals: 'HealthCheckFailed', Next: 'RolledBackUnhealthy' }]);
    expect(choice.Default).toBe('RolledBack');
    expect(def.States.RolledBackUnhealthy).toMatchObject({ Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' });
  });
});

describe('all workflows together', () => {
  it('every step handler is used by some workflow (the fleet rollout\'s Map iterations included)', () => {
    const rollout = JSON.parse(definitionText(ROLLOUT_DEFINITION)) as { States: Record<string, State & { ItemProcessor?: { States: Record<string, State> } }> };
    const rolloutStates = Object.values(rollout.States).flatMap((s) => [s, ...Object.values(s.ItemProcessor?.States ?? {})]);
    const used = new Set([...WORKFLOWS.flatMap((w) => Object.values(load(w).States)), ...rolloutStates].map(lambdaPlaceholder));
    expect([...STEP_BY_PLACEHOLDER.keys(), ...ROLLOUT_STEP_BY_PLACEHOLDER.keys()].filter((p) => !used.has(p))).toEqual([]);
    // Every Lambda Task of the rollout has a rollout step.
    for (const p of rolloutStates.map(lambdaPlaceholder).filter((x): x is string => x !== undefined)) expect(ROLLOUT_STEP_BY_PLACEHOLDER.has(p), p).toBe(true);
  });
});
