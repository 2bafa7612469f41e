/** Each workflow file and the sweep's pass asl-validator, as written (placeholders) and as CloudFormation fills it. */
import { describe, expect, it } from 'vitest';
import { placeholders, substitute, SWEEP_DEFINITION, sweepDefinitionText, WORKFLOWS, workflowText } from '../../lambdas/core/workflow/workflow-files.ts';
import { validateAsl } from './infra-helpers.ts';

const textOf = (name: string) => (name === SWEEP_DEFINITION ? sweepDefinitionText() : workflowText(name as (typeof WORKFLOWS)[number]));

describe.each([...WORKFLOWS, SWEEP_DEFINITION])('statemachine/%s.asl.json', (name) => {
  it('is valid ASL with its ${…} placeholders as written', () => {
    // With ARN checking on, a Resource is either an ARN or a whole `${…}` substitution.
    const result = validateAsl(JSON.parse(textOf(name)), { checkPaths: true, checkArn: true });
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
  });

  it('is valid ASL, ARNs checked, once every placeholder holds a real-looking value', () => {
    const text = textOf(name);
    const values = Object.fromEntries(
      placeholders(text).map((p) => [p, p === 'EventBusName' ? 'workspace-plugin-installer' : `arn:aws:lambda:us-east-1:111111111111:function:${p.replace(/Arn$/, '')}`]),
    );
    const result = validateAsl(JSON.parse(substitute(text, values)), { checkPaths: true, checkArn: true });
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
  });
});
