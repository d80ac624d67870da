// The store's Consensus on a real RaftNode (src/raft/node.ts). The node is described by the few
// members the store uses, so that the store depends on Raft's behaviour, not on its class.
import { performance } from 'node:perf_hooks';
import type { NodeId, RaftRole } from '../raft/core/types.js';
import type { Consensus, LeaderChange, ProposeOptions, ReceivedKeepalive } from './consensus.js';
import { asError } from '../errors.js';

export interface RaftNodeLike {
  readonly id: NodeId;
  propose(data: string, opts?: { timeoutMs?: number }): Promise<unknown>;
  read(opts?: { timeoutMs?: number; atHeartbeat?: boolean }): Promise<void>;
  /** Its term, leader and role (RaftNode.standing: cheap, asked on every keepalive and tick). */
  standing(): { readonly term: number; readonly leader: NodeId | null; readonly role: RaftRole };
  /** Sends `data` to the leader outside the log (RaftNode.sendToLeader). */
  sendToLeader(data: string): void;
  /** Answers a leaderMessage's sender outside the log (RaftNode.replyFromLeader). */
  replyFromLeader(to: NodeId, data: string, opts?: { withNextHeartbeat?: boolean }): void;
  on(event: 'leaderChange', listener: (change: LeaderChange) => void): unknown;
  off(event: 'leaderChange', listener: (change: LeaderChange) => void): unknown;
  /** leaderMessage: received while leading; leaderReply: the leader's answer to this node. */
  on(event: 'leaderMessage' | 'leaderReply', listener: (m: { from: NodeId; data: string }) => void): unknown;
  off(event: 'leaderMessage' | 'leaderReply', listener: (m: { from: NodeId; data: string }) => void): unknown;
  on(event: 'peerRefused', listener: (peerId: NodeId) => void): unknown;
  off(event: 'peerRefused', listener: (peerId: NodeId) => void): unknown;
  /** RaftNode.every: `fn` every `ms` from the node's tick, or null. */
  every?(ms: number, fn: () => void): (() => void) | null;
}

/** A keepalive's text on the wire: the session's openedIndex, tagged so that other texts are not taken for one. */
const KEEPALIVE_TAG = 'keepalive:';

const ACK_TAG = 'keepaliveAck:';
/** Keepalives awaiting their acknowledgement, at most (older ones are forgotten: their ack would renew less). */
const KEEPALIVES_IN_FLIGHT_MAX = 64;

/** `seq` numbers the keepalives of one sender, for its acknowledgement (absent: an older sender, never acked). */
export function encodeKeepalive(openedIndex: number, seq?: number): string {
  return seq === undefined ? `${KEEPALIVE_TAG}${openedIndex}` : `${KEEPALIVE_TAG}${openedIndex}:${seq}`;
}

/** The openedIndex of a keepalive's text, or null when it is not a well-formed keepalive. */
export function decodeKeepalive(data: string): number | null {
  return decodeKeepaliveWithSeq(data)?.openedIndex ?? null;
}

function positiveInt(text: string | undefined): number | null {
  const n = Number(text);
  return text !== undefined && text !== '' && Number.isSafeInteger(n) && n >= 1 ? n : null;
}

/** A keepalive's openedIndex and its sequence number (null when it asks for no acknowledgement). */
export function decodeKeepaliveWithSeq(data: string): { openedIndex: number; seq: number | null } | null {
  if (!data.startsWith(KEEPALIVE_TAG)) return null;
  const parts = data.slice(KEEPALIVE_TAG.length).split(':');
  const openedIndex = positiveInt(parts[0]);
  if (openedIndex === null || parts.length > 2) return null;
  if (parts.length === 1) return { openedIndex, seq: null };
  const seq = positiveInt(parts[1]);
  return seq === null ? null : { openedIndex, seq };
}

export function encodeKeepaliveAck(seq: number): string {
  return `${ACK_TAG}${seq}`;
}

export function decodeKeepaliveAck(data: string): number | null {
  return data.startsWith(ACK_TAG) ? positiveInt(data.slice(ACK_TAG.length)) : null;
}

/**
 * The sender's side of acknowledged keepalives: when each was sent, and the lease they renew.
 * Pure but for the clock, which is an argument.
 */
export class KeepaliveLease {
  private seq = 0;
  private readonly sentAtMs = new Map<number, number>();
  private renewedAtMs: number | null = null;
  private readonly renewedListeners = new Set<() => void>();

  /** Numbers a keepalive sent at `nowMs`. */
  next(nowMs: number): number {
    this.seq++;
    this.sentAtMs.set(this.seq, nowMs);
    if (this.sentAtMs.size > KEEPALIVES_IN_FLIGHT_MAX) this.sentAtMs.delete(this.sentAtMs.keys().next().value!);
    return this.seq;
  }

  /** An acknowledgement of keepalive `seq`: the lease runs from when that keepalive was sent. */
  acked(seq: number): void {
    const at = this.sentAtMs.get(seq);
    if (at === undefined) return;
    for (const k of [...this.sentAtMs.keys()]) if (k <= seq) this.sentAtMs.delete(k);
    if (this.renewedAtMs !== null && at <= this.renewedAtMs) return;
    this.renewedAtMs = at;
    for (const l of [...this.renewedListeners]) l();
  }

  /** Calls `listener` each time the lease is renewed (renewedAt moves forward); returns the unsubscribe. */
  onRenewed(listener: () => void): () => void {
    this.renewedListeners.add(listener);
    return () => { this.renewedListeners.delete(listener); };
  }

  renewedAt(): number | null {
    return this.renewedAtMs;
  }
}

/**
 * For this long after it became the leader, a leader confirms keepalives at once; later, with its
 * next heartbeat (ACK_AT_HEARTBEAT). After an election the primary's lease has lost the time the
 * election took, and its acknowledgement must not wait; in steady state the lease runs from when
 * the keepalive was SENT, so an acknowledgement up to one heartbeat later moves no deadline.
 */
export const ACK_AT_ONCE_AFTER_ELECTION_MS = 3000;

export function raftConsensus(node: RaftNodeLike, opts: { readTimeoutMs?: number; nowMs?: () => number } = {}): Consensus {
  const lease = new KeepaliveLease();
  const nowMs = opts.nowMs ?? (() => performance.now());
  let leaderSinceMs: number | null = node.standing().role === 'leader' ? nowMs() : null;
  node.on('leaderChange', (c) => { leaderSinceMs = c.leader === node.id ? nowMs() : null; });
  node.on('leaderReply', (m) => {
    const seq = decodeKeepaliveAck(m.data);
    if (seq !== null) lease.acked(seq);
  });
  /**
   * The leader acknowledges a keepalive only after confirming, with a quorum (ReadIndex) and still
   * in the term in which it received it, that it leads: a deposed leader that has not noticed yet
   * cannot renew a lease that its successor (whose grace started before the keepalive) would not honour.
   */
  const acknowledge = (to: NodeId, seq: number): void => {
    const term = node.standing().term;
    // ACK_AT_HEARTBEAT: each keepalive's own ReadIndex round was a heartbeat to every follower and
    // its answer, about 10 rounds a second in a 3-peer shard on top of the 10 heartbeats; riding on
    // the heartbeat, a follower is woken once per heartbeat, not twice (issue #11).
    const atHeartbeat = leaderSinceMs !== null && nowMs() - leaderSinceMs >= ACK_AT_ONCE_AFTER_ELECTION_MS;
    node.read({ ...(opts.readTimeoutMs === undefined ? {} : { timeoutMs: opts.readTimeoutMs }), atHeartbeat }).then(() => {
      const st = node.standing();
      // At the heartbeat, the acknowledgement goes out with the next one: a follower is woken
      // for the heartbeat anyway (the lease runs from the keepalive's sending, not from this).
      if (st.role === 'leader' && st.term === term) node.replyFromLeader(to, encodeKeepaliveAck(seq), { withNextHeartbeat: atHeartbeat });
    }, () => { /* not confirmed: no acknowledgement, the sender's lease is not renewed */ });
  };
  return {
    id: node.id,
    propose: (data: string, p?: ProposeOptions) => node.propose(data, p?.timeoutMs === undefined ? {} : { timeoutMs: p.timeoutMs }),
    read: () => node.read(opts.readTimeoutMs === undefined ? {} : { timeoutMs: opts.readTimeoutMs }),
    keepalive: (openedIndex: number) => {
      try {
        node.sendToLeader(encodeKeepalive(openedIndex, lease.next(nowMs())));
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(asError(err));
      }
    },
    onKeepalive: (listener: (k: ReceivedKeepalive) => boolean) => {
      const onMessage = (m: { from: NodeId; data: string }): void => {
        const k = decodeKeepaliveWithSeq(m.data);
        if (k === null) return;
        const renewed = listener({ peerId: m.from, openedIndex: k.openedIndex });
        if (k.seq !== null && renewed) acknowledge(m.from, k.seq);
      };
      node.on('leaderMessage', onMessage);
      return () => {
        node.off('leaderMessage', onMessage);
      };
    },
    // The role, not the leader field: a node is the leader only while its core says so.
    every: (ms: number, fn: () => void) => node.every?.(ms, fn) ?? null,
    leaseRenewedAtMs: () => lease.renewedAt(),
    onLeaseRenewed: (listener: () => void) => lease.onRenewed(listener),
    isLeader: () => node.standing().role === 'leader',
    leader: () => node.standing().leader,
    term: () => node.standing().term,
    onLeaderChange: (listener) => {
      node.on('leaderChange', listener);
      return () => {
        node.off('leaderChange', listener);
      };
    },
    onPeerRefused: (listener) => {
      node.on('peerRefused', listener);
      return () => {
        node.off('peerRefused', listener);
      };
    },
  };
}
