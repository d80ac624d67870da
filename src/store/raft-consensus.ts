// The store's Consensus on a real RaftNode (src/raft/node.ts). The node is described by the few
// members the store uses, so that the store depends on Raft's behaviour, not on its class.
import type { NodeId, RaftRole } from '../raft/core/types.js';
import type { Consensus, LeaderChange, ProposeOptions, ReceivedKeepalive } from './consensus.js';
import { asError } from '../errors.js';

export interface RaftNodeLike {
  readonly id: NodeId;
  propose(data: string, opts?: { timeoutMs?: number }): Promise<unknown>;
  read(opts?: { timeoutMs?: number }): Promise<void>;
  status(): { readonly term: number; readonly leader: NodeId | null; readonly role: RaftRole };
  /** Sends `data` to the leader outside the log (RaftNode.sendToLeader). */
  sendToLeader(data: string): void;
  on(event: 'leaderChange', listener: (change: LeaderChange) => void): unknown;
  off(event: 'leaderChange', listener: (change: LeaderChange) => void): unknown;
  on(event: 'leaderMessage', listener: (m: { from: NodeId; data: string }) => void): unknown;
  off(event: 'leaderMessage', listener: (m: { from: NodeId; data: string }) => void): unknown;
}

/** A keepalive's text on the wire: the session's openedIndex, tagged so that other texts are not taken for one. */
const KEEPALIVE_TAG = 'keepalive:';

export function encodeKeepalive(openedIndex: number): string {
  return `${KEEPALIVE_TAG}${openedIndex}`;
}

/** The openedIndex of a keepalive's text, or null when it is not a well-formed keepalive. */
export function decodeKeepalive(data: string): number | null {
  if (!data.startsWith(KEEPALIVE_TAG)) return null;
  const n = Number(data.slice(KEEPALIVE_TAG.length));
  return Number.isSafeInteger(n) && n >= 1 ? n : null;
}

export function raftConsensus(node: RaftNodeLike, opts: { readTimeoutMs?: number } = {}): Consensus {
  return {
    id: node.id,
    propose: (data: string, p?: ProposeOptions) => node.propose(data, p?.timeoutMs === undefined ? {} : { timeoutMs: p.timeoutMs }),
    read: () => node.read(opts.readTimeoutMs === undefined ? {} : { timeoutMs: opts.readTimeoutMs }),
    keepalive: (openedIndex: number) => {
      try {
        node.sendToLeader(encodeKeepalive(openedIndex));
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(asError(err));
      }
    },
    onKeepalive: (listener: (k: ReceivedKeepalive) => void) => {
      const onMessage = (m: { from: NodeId; data: string }): void => {
        const openedIndex = decodeKeepalive(m.data);
        if (openedIndex !== null) listener({ peerId: m.from, openedIndex });
      };
      node.on('leaderMessage', onMessage);
      return () => {
        node.off('leaderMessage', onMessage);
      };
    },
    // The role, not the leader field: a node is the leader only while its core says so.
    isLeader: () => node.status().role === 'leader',
    leader: () => node.status().leader,
    term: () => node.status().term,
    onLeaderChange: (listener) => {
      node.on('leaderChange', listener);
      return () => {
        node.off('leaderChange', listener);
      };
    },
  };
}
