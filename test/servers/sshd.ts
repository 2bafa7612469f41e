/**
 * A real OpenSSH sshd on 127.0.0.1 for the EIC adapter's tests, set up the way an EC2 instance
 * with ec2-instance-connect is: no passwords, no authorized_keys files, and an
 * `AuthorizedKeysCommand` that prints the keys SendSSHPublicKey stored for the user in the last
 * 60 s. Here the "store" is a directory the EIC API stand-in (eic-api.ts) writes
 * `<keyStoreDir>/<user>/<expiresAtMs>-<n>.pub` into.
 *
 * Needs root (sshd's privilege separation, a root-owned command path, useradd, sudoers). Each
 * harness has its own temp dir, port, key store and command script
 * (`/usr/local/lib/plugin-installer-test/<random>/authorized-keys`), so test files may run
 * several at once. `stop()` kills the listener and every session it forked.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const SSHD_PATH = '/usr/sbin/sshd';
export const sshdAvailable = existsSync(SSHD_PATH) && process.getuid?.() === 0;
/** The dedicated non-root OS user the EIC tests log in as (passwordless sudo). */
export const TEST_OS_USER = 'eicuser';
/** Root-owned, 0755, not under /tmp: sshd checks every component of the command's path. */
export const COMMAND_BASE = '/usr/local/lib/plugin-installer-test';
const SUDOERS_FILE = '/etc/sudoers.d/plugin-installer-test';
const SAFE_PATH = /^\/[A-Za-z0-9._/-]+$/;

export interface SshdOptions {
  user?: string;
}

export interface SshdHandle {
  port: number;
  user: string;
  /** Where the EIC stand-in writes pushed keys (`<dir>/<user>/<expiresAtMs>-<n>.pub`). */
  keyStoreDir: string;
  /** sshd's log (stderr, -e) so far. */
  log(): string;
  /** Successful public-key logins ("Accepted publickey for …") so far. */
  readonly accepted: number;
  /** Failed public-key attempts so far. */
  readonly failedAuth: number;
  /** Kills every session process (sshd children and what they run), leaving the listener. */
  killSessions(): Promise<number>;
  /** Kills the listener and every session (the instance's sshd is down); files stay until stop(). */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function retrying<T>(what: string, fn: () => Promise<T>, attempts = 10): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await fn();
    } catch (error) {
      last = error;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
  throw new Error(`${what}: ${last instanceof Error ? last.message : String(last)}`);
}

/** Creates the test OS user with passwordless sudo, idempotently (several workers may race). */
export async function ensureTestUser(user = TEST_OS_USER): Promise<void> {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) throw new Error(`bad user name ${user}`);
  const exists = async (): Promise<boolean> =>
    run('id', ['-u', user]).then(
      () => true,
      () => false,
    );
  if (!(await exists())) {
    await retrying(`useradd ${user}`, async () => {
      if (await exists()) return;
      await run('useradd', ['-m', '-s', '/bin/bash', user]);
    });
  }
  // useradd leaves the password field "!" (locked), and sshd without PAM refuses locked accounts.
  // "*": no password can match, but the account is not locked.
  const shadow = await run('getent', ['shadow', user]).then((r) => r.stdout, () => '');
  const field = shadow.split(':')[1] ?? '';
  if (field.startsWith('!')) await retrying(`usermod ${user}`, () => run('usermod', ['-p', '*', user]));

  const rule = `# plugin-installer tests (test/servers/sshd.ts): the EIC test user runs host steps with sudo -n\n${user} ALL=(ALL) NOPASSWD: ALL\n`;
  const current = await readFile(SUDOERS_FILE, 'utf8').catch(() => '');
  if (current !== rule) {
    // sudo ignores names containing '.', so the temp file is never read half-written.
    const tmp = `/etc/sudoers.d/.plugin-installer-test.${randomBytes(4).toString('hex')}`;
    await writeFile(tmp, rule, { mode: 0o440 });
    try {
      await chmod(tmp, 0o440);
      await run('visudo', ['-cf', tmp]);
      await rename(tmp, SUDOERS_FILE);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

function authorizedKeysScript(keyStoreDir: string): string {
  return `#!/bin/sh
# AuthorizedKeysCommand of a plugin-installer test sshd (test/servers/sshd.ts): plays
# ec2-instance-connect's eic_run_authorized_keys. Prints the keys the EIC API stand-in stored
# for user $1 that have not expired yet (file names start with the expiry, epoch milliseconds).
set -u
user=\${1:-}
case $user in '' | *[!a-z0-9_-]*) exit 0 ;; esac
dir='${keyStoreDir}'/$user
[ -d "$dir" ] || exit 0
now=$(date +%s%3N)
# Builtins only in the loop, then one cat: many instances share this store in the concurrency
# tests (hundreds of live keys), and a fork per key made every login slow under load.
set --
for f in "$dir"/*.pub; do
  [ -f "$f" ] || continue
  base=\${f##*/}
  expires=\${base%%-*}
  case $expires in '' | *[!0-9]*) continue ;; esac
  if [ "$expires" -gt "$now" ]; then set -- "$@" "$f"; fi
done
[ $# -eq 0 ] || cat -- "$@"
exit 0
`;
}

/** Every descendant of a process, from /proc (sshd -D forks one child per connection). */
async function descendants(pid: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …; comm may contain spaces and parentheses.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    for (const child of children.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

async function killTree(pid: number, includeRoot: boolean): Promise<number> {
  let killed = 0;
  // Twice: a session may fork between the scan and the kill.
  for (let round = 0; round < 2; round++) {
    for (const child of await descendants(pid)) {
      try {
        process.kill(child, 'SIGKILL');
        killed++;
      } catch {
        // Gone already.
      }
    }
  }
  if (includeRoot) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  return killed;
}

export async function startSshd(options: SshdOptions = {}): Promise<SshdHandle> {
  if (!sshdAvailable) throw new Error(`${SSHD_PATH} is missing or this process is not root`);
  const user = options.user ?? TEST_OS_USER;
  await ensureTestUser(user);
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = await mkdtemp(join(tmpdir(), 'eic-sshd-'));
  const keyStoreDir = join(dir, 'keys');
  if (!SAFE_PATH.test(keyStoreDir)) throw new Error(`temp dir ${keyStoreDir} has characters the command script cannot embed`);
  await mkdir(keyStoreDir, { mode: 0o755 });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'plugin-installer-test', '-f', join(dir, 'ssh_host_ed25519_key')]);

  await mkdir(COMMAND_BASE, { recursive: true, mode: 0o755 });
  await chmod(COMMAND_BASE, 0o755);
  const commandDir = join(COMMAND_BASE, randomBytes(6).toString('hex'));
  await mkdir(commandDir, { mode: 0o755 });
  await chmod(commandDir, 0o755);
  const command = join(commandDir, 'authorized-keys');
  await writeFile(command, authorizedKeysScript(keyStoreDir), { mode: 0o755 });
  await chmod(command, 0o755);

  const cleanupFiles = async (): Promise<void> => {
    await rm(commandDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  };

  let child: ChildProcess | undefined;
  let port = 0;
  let log = '';
  try {
    for (let attempt = 0; attempt < 5 && !child; attempt++) {
      port = await freePort();
      const config = join(dir, 'sshd_config');
      await writeFile(
        config,
        [
          `ListenAddress 127.0.0.1:${port}`,
          `HostKey ${join(dir, 'ssh_host_ed25519_key')}`,
          `PidFile ${join(dir, 'sshd.pid')}`,
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'PubkeyAuthentication yes',
          'AuthorizedKeysFile none',
          `AuthorizedKeysCommand ${command} %u`,
          'AuthorizedKeysCommandUser root',
          'PermitRootLogin no',
          `AllowUsers ${user}`,
          'StrictModes no',
          'UseDNS no',
          'PrintMotd no',
          'PrintLastLog no',
          'MaxStartups 100',
          'MaxSessions 20',
          'LogLevel VERBOSE',
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      await run(SSHD_PATH, ['-t', '-f', config]);
      const proc = spawn(SSHD_PATH, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      const started = await new Promise<boolean>((resolve) => {
        let text = '';
        const timer = setTimeout(() => resolve(false), 10_000);
        proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
          if (log.length < 2_000_000) log += chunk;
          text += chunk;
          if (/Server listening on 127\.0\.0\.1 port \d+/.test(text)) {
            clearTimeout(timer);
            resolve(true);
          }
        });
        proc.once('exit', () => {
          clearTimeout(timer);
          resolve(false);
        });
        proc.once('error', () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      if (started) child = proc;
      else proc.kill('SIGKILL');
    }
    if (!child) throw new Error(`sshd did not start:\n${log.slice(-2000)}`);
  } catch (error) {
    await cleanupFiles();
    throw error;
  }

  const sshd = child;
  const pid = sshd.pid!;
  let stopped = false;
  const count = (pattern: RegExp): number => log.match(pattern)?.length ?? 0;
  const exited = new Promise<void>((resolve) => {
    if (sshd.exitCode !== null || sshd.signalCode !== null) resolve();
    else sshd.once('exit', () => resolve());
  });
  const kill = async (): Promise<void> => {
    await killTree(pid, sshd.exitCode === null && sshd.signalCode === null);
    await exited;
  };
  return {
    port,
    user,
    keyStoreDir,
    log: () => log,
    get accepted() {
      return count(/Accepted publickey for /g);
    },
    get failedAuth() {
      return count(/Failed publickey for |Connection closed by authenticating user /g);
    },
    killSessions: () => killTree(pid, false),
    kill,
    async stop() {
      await kill();
      if (stopped) return;
      stopped = true;
      await cleanupFiles();
    },
  };
}
