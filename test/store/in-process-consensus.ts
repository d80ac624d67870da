// A deterministic in-process stand-in for Raft, for tests of the store and of the sitter's
// rules: one totally ordered log, a leader chosen by the test (elect), members that can be
// stopped and started (a stopped member applies nothing and catches up when started again).
// Entries are applied on a later microtask, never inside propose(), as a real node would.
// It is not fault tolerant and has no network: it simulates what the store sees of consensus
// (ordering, leadership, terms), not how Raft achieves it.
import type { StateMachine } from '../../src/raft/state-machine.js';
import { RaftNoLeaderError, RaftStoppedError } from '../../src/raft/errors.js';
import type { NodeId } from '../../src/raft/core/types.js';
import type { Consensus, LeaderChange, ProposeOptions, ReceivedKeepalive } from '../../src/store/consensus.js';
import { asError } from '../../src/errors.js';

interface LogEntry {
  readonly index: number;
  readonly term: number;
  readonly data: string;
}

/** Most entries kept in the shared log (a test that runs away fails loudly). */
const LOG_ENTRIES_MAX = 1_000_000;

export class InProcessGroup {
  private readonly log: LogEntry[] = [];
  /** Index of the last entry before the log (a snapshot's index when members start from one). */
  readonly startIndex: number;
  private readonly members = new Map<NodeId, InProcessMember>();
  private leaderId: NodeId | null = null;
  private currentTerm = 0;
  private applyScheduled = false;

  /** `startIndex`: members start with machines restored from a snapshot taken at that index. */
  constructor(opts: { startIndex?: number } = {}) {
    this.startIndex = opts.startIndex ?? 0;
  }

  /** Adds a member that applies the log to `machine`. */
  add(id: NodeId, machine: StateMachine): InProcessMember {
    if (this.members.has(id)) throw new Error(`member ${id} already exists`);
    const m = new InProcessMember(this, id, machine);
    this.members.set(id, m);
    return m;
  }

  member(id: NodeId): InProcessMember {
    const m = this.members.get(id);
    if (m === undefined) throw new Error(`no member ${id}`);
    return m;
  }

  get term(): number {
    return this.currentTerm;
  }

  get leader(): NodeId | null {
    return this.leaderId;
  }

  get lastIndex(): number {
    return this.startIndex + this.log.length;
  }

  /** Makes `id` the leader in a new term (or leaves the group without one), and tells every running member. */
  elect(id: NodeId | null): void {
    if (id !== null && this.members.get(id)?.running !== true) throw new Error(`cannot elect ${id}: not a running member`);
    this.currentTerm += 1;
    this.leaderId = id;
    const change: LeaderChange = { leader: id, term: this.currentTerm };
    for (const m of this.members.values()) if (m.running) m.notifyLeader(change);
  }

  /** Stops a member (a crash): it applies nothing and its calls reject. A stopped leader leaves no leader. */
  stop(id: NodeId): void {
    const m = this.member(id);
    m.running = false;
    m.failPending();
    if (this.leaderId === id) this.elect(null);
  }

  /** Starts a stopped member again; it catches up with the log. */
  start(id: NodeId): void {
    const m = this.member(id);
    m.running = true;
    m.notifyLeader({ leader: this.leaderId, term: this.currentTerm });
    this.scheduleApply();
  }

  /** Resolves once every running member has applied the whole log. */
  async settle(): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      const behind = [...this.members.values()].some((m) => m.running && m.applied < this.lastIndex);
      if (!behind && !this.applyScheduled) return;
      await new Promise<void>((r) => setImmediate(r));
    }
    throw new Error('in-process group did not settle');
  }

  append(data: string): number {
    if (this.leaderId === null) throw new RaftNoLeaderError();
    if (this.log.length >= LOG_ENTRIES_MAX) throw new Error('in-process log is full');
    const entry: LogEntry = { index: this.lastIndex + 1, term: this.currentTerm, data };
    this.log.push(entry);
    this.scheduleApply();
    return entry.index;
  }

  private scheduleApply(): void {
    if (this.applyScheduled) return;
    this.applyScheduled = true;
    queueMicrotask(() => {
      this.applyScheduled = false;
      for (const m of this.members.values()) if (m.running) m.catchUp(this.log, this.startIndex);
    });
  }
}

export class InProcessMember implements Consensus {
  running = true;
  applied: number;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private readonly leaderListeners = new Set<(c: LeaderChange) => void>();
  private readonly keepaliveListeners = new Set<(k: ReceivedKeepalive) => void>();
  private leaderValue: NodeId | null;
  private termValue: number;

  constructor(
    private readonly group: InProcessGroup,
    readonly id: NodeId,
    private readonly machine: StateMachine,
  ) {
    this.applied = group.startIndex;
    this.leaderValue = group.leader;
    this.termValue = group.term;
  }

  propose(data: string, _opts?: ProposeOptions): Promise<unknown> {
    if (!this.running) return Promise.reject(new RaftStoppedError());
    try {
      const index = this.group.append(data);
      return new Promise((resolve, reject) => {
        this.pending.set(index, { resolve, reject });
      });
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  /** Delivered to the leader on a later microtask (a message, not an entry), if it still leads then. */
  keepalive(openedIndex: number): Promise<void> {
    if (!this.running) return Promise.reject(new RaftStoppedError());
    const leader = this.group.leader;
    if (leader === null) return Promise.reject(new RaftNoLeaderError());
    const k: ReceivedKeepalive = { peerId: this.id, openedIndex };
    queueMicrotask(() => { this.group.member(leader).receiveKeepalive(k); });
    return Promise.resolve();
  }

  onKeepalive(listener: (k: ReceivedKeepalive) => void): () => void {
    this.keepaliveListeners.add(listener);
    return () => this.keepaliveListeners.delete(listener);
  }

  receiveKeepalive(k: ReceivedKeepalive): void {
    if (!this.isLeader()) return;
    for (const l of [...this.keepaliveListeners]) l(k);
  }

  async read(): Promise<void> {
    if (!this.running) throw new RaftStoppedError();
    if (this.group.leader === null) throw new RaftNoLeaderError();
    const target = this.group.lastIndex;
    for (let i = 0; i < 1000 && this.applied < target; i++) await new Promise<void>((r) => setImmediate(r));
    if (!this.isRunning()) throw new RaftStoppedError();
  }

  isRunning(): boolean {
    return this.running;
  }

  isLeader(): boolean {
    return this.running && this.leaderValue === this.id;
  }

  leader(): NodeId | null {
    return this.leaderValue;
  }

  term(): number {
    return this.termValue;
  }

  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }

  notifyLeader(change: LeaderChange): void {
    this.leaderValue = change.leader;
    this.termValue = change.term;
    for (const l of [...this.leaderListeners]) l(change);
  }

  catchUp(log: readonly LogEntry[], startIndex: number): void {
    while (this.running && this.applied < startIndex + log.length) {
      const e = log[this.applied - startIndex]!;
      const result = this.machine.apply({ index: e.index, term: e.term, data: e.data });
      this.applied = e.index;
      const p = this.pending.get(e.index);
      if (p !== undefined) {
        this.pending.delete(e.index);
        p.resolve(result);
      }
    }
  }

  failPending(): void {
    for (const p of this.pending.values()) p.reject(new RaftStoppedError());
    this.pending.clear();
  }
}
