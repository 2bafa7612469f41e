/**
 * WorkspaceDirectory on a JSON file (`$PLUGINCTL_HOME/workspaces.json`): the embedded default.
 * A workspace's host root is `<home>/workspaces/<id>/root/`; `ensure` creates it on first use.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as z from '../zod.ts';
import { PluginError } from '../errors.ts';
import { assertWorkspaceId } from '../names.ts';
import { RUNTIMES, type Runtime } from '../runtimes.ts';
import type { WorkspaceDirectory, WorkspaceLookup, WorkspaceRecord } from './workspace-directory.ts';

const FileSchema = z.object({
  workspaces: z.record(
    z.string(),
    z.object({
      runtime: z.enum(RUNTIMES),
      state: z.enum(['running', 'stopped']).default('running'),
      createdAt: z.string().optional(),
    }),
  ),
});
type FileShape = z.infer<typeof FileSchema>;

/** One registered workspace as `pluginctl workspace list` shows it. */
export interface WorkspaceEntry {
  id: string;
  runtime: Runtime;
  state: 'running' | 'stopped';
  createdAt: string | null;
}

export class JsonWorkspaceDirectory implements WorkspaceDirectory {
  readonly file: string;

  constructor(readonly home: string) {
    this.file = join(home, 'workspaces.json');
  }

  rootOf(id: string): string {
    return join(this.home, 'workspaces', assertWorkspaceId(id), 'root');
  }

  private async read(): Promise<FileShape> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { workspaces: {} };
      throw err;
    }
    const parsed = FileSchema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new PluginError('InvalidInput', `${this.file} is not a valid workspace directory: ${parsed.error.issues[0]?.message ?? ''}`, 'fix or delete the file');
    }
    return parsed.data;
  }

  /** Whole-file replace (write a temporary file, rename it over): a reader never sees half a file. */
  private async write(data: FileShape): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${randomUUID()}.tmp`;
    await writeFile(tmp, JSON.stringify(data, null, 2) + '\n');
    await rename(tmp, this.file);
  }

  /** Every registered workspace, sorted by id. */
  async entries(): Promise<WorkspaceEntry[]> {
    const data = await this.read();
    return Object.keys(data.workspaces)
      .sort()
      .map((id) => {
        const e = data.workspaces[id]!;
        return { id, runtime: e.runtime, state: e.state, createdAt: e.createdAt ?? null };
      });
  }

  /**
   * Drops the registration and the workspace's local host directory (`workspaces/<id>/`, its
   * plugins, snapshots and locks included). False when no such workspace was registered.
   */
  async remove(id: string): Promise<boolean> {
    assertWorkspaceId(id);
    const data = await this.read();
    if (!data.workspaces[id]) return false;
    delete data.workspaces[id];
    await this.write(data);
    await rm(join(this.home, 'workspaces', id), { recursive: true, force: true });
    return true;
  }

  async lookup(id: string): Promise<WorkspaceLookup> {
    assertWorkspaceId(id);
    const entry = (await this.read()).workspaces[id];
    if (!entry) return { status: 'not-found' };
    const workspace: WorkspaceRecord = { id, runtime: entry.runtime, transport: 'local', localRoot: this.rootOf(id) };
    if (entry.state !== 'running') return { status: 'not-running', reason: `workspace ${id} is ${entry.state}`, workspace };
    return { status: 'running', workspace };
  }

  async list(selector?: Record<string, string>): Promise<string[]> {
    if (selector && Object.keys(selector).length > 0) {
      throw new PluginError('InvalidInput', 'tag selectors need the AWS deployment: local workspaces have no tags', 'name the workspaces (--workspaces a,b,c) or take them all (--all)');
    }
    return Object.keys((await this.read()).workspaces).sort();
  }

  /**
   * Registers the workspace on first use (with `runtime`, default claude-code). An existing
   * workspace keeps its runtime; asking for a different one is refused rather than ignored.
   */
  async ensure(id: string, runtime?: Runtime): Promise<WorkspaceRecord> {
    assertWorkspaceId(id);
    const data = await this.read();
    const existing = data.workspaces[id];
    if (existing) {
      if (runtime && runtime !== existing.runtime) {
        throw new PluginError('InvalidInput', `workspace ${id} runs ${existing.runtime}, not ${runtime}`, `drop --runtime, or use another workspace id for a ${runtime} workspace`);
      }
    } else {
      data.workspaces[id] = { runtime: runtime ?? 'claude-code', state: 'running', createdAt: new Date().toISOString() };
      await this.write(data);
    }
    await mkdir(this.rootOf(id), { recursive: true });
    const entry = data.workspaces[id]!;
    return { id, runtime: entry.runtime, transport: 'local', localRoot: this.rootOf(id) };
  }
}
