// Session liveness: how the store decides that a peer is gone (DESIGN.md, "Liveness").
//
// Design: leases in etcd's sense. What must survive a leader change goes through the Raft log:
// a session's open, its close and its expiry. A keepalive does not: each peer's store sends one
// every keepaliveIntervalMs as a message to the Raft leader (RaftNode.sendToLeader, on the same
// authenticated channel as Raft), which only notes when it heard it. Keepalives used to be log
// entries: ten a second in a three-peer shard at the defaults, each fsynced, applied and
// acknowledged on every peer, for a fact that a new leader discards anyway (grace, below). They
// were half of the sitters' Raft work and took CPU from PostgreSQL (tools/bench/datapath.ts).
// Entries of that kind that an older version wrote are still applied and counted.
//
// Liveness is decided by the Raft leader alone, on its own clock, never by comparing clocks of
// different hosts: the leader notes the local time at which it applied each session's open and
// received each keepalive, and when a session has been silent for sessionTimeoutMs it proposes an
// `expireSession` entry. Every node runs this tracker, but only the leader hears keepalives and
// acts on it.
//
// Grace. A node that becomes leader (a new term) resets every session's last-seen time to now:
// each session gets a full sessionTimeoutMs before it can expire, because the new leader cannot
// know how long ago the sessions were heard by its predecessor, and keepalives were failing
// during the election. Sessions that a node first learns of (applied, or from a snapshot) also
// start at now. A connection blip shorter than sessionTimeoutMs therefore changes nothing: the
// next keepalive that lands refreshes the last-seen time, and no entry is written.
//
// Safety of an expiry. The leader expires a session only after sessionTimeoutMs without a keepalive
// for that session (the same openedIndex), counted on its own clock and from no earlier than its
// own election. Keepalives no longer wait behind a slow disk: they are not written. An expiry
// entry committed under this leader's term is the leader's decision, as etcd's lease revoke is;
// its keepaliveIndex still voids it against a keepalive entry of an older version.
//
// Failover budget: a dead peer's session is expired sessionTimeoutMs after its last keepalive
// arrived, plus one commit: besides the periodic check (sessionTimeoutMs/10, at most 100 ms), the
// leader arms a timer for the moment the next session falls due (nextDueMs), so the check's period
// adds nothing to a failover.
import type { PeerId } from '../model/index.js';
import type { SessionRecord } from './state-machine.js';
import { ManateeError } from '../errors.js';

export interface OverdueSession {
  readonly session: SessionRecord;
  /** How long the leader has heard nothing from this session. */
  readonly silentMs: number;
}

/** The leader's view of when it last heard from each session. Pure: time is an argument. */
export class SessionLiveness {
  private readonly lastSeen = new Map<PeerId, { openedIndex: number; atMs: number }>();

  constructor(readonly sessionTimeoutMs: number) {
    if (!(Number.isFinite(sessionTimeoutMs) && sessionTimeoutMs > 0)) {
      throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `sessionTimeoutMs must be > 0 (got ${sessionTimeoutMs})`);
    }
  }

  /** The session's open or a keepalive was applied at nowMs. */
  seen(peerId: PeerId, openedIndex: number, nowMs: number): void {
    this.lastSeen.set(peerId, { openedIndex, atMs: nowMs });
  }

  forget(peerId: PeerId): void {
    this.lastSeen.delete(peerId);
  }

  /** Grace: every session counts as heard from now (a new leader, or a restore). */
  graceAll(sessions: readonly SessionRecord[], nowMs: number): void {
    this.lastSeen.clear();
    for (const s of sessions) this.lastSeen.set(s.peer.id, { openedIndex: s.openedIndex, atMs: nowMs });
  }

  /** When the first tracked session becomes overdue (ms, on the clock of `seen`), or null when none is tracked. */
  nextDueMs(): number | null {
    let first: number | null = null;
    for (const { atMs } of this.lastSeen.values()) if (first === null || atMs < first) first = atMs;
    return first === null ? null : first + this.sessionTimeoutMs;
  }

  /** When this session was last heard from, or null if it is not tracked. */
  lastSeenMs(peerId: PeerId): number | null {
    return this.lastSeen.get(peerId)?.atMs ?? null;
  }

  /**
   * The sessions silent for at least sessionTimeoutMs at nowMs. A session not tracked yet (or a
   * new incarnation of a peer) starts being tracked at nowMs. Entries of ended sessions are dropped.
   */
  overdue(sessions: readonly SessionRecord[], nowMs: number): OverdueSession[] {
    const out: OverdueSession[] = [];
    const live = new Set<PeerId>();
    for (const s of sessions) {
      live.add(s.peer.id);
      const seen = this.lastSeen.get(s.peer.id);
      if (seen?.openedIndex !== s.openedIndex) {
        this.lastSeen.set(s.peer.id, { openedIndex: s.openedIndex, atMs: nowMs });
        continue;
      }
      const silentMs = nowMs - seen.atMs;
      if (silentMs >= this.sessionTimeoutMs) out.push({ session: s, silentMs });
    }
    for (const id of [...this.lastSeen.keys()]) if (!live.has(id)) this.lastSeen.delete(id);
    return out;
  }
}
