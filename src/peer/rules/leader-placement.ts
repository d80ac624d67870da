// Where the Raft leader should be. When the leader dies, the others first elect a new one, which
// then gives every session a full sessionTimeoutMs of grace: a primary or sync that is also the
// leader fails over an election plus a session timeout later (measured: ~4 s instead of ~2.5 s
// with the defaults). An async's death blocks no commit, so it is the cheapest place for the
// leader. Pure: the sitter's LeaderPlacement (src/peer/leader-placement.ts) moves it.
import type { ClusterState, PeerId, PeerInfo } from '../../model/index.js';

export interface LeaderPlacementInput {
  readonly state: ClusterState | null;
  readonly selfId: PeerId;
  /** This node's view of Raft: who leads, its own role, the voters. */
  readonly raft: { readonly leader: PeerId | null; readonly role: string; readonly voters: readonly PeerId[] };
  readonly active: readonly PeerInfo[];
  readonly nowMs: number;
  /** When this peer last moved the leadership (0: never). */
  readonly lastMoveMs: number;
  /** At most one move per interval from one peer (no ping-pong). */
  readonly moveIntervalMs: number;
}

export interface LeaderMove {
  readonly kind: 'moveRaftLeader';
  readonly to: PeerId;
  /** This peer's place in the write path. */
  readonly role: 'primary' | 'sync';
  readonly reason: string;
}

/** A move of the Raft leadership to an active async that votes, or null when none is due. */
export function placeLeader(i: LeaderPlacementInput): LeaderMove | null {
  const { state, raft } = i;
  if (state === null || i.nowMs - i.lastMoveMs < i.moveIntervalMs) return null;
  if (raft.leader !== i.selfId || raft.role !== 'leader') return null;
  if (state.primary.id !== i.selfId && state.sync?.id !== i.selfId) return null;
  const target = state.async.find((a) => raft.voters.includes(a.id) && i.active.some((p) => p.id === a.id));
  if (target === undefined) return null;
  const role = state.primary.id === i.selfId ? 'primary' : 'sync';
  return { kind: 'moveRaftLeader', to: target.id, role, reason: `I am the ${role} and the Raft leader` };
}
