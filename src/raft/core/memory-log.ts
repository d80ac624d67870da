// An in-memory LogReader (like etcd's MemoryStorage). The driver appends entries here only after they
// are durable, so it stands for "what is on disk". The simulator uses one per node as that node's disk.
import { CompactedError, SnapshotOutOfDateError, UnavailableError, invariant } from './errors.js';
import type { ConfState, Entry, HardState, LogReader, Snapshot } from './types.js';

export interface MemoryLogInit {
  readonly hardState?: HardState;
  readonly confState?: ConfState;
  readonly snapshot?: Snapshot;
  readonly entries?: readonly Entry[];
}

const EMPTY_CONF: ConfState = { voters: [], learners: [] };

export class MemoryLog implements LogReader {
  private hardState: HardState;
  private snap: Snapshot;
  /** The last compacted entry (the snapshot's, or an older one while entries are kept for slow followers). */
  private offsetIndex: number;
  private offsetTerm: number;
  /** Entries after the compaction point: ents[k] has index offsetIndex + 1 + k. */
  private ents: Entry[] = [];

  constructor(init: MemoryLogInit = {}) {
    this.snap = init.snapshot ?? {
      metadata: { index: 0, term: 0, confState: init.confState ?? EMPTY_CONF },
      data: '',
    };
    this.offsetIndex = this.snap.metadata.index;
    this.offsetTerm = this.snap.metadata.term;
    this.hardState = init.hardState ?? {
      term: this.snap.metadata.term,
      vote: null,
      commit: this.snap.metadata.index,
    };
    if (init.entries !== undefined && init.entries.length > 0) this.append(init.entries);
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    invariant(hs.term >= this.hardState.term, () => `hard state term went back ${this.hardState.term} -> ${hs.term}`);
    invariant(hs.commit >= this.hardState.commit, () => `hard state commit went back ${this.hardState.commit} -> ${hs.commit}`);
    invariant(
      hs.term > this.hardState.term || this.hardState.vote === null || hs.vote === this.hardState.vote,
      () => `vote changed within term ${hs.term}: ${this.hardState.vote} -> ${hs.vote}`,
    );
    this.hardState = hs;
  }

  entries(lo: number, hi: number): Entry[] {
    if (lo <= this.offsetIndex) throw new CompactedError(lo, this.firstIndex());
    invariant(hi <= this.lastIndex() + 1, () => `entries hi ${hi} beyond last index ${this.lastIndex()}`);
    invariant(lo <= hi, () => `entries lo ${lo} > hi ${hi}`);
    return this.ents.slice(lo - this.offsetIndex - 1, hi - this.offsetIndex - 1);
  }

  term(i: number): number {
    if (i < this.offsetIndex) throw new CompactedError(i, this.firstIndex());
    if (i === this.offsetIndex) return this.offsetTerm;
    const e = this.ents[i - this.offsetIndex - 1];
    if (e === undefined) throw new UnavailableError(i, this.lastIndex());
    return e.term;
  }

  firstIndex(): number {
    return this.offsetIndex + 1;
  }

  lastIndex(): number {
    return this.offsetIndex + this.ents.length;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Append durable entries. Entries that conflict with (or overlap) the existing tail replace it,
   * as a follower's log is truncated by a new leader. Entries below the compaction point are ignored.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    for (let k = 1; k < entries.length; k++) {
      invariant(entries[k]!.index === entries[k - 1]!.index + 1, 'appended entries are not contiguous');
    }
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return;
    const kept = entries[0]!.index < first ? entries.slice(first - entries[0]!.index) : entries;
    const start = kept[0]!.index;
    invariant(start <= this.lastIndex() + 1, () => `append leaves a gap: last index ${this.lastIndex()}, got ${start}`);
    // In place: appending is the hot path (no copy of the whole log per append).
    this.ents.length = start - first;
    for (const e of kept) this.ents.push(e);
  }

  /** Replace everything with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index < this.snap.metadata.index) {
      throw new SnapshotOutOfDateError(snap.metadata.index, this.snap.metadata.index);
    }
    this.snap = snap;
    this.offsetIndex = snap.metadata.index;
    this.offsetTerm = snap.metadata.term;
    this.ents = [];
  }

  /**
   * Record a snapshot of the state machine at `index` (already applied). Entries up to it stay
   * until `compact` is called, so that slow followers can still be sent them.
   */
  createSnapshot(index: number, confState: ConfState, data: string): Snapshot {
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError(index, this.snap.metadata.index);
    invariant(index <= this.lastIndex(), () => `snapshot index ${index} beyond last index ${this.lastIndex()}`);
    this.snap = { metadata: { index, term: this.term(index), confState }, data };
    return this.snap;
  }

  /** Discard entries up to and including `index`, which the latest snapshot must cover. */
  compact(index: number): void {
    if (index <= this.offsetIndex) return;
    invariant(index <= this.snap.metadata.index, () => `compact ${index} beyond the snapshot at ${this.snap.metadata.index}`);
    this.offsetTerm = this.term(index);
    this.ents = this.ents.slice(index - this.offsetIndex);
    this.offsetIndex = index;
  }
}
