/**
 * docs/openapi.json passes the real spectral CLI with the `spectral:oas` ruleset (docs/spectral.yaml)
 * without a single result: no error, warning, info or hint (servers, contact, tags, operationIds,
 * descriptions…), so third-party tooling accepts the document as it is.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface SpectralResult {
  code: string;
  message: string;
  severity: number;
  path: string[];
}

describe('docs/openapi.json under spectral:oas', () => {
  it('has no spectral results at all', async () => {
    // spectral exits non-zero only on errors; the JSON list carries every severity.
    const { stdout } = await promisify(execFile)(`${ROOT}node_modules/.bin/spectral`, ['lint', 'docs/openapi.json', '--ruleset', 'docs/spectral.yaml', '--format', 'json', '--quiet', '--fail-severity', 'hint'], { cwd: ROOT, encoding: 'utf8' }).catch(
      (err: { stdout?: string; stderr?: string }) => {
        if (!err.stdout?.trim().startsWith('[')) throw new Error(`spectral did not run: ${err.stderr ?? String(err)}`);
        return { stdout: err.stdout };
      },
    );
    const results = JSON.parse(stdout) as SpectralResult[];
    expect(results.map((r) => `${r.code} at ${r.path.join('.')}: ${r.message}`)).toEqual([]);
  }, 120_000);
});
