/**
 * The tests and pluginctl run on Lambda's Node major (22), from the `node` devDependency that npm
 * scripts and npx put first on the path; `engines` says so. (`npm ci` under an older Node still
 * warns EBADENGINE for aws-local-stepfunctions: npm checks engines against the Node running npm,
 * and npm 11 no longer reads a project's `node-version` setting.)
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (rel: string) => readFileSync(new URL(`../../${rel}`, import.meta.url), 'utf8');

describe('Node 22', () => {
  it('runs this test (npm scripts and npx use the node@22 devDependency)', () => {
    expect(process.versions.node.split('.')[0]).toBe('22');
  });

  it('the lockfile pins a Node 22 and engines says >=22', () => {
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { version?: string }> };
    const pinned = lock.packages['node_modules/node']?.version;
    expect(pinned).toMatch(/^22\./);
    expect((JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node).toBe('>=22');
  });
});
