// What the store needs from consensus, and nothing more. RaftNode (src/raft/node.ts) provides
// it through raftConsensus(); unit tests use InProcessGroup (in-process-consensus.ts), a
// deterministic stand-in for the Raft part.
import type { NodeId } from '../raft/core/types.js';

export interface LeaderChange {
  readonly leader: NodeId | null;
  readonly term: number;
}

/** A session keepalive as the leader received it: `peerId` is the authenticated sender. */
export interface ReceivedKeepalive {
  readonly peerId: NodeId;
  readonly openedIndex: number;
}

export interface ProposeOptions {
  readonly timeoutMs?: number;
}

export interface Consensus {
  /** This node's id (the same as the Manatee peer id). */
  readonly id: NodeId;
  /**
   * Replicates `data` and resolves with the local state machine's apply() result once the entry
   * is committed and applied here. Rejects with MANATEE_ERR_RAFT_NO_LEADER, _TIMEOUT or _STOPPED.
   * After a timeout the entry may still be applied later.
   */
  propose(data: string, opts?: ProposeOptions): Promise<unknown>;
  /** Resolves when the local state machine has applied everything committed before the call (ReadIndex). */
  read(): Promise<void>;
  /**
   * Sends this node's session keepalive (`openedIndex` of its session) to the leader: a message,
   * not a log entry (leases in etcd's sense). Fire and forget: resolves once handed to the
   * transport (or, on the leader, delivered locally); rejects with MANATEE_ERR_RAFT_NO_LEADER or
   * _STOPPED. A keepalive lost on the way is simply not counted.
   */
  keepalive(openedIndex: number): Promise<void>;
  /**
   * The lease: the time (performance.now(), this process's monotonic clock) at which this node
   * SENT the newest keepalive that a leader acknowledged after confirming its leadership with a
   * quorum (ReadIndex) — no leader can expire the session sooner than sessionTimeoutMs after it
   * (on the leaders' clocks). Null before the first acknowledgement, and where the consensus
   * does not acknowledge keepalives (the in-process stand-in of unit tests).
   */
  leaseRenewedAtMs?(): number | null;
  /** Calls `listener` each time leaseRenewedAtMs moves forward; returns the unsubscribe. */
  onLeaseRenewed?(listener: () => void): () => void;
  /** Keepalives that reach this node while it is the leader (its own included), with their sender. */
  /**
   * The listener returns true when the keepalive renewed the session; only such a keepalive is
   * acknowledged to its sender (see leaseRenewedAtMs).
   */
  onKeepalive(listener: (k: ReceivedKeepalive) => boolean): () => void;
  isLeader(): boolean;
  leader(): NodeId | null;
  term(): number;
  onLeaderChange(listener: (change: LeaderChange) => void): () => void;
  /**
   * Runs `fn` about every `ms` from the consensus's own clock (a Raft node's tick: every
   * floor(ms / tick) ticks), so that it costs no wake-up of its own; returns the stop, or null when
   * `ms` is shorter than that clock's step (the caller then sets a timer). Absent: no such clock.
   */
  every?(ms: number, fn: () => void): (() => void) | null;
  /**
   * Calls `listener` each time this node's dial to a member is refused (ECONNREFUSED: nothing
   * listens at its Raft address, so its process is gone). Absent where the consensus cannot tell
   * (the in-process stand-in).
   */
  onPeerRefused?(listener: (peerId: NodeId) => void): () => void;
}
