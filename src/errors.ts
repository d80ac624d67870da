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
