// Errors on the wire: every non-2xx answer is `{error: {code, message}}` with a stable code
// that manatee-adm prints and scripts match. The HTTP status follows from the code alone.
import { ManateeError } from '../errors.js';

export type ApiErrorCode =
  | 'MANATEE_ERR_BAD_REQUEST'
  | 'MANATEE_ERR_UNAUTHORIZED'
  | 'MANATEE_ERR_FORBIDDEN'
  | 'MANATEE_ERR_NOT_FOUND'
  | 'MANATEE_ERR_BODY_TOO_LARGE'
  | 'MANATEE_ERR_UNSUPPORTED_MEDIA_TYPE'
  | 'MANATEE_ERR_TOO_MANY_AUTH_FAILURES'
  | 'MANATEE_ERR_INTERNAL';

export class ApiError extends ManateeError {
  declare readonly code: ApiErrorCode;
  /** Sent as Retry-After (seconds) with the answer, when set. */
  readonly retryAfterS: number | undefined;

  constructor(code: ApiErrorCode, message: string, opts: { retryAfterS?: number } = {}) {
    super(code, message);
    this.retryAfterS = opts.retryAfterS;
  }
}

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/**
 * The status of each known code. Codes from other rooms are listed here by name (not imported)
 * so that the API does not depend on how the store or Raft are built, only on their contracts.
 */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  MANATEE_ERR_BAD_REQUEST: 400,
  MANATEE_ERR_INVALID_ARGUMENT: 400,
  MANATEE_ERR_UNAUTHORIZED: 401,
  MANATEE_ERR_FORBIDDEN: 403,
  MANATEE_ERR_NOT_FOUND: 404,
  MANATEE_ERR_PEER_NOT_FOUND: 404,
  MANATEE_ERR_BODY_TOO_LARGE: 413,
  MANATEE_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  MANATEE_ERR_TOO_MANY_AUTH_FAILURES: 429,
  // A shard setting refused against pg_settings of the primary (src/postgres/settings.ts).
  MANATEE_ERR_PG_SETTING_UNKNOWN: 400,
  MANATEE_ERR_PG_SETTING_INVALID: 400,
  MANATEE_ERR_PG_SETTING_RANGE: 400,
  MANATEE_ERR_PG_SETTING_ENUM: 400,
  MANATEE_ERR_PG_SETTING_OWNED: 400,
  MANATEE_ERR_PG_SETTING_READ_ONLY: 400,
  MANATEE_ERR_SETTING_NOT_SET: 409,
  MANATEE_ERR_RESTART_PRIMARY: 409,
  MANATEE_ERR_PG_NOT_RUNNING: 409,
  // A line of this peer's configuration files makes PostgreSQL apply no change at a reload.
  MANATEE_ERR_PG_RELOAD_BLOCKED: 409,
  // The request is well formed but conflicts with the shard's current state.
  MANATEE_ERR_NO_STATE: 409,
  MANATEE_ERR_FROZEN: 409,
  MANATEE_ERR_ALREADY_FROZEN: 409,
  MANATEE_ERR_NOT_FROZEN: 409,
  MANATEE_ERR_BAD_PROMOTE: 409,
  MANATEE_ERR_PROMOTE_PENDING: 409,
  MANATEE_ERR_NO_PROMOTE: 409,
  MANATEE_ERR_RESTART_SCHEDULED: 409,
  MANATEE_ERR_NO_RESTART: 409,
  MANATEE_ERR_PEER_IN_CHAIN: 409,
  MANATEE_ERR_PEER_ACTIVE: 409,
  MANATEE_ERR_ONWM_UNCHANGED: 409,
  MANATEE_ERR_BAD_ONWM: 409,
  MANATEE_ERR_BAD_REBUILD: 409,
  MANATEE_ERR_REBUILD_RUNNING: 409,
  MANATEE_ERR_STORE_VERSION_MISMATCH: 409,
  MANATEE_ERR_STORE_INVALID_STATE: 409,
  MANATEE_ERR_RAFT_CONF_CHANGE_INVALID: 409,
  MANATEE_ERR_PEER_ALREADY_MEMBER: 409,
  // Nobody can make the write now (no Raft leader, the store or node stopped): retry later.
  MANATEE_ERR_NOT_LEADER: 503,
  MANATEE_ERR_NO_LEADER: 503,
  MANATEE_ERR_RAFT_NO_LEADER: 503,
  MANATEE_ERR_RAFT_TIMEOUT: 503,
  MANATEE_ERR_RAFT_LEADER_CHANGED: 503,
  MANATEE_ERR_RAFT_STOPPED: 503,
  MANATEE_ERR_RAFT_PROPOSAL_DROPPED: 503,
  MANATEE_ERR_STORE_STOPPED: 503,
  MANATEE_ERR_UNAVAILABLE: 503,
  MANATEE_ERR_PG_SETTINGS_UNAVAILABLE: 503,
  MANATEE_ERR_RAFT_OVERLOADED: 503,
  MANATEE_ERR_TOO_MANY_WATCHERS: 503,
  MANATEE_ERR_INTERNAL: 500,
};

/** The HTTP status for an error code; 500 for codes nobody listed (a bug to list it). */
export function statusForCode(code: string): number {
  return STATUS_BY_CODE[code] ?? 500;
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}
