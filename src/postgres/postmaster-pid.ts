// Finding a postmaster left running by a sitter that died. PostgreSQL writes postmaster.pid in
// the data directory: line 1 is the postmaster's pid, line 2 the data directory, line 4 the
// port, line 5 the socket directory. A pid file can be stale (the server crashed, or the machine
// rebooted and the pid now belongs to another process), so the pid only counts as our postmaster
// when the process is alive, is a postgres, and its working directory is this data directory
// (the postmaster chdirs into its data directory).
import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';

export interface PostmasterPidFile {
  readonly pid: number;
  readonly dataDir: string;
  readonly port: number | null;
  readonly socketDir: string | null;
}

export async function readPostmasterPid(dataDir: string): Promise<PostmasterPidFile | null> {
  let text: string;
  try {
    text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const port = Number(lines[3]);
  return {
    pid,
    dataDir: lines[1] ?? '',
    port: Number.isInteger(port) && port > 0 ? port : null,
    socketDir: lines[4] !== undefined && lines[4] !== '' ? lines[4] : null,
  };
}

/** Alive and not a zombie (an orphan reparented to a pid 1 that does not reap stays a zombie). */
export async function processAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name, is the state.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X' && state !== '';
  } catch {
    return false;
  }
}

export type OrphanCheck =
  | { readonly kind: 'none' }
  | { readonly kind: 'stale'; readonly pid: number; readonly reason: string }
  | { readonly kind: 'running'; readonly pid: number; readonly port: number | null; readonly socketDir: string | null };

/** Is a postmaster running on this data directory? */
export async function checkPostmaster(dataDir: string): Promise<OrphanCheck> {
  const pf = await readPostmasterPid(dataDir);
  if (pf === null) return { kind: 'none' };
  if (!(await processAlive(pf.pid))) return { kind: 'stale', pid: pf.pid, reason: `pid ${pf.pid} is not running` };
  let comm = '';
  let cwd = '';
  try {
    comm = (await readFile(`/proc/${pf.pid}/comm`, 'utf8')).trim();
    cwd = await readlink(`/proc/${pf.pid}/cwd`);
  } catch (err) {
    return { kind: 'stale', pid: pf.pid, reason: `cannot inspect pid ${pf.pid}: ${(err as Error).message}` };
  }
  if (comm !== 'postgres' && comm !== 'postmaster') {
    return { kind: 'stale', pid: pf.pid, reason: `pid ${pf.pid} is ${JSON.stringify(comm)}, not a postgres` };
  }
  const want = await realpath(dataDir);
  if (cwd !== want) {
    return { kind: 'stale', pid: pf.pid, reason: `pid ${pf.pid} is a postgres in ${cwd}, not in ${want}` };
  }
  return { kind: 'running', pid: pf.pid, port: pf.port, socketDir: pf.socketDir };
}

/**
 * Pids of live postgres processes whose working directory is `dataDir`: after a postmaster is killed
 * (SIGKILL), its backends linger for a moment, holding the shared memory; a new postmaster
 * started before they exit fails with "pre-existing shared memory block is still in use".
 */
export async function processesInDataDir(dataDir: string): Promise<number[]> {
  const want = await realpath(dataDir);
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if ((await readlink(`/proc/${e}/cwd`)) !== want) continue;
      // Only PostgreSQL processes: an operator's shell sitting in the data directory is no reason to wait.
      if ((await readFile(`/proc/${e}/comm`, 'utf8')).trim() !== 'postgres') continue;
      if (await processAlive(Number(e))) pids.push(Number(e));
    } catch {
      // gone, or not ours to inspect
    }
  }
  return pids;
}
