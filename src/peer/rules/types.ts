// The inputs and the output of Manatee's rules (DESIGN.md, "The cluster state and its rules").
// The rules are pure: everything they look at is in RulesInput, including the time, and
// everything they want done is in the Decision that they return. The reconciler executes it.
import type { ClusterState, Lsn, PeerId, PeerInfo, PeerRole, PeerTags, TimelineHistory } from '../../model/index.js';

/** What this peer's sitter knows about its own PostgreSQL, as of this evaluation. */
export interface RulesPgStatus {
  /** The server is running and answered its last health check. */
  readonly online: boolean;
  /**
   * The last WAL position replayed (a standby's pg_last_wal_replay_lsn()). The sync's
   * takeover needs it to be at least the generation's initWal. null when unknown.
   */
  readonly replayLsn: Lsn | null;
  /**
   * This server's own WAL position: pg_current_wal_lsn() on a primary, the last received
   * (flushed) position on a standby. A writer of a new generation records it as initWal.
   * null when unknown.
   */
  readonly currentLsn: Lsn | null;
  /**
   * The timeline history of this server's WAL up to currentLsn (its timeline and where each
   * ancestor ended), null when unknown. A writer of a new generation records it with initWal; the
   * sync's takeover compares it with the recorded one.
   */
  readonly history: TimelineHistory | null;
  /**
   * The data directory held a database before this sitter first saw the cluster state.
   * A peer with old data never sets up a new cluster (it might hold the only copy of data
   * that a lost cluster state once pointed at).
   */
  readonly hasPreviousData: boolean;
  /**
   * Set once this peer's data has been rebuilt (restored) from `primaryId`, while that peer
   * was the primary of `generation`. A deposed peer leaves `deposed` when this names the
   * current primary.
   */
  readonly rebuiltFrom: { readonly primaryId: PeerId; readonly generation: number } | null;
}

/** The part of the sitter's configuration that the rules read. */
export interface RulesConfig {
  /** This peer is configured for one-node-write mode (a writable primary without a sync). */
  readonly oneNodeWriteMode: boolean;
  /** A deposed peer rebuilds itself without an operator (DESIGN.md: on by default). */
  readonly autoRebuild: boolean;
}

/** Everything one evaluation of the rules looks at. */
export interface RulesInput {
  /** The committed cluster state, or null before the cluster is set up. */
  readonly state: ClusterState | null;
  /** The store's version of `state`: every write is a compare-and-set on it. */
  readonly version: number;
  /** The peers whose sessions exist (this peer too, when its own session is open). Any order. */
  readonly active: readonly PeerInfo[];
  /** The tags carried by the active peers' sessions, by peer id (absent or missing: none set). */
  readonly tags?: Readonly<Record<PeerId, PeerTags>>;
  /** This peer. */
  readonly self: PeerInfo;
  readonly pg: RulesPgStatus;
  /** Wall-clock time in milliseconds since the epoch (promote requests expire). */
  readonly nowMs: number;
  readonly config: RulesConfig;
}

/**
 * The names of decisions, one per branch of the rules. Those marked (write) come with a
 * state write; the others are waits and no-ops that explain themselves in `reason`.
 */
export type DecisionKind =
  // No cluster state yet.
  | 'setupCluster' // (write) generation 1: this peer primary, the next peer sync, the rest asyncs
  | 'waitForPeers' // the setup (or the upgrade out of ONWM) needs another active peer
  | 'waitForSetup' // another peer (the one with the smallest id) sets the cluster up
  | 'holdOffExistingData' // this peer would set up the cluster, but it has previous data
  // Any peer.
  | 'none' // nothing to do: the state matches what this peer sees
  | 'noSession' // this peer's own session is not active: it must not write
  | 'onwmMismatch' // configured for ONWM (no operator override) but the cluster is in normal mode: no writes
  // The primary.
  | 'appendAsyncs' // (write) newly active peers appended to the async chain
  | 'removeAsyncs' // (write) asyncs whose sessions ended removed from the chain
  | 'updateAsyncs' // (write) both at once
  | 'recordInitWalHistory' // (write) a state from before initWalHistory existed: the primary records its own (same generation)
  | 'replaceSync' // (write) generation+1: the first active async replaces a failed sync
  | 'promoteAsync' // (write) an operator's promote request for an async
  | 'clearPromote' // (write) an expired or invalid promote request removed from the state
  | 'skipPromote' // (write) a scheduled switchover due while the shard is not healthy: removed, with the reason
  | 'onwmUpgrade' // (write) generation+1: out of one-node-write mode, with a sync
  | 'onwmDowngrade' // (write) generation+1: into one-node-write mode (the operator's override), sync and asyncs dropped
  // The sync.
  | 'takeover' // (write) generation+1: the primary's session ended; this sync becomes primary
  | 'promoteSync' // (write) generation+1: an operator's promote request; the primary is deposed
  // Waits that block a generation change.
  | 'frozen' // the cluster is frozen: no generation change
  | 'waitForAsync' // no async is active: a generation change would leave no sync (no flapping)
  | 'waitForCatchUp' // the sync has not replayed up to initWal
  | 'divergedFromInitWal' // the sync's timeline history leaves the generation's before initWal: its WAL is not the generation's
  | 'waitForPostgres' // this peer's PostgreSQL must be online (and report its LSN) first
  | 'ignoredPromote' // a promote request that this peer does not act on (see reason)
  | 'noFailover' // this sync is tagged nofailover: it never takes over
  // A deposed peer.
  | 'deposed' // waiting for (or running) its rebuild
  | 'removeFromDeposed'; // (write) rebuilt from the current primary: leaves `deposed`

/** How this peer's PostgreSQL should run. `deposed` runs it like `none` (stopped). */
export type PgRole = 'primary' | 'sync' | 'async' | 'none' | 'deposed';

/** A compare-and-set write of the cluster state. */
export interface StateWrite {
  /** The store's version that the write is based on; the store rejects it if the version moved. */
  readonly expectVersion: number;
  readonly newState: ClusterState;
  /** One line for the history ("sync (b) took over as primary (from a)"). */
  readonly summary: string;
}

/**
 * One evaluation's result. How to execute it:
 *  - `write` set: write it (compare-and-set). Apply `role`/`upstream` only after it commits:
 *    they describe this peer in `write.newState`. On a version conflict, drop the decision
 *    and evaluate again on the newer state.
 *  - no `write`: make PostgreSQL match `role`/`upstream`/`downstream` now.
 */
export interface Decision {
  readonly kind: DecisionKind;
  /** One sentence for people and logs (Patroni-style): what was seen, and what is done. */
  readonly reason: string;
  /** Where this peer stands in the resulting state. */
  readonly position: PeerRole;
  /** How its PostgreSQL should run. */
  readonly role: PgRole;
  /** Who to replicate from (sync: the primary; async[0]: the sync; async[i]: async[i-1]). */
  readonly upstream: PeerInfo | null;
  /** For a primary: the sync, whose application_name goes in synchronous_standby_names. */
  readonly downstream: PeerInfo | null;
  /** For a primary in one-node-write mode: accept writes with no sync. */
  readonly writableWithoutSync: boolean;
  /** For a deposed peer: rebuild its data from `upstream` (the current primary) now. */
  readonly needsRebuild: boolean;
  /** The generation of the resulting state (null when there is no state). */
  readonly generation: number | null;
  readonly write: StateWrite | null;
}
