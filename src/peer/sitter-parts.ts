// What a sitter is given to run (src/cli/sitter-wiring.ts opens each part; wiring.ts builds the
// jobs on them): this peer's Raft node, cluster store, PostgreSQL, other peers' PostgreSQL, backup
// backend, facts file and clock, and the edge (the HTTP API) and metrics around it. Each effect
// is a small interface here or in the job that uses it; the concrete classes (PostgresServer,
// RaftNode, HeldSourcePostgres, FileFacts) are opened by the cli, and the whole-shard simulator
// (test/sim) gives the jobs its models of the same interfaces.
import type { BackupBackend } from '../backup/types.js';
import type { Logger } from '../log.js';
import type { PeerId } from '../model/index.js';
import type { PgExit, PgPeer, ShutdownMode } from '../postgres/index.js';
import type { QueryFn } from '../postgres/replication.js';
import type { ClusterStore } from '../store/index.js';
import type { ReloadableTls } from '../tls/index.js';
import type { Zfs } from '../zfs/index.js';
import type { Clock } from './clock.js';
import type { SitterConfig } from './config.js';
import type { ShardCredentials } from './credentials.js';
import type { FactsStore, LocalFacts } from './facts.js';
import type { FencePostgres } from './fencing.js';
import type { HookObserver } from './hooks.js';
import type { RaftLeadership } from './leader-placement.js';
import type { LocalPostgres } from './local-postgres.js';
import type { PgCredentialsTarget } from './pg-credentials.js';
import type { MonitoredPostgres } from './pg-monitor.js';
import type { PgOpsTarget } from './pg-ops.js';
import type { SettingsTarget } from './shard-settings.js';
import type { SourcePostgres } from './source-postgres.js';

/** Counts the loop's decisions and the hooks' outcomes (the API's metrics, built by the wiring). */
export interface SitterMetrics extends HookObserver {
  recordDecision(kind: string): void;
}

/** What faces the outside (the HTTP API, built by the wiring): opened at start, closed at stop. */
export interface SitterEdge {
  /**
   * Builds what listen() needs, before Raft starts: the API compiles its schemas synchronously, for
   * seconds on a loaded machine, and a node that stalls then cannot vote, so that a shard whose
   * peers all start at once waited for elections behind it (tools/bench/failover.ts --restart-all).
   */
  prepare?(): Promise<void>;
  listen(): Promise<void>;
  close(): Promise<void>;
}

/**
 * This peer's own PostgreSQL (PostgresServer) as the sitter sees it: what each of its jobs asks
 * for (the reconciler's LocalPostgres, the fence's, the monitor's, the operators' reload and
 * restart, the shard settings, the role passwords), and what the sitter itself does with it.
 */
export interface SitterPostgres
  extends LocalPostgres, FencePostgres, MonitoredPostgres, PgOpsTarget, SettingsTarget,
    Omit<PgCredentialsTarget, 'streaming'> {
  /** The data directory (a zfs dataset is mounted there). */
  readonly dataDir: string;
  /** A query on the held connection, within the server's query timeout (10 s). */
  readonly query: QueryFn;
  /** A query on the held connection with its own timeout (the heartbeat's, the monitor's). */
  queryWithTimeout<R extends Record<string, unknown>>(sql: string, params: readonly unknown[] | undefined, timeoutMs: number): Promise<R[]>;
  /** The peers admitted in pg_hba.conf (pg-peers.ts). */
  setPeers(peers: readonly PgPeer[]): Promise<boolean>;
  /** Where the shard settings come from when PostgreSQL starts (rendered before it runs). */
  useShardSettings(source: () => { readonly settings: Readonly<Record<string, string>>; readonly version: number }): void;
  stop(mode: ShutdownMode): Promise<void>;
  /** Reloads after this peer's certificate changed (SIGHUP). */
  reloadTls(): Promise<void>;
  on(event: 'started', listener: (e: { pid: number; adopted: boolean }) => void): unknown;
  on(event: 'exit', listener: (e: PgExit) => void): unknown;
}

/** What the sitter needs of this peer's Raft node (RaftNode): run it, its status, its leadership, its secrets. */
export interface SitterRaft extends RaftLeadership {
  start(): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
  /** The shard secret it proves itself with, and the others it accepts (SIGHUP). */
  setSecrets(secret: string, accepted: readonly string[]): void;
  /** RaftNode.every: `fn` about every `ms` from the node's tick while it runs, or null (then the caller sets a timer). */
  every?(ms: number, fn: () => void): (() => void) | null;
  status(): {
    readonly id: PeerId; readonly term: number; readonly leader: PeerId | null; readonly role: string;
    readonly commit: number; readonly applied: number; readonly members: { readonly voters: readonly PeerId[] };
  };
}

/** The parts a sitter runs (src/cli/sitter-wiring.ts opens them). */
export interface SitterParts {
  readonly config: SitterConfig;
  readonly log: Logger;
  readonly node: SitterRaft;
  readonly store: ClusterStore;
  readonly postgres: SitterPostgres;
  /** Other peers' PostgreSQL (a rebuild's source, a stalled standby's upstream). */
  readonly sources: SourcePostgres;
  readonly backend: BackupBackend;
  readonly zfs: Zfs | null;
  readonly facts: FactsStore;
  /** What `facts` held when the sitter opened. */
  readonly initialFacts: LocalFacts;
  /** The data directory held a database when the sitter opened. */
  readonly hasPreviousData: boolean;
  readonly edge: SitterEdge;
  readonly metrics: SitterMetrics;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** This peer's certificate (config.tls), shared by every listener and connection; null without TLS. */
  readonly tls?: ReloadableTls | null;
  /** The shard secret and admin tokens, shared with Raft, the API and the backup routes; default: from config. */
  readonly credentials?: ShardCredentials;
}
