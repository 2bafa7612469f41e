/**
 * `pluginctl publish`: into the embedded catalog directory ($PLUGINCTL_CATALOG) and, with
 * --bucket, into an S3 bucket's catalog/ (s3rver, reached by the SDK's own endpoint setting
 * AWS_ENDPOINT_URL_S3 and the environment's credentials, as an operator's shell would). A
 * version is published once: the same bytes again succeed (`unchanged`), other bytes are refused
 * (exit 2, InvalidInput naming both digests); a hostile source is refused before anything is written; what
 * is published installs as `local://name@version`.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packTarGz } from '../fixtures/hostile-tarballs.ts';
import { pluginctl } from '../helpers/cli.ts';
import { writePluginDir } from '../helpers/plugin-versions.ts';
import { startS3, type S3StandIn } from '../servers/s3.ts';

let tmp: string;
let s3: S3StandIn;
let env: Record<string, string>;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'publish-'));
  s3 = await startS3({ bucket: 'publish-bucket' });
  env = { PLUGINCTL_HOME: join(tmp, 'home'), PLUGINCTL_CATALOG: join(tmp, 'catalog'), PLUGINCTL_RETRY_DELAY_MS: '0' };
}, 60_000);
afterAll(async () => {
  await s3?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('pluginctl publish', () => {
  it('publishes a plugin directory into $PLUGINCTL_CATALOG; the same again is unchanged; other bytes for the version are refused (exit 2)', async () => {
    const dir = await writePluginDir(join(tmp, 'src'), { name: 'pub-a', version: '1.0.0' });
    const first = await pluginctl(['publish', dir, '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    const key = join(tmp, 'catalog', 'pub-a', '1.0.0.tar.gz');
    expect(first.json).toEqual({ status: 'published', plugin: 'pub-a', version: '1.0.0', sha256: sha256(await readFile(key)), catalog: join(tmp, 'catalog'), key: 'catalog/pub-a/1.0.0.tar.gz' });

    const again = await pluginctl(['publish', dir], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('already in');

    await appendFile(join(dir, 'skills', 's0', 'file-0.md'), 'changed without a new version\n');
    const changed = await pluginctl(['publish', dir, '--json'], env);
    expect(changed.code).toBe(2);
    expect(changed.json).toMatchObject({ status: 'refused', plugin: 'pub-a', version: '1.0.0', error: { code: 'InvalidInput' } });
    expect(changed.stderr).toMatch(/^pluginctl: pub-a 1\.0\.0 is already in the catalog .* with other bytes/);
    expect(changed.stderr).toContain('hint: published versions never change');
    expect(sha256(await readFile(key))).toBe(first.json!.sha256);

    // What was published installs by its catalog reference.
    const installed = await pluginctl(['install', 'local://pub-a@1.0.0', '--workspace', 'pub-ws', '--json'], env);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.json).toMatchObject({ status: 'succeeded', plugin: 'pub-a', version: '1.0.0', sha256: first.json!.sha256 });
  });

  it('refuses a hostile tarball before writing anything (exit 2)', async () => {
    const bad = join(tmp, 'bad.tar.gz');
    await writeFile(bad, await packTarGz([{ name: 'plugin.yaml', body: 'name: pub-bad\nversion: 1.0.0\n' }, { name: '/etc/evil', body: 'x' }]));
    const r = await pluginctl(['publish', bad, '--json'], env);
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ status: 'refused', plugin: null, error: { code: 'HostileTarball' } });
    expect(existsSync(join(tmp, 'catalog', 'pub-bad'))).toBe(false);
  });

  it('--bucket puts it at s3://<bucket>/catalog/<name>/<version>.tar.gz, once', async () => {
    const awsEnv = { ...env, AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_PROFILE: undefined as unknown as string };
    const dir = await writePluginDir(join(tmp, 'src-b'), { name: 'pub-b', version: '2.0.0' });
    const r = await pluginctl(['publish', dir, '--bucket', s3.bucket, '--json'], awsEnv);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ status: 'published', plugin: 'pub-b', version: '2.0.0', catalog: `s3://${s3.bucket}/catalog/`, key: 'catalog/pub-b/2.0.0.tar.gz' });
    const object = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'catalog/pub-b/2.0.0.tar.gz' }));
    expect(sha256(Buffer.from(await object.Body!.transformToByteArray()))).toBe(r.json!.sha256);

    expect((await pluginctl(['publish', dir, '--bucket', s3.bucket, '--json'], awsEnv)).json).toMatchObject({ status: 'unchanged' });
    await appendFile(join(dir, 'skills', 's0', 'file-0.md'), 'other bytes\n');
    const refused = await pluginctl(['publish', dir, '--bucket', s3.bucket, '--json'], awsEnv);
    expect(refused.code).toBe(2);
    expect(refused.json).toMatchObject({ status: 'refused', error: { code: 'InvalidInput', message: expect.stringContaining('is already in the catalog (s3://') } });
    // The local catalog was not touched.
    expect(existsSync(join(tmp, 'catalog', 'pub-b'))).toBe(false);
  });

  it('refuses an invalid bucket name and a missing source as usage-level refusals (exit 2)', async () => {
    expect((await pluginctl(['publish', join(tmp, 'nope'), '--json'], env)).json).toMatchObject({ status: 'refused', error: { code: 'SourceNotFound' } });
    const r = await pluginctl(['publish', join(tmp, 'nope'), '--bucket', 's3://x', '--json'], env);
    expect(r.code).toBe(2);
    expect(r.json).toMatchObject({ status: 'refused', error: { code: 'InvalidInput' } });
    expect((await pluginctl(['publish', '--json'], env)).code).toBe(2);
  });
});
