// Errors of the backup room (the basebackup backend may define its own in its file).
import { ERR_RESTORE_INVALID, ManateeError } from '../errors.js';

export const BACKUP_ERR_RESTORE_FAILED = 'MANATEE_ERR_BACKUP_RESTORE_FAILED';
export const BACKUP_ERR_HTTP = 'MANATEE_ERR_BACKUP_HTTP';
export const BACKUP_ERR_NO_SNAPSHOT = 'MANATEE_ERR_BACKUP_NO_SNAPSHOT';
export const BACKUP_ERR_UNAUTHORIZED = 'MANATEE_ERR_BACKUP_UNAUTHORIZED';
export const BACKUP_ERR_FORBIDDEN = 'MANATEE_ERR_BACKUP_FORBIDDEN';
/** With TLS: the request came without a peer certificate of the shard's CA, or for another peer than it names. */
export const BACKUP_ERR_PEER_CERTIFICATE = 'MANATEE_ERR_BACKUP_PEER_CERTIFICATE';
/** A request that does not match its route's schema (a malformed job id, a bad body): 400. */
export const BACKUP_ERR_BAD_REQUEST = 'MANATEE_ERR_BACKUP_BAD_REQUEST';
export const BACKUP_ERR_JOB_NOT_FOUND = 'MANATEE_ERR_BACKUP_JOB_NOT_FOUND';
export const BACKUP_ERR_JOB_CONFLICT = 'MANATEE_ERR_BACKUP_JOB_CONFLICT';
export const BACKUP_ERR_TOO_MANY_JOBS = 'MANATEE_ERR_BACKUP_TOO_MANY_JOBS';
export const BACKUP_ERR_ABORTED = 'MANATEE_ERR_BACKUP_ABORTED';
/** The local dataset could not be set aside for a restore (zfs-fuse held it busy); nothing was changed. */
export const BACKUP_ERR_LOCAL_BUSY = 'MANATEE_ERR_BACKUP_LOCAL_BUSY';
export const BACKUP_ERR_RESTORE_INVALID = ERR_RESTORE_INVALID;

export class BackupError extends ManateeError {
  /** HTTP status the server answers with for this error (500 unless set). */
  readonly statusCode: number;
  constructor(code: string, message: string, opts: { cause?: unknown; statusCode?: number } = {}) {
    super(code, message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.statusCode = opts.statusCode ?? 500;
  }
}

/**
 * A restore that failed. `restoredOld` says whether the previous data was put back
 * (isolated dataset renamed back, or the dataset left at the common snapshot).
 */
export class RestoreFailedError extends BackupError {
  readonly restoredOld: boolean;
  constructor(message: string, opts: { cause?: unknown; restoredOld: boolean }) {
    super(BACKUP_ERR_RESTORE_FAILED, message, { cause: opts.cause });
    this.restoredOld = opts.restoredOld;
  }
}

/**
 * A copy that was received completely but is not a PostgreSQL data directory this peer can start
 * as a standby (no pg_control, another major version, a cluster state no standby starts from).
 * `path` is the checked directory, `dataset` the zfs dataset when there is one, `problems` what
 * is missing or wrong. `restoredOld` says whether the previous data was put back.
 */
export class RestoreInvalidError extends BackupError {
  readonly path: string;
  readonly dataset: string | null;
  readonly problems: readonly string[];
  readonly restoredOld: boolean;
  constructor(message: string, opts: { path: string; dataset?: string | null; problems: readonly string[]; restoredOld: boolean; cause?: unknown }) {
    super(BACKUP_ERR_RESTORE_INVALID, message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.path = opts.path;
    this.dataset = opts.dataset ?? null;
    this.problems = opts.problems;
    this.restoredOld = opts.restoredOld;
  }
}

/**
 * A restore that could not start because the local dataset was busy (zfs-fuse holds a dataset for
 * seconds to minutes after its mount was used): it could not be unmounted, moved aside or rolled
 * back. Nothing was received and the data is as it was, mounted again when that was possible. The
 * source is not at fault, so the caller retries soon instead of backing off from the source.
 */
export class RestoreBusyError extends BackupError {
  readonly dataset: string;
  constructor(message: string, opts: { dataset: string; cause?: unknown }) {
    super(BACKUP_ERR_LOCAL_BUSY, message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.dataset = opts.dataset;
  }
}
