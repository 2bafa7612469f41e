/**
 * cdk-nag acknowledgements (cdk-nag 3: `Validations.of(scope).acknowledge`, the successor of v2's
 * `NagSuppressions`). Every acknowledgement carries a written reason; a short or empty one is a
 * programming error and fails synthesis here rather than slipping into the audit trail.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** Shortest reason accepted: enough for a sentence that says why, not just "needed". */
export const MIN_REASON_LENGTH = 20;

export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  if (reason.trim().length < MIN_REASON_LENGTH) {
    throw new Error(`cdk-nag acknowledgement ${id} on ${scope.node.path} needs a reason of at least ${MIN_REASON_LENGTH} characters`);
  }
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * cdk-nag names an IAM wildcard finding after the resource, flattened the way its IAM5 rule does
 * it: `Fn::Join` parts concatenated, `Ref` as `<Name>`, `Fn::GetAtt` as `<LogicalId.Attr>`.
 */
export function flattenCfnValue(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  if (value && typeof value === 'object') {
    const node = value as Record<string, unknown>;
    const join = node['Fn::Join'];
    if (Array.isArray(join)) {
      const [delimiter, items] = join as [string, unknown[]];
      return items.map(flattenCfnValue).join(delimiter);
    }
    if (node['Fn::Sub'] !== undefined) return flattenCfnValue(node['Fn::Sub']);
    const getAtt = node['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `<${flattenCfnValue(getAtt[0])}.${flattenCfnValue(getAtt[1])}>`;
    if (node['Fn::ImportValue'] !== undefined) return flattenCfnValue(node['Fn::ImportValue']);
    if (node.Ref !== undefined) return `<${flattenCfnValue(node.Ref)}>`;
  }
  return JSON.stringify(value);
}

/** Acknowledges `AwsSolutions-IAM5` for one wildcard resource (an ARN string or token). */
export function acknowledgeWildcardResource(scope: IConstruct, resource: string, reason: string): void {
  const flat = resource === '*' ? '*' : flattenCfnValue(Stack.of(scope).resolve(resource));
  acknowledge(scope, `AwsSolutions-IAM5[Resource::${flat}]`, reason);
}
