// The cluster state (DESIGN.md, "The cluster state and its rules") and the store's records that
// every room reads: sessions and the history. Pure data. Peers are compared by `id` alone.
import type { Lsn } from './lsn.js';
import type { PeerId, PeerInfo, PeerTags } from './peer.js';
import type { TimelineHistory } from './timeline.js';

export interface FreezeInfo {
  readonly date: string; // ISO 8601
  readonly reason: string;
}

/** An operator's planned switchover (manatee-adm promote). Ignored once expired or stale. */
export interface PromoteRequest {
  readonly id: PeerId;
  readonly role: 'sync' | 'async';
  /** For role async: the index in `async` that the operator saw the peer at. */
  readonly asyncIndex?: number;
  /** The generation that the request was made for; ignored in any other. */
  readonly generation: number;
  readonly expireTime: string; // ISO 8601
  /**
   * A scheduled switchover (manatee-adm promote --at): not acted on before this time (ISO 8601).
   * When it is due and the shard is not healthy (frozen, the target or the next sync without a
   * session), the primary skips it: it clears the request with the reason in the history.
   */
  readonly at?: string;
}

/**
 * An operator's scheduled rolling restart (manatee-adm restart --at). When it is due, the primary's
 * sitter takes it out of the state (the history says it started, or why it was skipped: the shard
 * not healthy, or the time long past) and runs the rolling restart that manatee-adm restart runs.
 */
export interface ScheduledRestart {
  /** Not before this time (ISO 8601). */
  readonly at: string;
  /** Only the peers with settings pending a restart (restart --pending). */
  readonly pending: boolean;
  /** Only this peer (restart --peer); absent: every peer of the chain. */
  readonly peer?: PeerId;
}

export interface ClusterState {
  readonly generation: number;
  readonly primary: PeerInfo;
  /** null only in one-node-write mode. */
  readonly sync: PeerInfo | null;
  readonly async: readonly PeerInfo[];
  readonly deposed: readonly PeerInfo[];
  readonly initWal: Lsn;
  /**
   * The timeline history that initWal is a position in: the writer's own (the primary's, or the
   * sync's as it took over) when it recorded initWal. An LSN alone says nothing across histories
   * (0/7C0 on one timeline is not 0/7C0 on another), so a sync takes over only when its own
   * history reaches initWal on this one (rules/sync.ts). Absent in a state written before it was
   * recorded: the primary then records its own (same generation), and until then a sync judges
   * by the LSN alone, as before.
   */
  readonly initWalHistory?: TimelineHistory;
  readonly freeze?: FreezeInfo;
  readonly oneNodeWriteMode?: boolean;
  /**
   * The operator's one-node-write mode (manatee-adm set-onwm), which overrides the peers'
   * configured oneNodeWriteMode. Absent: each sitter follows its configuration. The primary
   * brings `oneNodeWriteMode` in line with it at the next generation.
   */
  readonly onwmOverride?: boolean;
  readonly promote?: PromoteRequest;
  readonly restart?: ScheduledRestart;
}

/** A peer's liveness record. While it exists, the peer is active. */
export interface Session {
  readonly peer: PeerInfo;
  /** The Raft index at which the session was opened: distinguishes incarnations of a peer. */
  readonly openedIndex: number;
  /** When the session was opened (ISO 8601, as proposed by its owner). */
  readonly openedTime?: string;
  /** The peer's tags as its configuration said when it opened the session (absent: none set). */
  readonly tags?: PeerTags;
}

/** One accepted change of the cluster state. */
export interface HistoryEntry {
  readonly version: number;
  readonly time: string; // ISO 8601, as proposed by the writer
  readonly generation: number;
  readonly summary: string;
  readonly state: ClusterState;
}
