// The store's Consensus on a real RaftNode (src/raft/node.ts). The node is described by the few
// members the store uses, so that the store depends on Raft's behaviour, not on its class.
import type { NodeId, RaftRole } from '../raft/core/types.js';
import type { Consensus, LeaderChange, ProposeOptions } from './consensus.js';

export interface RaftNodeLike {
  readonly id: NodeId;
  propose(data: string, opts?: { timeoutMs?: number }): Promise<unknown>;
  read(opts?: { timeoutMs?: number }): Promise<void>;
  status(): { readonly term: number; readonly leader: NodeId | null; readonly role: RaftRole };
  on(event: 'leaderChange', listener: (change: LeaderChange) => void): unknown;
  off(event: 'leaderChange', listener: (change: LeaderChange) => void): unknown;
}

export function raftConsensus(node: RaftNodeLike, opts: { readTimeoutMs?: number } = {}): Consensus {
  return {
    id: node.id,
    propose: (data: string, p?: ProposeOptions) => node.propose(data, p?.timeoutMs === undefined ? {} : { timeoutMs: p.timeoutMs }),
    read: () => node.read(opts.readTimeoutMs === undefined ? {} : { timeoutMs: opts.readTimeoutMs }),
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
