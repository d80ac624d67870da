// The leader's acknowledgement of keepalives (store/raft-consensus.ts) on a stand-in RaftNode:
// at once for ACK_AT_ONCE_AFTER_ELECTION_MS after it became the leader, then with its next
// heartbeat (a read atHeartbeat, the acknowledgement riding the heartbeat after it), and only once
// the read confirmed its leadership in the same term.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ACK_AT_ONCE_AFTER_ELECTION_MS, decodeKeepaliveAck, encodeKeepalive, raftConsensus } from '../../src/store/raft-consensus.js';
import type { RaftRole } from '../../src/raft/core/types.js';

class FakeNode extends EventEmitter {
  readonly id = 'a';
  role: RaftRole = 'follower';
  term = 1;
  leader: string | null = null;
  reads: { atHeartbeat: boolean; confirm: () => void; refuse: () => void }[] = [];
  replies: { to: string; data: string; withNextHeartbeat: boolean }[] = [];
  propose(): Promise<unknown> { return Promise.resolve(null); }
  read(opts: { timeoutMs?: number; atHeartbeat?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => { this.reads.push({ atHeartbeat: opts.atHeartbeat === true, confirm: resolve, refuse: () => { reject(new Error('lost')); } }); });
  }
  standing(): { term: number; leader: string | null; role: RaftRole } { return { term: this.term, leader: this.leader, role: this.role }; }
  sendToLeader(): void {}
  replyFromLeader(to: string, data: string, opts: { withNextHeartbeat?: boolean } = {}): void { this.replies.push({ to, data, withNextHeartbeat: opts.withNextHeartbeat === true }); }
  lead(): void {
    this.role = 'leader';
    this.term++;
    this.leader = this.id;
    this.emit('leaderChange', { leader: this.id, term: this.term });
  }
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('keepalive acknowledgements on the leader', () => {
  it('are confirmed at once after an election, then with the next heartbeat', async () => {
    let now = 1000;
    const node = new FakeNode();
    const c = raftConsensus(node, { nowMs: () => now });
    c.onKeepalive(() => true);
    node.lead();
    const keepalive = (seq: number): void => { node.emit('leaderMessage', { from: 'b', data: encodeKeepalive(7, seq) }); };
    keepalive(1);
    now += ACK_AT_ONCE_AFTER_ELECTION_MS - 1;
    keepalive(2);
    now += 1;
    keepalive(3);
    expect(node.reads.map((r) => r.atHeartbeat)).toEqual([false, false, true]);
    for (const r of node.reads) r.confirm();
    await flush();
    expect(node.replies.map((r) => decodeKeepaliveAck(r.data))).toEqual([1, 2, 3]);
    // Confirmed at a heartbeat, the acknowledgement also waits for the next one to go out with it.
    expect(node.replies.map((r) => r.withNextHeartbeat)).toEqual([false, false, true]);
    // A new election: at once again.
    node.lead();
    keepalive(4);
    expect(node.reads[3]!.atHeartbeat).toBe(false);
    // A read that did not confirm leadership (or confirmed it in another term) acknowledges nothing.
    node.reads[3]!.refuse();
    now += ACK_AT_ONCE_AFTER_ELECTION_MS;
    keepalive(5);
    node.term++;
    node.reads[4]!.confirm();
    await flush();
    expect(node.replies).toHaveLength(3);
  });
});
