/**
 * The stack's own SSM Command document (lambdas/core/host/ssm-document.ts + ssm-document.sh),
 * without the SSM API: its size against SSM's 64 KB limit, what its parameters admit, and its
 * script rendered exactly as the stand-in's agent renders it (`renderCommandDocument`) and run
 * with bash in a directory that plays the instance: the production document refuses every root
 * but the runtimes', arguments reach the host script as data, an old agent (no SSM_ variables)
 * runs the same, and the fleet sweep sweeps each root present with one compact line per root.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PluginError } from '../../lambdas/core/errors.ts';
import { HEALTHCHECK_COMMAND_MAX_BYTES } from '../../lambdas/core/healthcheck.ts';
import { hostScriptText } from '../../lambdas/core/host/host-script.ts';
import type { SweepRules } from '../../lambdas/core/host/host-steps.ts';
import {
  ARGUMENTS_MAX_CHARS,
  DOCUMENT_ROOTS,
  SSM_DOCUMENT_LIMIT_BYTES,
  documentBytes,
  documentParameters,
  ssmCommandDocument,
  type SsmCommandDocument,
} from '../../lambdas/core/host/ssm-document.ts';
import { FLEET_ROOTS, fleetSweepParameters, parseFleetOutput } from '../../lambdas/core/sweep/fleet-sweep.ts';
import { ApiError, renderCommandDocument } from '../servers/ssm-api.ts';

const RULES: SweepRules = { previousBefore: '20260301T000000Z', keepNewest: 1, stagingBefore: '20260301T000000Z', failedBefore: '20260301T000000Z', nowEpochSeconds: 1_800_000_000, dryRun: false };
const PRODUCTION = ssmCommandDocument();
const TESTING = ssmCommandDocument({ rootPrefix: '.' });

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'ssm-doc-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Renders the document with these parameters (as SendCommand would) and runs it in `cwd`. */
function runDocument(document: SsmCommandDocument, parameters: Record<string, string[]>, cwd: string, options: { legacyAgent?: boolean } = {}): Promise<Ran> {
  const rendered = renderCommandDocument('doc', document, parameters);
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', rendered.script], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', TMPDIR: base, ...(options.legacyAgent ? {} : rendered.envVars) },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function refusal(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('not refused');
}

async function snapshot(root: string, entry: string, bytes = 3000): Promise<void> {
  await mkdir(join(root, '.previous', entry), { recursive: true });
  await writeFile(join(root, '.previous', entry, 'data'), 'x'.repeat(bytes));
}

describe('the plugin-host document', () => {
  it('fits SSM\'s 64 KB (content plus run-time parameters) with a wide margin, and a real stage command uses a fraction of its arguments', async () => {
    const bytes = documentBytes(PRODUCTION);
    // The host script travels compressed: the document is about half the script's own size.
    expect(bytes).toBeLessThan(Buffer.byteLength(hostScriptText()) * 0.6);
    expect(bytes + ARGUMENTS_MAX_CHARS + 200).toBeLessThan(SSM_DOCUMENT_LIMIT_BYTES * 0.75);
    // The longest arguments a step sends: stage with a presigned URL signed with temporary
    // credentials (a 1,200-character session token, as Lambda's can be), a 63-character bucket,
    // a 128-character plugin name.
    const s3 = new S3Client({ region: 'ap-southeast-2', credentials: { accessKeyId: 'ASIAEXAMPLEEXAMPLE01', secretAccessKey: 'x'.repeat(40), sessionToken: 'T'.repeat(1200) } });
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'b'.repeat(63), Key: `artifacts/${'a'.repeat(64)}.tar.gz` }), { expiresIn: 900 });
    s3.destroy();
    const args = [DOCUMENT_ROOTS[1]!, 'p'.repeat(128), '20261202T000000Z-abcd', 'a'.repeat(64), '1000:1000', '1', '99999999999', url];
    const parameters = documentParameters('stage', args, 300);
    const total = Object.values(parameters).flat().reduce((n, v) => n + v.length, 0);
    console.log(`plugin-host document: ${bytes} bytes; largest stage parameters: ${total} characters (URL ${url.length}); limit ${SSM_DOCUMENT_LIMIT_BYTES} bytes`);
    expect(parameters.arguments![0]!.length).toBeLessThan(ARGUMENTS_MAX_CHARS / 2);
    // The host script grows with its operations (the health check's `verify` added ~4.7 KB): the
    // largest command still leaves over 40 % of SSM's limit free.
    expect(bytes + total).toBeLessThan(SSM_DOCUMENT_LIMIT_BYTES * 0.6);
    // verify with the longest health check plugin.yaml admits: 2,048 bytes of multi-byte UTF-8.
    const command = 'é'.repeat(HEALTHCHECK_COMMAND_MAX_BYTES / 2);
    const verify = documentParameters('verify', [DOCUMENT_ROOTS[1]!, 'p'.repeat(128), '20261202T000000Z-abcd', 'v'.repeat(64), '1000:1000', '300', command], 330);
    expect(verify.arguments![0]!.length).toBeLessThan(ARGUMENTS_MAX_CHARS / 2);
  });

  it('carries the host script byte for byte (gzip+base64, with its sha256), and no {{ }} but its own parameters', () => {
    const text = PRODUCTION.mainSteps[0]!.inputs.runCommand.join('\n');
    const gz64 = /^script_gz64='([A-Za-z0-9+/=]+)'$/m.exec(text)![1]!;
    const sha = /^script_sha256='([0-9a-f]{64})'$/m.exec(text)![1]!;
    const script = gunzipSync(Buffer.from(gz64, 'base64')).toString('utf8');
    expect(script).toBe(hostScriptText());
    expect(createHash('sha256').update(script).digest('hex')).toBe(sha);
    const references = JSON.stringify(PRODUCTION).match(/\{\{[^}]*\}\}/g);
    expect([...new Set(references)].sort()).toEqual(['{{ arguments }}', '{{ executionTimeout }}', '{{ operation }}']);
    expect(/^roots='(.*)'$/m.exec(text)![1]).toBe(DOCUMENT_ROOTS.join(' '));
    expect(/^root_prefix='(.*)'$/m.exec(text)![1]).toBe('');
  });

  it('is shellcheck-clean as rendered', () => {
    const script = renderCommandDocument('doc', PRODUCTION, { operation: ['list'], arguments: [''] }).script;
    const check = spawnSync('shellcheck', ['-s', 'sh', '-'], { input: `#!/bin/sh\n${script}`, encoding: 'utf8' });
    if (check.error) {
      expect.soft(check.error, 'shellcheck is not installed').toBeUndefined();
      return;
    }
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it.each<[string, Record<string, string[]>, RegExp]>([
    ['an operation outside the list', { operation: ['list; reboot'] }, /Parameter "operation" .*does not match/],
    ['an operation of another document', { operation: ['runShellScript'] }, /Parameter "operation"/],
    ['arguments with shell syntax', { operation: ['list'], arguments: ["$(reboot) '"] }, /Parameter "arguments"/],
    ['arguments past maxChars', { operation: ['list'], arguments: ['A'.repeat(ARGUMENTS_MAX_CHARS + 1)] }, /longer than/],
    ['a parameter the document does not define', { operation: ['list'], commands: ['id'] }, /"commands" is not defined/],
    ['a missing operation', { arguments: [''] }, /required/],
    ['an execution timeout with text', { operation: ['list'], executionTimeout: ['60; id'] }, /executionTimeout/],
  ])('its parameters refuse %s (InvalidParameters, before anything runs)', (_what, parameters, message) => {
    const err = refusal(() => renderCommandDocument('doc', PRODUCTION, parameters));
    expect(err.type).toBe('InvalidParameters');
    expect(err.message).toMatch(message);
  });

  it('the production document refuses every plugins root but the runtimes\' (nothing touched)', async () => {
    const cwd = await mkdtemp(join(base, 'prod-'));
    for (const [op, args] of [
      ['list', ['/etc']],
      ['uninstall', ['/', 'etc', '20261202T000000Z-abcd', 'ws-1-x-20261202T000000Z-abcd', '0']],
      ['lock', [join(cwd, 'configs/plugins'), 'p', '20261202T000000Z-abcd', 'owner', '60', '0']],
      ['sweep', ['/var/lib', RULES.previousBefore, '1', RULES.stagingBefore, RULES.failedBefore, '1800000000', '0']],
    ] as const) {
      const r = await runDocument(PRODUCTION, documentParameters(op, args, 60), cwd);
      expect(r.code, `${op} ${args[0]}`).toBe(10);
      expect(JSON.parse(r.stdout.trim())).toEqual({ ok: false, op, code: 'InvalidInput', message: `invalid plugins root: this document works only in ${DOCUMENT_ROOTS.join(' ')}` });
    }
    expect(await readdir(cwd)).toEqual([]);
  });

  it('arguments reach the host script as data, on a current agent and on one without SSM_ variables', async () => {
    const cwd = await mkdtemp(join(base, 'data-'));
    const root = join(cwd, 'configs', 'plugins');
    const hostile = ["'; touch pwned; '", '$(touch pwned)', '`touch pwned`', 'a b\nc', ''];
    for (const legacyAgent of [false, true]) {
      for (const value of hostile) {
        const r = await runDocument(TESTING, documentParameters('unlock', [root, value, '20261202T000000Z-abcd'], 60), cwd, { legacyAgent });
        expect(r.code, JSON.stringify(value)).toBe(10);
        expect(JSON.parse(r.stdout.trim())).toMatchObject({ ok: false, op: 'unlock', code: 'InvalidInput', message: 'invalid plugin name' });
      }
      const listed = await runDocument(TESTING, documentParameters('list', [root], 60), cwd, { legacyAgent });
      expect(listed.code, listed.stderr).toBe(0);
      expect(JSON.parse(listed.stdout.trim())).toMatchObject({ ok: true, op: 'list', plugins: [] });
    }
    expect(existsSync(join(cwd, 'pwned'))).toBe(false);
    expect(existsSync(join(process.cwd(), 'pwned'))).toBe(false);
  });

  it('refuses words that are not its encoding', async () => {
    const cwd = await mkdtemp(join(base, 'enc-'));
    // allowedPattern admits these characters, but "QQ==" lacks the x prefix and "@" never reaches it.
    const r = await runDocument(TESTING, { operation: ['list'], arguments: ['QQ=='] }, cwd);
    expect(r.code).toBe(10);
    expect(r.stdout).toMatch(/"code":"InvalidInput","message":"an argument lacks its x prefix"/);
  });
});

describe('the document\'s fleet sweep', () => {
  it('sweeps every runtime root', () => {
    expect(FLEET_ROOTS).toEqual(['/configs/plugins', '/home/ubuntu/.hermes/plugins', '/opt/configs/plugins']);
    expect(FLEET_ROOTS).toEqual(DOCUMENT_ROOTS);
  });

  it.each<[string, () => unknown]>([
    ['a bad cutoff', () => fleetSweepParameters({ ...RULES, previousBefore: '$(reboot)' }, 600)],
    ['a negative keep', () => fleetSweepParameters({ ...RULES, keepNewest: -1 }, 600)],
    ['a fractional now', () => fleetSweepParameters({ ...RULES, nowEpochSeconds: 1.5 }, 600)],
  ])('refuses %s with InvalidInput', (_what, fn) => {
    let error: unknown;
    try {
      fn();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PluginError);
    expect((error as PluginError).code).toBe('InvalidInput');
  });

  // Runs the real sweep script over three roots: a minute on a quiet machine is a few seconds,
  // but under a load average of 15 on two cores it took longer.
  it('in an instance directory: sweeps each root present, one compact line per root', { timeout: 300_000 }, async () => {
    const instance = join(base, 'i-1');
    const claude = join(instance, 'configs', 'plugins');
    const hermes = join(instance, 'home', 'ubuntu', '.hermes', 'plugins');
    for (const d of ['01', '02', '03']) await snapshot(claude, `p.202601${d}T000000Z-aaaa`);
    // Many deletions: the script's own result line is long, the summary stays short.
    for (let i = 0; i < 300; i++) await snapshot(hermes, `h${i}.20260101T000000Z-aaaa`, 10);
    for (let i = 0; i < 300; i++) await snapshot(hermes, `h${i}.20260102T000000Z-aaaa`, 10);
    const parameters = fleetSweepParameters(RULES, 600);
    const r = await runDocument(TESTING, parameters, instance);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.length).toBeLessThan(600);
    expect(r.stdout.trim().split('\n')).toHaveLength(3);
    const parsed = parseFleetOutput(r.stdout);
    expect(parsed.ended).toBe(true);
    expect(parsed.errors).toEqual([]);
    expect(parsed.roots).toEqual([
      { root: '/configs/plugins', counts: { previous: 2, staging: 0, failed: 0, locks: 0 }, bytes: expect.any(Number) },
      { root: '/home/ubuntu/.hermes/plugins', counts: { previous: 300, staging: 0, failed: 0, locks: 0 }, bytes: expect.any(Number) },
    ]);
    expect(parsed.roots[0]!.bytes).toBeGreaterThanOrEqual(2 * 3000);
    expect(existsSync(join(claude, '.previous', 'p.20260103T000000Z-aaaa'))).toBe(true);
    expect(existsSync(join(claude, '.previous', 'p.20260101T000000Z-aaaa'))).toBe(false);
    // Again: nothing left, still one line per root.
    const again = parseFleetOutput((await runDocument(TESTING, parameters, instance)).stdout);
    expect(again.roots.map((x) => x.counts.previous)).toEqual([0, 0]);
    // A fleet sweep takes exactly the six rule values.
    const extra = await runDocument(TESTING, documentParameters('fleet-sweep', ['/etc', ...parameters.arguments![0]!.split(' ').map((w) => Buffer.from(w, 'base64').toString().slice(1))], 600), instance);
    expect(extra.code).toBe(10);
    expect(extra.stdout).toMatch(/fleet-sweep takes 6 arguments/);
  });

  it('reports each root the script refuses (exit status and code) and exits 1', async () => {
    // The instance's working directory holds a ':', which the script's root validation refuses.
    const instance = join(base, 'i:2');
    await snapshot(join(instance, 'configs', 'plugins'), 'p.20260101T000000Z-aaaa');
    await snapshot(join(instance, 'opt', 'configs', 'plugins'), 'p.20260101T000000Z-aaaa');
    const r = await runDocument(TESTING, fleetSweepParameters(RULES, 600), instance);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('"exit":10,"code":"InvalidInput"');
    const parsed = parseFleetOutput(r.stdout);
    expect(parsed.ended).toBe(true);
    expect(parsed.roots).toEqual([]);
    expect(parsed.errors).toEqual([
      expect.stringMatching(/^\/configs\/plugins: InvalidInput: invalid plugins root$/),
      expect.stringMatching(/^\/opt\/configs\/plugins: InvalidInput: invalid plugins root$/),
    ]);
    expect(existsSync(join(instance, 'configs', 'plugins', '.previous', 'p.20260101T000000Z-aaaa'))).toBe(true);
  });

  it('parses lines among SSM noise and flags a missing end line', () => {
    const out = [
      'PLUGINSWEEP {"root":"/configs/plugins","ok":true,"counts":{"previous":2,"staging":1,"failed":0,"locks":3},"bytes":12288}',
      'noise',
      'PLUGINSWEEP {"root":"/opt/configs/plugins","ok":false,"exit":21,"code":"HostIoError","message":"cannot delete .previous/x"}',
      'PLUGINSWEEP {broken',
      '',
      '----------ERROR-------',
      'something on stderr',
    ].join('\n');
    expect(parseFleetOutput(out)).toEqual({
      roots: [{ root: '/configs/plugins', counts: { previous: 2, staging: 1, failed: 0, locks: 3 }, bytes: 12288 }],
      errors: ['/opt/configs/plugins: HostIoError: cannot delete .previous/x', 'unreadable summary line "PLUGINSWEEP {broken"'],
      ended: false,
    });
  });
});
