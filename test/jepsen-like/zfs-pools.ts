// The zfs backend of a chaos run (`--backend zfs`): one zfs-fuse pool per host, on a sparse file
// in the run's directory, named `lc<run prefix><host number>` (e.g. "lcmjc1a2b3h2"). A pool per
// host makes a disk fault hit one peer's disk, as on separate machines.
//
// The sitters enter their network namespaces with `nsenter --net` (see cluster.ts): they share
// the root's mount namespace, where zfs-fuse mounts the datasets.
//
// zfs-fuse is one daemon for the machine. The machine-wide zfs test lock (tools/lib/zfs-pool.ts)
// is taken only while the pools are created and destroyed (and the daemon checked or started):
// a 30-minute run holding it would make every zfs test file of a concurrent `npm test` time out.
// The pools' names do not match the test fixture's, so its leftover cleanup never touches them.
import { execa } from 'execa';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { acquireZfsLock, destroyPool, ensureZfsDaemon, lazyUnmountPool, releaseZfsLock } from '../../tools/lib/zfs-pool.js';

/** Pools of chaos runs: "lc" + the run's prefix (mjc + 5 hex) + "h" + host number. */
const POOL_RE = /^lc(mjc[0-9a-f]{5})h\d+$/;

export function poolName(prefix: string, hostIndex: number): string {
  return `lc${prefix}h${hostIndex + 1}`;
}

export interface ZfsRunResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** A zfs/zpool command with a timeout; never throws. */
export async function zfsCmd(cmd: 'zfs' | 'zpool', args: readonly string[], timeoutMs = 60_000): Promise<ZfsRunResult> {
  const r = await execa(cmd, args, { reject: false, timeout: timeoutMs, forceKillAfterDelay: 2000, stdin: 'ignore' });
  return { ok: !r.failed, stdout: typeof r.stdout === 'string' ? r.stdout : '', stderr: typeof r.stderr === 'string' ? r.stderr : String(r.message) };
}

export interface ChaosPools {
  readonly names: readonly string[];
  /** The pool of a host, by host id. */
  poolOf(hostId: string): string;
  destroy(): Promise<string[]>;
}

/**
 * Creates one pool of `sizeMb` (sparse) per host under `workDir/pools`. On failure removes what it made.
 */
export async function createChaosPools(prefix: string, hostIds: readonly string[], workDir: string, sizeMb: number, log: (l: string) => void): Promise<ChaosPools> {
  const dir = join(workDir, 'pools');
  mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  const byHost = new Map<string, string>();
  const destroy = async (): Promise<string[]> => destroyChaosPools(names);
  await acquireZfsLock();
  try {
    await ensureZfsDaemon();
    for (const [i, host] of hostIds.entries()) {
      const name = poolName(prefix, i);
      const file = join(dir, `${name}.img`);
      await execa('truncate', ['-s', `${sizeMb}M`, file], { timeout: 20_000 });
      const r = await zfsCmd('zpool', ['create', '-m', join(dir, name), name, file]);
      if (!r.ok) throw new Error(`zpool create ${name} failed: ${r.stderr.trim()}`);
      names.push(name);
      byHost.set(host, name);
    }
    log(`chaos: zfs pools ${names.join(', ')} (${sizeMb} MB each, sparse) under ${dir}`);
  } catch (err) {
    await releaseZfsLock();
    await destroy();
    throw err;
  }
  await releaseZfsLock();
  return {
    names,
    poolOf: (hostId) => {
      const n = byHost.get(hostId);
      if (n === undefined) throw new Error(`no pool for host ${hostId}`);
      return n;
    },
    destroy,
  };
}

/** Destroys the pools (every process on them must be gone). Returns what failed. */
export async function destroyChaosPools(names: readonly string[]): Promise<string[]> {
  const failed: string[] = [];
  await acquireZfsLock();
  try {
    for (const name of names) {
      const err = await destroyPool(name);
      await lazyUnmountPool(name);
      if (err !== '') failed.push(`${name}: ${err}`);
    }
  } finally {
    await releaseZfsLock();
  }
  return failed;
}

/** Pools that chaos runs of `prefix` left behind (a crashed run). */
export async function leftoverPools(prefix: string): Promise<string[]> {
  const r = await zfsCmd('zpool', ['list', '-H', '-o', 'name'], 20_000);
  if (!r.ok) return [];
  return r.stdout.split('\n').filter((n) => POOL_RE.exec(n)?.[1] === prefix);
}
