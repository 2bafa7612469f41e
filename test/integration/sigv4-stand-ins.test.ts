/**
 * The stand-ins of the AWS APIs check SigV4 as AWS does with the temporary credentials a Lambda
 * has (access key, secret, session token): the real SDK clients, signing with those credentials,
 * are served; the same clients without the token, with another token or another secret are
 * refused with the error AWS gives.
 */
import { EC2Client, DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { EC2InstanceConnectClient, SendSSHPublicKeyCommand } from '@aws-sdk/client-ec2-instance-connect';
import { ListCommandInvocationsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEc2Api, type Ec2ApiStandIn } from '../servers/ec2-api.ts';
import { startEicApi, type EicApiHandle } from '../servers/eic-api.ts';
import { TEST_CREDENTIALS, TEST_REGION } from '../servers/sigv4.ts';
import { startSsmApi, type SsmApi } from '../servers/ssm-api.ts';

const { sessionToken: _token, ...WITHOUT_TOKEN } = TEST_CREDENTIALS;
void _token;
const VARIANTS = {
  'no session token': WITHOUT_TOKEN,
  'another session token': { ...TEST_CREDENTIALS, sessionToken: 'another-token' },
  'another secret': { ...TEST_CREDENTIALS, secretAccessKey: 'not-the-secret' },
} as const;

let ec2: Ec2ApiStandIn;
let ssm: SsmApi;
let eic: EicApiHandle;
let keyDir: string;
beforeAll(async () => {
  keyDir = await mkdtemp(join(tmpdir(), 'sigv4-keys-'));
  ec2 = await startEc2Api({ instances: [] });
  ssm = await startSsmApi({ instances: {} });
  eic = await startEicApi({ keyStoreDir: keyDir, instances: ['i-0123456789abcdef0'] });
});
afterAll(async () => {
  await Promise.allSettled([ec2?.stop(), ssm?.stop(), eic?.stop()]);
  await rm(keyDir, { recursive: true, force: true });
});

type Creds = { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
const clients = {
  ec2: (credentials: Creds) => new EC2Client({ endpoint: ec2.endpoint, region: TEST_REGION, credentials, maxAttempts: 1 }),
  ssm: (credentials: Creds) => new SSMClient({ endpoint: ssm.endpoint, region: TEST_REGION, credentials, maxAttempts: 1 }),
  eic: (credentials: Creds) => new EC2InstanceConnectClient({ endpoint: eic.endpoint, region: TEST_REGION, credentials, maxAttempts: 1 }),
};
const calls = {
  ec2: (credentials: Creds) => clients.ec2(credentials).send(new DescribeInstancesCommand({})),
  ssm: (credentials: Creds) => clients.ssm(credentials).send(new ListCommandInvocationsCommand({ CommandId: '00000000-0000-0000-0000-000000000000' })),
  eic: (credentials: Creds) =>
    clients.eic(credentials).send(new SendSSHPublicKeyCommand({ InstanceId: 'i-0123456789abcdef0', InstanceOSUser: 'ubuntu', SSHPublicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test' })),
};
/** The error names AWS answers a bad signature with, by service. */
const REFUSED = { ec2: /AuthFailure/, ssm: /UnrecognizedClientException|InvalidSignatureException/, eic: /UnrecognizedClientException|InvalidSignatureException/ };

describe.each(['ec2', 'ssm', 'eic'] as const)('the %s stand-in', (service) => {
  /** 'served' (answered, possibly with a domain error such as an unknown command id) or the refusal. */
  const outcome = (credentials: Creds) =>
    calls[service](credentials).then(
      () => 'served',
      (e: { name?: string; message?: string }) => (REFUSED[service].test(`${e.name} ${e.message}`) ? `refused: ${e.name}: ${e.message}` : 'served'),
    );

  it('serves a client signing with temporary credentials (session token included)', async () => {
    expect(await outcome({ ...TEST_CREDENTIALS })).toBe('served');
  });

  it.each(Object.entries(VARIANTS))('refuses a client with %s', async (_what, credentials) => {
    expect(await outcome(credentials)).toMatch(/^refused: /);
  });
});
