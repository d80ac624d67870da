// ReadIndex bookkeeping on the leader (Raft thesis §6.4): each read records the commit index at
// request time; it is released once a quorum has answered a heartbeat that carried its context,
// which proves that this node was still the leader after the request arrived.
import { invariant } from './errors.js';
import type { NodeId } from './types.js';

export interface ReadIndexStatus {
  readonly context: string;
  readonly index: number;
  /** Who asked: this node, or a follower that forwarded the request. */
  readonly from: NodeId;
  readonly acks: Set<NodeId>;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];
  readonly maxPending: number;

  constructor(maxPending: number) {
    this.maxPending = maxPending;
  }

  full(): boolean {
    return this.queue.length >= this.maxPending;
  }

  size(): number {
    return this.queue.length;
  }

  /** Returns false when a read with this context is already pending (a duplicate). */
  add(index: number, from: NodeId, context: string): boolean {
    if (this.pending.has(context)) return false;
    invariant(!this.full(), 'read-only queue is full');
    this.pending.set(context, { context, index, from, acks: new Set() });
    this.queue.push(context);
    return true;
  }

  /** Record a heartbeat acknowledgement; returns the acks so far, or null if the context is unknown. */
  recvAck(id: NodeId, context: string): ReadonlySet<NodeId> | null {
    const rs = this.pending.get(context);
    if (rs === undefined) return null;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Release the read with this context and every read queued before it (earlier reads are covered). */
  advance(context: string): ReadIndexStatus[] {
    const at = this.queue.indexOf(context);
    if (at < 0) return [];
    const released = this.queue.slice(0, at + 1).map((c) => this.pending.get(c)!);
    for (const c of this.queue.slice(0, at + 1)) this.pending.delete(c);
    this.queue = this.queue.slice(at + 1);
    return released;
  }

  lastPendingContext(): string | null {
    return this.queue[this.queue.length - 1] ?? null;
  }

  reset(): void {
    this.pending.clear();
    this.queue = [];
  }
}
