/**
 * pluginctl's exit codes: a contract scripts rely on.
 *   0 done · 2 refused input, nothing touched · 3 failed: live as before (status `failed` when the
 *   operation never touched live, `rolled-back` when it had changed live and put it back)
 *   4 busy (another operation holds the plugin's lock) · 5 rollback failed / operator needed
 */
import { categoryOf } from '../../lambdas/core/errors.ts';

export const EXIT = { ok: 0, refused: 2, rolledBack: 3, busy: 4, operator: 5 } as const;

export type OutcomeStatus = 'succeeded' | 'refused' | 'failed' | 'rolled-back' | 'busy' | 'needs-operator';

/**
 * `liveChanged`: whether the failed operation had changed live before it was rolled back (the
 * RollBack state's result says so); an operation that failed before touching live is `failed`.
 */
export function statusOfError(code: string, liveChanged = true): { status: OutcomeStatus; exit: number } {
  switch (categoryOf(code)) {
    case 'refused':
      return { status: 'refused', exit: EXIT.refused };
    case 'busy':
      return { status: 'busy', exit: EXIT.busy };
    case 'operator':
      return { status: 'needs-operator', exit: EXIT.operator };
    default:
      return { status: liveChanged ? 'rolled-back' : 'failed', exit: EXIT.rolledBack };
  }
}
