// What the reconciler needs from this peer's own PostgreSQL, and nothing more. PostgresServer
// (src/postgres/server.ts) provides it; the whole-shard simulator (test/sim) provides a model of
// it, so that the real reconciler runs against a simulated PostgreSQL.
import type { ConfigureResult, PgRole, RenderedRole, SyncCatchUp, WalPositions } from '../postgres/index.js';

export interface LocalPostgres {
  /** The postmaster runs (started by this process or adopted). */
  readonly running: boolean;
  /** The role last rendered (null before the first configure). */
  readonly role: RenderedRole | null;
  /** The role that standbys replicate as (the user in a peer's pgUrl). */
  readonly replicationUser: string;
  /** The data directory holds a database. */
  hasData(): Promise<boolean>;
  /** Creates a new, empty database (the cluster's setup only). */
  initdb(): Promise<void>;
  /** Makes the server run as `role`: start, reload, restart, promote or stop. */
  configure(role: PgRole): Promise<ConfigureResult>;
  /**
   * Has the sync (application_name = syncId) connected and caught up with this primary? With
   * `waitMs`, asks again every few ms until it has, for at most that long.
   */
  syncCaughtUp(syncId: string, waitMs?: number): Promise<SyncCatchUp>;
  /** Names the sync in synchronous_standby_names and turns read-only off; refuses unless it caught up. */
  enableWrites(syncId: string): Promise<SyncCatchUp>;
  /** Cuts this standby off its upstream (the fence of a takeover); it stays in recovery. */
  detachFromUpstream(): Promise<void>;
  walPositions(): Promise<WalPositions>;
}
