/**
 * The stack's own SSM Command document, and the parameters a step sends with it.
 *
 * Sending `AWS-RunShellScript` would let the Lambda roles run any command as root on every
 * workspace instance. Instead the stack deploys this document (infra/constructs/host-document.ts)
 * and allows `ssm:SendCommand` with it only: its one script (ssm-document.sh) carries the host
 * script (gzip+base64, checked against its sha256 on the host), accepts nothing but an operation
 * name and base64-encoded arguments, and refuses a plugins root that is not one of the runtimes'.
 *
 * Limits (AWS Systems Manager, "Creating SSM document content"): the document's content, including
 * the parameter values given at run time, must not exceed 64 KB. `documentBytes` and
 * `ARGUMENTS_MAX_CHARS` are checked against that in test/unit/ssm-document.test.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { RUNTIMES, pluginsRoot } from '../runtimes.ts';
import { PluginError } from '../errors.ts';
import { hostScriptText } from './host-script.ts';
import { HOST_OPS, type HostOp } from './remote-host.ts';

/** What a command may ask the document to do: a host step, or the fleet sweep. */
export const DOCUMENT_OPERATIONS = [...HOST_OPS, 'fleet-sweep'] as const;
export type DocumentOperation = (typeof DOCUMENT_OPERATIONS)[number];

/** The `arguments` parameter's longest value: a presigned URL with a session token is ~2.5 KB encoded. */
export const ARGUMENTS_MAX_CHARS = 8_192;
/** SSM: document content plus run-time parameter values. */
export const SSM_DOCUMENT_LIMIT_BYTES = 64 * 1024;
/** The step name, which GetCommandInvocation calls the plugin name. */
export const DOCUMENT_STEP = 'pluginHost';

/** AWS reserves these prefixes of document names. */
export const RESERVED_DOCUMENT_PREFIX = /^(aws|amazon|amzn)/i;

/** An SSM document name we may create or send: 3–128 of [A-Za-z0-9_.-], no reserved prefix. */
export function isDocumentName(name: string): boolean {
  return /^[A-Za-z0-9_.-]{3,128}$/.test(name) && !RESERVED_DOCUMENT_PREFIX.test(name);
}

/** Every plugins root a runtime uses: the only roots the document lets a step name. */
export const DOCUMENT_ROOTS: readonly string[] = [...new Set(RUNTIMES.filter((r) => r !== 'external').map((r) => pluginsRoot(r)))];

export interface SsmDocumentOptions {
  /**
   * Where the roots are: '' on a real host (the default, and what the stack deploys); '.' (the
   * command's working directory) for the test stand-in, whose fake instances are directories.
   */
  rootPrefix?: '' | '.';
}

export interface SsmCommandDocument {
  schemaVersion: '2.2';
  description: string;
  parameters: Record<string, { type: 'String'; description: string; allowedPattern: string; default?: string; maxChars?: number; interpolationType?: 'ENV_VAR' }>;
  mainSteps: {
    action: 'aws:runShellScript';
    name: string;
    precondition: { StringEquals: [string, string] };
    inputs: { runCommand: string[]; timeoutSeconds: string };
  }[];
}

const SCRIPT_PATH = new URL('./ssm-document.sh', import.meta.url);

/** The document, built from ssm-document.sh and plugin-host.sh (the same bytes every transport runs). */
export function ssmCommandDocument(options: SsmDocumentOptions = {}): SsmCommandDocument {
  const host = hostScriptText();
  const fill: Record<string, string> = {
    '@SCRIPT_GZ64@': gzipSync(Buffer.from(host, 'utf8'), { level: 9 }).toString('base64'),
    '@SCRIPT_SHA256@': createHash('sha256').update(host, 'utf8').digest('hex'),
    '@ROOTS@': DOCUMENT_ROOTS.join(' '),
    '@ROOT_PREFIX@': options.rootPrefix ?? '',
  };
  let text = readFileSync(SCRIPT_PATH, 'utf8');
  for (const [placeholder, value] of Object.entries(fill)) {
    if (!text.includes(`'${placeholder}'`)) throw new Error(`ssm-document.sh lost its placeholder ${placeholder}`);
    text = text.replace(`'${placeholder}'`, `'${value}'`);
  }
  return {
    schemaVersion: '2.2',
    description: 'workspace-plugin-installer: runs one plugin-host.sh operation (or the fleet sweep) on a workspace instance. Only the plugins roots of the known runtimes; arguments are base64.',
    parameters: {
      operation: {
        type: 'String',
        description: 'plugin-host.sh operation, or fleet-sweep',
        allowedPattern: `^(${DOCUMENT_OPERATIONS.join('|')})$`,
        interpolationType: 'ENV_VAR',
      },
      arguments: {
        type: 'String',
        description: 'the operation\'s arguments, each base64("x" + value), space-separated',
        allowedPattern: '^[A-Za-z0-9+/= ]*$',
        default: '',
        maxChars: ARGUMENTS_MAX_CHARS,
        interpolationType: 'ENV_VAR',
      },
      executionTimeout: {
        type: 'String',
        description: 'seconds the operation may run before the agent stops it',
        allowedPattern: '^[0-9]{1,6}$',
        default: '120',
      },
    },
    mainSteps: [
      {
        action: 'aws:runShellScript',
        name: DOCUMENT_STEP,
        precondition: { StringEquals: ['platformType', 'Linux'] },
        inputs: { runCommand: text.replace(/\n$/, '').split('\n'), timeoutSeconds: '{{ executionTimeout }}' },
      },
    ],
  };
}

/** Size of the document's content as SSM stores it (JSON). */
export function documentBytes(document: SsmCommandDocument): number {
  return Buffer.byteLength(JSON.stringify(document), 'utf8');
}

/** `base64("x" + value)` per argument, space-separated: nothing a shell could read as syntax. */
export function encodeArguments(args: readonly string[]): string {
  return args
    .map((value) => {
      if (value.includes('\0')) throw new PluginError('InvalidInput', 'an argument holds a NUL byte', 'host-step arguments are validated text');
      return Buffer.from(`x${value}`, 'utf8').toString('base64');
    })
    .join(' ');
}

/** The SendCommand `Parameters` for one operation. */
export function documentParameters(operation: HostOp | 'fleet-sweep', args: readonly string[], executionSeconds: number): Record<string, string[]> {
  const encoded = encodeArguments(args);
  if (encoded.length > ARGUMENTS_MAX_CHARS) {
    throw new PluginError('InvalidInput', `the ${operation} step's arguments take ${encoded.length} characters encoded, over the document's ${ARGUMENTS_MAX_CHARS}`, 'shorten the presigned URL (a shorter expiry does not help; use a bucket without a long name) or report this as a bug');
  }
  return { operation: [operation], arguments: [encoded], executionTimeout: [String(executionSeconds)] };
}
