/**
 * SummarizeTargetFailure: what a target's failed child execution comes to, in a few hundred bytes.
 * A `.sync:2` Task whose child failed fails with `States.TaskFailed`, and its Cause is the JSON
 * of the child's DescribeExecution (its Input, and the child's own Error and Cause, up to 32 KB):
 * forty of those would crowd the 256 KB a Map's result may take, so each failed iteration passes
 * its error through this step, which keeps the child's error code, message and hint, cut short.
 * Anything else (StartExecution itself refused, States.Timeout) is summarized the same way.
 */
import { errorFromFailure } from '../errors.ts';
import type { TargetResult } from './record-wave.ts';

export const MAX_MESSAGE = 600;
export const MAX_HINT = 300;

export interface CaughtError {
  Error?: string;
  Cause?: string;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The child's Error/Cause when `caught` is a failed `.sync` child execution, else `caught` itself. */
export function childFailure(caught: CaughtError): { error: string | undefined; cause: string | undefined } {
  if (caught.Error === 'States.TaskFailed' && caught.Cause) {
    try {
      const described = JSON.parse(caught.Cause) as { Error?: unknown; Cause?: unknown; Status?: unknown };
      if (described && typeof described === 'object' && typeof described.Status === 'string') {
        return {
          error: typeof described.Error === 'string' ? described.Error : described.Status,
          cause: typeof described.Cause === 'string' ? described.Cause : `the child execution ended ${described.Status}`,
        };
      }
    } catch {
      // Not a DescribeExecution document: summarize the Task's own error.
    }
  }
  return { error: caught.Error, cause: caught.Cause };
}

export function summarizeTargetFailure(item: TargetResult['item'], caught: CaughtError): TargetResult {
  const { error, cause } = childFailure(caught);
  const e = errorFromFailure(error, cause);
  return { item, outcome: 'failed', error: { code: e.code, message: clip(e.message, MAX_MESSAGE), hint: clip(e.hint, MAX_HINT) } };
}
