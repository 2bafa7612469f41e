/**
 * The Body of a GetObject answer as a Node stream: Node's http handler gives a Readable; another
 * handler (e.g. a fetch-based one) gives an object with transformToWebStream. Undefined when
 * there is no body; each caller says what that means for it.
 */
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

export function s3BodyStream(body: unknown): Readable | undefined {
  if (body instanceof Readable) return body;
  const web = body as { transformToWebStream?: () => unknown } | undefined;
  return web?.transformToWebStream ? Readable.fromWeb(web.transformToWebStream() as NodeReadableStream<Uint8Array>) : undefined;
}
