// A real ZFS pool for tests: starts zfs-fuse if needed (and leaves it running, other test runs
// share it), creates a file-backed pool with a unique name in a temporary directory, and
// destroys the pool and its file afterwards even when the test failed.
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { makeTmpDir } from './tmp.js';

export interface TestPool {
  /** Pool name, e.g. "mt12345ab12" (also the root dataset). */
  readonly name: string;
  /** Where the pool's root dataset is mounted. */
  readonly mountpoint: string;
  /** A directory next to the pool for the test's other files. */
  readonly dir: string;
  destroy(): Promise<void>;
}

/** Kernel-unmounts every zfs-fuse mount of a pool, deepest first, retrying "busy" for up to ~30 s. */
async function unmountPoolMounts(pool: string): Promise<void> {
  const mounts = (await readFile('/proc/mounts', 'utf8'))
    .split('\n')
    .map((l) => l.split(' '))
    .filter(([src, , fstype]) => fstype === 'fuse.zfs' && src !== undefined && (src === pool || src.startsWith(`${pool}/`)))
    .map(([, target]) => target!)
    .sort((a, b) => b.length - a.length);
  for (const target of mounts) {
    for (let attempt = 1; attempt <= 30; attempt++) {
      const r = await execa('umount', [target], { reject: false, timeout: 60_000 });
      if (!r.failed || !/busy/.test(r.stderr)) break;
      await new Promise((res) => setTimeout(res, 1000));
    }
  }
}

const daemonScript = fileURLToPath(new URL('../../tools/zfs-daemon.sh', import.meta.url));

export async function ensureZfsDaemon(): Promise<void> {
  await execa('bash', [daemonScript], { timeout: 30_000 });
}

/** Creates a pool of `sizeMb` on a sparse file. zfs-fuse keeps a large reserve: a 64 MB pool holds ~27 MB. */
export async function createTestPool(opts: { sizeMb?: number; prefix?: string } = {}): Promise<TestPool> {
  await ensureZfsDaemon();
  const tmp = await makeTmpDir(opts.prefix ?? 'zfs');
  const name = `mt${process.pid}${randomBytes(3).toString('hex')}`;
  const file = join(tmp.path, 'pool.img');
  const mountpoint = join(tmp.path, 'mnt');
  await execa('truncate', ['-s', `${opts.sizeMb ?? 512}M`, file]);
  try {
    await execa('zpool', ['create', '-m', mountpoint, name, file], { timeout: 60_000 });
  } catch (err) {
    await tmp.cleanup();
    throw err;
  }
  let destroyed = false;
  return {
    name,
    mountpoint,
    dir: tmp.path,
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      // -f: a test that failed may have left a mount busy (e.g. a PostgreSQL it did not stop).
      // Unmount with the kernel's umount first: a failed `zfs unmount` (what `zpool destroy`
      // does) on a busy mount makes zfs-fuse hold the dataset until it restarts, while a failed
      // umount is harmless and can be retried until the last user (a PostgreSQL) has gone.
      await unmountPoolMounts(name);
      // A mount can stay busy for a moment after the last process left it (zfs-fuse): retry.
      let lastErr = '';
      for (let attempt = 1; attempt <= 10; attempt++) {
        const r = await execa('zpool', ['destroy', '-f', name], { reject: false, timeout: 60_000 });
        if (!r.failed || /no such pool/.test(r.stderr)) {
          lastErr = '';
          break;
        }
        lastErr = r.stderr;
        await new Promise((res) => setTimeout(res, 500 * attempt));
      }
      if (lastErr !== '') {
        // zfs-fuse sometimes reports a pool busy although nothing uses it; mounting its datasets
        // and unmounting them with the kernel's umount clears that (seen on this machine).
        const list = await execa('zfs', ['list', '-H', '-o', 'name', '-r', name], { reject: false });
        for (const ds of list.stdout.split('\n').filter((d) => d !== '')) {
          await execa('zfs', ['mount', ds], { reject: false, timeout: 60_000 });
        }
        await unmountPoolMounts(name);
        const again = await execa('zpool', ['destroy', '-f', name], { reject: false, timeout: 60_000 });
        if (!again.failed) lastErr = '';
      }
      if (lastErr !== '') {
        // zfs-fuse can keep a dataset held for ever (e.g. after a failed unmount): a forced
        // export still detaches the pool from the shared daemon, so its file can go.
        const exp = await execa('zpool', ['export', '-f', name], { reject: false, timeout: 60_000 });
        if (exp.failed) throw new Error(`could not destroy test pool ${name} (its file is kept at ${file}): ${lastErr}`);
      }
      await tmp.cleanup();
    },
  };
}
