// Checks that a decoded frame really holds Raft messages before the core sees them: a peer with
// the secret but a bug (or a different version) must not be able to crash the node.
import type { MessageType } from '../core/types.js';
import { LEADER_MESSAGE_DATA_MAX, type PeerMessage } from './messages.js';

const MESSAGE_TYPES: ReadonlySet<string> = new Set<MessageType>([
  'preVote', 'preVoteResp', 'vote', 'voteResp', 'append', 'appendResp', 'heartbeat', 'heartbeatResp',
  'snapshot', 'snapshotStatus', 'timeoutNow', 'propose', 'readIndex', 'readIndexResp', 'transferLeader',
]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function checkEntry(v: unknown): string | null {
  if (!isRecord(v)) return 'entry is not an object';
  if (!isCount(v['term']) || !isCount(v['index'])) return 'entry term/index are not non-negative integers';
  if (v['type'] !== 'normal' && v['type'] !== 'confChange') return 'entry type is invalid';
  if (typeof v['data'] !== 'string') return 'entry data is not a string';
  return null;
}

function checkSnapshot(v: unknown): string | null {
  if (!isRecord(v) || !isRecord(v['metadata'])) return 'snapshot has no metadata';
  const md = v['metadata'];
  if (!isCount(md['index']) || !isCount(md['term'])) return 'snapshot index/term are invalid';
  const cs = md['confState'];
  if (!isRecord(cs) || !Array.isArray(cs['voters']) || !Array.isArray(cs['learners'])) return 'snapshot confState is invalid';
  if (!(cs['voters'] as unknown[]).concat(cs['learners'] as unknown[]).every((x) => typeof x === 'string')) return 'snapshot confState ids are not strings';
  if (typeof v['data'] !== 'string') return 'snapshot data is not a string';
  return null;
}

const LEADER_MESSAGE_FIELDS: ReadonlySet<string> = new Set(['type', 'from', 'to', 'term', 'data']);

/** A leaderMessage carries exactly its own fields: one with Raft fields is a confused sender. */
function checkLeaderMessage(v: Record<string, unknown>): string | null {
  for (const k of Object.keys(v)) {
    if (!LEADER_MESSAGE_FIELDS.has(k)) return `leaderMessage has an unexpected field ${JSON.stringify(k)}`;
  }
  if (typeof v['data'] !== 'string') return 'leaderMessage data is not a string';
  if (v['data'].length > LEADER_MESSAGE_DATA_MAX) return `leaderMessage data is ${v['data'].length} characters, more than ${LEADER_MESSAGE_DATA_MAX}`;
  return null;
}

/** The reason `v` is not a valid message from `from` to `to`, or null when it is. */
export function checkMessage(v: unknown, from: string, to: string): string | null {
  if (!isRecord(v)) return 'message is not an object';
  const type = v['type'];
  if (typeof type !== 'string' || (type !== 'leaderMessage' && type !== 'leaderReply' && !MESSAGE_TYPES.has(type))) return `unknown message type ${JSON.stringify(type)}`;
  if (v['from'] !== from) return `message from ${JSON.stringify(v['from'])} on the connection authenticated as ${from}`;
  if (v['to'] !== to) return `message to ${JSON.stringify(v['to'])} delivered to ${to}`;
  if (!isCount(v['term'])) return 'message term is not a non-negative integer';
  if (type === 'leaderMessage' || type === 'leaderReply') return checkLeaderMessage(v);
  for (const f of ['logTerm', 'index', 'commit', 'rejectHint'] as const) {
    if (v[f] !== undefined && !isCount(v[f])) return `message ${f} is not a non-negative integer`;
  }
  if (v['reject'] !== undefined && typeof v['reject'] !== 'boolean') return 'message reject is not a boolean';
  if (v['context'] !== undefined && typeof v['context'] !== 'string') return 'message context is not a string';
  if (v['entries'] !== undefined) {
    if (!Array.isArray(v['entries'])) return 'message entries is not an array';
    for (const e of v['entries'] as unknown[]) {
      const r = checkEntry(e);
      if (r !== null) return r;
    }
  }
  if (v['snapshot'] !== undefined) {
    const r = checkSnapshot(v['snapshot']);
    if (r !== null) return r;
  }
  return null;
}

/** Parses a messages frame, or returns why it is malformed. */
export function parseMessages(payload: Buffer, from: string, to: string): PeerMessage[] | string {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return `frame is not JSON: ${(err as Error).message}`;
  }
  if (!Array.isArray(v)) return 'frame is not an array of messages';
  for (const m of v as unknown[]) {
    const r = checkMessage(m, from, to);
    if (r !== null) return r;
  }
  return v as PeerMessage[];
}

