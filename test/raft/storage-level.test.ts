// Raft storage format 1 (all on LevelDB), read now only to check and migrate an old directory:
// round trips, crash consistency, and refusal to start on damaged records.
import { describe, expect, it } from 'vitest';
import { Level } from 'level';
import { LevelRaftStorage as RaftStorage } from '../../src/raft/storage/index.js';
import { entryKey, HARD_STATE_KEY, SNAPSHOT_KEY } from '../../src/raft/storage/records.js';
import { RaftStorageCorruptError } from '../../src/raft/errors.js';
import { ents, tmp as tmpDir } from './storage-fixtures.js';

const tmp = (): Promise<string> => tmpDir('raft-storage');

async function reopen(dir: string) {
  const s = await RaftStorage.open(dir);
  try {
    return await s.load();
  } finally {
    await s.close();
  }
}

/** Rewrites one raw value behind the storage's back, as a disk fault would. */
async function tamper(dir: string, key: string, f: (v: Buffer) => Buffer | null): Promise<void> {
  const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  await db.open();
  const v = (await db.get(key)) as Buffer | undefined; // undefined when missing (the types of `level` omit it)
  if (v === undefined) throw new Error(`no record ${key}`);
  const nv = f(Buffer.from(v));
  if (nv === null) await db.del(key);
  else await db.put(key, nv);
  await db.close();
}

async function expectCorrupt(dir: string, key: string, index: number | null, reason: RegExp): Promise<RaftStorageCorruptError> {
  const err = await reopen(dir).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(RaftStorageCorruptError);
  const c = err as RaftStorageCorruptError;
  expect(c.code).toBe('MANATEE_ERR_RAFT_STORAGE_CORRUPT');
  expect(c.file).toBe(dir);
  expect(c.key).toBe(key);
  expect(c.index).toBe(index);
  expect(c.message).toContain(dir);
  expect(c.message).toMatch(reason);
  return c;
}

async function writeLog(dir: string): Promise<void> {
  const s = await RaftStorage.open(dir);
  await s.load();
  await s.save({ snapshot: null, entries: ents(1, 10, 1), hardState: { term: 1, vote: 'a', commit: 8 } });
  await s.close();
}

describe('LevelRaftStorage (format 1)', () => {
  it('a fresh directory is empty and loads as nothing', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir);
    expect(await s.isEmpty()).toBe(true);
    expect(await s.load()).toEqual({ hardState: null, snapshot: null, entries: [] });
    await s.close();
  });

  it('round-trips hard state, entries and a snapshot across a reopen', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir);
    await s.load();
    await s.save({ snapshot: null, entries: ents(1, 5, 1), hardState: { term: 1, vote: 'a', commit: 3 } });
    await s.save({ snapshot: null, entries: ents(6, 7, 2), hardState: { term: 2, vote: 'b', commit: 6 } });
    await s.saveSnapshot({ metadata: { index: 4, term: 1, confState: { voters: ['a', 'b', 'c'], learners: ['d'] } }, data: 'state@4' });
    await s.close();
    const st = await reopen(dir);
    expect(st.hardState).toEqual({ term: 2, vote: 'b', commit: 6 });
    expect(st.snapshot).toEqual({ metadata: { index: 4, term: 1, confState: { voters: ['a', 'b', 'c'], learners: ['d'] } }, data: 'state@4' });
    // Entries at or below the snapshot are not handed back; the log resumes right after it.
    expect(st.entries.map((e) => e.index)).toEqual([5, 6, 7]);
    expect(st.entries[2]).toEqual({ term: 2, index: 7, type: 'normal', data: 'cmd-7-t2' });
  });

  it('a conflicting append truncates the old tail (a deposed leader\'s entries disappear)', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir);
    await s.load();
    await s.save({ snapshot: null, entries: ents(1, 10, 1), hardState: { term: 1, vote: null, commit: 2 } });
    await s.save({ snapshot: null, entries: ents(4, 5, 2), hardState: { term: 2, vote: null, commit: 2 } });
    await s.close();
    const st = await reopen(dir);
    expect(st.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['1/1', '2/1', '3/1', '4/2', '5/2']);
  });

  it('a received snapshot replaces the whole log', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir);
    await s.load();
    await s.save({ snapshot: null, entries: ents(1, 5, 1), hardState: { term: 1, vote: null, commit: 5 } });
    const snap = { metadata: { index: 20, term: 3, confState: { voters: ['a'], learners: [] } }, data: 'big' };
    await s.save({ snapshot: snap, entries: ents(21, 22, 3), hardState: { term: 3, vote: null, commit: 20 } });
    expect(s.range()).toEqual({ firstIndex: 21, lastIndex: 22, snapshotIndex: 20 });
    await s.close();
    const st = await reopen(dir);
    expect(st.snapshot).toEqual(snap);
    expect(st.entries.map((e) => e.index)).toEqual([21, 22]);
  });

  it('compaction removes entries up to the bound but never beyond the snapshot', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir);
    await s.load();
    await s.save({ snapshot: null, entries: ents(1, 10, 1), hardState: { term: 1, vote: null, commit: 10 } });
    await s.saveSnapshot({ metadata: { index: 8, term: 1, confState: { voters: ['a'], learners: [] } }, data: 'x' });
    expect(await s.compact(6)).toBe(6);
    expect(s.range().firstIndex).toBe(7);
    expect(await s.compact(100)).toBe(2); // stops at the snapshot (8)
    await s.close();
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const keys: string[] = [];
    for await (const k of db.keys({ gte: 'e', lt: 'f' })) keys.push(k);
    await db.close();
    expect(keys).toEqual([entryKey(9), entryKey(10)]);
    expect((await reopen(dir)).entries.map((e) => e.index)).toEqual([9, 10]);
  });

  it('refuses a write that would leave a gap', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir);
    await s.load();
    await s.save({ snapshot: null, entries: ents(1, 2, 1), hardState: { term: 1, vote: null, commit: 0 } });
    await expect(s.save({ snapshot: null, entries: ents(5, 5, 1), hardState: null })).rejects.toThrow(/gap/);
    await s.close();
  });

  it('refuses entries already covered by the snapshot, and a second bootstrap', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir);
    const snap = { metadata: { index: 5, term: 1, confState: { voters: ['a'], learners: [] } }, data: '' };
    await s.bootstrap(snap, { term: 1, vote: null, commit: 5 });
    await expect(s.save({ snapshot: null, entries: ents(5, 6, 1), hardState: null })).rejects.toThrow(/covered by the snapshot at 5/);
    await expect(s.bootstrap(snap, { term: 1, vote: null, commit: 5 })).rejects.toThrow(/already holds Raft state/);
    await s.close();
    await expect(s.save({ snapshot: null, entries: ents(6, 6, 1), hardState: null })).rejects.toThrow(/closed/);
    expect((await reopen(dir)).snapshot).toEqual(snap);
  });

  it('a process killed after a synced save finds that save on restart (crash consistency)', async () => {
    const dir = await tmp();
    // A child process writes and is killed with SIGKILL right after its synced batch resolved.
    const { execa } = await import('execa');
    const script = `
      import { LevelRaftStorage as RaftStorage } from ${JSON.stringify(new URL('../../src/raft/storage/index.ts', import.meta.url).pathname)};
      const s = await RaftStorage.open(process.argv[1]);
      await s.load();
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
  });
});

describe('LevelRaftStorage (format 1) refuses damaged records at start-up', () => {
  it('a flipped byte in an entry names the directory and the index', async () => {
    const dir = await tmp();
    await writeLog(dir);
    await tamper(dir, entryKey(5), (v) => {
      const i = v.length - 3;
      v[i] = v[i]! ^ 0x01;
      return v;
    });
    await expectCorrupt(dir, entryKey(5), 5, /checksum mismatch/);
  });

  it('a truncated entry record is refused', async () => {
    const dir = await tmp();
    await writeLog(dir);
    await tamper(dir, entryKey(7), (v) => v.subarray(0, v.length - 5));
    await expectCorrupt(dir, entryKey(7), 7, /checksum mismatch/);
  });

  it('a record cut below its checksum is refused', async () => {
    const dir = await tmp();
    await writeLog(dir);
    await tamper(dir, entryKey(2), (v) => v.subarray(0, 2));
    await expectCorrupt(dir, entryKey(2), 2, /truncated/);
  });

  it('a damaged hard state is refused', async () => {
    const dir = await tmp();
    await writeLog(dir);
    await tamper(dir, HARD_STATE_KEY, (v) => {
      v[5] = v[5]! ^ 0x40;
      return v;
    });
    await expectCorrupt(dir, HARD_STATE_KEY, null, /checksum/);
  });

  it('a damaged snapshot is refused', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir);
    await s.load();
    await s.save({ snapshot: null, entries: ents(1, 3, 1), hardState: { term: 1, vote: null, commit: 3 } });
    await s.saveSnapshot({ metadata: { index: 3, term: 1, confState: { voters: ['a'], learners: [] } }, data: 'hello' });
    await s.close();
    await tamper(dir, SNAPSHOT_KEY, (v) => Buffer.concat([v, Buffer.from('!')]));
    await expectCorrupt(dir, SNAPSHOT_KEY, null, /checksum/);
  });

  it('a missing entry in the middle of the log is a gap', async () => {
    const dir = await tmp();
    await writeLog(dir);
    await tamper(dir, entryKey(4), () => null);
    await expectCorrupt(dir, entryKey(5), 5, /gap in the log: entry 3 is followed by entry 5/);
  });

  it('a record moved under another key is refused (the key is in the checksum)', async () => {
    const dir = await tmp();
    await writeLog(dir);
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    const v3 = await db.get(entryKey(3));
    await db.put(entryKey(4), v3);
    await db.close();
    await expectCorrupt(dir, entryKey(4), 4, /checksum mismatch/);
  });

  it('a lost hard state write (term below the log\'s) is refused', async () => {
    const dir = await tmp();
    await writeLog(dir);
    const s = await RaftStorage.open(dir);
    await s.load();
    await s.save({ snapshot: null, entries: ents(11, 11, 5), hardState: { term: 5, vote: null, commit: 8 } });
    await s.close();
    // Put back an older hard state, as if the newest write had been lost.
    const { encodeRecord } = await import('../../src/raft/storage/records.js');
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.put(HARD_STATE_KEY, encodeRecord(HARD_STATE_KEY, { term: 1, vote: 'a', commit: 8 }));
    await db.close();
    await expectCorrupt(dir, HARD_STATE_KEY, null, /term 1 is below the last entry's term 5/);
  });

  it('a commit index beyond the log is refused', async () => {
    const dir = await tmp();
    await writeLog(dir);
    const { encodeRecord } = await import('../../src/raft/storage/records.js');
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.put(HARD_STATE_KEY, encodeRecord(HARD_STATE_KEY, { term: 1, vote: 'a', commit: 99 }));
    await db.close();
    await expectCorrupt(dir, HARD_STATE_KEY, null, /commit index 99 is beyond the last entry 10/);
  });

  it('a record with a valid checksum but a malformed shape is refused', async () => {
    const dir = await tmp();
    await writeLog(dir);
    const { encodeRecord } = await import('../../src/raft/storage/records.js');
    const db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.put(entryKey(6), encodeRecord(entryKey(6), { term: 1, index: 6, type: 'bogus', data: 'x' }));
    await db.close();
    await expectCorrupt(dir, entryKey(6), 6, /entry.type/);
  });

  it('a flipped byte in LevelDB\'s own write-ahead log file is found, named, and refused on every later start', async () => {
    const dir = await tmp();
    await writeLog(dir); // entries 1..10, one synced batch
    const s = await RaftStorage.open(dir);
    await s.load();
    for (let i = 11; i <= 20; i++) await s.save({ snapshot: null, entries: ents(i, i, 1), hardState: { term: 1, vote: 'a', commit: i - 1 } });
    await s.close();
    const { readdir, readFile, writeFile } = await import('node:fs/promises');
    const logFile = (await readdir(dir)).find((f) => f.endsWith('.log'))!;
    const raw = await readFile(`${dir}/${logFile}`);
    const at = raw.indexOf(Buffer.from('cmd-15-t1'));
    expect(at).toBeGreaterThan(0);
    raw[at + 4] = raw[at + 4]! ^ 0x01;
    await writeFile(`${dir}/${logFile}`, raw);
    // LevelDB alone would drop records 15..20 silently and carry on; the storage refuses.
    const err = await RaftStorage.open(dir).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(RaftStorageCorruptError);
    const c = err as RaftStorageCorruptError;
    expect(c.file).toBe(dir);
    expect(c.key).toBe(logFile);
    expect(c.index).toBe(15);
    expect(c.message).toMatch(/dropped damaged records/);
    // LevelDB deleted the damaged log during that recovery; the refusal must still hold next time.
    const again = await RaftStorage.open(dir).then(() => null, (e: unknown) => e);
    expect(again).toBeInstanceOf(RaftStorageCorruptError);
    expect((again as Error).message).toContain('index 15');
    expect((again as Error).message).toContain(logFile);
  });

  it('a flipped byte in a LevelDB table file is refused', async () => {
    const dir = await tmp();
    const s = await RaftStorage.open(dir);
    await s.load();
    await s.save({ snapshot: null, entries: ents(1, 200, 1), hardState: { term: 1, vote: 'a', commit: 150 } });
    await s.close();
    // A reopen turns the write-ahead log into a table (.ldb) file.
    await reopen(dir);
    const { readdir, readFile, writeFile } = await import('node:fs/promises');
    const table = (await readdir(dir)).find((f) => f.endsWith('.ldb'));
    expect(table).toBeDefined();
    const raw = await readFile(`${dir}/${table!}`);
    const mid = Math.floor(raw.length / 3);
    raw[mid] = raw[mid]! ^ 0xff;
    await writeFile(`${dir}/${table!}`, raw);
    const err = await reopen(dir).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(RaftStorageCorruptError);
    expect((err as Error).message).toContain(dir);
  });

  it('an unknown key or a wrong format version is refused', async () => {
    const { encodeRecord } = await import('../../src/raft/storage/records.js');
    const dir = await tmp();
    await writeLog(dir);
    let db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.put('zzz', encodeRecord('zzz', 1));
    await db.close();
    await expectCorrupt(dir, 'zzz', null, /unknown key/);
    db = new Level<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
    await db.del('zzz');
    await db.put('v', encodeRecord('v', 99));
    await db.close();
    await expectCorrupt(dir, 'v', null, /format version is 99/);
  });
});
