// What the store needs from consensus, and nothing more. RaftNode (src/raft/node.ts) provides
// it through raftConsensus(); unit tests use InProcessGroup (in-process-consensus.ts), a
// deterministic stand-in for the Raft part.
import type { NodeId } from '../raft/core/types.js';

export interface LeaderChange {
  readonly leader: NodeId | null;
  readonly term: number;
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
  isLeader(): boolean;
  leader(): NodeId | null;
  term(): number;
  onLeaderChange(listener: (change: LeaderChange) => void): () => void;
}
