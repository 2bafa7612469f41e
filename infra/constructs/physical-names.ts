/**
 * Physical names of the resources whose names AWS keeps unique per account and region (state
 * machines, the event bus, log groups). Two rules, both from deploying for real:
 *
 * - Every such name derives from the stack name, so two stacks (a staging and a production
 *   install, or two teams) can live in one region.
 * - A resource the stack retains on delete (log groups keep their history) never has a name that
 *   the next creation would ask for again: `cdk destroy` then `cdk deploy` would fail with
 *   "already exists". Such names carry the stack's creation id (the UUID at the end of
 *   AWS::StackId, new at every creation), or are left to CloudFormation.
 */
import { createHash } from 'node:crypto';
import { Aws, Fn, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * `<stackName>-<suffix>`, at most `maxLength` characters. A stack name too long for that keeps
 * its head and gains a digest of the whole, so distinct stacks still get distinct names.
 */
export function stackScopedName(scope: IConstruct, suffix: string, maxLength: number): string {
  const stackName = Stack.of(scope).stackName;
  const name = `${stackName}-${suffix}`;
  if (name.length <= maxLength) return name;
  const digest = createHash('sha256').update(stackName).digest('hex').slice(0, 8);
  const head = stackName.slice(0, Math.max(1, maxLength - suffix.length - digest.length - 2));
  return `${head}-${digest}-${suffix}`;
}

/** The UUID that ends AWS::StackId: new at every creation of the stack, stable across updates. */
export function stackCreationId(): string {
  return Fn.select(2, Fn.split('/', Aws.STACK_ID));
}

/** State machine names: 1–80 characters. */
export const MAX_STATE_MACHINE_NAME = 80;
/** Event bus names: 1–256 characters. */
export const MAX_EVENT_BUS_NAME = 256;
