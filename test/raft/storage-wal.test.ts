// Raft storage format 2 (entries and hard states in segment files, the snapshot in LevelDB):
// round trips, truncation, snapshots and compaction, crash consistency, torn tails cut off,
// damage refused with the directory, the segment and the index named, and migration from format 1.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, rename, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { LevelRaftStorage, RaftStorage } from '../../src/raft/storage/index.js';
import { encodeRecord, entryKey, FORMAT_KEY, HARD_STATE_KEY, SNAPSHOT_KEY } from '../../src/raft/storage/records.js';
import { encodeWalRecord, segmentName } from '../../src/raft/storage/wal-segment.js';
import { RaftStorageCorruptError } from '../../src/raft/errors.js';
import type { Entry, HardState, Snapshot } from '../../src/raft/core/types.js';
import { afterThisTest, ents, tmp as tmpDir } from './storage-fixtures.js';

const tmp = (): Promise<string> => tmpDir('raft-wal');

function snap(index: number, term: number, data = `state@${index}`): Snapshot {
  return { metadata: { index, term, confState: { voters: ['a', 'b', 'c'], learners: [] } }, data };
}

async function open(dir: string, segmentBytesMax?: number): Promise<RaftStorage> {
  const s = await RaftStorage.open(dir, segmentBytesMax !== undefined ? { segmentBytesMax } : {});
  afterThisTest(() => s.close());
  return s;
}

async function reopen(dir: string) {
  const s = await RaftStorage.open(dir);
  try {
    return { ...(await s.load()), notes: s.openNotes, range: s.range(), segments: s.segmentSeqs() };
  } finally {
    await s.close();
  }
}

const seg = (dir: string, seq: number): string => join(dir, 'wal', segmentName(seq));

async function writeLog(dir: string): Promise<void> {
  const s = await RaftStorage.open(dir);
  await s.save({ snapshot: null, entries: ents(1, 10, 1), hardState: { term: 1, vote: 'a', commit: 8 } });
  for (let i = 11; i <= 20; i++) await s.save({ snapshot: null, entries: ents(i, i, 1), hardState: { term: 1, vote: 'a', commit: i - 1 } });
  await s.close();
}

async function expectCorrupt(dir: string, key: string | RegExp, index: unknown, reason: RegExp): Promise<RaftStorageCorruptError> {
  const err = await reopen(dir).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(RaftStorageCorruptError);
  const c = err as RaftStorageCorruptError;
  expect(c.code).toBe('MANATEE_ERR_RAFT_STORAGE_CORRUPT');
  expect(c.file).toBe(dir);
  if (typeof key === 'string') expect(c.key).toBe(key);
  else expect(c.key).toMatch(key);
  expect(c.index).toEqual(index);
  expect(c.message).toContain(dir);
  expect(c.message).toMatch(reason);
  return c;
}

/** Offsets of the records in a segment file (from their length fields). */
async function recordOffsets(path: string): Promise<number[]> {
  const buf = await readFile(path);
  const out: number[] = [];
  for (let o = 0; o < buf.length; o += 8 + buf.readUInt32LE(o)) out.push(o);
  return out;
}

/** Writes a segment by hand, for states that only a crash or a bug would leave. */
async function writeSegment(dir: string, seq: number, recs: { seg?: number; reset?: { index: number; term: number }; h?: HardState; e?: Entry[] }[]): Promise<void> {
  await mkdir(join(dir, 'wal'), { recursive: true });
  await writeFile(seg(dir, seq), Buffer.concat(recs.map((r) => encodeWalRecord(seq, r))));
}

describe('RaftStorage (format 2, segment files)', () => {
  it('a fresh directory is empty and loads as nothing', async () => {
    const dir = await tmp();
    const s = await open(dir);
    expect(await s.isEmpty()).toBe(true);
    expect(await s.load()).toEqual({ hardState: null, snapshot: null, entries: [] });
  });

  it('round-trips hard state, entries and a snapshot across a reopen', async () => {
    const dir = await tmp();
    const s = await open(dir);
    await s.save({ snapshot: null, entries: ents(1, 5, 1), hardState: { term: 1, vote: 'a', commit: 3 } });
    await s.save({ snapshot: null, entries: ents(6, 7, 2), hardState: { term: 2, vote: 'b', commit: 6 } });
    await s.saveSnapshot({ metadata: { index: 4, term: 1, confState: { voters: ['a', 'b', 'c'], learners: ['d'] } }, data: 'state@4' });
    await s.save({ snapshot: null, entries: [], hardState: { term: 2, vote: 'b', commit: 7 } }); // commit only: not synced, still written
    await s.close();
    const st = await reopen(dir);
    expect(st.hardState).toEqual({ term: 2, vote: 'b', commit: 7 });
    expect(st.snapshot).toEqual({ metadata: { index: 4, term: 1, confState: { voters: ['a', 'b', 'c'], learners: ['d'] } }, data: 'state@4' });
    expect(st.entries.map((e) => e.index)).toEqual([5, 6, 7]);
    expect(st.entries[2]).toEqual({ term: 2, index: 7, type: 'normal', data: 'cmd-7-t2' });
    expect(st.notes).toEqual([]);
    // Nothing of the log is in LevelDB: it holds the format and the snapshot.
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const keys: string[] = [];
    for await (const k of db.keys()) keys.push(k);
    await db.close();
    expect(keys.sort()).toEqual([SNAPSHOT_KEY, FORMAT_KEY].sort());
  });

  it('a bootstrapped group restarts from its snapshot and hard state, and refuses a second bootstrap', async () => {
    const dir = await tmp();
    const s = await open(dir);
    await s.bootstrap(snap(1, 1), { term: 1, vote: null, commit: 1 });
    await expect(s.bootstrap(snap(1, 1), { term: 1, vote: null, commit: 1 })).rejects.toMatchObject({ code: 'MANATEE_ERR_RAFT_STORAGE', message: expect.stringMatching(/already holds Raft state/) as unknown });
    await s.save({ snapshot: null, entries: ents(2, 3, 2), hardState: { term: 2, vote: 'b', commit: 2 } });
    await s.close();
    await expect(s.save({ snapshot: null, entries: ents(4, 4, 2), hardState: null })).rejects.toThrow(/closed/);
    const st = await reopen(dir);
    expect(st.snapshot).toEqual(snap(1, 1));
    expect(st.hardState).toEqual({ term: 2, vote: 'b', commit: 2 });
    expect(st.entries.map((e) => e.index)).toEqual([2, 3]);
  });

  it('a conflicting append truncates the old tail, also when the old tail is in an earlier segment', async () => {
    const dir = await tmp();
    const s = await open(dir, 200); // a new segment after almost every save
    await s.save({ snapshot: null, entries: ents(1, 10, 1), hardState: { term: 1, vote: null, commit: 2 } });
    await s.save({ snapshot: null, entries: ents(4, 5, 2), hardState: { term: 2, vote: null, commit: 2 } });
    expect(s.segmentSeqs().length).toBeGreaterThan(1);
    await s.close();
    const st = await reopen(dir);
    expect(st.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['1/1', '2/1', '3/1', '4/2', '5/2']);
  });

  it('a received snapshot replaces the whole log and deletes the older segments', async () => {
    const dir = await tmp();
    const s = await open(dir);
    await s.save({ snapshot: null, entries: ents(1, 5, 1), hardState: { term: 1, vote: null, commit: 5 } });
    const before = s.segmentSeqs();
    await s.save({ snapshot: snap(20, 3), entries: ents(21, 22, 3), hardState: { term: 3, vote: null, commit: 20 } });
    expect(s.range()).toEqual({ firstIndex: 21, lastIndex: 22, snapshotIndex: 20 });
    expect(s.segmentSeqs()).toEqual([before[before.length - 1]! + 1]);
    await s.close();
    const st = await reopen(dir);
    expect(st.snapshot).toEqual(snap(20, 3));
    expect(st.hardState).toEqual({ term: 3, vote: null, commit: 20 });
    expect(st.entries.map((e) => e.index)).toEqual([21, 22]);
  });

  it('a snapshot install cut by a crash (snapshot stored, old log not yet voided) drops the entries that conflict with it', async () => {
    const dir = await tmp();
    await writeLog(dir); // entries 1..20, term 1, in segment 1
    // A leader of term 3 sent a snapshot at 15: the new term was synced first, then the snapshot
    // reached LevelDB, and the crash came before the segment that voids the old log.
    await appendFile(seg(dir, 1), encodeWalRecord(1, { h: { term: 3, vote: null, commit: 8 } }));
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.batch([
      { type: 'put', key: FORMAT_KEY, value: encodeRecord(FORMAT_KEY, 2) },
      { type: 'put', key: SNAPSHOT_KEY, value: encodeRecord(SNAPSHOT_KEY, snap(15, 3)) },
    ]);
    await db.close();
    const st = await reopen(dir);
    expect(st.entries).toEqual([]);
    expect(st.hardState).toEqual({ term: 3, vote: null, commit: 8 });
    expect(st.range).toEqual({ firstIndex: 16, lastIndex: 15, snapshotIndex: 15 });
    expect(st.notes.join()).toMatch(/dropped entries from 15 on.*snapshot install cut by a crash/);
  });

  it('compaction deletes whole old segments up to the bound, never beyond the snapshot, never the last', async () => {
    const dir = await tmp();
    const s = await open(dir, 300);
    for (let i = 1; i <= 30; i++) await s.save({ snapshot: null, entries: ents(i, i, 1), hardState: { term: 1, vote: null, commit: i } });
    const all = s.segmentSeqs();
    expect(all.length).toBeGreaterThan(5);
    expect(await s.compact(10)).toBe(0); // no snapshot yet: nothing may go
    await s.saveSnapshot(snap(20, 1));
    expect(await s.compact(12)).toBe(12);
    expect(s.range().firstIndex).toBe(13);
    const left = s.segmentSeqs();
    expect(left.length).toBeLessThan(all.length);
    expect(await s.compact(100)).toBe(8); // stops at the snapshot (20)
    expect(s.segmentSeqs().length).toBeGreaterThanOrEqual(1);
    expect(s.segmentSeqs()[s.segmentSeqs().length - 1]).toBe(all[all.length - 1]! + 1); // the segment begun at the snapshot stays
    await s.save({ snapshot: null, entries: ents(31, 31, 1), hardState: { term: 1, vote: null, commit: 31 } });
    await s.close();
    const st = await reopen(dir);
    expect(st.entries.map((e) => e.index)).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]);
    expect(st.hardState).toEqual({ term: 1, vote: null, commit: 31 });
  });

  it('refuses a write that would leave a gap, and entries already covered by the snapshot', async () => {
    const dir = await tmp();
    const s = await open(dir);
    await s.bootstrap(snap(5, 1), { term: 1, vote: null, commit: 5 });
    await expect(s.save({ snapshot: null, entries: ents(5, 6, 1), hardState: null })).rejects.toThrow(/covered by the snapshot at 5/);
    await expect(s.save({ snapshot: null, entries: ents(8, 8, 1), hardState: null })).rejects.toThrow(/gap/);
    await s.save({ snapshot: null, entries: ents(6, 6, 1), hardState: null });
    expect(s.range()).toEqual({ firstIndex: 6, lastIndex: 6, snapshotIndex: 5 });
  });

  it('a failed write ends all writes: the segment\'s tail is unknown', async () => {
    const dir = await tmp();
    const s = await open(dir);
    await s.save({ snapshot: null, entries: ents(1, 1, 1), hardState: { term: 1, vote: null, commit: 0 } });
    const { closeSync } = await import('node:fs');
    closeSync((s as unknown as { fd: number }).fd); // the disk goes away under it
    const err = await s.save({ snapshot: null, entries: ents(2, 2, 1), hardState: null }).then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'MANATEE_ERR_RAFT_STORAGE', message: expect.stringContaining(`cannot write Raft storage ${dir}`) as unknown });
    await expect(s.save({ snapshot: null, entries: ents(2, 2, 1), hardState: null })).rejects.toThrow(/failed an earlier write and takes no more/);
    (s as unknown as { fd: null }).fd = null;
  });

  it('a process killed after synced saves finds them all on restart (crash consistency)', async () => {
    const dir = await tmp();
    const { execa } = await import('execa');
    const script = `
      import { RaftStorage } from ${JSON.stringify(new URL('../../src/raft/storage/index.ts', import.meta.url).pathname)};
      const s = await RaftStorage.open(process.argv[1], { segmentBytesMax: 2000 });
      for (let i = 1; i <= 50; i++) {
        await s.save({ snapshot: null, entries: [{ term: 7, index: i, type: 'normal', data: 'x' + i }], hardState: { term: 7, vote: 'n1', commit: i - 1 } });
      }
      process.kill(process.pid, 'SIGKILL');
    `;
    const r = await execa('node', ['--import', 'tsx', '--input-type=module', '-e', script, dir], { reject: false });
    expect(r.signal).toBe('SIGKILL');
    const st = await reopen(dir);
    expect(st.hardState).toEqual({ term: 7, vote: 'n1', commit: 49 });
    expect(st.entries.length).toBe(50);
    expect(st.segments.length).toBeGreaterThan(1);
  });
});

describe('RaftStorage (format 2): a torn tail is cut off, damage is refused', () => {
  it('a record cut short at the end of the last segment (a write cut by a crash) is cut off', async () => {
    const dir = await tmp();
    await writeLog(dir);
    const offs = await recordOffsets(seg(dir, 1));
    const lastOff = offs[offs.length - 1]!;
    await truncate(seg(dir, 1), lastOff + 11);
    const st = await reopen(dir);
    expect(st.entries.map((e) => e.index)).toEqual(ents(1, 19, 1).map((e) => e.index));
    expect(st.hardState).toEqual({ term: 1, vote: 'a', commit: 18 });
    expect(st.notes.join()).toMatch(/cut off a write left incomplete by a crash at the end of wal\/0000000000000001\.log/);
    // The file itself was cut: a second open finds nothing to repair, and appends follow the last sound record.
    const s = await RaftStorage.open(dir);
    expect(s.openNotes).toEqual([]);
    await s.save({ snapshot: null, entries: ents(20, 20, 2), hardState: { term: 2, vote: null, commit: 19 } });
    await s.close();
    expect((await reopen(dir)).entries.map((e) => `${e.index}/${e.term}`).slice(-2)).toEqual(['19/1', '20/2']);
  });

  it('a last record whose pages never reached the disk (zeros) is cut off', async () => {
    const dir = await tmp();
    await writeLog(dir);
    const offs = await recordOffsets(seg(dir, 1));
    const raw = await readFile(seg(dir, 1));
    raw.fill(0, offs[offs.length - 1]);
    await writeFile(seg(dir, 1), raw);
    const st = await reopen(dir);
    expect(st.entries.length).toBe(19);
    expect(st.notes.join()).toMatch(/record length 0 is impossible/);
    // A tail of zeros past the records (the file grown, its data lost) is cut off too.
    await appendFile(seg(dir, 1), Buffer.alloc(700));
    expect((await reopen(dir)).entries.length).toBe(19);
  });

  it('a flipped bit in a complete last record is damage, not a torn write', async () => {
    const dir = await tmp();
    await writeLog(dir);
    const offs = await recordOffsets(seg(dir, 1));
    const raw = await readFile(seg(dir, 1));
    const at = raw.length - 5;
    raw[at] = raw[at]! ^ 0x01;
    await writeFile(seg(dir, 1), raw);
    await expectCorrupt(dir, `wal/${segmentName(1)}@${offs[offs.length - 1]!}`, 20, /checksum mismatch.*damage to a complete record, not a write cut by a crash/);
  });

  it('a damaged record in the middle of the log names the directory, the segment and offset, and the first index at stake', async () => {
    const dir = await tmp();
    await writeLog(dir);
    const offs = await recordOffsets(seg(dir, 1));
    const original = await readFile(seg(dir, 1));
    const at = original.indexOf(Buffer.from('cmd-15-t1'));
    const rec = offs.filter((o) => o < at).pop()!;
    // A flipped bit.
    let raw = Buffer.from(original);
    raw[at + 4] = raw[at + 4]! ^ 0x01;
    await writeFile(seg(dir, 1), raw);
    await expectCorrupt(dir, `wal/${segmentName(1)}@${rec}`, 15, /checksum mismatch.*damage to a complete record/);
    // The whole record zeroed, as a lost page would leave it: sound records follow, so it is not a torn tail.
    raw = Buffer.from(original);
    raw.fill(0, rec, offs[offs.indexOf(rec) + 1]);
    await writeFile(seg(dir, 1), raw);
    await expectCorrupt(dir, `wal/${segmentName(1)}@${rec}`, 15, /sound records follow it: damage in the middle of the log/);
  });

  it('damage at the end of a segment that is not the last is refused', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir, { segmentBytesMax: 300 });
    for (let i = 1; i <= 10; i++) await s.save({ snapshot: null, entries: ents(i, i, 1), hardState: { term: 1, vote: null, commit: i - 1 } });
    expect(s.segmentSeqs().length).toBeGreaterThan(2);
    await s.close();
    const size = (await readFile(seg(dir, 1))).length;
    await truncate(seg(dir, 1), size - 3);
    await expectCorrupt(dir, /^wal\/0000000000000001\.log@\d+$/, expect.any(Number), /cut short.*complete and synced before the next one began/);
  });

  it('a missing segment, an unknown file, and a segment under another number are refused', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir, { segmentBytesMax: 300 });
    for (let i = 1; i <= 10; i++) await s.save({ snapshot: null, entries: ents(i, i, 1), hardState: { term: 1, vote: null, commit: i - 1 } });
    expect(s.segmentSeqs().length).toBeGreaterThan(3);
    await s.close();
    await rename(seg(dir, 2), join(dir, 'aside'));
    await expectCorrupt(dir, `wal/${segmentName(2)}`, null, /segment 2 is missing between 1 and 3/);
    await rename(join(dir, 'aside'), seg(dir, 2));
    await writeFile(join(dir, 'wal', 'notes.txt'), 'x');
    await expectCorrupt(dir, 'wal/notes.txt', null, /unknown file in the segment directory/);
    await rename(join(dir, 'wal', 'notes.txt'), join(dir, 'notes.txt'));
    // Segment 2's bytes under number 3: the sequence number is in every record's checksum.
    await writeFile(seg(dir, 3), await readFile(seg(dir, 2)));
    await expectCorrupt(dir, `wal/${segmentName(3)}@0`, expect.any(Number), /checksum mismatch/);
  });

  it('records that contradict each other are refused: a gap, a lost hard state, a commit beyond the log, a falling term', async () => {
    const cases: { recs: Parameters<typeof writeSegment>[2]; key: string; index: unknown; reason: RegExp }[] = [
      { recs: [{ seg: 1, h: { term: 1, vote: null, commit: 0 }, e: ents(1, 3, 1) }, { e: ents(5, 5, 1) }], key: `wal/${segmentName(1)}@`, index: 5, reason: /gap in the log: entry 3 is followed by entry 5/ },
      { recs: [{ seg: 1, h: { term: 1, vote: null, commit: 0 }, e: ents(1, 3, 1) }, { e: ents(4, 4, 5) }], key: 'wal', index: null, reason: /term 1 is below the last entry's term 5/ },
      { recs: [{ seg: 1, h: { term: 1, vote: null, commit: 9 }, e: ents(1, 3, 1) }], key: 'wal', index: null, reason: /commit index 9 is beyond the last entry 3/ },
      { recs: [{ seg: 1, h: { term: 3, vote: null, commit: 0 }, e: ents(1, 3, 3) }, { e: ents(4, 4, 2) }], key: `wal/${segmentName(1)}@`, index: 4, reason: /entry term 2 is below the previous entry's term 3/ },
      { recs: [{ seg: 1, e: ents(1, 3, 1) }], key: 'wal', index: null, reason: /log entries exist but no hard state/ },
      { recs: [{ h: { term: 1, vote: null, commit: 0 } }], key: `wal/${segmentName(1)}@0`, index: null, reason: /does not begin with its header/ },
      { recs: [{ seg: 1, reset: { index: 30, term: 2 }, h: { term: 2, vote: null, commit: 30 } }], key: `wal/${segmentName(1)}@0`, index: 30, reason: /replaced by a snapshot at 30, but the stored snapshot is at 0/ },
      // Sound checksums around a malformed payload: written that way, so never a torn write.
      { recs: [{ seg: 1, h: { term: 1, vote: null, commit: 0 }, e: [{ term: 1, index: 1, type: 'bogus' as 'normal', data: 'x' }] }, { h: { term: 1, vote: null, commit: 0 } }], key: `wal/${segmentName(1)}@0`, index: 1, reason: /entry.type is "bogus".*not a write cut by a crash/ },
    ];
    for (const c of cases) {
      const dir = await tmp();
      await writeSegment(dir, 1, c.recs);
      const err = await expectCorrupt(dir, new RegExp('^' + c.key.replace(/[.]/g, '\\.')), c.index, c.reason);
      expect(err.message).toContain(dir);
    }
  });

  it('a segment directory that cannot be read is a storage error, not damage', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'wal'), 'not a directory');
    const err = await RaftStorage.open(dir).then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'MANATEE_ERR_RAFT_STORAGE', message: expect.stringMatching(new RegExp(`cannot open Raft storage ${dir}: .*ENOTDIR`)) as unknown });
  });

  it('an unknown key or a wrong version in the LevelDB part is refused', async () => {
    const dir = await tmp();
    await writeLog(dir);
    const s = await RaftStorage.open(dir);
    await s.saveSnapshot(snap(5, 1));
    await s.close();
    let db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.put(entryKey(3), encodeRecord(entryKey(3), ents(3, 3, 1)[0]));
    await db.close();
    await expectCorrupt(dir, entryKey(3), null, /unknown key in format 2/);
    db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.del(entryKey(3));
    const v = Buffer.from((await db.get(SNAPSHOT_KEY)));
    v[7] = v[7]! ^ 0x20;
    await db.put(SNAPSHOT_KEY, v);
    await db.close();
    await expectCorrupt(dir, SNAPSHOT_KEY, null, /checksum mismatch/);
  });
});

describe('RaftStorage: a format-1 directory (all in LevelDB) is migrated at open', () => {
  async function writeFormat1(dir: string): Promise<void> {
    const l = await LevelRaftStorage.open(dir);
    await l.load();
    await l.save({ snapshot: null, entries: ents(1, 10, 1), hardState: { term: 1, vote: 'a', commit: 8 } });
    await l.saveSnapshot(snap(4, 1));
    await l.save({ snapshot: null, entries: ents(11, 12, 2), hardState: { term: 2, vote: 'b', commit: 11 } });
    await l.close();
  }

  it('keeps every entry, the hard state and the snapshot, and leaves no entry in LevelDB', async () => {
    const dir = await tmp();
    await writeFormat1(dir);
    const st = await reopen(dir);
    expect(st.notes.join()).toMatch(/converted format 1 \(LevelDB\) to format 2 \(segment files\): 8 entries, snapshot at 4/);
    expect(st.snapshot).toEqual(snap(4, 1));
    expect(st.hardState).toEqual({ term: 2, vote: 'b', commit: 11 });
    expect(st.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['5/1', '6/1', '7/1', '8/1', '9/1', '10/1', '11/2', '12/2']);
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const keys: string[] = [];
    for await (const k of db.keys()) keys.push(k);
    await db.close();
    expect(keys.sort()).toEqual([HARD_STATE_KEY, SNAPSHOT_KEY, FORMAT_KEY].sort());
    // Once migrated, an open changes nothing, and writes go on in the segments.
    const s = await RaftStorage.open(dir);
    expect(s.openNotes).toEqual([]);
    await s.save({ snapshot: null, entries: ents(13, 13, 2), hardState: { term: 2, vote: 'b', commit: 12 } });
    await s.close();
    const again = await reopen(dir);
    expect(again.entries.map((e) => e.index)).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(again.hardState).toEqual({ term: 2, vote: 'b', commit: 12 });
  });

  it('a migration cut by a crash (segments written, format not yet switched) is done again from format 1', async () => {
    const dir = await tmp();
    await writeFormat1(dir);
    // What a crash after the first segment and before the LevelDB batch leaves: a half-written segment.
    await writeSegment(dir, 1, [{ seg: 1, h: { term: 2, vote: 'b', commit: 11 }, e: ents(5, 7, 1) }]);
    await appendFile(seg(dir, 1), Buffer.from([9, 9, 9]));
    const st = await reopen(dir);
    expect(st.entries.map((e) => e.index)).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    expect(st.notes.join()).toMatch(/converted format 1/);
    expect(existsSync(seg(dir, 2))).toBe(false);
  });

  it('a damaged format-1 directory is refused, not migrated', async () => {
    const dir = await tmp();
    await writeFormat1(dir);
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const v = Buffer.from((await db.get(entryKey(7))));
    v[v.length - 3] = v[v.length - 3]! ^ 0x01;
    await db.put(entryKey(7), v);
    await db.close();
    await expectCorrupt(dir, entryKey(7), 7, /checksum mismatch/);
    expect(existsSync(join(dir, 'wal'))).toBe(false);
  });
});
