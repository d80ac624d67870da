// The Raft log as the core sees it: stable storage (LogReader) plus the unstable tail, with the
// commit and applied indices. Log matching, conflict search and commit rules live here.
import { CompactedError, UnavailableError, invariant } from './errors.js';
import { UnstableLog } from './log-unstable.js';
import type { Entry, LogReader, Snapshot } from './types.js';

export class RaftLog {
  readonly storage: LogReader;
  readonly unstable: UnstableLog;
  /** Highest index known to be committed (stored on a quorum). Never goes back. */
  committed: number;
  /** Highest index the driver has applied. applied <= committed. */
  applied: number;

  constructor(storage: LogReader, applied?: number) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new UnstableLog(last + 1);
    this.committed = first - 1;
    this.applied = Math.max(first - 1, applied ?? 0);
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** Term of entry i, or null if i is compacted (below the snapshot) or beyond the log. */
  term(i: number): number | null {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return null;
    const t = this.unstable.maybeTerm(i);
    if (t !== null) return t;
    try {
      return this.storage.term(i);
    } catch (err) {
      if (err instanceof CompactedError || err instanceof UnavailableError) return null;
      throw err;
    }
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    invariant(t !== null, 'the term of the last entry is unknown');
    return t;
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** Raft §5.4.1: a log is at least as up to date if its last term is higher, or equal with a longer log. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The follower's side of AppendEntries (Raft §5.3). Returns the index of the last new entry, or
   * null when the log does not contain an entry at `index` with term `logTerm`.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: readonly Entry[]): number | null {
    if (!this.matchTerm(index, logTerm)) return null;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      invariant(ci > this.committed, () => `entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: readonly Entry[]): number {
    const first = ents[0];
    if (first === undefined) return this.lastIndex();
    invariant(first.index - 1 >= this.committed, () => `append at ${first.index} would overwrite committed ${this.committed}`);
    invariant(first.index <= this.lastIndex() + 1, () => `append at ${first.index} leaves a gap after ${this.lastIndex()}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** The index of the first entry that is new or conflicts with the log, or 0 if all are present. */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Fast backtracking: the largest index <= `index` whose term is <= `term`, with its term
   * (0 when compacted). Lets the leader skip a whole conflicting term in one round trip.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; i >= 0; i--) {
      const t = this.term(i);
      if (t === null) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: 0, term: 0 };
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries.slice();
  }

  /** Committed entries not yet applied (at most maxCount). */
  nextCommittedEntries(maxCount: number): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    const hi = Math.min(this.committed + 1, off + maxCount);
    if (hi <= off) return [];
    return this.slice(off, hi);
  }

  hasNextCommittedEntries(): boolean {
    return this.committed + 1 > Math.max(this.applied + 1, this.firstIndex());
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  commitTo(toCommit: number): void {
    if (toCommit <= this.committed) return;
    invariant(toCommit <= this.lastIndex(), () =>
      `commit ${toCommit} is beyond the last index ${this.lastIndex()}: was the log lost or truncated?`);
    this.committed = toCommit;
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    invariant(i <= this.committed && i >= this.applied, () =>
      `applied ${i} outside [applied ${this.applied}, committed ${this.committed}]`);
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Raft Figure 8: commit only an entry of the current term that a quorum stores. */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    invariant(s.metadata.index >= this.committed, 'snapshot would move commit back');
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries in [lo, hi). Throws CompactedError if lo is compacted. */
  slice(lo: number, hi: number): Entry[] {
    if (lo === hi) return [];
    invariant(lo < hi, () => `slice lo ${lo} > hi ${hi}`);
    const first = this.firstIndex();
    if (lo < first) throw new CompactedError(lo, first);
    invariant(hi <= this.lastIndex() + 1, () => `slice [${lo}, ${hi}) beyond last index ${this.lastIndex()}`);
    const out: Entry[] = [];
    const off = this.unstable.offset;
    if (lo < off) out.push(...this.storage.entries(lo, Math.min(hi, off)));
    if (hi > off) out.push(...this.unstable.slice(Math.max(lo, off), hi));
    return out;
  }
}
