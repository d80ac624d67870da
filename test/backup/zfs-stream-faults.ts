// What the zfs restore tests share: a peer's old dataset to restore over and the check that a failed
// restore put it back, and a zfs wrapper for the source that makes a send die or stall mid-stream.
import { expect } from 'vitest';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Zfs } from '../../src/zfs/index.js';
import { waitFor } from '../../tools/lib/wait.js';

/** Where the datasets go: `<name>/peers/...`, mounted under `dir`. */
export interface PoolPlace {
  readonly name: string;
  readonly dir: string;
}

/** `<pool>/peers/<name>` holding a file 'old data' and one snapshot: a peer's data before a restore. */
export async function oldPeer(zfs: Zfs, pool: PoolPlace, name: string): Promise<{ ds: string; mp: string }> {
  const ds = `${pool.name}/peers/${name}`;
  const mp = join(pool.dir, `${name}-mnt`);
  await zfs.createDataset(ds, { mountpoint: mp, parents: true });
  await writeFile(join(mp, 'marker'), 'old data');
  await zfs.createSnapshot(ds, 1_600_000_000_000);
  return { ds, mp };
}

/** The old dataset is back as it was (mountpoint, data, its one snapshot) and nothing is left isolated under `parent`. */
export async function expectOldBack(zfs: Zfs, ds: string, mp: string, parent: string): Promise<void> {
  expect(await zfs.getProperty(ds, 'mountpoint')).toBe(mp);
  expect(await readFile(join(mp, 'marker'), 'utf8')).toBe('old data');
  expect((await zfs.listSnapshots(ds)).map((s) => s.short)).toEqual(['1600000000000']);
  expect(await zfs.listIsolated(parent)).toEqual([]);
}

/** How the wrapper's sends behave: "die" sends the first MiB, closes its output and exits 3 300 ms later, "stall" sends it and then waits,
 * "hang" sends it, closes its output and never exits. */
export type SendMode = 'plain' | 'die' | 'stall' | 'hang';

export interface FaultySend {
  /** The wrapper, to run as zfs (Zfs's zfsPath). */
  readonly path: string;
  setMode(m: SendMode): Promise<void>;
  /** Waits until a stalled send is gone (the source stopped it), saying what is left if not. */
  stalledSendGone(): Promise<void>;
}

/** A zfs wrapper in `dir` whose sends fail as its mode file says; every other command is plain zfs. */
export async function faultySend(dir: string): Promise<FaultySend> {
  await mkdir(dir, { recursive: true });
  const modeFile = join(dir, 'mode');
  // The stalled send's sleep, with a number of its own: found by its command line, never another's.
  const stallSleep = `300.${randomBytes(4).readUInt32BE(0)}`;
  const setMode = (m: SendMode): Promise<void> => writeFile(modeFile, m);
  await setMode('plain');
  const path = join(dir, 'zfs');
  await writeFile(path, [
    '#!/bin/sh',
    `mode=$(cat '${modeFile}')`,
    // A dying send's stream ends before its exit status is known (its output closed, then 300 ms):
    // the reason given must be its exit, never the end its reader saw first.
    'if [ "$1" = send ] && [ "$mode" = die ]; then zfs "$@" | head -c 1048576; exec 1>&-; sleep 0.3; exit 3; fi',
    `if [ "$1" = send ] && [ "$mode" = stall ]; then zfs "$@" | head -c 1048576; exec sleep ${stallSleep}; fi`,
    `if [ "$1" = send ] && [ "$mode" = hang ]; then zfs "$@" | head -c 1048576; exec 1>&-; exec sleep ${stallSleep}; fi`,
    'exec zfs "$@"',
    '',
  ].join('\n'));
  await chmod(path, 0o755);
  return {
    path,
    setMode,
    stalledSendGone: async () => {
      await waitFor('the source\'s stalled send to exit', async () => {
        const r = await execa('pgrep', ['-af', `sleep ${stallSleep}`], { reject: false });
        if (r.exitCode === 1) return true;
        throw new Error(`still running: ${r.stdout}`);
      }, { timeoutMs: 30_000 });
    },
  };
}
