// Errors are values with stable codes (as fastify's FST_ERR_*), so that the CLI and API
// callers can match them. Every room defines its own subclasses with `MANATEE_ERR_*` codes.

export class ManateeError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** True when `err` is a ManateeError with the given code. */
export function hasCode(err: unknown, code: string): boolean {
  return err instanceof ManateeError && err.code === code;
}

/**
 * A restored copy (zfs receive, pg_basebackup) that does not hold a usable PostgreSQL data
 * directory. Shared by both restore backends (src/backup) and matched by the sitter.
 */
export const ERR_RESTORE_INVALID = 'MANATEE_ERR_RESTORE_INVALID';

/**
 * The message of a thrown value, for logs and for the messages of errors that wrap it: an
 * Error's message, anything else (a string, a number, an object a library threw) as a string.
 */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The first line of errorMessage(err): command failures carry the command's whole output. */
export function errorLine(err: unknown): string {
  return errorMessage(err).split('\n')[0] ?? '';
}

/** The code of a thrown value that is not an Error (a string, a number, an object a library threw). */
export const ERR_THROWN_VALUE = 'MANATEE_ERR_THROWN_VALUE';

/** An Error for a thrown value: an Error as it is, anything else wrapped in one (ERR_THROWN_VALUE). */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new ManateeError(ERR_THROWN_VALUE, String(err));
}

/** Node's codes for a server certificate that is not signed by a trusted CA. */
const UNTRUSTED_CERT_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED',
]);

/**
 * What was wrong with a server's certificate, when `err` is a TLS verification failure (an
 * untrusted issuer, an expired certificate, a host it does not name); null for any other error.
 * Clients of the API say this instead of Node's bare code, so the operator knows to pass the CA.
 */
export function certificateProblem(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  if (code === 'CERT_HAS_EXPIRED') return 'its certificate has expired (CERT_HAS_EXPIRED)';
  if (code === 'CERT_NOT_YET_VALID') return 'its certificate is not valid yet (CERT_NOT_YET_VALID: is the clock right?)';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `its certificate does not name the host dialled (${errorMessage(err)})`;
  if (code === 'MANATEE_ERR_TLS_PEER_ID') return `its certificate is not the peer's it was asked for (${errorMessage(err)})`;
  if (UNTRUSTED_CERT_CODES.has(code)) return `its certificate is not signed by a trusted CA (${code})`;
  return null;
}
