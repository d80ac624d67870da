// What travels between peers on the Raft transport: the core's Raft messages, and messages to the
// leader that never enter the core (session keepalives: leases in etcd's sense, which need no log
// entry, fsync or apply on every node). Each kind has its own type, validated in validate.ts.
import type { Message, NodeId } from '../core/types.js';

/** Longest `data` of a LeaderMessage, in UTF-16 code units (a keepalive is about 20). */
export const LEADER_MESSAGE_DATA_MAX = 4096;

/**
 * A message to the Raft leader outside the log (RaftNode.sendToLeader). `term` is the sender's
 * term when it sent it, for the receiver's logs and checks; the receiver hands `data` to its
 * listeners only while it leads, and never steps the message into the core.
 */
export interface LeaderMessage {
  readonly type: 'leaderMessage';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly data: string;
}

/**
 * The leader's answer to a LeaderMessage's sender (RaftNode.replyFromLeader), outside the log:
 * e.g. a keepalive's acknowledgement, which renews the sender's lease. Same fields as a LeaderMessage.
 */
export interface LeaderReply {
  readonly type: 'leaderReply';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly data: string;
}

/** Anything the transport carries. */
export type PeerMessage = Message | LeaderMessage | LeaderReply;

export function isLeaderReply(m: PeerMessage): m is LeaderReply {
  return m.type === 'leaderReply';
}

export function isLeaderMessage(m: PeerMessage): m is LeaderMessage {
  return m.type === 'leaderMessage';
}
