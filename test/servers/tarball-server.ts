/**
 * Tarballs over loopback HTTP for the SSM transport, which pulls the tarball (`stage … <url>`,
 * curl on the host) where local and EIC stream it on stdin. Each URL serves one blob one way:
 *
 * - `ok`:   the whole blob, with its length;
 * - `cut`:  the announced length never arrives: half the blob, then the connection closes, as a
 *           download cut off mid-way (curl exit 18);
 * - `stall`: ten bytes, then nothing (a step timeout's test);
 * - `held`:  half the blob now, the rest when the test calls `release()` (a stage that is still
 *           downloading while something else happens).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TarballServer {
  ok(blob: Buffer): { url: string };
  cut(blob: Buffer): { url: string };
  stall(): { url: string };
  held(blob: Buffer): { body: { url: string }; release(): void };
  close(): Promise<void>;
}

export async function startTarballServer(): Promise<TarballServer> {
  const blobs = new Map<string, Buffer>();
  // A held URL's release(): sends the rest to whoever is downloading it (or to the next request).
  const holds = new Map<string, { released: boolean; waiting: ServerResponse[] }>();
  const server = createServer((req, res) => {
    const [, kind, id = ''] = (req.url ?? '').split('/');
    const blob = blobs.get(id);
    if (!blob) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': String(blob.length) });
    const half = blob.length >> 1;
    switch (kind) {
      case 'ok':
        return void res.end(blob);
      case 'cut':
        return void res.write(blob.subarray(0, half), () => setTimeout(() => res.destroy(), 20));
      case 'held': {
        const hold = holds.get(id)!;
        if (hold.released) return void res.end(blob);
        res.write(blob.subarray(0, half));
        hold.waiting.push(res);
        return;
      }
      default:
        res.write(blob.subarray(0, 10));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const put = (blob: Buffer): string => {
    const id = randomBytes(8).toString('hex');
    blobs.set(id, blob);
    return id;
  };
  return {
    ok: (blob) => ({ url: `${base}/ok/${put(blob)}` }),
    cut: (blob) => ({ url: `${base}/cut/${put(blob)}` }),
    stall: () => ({ url: `${base}/stall/${put(Buffer.alloc(100))}` }),
    held: (blob) => {
      const id = put(blob);
      const hold = { released: false, waiting: [] as ServerResponse[] };
      holds.set(id, hold);
      return {
        body: { url: `${base}/held/${id}` },
        release: () => {
          hold.released = true;
          for (const res of hold.waiting.splice(0)) res.end(blob.subarray(blob.length >> 1));
        },
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
