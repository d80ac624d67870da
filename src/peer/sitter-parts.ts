// What a sitter is given to run (src/cli/sitter-wiring.ts opens each part; sitter.ts builds its
// jobs on them): this peer's Raft node, cluster store, PostgreSQL, backup backend, facts file, and
// the edge (the HTTP API) and metrics around it.
import type { BackupBackend } from '../backup/types.js';
import type { Logger } from '../log.js';
import type { PostgresServer } from '../postgres/index.js';
import type { RaftNode } from '../raft/node.js';
import type { ClusterStore } from '../store/index.js';
import type { ReloadableTls } from '../tls/index.js';
import type { Zfs } from '../zfs/index.js';
import type { Clock } from './clock.js';
import type { SitterConfig } from './config.js';
import type { ShardCredentials } from './credentials.js';
import type { FactsStore, LocalFacts } from './facts.js';
import type { HookObserver } from './hooks.js';

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

/** The parts a sitter runs (src/cli/sitter-wiring.ts opens them). */
export interface SitterParts {
  readonly config: SitterConfig;
  readonly log: Logger;
  readonly node: RaftNode;
  readonly store: ClusterStore;
  readonly postgres: PostgresServer;
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
