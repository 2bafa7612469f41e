/**
 * SSM adapter of the RemoteHost port: one host step is one SSM Run Command of the stack's own
 * Command document (ssm-document.ts: the host script inside, never `AWS-RunShellScript`) on the
 * workspace's instance, polled with GetCommandInvocation until it ends.
 *
 * - The command sends only the operation and its arguments (base64-encoded, see
 *   ssm-document.ts); the document runs the shared host script as root (the SSM agent's user), so
 *   there is no privilege prefix.
 * - SSM keeps only the first 24,000 characters of stdout; the document prints just the script's
 *   last (result) line, gzip+base64 encoded behind `PLUGINHOST-GZ64:` when it is long, and this
 *   adapter decodes it.
 * - Run Command has no stdin: `streamsStdin` is false and the host fetches the tarball from a
 *   presigned URL (`stage`'s 7th argument).
 *
 * Transport outcomes become PluginErrors (HostUnreachable, HostTimeout, HostStepInterrupted);
 * what the script reported (Success / Failed with its exit status) is returned raw, for
 * host-result.ts to interpret.
 */
import { constants as osConstants } from 'node:os';
import { gunzipSync } from 'node:zlib';
import {
  CancelCommandCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
  type GetCommandInvocationCommandOutput,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { PluginError } from '../errors.ts';
import { pluginsRoot } from '../runtimes.ts';
import { documentParameters, isDocumentName } from './ssm-document.ts';
import { AGENT_OWNER, type HostResolver } from './host-resolver.ts';
import type { HostInvocation, HostRawResult, RemoteHost } from './remote-host.ts';

export interface SsmHostOptions {
  client: SSMClient;
  /** The stack's Command document (infra/constructs/host-document.ts), e.g. from SSM_DOCUMENT_NAME. */
  documentName: string;
  /** Default step timeout (the command's `executionTimeout` on the host). Default 120 s. */
  stepTimeoutMs?: number;
  /** First pause between GetCommandInvocation polls; doubles up to pollMaxMs. Default 200 ms. */
  pollInitialMs?: number;
  /** Longest pause between polls. Default 2 s. */
  pollMaxMs?: number;
  /**
   * After the step timeout, how long to keep polling for the agent's own TimedOut report before
   * cancelling the command and giving up. Default 5 s.
   */
  reportGraceMs?: number;
  /** Prepended to the runtime's plugins root (tests: a temp dir standing in for the host's `/`). */
  rootPrefix?: string;
  /** Injectable pause (tests). */
  sleep?: (ms: number) => Promise<void>;
}

/** SSM keeps this many characters of a command's stdout. */
export const SSM_STDOUT_LIMIT = 24_000;
/** Marks a result line the document's script compressed (see ssm-document.sh). */
export const GZ64_PREFIX = 'PLUGINHOST-GZ64:';

/** Turns the wrapper's stdout back into the script's result line (decoding a compressed one). */
export function decodeSsmStdout(stdout: string): string {
  const trimmed = stdout.replace(/\s+$/, '');
  const start = trimmed.lastIndexOf('\n') + 1;
  const last = trimmed.slice(start);
  if (!last.startsWith(GZ64_PREFIX)) return stdout;
  try {
    const text = gunzipSync(Buffer.from(last.slice(GZ64_PREFIX.length), 'base64')).toString('utf8');
    return trimmed.slice(0, start) + text;
  } catch (err) {
    throw new PluginError(
      'HostProtocolError',
      `the host step's compressed result line could not be decoded (${trimmed.length} characters of output${trimmed.length >= SSM_STDOUT_LIMIT ? `, at SSM's ${SSM_STDOUT_LIMIT}-character limit` : ''}): ${err instanceof Error ? err.message : String(err)}`,
      'the result is too large for SSM Run Command output even compressed; prune old snapshots on the host or use the EIC transport',
    );
  }
}

const INSTANCE_ID = /^(i|mi)-[0-9a-f]{8,32}$/;
const THROTTLING = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'TooManyUpdates']);
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'TimeoutError']);

interface AwsErrorLike {
  name?: string;
  code?: string;
  message?: string;
  $fault?: string;
  $metadata?: { httpStatusCode?: number };
}

function errorName(err: unknown): string {
  const e = err as AwsErrorLike | undefined;
  return e?.name ?? '';
}

/** Throttling, a 5xx, or no answer at all: the SSM API may work on the next try. */
function isTransient(err: unknown): boolean {
  const e = (err ?? {}) as AwsErrorLike;
  if (THROTTLING.has(e.name ?? '')) return true;
  if (e.$fault === 'server' || (e.$metadata?.httpStatusCode ?? 0) >= 500) return true;
  return NETWORK.has(e.code ?? '') || NETWORK.has(e.name ?? '');
}

function describe(err: unknown): string {
  const e = (err ?? {}) as AwsErrorLike;
  const name = e.name && e.name !== 'Error' ? `${e.name}: ` : '';
  return `${name}${e.message ?? String(err)}`;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Exit statuses above 128 without a result line are a signal's (e.g. 137 = SIGKILL). */
function signalOf(exitCode: number, stdout: string): string | null {
  if (exitCode <= 128 || exitCode > 128 + 64) return null;
  if (/^\s*\{/m.test(stdout.split('\n').filter((l) => l.trim()).pop() ?? '')) return null;
  const number = exitCode - 128;
  const name = Object.entries(osConstants.signals).find(([, n]) => n === number)?.[0];
  return name ?? `SIG${number}`;
}

export class SsmHost implements RemoteHost {
  readonly transport = 'ssm';
  readonly streamsStdin = false;
  readonly #client: SSMClient;
  readonly #documentName: string;
  readonly #stepTimeoutMs: number;
  readonly #pollInitialMs: number;
  readonly #pollMaxMs: number;
  readonly #reportGraceMs: number;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(readonly instanceId: string, options: SsmHostOptions) {
    if (!INSTANCE_ID.test(instanceId)) {
      throw new PluginError('InvalidInput', `invalid SSM instance id ${JSON.stringify(instanceId)}`, 'managed nodes look like i-0123456789abcdef0 or mi-0123456789abcdef0');
    }
    if (!isDocumentName(options.documentName)) {
      throw new PluginError('InvalidInput', `invalid SSM document name ${JSON.stringify(options.documentName)}`, "set SSM_DOCUMENT_NAME to the stack's plugin-host document (the stack output HostDocumentName)");
    }
    this.#client = options.client;
    this.#documentName = options.documentName;
    this.#stepTimeoutMs = options.stepTimeoutMs ?? 120_000;
    this.#pollInitialMs = Math.max(1, options.pollInitialMs ?? 200);
    this.#pollMaxMs = Math.max(this.#pollInitialMs, options.pollMaxMs ?? 2_000);
    this.#reportGraceMs = options.reportGraceMs ?? 5_000;
    this.#sleep = options.sleep ?? defaultSleep;
  }

  async run(invocation: HostInvocation): Promise<HostRawResult> {
    const { op } = invocation;
    if (invocation.stdin) {
      throw new PluginError(
        'HostStepFailed',
        `host step ${op}: the SSM transport cannot stream stdin to ${this.instanceId}`,
        'with SSM the host fetches the tarball itself: pass a presigned URL to stage',
      );
    }
    const timeoutMs = invocation.timeoutMs ?? this.#stepTimeoutMs;
    const executionSeconds = Math.min(172_800, Math.max(1, Math.ceil(timeoutMs / 1000)));
    const started = Date.now();
    const deadline = started + timeoutMs + this.#reportGraceMs;

    let commandId: string;
    try {
      const sent = await this.#client.send(
        new SendCommandCommand({
          InstanceIds: [this.instanceId],
          DocumentName: this.#documentName,
          Parameters: documentParameters(invocation.op, invocation.args, executionSeconds),
          // Delivery timeout (SSM's minimum is 30 s): an agent that has not picked the command up
          // by then never runs it.
          TimeoutSeconds: Math.max(30, executionSeconds),
          Comment: `plugin-host ${op}`,
        }),
        { abortSignal: AbortSignal.timeout(Math.max(1_000, deadline - Date.now())) },
      );
      if (!sent.Command?.CommandId) throw new PluginError('HostProtocolError', `SendCommand for host step ${op} returned no command id`, 'check the SSM endpoint configuration');
      commandId = sent.Command.CommandId;
    } catch (err) {
      throw this.#sendError(op, err);
    }

    let delay = this.#pollInitialMs;
    let transientErrors = 0;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        await this.#cancel(commandId);
        throw new PluginError(
          'HostTimeout',
          `host step ${op} on ${this.instanceId} did not finish within ${Math.round(timeoutMs / 1000)}s (SSM command ${commandId}, cancelled)`,
          'the step is idempotent and will be retried; if it keeps timing out, check the SSM agent on the instance',
        );
      }
      await this.#sleep(Math.min(delay, remaining));
      delay = Math.min(delay * 2, this.#pollMaxMs);

      let out: GetCommandInvocationCommandOutput;
      try {
        out = await this.#client.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: this.instanceId }), {
          abortSignal: AbortSignal.timeout(Math.max(1_000, deadline - Date.now())),
        });
      } catch (err) {
        // Run Command is eventually consistent: right after SendCommand the invocation may not exist yet.
        if (errorName(err) === 'InvocationDoesNotExist') continue;
        if (isTransient(err) && ++transientErrors <= 5) continue;
        await this.#cancel(commandId);
        throw this.#apiError(op, 'GetCommandInvocation', err);
      }
      transientErrors = 0;
      const result = this.#interpret(op, commandId, out, executionSeconds);
      if (result) return result;
    }
  }

  /** A terminal invocation → result or typed error; a pending one → undefined (keep polling). */
  #interpret(op: string, commandId: string, out: GetCommandInvocationCommandOutput, executionSeconds: number): HostRawResult | undefined {
    const status = out.Status ?? '';
    const details = out.StatusDetails ?? '';
    const where = `host step ${op} on ${this.instanceId} (SSM command ${commandId})`;
    if (details === 'Undeliverable') {
      throw new PluginError('HostUnreachable', `${where} could not be delivered: the instance is gone or its SSM agent is not registered`, 'check that the instance runs and that its SSM agent is online');
    }
    if (details === 'Terminated') {
      throw new PluginError('HostStepInterrupted', `${where} was terminated by SSM before it ran`, 'the step is idempotent and will be retried');
    }
    switch (status) {
      case 'Pending':
      case 'InProgress':
      case 'Delayed':
      case '':
        return undefined;
      case 'Success':
      case 'Failed': {
        const code = out.ResponseCode ?? (status === 'Success' ? 0 : -1);
        if (code < 0) {
          throw new PluginError('HostStepFailed', `${where} failed before the script ran (${details || status})${out.StandardErrorContent ? `: ${out.StandardErrorContent.trim().slice(-300)}` : ''}`, 'look at the command in the SSM console');
        }
        const stdout = decodeSsmStdout(out.StandardOutputContent ?? '');
        return { exitCode: code, signal: signalOf(code, stdout), stdout, stderr: out.StandardErrorContent ?? '' };
      }
      case 'TimedOut':
        throw new PluginError(
          'HostTimeout',
          details === 'Delivery Timed Out'
            ? `${where} was not picked up by the SSM agent in time`
            : `${where} ran longer than its ${executionSeconds}s execution timeout and was stopped`,
          'the step is idempotent and will be retried',
        );
      case 'Cancelled':
      case 'Cancelling':
        throw new PluginError('HostStepInterrupted', `${where} was cancelled`, 'the step is idempotent and will be retried');
      default:
        // A status this adapter does not know: keep polling until the deadline decides.
        return undefined;
    }
  }

  #sendError(op: string, err: unknown): PluginError {
    if (err instanceof PluginError) return err;
    if (errorName(err) === 'InvalidInstanceId') {
      return new PluginError(
        'HostUnreachable',
        `instance ${this.instanceId} is not managed by SSM or not online, so host step ${op} cannot run there (${describe(err)})`,
        'check that the SSM agent runs on the instance and that its IAM instance profile allows Systems Manager (AmazonSSMManagedInstanceCore)',
      );
    }
    if (errorName(err) === 'InvalidDocument' || errorName(err) === 'InvalidDocumentVersion') {
      return new PluginError(
        'HostStepFailed',
        `host step ${op} on ${this.instanceId}: SSM has no document ${this.#documentName} (${describe(err)})`,
        "deploy the stack (it creates the plugin-host document) and set SSM_DOCUMENT_NAME to its HostDocumentName output",
        { cause: err },
      );
    }
    return this.#apiError(op, 'SendCommand', err);
  }

  #apiError(op: string, action: string, err: unknown): PluginError {
    if (err instanceof PluginError) return err;
    if (errorName(err) === 'AbortError' || errorName(err) === 'TimeoutError') {
      return new PluginError('HostTimeout', `host step ${op} on ${this.instanceId}: ${action} did not answer in time`, 'the step is idempotent and will be retried');
    }
    if (isTransient(err)) {
      return new PluginError('HostUnreachable', `host step ${op} on ${this.instanceId}: the SSM API is throttling or unavailable (${action}: ${describe(err)})`, 'retry shortly; the step is idempotent', { cause: err });
    }
    return new PluginError('HostStepFailed', `host step ${op} on ${this.instanceId}: ${action} was refused (${describe(err)})`, 'check the Lambda role\'s ssm:SendCommand / ssm:GetCommandInvocation permissions and the SSM configuration', { cause: err });
  }

  /** Best effort: stop a command we no longer wait for (the agent kills its process group). */
  async #cancel(commandId: string): Promise<void> {
    try {
      await this.#client.send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: [this.instanceId] }), { abortSignal: AbortSignal.timeout(5_000) });
    } catch {
      // The command may have finished meanwhile, or the API is down: nothing more to do.
    }
  }
}

/** Workspaces with transport `ssm`: one SsmHost per instance, plugins root per runtime. */
export function ssmHostResolver(options: SsmHostOptions): HostResolver {
  const hosts = new Map<string, SsmHost>();
  return (workspace) => {
    if (workspace.transport !== 'ssm' || !workspace.instanceId) {
      throw new PluginError('HostUnreachable', `workspace ${workspace.id} uses transport ${workspace.transport}${workspace.instanceId ? '' : ' without an instance id'}, which the SSM adapter cannot reach`, 'configure the matching adapter, or check the workspace directory');
    }
    let host = hosts.get(workspace.instanceId);
    if (!host) {
      host = new SsmHost(workspace.instanceId, options);
      hosts.set(workspace.instanceId, host);
    }
    return { host, root: (options.rootPrefix ?? '') + pluginsRoot(workspace.runtime), ownerSpec: AGENT_OWNER };
  };
}
