// A real ZFS pool for tests: creates a file-backed pool with a unique name in a temporary
// directory, and destroys the pool and its file afterwards even when the test failed.
//
// zfs-fuse is one userspace daemon for the whole machine and it is fragile under concurrent use
// (seen here: mounts that never answer, pools left "busy", a dead daemon). So:
// - a pool is only ever used under a machine-wide lock (ZFS_LOCK_PATH, holder's pid and process
//   start time inside, stale when that process is gone): one test file uses zfs at a time, across
//   vitest workers and across concurrent test runs. The lock is reentrant within a process (a test
//   file may create a second pool while holding its first) and released when its last pool goes;
// - before a pool is created, the lock holder checks the daemon answers (`zpool list`, bounded);
//   a daemon that does not answer is killed and restarted (safe: nobody else uses zfs now), and
//   pools left by crashed runs (this fixture's naming, creator process gone) are removed;
// - every command is bounded by a timeout (and by a timer that does not wait for a child stuck
//   in the kernel), no synchronous fs call touches a zfs mount, and teardown ends with `umount -l`
//   of whatever is still mounted, logging what was left instead of hanging.
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { readFile, rename, unlink, link, writeFile, rm, stat } from 'node:fs/promises';
import { unlinkSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { makeTmpDir } from './tmp.js';

export interface TestPool {
  /** Pool name, e.g. "mt12345ab12cd" (also the root dataset): "mt", creator pid, 6 hex digits. */
  readonly name: string;
  /** Where the pool's root dataset is mounted. */
  readonly mountpoint: string;
  /** A directory next to the pool for the test's other files. */
  readonly dir: string;
  destroy(): Promise<void>;
}

/** Machine-wide lock: one file, created atomically with link(2); content "<pid> <starttime>\n". */
export const ZFS_LOCK_PATH = join(tmpdir(), 'manatee-zfs-test.lock');
/** Waiting for the lock: zfs test files run one after another, the longest takes a few minutes. */
const LOCK_WAIT_MS = 25 * 60_000;
const LOCK_POLL_MS = 500;
/** For the beforeAll that creates a pool: it may wait for the lock (vitest's default is shorter). */
export const ZFS_HOOK_TIMEOUT_MS = LOCK_WAIT_MS + 5 * 60_000;
/** destroy() gives up (and detaches what is left) after this: it runs in a 180 s afterAll. */
const DESTROY_BUDGET_MS = 100_000;
/** `zpool list` on a healthy daemon answers in well under a second even on a loaded machine. */
const HEALTH_TIMEOUT_MS = 20_000;
const CMD_TIMEOUT_MS = 60_000;
/** This fixture's pool names: mt<pid><6 hex>. Only such pools are ever cleaned up as leftovers. */
const POOL_NAME_RE = /^mt(\d+)[0-9a-f]{6}$/;

const daemonScript = fileURLToPath(new URL('../../tools/zfs-daemon.sh', import.meta.url));

function warn(msg: string): void {
  process.stderr.write(`[zfs fixture ${process.pid}] ${msg}\n`);
}

interface RunResult {
  readonly failed: boolean;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command with a timeout. execa kills the child at the timeout; the extra timer makes
 * sure we move on even when the child cannot die (stuck in the kernel on a hung fuse mount).
 */
async function run(cmd: string, args: readonly string[], timeoutMs = CMD_TIMEOUT_MS): Promise<RunResult> {
  const child = execa(cmd, args, { reject: false, timeout: timeoutMs, forceKillAfterDelay: 2000, stdin: 'ignore' });
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<RunResult>((res) => {
    timer = setTimeout(() => {
      res({ failed: true, timedOut: true, stdout: '', stderr: `${cmd} ${args.join(' ')}: still running ${timeoutMs + 5000} ms after it started` });
    }, timeoutMs + 5000);
    timer.unref();
  });
  try {
    return await Promise.race([
      child.then((r) => ({
        failed: r.failed,
        timedOut: r.timedOut,
        stdout: typeof r.stdout === 'string' ? r.stdout : '',
        stderr: typeof r.stderr === 'string' ? r.stderr : (r.failed ? String(r.message) : ''),
      })),
      stuck,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Bounds a promise (fs calls near a possibly hung mount): resolves to `fallback` after timeoutMs. */
async function bounded<T>(p: Promise<T>, timeoutMs: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((res) => { timer = setTimeout(() => { res(fallback); }, timeoutMs); timer.unref(); })]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

// ---------------------------------------------------------------------------------------------
// Machine-wide lock

/** A process's start time (field 22 of /proc/<pid>/stat), or null when it does not exist. */
async function processStartTime(pid: number): Promise<string | null> {
  try {
    const s = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields after the last ')'.
    const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether the lock content names a process that still runs (same pid and same start time). */
async function holderAlive(content: string): Promise<boolean> {
  const [pidText, start] = content.trim().split(' ');
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const now = await processStartTime(pid);
  return now !== null && (start === undefined || now === start);
}

let lockDepth = 0;
let lockAcquiring: Promise<void> | null = null;

function unlinkOwnLockAtExit(): void {
  // A worker that exits while holding the lock (a test file that never destroyed its pool) frees
  // it right away; a crash is covered by the stale check. /tmp is not a zfs mount: sync is fine.
  if (lockDepth > 0) {
    try {
      unlinkSync(ZFS_LOCK_PATH);
    } catch {
      // already gone
    }
  }
}
process.once('exit', unlinkOwnLockAtExit);

async function tryTakeLock(): Promise<{ taken: true } | { taken: false; holder: string }> {
  const mine = `${process.pid} ${(await processStartTime(process.pid)) ?? ''}\n`;
  const tmpFile = `${ZFS_LOCK_PATH}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(tmpFile, mine);
  try {
    await link(tmpFile, ZFS_LOCK_PATH);
    return { taken: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmpFile).catch(() => undefined);
  }
  let content: string;
  try {
    content = await readFile(ZFS_LOCK_PATH, 'utf8');
  } catch {
    return { taken: false, holder: '(released)' };
  }
  if (content.trim() === '' || !(await holderAlive(content))) {
    if (content.trim() === '') {
      // Written by link(2) with its content: empty only if written by something else; old enough = stale.
      const st = await stat(ZFS_LOCK_PATH).catch(() => null);
      if (st !== null && Date.now() - st.mtimeMs < 10_000) return { taken: false, holder: '(empty, new)' };
    }
    // Break the stale lock: move it aside, and put it back if it turns out someone else's fresh
    // lock was moved (another waiter broke the same stale lock and took it meanwhile).
    const aside = `${ZFS_LOCK_PATH}.stale.${process.pid}`;
    try {
      await rename(ZFS_LOCK_PATH, aside);
      const moved = await readFile(aside, 'utf8');
      if (moved !== content) await link(aside, ZFS_LOCK_PATH).catch(() => undefined);
      else warn(`broke stale zfs test lock of ${content.trim()}`);
      await unlink(aside).catch(() => undefined);
    } catch {
      // someone else broke it first
    }
  }
  return { taken: false, holder: content.trim() };
}

/**
 * Takes the machine-wide zfs test lock (reentrant in this process). Waits up to `waitMs`;
 * throws when another live process holds it longer.
 */
export async function acquireZfsLock(waitMs = LOCK_WAIT_MS): Promise<void> {
  if (lockDepth > 0) {
    lockDepth++;
    return;
  }
  if (lockAcquiring !== null) {
    await lockAcquiring;
    lockDepth++;
    return;
  }
  const acquiring = (async () => {
    const deadline = Date.now() + waitMs;
    let logged = '';
    for (;;) {
      const r = await tryTakeLock();
      if (r.taken) return;
      if (r.holder !== logged) {
        warn(`waiting for the zfs test lock ${ZFS_LOCK_PATH}, held by ${r.holder}`);
        logged = r.holder;
      }
      if (Date.now() > deadline) throw new Error(`zfs test lock ${ZFS_LOCK_PATH} still held by ${r.holder} after ${waitMs} ms`);
      await sleep(LOCK_POLL_MS);
    }
  })();
  lockAcquiring = acquiring;
  try {
    await acquiring;
    lockDepth = 1;
  } finally {
    lockAcquiring = null;
  }
}

export async function releaseZfsLock(): Promise<void> {
  if (lockDepth === 0) return;
  lockDepth--;
  if (lockDepth > 0) return;
  // Only remove the lock if it is still ours (it may have been broken as stale by mistake).
  const content = await readFile(ZFS_LOCK_PATH, 'utf8').catch(() => '');
  if (content.split(' ')[0] === String(process.pid)) await unlink(ZFS_LOCK_PATH).catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------
// Daemon health and leftovers (only called while holding the lock)

/** fuse.zfs mounts as [source, target], deepest target first. /proc/mounts is not on zfs. */
async function zfsMounts(): Promise<[string, string][]> {
  const text = await readFile('/proc/mounts', 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'fuse.zfs' && f[0] !== undefined && f[1] !== undefined)
    .map((f): [string, string] => [f[0] ?? '', (f[1] ?? '').replace(/\\040/g, ' ')])
    .sort((a, b) => b[1].length - a[1].length);
}

function ofPool(source: string, pool: string): boolean {
  return source === pool || source.startsWith(`${pool}/`);
}

/** Lazy (detaching) unmount of every mount of a pool: never waits on a hung daemon. */
export async function lazyUnmountPool(pool: string): Promise<string[]> {
  const targets = (await zfsMounts()).filter(([src]) => ofPool(src, pool)).map(([, t]) => t);
  for (const t of targets) await run('umount', ['-l', t], 20_000);
  return targets;
}

async function daemonPids(): Promise<number[]> {
  const r = await run('pgrep', ['-x', 'zfs-fuse'], 10_000);
  return r.stdout.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
}

async function daemonAnswers(): Promise<boolean> {
  const r = await run('zpool', ['list', '-H', '-o', 'name'], HEALTH_TIMEOUT_MS);
  return !r.failed;
}

async function stopDaemon(reason: string): Promise<void> {
  const pids = await daemonPids();
  if (pids.length > 0) {
    warn(`zfs-fuse (pids ${pids.join(',')}) ${reason}: stopping it`);
    // TERM first (it closes its pools), KILL when it does not go (a hung daemon).
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      for (const pid of pids) {
        try {
          process.kill(pid, signal);
        } catch {
          // gone meanwhile
        }
      }
      const deadline = Date.now() + 15_000;
      while ((await daemonPids()).length > 0 && Date.now() < deadline) await sleep(200);
      if ((await daemonPids()).length === 0) break;
    }
    // Its mounts now answer nothing ("transport endpoint is not connected"): detach ours.
    for (const [src, target] of await zfsMounts()) {
      const pool = src.split('/')[0] ?? '';
      if (POOL_NAME_RE.test(pool)) await run('umount', ['-l', target], 20_000);
    }
  }
}

/** Makes sure zfs-fuse runs and answers; kills and restarts a hung one. Call with the lock held. */
export async function ensureZfsDaemon(restartReason?: string): Promise<void> {
  if (restartReason !== undefined) await stopDaemon(restartReason);
  else if ((await daemonPids()).length > 0 && (await daemonAnswers())) return;
  else await stopDaemon(`does not answer zpool list within ${HEALTH_TIMEOUT_MS} ms`);
  const r = await run('bash', [daemonScript], 40_000);
  if (r.failed) throw new Error(`could not start zfs-fuse: ${r.stderr}`);
  if (!(await daemonAnswers())) throw new Error(`zfs-fuse does not answer zpool list within ${HEALTH_TIMEOUT_MS} ms after a restart`);
  warn(`zfs-fuse: ${r.stdout.trim()}`);
}

/** Whether the process that created a pool of this fixture (pid in its name) still runs node. */
async function creatorAlive(pid: number): Promise<boolean> {
  try {
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return /node|vitest|tsx/.test(cmd);
  } catch {
    return false;
  }
}

/** The backing files of a pool (absolute paths from `zpool status -P`). */
async function poolFiles(pool: string): Promise<string[]> {
  const r = await run('zpool', ['status', pool], 20_000);
  return [...r.stdout.matchAll(/^\s+(\/\S+)\s/gm)].map((m) => m[1] ?? '').filter((f) => f !== '');
}

/**
 * Destroys pools of this fixture's naming whose creator is gone (a crashed or killed run).
 * Pools of live processes are left alone: an older fixture without the lock may be using them.
 */
export async function cleanupLeftoverPools(): Promise<{ removed: string[]; failed: string[]; inUse: string[] }> {
  const list = await run('zpool', ['list', '-H', '-o', 'name'], 20_000);
  const removed: string[] = [];
  const failed: string[] = [];
  const inUse: string[] = [];
  if (list.failed) return { removed, failed, inUse };
  for (const pool of list.stdout.split('\n').filter((n) => n !== '')) {
    const m = POOL_NAME_RE.exec(pool);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    const files = await poolFiles(pool);
    const filesGone = files.length > 0 && (await Promise.all(files.map((f) => bounded(stat(f).then(() => false, () => true), 5000, false)))).every(Boolean);
    if ((await creatorAlive(pid)) && !filesGone) {
      inUse.push(pool);
      continue;
    }
    warn(`removing leftover pool ${pool} (creator pid ${pid} ${filesGone ? 'backing file gone' : 'not running'})`);
    await lazyUnmountPool(pool);
    let r = await run('zpool', ['destroy', '-f', pool]);
    if (r.failed && !/no such pool/.test(r.stderr)) r = await run('zpool', ['export', '-f', pool]);
    if (r.failed && !/no such pool/.test(r.stderr)) {
      warn(`could not remove leftover pool ${pool}: ${r.stderr.trim()}`);
      failed.push(pool);
      continue;
    }
    removed.push(pool);
    // Its directory, when it is one of ours (manatee-*/pool.img in the temp dir).
    for (const f of files) {
      const dir = dirname(f);
      if (basename(f) === 'pool.img' && dirname(dir) === tmpdir() && basename(dir).startsWith('manatee-')) {
        const under = (await zfsMounts()).some(([, t]) => t === dir || t.startsWith(`${dir}/`));
        if (!under) await bounded(rm(dir, { recursive: true, force: true }).catch(() => undefined), 30_000, undefined);
      }
    }
  }
  return { removed, failed, inUse };
}

// ---------------------------------------------------------------------------------------------
// The pool

/** Kernel-unmounts every zfs-fuse mount of a pool, deepest first, retrying "busy" for up to ~30 s. */
async function unmountPoolMounts(pool: string, deadlineMs: number): Promise<void> {
  const targets = (await zfsMounts()).filter(([src]) => ofPool(src, pool)).map(([, t]) => t);
  for (const target of targets) {
    const deadline = Math.min(Date.now() + 30_000, deadlineMs);
    for (;;) {
      const r = await run('umount', [target], 20_000);
      if (!r.failed || !/busy/.test(r.stderr) || Date.now() > deadline) break;
      await sleep(1000);
    }
  }
}

/**
 * Unmounts and destroys a pool (forced export when zfs-fuse will not let it go), within about
 * 100 s. Returns '' on success, else what failed. For pools made outside createTestPool.
 */
export async function destroyPool(name: string): Promise<string> {
  const deadline = Date.now() + DESTROY_BUDGET_MS;
  // -f: a test that failed may have left a mount busy (e.g. a PostgreSQL it did not stop).
  // Unmount with the kernel's umount first: a failed `zfs unmount` (what `zpool destroy`
  // does) on a busy mount makes zfs-fuse hold the dataset until it restarts, while a failed
  // umount is harmless and can be retried until the last user (a PostgreSQL) has gone.
  await unmountPoolMounts(name, deadline);
  // A mount can stay busy for a moment after the last process left it (zfs-fuse): retry.
  let lastErr = '';
  for (let attempt = 1; attempt <= 8; attempt++) {
    const r = await run('zpool', ['destroy', '-f', name]);
    if (!r.failed || /no such pool/.test(r.stderr)) return '';
    lastErr = r.stderr;
    if (r.timedOut || Date.now() > deadline) break; // the daemon does not answer: retrying only burns time
    await sleep(500 * attempt);
  }
  if (!/still running|timed out/i.test(lastErr) && Date.now() < deadline) {
    // zfs-fuse sometimes reports a pool busy although nothing uses it; mounting its datasets
    // and unmounting them with the kernel's umount clears that (seen on this machine).
    const list = await run('zfs', ['list', '-H', '-o', 'name', '-r', name], 20_000);
    for (const ds of list.stdout.split('\n').filter((d) => d !== '')) await run('zfs', ['mount', ds]);
    await unmountPoolMounts(name, deadline);
    const again = await run('zpool', ['destroy', '-f', name]);
    if (!again.failed) return '';
  }
  // zfs-fuse can keep a dataset held for ever (e.g. after a failed unmount): a forced
  // export still detaches the pool from the shared daemon, so its file can go.
  const exp = await run('zpool', ['export', '-f', name]);
  return exp.failed ? `${lastErr.trim()}; export: ${exp.stderr.trim()}` : '';
}

/**
 * Creates a pool of `sizeMb` on a sparse file, under the machine-wide zfs test lock (held until
 * destroy()). zfs-fuse keeps a large reserve: a 64 MB pool holds ~27 MB.
 */
export async function createTestPool(opts: { sizeMb?: number; prefix?: string } = {}): Promise<TestPool> {
  await acquireZfsLock();
  let tmp: Awaited<ReturnType<typeof makeTmpDir>> | null = null;
  try {
    await ensureZfsDaemon();
    if (lockDepth === 1) {
      const left = await cleanupLeftoverPools();
      // zfs-fuse keeps some pools "busy" for ever (after a failed unmount); only a restart of the
      // daemon clears that. Safe only when no live process has a pool (we hold the lock, but an
      // older fixture without it could be running).
      if (left.failed.length > 0 && left.inUse.length === 0) {
        await ensureZfsDaemon(`keeps leftover pools ${left.failed.join(', ')} busy`);
        await cleanupLeftoverPools();
      }
    }
    tmp = await makeTmpDir(opts.prefix ?? 'zfs');
    const name = `mt${process.pid}${randomBytes(3).toString('hex')}`;
    const file = join(tmp.path, 'pool.img');
    const mountpoint = join(tmp.path, 'mnt');
    await execa('truncate', ['-s', `${opts.sizeMb ?? 512}M`, file], { timeout: 20_000 });
    const r = await run('zpool', ['create', '-m', mountpoint, name, file]);
    if (r.failed) {
      // A create that timed out may still have made the pool.
      await lazyUnmountPool(name);
      await run('zpool', ['destroy', '-f', name], 20_000);
      throw new Error(`zpool create ${name} failed: ${r.stderr}`);
    }
    const dir = tmp;
    let destroyed = false;
    return {
      name,
      mountpoint,
      dir: tmp.path,
      destroy: async () => {
        if (destroyed) return;
        destroyed = true;
        try {
          const err = await destroyPool(name);
          // Whatever is still mounted (of this pool, or in this test's directory) is detached,
          // so that removing the directory cannot walk into a mount of a hung daemon.
          const left = await lazyUnmountPool(name);
          for (const [, t] of await zfsMounts()) {
            if (t === dir.path || t.startsWith(`${dir.path}/`)) {
              left.push(t);
              await run('umount', ['-l', t], 20_000);
            }
          }
          if (err !== '') {
            // The pool stays attached to the daemon: keep its file, the next fixture removes
            // it as a leftover once this process is gone.
            warn(`could not destroy test pool ${name} (file kept at ${file}; lazily unmounted: ${left.join(', ') || 'none'}): ${err}`);
            return;
          }
          if (left.length > 0) warn(`pool ${name}: lazily unmounted what was left: ${left.join(', ')}`);
          if (!(await bounded(dir.cleanup().then(() => true), 60_000, false))) warn(`removing ${dir.path} took over 60 s: moved on`);
        } finally {
          await releaseZfsLock();
        }
      },
    };
  } catch (err) {
    if (tmp !== null) await bounded(tmp.cleanup().catch(() => undefined), 30_000, undefined);
    await releaseZfsLock();
    throw err;
  }
}
