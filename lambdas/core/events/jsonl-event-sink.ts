/** EventSink that appends one JSON line per event: `$PLUGINCTL_HOME/events.jsonl` locally. */
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { EventSink, PutEventsEntry } from './event-sink.ts';

export class JsonlEventSink implements EventSink {
  constructor(readonly file: string, private readonly clock: () => Date = () => new Date()) {}

  async putEvents(entries: PutEventsEntry[]): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    const time = this.clock().toISOString();
    const lines = entries.map((e) => JSON.stringify({ time, source: e.Source, detailType: e.DetailType, detail: e.Detail }) + '\n');
    // One append per batch: O_APPEND keeps concurrent writers' lines whole.
    await appendFile(this.file, lines.join(''));
  }
}
