// The processes of one dev-shard peer: its sitter (started here, detached, recorded with its
// start time) and its postmaster (started by the sitter; found in /proc by its data directory).
// Stop = SIGTERM to the sitter, which stops its PostgreSQL; kill = SIGKILL of both at once.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { SitterStatus } from '../../src/model/index.js';
import { httpJson } from './http.js';
import { findPostmaster, isRunning, recordProcess, signalProcess, waitGone } from './processes.js';
import { caPemOf, DevClusterError, pgdataOf, type ClusterRecord, type DevPeer, type ProcessKind, type RecordedProcess } from './dev-record.js';

/** How a sitter is run: the built one from dist/, or the source through tsx (tests, no build). */
export interface SitterLauncher {
  readonly root: string;
  readonly fromSource: boolean;
}

/** A SIGTERMed sitter stops PostgreSQL (a fast shutdown) and leaves Raft; past this it is killed. */
export const STOP_TIMEOUT_MS = 60_000;
const KILL_WAIT_MS = 15_000;

/** The newest recorded process of `kind` for `peer` that still runs, or null. */
export function running(r: ClusterRecord, peer: string, kind: ProcessKind): RecordedProcess | null {
  for (let i = r.processes.length - 1; i >= 0; i--) {
    const p = r.processes[i]!;
    if (p.peer === peer && p.kind === kind && isRunning(p)) return p;
  }
  return null;
}

/** Adds the process to the record unless it is there already; returns the recorded entry. */
function remember(r: ClusterRecord, p: RecordedProcess): RecordedProcess {
  const known = r.processes.find((x) => x.pid === p.pid && x.startTicks === p.startTicks);
  if (known !== undefined) return known;
  // Entries of processes that ended are dropped when a new one is added: the record stays small.
  r.processes = [...r.processes.filter(isRunning), p];
  return p;
}

/** The running postmaster of `peer`, recorded so that `down` finds it even if the sitter is gone. */
export function postmasterOf(r: ClusterRecord, peer: DevPeer): RecordedProcess | null {
  const found = findPostmaster(pgdataOf(peer));
  return found === null ? running(r, peer.id, 'postmaster') : remember(r, { ...found, kind: 'postmaster', peer: peer.id });
}

/** Starts the sitter of `peer` (detached: it outlives this command) and records it. */
export function startSitter(r: ClusterRecord, peer: DevPeer, launcher: SitterLauncher): RecordedProcess {
  const already = running(r, peer.id, 'sitter');
  if (already !== null) {
    throw new DevClusterError('MANATEE_ERR_DEV_ALREADY_RUNNING', `the sitter of ${peer.id} already runs (pid ${already.pid}): stop or kill it first`);
  }
  const args = launcher.fromSource
    ? ['--import', 'tsx', join(launcher.root, 'src/cli/manatee-sitter.ts'), '-f', peer.configPath]
    : [join(launcher.root, 'dist/src/cli/manatee-sitter.js'), '-f', peer.configPath];
  const log = openSync(peer.logPath, 'a');
  const child = spawn(process.execPath, args, { cwd: launcher.root, detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  const rec = child.pid === undefined ? null : recordProcess(child.pid);
  if (rec === null) throw new DevClusterError('MANATEE_ERR_DEV_START_FAILED', `the sitter of ${peer.id} did not start; see ${peer.logPath}`);
  return remember(r, { ...rec, kind: 'sitter', peer: peer.id });
}

/** Waits until the sitter answers GET /status; fails at once when it exits. */
export async function waitForApi(r: ClusterRecord, peer: DevPeer, sitter: RecordedProcess, timeoutMs: number): Promise<SitterStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await fetchStatus(r, peer.apiUrl);
    if (s !== null) return s;
    if (!isRunning(sitter)) throw new DevClusterError('MANATEE_ERR_DEV_START_FAILED', `the sitter of ${peer.id} exited; see ${peer.logPath}`);
    if (Date.now() > deadline) throw new DevClusterError('MANATEE_ERR_DEV_START_FAILED', `the API of ${peer.id} did not answer within ${timeoutMs / 1000} s; see ${peer.logPath}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** GET /status of a peer of `r` (https checked against the shard CA), or null when it does not answer. */
export async function fetchStatus(r: ClusterRecord, apiUrl: string): Promise<SitterStatus | null> {
  const ca = caPemOf(r);
  try {
    const a = await httpJson(`${apiUrl}/status`, { timeoutMs: 2000, ...(ca === undefined ? {} : { ca }) });
    return a.status === 200 ? (a.body as SitterStatus) : null;
  } catch {
    return null;
  }
}

/**
 * SIGTERM to the sitter (it stops its PostgreSQL and leaves), SIGKILL of what still runs after
 * `timeoutMs`. Returns what was signalled; nothing when the peer was already stopped.
 */
export async function stopPeer(r: ClusterRecord, peer: DevPeer, timeoutMs = STOP_TIMEOUT_MS): Promise<{ sitter: number | null; forced: boolean }> {
  const sitter = running(r, peer.id, 'sitter');
  if (sitter !== null && signalProcess(sitter, 'SIGTERM') && (await waitGone([sitter], timeoutMs))) {
    // A sitter that stopped cleanly stopped its PostgreSQL; one it could not stop is killed below.
    const left = postmasterOf(r, peer);
    if (left === null) return { sitter: sitter.pid, forced: false };
  }
  const killed = await killPeer(r, peer);
  return { sitter: sitter?.pid ?? killed.sitter, forced: killed.sitter !== null || killed.postmaster !== null };
}

/** SIGKILL of the sitter and its postmaster, back to back (as a machine that loses power). */
export async function killPeer(r: ClusterRecord, peer: DevPeer): Promise<{ sitter: number | null; postmaster: number | null }> {
  const postmaster = postmasterOf(r, peer);
  const sitter = running(r, peer.id, 'sitter');
  const sentSitter = sitter !== null && signalProcess(sitter, 'SIGKILL');
  const sentPostmaster = postmaster !== null && signalProcess(postmaster, 'SIGKILL');
  const gone = await waitGone([sitter, postmaster].filter((p): p is RecordedProcess => p !== null), KILL_WAIT_MS);
  if (!gone) throw new DevClusterError('MANATEE_ERR_DEV_STOP_FAILED', `the processes of ${peer.id} still run ${KILL_WAIT_MS / 1000} s after SIGKILL`);
  return { sitter: sentSitter ? sitter.pid : null, postmaster: sentPostmaster ? postmaster.pid : null };
}
