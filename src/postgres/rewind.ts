// pg_rewind of a diverged former primary onto the new primary's timeline. The source is the new
// primary, reached over the network as the replication role (which initdb granted the functions
// pg_rewind needs). The target must be stopped; if it was stopped by an immediate shutdown,
// pg_rewind itself runs crash recovery in single-user mode first.
import { chown, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { FILE_OVERRIDES_CONF } from './config.js';
import { PgError } from './errors.js';
import { describeRun, runTool } from './exec.js';
import { ProgressTracker, type CopyProgress } from './progress.js';
import type { PostgresServer } from './server.js';

export interface RewindOptions {
  /** libpq conninfo of the source (new primary), e.g. from sourceConninfo(). */
  readonly sourceConninfo: string;
  /** Password for the source connection, if the conninfo has none (passed as PGPASSWORD). */
  readonly password?: string;
  readonly onProgress?: (p: CopyProgress) => void;
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
  readonly logger: Logger;
}

export interface RewindResult {
  /** False when pg_rewind found nothing to do (the target had not diverged). */
  readonly rewound: boolean;
  readonly bytes: number;
  readonly durationMs: number;
}

/** The operator's overrides belong to this peer: pg_rewind and pg_basebackup would bring the source's. */
export async function saveOverrides(dataDir: string): Promise<string | null> {
  try {
    return await readFile(join(dataDir, FILE_OVERRIDES_CONF), 'utf8');
  } catch {
    return null;
  }
}

export async function restoreOverrides(server: PostgresServer, dataDir: string, text: string | null): Promise<void> {
  if (text === null) return;
  const path = join(dataDir, FILE_OVERRIDES_CONF);
  await writeFile(path, text, { mode: 0o600 });
  if (server.user.switchUser) await chown(path, server.user.uid, server.user.gid);
}

export async function pgRewind(server: PostgresServer, opts: RewindOptions): Promise<RewindResult> {
  if (server.running) throw new PgError('MANATEE_ERR_PG_ALREADY_RUNNING', 'pg_rewind needs PostgreSQL stopped');
  const log = opts.logger.child({ room: 'postgres', part: 'rewind' });
  const started = Date.now();
  const tracker = new ProgressTracker();
  const seen = { noRewind: false };
  let lastPercentLogged = -10;
  const overrides = await saveOverrides(server.dataDir);
  await checkpointSource(server, opts, log);
  log.info({ decision: 'rewind', dataDir: server.dataDir }, 'running pg_rewind from the new primary');
  const r = await runTool(server.binaries.pgRewind, ['-D', server.dataDir, `--source-server=${opts.sourceConninfo}`, '--progress'], {
    user: server.user,
    env: opts.password !== undefined ? { PGPASSWORD: opts.password } : {},
    timeoutMs: opts.timeoutMs ?? 3_600_000,
    signal: opts.signal,
    onLine: (line) => {
      if (/no rewind required/.test(line)) seen.noRewind = true;
      const p = tracker.feed(line);
      if (p === null) return;
      opts.onProgress?.(p);
      if (p.percent !== null && p.percent >= lastPercentLogged + 10) {
        lastPercentLogged = p.percent;
        log.info({ percent: p.percent, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, rateBytesPerSec: p.rateBytesPerSec }, 'pg_rewind progress');
      }
    },
  });
  await restoreOverrides(server, server.dataDir, overrides);
  if (r.exitCode !== 0) {
    log.warn({ decision: 'rewind-failed', outcome: describeRun(r) }, 'pg_rewind failed');
    throw new PgError('MANATEE_ERR_PG_REWIND_FAILED', `pg_rewind ${describeRun(r)}:\n${r.outputTail}`);
  }
  const result = { rewound: !seen.noRewind, bytes: tracker.latest?.bytesDone ?? 0, durationMs: Date.now() - started };
  log.info({ decision: 'rewound', ...result }, seen.noRewind ? 'pg_rewind: no rewind required' : 'pg_rewind done');
  return result;
}

/**
 * Ask the source for a CHECKPOINT (the replication role holds pg_checkpoint): a just-promoted
 * source shows its new timeline in pg_control only after one, and pg_rewind reads it there. A
 * promotion no longer waits for its own checkpoint (server.ts, promote), so this one is required:
 * without it pg_rewind may answer "no rewind required" for a diverged data directory. A source
 * that cannot take it fails the rewind (MANATEE_ERR_PG_REWIND_FAILED), and the rebuild is retried.
 */
async function checkpointSource(server: PostgresServer, opts: RewindOptions, log: Logger): Promise<void> {
  const r = await runTool(server.binaries.psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', 'CHECKPOINT', '-d', opts.sourceConninfo], {
    user: server.user,
    env: opts.password !== undefined ? { PGPASSWORD: opts.password } : {},
    timeoutMs: 120_000,
    signal: opts.signal,
  });
  if (r.exitCode === 0) {
    log.info({ decision: 'checkpoint-source' }, 'the source wrote a checkpoint before pg_rewind');
    return;
  }
  log.warn({ decision: 'checkpoint-source-failed', outcome: describeRun(r), output: r.outputTail }, 'could not ask the source for a checkpoint; not running pg_rewind');
  throw new PgError('MANATEE_ERR_PG_REWIND_FAILED', `the source did not write a checkpoint before pg_rewind (its pg_control may still show the old timeline): psql ${describeRun(r)}:\n${r.outputTail}`);
}
