// The check a restored copy passes before it replaces the old data: it must be a PostgreSQL data
// directory of this installation's major version, with a pg_control whose cluster state a standby
// can start from. Without it a zfs snapshot of a primary still running initdb (an empty dataset)
// was once accepted, the old data discarded, and the standby never started.
//
// What is checked, in order (every problem is collected, so that one error names them all):
//   - global/pg_control exists, is a regular file of PG_CONTROL_SIZE_BYTES, and can be read;
//   - PG_VERSION holds the local major version;
//   - pg_controldata (run as the PostgreSQL OS user) reads it: its CRC matches and the cluster
//     state is one a standby starts from (see STANDBY_SOURCE_STATES).
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PG_MAJOR } from '../postgres/binaries.js';
import { describeRun, runTool } from '../postgres/exec.js';
import type { OsUser } from '../postgres/os-user.js';
import { RestoreInvalidError } from './errors.js';
import { errorMessage } from '../errors.js';

/** PostgreSQL writes pg_control as one block of this size (PG_CONTROL_FILE_SIZE). */
export const PG_CONTROL_SIZE_BYTES = 8192;
/** PG_VERSION is "15\n": anything longer is not one. */
const PG_VERSION_BYTES_MAX = 64;
/** pg_controldata's output is ~60 lines; a few more is no reason to keep everything. */
const CONTROLDATA_LINES_MAX = 200;

/**
 * Cluster states (pg_controldata's "Database cluster state") a standby may start from:
 * a snapshot of a running primary ("in production", crash-consistent) or of a standby ("in
 * archive recovery"), a cleanly stopped server, or one caught mid crash-recovery or mid-shutdown
 * (crash recovery runs again). "starting up" is refused: that is what a server that never
 * finished its first start-up (initdb, a bootstrap) leaves behind.
 */
export const STANDBY_SOURCE_STATES: ReadonlySet<string> = new Set([
  'in production',
  'in archive recovery',
  'shut down',
  'shut down in recovery',
  'shutting down',
  'in crash recovery',
]);

export interface DataDirCheckOptions {
  /** The local pg_controldata (PgBinaries.pgControldata). */
  readonly pgControldata: string;
  /** Who runs it (the PostgreSQL OS user, as every PostgreSQL program). */
  readonly user: OsUser;
  /** The local PostgreSQL major version. Default PG_MAJOR (15). */
  readonly expectedMajor?: number;
  /** Upper bound of the pg_controldata run. Default 60 s. */
  readonly timeoutMs?: number;
  /** The zfs dataset the directory is the mount of, for the error message. */
  readonly dataset?: string;
}

/** What a passing copy holds, for the restore's log line. */
export interface DataDirReport {
  readonly path: string;
  readonly pgVersion: string;
  readonly clusterState: string;
  readonly controlSizeBytes: number;
  readonly systemIdentifier: string | null;
  readonly latestCheckpoint: string | null;
}

function message(err: unknown): string {
  return errorMessage(err);
}

async function checkPgControl(path: string, problems: string[]): Promise<number> {
  const file = join(path, 'global', 'pg_control');
  let sizeBytes: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) {
      problems.push(`global/pg_control is not a regular file`);
      return 0;
    }
    sizeBytes = st.size;
  } catch (err) {
    problems.push((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'global/pg_control is missing' : `global/pg_control cannot be examined: ${message(err)}`);
    return 0;
  }
  if (sizeBytes !== PG_CONTROL_SIZE_BYTES) {
    problems.push(`global/pg_control is ${sizeBytes} bytes, not ${PG_CONTROL_SIZE_BYTES}`);
    return sizeBytes;
  }
  try {
    const fh = await open(file, 'r');
    try {
      const { bytesRead } = await fh.read(Buffer.alloc(PG_CONTROL_SIZE_BYTES), 0, PG_CONTROL_SIZE_BYTES, 0);
      if (bytesRead !== PG_CONTROL_SIZE_BYTES) problems.push(`global/pg_control: only ${bytesRead} of ${PG_CONTROL_SIZE_BYTES} bytes could be read`);
    } finally {
      await fh.close();
    }
  } catch (err) {
    problems.push(`global/pg_control is not readable: ${message(err)}`);
  }
  return sizeBytes;
}

async function checkPgVersion(path: string, expected: number, problems: string[]): Promise<string> {
  let text: string;
  try {
    const st = await stat(join(path, 'PG_VERSION'));
    if (!st.isFile() || st.size > PG_VERSION_BYTES_MAX) {
      problems.push(`PG_VERSION is not a small regular file (${st.size} bytes)`);
      return '';
    }
    text = (await readFile(join(path, 'PG_VERSION'), 'utf8')).trim();
  } catch (err) {
    problems.push((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'PG_VERSION is missing' : `PG_VERSION is not readable: ${message(err)}`);
    return '';
  }
  if (text !== String(expected)) problems.push(`PG_VERSION says ${JSON.stringify(text)}, but the local PostgreSQL is ${expected}`);
  return text;
}

interface Controldata {
  readonly fields: ReadonlyMap<string, string>;
  readonly crcMismatch: boolean;
}

async function runControldata(path: string, opts: DataDirCheckOptions, problems: string[]): Promise<Controldata | null> {
  const fields = new Map<string, string>();
  let crcMismatch = false;
  let lines = 0;
  const r = await runTool(opts.pgControldata, ['-D', path], {
    user: opts.user,
    timeoutMs: opts.timeoutMs ?? 60_000,
    onLine: (line) => {
      if (++lines > CONTROLDATA_LINES_MAX) return;
      // pg_controldata only warns (exit code 0) when the CRC does not match: the fields are garbage.
      if (/calculated CRC checksum does not match/i.test(line)) crcMismatch = true;
      const m = /^([^:]+):\s*(.*)$/.exec(line);
      if (m?.[1] !== undefined && m[2] !== undefined) fields.set(m[1].trim(), m[2].trim());
    },
  });
  if (r.exitCode !== 0) {
    problems.push(`pg_controldata ${describeRun(r)}: ${r.outputTail.trim().split('\n').slice(-3).join(' / ')}`);
    return null;
  }
  return { fields, crcMismatch };
}

/**
 * Checks that `path` holds a PostgreSQL data directory a standby of this installation can start
 * from. Resolves with what it found; throws RestoreInvalidError (restoredOld false: the caller
 * puts the old data back and throws its own) naming the directory and every problem.
 */
export async function verifyDataDir(path: string, opts: DataDirCheckOptions): Promise<DataDirReport> {
  const expected = opts.expectedMajor ?? PG_MAJOR;
  const problems: string[] = [];
  const controlSizeBytes = await checkPgControl(path, problems);
  const pgVersion = await checkPgVersion(path, expected, problems);
  let clusterState = '';
  let systemIdentifier: string | null = null;
  let latestCheckpoint: string | null = null;
  // Without a complete pg_control there is nothing for pg_controldata to read.
  if (problems.every((p) => !p.startsWith('global/pg_control'))) {
    const cd = await runControldata(path, opts, problems);
    if (cd !== null) {
      clusterState = cd.fields.get('Database cluster state') ?? '';
      systemIdentifier = cd.fields.get('Database system identifier') ?? null;
      latestCheckpoint = cd.fields.get('Latest checkpoint location') ?? null;
      if (cd.crcMismatch) problems.push('global/pg_control fails its CRC check (pg_controldata: calculated CRC checksum does not match)');
      if (clusterState === '') problems.push('pg_controldata printed no "Database cluster state"');
      else if (!STANDBY_SOURCE_STATES.has(clusterState)) problems.push(`the cluster state is "${clusterState}", not one a standby starts from (${[...STANDBY_SOURCE_STATES].join(', ')})`);
      const cdVersion = cd.fields.get('pg_control version number');
      if (cdVersion === undefined) problems.push('pg_controldata printed no "pg_control version number"');
    }
  }
  if (problems.length > 0) {
    const what = opts.dataset === undefined ? `directory ${path}` : `dataset ${opts.dataset} (mounted at ${path})`;
    throw new RestoreInvalidError(`the restored copy in ${what} is not a usable PostgreSQL ${expected} data directory: ${problems.join('; ')}`, {
      path, dataset: opts.dataset ?? null, problems, restoredOld: false,
    });
  }
  return { path, pgVersion, clusterState, controlSizeBytes, systemIdentifier, latestCheckpoint };
}
