/**
 * The one command line remote transports run: the host script's text passed to `sh -c` as a
 * single quoted argument, then the operation and its arguments, each quoted. Nothing from a
 * request reaches the remote shell unquoted (and every argument was validated before this).
 */
import { hostScriptText } from './host-script.ts';
import type { HostInvocation } from './remote-host.ts';

/** POSIX single-quoting: the only character needing care inside '…' is ' itself. */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new Error('NUL byte in a shell argument');
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface CommandLineOptions {
  /** Prefix for privilege (e.g. `sudo -n` for a non-root OS user); empty when already root. */
  privilege?: string;
}

/** `[sudo -n] sh -c '<script>' plugin-host.sh '<op>' '<arg>'…` */
export function hostCommandLine(invocation: Pick<HostInvocation, 'op' | 'args'>, options: CommandLineOptions = {}): string {
  const parts = [
    ...(options.privilege ? [options.privilege] : []),
    'sh',
    '-c',
    shellQuote(hostScriptText()),
    'plugin-host.sh',
    shellQuote(invocation.op),
    ...invocation.args.map(shellQuote),
  ];
  return parts.join(' ');
}
