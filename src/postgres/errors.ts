// Typed errors of the postgres room. Callers match on `code` (stable), never on the message.
import { ManateeError } from '../errors.js';

export type PgErrorCode =
  | 'MANATEE_ERR_PG_BINARIES_NOT_FOUND'
  | 'MANATEE_ERR_PG_OS_USER'
  | 'MANATEE_ERR_PG_DATADIR_OWNER'
  | 'MANATEE_ERR_PG_DATADIR_NOT_EMPTY'
  | 'MANATEE_ERR_PG_NO_DATA'
  | 'MANATEE_ERR_PG_INVALID_OPTION'
  | 'MANATEE_ERR_PG_COMMAND_FAILED'
  | 'MANATEE_ERR_PG_START_FAILED'
  | 'MANATEE_ERR_PG_START_TIMEOUT'
  | 'MANATEE_ERR_PG_STOP_TIMEOUT'
  | 'MANATEE_ERR_PG_NOT_RUNNING'
  | 'MANATEE_ERR_PG_ALREADY_RUNNING'
  | 'MANATEE_ERR_PG_QUERY'
  | 'MANATEE_ERR_PG_RELOAD_BLOCKED'
  | 'MANATEE_ERR_PG_NEW_CONNECTION'
  | 'MANATEE_ERR_PG_WRONG_ROLE'
  | 'MANATEE_ERR_PG_PROMOTE_FAILED'
  | 'MANATEE_ERR_PG_SYNC_NOT_CAUGHT_UP'
  | 'MANATEE_ERR_PG_REWIND_FAILED'
  | 'MANATEE_ERR_PG_BASEBACKUP_FAILED'
  | 'MANATEE_ERR_PG_LSN_MALFORMED'
  | 'MANATEE_ERR_PG_SETTING_UNKNOWN'
  | 'MANATEE_ERR_PG_SETTING_INVALID'
  | 'MANATEE_ERR_PG_SETTING_RANGE'
  | 'MANATEE_ERR_PG_SETTING_ENUM'
  | 'MANATEE_ERR_PG_SETTING_OWNED'
  | 'MANATEE_ERR_PG_SETTING_READ_ONLY';

export class PgError extends ManateeError {
  declare readonly code: PgErrorCode;

  // Not useless: it narrows `code` to this room's codes at every `new PgError(...)`.
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor(code: PgErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
