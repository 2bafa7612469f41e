/**
 * Step Functions' own integration for starting a workflow from a workflow, as the local runner
 * plays it. The shapes are AWS's (recorded against AWS in LocalStack's snapshot tests of
 * `states:startExecution.sync:2`, test/fixtures/sfn/):
 * - `.sync:2` succeeded: the child's DescribeExecution, with `Input` and `Output` as JSON (not
 *   strings): {ExecutionArn, Input, InputDetails: {Included}, Name, Output, OutputDetails,
 *   StartDate, StateMachineArn, Status: "SUCCEEDED", StopDate}; dates in epoch milliseconds.
 * - `.sync:2` whose child failed: the Task fails with Error `States.TaskFailed` and a Cause that is
 *   the JSON text of the child's DescribeExecution, the child's own `Error` and `Cause` inside
 *   (Input as a string there, Status FAILED / TIMED_OUT / ABORTED).
 * - `startExecution` (no .sync, used for continue-as-new): {ExecutionArn, StartDate} at once.
 */
export const START_EXECUTION_SYNC2 = 'arn:aws:states:::states:startExecution.sync:2';
export const START_EXECUTION = 'arn:aws:states:::states:startExecution';

export interface ChildRun {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  input: unknown;
  startDate: Date;
  stopDate: Date;
}

export interface SyncSucceeded {
  ExecutionArn: string;
  Input: unknown;
  InputDetails: { Included: true };
  Name: string;
  Output: unknown;
  OutputDetails: { Included: true };
  StartDate: number;
  StateMachineArn: string;
  Status: 'SUCCEEDED';
  StopDate: number;
}

export function syncSucceeded(run: ChildRun, output: unknown): SyncSucceeded {
  return {
    ExecutionArn: run.executionArn,
    Input: run.input,
    InputDetails: { Included: true },
    Name: run.name,
    Output: output,
    OutputDetails: { Included: true },
    StartDate: run.startDate.getTime(),
    StateMachineArn: run.stateMachineArn,
    Status: 'SUCCEEDED',
    StopDate: run.stopDate.getTime(),
  };
}

/** The error a `.sync:2` Task fails with when its child failed (name = Error, message = Cause). */
export function syncFailed(run: ChildRun, status: 'FAILED' | 'TIMED_OUT' | 'ABORTED', error: string | undefined, cause: string | undefined): Error {
  const described: Record<string, unknown> = {};
  if (cause !== undefined) described.Cause = cause;
  if (error !== undefined) described.Error = error;
  Object.assign(described, {
    ExecutionArn: run.executionArn,
    Input: JSON.stringify(run.input),
    InputDetails: { Included: true },
    Name: run.name,
    StartDate: run.startDate.getTime(),
    StateMachineArn: run.stateMachineArn,
    Status: status,
    StopDate: run.stopDate.getTime(),
  });
  const err = new Error(JSON.stringify(described));
  err.name = 'States.TaskFailed';
  return err;
}

/** The answer of a plain `startExecution` Task. */
export function startedExecution(executionArn: string, startDate: Date): { ExecutionArn: string; StartDate: number } {
  return { ExecutionArn: executionArn, StartDate: startDate.getTime() };
}
