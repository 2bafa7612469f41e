/**
 * A local stand-in of the AWS Systems Manager Run Command API, for tests: awsJson1_1 over HTTP on
 * 127.0.0.1, reached by the real `SSMClient` through `endpoint`.
 *
 * Actions: SendCommand (of the Command documents the test registers, e.g. the stack's own
 * plugin-host document, by InstanceIds or by tag Targets with MaxConcurrency / MaxErrors),
 * GetCommandInvocation, ListCommandInvocations (paginated, Details optional), CancelCommand.
 *
 * Documents run as the agent runs them: the parameters are checked against the document's
 * definitions (defined, a single string, `allowedPattern`, `maxChars`; defaults filled in;
 * InvalidParameters otherwise), `{{ name }}` is interpolated into the step's `runCommand` and
 * `timeoutSeconds`, and a parameter with `interpolationType: ENV_VAR` is also given to the
 * command as the environment variable `SSM_<name>` (unless the instance plays an agent older
 * than 3.3.2746.0, `legacyAgent`). Only schema 2.2 documents of one `aws:runShellScript` step. Errors are `{"__type": …, "message": …}` with HTTP 400 (500 for
 * injected server faults), as the service answers.
 *
 * Fake instances run their commands on THIS machine, as this process's user (root in tests),
 * with `bash -c` and the instance's `root` as working directory: asynchronously, with the real
 * status progression Pending → InProgress → Success / Failed / TimedOut / Cancelled (StatusDetails
 * spelled as SSM spells them: "In Progress", "Delivery Timed Out", "Execution Timed Out",
 * "Canceled"), the
 * execution timeout (`executionTimeout`) and delivery timeout (`TimeoutSeconds`) enforced, the
 * process group killed on timeout or CancelCommand, ResponseCode = exit status, and output
 * truncated like SSM's (first 24,000 characters of stdout, 8,000 of stderr). A new invocation is
 * invisible to GetCommandInvocation for its first `invisiblePolls` polls (InvocationDoesNotExist),
 * as the eventually consistent service often is right after SendCommand.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { constants as osConstants, tmpdir } from 'node:os';
import { listenOnLoopback } from './loopback.ts';
import { TEST_CREDENTIALS, TEST_REGION, verifyHeaderSignature, type TestCredentials } from './sigv4.ts';

export interface FakeInstance {
  /** Working directory of its commands (default: the OS temp dir). */
  root?: string;
  /** SSM agent registered (default true). An unmanaged instance answers InvalidInstanceId. */
  managed?: boolean;
  /**
   * Agent connected (default true). SendCommand by id to an offline instance answers
   * InvalidInstanceId; tag-targeted invocations stay Pending until their delivery timeout.
   */
  online?: boolean;
  /** Tags, for `Targets: [{Key: 'tag:<k>', Values}]`. */
  tags?: Record<string, string>;
  /** How long its agent takes to pick a command up (Pending), overriding the API default. */
  deliveryDelayMs?: number;
  /** Extra environment for its commands (e.g. TMPDIR inside a test's temp dir). */
  env?: Record<string, string>;
  /**
   * What the agent runs its commands under: `[...launcher, 'bash', '-c', <commands>]` (default:
   * nothing). A test puts `strace` here to read the system calls a command made on the instance.
   */
  launcher?: string[];
  /** An SSM agent older than 3.3.2746.0: no SSM_<name> environment variables, `{{ }}` interpolation only. */
  legacyAgent?: boolean;
}

/** The parts of a schema 2.2 Command document this stand-in runs. */
export interface CommandDocument {
  schemaVersion: string;
  parameters?: Record<string, { type: string; allowedPattern?: string; default?: string; maxChars?: number; interpolationType?: string }>;
  mainSteps: { action: string; name: string; inputs: { runCommand: string[]; timeoutSeconds?: string } }[];
}

/**
 * A model of AWS's own `AWS-RunShellScript` (commands as a StringList), for tests of the stand-in
 * itself. The stack's roles may not send it (test/infra/host-document.test.ts).
 */
export const AWS_RUN_SHELL_SCRIPT: CommandDocument = {
  schemaVersion: '2.2',
  parameters: {
    commands: { type: 'StringList' },
    workingDirectory: { type: 'String', default: '' },
    executionTimeout: { type: 'String', default: '3600', allowedPattern: '([1-9][0-9]{0,4})|(1[0-6][0-9]{4})|(17[0-1][0-9]{3})|(172[0-7][0-9]{2})|(172800)' },
  },
  mainSteps: [{ action: 'aws:runShellScript', name: 'aws:runShellScript', inputs: { runCommand: ['{{ commands }}'], timeoutSeconds: '{{ executionTimeout }}' } }],
};

export interface SsmApiOptions {
  instances: Record<string, FakeInstance>;
  /** GetCommandInvocation calls per invocation answered InvocationDoesNotExist (default 1). */
  invisiblePolls?: number;
  /** Default time a command stays Pending before its process starts (default 50 ms). */
  deliveryDelayMs?: number;
  /** What clients must sign with (default the temporary TEST_CREDENTIALS, session token included). */
  credentials?: TestCredentials;
  /** The Command documents that exist, by name (mutable through SsmApi.documents). */
  documents?: Record<string, CommandDocument>;
}

export type InvocationStatus = 'Pending' | 'InProgress' | 'Delayed' | 'Success' | 'Cancelled' | 'TimedOut' | 'Failed' | 'Cancelling';

export interface FakeInvocation {
  commandId: string;
  instanceId: string;
  comment: string;
  parameters: Record<string, string[]>;
  timeoutSeconds: number;
  status: InvocationStatus;
  statusDetails: string;
  responseCode: number;
  stdout: string;
  stderr: string;
  requestedAt: Date;
  startedAt?: Date;
  endedAt?: Date;
  /** Every status it went through, in order. */
  history: InvocationStatus[];
  /** GetCommandInvocation calls for it so far. */
  polls: number;
}

export interface SsmApi {
  endpoint: string;
  /** API calls per action (including the ones answered with an error). */
  calls: Record<string, number>;
  /** Statuses answered by GetCommandInvocation, counted (what pollers observed). */
  served: Record<string, number>;
  /** Mutable: tests add or change instances at any time. */
  instances: Record<string, FakeInstance>;
  /** Mutable: the documents SendCommand accepts. */
  documents: Record<string, CommandDocument>;
  /** Every invocation so far, oldest first. */
  invocations(): FakeInvocation[];
  /** Processes still running. */
  running(): number;
  /** Answer the next `times` calls of `action` with this error (e.g. ThrottlingException, 400). */
  failNext(action: string, type: string, options?: { status?: number; times?: number; message?: string }): void;
  stop(): Promise<void>;
}

const STDOUT_LIMIT = 24_000;
const STDERR_LIMIT = 8_000;
/** CommandPlugins[].Output in ListCommandInvocations keeps 2,500 characters. */
const PLUGIN_OUTPUT_LIMIT = 2_500;
const CAPTURE_LIMIT = 4 * 1024 * 1024;
const ACCOUNT = '123456789012';
const TERMINAL = new Set<InvocationStatus>(['Success', 'Cancelled', 'TimedOut', 'Failed']);

export class ApiError extends Error {
  constructor(readonly type: string, message: string, readonly status = 400) {
    super(message);
  }
}

interface Invocation extends FakeInvocation {
  command: Command;
  child?: ChildProcess;
  timers: NodeJS.Timeout[];
  started: boolean;
}

interface Command {
  id: string;
  documentName: string;
  /** The step's shell text with every parameter interpolated, and its plugin (step) name. */
  script: string;
  pluginName: string;
  /** SSM_<name> variables of ENV_VAR parameters. */
  envVars: Record<string, string>;
  comment: string;
  parameters: Record<string, string[]>;
  instanceIds: string[];
  targets: { Key: string; Values: string[] }[];
  maxConcurrency: string;
  maxErrors: string;
  timeoutSeconds: number;
  executionSeconds: number;
  requestedAt: Date;
  invocations: Invocation[];
  concurrencyLimit: number;
  errorLimit: number;
  errors: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const epochSeconds = (d: Date | undefined): number | undefined => (d ? d.getTime() / 1000 : undefined);

/**
 * MaxConcurrency / MaxErrors of a command with `total` targets, as AWS documents them (Systems
 * Manager User Guide, "Run commands at scale", concurrency and error controls; SendCommand API
 * reference): a number is taken as is; a percentage is of the target count. "If you send a command
 * to 50 managed nodes and set MaxErrors to 10%, then the system stops sending the command to
 * additional nodes when the sixth error is received": 10% of 50 tolerates 5 errors, the sixth
 * stops it (`errors > errorLimit` in schedule()); with MaxErrors 0 the first error stops it. How a
 * fraction rounds is not documented: the stand-in rounds down, the strict reading (5% of 3 targets
 * tolerates no error at all), and keeps concurrency at least 1 so a command always progresses.
 * A caller that needs a floor sends a count (the sweeper does: lambdas/core/sweep/fleet-size.ts).
 */
function parseLimit(value: string, total: number, what: string, min: number): number {
  const m = /^(\d+)(%?)$/.exec(value);
  if (!m) throw new ApiError('ValidationException', `1 validation error detected: Value '${value}' at '${what}' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$`);
  const n = Number(m[1]);
  const limit = m[2] ? Math.floor((n * total) / 100) : n;
  return Math.max(min, limit);
}

export interface RenderedCommand {
  /** Every parameter's value (defaults filled in). */
  parameters: Record<string, string[]>;
  /** The step's shell text, `{{ }}` interpolated. */
  script: string;
  /** The step's name (GetCommandInvocation's PluginName). */
  pluginName: string;
  /** SSM_<name> for the ENV_VAR parameters. */
  envVars: Record<string, string>;
  executionSeconds: number;
}

/**
 * Checks SendCommand's Parameters against the document and renders its one step as the agent
 * would run it; an ApiError (InvalidDocument, InvalidParameters) otherwise.
 */
export function renderCommandDocument(documentName: string, document: CommandDocument, given: unknown): RenderedCommand {
  if (document.schemaVersion !== '2.2' || document.mainSteps.length !== 1 || document.mainSteps[0]!.action !== 'aws:runShellScript') {
    throw new ApiError('InvalidDocument', `document ${documentName}: this stand-in runs schema 2.2 documents of one aws:runShellScript step`);
  }
  const definitions = document.parameters ?? {};
  const supplied = given === undefined ? {} : given;
  if (!isRecord(supplied)) throw new ApiError('InvalidParameters', 'Parameters must be a map of parameter names to lists of strings.');
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(supplied)) {
    const definition = definitions[key];
    if (!definition) throw new ApiError('InvalidParameters', `Parameter "${key}" is not defined in the document.`);
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new ApiError('InvalidParameters', `Parameter ${key} must be a list of strings.`);
    if (definition.type === 'String' && value.length !== 1) throw new ApiError('InvalidParameters', `Parameter "${key}" is a String: give exactly one value.`);
    values[key] = (value as string[]).join('\n');
  }
  const parameters: Record<string, string[]> = {};
  for (const [key, definition] of Object.entries(definitions)) {
    const value = values[key] ?? definition.default;
    if (value === undefined) throw new ApiError('InvalidParameters', `Parameters [${key}] are required.`);
    if (definition.maxChars !== undefined && value.length > definition.maxChars) throw new ApiError('InvalidParameters', `Parameter "${key}" is longer than its ${definition.maxChars} characters.`);
    if (definition.allowedPattern !== undefined && !new RegExp(definition.allowedPattern).test(value)) {
      throw new ApiError('InvalidParameters', `Parameter "${key}" "${value.slice(0, 80)}" does not match the allowed pattern ${definition.allowedPattern}.`);
    }
    parameters[key] = [value];
  }
  const interpolate = (text: string): string => text.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (whole, name: string) => parameters[name]?.[0] ?? whole);
  const step = document.mainSteps[0]!;
  const executionText = interpolate(step.inputs.timeoutSeconds ?? '3600');
  const executionSeconds = Number(executionText);
  if (!/^\d+$/.test(executionText) || executionSeconds < 1 || executionSeconds > 172_800) {
    throw new ApiError('InvalidParameters', `timeoutSeconds "${executionText}" of step ${step.name} is not 1 to 172800.`);
  }
  const envVars: Record<string, string> = {};
  for (const [key, definition] of Object.entries(definitions)) {
    if (definition.interpolationType === 'ENV_VAR') envVars[`SSM_${key}`] = parameters[key]![0]!;
  }
  return { parameters, script: step.inputs.runCommand.map(interpolate).join('\n'), pluginName: step.name, envVars, executionSeconds };
}

export async function startSsmApi(options: SsmApiOptions): Promise<SsmApi> {
  const instances = options.instances;
  const documents = options.documents ?? {};
  const credentials = options.credentials ?? TEST_CREDENTIALS;
  const invisiblePolls = options.invisiblePolls ?? 1;
  const defaultDelivery = options.deliveryDelayMs ?? 50;
  const calls: Record<string, number> = {};
  const served: Record<string, number> = {};
  const commands = new Map<string, Command>();
  const all: Invocation[] = [];
  const faults: { action: string; type: string; status: number; message: string; times: number }[] = [];
  let stopped = false;

  // --- invocation lifecycle -------------------------------------------------------------------

  function setStatus(inv: Invocation, status: InvocationStatus, details: string = status): void {
    inv.status = status;
    inv.statusDetails = details;
    if (inv.history[inv.history.length - 1] !== status) inv.history.push(status);
  }

  function finish(inv: Invocation, status: InvocationStatus, details: string, code: number): void {
    if (TERMINAL.has(inv.status)) return;
    for (const t of inv.timers) clearTimeout(t);
    inv.timers = [];
    inv.responseCode = code;
    inv.endedAt = new Date();
    setStatus(inv, status, details);
    const cmd = inv.command;
    // Execution timeouts and failures count against MaxErrors; delivery timeouts do not.
    if (status === 'Failed' || details === 'Execution Timed Out') cmd.errors++;
    schedule(cmd);
  }

  function killGroup(child: ChildProcess | undefined): void {
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  /** Starts Pending invocations while the command's concurrency allows; stops at MaxErrors. */
  function schedule(cmd: Command): void {
    if (stopped) return;
    if (cmd.errors > cmd.errorLimit) {
      // MaxErrors exceeded: invocations not yet sent are terminated; running ones finish.
      for (const inv of cmd.invocations) {
        if (inv.status !== 'Pending' || inv.started) continue;
        inv.started = true;
        inv.endedAt = new Date();
        setStatus(inv, 'Failed', 'Terminated');
      }
      return;
    }
    let active = cmd.invocations.filter((i) => i.started && !TERMINAL.has(i.status)).length;
    for (const inv of cmd.invocations) {
      if (active >= cmd.concurrencyLimit) break;
      if (inv.started || inv.status !== 'Pending') continue;
      inv.started = true;
      active++;
      deliver(inv);
    }
  }

  function deliver(inv: Invocation): void {
    const instance = instances[inv.instanceId];
    const cmd = inv.command;
    // Delivery timeout: the agent must pick the command up within TimeoutSeconds.
    inv.timers.push(setTimeout(() => {
      if (inv.status === 'Pending') finish(inv, 'TimedOut', 'Delivery Timed Out', -1);
    }, cmd.timeoutSeconds * 1000));
    if (!instance || instance.managed === false || instance.online === false) return;
    const delay = instance.deliveryDelayMs ?? defaultDelivery;
    inv.timers.push(setTimeout(() => execute(inv, instance), delay));
  }

  function execute(inv: Invocation, instance: FakeInstance): void {
    if (inv.status !== 'Pending' || stopped) return;
    const cmd = inv.command;
    const [program, ...args] = [...(instance.launcher ?? []), 'bash', '-c', cmd.script];
    const child = spawn(program!, args, {
      cwd: instance.root ?? tmpdir(),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: process.env.HOME ?? '/root',
        AWS_SSM_INSTANCE_ID: inv.instanceId,
        AWS_SSM_REGION_NAME: 'us-east-1',
        ...(instance.legacyAgent ? {} : cmd.envVars),
        ...instance.env,
      },
    });
    inv.child = child;
    inv.startedAt = new Date();
    setStatus(inv, 'InProgress', 'In Progress');
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      if (inv.stdout.length < CAPTURE_LIMIT) inv.stdout += chunk;
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      if (inv.stderr.length < CAPTURE_LIMIT) inv.stderr += chunk;
    });
    inv.timers.push(setTimeout(() => {
      killGroup(child);
      finish(inv, 'TimedOut', 'Execution Timed Out', -1);
    }, cmd.executionSeconds * 1000));
    child.on('error', (err) => {
      inv.stderr += `failed to run commands: ${err.message}\n`;
      finish(inv, 'Failed', 'Failed', 1);
    });
    child.on('close', (code, signal) => {
      if (inv.status === 'Cancelling') {
        finish(inv, 'Cancelled', 'Canceled', -1);
        return;
      }
      const exit = code ?? 128 + (signal ? (osConstants.signals[signal] ?? 9) : 9);
      if (exit === 0) finish(inv, 'Success', 'Success', 0);
      else finish(inv, 'Failed', 'Failed', exit);
    });
  }

  function cancel(inv: Invocation): void {
    if (TERMINAL.has(inv.status) || inv.status === 'Cancelling') return;
    if (inv.child) {
      setStatus(inv, 'Cancelling');
      killGroup(inv.child);
    } else {
      finish(inv, 'Cancelled', 'Canceled', -1);
    }
  }

  // --- actions --------------------------------------------------------------------------------

  function resolveTargets(targets: { Key: string; Values: string[] }[]): string[] {
    let ids = Object.keys(instances).filter((id) => instances[id]!.managed !== false);
    for (const { Key, Values } of targets) {
      if (Key === 'InstanceIds') ids = ids.filter((id) => Values.includes(id));
      else if (Key === 'tag-key') ids = ids.filter((id) => Values.some((k) => Object.hasOwn(instances[id]!.tags ?? {}, k)));
      else if (Key.startsWith('tag:')) {
        const tag = Key.slice(4);
        ids = ids.filter((id) => {
          const value = instances[id]!.tags?.[tag];
          return value !== undefined && Values.includes(value);
        });
      } else throw new ApiError('InvalidParameters', `unsupported target key ${Key}`);
    }
    return ids.sort();
  }

  function sendCommand(input: Record<string, unknown>): unknown {
    const documentName = input.DocumentName;
    const document = typeof documentName === 'string' && Object.hasOwn(documents, documentName) ? documents[documentName]! : undefined;
    if (!document) throw new ApiError('InvalidDocument', `Document ${String(documentName)} does not exist in your account (this stand-in has ${Object.keys(documents).join(', ') || 'none'})`);
    if (input.DocumentVersion !== undefined && !['$DEFAULT', '$LATEST', '1'].includes(String(input.DocumentVersion))) {
      throw new ApiError('InvalidDocumentVersion', `Document version ${String(input.DocumentVersion)} does not exist.`);
    }
    const { parameters, script, pluginName, envVars, executionSeconds } = renderCommandDocument(documentName as string, document, input.Parameters);
    const timeoutSeconds = input.TimeoutSeconds === undefined ? 3600 : Number(input.TimeoutSeconds);
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 30 || timeoutSeconds > 2_592_000) {
      throw new ApiError('ValidationException', `1 validation error detected: Value '${String(input.TimeoutSeconds)}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000`);
    }
    const comment = typeof input.Comment === 'string' ? input.Comment : '';
    if (comment.length > 100) throw new ApiError('ValidationException', "1 validation error detected: Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 100");
    const instanceIds = Array.isArray(input.InstanceIds) ? (input.InstanceIds as string[]) : [];
    const targets = Array.isArray(input.Targets) ? (input.Targets as { Key: string; Values: string[] }[]) : [];
    if (instanceIds.length && targets.length) throw new ApiError('InvalidParameters', 'Specify either InstanceIds or Targets, not both.');
    if (!instanceIds.length && !targets.length) throw new ApiError('InvalidParameters', 'InstanceIds or Targets is required.');
    if (instanceIds.length > 50) throw new ApiError('ValidationException', 'You can specify up to 50 instance IDs.');
    let ids: string[];
    if (instanceIds.length) {
      const bad = instanceIds.filter((id) => {
        const inst = instances[id];
        return !inst || inst.managed === false || inst.online === false;
      });
      if (bad.length) throw new ApiError('InvalidInstanceId', `Instances [[${bad.join(', ')}]] not in a valid state for account ${ACCOUNT}`);
      ids = [...new Set(instanceIds)];
    } else {
      ids = resolveTargets(targets);
    }
    const maxConcurrency = typeof input.MaxConcurrency === 'string' ? input.MaxConcurrency : '50';
    const maxErrors = typeof input.MaxErrors === 'string' ? input.MaxErrors : '0';
    const cmd: Command = {
      id: randomUUID(),
      documentName: documentName as string,
      script,
      pluginName,
      envVars,
      comment,
      parameters,
      instanceIds: ids,
      targets,
      maxConcurrency,
      maxErrors,
      timeoutSeconds,
      executionSeconds,
      requestedAt: new Date(),
      invocations: [],
      concurrencyLimit: parseLimit(maxConcurrency, ids.length, 'maxConcurrency', 1),
      errorLimit: parseLimit(maxErrors, ids.length, 'maxErrors', 0),
      errors: 0,
    };
    for (const instanceId of ids) {
      const inv: Invocation = {
        command: cmd,
        commandId: cmd.id,
        instanceId,
        comment: cmd.comment,
        parameters: cmd.parameters,
        timeoutSeconds: cmd.timeoutSeconds,
        status: 'Pending',
        statusDetails: 'Pending',
        responseCode: -1,
        stdout: '',
        stderr: '',
        requestedAt: cmd.requestedAt,
        history: ['Pending'],
        polls: 0,
        timers: [],
        started: false,
      };
      cmd.invocations.push(inv);
      all.push(inv);
    }
    commands.set(cmd.id, cmd);
    // Asynchronous, like the service: the answer does not wait for any instance.
    setImmediate(() => schedule(cmd));
    return { Command: commandShape(cmd) };
  }

  function commandShape(cmd: Command): Record<string, unknown> {
    const done = cmd.invocations.filter((i) => TERMINAL.has(i.status));
    return {
      CommandId: cmd.id,
      DocumentName: cmd.documentName,
      DocumentVersion: '$DEFAULT',
      Comment: cmd.comment,
      ExpiresAfter: epochSeconds(new Date(cmd.requestedAt.getTime() + (cmd.timeoutSeconds + cmd.executionSeconds) * 1000)),
      Parameters: cmd.parameters,
      InstanceIds: cmd.targets.length ? [] : cmd.instanceIds,
      Targets: cmd.targets,
      RequestedDateTime: epochSeconds(cmd.requestedAt),
      Status: done.length === cmd.invocations.length ? 'Success' : 'Pending',
      StatusDetails: done.length === cmd.invocations.length ? 'Success' : 'Pending',
      MaxConcurrency: cmd.maxConcurrency,
      MaxErrors: cmd.maxErrors,
      TargetCount: cmd.invocations.length,
      CompletedCount: done.length,
      ErrorCount: cmd.errors,
      DeliveryTimedOutCount: cmd.invocations.filter((i) => i.statusDetails === 'Delivery Timed Out').length,
      TimeoutSeconds: cmd.timeoutSeconds,
    };
  }

  function findCommand(id: unknown): Command {
    const cmd = typeof id === 'string' ? commands.get(id) : undefined;
    if (!cmd) throw new ApiError('InvalidCommandId', '');
    return cmd;
  }

  function isoDuration(inv: Invocation): string {
    if (!inv.startedAt) return '';
    const ms = (inv.endedAt ?? new Date()).getTime() - inv.startedAt.getTime();
    return `PT${(ms / 1000).toFixed(3)}S`;
  }

  function getCommandInvocation(input: Record<string, unknown>): unknown {
    const cmd = typeof input.CommandId === 'string' ? commands.get(input.CommandId) : undefined;
    const inv = cmd?.invocations.find((i) => i.instanceId === input.InstanceId);
    if (!inv) throw new ApiError('InvocationDoesNotExist', '');
    if (input.PluginName !== undefined && input.PluginName !== inv.command.pluginName) throw new ApiError('InvalidPluginName', '');
    inv.polls++;
    if (inv.polls <= invisiblePolls) throw new ApiError('InvocationDoesNotExist', '');
    served[inv.status] = (served[inv.status] ?? 0) + 1;
    return {
      CommandId: inv.commandId,
      InstanceId: inv.instanceId,
      Comment: inv.command.comment,
      DocumentName: inv.command.documentName,
      DocumentVersion: '$DEFAULT',
      PluginName: inv.command.pluginName,
      ResponseCode: inv.responseCode,
      ExecutionStartDateTime: inv.startedAt?.toISOString() ?? '',
      ExecutionElapsedTime: isoDuration(inv),
      ExecutionEndDateTime: inv.endedAt?.toISOString() ?? '',
      Status: inv.status,
      StatusDetails: inv.statusDetails,
      StandardOutputContent: inv.stdout.slice(0, STDOUT_LIMIT),
      StandardOutputUrl: '',
      StandardErrorContent: inv.stderr.slice(0, STDERR_LIMIT),
      StandardErrorUrl: '',
      CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    };
  }

  function listCommandInvocations(input: Record<string, unknown>): unknown {
    let list = [...all].reverse(); // newest first, like the service
    if (input.CommandId !== undefined) {
      findCommand(input.CommandId);
      list = list.filter((i) => i.commandId === input.CommandId);
    }
    if (input.InstanceId !== undefined) list = list.filter((i) => i.instanceId === input.InstanceId);
    const maxResults = input.MaxResults === undefined ? 50 : Number(input.MaxResults);
    if (!Number.isInteger(maxResults) || maxResults < 1 || maxResults > 50) {
      throw new ApiError('ValidationException', "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 50");
    }
    let offset = 0;
    if (input.NextToken !== undefined) {
      const decoded = Buffer.from(String(input.NextToken), 'base64url').toString('utf8');
      const m = /^offset:(\d+)$/.exec(decoded);
      if (!m) throw new ApiError('InvalidNextToken', 'The specified token is not valid.');
      offset = Number(m[1]);
    }
    const page = list.slice(offset, offset + maxResults);
    const next = offset + maxResults < list.length ? Buffer.from(`offset:${offset + maxResults}`).toString('base64url') : undefined;
    const details = input.Details === true;
    return {
      CommandInvocations: page.map((inv) => ({
        CommandId: inv.commandId,
        InstanceId: inv.instanceId,
        InstanceName: '',
        Comment: inv.command.comment,
        DocumentName: inv.command.documentName,
        DocumentVersion: '$DEFAULT',
        RequestedDateTime: epochSeconds(inv.requestedAt),
        Status: inv.status,
        StatusDetails: inv.statusDetails,
        TraceOutput: '',
        StandardOutputUrl: '',
        StandardErrorUrl: '',
        ...(details
          ? {
              CommandPlugins: [
                {
                  Name: inv.command.pluginName,
                  Status: inv.status,
                  StatusDetails: inv.statusDetails,
                  ResponseCode: inv.responseCode,
                  ResponseStartDateTime: epochSeconds(inv.startedAt),
                  ResponseFinishDateTime: epochSeconds(inv.endedAt),
                  Output: pluginOutput(inv),
                  StandardOutputUrl: '',
                  StandardErrorUrl: '',
                  OutputS3Region: 'us-east-1',
                  OutputS3BucketName: '',
                  OutputS3KeyPrefix: '',
                },
              ],
            }
          : {}),
      })),
      ...(next ? { NextToken: next } : {}),
    };
  }

  function pluginOutput(inv: Invocation): string {
    const text = inv.stderr ? `${inv.stdout}\n----------ERROR-------\n${inv.stderr}` : inv.stdout;
    return text.slice(0, PLUGIN_OUTPUT_LIMIT);
  }

  function cancelCommand(input: Record<string, unknown>): unknown {
    const cmd = findCommand(input.CommandId);
    const only = Array.isArray(input.InstanceIds) && input.InstanceIds.length ? (input.InstanceIds as string[]) : undefined;
    if (only) {
      const unknown = only.filter((id) => !cmd.invocations.some((i) => i.instanceId === id));
      if (unknown.length) throw new ApiError('InvalidInstanceId', `Instances [[${unknown.join(', ')}]] are not part of command ${cmd.id}`);
    }
    for (const inv of cmd.invocations) {
      if (!only || only.includes(inv.instanceId)) cancel(inv);
    }
    return {};
  }

  const actions: Record<string, (input: Record<string, unknown>) => unknown> = {
    SendCommand: sendCommand,
    GetCommandInvocation: getCommandInvocation,
    ListCommandInvocations: listCommandInvocations,
    CancelCommand: cancelCommand,
  };

  // --- HTTP -----------------------------------------------------------------------------------

  function reply(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': randomUUID(),
    });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    const action = target.startsWith('AmazonSSM.') ? target.slice('AmazonSSM.'.length) : '';
    calls[action || target] = (calls[action || target] ?? 0) + 1;
    try {
      if (req.method !== 'POST') throw new ApiError('UnknownOperationException', `method ${req.method} not supported`);
      if (!String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1')) {
        throw new ApiError('SerializationException', 'Content-Type must be application/x-amz-json-1.1');
      }
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 Credential=')) {
        throw new ApiError('MissingAuthenticationTokenException', 'Request is missing Authentication Token');
      }
      const problem = await verifyHeaderSignature(req, Buffer.concat(chunks).toString('utf8'), { service: 'ssm', region: TEST_REGION, credentials });
      if (problem) {
        const type = problem.startsWith('unknown access key') || problem.includes('security token') ? 'UnrecognizedClientException' : 'InvalidSignatureException';
        throw new ApiError(type, problem);
      }
      const run = actions[action];
      if (!run) throw new ApiError('UnknownOperationException', `unknown operation ${target}`);
      const faultIndex = faults.findIndex((f) => f.action === action);
      if (faultIndex >= 0) {
        const fault = faults[faultIndex]!;
        if (--fault.times <= 0) faults.splice(faultIndex, 1);
        throw new ApiError(fault.type, fault.message, fault.status);
      }
      let input: unknown;
      try {
        input = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
      } catch {
        throw new ApiError('SerializationException', 'body is not JSON');
      }
      if (!isRecord(input)) throw new ApiError('SerializationException', 'body must be a JSON object');
      reply(res, 200, run(input));
    } catch (err) {
      if (err instanceof ApiError) reply(res, err.status, { __type: err.type, message: err.message });
      else reply(res, 500, { __type: 'InternalServerError', message: err instanceof Error ? err.message : String(err) });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  const port = await listenOnLoopback(server);

  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    served,
    instances,
    documents,
    invocations: () => all.map((inv) => ({
      commandId: inv.commandId,
      instanceId: inv.instanceId,
      comment: inv.comment,
      parameters: inv.parameters,
      timeoutSeconds: inv.timeoutSeconds,
      status: inv.status,
      statusDetails: inv.statusDetails,
      responseCode: inv.responseCode,
      stdout: inv.stdout,
      stderr: inv.stderr,
      requestedAt: inv.requestedAt,
      startedAt: inv.startedAt,
      endedAt: inv.endedAt,
      history: [...inv.history],
      polls: inv.polls,
    })),
    running: () => all.filter((inv) => inv.child && inv.child.exitCode === null && inv.child.signalCode === null).length,
    failNext(action, type, opts = {}) {
      faults.push({ action, type, status: opts.status ?? 400, times: opts.times ?? 1, message: opts.message ?? `${type} (injected)` });
    },
    async stop() {
      stopped = true;
      const waits: Promise<void>[] = [];
      for (const inv of all) {
        for (const t of inv.timers) clearTimeout(t);
        inv.timers = [];
        const child = inv.child;
        if (child && child.exitCode === null && child.signalCode === null) {
          waits.push(new Promise((resolve) => child.once('close', () => resolve())));
          killGroup(child);
        }
      }
      await Promise.all(waits);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
