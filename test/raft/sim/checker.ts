// The safety properties of Raft (paper §5.4, Figure 3), checked by the simulator after every step.
// A violation throws with the seed, so that `RAFT_SIM_SEED=<seed>` replays it.
import type { Entry, NodeId } from '../../../src/raft/core/index.js';

export class SafetyViolation extends Error {}

interface EntryFacts {
  readonly type: Entry['type'];
  readonly data: string;
  /** Term of the entry before it, when it was known (log matching by induction). */
  prevTerm: number | null;
}

export class SafetyChecker {
  readonly seed: number;
  /** Election safety: at most one leader per term. */
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** Log matching: one entry per (index, term), always with the same predecessor term. */
  private readonly entries = new Map<string, EntryFacts>();
  /** Committed entries: index -> term. Never changes once set. */
  private readonly committedTerm = new Map<number, number>();
  /**
   * Committed entries: index -> the lowest current term of a node that knew it committed. The
   * entry was committed in that term or earlier: a leader of a higher term must hold it. A leader
   * of that term or a lower one need not (a stale leader, elected late because messages to it were
   * held while it was paused, is checked against what was committed before its term only).
   */
  private readonly committedBy = new Map<number, number>();
  /** State machine safety: the state hash after applying index i, the same on every node. */
  private readonly appliedHash = new Map<number, string>();
  /** Highest index known committed anywhere (what a linearizable read must at least see). */
  maxCommitted = 0;
  /** (node, term) pairs already checked for leader completeness. */
  private readonly checkedLeaders = new Set<string>();
  checks = 0;

  constructor(seed: number) {
    this.seed = seed;
  }

  fail(what: string): never {
    throw new SafetyViolation(`seed ${this.seed}: ${what} (replay with RAFT_SIM_SEED=${this.seed})`);
  }

  onLeader(id: NodeId, term: number): void {
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== id) this.fail(`election safety: ${other} and ${id} are both leaders of term ${term}`);
    this.leaderOfTerm.set(term, id);
  }

  /** Leader completeness: a leader's log holds every entry committed before (checked once per node and term). */
  checkLeaderCompleteness(id: NodeId, term: number, termAt: (i: number) => number | null, firstIndex: number): void {
    const key = `${id}@${term}`;
    if (this.checkedLeaders.has(key)) return;
    this.checkedLeaders.add(key);
    for (const [i, t] of this.committedTerm) {
      if (i < firstIndex - 1) continue; // covered by the leader's snapshot
      if ((this.committedBy.get(i) ?? 0) >= term) continue; // not known committed before this term
      const mine = termAt(i);
      if (mine !== t) this.fail(`leader completeness: ${id}, leader of term ${term}, has term ${mine} at committed index ${i} (committed term ${t})`);
    }
  }

  onPersist(id: NodeId, e: Entry, prevTerm: number | null): void {
    this.checks++;
    const key = `${e.index}:${e.term}`;
    const known = this.entries.get(key);
    if (known === undefined) {
      this.entries.set(key, { type: e.type, data: e.data, prevTerm });
      return;
    }
    if (known.type !== e.type || known.data !== e.data) {
      this.fail(`log matching: ${id} holds a different entry at index ${e.index} term ${e.term}`);
    }
    if (prevTerm !== null) {
      if (known.prevTerm === null) known.prevTerm = prevTerm;
      else if (known.prevTerm !== prevTerm) {
        this.fail(`log matching: ${id} has term ${prevTerm} before ${key}, another log has ${known.prevTerm}`);
      }
    }
  }

  /** `observerTerm`: the current term of the node that knows it committed (default: the entry's term). */
  onCommitted(id: NodeId, index: number, term: number, observerTerm = term): void {
    this.checks++;
    const by = this.committedBy.get(index);
    if (by === undefined || observerTerm < by) this.committedBy.set(index, observerTerm);
    const known = this.committedTerm.get(index);
    if (known === undefined) this.committedTerm.set(index, term);
    else if (known !== term) this.fail(`committed entry changed: ${id} has term ${term} at committed index ${index}, was ${known}`);
    if (index > this.maxCommitted) this.maxCommitted = index;
  }

  onApplied(id: NodeId, index: number, hash: string): void {
    this.checks++;
    const known = this.appliedHash.get(index);
    if (known === undefined) this.appliedHash.set(index, hash);
    else if (known !== hash) this.fail(`state machine safety: ${id} reached state ${hash} at index ${index}, another node ${known}`);
  }

  committedTermAt(index: number): number | undefined {
    return this.committedTerm.get(index);
  }
}
