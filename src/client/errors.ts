// The client library's errors: stable codes that an application can match.
import { ManateeError } from '../errors.js';

export const CLIENT_ERR = {
  /** The options given to createClient() or createPool() are unusable. */
  badOptions: 'MANATEE_ERR_CLIENT_BAD_OPTIONS',
  /** One peer's /watch could not be followed (refused, timed out, non-200, a malformed stream). */
  watch: 'MANATEE_ERR_CLIENT_WATCH',
  /** A peer's certificate was refused: not signed by the CA given (option `ca`), expired, or not for its host. */
  tls: 'MANATEE_ERR_CLIENT_TLS',
  /** No peer could be followed in a whole round; the client keeps trying with backoff. */
  noPeer: 'MANATEE_ERR_CLIENT_NO_PEER',
  /** No topology (no primary) was known within the deadline. */
  noPrimary: 'MANATEE_ERR_CLIENT_NO_PRIMARY',
  /** The client or the pool was closed. */
  closed: 'MANATEE_ERR_CLIENT_CLOSED',
} as const;

export type ClientErrorCode = (typeof CLIENT_ERR)[keyof typeof CLIENT_ERR];

export class ClientError extends ManateeError {
  declare readonly code: ClientErrorCode;
}
