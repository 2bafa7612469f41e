/**
 * A plugin's health check (plugin.yaml `healthcheck`, docs/plugin-format.md): its limits, shared
 * by the manifest parser, the step payloads and the host steps. Kept apart from manifest.ts so the
 * step Lambdas that carry a plan do not bundle the YAML parser.
 */

/** `healthcheck.command`: text for `sh -c`, run as the plugin's owner after the swap. */
export const HEALTHCHECK_COMMAND_MAX_BYTES = 2048;
export const HEALTHCHECK_TIMEOUT_MAX_SECONDS = 300;
export const HEALTHCHECK_TIMEOUT_DEFAULT_SECONDS = 30;

export interface HealthcheckSpec {
  command: string;
  timeoutSeconds: number;
}

/** Tab and newline are fine in a shell command; other control characters are a mistake or a trick. */
export function withoutControlCharacters(value: string): boolean {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(value);
}

export function healthcheckCommandFits(value: string): boolean {
  return Buffer.byteLength(value, 'utf8') <= HEALTHCHECK_COMMAND_MAX_BYTES;
}
