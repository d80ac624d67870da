// Durable Raft state on LevelDB (the `level` package), format 1: hard state, log entries, the latest
// snapshot. Superseded by format 2 (raft-storage.ts: entries and hard state in append-only segment
// files); this reader stays to check and migrate a format-1 directory, and to keep the LevelDB
// part of format 2 (its lock, the snapshot, the marker of damage found).
//
// Durability: `save` writes one batch per Ready. When the Ready carries anything Raft must not
// lose (entries, a snapshot, a new term or vote), the batch is written with `sync: true` (fsync)
// and the node sends nothing that depends on it before the promise resolves. A commit-only change
// of the hard state may be written without fsync, as etcd does: the commit index can be
// recovered from a quorum, and a later synced batch makes it durable anyway (LevelDB's log is
// written in order).
//
// Integrity: every record carries a CRC32C over its key and value (records.ts). `load` checks
// every record and the invariants that tie them together, and throws RaftStorageCorruptError
// naming the directory and the key/index on the first violation.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import type { Entry, HardState, Snapshot } from '../core/types.js';
import type { PersistedState, StorageUpdate } from './types.js';
import { RaftStorageCorruptError, RaftStorageError } from '../errors.js';
import {
  ENTRY_PREFIX, FORMAT_KEY, FORMAT_VERSION, HARD_STATE_KEY, SNAPSHOT_KEY,
  decodeRecord, encodeRecord, entryKey, indexOfEntryKey, parseEntry, parseHardState, parseSnapshot,
} from './records.js';

export type { PersistedState, StorageUpdate } from './types.js';

/** Written when damage is found, so that later starts refuse too. */
export const CORRUPT_MARKER = 'RAFT_STORAGE_CORRUPT';
const REBUILD_HINT = 'remove this directory and let the node rejoin from its peers (add it back as a learner)';

/**
 * LevelDB writes what its recovery did to <dir>/LOG (renewed at every open). Without paranoid
 * checks (which LevelDB's binding, classic-level, does not expose), a checksum failure in its write-ahead log is
 * "ignored" there: the damaged records are dropped and the log file deleted.
 */
async function droppedByRecovery(dir: string): Promise<{ file: string; line: string } | null> {
  const text = await readFile(join(dir, 'LOG'), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (!/dropping \d+ bytes|corruption/i.test(line)) continue;
    const file = /([0-9]+\.(?:log|ldb|sst))/.exec(line)?.[1] ?? 'LOG';
    return { file, line: line.replace(/^\S+ \S+ /, '').trim() };
  }
  return null;
}

type BatchOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

export class LevelRaftStorage {
  readonly dir: string;
  private readonly db: Level<string, Buffer>;
  /** Index range of entries on disk: [firstIndex, lastIndex]; empty when lastIndex < firstIndex. */
  private firstIndex = 1;
  private lastIndex = 0;
  private snapshotIndex = 0;
  private lastHardState: HardState | null = null;
  private closed = false;
  private formatOnDisk = false;

  private constructor(dir: string, db: Level<string, Buffer>) {
    this.dir = dir;
    this.db = db;
  }

  /**
   * Opens the LevelDB directory. Refuses (RaftStorageCorruptError) when LevelDB's own recovery
   * dropped damaged records of its write-ahead log: LevelDB then carries on with what came before
   * the damage, which for Raft would be a silently lost vote or acknowledged entry. The finding
   * is made sticky with a marker file, because LevelDB deletes the damaged log during that recovery.
   */
  static async open(dir: string): Promise<LevelRaftStorage> {
    const marker = join(dir, CORRUPT_MARKER);
    const previous = await readFile(marker, 'utf8').catch(() => null);
    if (previous !== null) {
      const m = JSON.parse(previous) as { key?: string; index?: number | null; reason?: string };
      throw new RaftStorageCorruptError(dir, m.key ?? '?', m.index ?? null, `${m.reason ?? 'marked corrupt'} (recorded in ${marker}; ${REBUILD_HINT})`);
    }
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const msg = (err as Error).message;
      if (/corrupt/i.test(msg)) throw new RaftStorageCorruptError(dir, '?', null, `LevelDB refused to open: ${msg}`);
      throw new RaftStorageError(`cannot open Raft storage ${dir}: ${msg}`, { cause: err });
    }
    const dropped = await droppedByRecovery(dir);
    if (dropped !== null) {
      // Name the first index that may be missing: the one after the last entry that survived.
      let lastIntact = 0;
      for await (const k of db.keys({ gte: ENTRY_PREFIX, lt: ENTRY_PREFIX + '\uffff', reverse: true, limit: 1 })) lastIntact = indexOfEntryKey(k) ?? 0;
      await db.close();
      const index = lastIntact + 1;
      const reason = `LevelDB recovery dropped damaged records of its log ${dropped.file} ("${dropped.line}"); entries from index ${index} on, and hard state changes, may be lost`;
      await writeFile(marker, JSON.stringify({ key: dropped.file, index, reason, detectedAt: new Date().toISOString() }) + '\n', { flush: true });
      throw new RaftStorageCorruptError(dir, dropped.file, index, `${reason}; ${REBUILD_HINT}`);
    }
    return new LevelRaftStorage(dir, db);
  }

  /** True when nothing was ever written here (a fresh node that may bootstrap). */
  async isEmpty(): Promise<boolean> {
    for await (const _key of this.db.keys({ limit: 1 })) return false;
    return true;
  }

  /** Reads and checks everything. Throws RaftStorageCorruptError on any damaged or inconsistent record. */
  async load(): Promise<PersistedState> {
    const corrupt = (key: string, index: number | null, reason: string): RaftStorageCorruptError =>
      new RaftStorageCorruptError(this.dir, key, index, reason);

    let hardState: HardState | null = null;
    let snapshot: Snapshot | null = null;
    let format: unknown = null;
    const entries: Entry[] = [];

    let lastKey = '?';
    try {
      for await (const [key, raw] of this.db.iterator()) {
        lastKey = key;
        const entryIndex = indexOfEntryKey(key);
        const rec = decodeRecord(key, raw);
        if (!rec.ok) throw corrupt(key, entryIndex, rec.reason);
        if (entryIndex !== null) {
          const e = parseEntry(rec.value);
          if (typeof e === 'string') throw corrupt(key, entryIndex, e);
          if (e.index !== entryIndex) throw corrupt(key, entryIndex, `record holds entry ${e.index} under the key of entry ${entryIndex}`);
          const prev = entries[entries.length - 1];
          if (prev !== undefined) {
            if (e.index !== prev.index + 1) throw corrupt(key, entryIndex, `gap in the log: entry ${prev.index} is followed by entry ${e.index}`);
            if (e.term < prev.term) throw corrupt(key, entryIndex, `entry term ${e.term} is below the previous entry's term ${prev.term}`);
          }
          entries.push(e);
        } else if (key === HARD_STATE_KEY) {
          const hs = parseHardState(rec.value);
          if (typeof hs === 'string') throw corrupt(key, null, hs);
          hardState = hs;
        } else if (key === SNAPSHOT_KEY) {
          const s = parseSnapshot(rec.value);
          if (typeof s === 'string') throw corrupt(key, null, s);
          snapshot = s;
        } else if (key === FORMAT_KEY) {
          format = rec.value;
        } else {
          throw corrupt(key, null, 'unknown key');
        }
      }
    } catch (err) {
      if (err instanceof RaftStorageCorruptError) throw err;
      // LevelDB could not read a block (bad compression, damaged table file): as damaging as a bad record.
      throw corrupt(lastKey, indexOfEntryKey(lastKey), `LevelDB could not read past this key: ${(err as Error).message}`);
    }

    const anything = hardState !== null || snapshot !== null || entries.length > 0;
    if (anything && format !== FORMAT_VERSION) {
      throw corrupt(FORMAT_KEY, null, `format version is ${JSON.stringify(format)}, expected ${FORMAT_VERSION}`);
    }

    // Cross-record invariants: a lost or stale record shows up as a contradiction here.
    const snapIndex = snapshot?.metadata.index ?? 0;
    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first !== undefined && first.index > snapIndex + 1) {
      throw corrupt(entryKey(first.index), first.index, `gap in the log: the snapshot ends at ${snapIndex} but the first entry is ${first.index}`);
    }
    if (snapshot !== null) {
      const atSnap = entries.find((e) => e.index === snapIndex);
      if (atSnap !== undefined && atSnap.term !== snapshot.metadata.term) {
        throw corrupt(entryKey(snapIndex), snapIndex, `entry term ${atSnap.term} differs from the snapshot's term ${snapshot.metadata.term} at the same index`);
      }
    }
    if (entries.length > 0 && hardState === null) {
      throw corrupt(HARD_STATE_KEY, null, 'log entries exist but the hard state record is missing');
    }
    if (hardState !== null) {
      const lastIndex = Math.max(last?.index ?? 0, snapIndex);
      if (hardState.commit > lastIndex) {
        throw corrupt(HARD_STATE_KEY, null, `commit index ${hardState.commit} is beyond the last entry ${lastIndex}`);
      }
      const maxTerm = Math.max(last?.term ?? 0, snapshot?.metadata.term ?? 0);
      if (maxTerm > hardState.term) {
        throw corrupt(HARD_STATE_KEY, null, `term ${hardState.term} is below the last entry's term ${maxTerm} (a hard state write was lost)`);
      }
    }

    this.formatOnDisk = format === FORMAT_VERSION;
    this.snapshotIndex = snapIndex;
    this.firstIndex = first?.index ?? snapIndex + 1;
    this.lastIndex = last?.index ?? snapIndex;
    this.lastHardState = hardState;
    return { hardState, snapshot, entries: entries.filter((e) => e.index > snapIndex) };
  }

  /** Entries on disk, [first, last]; for tests and status. */
  range(): { firstIndex: number; lastIndex: number; snapshotIndex: number } {
    return { firstIndex: this.firstIndex, lastIndex: this.lastIndex, snapshotIndex: this.snapshotIndex };
  }

  /** True when writing `hs` needs an fsync: its term or vote differs from what is on disk. */
  hardStateNeedsSync(hs: HardState): boolean {
    const prev = this.lastHardState;
    return prev === null || prev.term !== hs.term || prev.vote !== hs.vote;
  }

  /**
   * Persists one Ready in one batch: the snapshot (replacing the whole log), then the entries
   * (truncating any conflicting tail), then the hard state. Fsyncs unless only the commit index moved.
   */
  async save(update: StorageUpdate): Promise<void> {
    this.assertOpen();
    const ops: BatchOp[] = [];
    let mustSync = false;
    let first = this.firstIndex;
    let last = this.lastIndex;
    let snapIndex = this.snapshotIndex;
    if (update.snapshot !== null) {
      const snap = update.snapshot;
      // A received snapshot replaces the log: everything up to it is covered by the snapshot,
      // and entries after it may conflict with the leader's log, so all of them go.
      for (let i = first; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) });
      ops.push({ type: 'put', key: SNAPSHOT_KEY, value: encodeRecord(SNAPSHOT_KEY, snap) });
      snapIndex = snap.metadata.index;
      first = snapIndex + 1;
      last = snapIndex;
      mustSync = true;
    }
    if (update.entries.length > 0) {
      const head = update.entries[0]!;
      const tail = update.entries[update.entries.length - 1]!;
      if (head.index > last + 1) {
        throw new RaftStorageError(`refusing to write entry ${head.index} after ${last}: it would leave a gap in ${this.dir}`);
      }
      if (head.index <= snapIndex) {
        throw new RaftStorageError(`refusing to write entry ${head.index}: it is covered by the snapshot at ${snapIndex} in ${this.dir}`);
      }
      for (const e of update.entries) ops.push({ type: 'put', key: entryKey(e.index), value: encodeRecord(entryKey(e.index), e) });
      // A conflicting tail beyond the new entries belongs to a deposed leader's term.
      for (let i = tail.index + 1; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) });
      if (first > head.index) first = head.index;
      last = tail.index;
      mustSync = true;
    }
    if (update.hardState !== null) {
      const hs = update.hardState;
      if (this.hardStateNeedsSync(hs)) mustSync = true;
      ops.push({ type: 'put', key: HARD_STATE_KEY, value: encodeRecord(HARD_STATE_KEY, hs) });
    }
    if (ops.length === 0) return;
    if (!this.formatOnDisk) ops.push({ type: 'put', key: FORMAT_KEY, value: encodeRecord(FORMAT_KEY, FORMAT_VERSION) });
    try {
      await this.db.batch(ops, { sync: mustSync });
    } catch (err) {
      throw new RaftStorageError(`cannot write Raft storage ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
    this.formatOnDisk = true;
    this.firstIndex = first;
    this.lastIndex = last;
    this.snapshotIndex = snapIndex;
    if (update.hardState !== null) this.lastHardState = update.hardState;
  }

  /**
   * Writes the initial state of a new group (the core's bootstrap snapshot and hard state), so
   * that a restart finds it. Only on an empty directory: a restarted node uses what is on disk.
   */
  async bootstrap(snap: Snapshot, hardState: HardState): Promise<void> {
    this.assertOpen();
    if (!(await this.isEmpty())) throw new RaftStorageError(`cannot bootstrap ${this.dir}: it already holds Raft state`);
    await this.db.batch([
      { type: 'put', key: FORMAT_KEY, value: encodeRecord(FORMAT_KEY, FORMAT_VERSION) },
      { type: 'put', key: SNAPSHOT_KEY, value: encodeRecord(SNAPSHOT_KEY, snap) },
      { type: 'put', key: HARD_STATE_KEY, value: encodeRecord(HARD_STATE_KEY, hardState) },
    ], { sync: true });
    this.formatOnDisk = true;
    this.lastHardState = hardState;
    this.snapshotIndex = snap.metadata.index;
    this.firstIndex = snap.metadata.index + 1;
    this.lastIndex = snap.metadata.index;
  }

  /**
   * Persists a snapshot taken locally (the state machine at an applied index). The log is kept:
   * `compact` removes old entries afterwards, leaving some for followers that lag a little.
   */
  async saveSnapshot(snap: Snapshot): Promise<void> {
    this.assertOpen();
    if (snap.metadata.index <= this.snapshotIndex) return;
    const ops: BatchOp[] = [{ type: 'put', key: SNAPSHOT_KEY, value: encodeRecord(SNAPSHOT_KEY, snap) }];
    if (!this.formatOnDisk) ops.push({ type: 'put', key: FORMAT_KEY, value: encodeRecord(FORMAT_KEY, FORMAT_VERSION) });
    await this.db.batch(ops, { sync: true });
    this.formatOnDisk = true;
    this.snapshotIndex = snap.metadata.index;
    if (this.lastIndex < this.snapshotIndex) {
      this.firstIndex = this.snapshotIndex + 1;
      this.lastIndex = this.snapshotIndex;
    }
  }

  /**
   * Deletes entries up to and including `throughIndex` (never beyond the snapshot). Not synced:
   * losing a deletion in a crash only leaves extra entries, which load() accepts. Deleting from
   * the oldest up keeps what remains contiguous even if the batch is cut short.
   */
  async compact(throughIndex: number): Promise<number> {
    this.assertOpen();
    const upTo = Math.min(throughIndex, this.snapshotIndex, this.lastIndex);
    if (upTo < this.firstIndex) return 0;
    const ops: BatchOp[] = [];
    for (let i = this.firstIndex; i <= upTo; i++) ops.push({ type: 'del', key: entryKey(i) });
    await this.db.batch(ops, { sync: false });
    const removed = upTo - this.firstIndex + 1;
    this.firstIndex = upTo + 1;
    return removed;
  }

  /** Raw access for tests that damage records on purpose. */
  get level(): Level<string, Buffer> {
    return this.db;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new RaftStorageError(`Raft storage ${this.dir} is closed`);
  }
}

