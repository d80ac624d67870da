// Processes that a tool started or found, recorded as pid + start time. A pid alone is not an
// identity: after the process exits the kernel may give the same number to another one, and a
// signal sent by pid would hit it. The start time (field 22 of /proc/<pid>/stat, in clock ticks
// since boot) differs between the two, so a recorded process is signalled only while both match.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export interface ProcessRecord {
  readonly pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  readonly startTicks: number;
}

/** The start time of `pid`, or null when no such process exists (or /proc cannot say). */
export function processStartTicks(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Field 2 (comm) is in parentheses and may itself hold spaces and ')': fields 3.. follow the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[22 - 3]);
  return Number.isSafeInteger(ticks) ? ticks : null;
}

/** The record of the process that has `pid` now, or null when none has. */
export function recordProcess(pid: number): ProcessRecord | null {
  const startTicks = processStartTicks(pid);
  return startTicks === null ? null : { pid, startTicks };
}

/** Whether the recorded process still runs (the same pid and the same start time). */
export function isRunning(p: ProcessRecord): boolean {
  const ticks = processStartTicks(p.pid);
  // A zombie keeps its /proc entry until reaped; it runs no more and ignores signals.
  return ticks === p.startTicks && !isZombie(p.pid);
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

/**
 * Sends `signal` to the recorded process if it is still the same process. Returns whether it
 * was sent: false when it has exited, or when its pid now belongs to another process.
 */
export function signalProcess(p: ProcessRecord, signal: NodeJS.Signals): boolean {
  if (!isRunning(p)) return false;
  try {
    process.kill(p.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Waits until none of `procs` runs; returns whether they were all gone before `timeoutMs`. */
export async function waitGone(procs: readonly ProcessRecord[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (procs.some(isRunning)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

/** The command line of `pid` as its arguments, or null when it cannot be read. */
export function commandLine(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  } catch {
    return null;
  }
}

/**
 * The postmaster of the data directory `pgdata`, found in /proc by its command line
 * (`postgres -D <pgdata>`, as the sitter starts it), or null when none runs. /proc rather than
 * postmaster.pid: the data directory may be a zfs-fuse mount, and reading it could hang.
 */
export function findPostmaster(pgdata: string): ProcessRecord | null {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return null;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const argv = commandLine(Number(e));
    if (argv?.[0]?.endsWith('postgres') === true && argv[1] === '-D' && argv[2] === pgdata) {
      const rec = recordProcess(Number(e));
      if (rec !== null && isRunning(rec)) return rec;
    }
  }
  return null;
}

/** A postmaster and its children (backends, walsender, checkpointer...), postmaster first. */
export function postgresProcesses(postmasterPid: number): number[] {
  let children: number[] = [];
  try {
    children = execFileSync('pgrep', ['-P', String(postmasterPid)], { encoding: 'utf8' }).split('\n').filter((l) => l !== '').map(Number);
  } catch {
    // pgrep exits 1 when there is none
  }
  return [postmasterPid, ...children];
}

/**
 * Sends `sig` to each pid that is still there (a hung PostgreSQL made by SIGSTOP of postgresProcesses,
 * and its SIGCONT). Only for processes the caller started a moment ago, e.g. a test's own PostgreSQL.
 */
export function signalPids(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // gone already
    }
  }
}
