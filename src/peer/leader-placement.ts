// Keeps the Raft leader off the write path (the rule and why: rules/leader-placement.ts).
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import type { ClusterState, PeerId, PeerInfo } from '../model/index.js';
import type { DecisionLog } from './decision-log.js';
import { placeLeader } from './rules/index.js';

/** What the placement needs from this peer's Raft node. */
export interface RaftLeadership {
  status(): { readonly leader: PeerId | null; readonly role: string; readonly members: { readonly voters: readonly PeerId[] } };
  transferLeadership(to: PeerId, opts: { timeoutMs: number }): Promise<void>;
}

/** At most one Raft leadership move per this interval from one peer (no ping-pong). */
export const LEADERSHIP_MOVE_INTERVAL_MS = 5000;

export class LeaderPlacement {
  private lastMoveMs = 0;

  constructor(private readonly o: {
    readonly selfId: PeerId;
    readonly raft: RaftLeadership;
    /** How long a leadership transfer may take (a few election timeouts). */
    readonly transferTimeoutMs: number;
    readonly decisions: DecisionLog;
    readonly log: Logger;
  }) {}

  check(state: ClusterState | null, active: readonly PeerInfo[], nowMs: number): void {
    const raft = this.o.raft.status();
    const move = placeLeader({
      state, selfId: this.o.selfId, raft: { leader: raft.leader, role: raft.role, voters: raft.members.voters }, active,
      nowMs, lastMoveMs: this.lastMoveMs, moveIntervalMs: LEADERSHIP_MOVE_INTERVAL_MS,
    });
    if (move === null) return;
    this.lastMoveMs = nowMs;
    this.o.decisions.side({
      kind: move.kind, reason: move.reason, generation: state?.generation ?? null, logDecision: 'moveRaftLeader', level: 'info', fields: { to: move.to },
      message: `moving Raft leadership to async ${move.to}: I am the ${move.role}, and a leader in the write path would add an election and a session grace to its failover`,
    }, nowMs);
    this.o.raft.transferLeadership(move.to, { timeoutMs: this.o.transferTimeoutMs }).catch((err: unknown) => {
      this.o.log.warn({ decision: 'moveRaftLeader-failed', to: move.to, err: errorMessage(err) }, `Raft leadership did not move to ${move.to}`);
    });
  }
}
