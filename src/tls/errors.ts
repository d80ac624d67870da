// Errors of the tls room: certificates made with openssl, and the key/certificate/CA set a peer
// loads. Each code names one problem, so that the CLI and the sitter's start-up can say it.
import { ManateeError } from '../errors.js';

export const TLS_ERR = {
  /** A bad argument: a peer id, a host, a number of days. */
  badArgument: 'MANATEE_ERR_TLS_BAD_ARGUMENT',
  /** openssl is missing or failed. */
  openssl: 'MANATEE_ERR_TLS_OPENSSL',
  /** A file that would be written exists already (nothing is overwritten without --force). */
  exists: 'MANATEE_ERR_TLS_EXISTS',
  /** A file that must be read cannot be. */
  read: 'MANATEE_ERR_TLS_READ',
  /** A file is not a PEM certificate or private key. */
  invalid: 'MANATEE_ERR_TLS_INVALID',
  /** The private key does not belong to the certificate. */
  keyMismatch: 'MANATEE_ERR_TLS_KEY_MISMATCH',
  /** The certificate was not issued by the shard's CA. */
  notSigned: 'MANATEE_ERR_TLS_NOT_SIGNED',
  /** The certificate (or the CA) is past its notAfter. */
  expired: 'MANATEE_ERR_TLS_EXPIRED',
  /** The certificate (or the CA) is before its notBefore. */
  notYetValid: 'MANATEE_ERR_TLS_NOT_YET_VALID',
  /** The certificate names another peer (or none). */
  peerId: 'MANATEE_ERR_TLS_PEER_ID',
  /** A private key file is readable by group or others. */
  keyMode: 'MANATEE_ERR_TLS_KEY_MODE',
} as const;

export type TlsErrorCode = (typeof TLS_ERR)[keyof typeof TLS_ERR];

export class TlsError extends ManateeError {
  declare readonly code: TlsErrorCode;

  // Narrows `code` to the room's own codes.
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor(code: TlsErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
