/**
 * Whether a source can be had, without reading it: pinned if it must be, a scheme this
 * deployment serves, and present (the catalog entry or path exists, the object or URL answers).
 * The stream is opened and dropped at once, so a request path can refuse a bad source in
 * milliseconds; validating the tarball itself stays with the workflow (a large download does
 * not fit API Gateway's 29 s, and must not be done twice).
 */
import { PluginError } from '../errors.ts';
import { assertSourcePinned, resolveSource, type SourceOptions } from './resolve-source.ts';

export async function probeSource(source: string, sha256: string | null | undefined, options: SourceOptions): Promise<void> {
  assertSourcePinned(source, sha256);
  let resolved;
  try {
    resolved = await resolveSource(source, options);
  } catch (err) {
    if (err instanceof PluginError) throw err;
    throw new PluginError('SourceNotFound', `cannot open source ${source.slice(0, 200)}: ${err instanceof Error ? err.message : String(err)}`, 'check that the source exists and is readable');
  }
  // Nobody reads it: a stream error after this point (e.g. the aborted download) is expected.
  resolved.stream.on('error', () => undefined);
  resolved.stream.destroy();
}
