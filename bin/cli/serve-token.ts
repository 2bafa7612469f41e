/**
 * The bearer token `pluginctl serve` accepts: PLUGINCTL_TOKEN, at least 32 characters, so it
 * cannot be guessed (`openssl rand -hex 32` makes one of 64). A flag would show it in `ps`.
 */
import { PluginError } from '../../lambdas/core/errors.ts';

export const MIN_TOKEN_LENGTH = 32;
const MAKE_ONE = 'export PLUGINCTL_TOKEN=$(openssl rand -hex 32), and send Authorization: Bearer $PLUGINCTL_TOKEN';

export function assertServeToken(token: string | undefined): string {
  if (!token) throw new PluginError('InvalidInput', 'PLUGINCTL_TOKEN is not set: pluginctl serve refuses to start without a bearer token', MAKE_ONE);
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new PluginError('InvalidInput', `PLUGINCTL_TOKEN is ${token.length} characters, shorter than the ${MIN_TOKEN_LENGTH} pluginctl serve requires`, MAKE_ONE);
  }
  return token;
}
