// The zfs room against a real zfs-fuse pool: datasets, properties, snapshots, isolation,
// send/receive, and the typed errors (not found, bad names, full pool).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { silentLogger } from '../../src/log.js';
import {
  Zfs,
  ZfsBadNameError,
  ZfsCommandError,
  ZfsNoSpaceError,
  ZfsPermissionError,
  classifyZfsFailure,
  ZfsNotFoundError,
  ZfsStreamInterruptedError,
  validateDatasetName,
  validateSnapshotName,
  snapshotShortName,
} from '../../src/zfs/index.js';
import { createTestPool, ZFS_HOOK_TIMEOUT_MS, type TestPool } from '../../tools/lib/zfs-pool.js';
import { prepareZfsStorage } from '../../src/peer/storage.js';

let pool: TestPool;
let zfs: Zfs;

beforeAll(async () => {
  pool = await createTestPool({ sizeMb: 256 });
  zfs = new Zfs({ log: silentLogger() });
}, ZFS_HOOK_TIMEOUT_MS);
afterAll(async () => {
  await pool.destroy();
});

describe('names', () => {
  it('rejects shell metacharacters with MANATEE_ERR_ZFS_BAD_NAME naming the name and the rule', () => {
    for (const bad of ['pool/a;rm -rf /', 'pool/$(id)', 'pool/a b', 'pool/a|b', 'pool//a', '/pool/a', 'pool/../a', 'pool/-a', '', '1pool/a']) {
      let caught: unknown;
      try {
        validateDatasetName(bad);
      } catch (err) {
        caught = err;
      }
      expect(caught, bad).toBeInstanceOf(ZfsBadNameError);
      expect((caught as ZfsBadNameError).code).toBe('MANATEE_ERR_ZFS_BAD_NAME');
      expect((caught as ZfsBadNameError).message).toContain(JSON.stringify(bad));
      expect((caught as ZfsBadNameError).rule.length).toBeGreaterThan(5);
    }
    expect(validateDatasetName('pool/manatee/a_1-b.c:d')).toBe('pool/manatee/a_1-b.c:d');
    expect(() => validateSnapshotName('pool/a')).toThrow(ZfsBadNameError);
    expect(() => validateSnapshotName('pool/a@x@y')).toThrow(ZfsBadNameError);
    expect(() => validateSnapshotName('pool/a@`id`')).toThrow(ZfsBadNameError);
    expect(snapshotShortName(1700000000000)).toBe('1700000000000');
    expect(() => snapshotShortName(12)).toThrow(ZfsBadNameError);
  });

  it('refuses a bad name before running zfs (no dataset is created)', async () => {
    await expect(zfs.createDataset(`${pool.name}/a;touch ${pool.dir}/pwned`)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_BAD_NAME' });
    await expect(readFile(join(pool.dir, 'pwned'))).rejects.toThrow();
    await expect(zfs.listChildren(pool.name)).resolves.toEqual([]);
  });
});

describe('datasets and properties', () => {
  it('creates with a mountpoint, reports existence, lists children, sets and gets properties, unmounts, mounts, destroys', async () => {
    const ds = `${pool.name}/data`;
    const mp = join(pool.dir, 'data-mnt');
    expect(await zfs.exists(ds)).toBe(false);
    await zfs.createDataset(ds, { mountpoint: mp, properties: { atime: 'off' } });
    expect(await zfs.exists(ds)).toBe(true);
    expect(await zfs.getProperty(ds, 'mountpoint')).toBe(mp);
    expect(await zfs.getProperty(ds, 'atime')).toBe('off');
    expect(await zfs.isMounted(ds)).toBe(true);
    await writeFile(join(mp, 'f'), 'hello');
    await zfs.setProperty(ds, 'manatee:role', 'primary');
    expect(await zfs.getProperty(ds, 'manatee:role')).toBe('primary');
    expect(await zfs.getBytes(ds, 'used')).toBeGreaterThan(0);
    await zfs.createDataset(`${ds}/child`);
    expect(await zfs.listChildren(ds)).toEqual([`${ds}/child`]);
    await zfs.unmount(`${ds}/child`);
    await zfs.unmount(ds);
    expect(await zfs.isMounted(ds)).toBe(false);
    await zfs.mount(ds);
    expect(await readFile(join(mp, 'f'), 'utf8')).toBe('hello');
    await expect(zfs.destroy(ds)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_COMMAND' }); // has children
    await zfs.destroy(ds, { recursive: true });
    expect(await zfs.exists(ds)).toBe(false);
  });

  it('turns a missing dataset into MANATEE_ERR_ZFS_NOT_FOUND with the stderr', async () => {
    const missing = `${pool.name}/nope`;
    const err = await zfs.getProperty(missing, 'used').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZfsNotFoundError);
    expect((err as ZfsNotFoundError).code).toBe('MANATEE_ERR_ZFS_NOT_FOUND');
    expect((err as ZfsNotFoundError).stderr).toMatch(/does not exist/);
    await expect(zfs.createSnapshot(missing)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_NOT_FOUND' });
    await expect(zfs.destroy(missing)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_NOT_FOUND' });
    await expect(zfs.createDataset(`${pool.name}/no/parent`)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_NOT_FOUND' });
  });

  it('reports an already existing dataset as MANATEE_ERR_ZFS_EXISTS', async () => {
    const ds = `${pool.name}/twice`;
    await zfs.createDataset(ds);
    await expect(zfs.createDataset(ds)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_EXISTS' });
    await zfs.destroy(ds);
  });
});

describe('snapshots, rollback, send and receive', () => {
  it('names snapshots by 13-digit epoch ms, lists them sorted, finds the newest, rolls back, destroys', async () => {
    const ds = `${pool.name}/snaps`;
    const mp = join(pool.dir, 'snaps-mnt');
    await zfs.createDataset(ds, { mountpoint: mp });
    await writeFile(join(mp, 'v'), '1');
    const s1 = await zfs.createSnapshot(ds, 1_700_000_000_000);
    await writeFile(join(mp, 'v'), '2');
    // Same millisecond again: the name still increases.
    const s2 = await zfs.createSnapshot(ds, 1_700_000_000_000);
    const s3 = await zfs.createSnapshot(ds);
    expect(s1.name).toBe(`${ds}@1700000000000`);
    expect(s2.short).toBe('1700000000001');
    expect(s3.short).toMatch(/^\d{13}$/);
    // A snapshot not named by Manatee is ignored.
    await zfs.cmd.run(['snapshot', `${ds}@manual`]);
    const list = await zfs.listSnapshots(ds);
    expect(list.map((s) => s.short)).toEqual([s1.short, s2.short, s3.short]);
    expect((await zfs.newestSnapshot(ds))?.name).toBe(s3.name);
    await zfs.rollback(s1.name, { destroyLater: true });
    expect(await readFile(join(mp, 'v'), 'utf8')).toBe('1');
    expect((await zfs.listSnapshots(ds)).map((s) => s.name)).toEqual([s1.name]);
    await zfs.destroySnapshot(s1.name);
    expect(await zfs.newestSnapshot(ds)).toBeNull();
    await zfs.destroy(ds, { recursive: true });
  });

  it('sends full and incremental streams and receives them; the increment is much smaller', async () => {
    const src = `${pool.name}/src`;
    const dst = `${pool.name}/dst`;
    const mp = join(pool.dir, 'src-mnt');
    await zfs.createDataset(src, { mountpoint: mp });
    await writeFile(join(mp, 'big'), Buffer.alloc(2 * 1024 * 1024, 7));
    const a = await zfs.createSnapshot(src);
    expect(await zfs.estimateSendBytes(a.name)).toBeGreaterThan(2 * 1024 * 1024);
    const full = zfs.send(a.name);
    let fullBytes = 0;
    full.stdout.on('data', (c: Buffer) => (fullBytes += c.length));
    await Promise.all([zfs.receive(dst, full.stdout), full.done]);
    expect(fullBytes).toBeGreaterThan(2 * 1024 * 1024);
    expect((await zfs.listSnapshots(dst)).map((s) => s.short)).toEqual([a.short]);
    await writeFile(join(mp, 'small'), 'increment');
    const b = await zfs.createSnapshot(src);
    const inc = zfs.send(b.name, { fromSnapshot: a.name });
    let incBytes = 0;
    inc.stdout.on('data', (c: Buffer) => (incBytes += c.length));
    await Promise.all([zfs.receive(dst, inc.stdout, { force: true }), inc.done]);
    expect(incBytes).toBeLessThan(fullBytes / 10);
    const dstMp = await zfs.getProperty(dst, 'mountpoint');
    expect(await readFile(join(dstMp, 'small'), 'utf8')).toBe('increment');
    await zfs.destroy(dst, { recursive: true });
    await zfs.destroy(src, { recursive: true });
  });

  it('a corrupt stream fails with a typed error and leaves no dataset behind', async () => {
    const dst = `${pool.name}/corrupt`;
    const garbage = Readable.from([Buffer.alloc(64 * 1024, 0x41)]);
    await expect(zfs.receive(dst, garbage)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_COMMAND', message: expect.stringMatching(/invalid stream|bad magic/) });
    expect(await zfs.exists(dst)).toBe(false);
  });

  it('an interrupted stream fails with MANATEE_ERR_ZFS_STREAM_INTERRUPTED and leaves no dataset behind', async () => {
    const src = `${pool.name}/isrc`;
    const mp = join(pool.dir, 'isrc-mnt');
    await zfs.createDataset(src, { mountpoint: mp });
    await writeFile(join(mp, 'big'), Buffer.alloc(4 * 1024 * 1024, 9));
    const s = await zfs.createSnapshot(src);
    const send = zfs.send(s.name);
    let seen = 0;
    // A stream that breaks off after ~1 MB, as a cut network connection would.
    const broken = new Readable({ read() {} });
    send.stdout.on('data', (c: Buffer) => {
      seen += c.length;
      if (seen > 1024 * 1024) {
        send.abort();
        broken.destroy(new Error('connection reset by test'));
      } else broken.push(c);
    });
    const dst = `${pool.name}/idst`;
    const err = await zfs.receive(dst, broken).catch((e: unknown) => e);
    await send.done.catch(() => undefined);
    expect(err).toBeInstanceOf(ZfsStreamInterruptedError);
    expect((err as Error).message).toMatch(/connection reset by test/);
    expect(await zfs.exists(dst)).toBe(false);
    await zfs.destroy(src, { recursive: true });
  });
});

describe('isolation', () => {
  it('moves a dataset aside under <parent>/isolated/<reason>-<ms> and puts it back with its mountpoint', async () => {
    const parent = `${pool.name}/manatee`;
    await zfs.createDataset(parent);
    const ds = `${parent}/pg`;
    const mp = join(pool.dir, 'pg-mnt');
    await zfs.createDataset(ds, { mountpoint: mp });
    await writeFile(join(mp, 'keep'), 'precious');
    await zfs.createSnapshot(ds);
    const isolated = await zfs.isolate(ds, 'rebuild', 1_700_000_000_123);
    expect(isolated).toBe(`${parent}/isolated/rebuild-1700000000123`);
    expect(await zfs.exists(ds)).toBe(false);
    expect(await zfs.listIsolated(parent)).toEqual([isolated]);
    expect(await zfs.isMounted(isolated)).toBe(false);
    // The mountpoint is free for a new dataset meanwhile.
    await zfs.createDataset(ds, { mountpoint: mp });
    await zfs.destroy(ds);
    await zfs.unisolate(isolated, ds);
    expect(await zfs.getProperty(ds, 'mountpoint')).toBe(mp);
    expect(await readFile(join(mp, 'keep'), 'utf8')).toBe('precious');
    expect((await zfs.listSnapshots(ds)).length).toBe(1);
    expect(await zfs.listIsolated(parent)).toEqual([]);
    await expect(zfs.isolate(ds, 'Bad Reason;')).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_BAD_NAME' });
    await expect(zfs.isolate(pool.name, 'rebuild')).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_BAD_NAME' });
    await zfs.destroy(parent, { recursive: true });
  });

  it('an isolation whose move aside fails leaves the dataset as it was: its mountpoint back, mounted, its data there', async () => {
    const parent = `${pool.name}/half`;
    await zfs.createDataset(parent);
    const ds = `${parent}/pg`;
    const mp = join(pool.dir, 'half-mnt');
    await zfs.createDataset(ds, { mountpoint: mp });
    await writeFile(join(mp, 'keep'), 'precious');
    // The place it would move to is taken: the rename fails after the dataset was unmounted.
    await zfs.createDataset(`${parent}/isolated`, { mountpoint: 'none' });
    await zfs.createDataset(`${parent}/isolated/rebuild-1700000000999`, { mountpoint: 'none' });
    await expect(zfs.isolate(ds, 'rebuild', 1_700_000_000_999)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_EXISTS' });
    expect(await zfs.getProperty(ds, 'mountpoint')).toBe(mp);
    expect(await zfs.getProperty(ds, 'manatee:mountpoint')).toBe('-');
    expect(await zfs.isMounted(ds)).toBe(true);
    expect(await readFile(join(mp, 'keep'), 'utf8')).toBe('precious');
    await zfs.destroy(parent, { recursive: true });
  });

  it('repairs a dataset that an unfinished isolation left with mountpoint=none (a sitter killed in between)', async () => {
    const ds = `${pool.name}/repair`;
    const mp = join(pool.dir, 'repair-mnt');
    await zfs.createDataset(ds, { mountpoint: mp });
    await writeFile(join(mp, 'keep'), 'precious');
    expect(await zfs.repairHalfIsolated(ds)).toBe(false);
    // What isolate() does before the move: remember the mountpoint, unmount, mountpoint=none.
    await zfs.setProperty(ds, 'manatee:mountpoint', mp);
    await zfs.unmount(ds);
    await zfs.setProperty(ds, 'mountpoint', 'none');
    await expect(zfs.mount(ds)).rejects.toThrow(/no mountpoint set/);
    expect(await zfs.repairHalfIsolated(ds)).toBe(true);
    expect(await zfs.getProperty(ds, 'mountpoint')).toBe(mp);
    expect(await zfs.getProperty(ds, 'manatee:mountpoint')).toBe('-');
    expect(await zfs.isMounted(ds)).toBe(true);
    expect(await readFile(join(mp, 'keep'), 'utf8')).toBe('precious');
    expect(await zfs.repairHalfIsolated(ds)).toBe(false);
    // The sitter's storage preparation (before initdb, a start or a rebuild) does the same.
    await zfs.setProperty(ds, 'manatee:mountpoint', mp);
    await zfs.unmount(ds);
    await zfs.setProperty(ds, 'mountpoint', 'none');
    await prepareZfsStorage({ zfs, dataset: ds, pgDataDir: mp, pgUser: 'postgres', log: silentLogger() });
    expect(await zfs.getProperty(ds, 'mountpoint')).toBe(mp);
    expect(await zfs.isMounted(ds)).toBe(true);
    await zfs.destroy(ds, { recursive: true });
  });

  it('isolates a dataset with an inherited mountpoint and restores the inheritance', async () => {
    const ds = `${pool.name}/inh`;
    await zfs.createDataset(ds);
    const mp = await zfs.getProperty(ds, 'mountpoint');
    const isolated = await zfs.isolate(ds, 'bootstrap');
    await zfs.unisolate(isolated, ds);
    expect(await zfs.getProperty(ds, 'mountpoint')).toBe(mp);
    expect(await zfs.isMounted(ds)).toBe(true);
    await zfs.destroy(ds, { recursive: true });
  });
});

describe('typed errors from the command', () => {
  it('classifies stderr: no space, permission, not found, busy, exists, other', () => {
    const c = (stderr: string): string => classifyZfsFailure(['x'], stderr, 1).code;
    expect(c("cannot create snapshot 'p/d@1': out of space")).toBe('MANATEE_ERR_ZFS_NO_SPACE');
    expect(c('connect: Permission denied\ninternal error: failed to initialize ZFS library')).toBe('MANATEE_ERR_ZFS_PERMISSION');
    expect(c("cannot open 'p/a': dataset does not exist")).toBe('MANATEE_ERR_ZFS_NOT_FOUND');
    expect(c("cannot rename 'p/a': dataset is busy")).toBe('MANATEE_ERR_ZFS_BUSY');
    expect(c("cannot create 'p/a': dataset already exists")).toBe('MANATEE_ERR_ZFS_EXISTS');
    const other = classifyZfsFailure(['send', 'p/a@1'], 'cannot receive: invalid stream (bad magic number)', 1);
    expect(other).toBeInstanceOf(ZfsCommandError);
    expect(other.message).toMatch(/zfs send p\/a@1 failed \(exit 1\): cannot receive: invalid stream/);
    expect(other.stderr).toMatch(/bad magic/);
  });

  // No test of a busy unmount on a real mount: on zfs-fuse 0.7 a dataset whose unmount met a
  // busy mount is sometimes left held by the daemon ("dataset is busy" until it restarts, and
  // its pool cannot be destroyed), which would leak pools in the daemon shared by every test
  // run. The classification of "busy" is checked on stderr above.

  it('zfs run without privileges gives MANATEE_ERR_ZFS_PERMISSION', async () => {
    // The same zfs command, run as the unprivileged postgres user.
    const wrapper = join(pool.dir, 'zfs-as-postgres');
    await writeFile(wrapper, '#!/bin/sh\nexec runuser -u postgres -- zfs "$@"\n', { mode: 0o755 });
    const unprivileged = new Zfs({ log: silentLogger(), zfsPath: wrapper });
    const err = await unprivileged.createSnapshot(pool.name).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZfsPermissionError);
    expect((err as ZfsPermissionError).code).toBe('MANATEE_ERR_ZFS_PERMISSION');
  });

  it('a missing zfs binary gives MANATEE_ERR_ZFS_COMMAND naming the path', async () => {
    const missing = new Zfs({ log: silentLogger(), zfsPath: '/nonexistent/bin/zfs' });
    await expect(missing.exists(pool.name)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_COMMAND', message: expect.stringMatching(/\/nonexistent\/bin\/zfs: not found/) });
  });
});

describe('a full pool', () => {
  it('gives MANATEE_ERR_ZFS_NO_SPACE and existing data stays intact', async () => {
    const small = await createTestPool({ sizeMb: 64, prefix: 'zfsfull' });
    try {
      const ds = `${small.name}/d`;
      const mp = join(small.dir, 'd-mnt');
      await zfs.createDataset(ds, { mountpoint: mp });
      await writeFile(join(mp, 'existing'), 'still here');
      await zfs.createSnapshot(ds);
      // Fill the pool until the file system refuses more.
      const chunk = Buffer.alloc(1024 * 1024, 1);
      const { open } = await import('node:fs/promises');
      const fh = await open(join(mp, 'filler'), 'w');
      let fillErr: unknown = null;
      try {
        for (let i = 0; i < 200; i++) await fh.write(chunk);
      } catch (err) {
        fillErr = err;
      } finally {
        await fh.close().catch(() => undefined);
      }
      expect((fillErr as NodeJS.ErrnoException | null)?.code).toBe('ENOSPC');
      const err = await zfs.createDataset(`${small.name}/more`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ZfsNoSpaceError);
      expect((err as ZfsNoSpaceError).code).toBe('MANATEE_ERR_ZFS_NO_SPACE');
      await expect(zfs.createSnapshot(ds)).rejects.toMatchObject({ code: 'MANATEE_ERR_ZFS_NO_SPACE' });
      expect(await readFile(join(mp, 'existing'), 'utf8')).toBe('still here');
      expect((await zfs.listSnapshots(ds)).length).toBe(1);
    } finally {
      await small.destroy();
    }
  });
});
