// The contract between the sitter and the two ways of copying data from another peer:
// `zfs` (send/receive of snapshots) and `basebackup` (pg_basebackup, pg_rewind).

import type { RestoreProgress } from '../model/index.js';

export type BackendKind = 'zfs' | 'basebackup';

/** The peer to copy from. */
export interface RestoreSource {
  readonly peerId: string;
  /** Connection URL of the source's PostgreSQL (replication user), for pg_basebackup/pg_rewind. */
  readonly pgUrl: string;
  /** Base URL of the source's backup server (zfs send streams). */
  readonly backupUrl: string;
}

export interface RestoreResult {
  /** How the data was obtained: an increment/rewind (cheap) or a full copy. */
  readonly method: 'full' | 'incremental' | 'rewind';
  readonly bytes: number;
  readonly durationMs: number;
}

export interface RestoreOptions {
  readonly source: RestoreSource;
  /** bootstrap: a new peer with no data; rebuild: a deposed peer whose data diverged. */
  readonly reason: 'bootstrap' | 'rebuild';
  /**
   * A rebuild of a standby that cannot stream from its source (its WAL receiver stalled: WAL the
   * source no longer has, say). A pg_rewind that finds nothing to rewind would change nothing and
   * the stall would go on, so the basebackup backend then copies everything.
   */
  readonly cannotStream?: boolean;
  readonly onProgress?: (p: RestoreProgress) => void;
  readonly signal?: AbortSignal;
}

export interface BackupBackend {
  readonly kind: BackendKind;
  /** Make the local data directory a copy of the source's, ready to start as its standby. */
  restore(opts: RestoreOptions): Promise<RestoreResult>;
}
