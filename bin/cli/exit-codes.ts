/**
 * pluginctl's exit codes: a contract scripts rely on.
 *   0 done · 2 refused input, nothing touched · 3 failed and rolled back, live as before
 *   4 busy (another operation holds the plugin's lock) · 5 rollback failed / operator needed
 */
import { categoryOf } from '../../lambdas/core/errors.ts';

export const EXIT = { ok: 0, refused: 2, rolledBack: 3, busy: 4, operator: 5 } as const;

export type OutcomeStatus = 'succeeded' | 'refused' | 'rolled-back' | 'busy' | 'needs-operator';

export function statusOfError(code: string): { status: OutcomeStatus; exit: number } {
  switch (categoryOf(code)) {
    case 'refused':
      return { status: 'refused', exit: EXIT.refused };
    case 'busy':
      return { status: 'busy', exit: EXIT.busy };
    case 'operator':
      return { status: 'needs-operator', exit: EXIT.operator };
    default:
      return { status: 'rolled-back', exit: EXIT.rolledBack };
  }
}
