// Durable Raft state, format 2: log entries and hard states in append-only segment files
// (wal-segment.ts), the latest snapshot in LevelDB.
//
// Why: a follower's synced LevelDB batch cost about 0.3 ms at the median (two thread-pool hops
// and LevelDB's own log) against about 0.2 ms for a write + fdatasync of the same bytes on the
// event loop, and it was on the path of every proposal. So a save is one record appended to the
// current segment, then fdatasync, both on the calling thread. The rare writes (snapshots, the
// bootstrap) stay in LevelDB, whose lock also keeps a second process out of the directory.
//
// Layout of `<dir>`: LevelDB's files, holding `v` (the format, 2), `s` (the latest snapshot) and
// `h` (the hard state written at bootstrap or kept from format 1; any hard state in the segments
// is newer); and `wal/<seq>.log`, the segments, oldest first.
//
// Durability: a save whose record carries entries, a snapshot, or a new term or vote is synced
// before save() returns; a commit-only hard state is appended without fdatasync (as before: the
// commit index can be learned again from a quorum). A segment is synced before the next begins,
// so only the last segment can have an unsynced tail.
//
// Integrity: every record has a CRC32C. At open, a damaged record at the end of the last segment
// with nothing sound after it is a write cut by a crash (never acknowledged): it is cut off. Any
// other damaged record, a missing segment, or records that contradict each other stop the open
// with RaftStorageCorruptError naming the directory, the segment and offset, and the index.
//
// A format-1 directory (everything in LevelDB) is checked in full and migrated at open: the
// entries and hard state are written to a first segment, then one synced LevelDB batch deletes the
// entries and marks format 2. A crash before that batch leaves format 1, and the next open
// starts the migration again.
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Level } from 'level';
import type { Entry, HardState, Snapshot } from '../core/types.js';
import { RaftStorageCorruptError, RaftStorageError } from '../errors.js';
import { LevelRaftStorage } from './level-storage.js';
import { ENTRY_PREFIX, FORMAT_KEY, HARD_STATE_KEY, SNAPSHOT_KEY, decodeRecord, encodeRecord, parseHardState, parseSnapshot } from './records.js';
import type { PersistedState, StorageUpdate } from './types.js';
import { WAL_DIR, encodeWalRecord, scanSegment, segmentName, seqOfSegmentName, soundRecordAfter, type WalRecord } from './wal-segment.js';

export const WAL_FORMAT_VERSION = 2;
/** A segment past this size is closed and a new one begun at the next save. */
export const SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;

export interface RaftStorageOptions {
  readonly segmentBytesMax?: number;
}

interface Segment {
  readonly seq: number;
  /** The highest entry index ever written to it (0: none); a segment is deleted only below a compaction bound. */
  maxIndex: number;
}

function hardStateEqual(a: HardState | null, b: HardState | null): boolean {
  return a === b || (a !== null && b !== null && a.term === b.term && a.vote === b.vote && a.commit === b.commit);
}

export class RaftStorage {
  readonly dir: string;
  private readonly walDir: string;
  private readonly legacy: LevelRaftStorage;
  private readonly segmentBytesMax: number;
  private readonly segments: Segment[] = [];
  /** The last segment, open for appending; null before the first write of a fresh directory. */
  private fd: number | null = null;
  private fdBytes = 0;
  private firstIndex = 1;
  private lastIndex = 0;
  private snapshotIndex = 0;
  private lastHardState: HardState | null = null;
  private loaded: PersistedState = { hardState: null, snapshot: null, entries: [] };
  private closed = false;
  /** Set by a failed write: the segment's tail is unknown, so nothing more may be appended. */
  private failed: Error | null = null;
  /** What open() repaired or converted, one sentence each, for the node's log. */
  readonly openNotes: string[] = [];

  private constructor(dir: string, legacy: LevelRaftStorage, opts: RaftStorageOptions) {
    this.dir = dir;
    this.walDir = join(dir, WAL_DIR);
    this.legacy = legacy;
    this.segmentBytesMax = opts.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT;
  }

  /**
   * Opens the directory (LevelDB first: its lock, and its own damage checks), migrates format 1,
   * then reads and checks everything. Throws RaftStorageCorruptError on damage.
   */
  static async open(dir: string, opts: RaftStorageOptions = {}): Promise<RaftStorage> {
    const legacy = await LevelRaftStorage.open(dir);
    const s = new RaftStorage(dir, legacy, opts);
    try {
      await s.init();
      return s;
    } catch (err) {
      await s.close().catch(() => undefined);
      if (err instanceof RaftStorageCorruptError || err instanceof RaftStorageError) throw err;
      throw new RaftStorageError(`cannot open Raft storage ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  private get db(): Level<string, Buffer> {
    return this.legacy.level;
  }

  private corrupt(key: string, index: number | null, reason: string): RaftStorageCorruptError {
    return new RaftStorageCorruptError(this.dir, key, index, reason);
  }

  private async init(): Promise<void> {
    let raw: Buffer | undefined;
    let anyKey = false;
    try {
      [raw] = await this.db.getMany([FORMAT_KEY]); // undefined when missing
      for await (const _k of this.db.keys({ limit: 1 })) anyKey = true;
    } catch (err) {
      throw this.corrupt(FORMAT_KEY, null, `LevelDB could not read it: ${(err as Error).message}`);
    }
    const v = raw === undefined ? undefined : decodeRecord(FORMAT_KEY, raw);
    const isV2 = v !== undefined && v.ok && v.value === WAL_FORMAT_VERSION;
    if (anyKey && !isV2) await this.migrateFormat1();
    await this.loadFormat2();
  }

  /** Format 1 -> 2: the legacy reader checks everything; entries and hard state move to a first segment. */
  private async migrateFormat1(): Promise<void> {
    const st = await this.legacy.load();
    // Segments left by a migration that a crash cut short: format 1 is still the truth.
    rmSync(this.walDir, { recursive: true, force: true });
    this.lastHardState = st.hardState;
    this.newSegment({ ...(st.entries.length > 0 ? { e: st.entries } : {}) });
    const ops: ({ type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string })[] = [
      { type: 'put', key: FORMAT_KEY, value: encodeRecord(FORMAT_KEY, WAL_FORMAT_VERSION) },
    ];
    for await (const k of this.db.keys({ gte: ENTRY_PREFIX, lt: ENTRY_PREFIX + '\uffff' })) ops.push({ type: 'del', key: k });
    await this.db.batch(ops, { sync: true });
    this.closeFd();
    this.segments.length = 0;
    this.openNotes.push(`converted format 1 (LevelDB) to format 2 (segment files): ${st.entries.length} entries, snapshot at ${st.snapshot?.metadata.index ?? 0}`);
  }

  private async loadLevelPart(): Promise<{ snapshot: Snapshot | null; baseHardState: HardState | null }> {
    let snapshot: Snapshot | null = null;
    let baseHardState: HardState | null = null;
    let lastKey = '?';
    try {
      for await (const [key, raw] of this.db.iterator()) {
        lastKey = key;
        const rec = decodeRecord(key, raw);
        if (!rec.ok) throw this.corrupt(key, null, rec.reason);
        if (key === SNAPSHOT_KEY) {
          const s = parseSnapshot(rec.value);
          if (typeof s === 'string') throw this.corrupt(key, null, s);
          snapshot = s;
        } else if (key === HARD_STATE_KEY) {
          const hs = parseHardState(rec.value);
          if (typeof hs === 'string') throw this.corrupt(key, null, hs);
          baseHardState = hs;
        } else if (key === FORMAT_KEY) {
          if (rec.value !== WAL_FORMAT_VERSION) throw this.corrupt(key, null, `format version is ${JSON.stringify(rec.value)}, expected ${WAL_FORMAT_VERSION}`);
        } else {
          throw this.corrupt(key, null, `unknown key in format ${WAL_FORMAT_VERSION}`);
        }
      }
    } catch (err) {
      if (err instanceof RaftStorageCorruptError) throw err;
      throw this.corrupt(lastKey, null, `LevelDB could not read past this key: ${(err as Error).message}`);
    }
    return { snapshot, baseHardState };
  }

  private listSegments(): number[] {
    let names: string[];
    try {
      names = readdirSync(this.walDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const seqs: number[] = [];
    for (const n of names) {
      const seq = seqOfSegmentName(n);
      if (seq === null) throw this.corrupt(`${WAL_DIR}/${n}`, null, 'unknown file in the segment directory');
      seqs.push(seq);
    }
    seqs.sort((a, b) => a - b);
    for (let i = 1; i < seqs.length; i++) {
      if (seqs[i] !== seqs[i - 1]! + 1) throw this.corrupt(`${WAL_DIR}/${segmentName(seqs[i - 1]! + 1)}`, null, `segment ${seqs[i - 1]! + 1} is missing between ${seqs[i - 1]!} and ${seqs[i]!}`);
    }
    return seqs;
  }

  private async loadFormat2(): Promise<void> {
    const { snapshot, baseHardState } = await this.loadLevelPart();
    const seqs = this.listSegments();
    let walHardState: HardState | null = null;
    let entries: Entry[] = [];
    let reset: { index: number; term: number; key: string } | null = null;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      const isLast = i === seqs.length - 1;
      const name = `${WAL_DIR}/${segmentName(seq)}`;
      const path = join(this.dir, name);
      const buf = readFileSync(path);
      const records = scanSegment(buf, seq);
      const seg: Segment = { seq, maxIndex: 0 };
      let keep = true;
      for (const [n, r] of records.entries()) {
        const key = `${name}@${r.offset}`;
        const nextIndex = (entries[entries.length - 1]?.index ?? reset?.index ?? snapshot?.metadata.index ?? 0) + 1;
        if (!r.ok) {
          if (!isLast) throw this.corrupt(key, nextIndex, `${r.reason}, in a segment that was complete and synced before the next one began`);
          if (!r.torn) throw this.corrupt(key, nextIndex, `${r.reason}: damage to a complete record, not a write cut by a crash`);
          if (soundRecordAfter(buf, r.offset, seq)) throw this.corrupt(key, nextIndex, `${r.reason}, and sound records follow it: damage in the middle of the log, not a write cut by a crash`);
          // The unsynced tail of the last segment, cut by a crash: it was never acknowledged.
          const fd = openSync(path, 'r+');
          try {
            ftruncateSync(fd, r.offset);
            fsyncSync(fd);
          } finally {
            closeSync(fd);
          }
          this.openNotes.push(`cut off a write left incomplete by a crash at the end of ${name} (offset ${r.offset}, ${buf.length - r.offset} bytes: ${r.reason})`);
          if (r.offset === 0) keep = false;
          break;
        }
        const rec = r.rec;
        if (n === 0 && rec.seg !== seq) throw this.corrupt(key, null, `the segment does not begin with its header (seg ${JSON.stringify(rec.seg)}, expected ${seq})`);
        if (n > 0 && rec.seg !== undefined) throw this.corrupt(key, null, 'a segment header in the middle of a segment');
        if (rec.reset !== undefined) {
          entries = [];
          reset = { ...rec.reset, key };
        }
        if (rec.h !== undefined) walHardState = rec.h;
        for (const e of rec.e ?? []) {
          const prev = entries[entries.length - 1];
          if (prev !== undefined && e.index > prev.index + 1) throw this.corrupt(key, e.index, `gap in the log: entry ${prev.index} is followed by entry ${e.index}`);
          // An entry at or below the last one replaces that tail (a conflict was truncated).
          if (prev !== undefined && e.index <= prev.index) entries = entries.filter((x) => x.index < e.index);
          const before = entries[entries.length - 1];
          if (before !== undefined && e.term < before.term) throw this.corrupt(key, e.index, `entry term ${e.term} is below the previous entry's term ${before.term}`);
          entries.push(e);
          if (e.index > seg.maxIndex) seg.maxIndex = e.index;
        }
      }
      if (keep) this.segments.push(seg);
      else unlinkSync(path);
    }
    this.checkAndSet(snapshot, walHardState ?? baseHardState, entries, reset);
    const last = this.segments[this.segments.length - 1];
    if (last !== undefined) {
      this.fd = openSync(join(this.walDir, segmentName(last.seq)), 'a');
      this.fdBytes = fstatSync(this.fd).size;
    }
  }

  /** The invariants that tie the records together; sets the in-memory view. */
  private checkAndSet(snapshot: Snapshot | null, hardState: HardState | null, all: Entry[], reset: { index: number; term: number; key: string } | null): void {
    const snapIndex = snapshot?.metadata.index ?? 0;
    if (reset !== null && reset.index > snapIndex) {
      throw this.corrupt(reset.key, reset.index, `the log was replaced by a snapshot at ${reset.index}, but the stored snapshot is at ${snapIndex}`);
    }
    let entries = all;
    const atSnap = entries.find((e) => e.index === snapIndex);
    if (snapshot !== null && atSnap !== undefined && atSnap.term !== snapshot.metadata.term) {
      // A snapshot received from the leader is stored before the segment that voids the old log;
      // a crash between the two leaves entries that conflict with the (committed) snapshot.
      this.openNotes.push(`dropped entries from ${atSnap.index} on: their term ${atSnap.term} at the snapshot's index conflicts with the snapshot's term ${snapshot.metadata.term} (a snapshot install cut by a crash)`);
      entries = [];
    }
    entries = entries.filter((e) => e.index > snapIndex);
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first !== undefined && first.index > snapIndex + 1) {
      throw this.corrupt(WAL_DIR, first.index, `gap in the log: the snapshot ends at ${snapIndex} but the first entry is ${first.index}`);
    }
    if (entries.length > 0 && hardState === null) throw this.corrupt(WAL_DIR, null, 'log entries exist but no hard state was written');
    if (hardState !== null) {
      const lastIndex = Math.max(last?.index ?? 0, snapIndex);
      if (hardState.commit > lastIndex) throw this.corrupt(WAL_DIR, null, `hard state: commit index ${hardState.commit} is beyond the last entry ${lastIndex}`);
      const maxTerm = Math.max(last?.term ?? 0, snapshot?.metadata.term ?? 0);
      if (maxTerm > hardState.term) throw this.corrupt(WAL_DIR, null, `hard state: term ${hardState.term} is below the last entry's term ${maxTerm} (a hard state write was lost)`);
    }
    this.snapshotIndex = snapIndex;
    this.firstIndex = first?.index ?? snapIndex + 1;
    this.lastIndex = last?.index ?? snapIndex;
    this.lastHardState = hardState;
    this.loaded = { hardState, snapshot, entries };
  }

  /** True when nothing was ever written here (a fresh node that may bootstrap). */
  isEmpty(): Promise<boolean> {
    return Promise.resolve(this.lastHardState === null && this.snapshotIndex === 0 && this.lastIndex === 0 && this.segments.length === 0);
  }

  /** What was on disk when the storage was opened, checked (open() throws on damage). */
  load(): Promise<PersistedState> {
    return Promise.resolve(this.loaded);
  }

  /** Entries on disk, [first, last]; for tests and status. */
  range(): { firstIndex: number; lastIndex: number; snapshotIndex: number } {
    return { firstIndex: this.firstIndex, lastIndex: this.lastIndex, snapshotIndex: this.snapshotIndex };
  }

  /** The segments' sequence numbers, oldest first; for tests. */
  segmentSeqs(): number[] {
    return this.segments.map((s) => s.seq);
  }

  /** True when writing `hs` needs an fsync: its term or vote differs from what is on disk. */
  hardStateNeedsSync(hs: HardState): boolean {
    const prev = this.lastHardState;
    return prev === null || prev.term !== hs.term || prev.vote !== hs.vote;
  }

  /**
   * Persists one Ready: a snapshot (replacing the whole log), then the entries (an entry at or
   * below the last replaces the tail from there), then the hard state. Synced unless only the
   * commit index moved.
   */
  async save(update: StorageUpdate): Promise<void> {
    this.assertWritable();
    let snapIndex = this.snapshotIndex;
    let last = this.lastIndex;
    let first = this.firstIndex;
    if (update.snapshot !== null) {
      snapIndex = update.snapshot.metadata.index;
      last = snapIndex;
      first = snapIndex + 1;
    }
    if (update.entries.length > 0) {
      const head = update.entries[0]!;
      if (head.index > last + 1) throw new RaftStorageError(`refusing to write entry ${head.index} after ${last}: it would leave a gap in ${this.dir}`);
      if (head.index <= snapIndex) throw new RaftStorageError(`refusing to write entry ${head.index}: it is covered by the snapshot at ${snapIndex} in ${this.dir}`);
      if (first > head.index) first = head.index;
      last = update.entries[update.entries.length - 1]!.index;
    }
    const hs = update.hardState;
    const e = update.entries.length > 0 ? { e: update.entries } : {};
    if (update.snapshot !== null) {
      await this.installSnapshot(update.snapshot, hs, e);
    } else if (update.entries.length > 0 || (hs !== null && !hardStateEqual(hs, this.lastHardState))) {
      const mustSync = update.entries.length > 0 || (hs !== null && this.hardStateNeedsSync(hs));
      this.append({ ...(hs !== null ? { h: hs } : {}), ...e }, mustSync);
    }
    this.firstIndex = first;
    this.lastIndex = last;
    this.snapshotIndex = snapIndex;
    if (hs !== null) this.lastHardState = hs;
    const seg = this.segments[this.segments.length - 1];
    if (seg !== undefined && update.entries.length > 0) seg.maxIndex = Math.max(seg.maxIndex, last);
    if (this.fdBytes > this.segmentBytesMax) this.guard(() => { this.newSegment({}); });
  }

  /**
   * A snapshot from the leader: a new term or vote first (so that the stored snapshot is never
   * ahead of the stored term), then the snapshot, then a new segment that voids the old log and
   * holds the Ready's entries; then the older segments go.
   */
  private async installSnapshot(snap: Snapshot, hs: HardState | null, e: { e?: readonly Entry[] }): Promise<void> {
    if (hs !== null && this.hardStateNeedsSync(hs)) {
      this.append({ h: hs }, true);
      this.lastHardState = hs;
    }
    await this.putLevel([{ key: SNAPSHOT_KEY, value: snap }]);
    const older = this.segments.map((s) => s.seq);
    this.guard(() => {
      if (hs !== null) this.lastHardState = hs;
      this.newSegment({ reset: { index: snap.metadata.index, term: snap.metadata.term }, ...e });
      for (const seq of older) unlinkSync(join(this.walDir, segmentName(seq)));
      this.segments.splice(0, older.length);
      this.syncDir(this.walDir);
    });
  }

  /**
   * Writes the initial state of a new group (the core's bootstrap snapshot and hard state), so
   * that a restart finds it. Only on an empty directory: a restarted node uses what is on disk.
   */
  async bootstrap(snap: Snapshot, hardState: HardState): Promise<void> {
    this.assertWritable();
    if (!(await this.isEmpty())) throw new RaftStorageError(`cannot bootstrap ${this.dir}: it already holds Raft state`);
    await this.putLevel([{ key: SNAPSHOT_KEY, value: snap }, { key: HARD_STATE_KEY, value: hardState }]);
    this.lastHardState = hardState;
    this.snapshotIndex = snap.metadata.index;
    this.firstIndex = snap.metadata.index + 1;
    this.lastIndex = snap.metadata.index;
  }

  /**
   * Persists a snapshot taken locally (the state machine at an applied index), and begins a new
   * segment, so that a later compact() can delete the older ones whole. The log is kept.
   */
  async saveSnapshot(snap: Snapshot): Promise<void> {
    this.assertWritable();
    if (snap.metadata.index <= this.snapshotIndex) return;
    await this.putLevel([{ key: SNAPSHOT_KEY, value: snap }]);
    this.snapshotIndex = snap.metadata.index;
    if (this.lastIndex < this.snapshotIndex) {
      this.firstIndex = this.snapshotIndex + 1;
      this.lastIndex = this.snapshotIndex;
    }
    if (this.fd !== null) this.guard(() => { this.newSegment({}); });
  }

  /**
   * Forgets entries up to and including `throughIndex` (never beyond the snapshot), and deletes
   * the oldest segments that hold nothing above it. Never the last segment; only from the oldest
   * up, so that a later segment's truncation of an earlier one's tail is never undone.
   */
  compact(throughIndex: number): Promise<number> {
    this.assertWritable();
    const upTo = Math.min(throughIndex, this.snapshotIndex, this.lastIndex);
    if (upTo < this.firstIndex) return Promise.resolve(0);
    this.guard(() => {
      let n = 0;
      while (n < this.segments.length - 1 && this.segments[n]!.maxIndex <= upTo) {
        unlinkSync(join(this.walDir, segmentName(this.segments[n]!.seq)));
        n++;
      }
      if (n > 0) {
        this.segments.splice(0, n);
        this.syncDir(this.walDir);
      }
    });
    const removed = upTo - this.firstIndex + 1;
    this.firstIndex = upTo + 1;
    return Promise.resolve(removed);
  }

  /** The LevelDB part, for tests that damage records on purpose. */
  get level(): Level<string, Buffer> {
    return this.db;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closeFd();
    await this.legacy.close();
  }

  // ---- segment files ----

  private assertWritable(): void {
    if (this.closed) throw new RaftStorageError(`Raft storage ${this.dir} is closed`);
    if (this.failed !== null) throw new RaftStorageError(`Raft storage ${this.dir} failed an earlier write and takes no more: ${this.failed.message}`, { cause: this.failed });
  }

  /** Runs segment I/O; a failure leaves the files in an unknown state, so it ends all writes. */
  private guard(f: () => void): void {
    try {
      f();
    } catch (err) {
      this.failed = err as Error;
      throw new RaftStorageError(`cannot write Raft storage ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  private append(rec: Omit<WalRecord, 'seg'>, sync: boolean): void {
    this.guard(() => {
      if (this.fd === null) {
        this.newSegment(rec);
        return;
      }
      const seq = this.segments[this.segments.length - 1]!.seq;
      this.writeAll(this.fd, encodeWalRecord(seq, rec));
      if (sync) fdatasyncSync(this.fd);
    });
  }

  /** Begins the next segment with a synced header carrying the hard state (and `extra`). */
  private newSegment(extra: Omit<WalRecord, 'seg' | 'h'> & { h?: HardState }): void {
    const prev = this.segments[this.segments.length - 1];
    const seq = (prev?.seq ?? 0) + 1;
    if (this.fd !== null) fdatasyncSync(this.fd); // only the last segment may have an unsynced tail
    if (prev === undefined) {
      mkdirSync(this.walDir, { recursive: true });
      this.syncDir(this.dir);
    }
    const h = extra.h ?? this.lastHardState;
    const rec: WalRecord = { seg: seq, ...extra, ...(h !== null ? { h } : {}) };
    const fd = openSync(join(this.walDir, segmentName(seq)), 'wx');
    try {
      this.writeAll(fd, encodeWalRecord(seq, rec));
      fdatasyncSync(fd);
      this.syncDir(this.walDir);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.closeFd();
    this.fd = fd;
    this.fdBytes = 0;
    let maxIndex = 0;
    for (const e of rec.e ?? []) maxIndex = Math.max(maxIndex, e.index);
    this.segments.push({ seq, maxIndex });
    this.fdBytes = fstatSync(fd).size;
  }

  private writeAll(fd: number, buf: Buffer): void {
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    this.fdBytes += buf.length;
  }

  private syncDir(path: string): void {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  private closeFd(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }

  private async putLevel(recs: { key: string; value: unknown }[]): Promise<void> {
    const ops = [{ key: FORMAT_KEY, value: WAL_FORMAT_VERSION as unknown }, ...recs].map((r) => ({ type: 'put' as const, key: r.key, value: encodeRecord(r.key, r.value) }));
    try {
      await this.db.batch(ops, { sync: true });
    } catch (err) {
      throw new RaftStorageError(`cannot write Raft storage ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }
}
