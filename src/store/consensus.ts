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
  /** Keepalives that reach this node while it is the leader (its own included), with their sender. */
  onKeepalive(listener: (k: ReceivedKeepalive) => void): () => void;
  isLeader(): boolean;
  leader(): NodeId | null;
  term(): number;
  onLeaderChange(listener: (change: LeaderChange) => void): () => void;
}
