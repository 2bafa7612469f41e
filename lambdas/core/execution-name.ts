/**
 * Execution names read `<workspace>-<plugin>-<stamp>` in the Step Functions console
 * (1-80 characters of [A-Za-z0-9_-]); the stamp keeps them unique, so it is never cut.
 */
import { assertStamp, assertWorkspaceId } from './names.ts';

export function executionName(workspace: string, pluginHint: string, stamp: string): string {
  assertWorkspaceId(workspace);
  assertStamp(stamp);
  const hint = pluginHint.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'plugin';
  const room = 80 - stamp.length - 2;
  const ws = workspace.slice(0, Math.max(8, room - Math.min(hint.length, room / 2)));
  const name = hint.slice(0, Math.max(1, room - ws.length));
  return `${ws}-${name}-${stamp}`.slice(0, 80);
}
