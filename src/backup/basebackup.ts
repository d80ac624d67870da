// The `basebackup` backend: a peer's data from another peer with PostgreSQL's own tools.
// - rebuild (a deposed former primary): pg_rewind onto the source's timeline (cheap), and if
//   that fails, a full copy;
// - bootstrap (a new peer), or the fallback: pg_basebackup of the source into a directory beside
//   the data directory. The old data directory stays where it is, untouched, until the new copy
//   is complete and verified to be a PostgreSQL data directory (verify.ts); then it is renamed
//   aside, the copy renamed into place, and the old one deleted. On failure (a copy that fails
//   verification included) the copy is deleted and the old data directory is left as it was.
// Afterwards the data directory is ready to start as a standby of the source (the caller runs
// PostgresServer.configure({role: 'standby', ...}), which renders standby.signal/primary_conninfo).
import type { RestoreProgress } from '../model/index.js';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { PgError } from '../postgres/errors.js';
import { describeRun, runTool } from '../postgres/exec.js';
import { checkPostmaster } from '../postgres/postmaster-pid.js';
import { ProgressTracker, type CopyProgress } from '../postgres/progress.js';
import { pgRewind, restoreOverrides, saveOverrides } from '../postgres/rewind.js';
import type { PostgresServer } from '../postgres/server.js';
import { endpointConninfo, parsePgUrl, type PgEndpoint } from '../postgres/url.js';
import type { BackupBackend, RestoreOptions, RestoreResult } from './types.js';
import { RestoreInvalidError } from './errors.js';
import { verifyDataDir } from './verify.js';
import { errorLine } from '../errors.js';

export interface BasebackupBackendOptions {
  readonly postgres: PostgresServer;
  readonly logger?: Logger;
  /** Try pg_rewind before a full copy when rebuilding a deposed peer. Default true. */
  readonly tryRewind?: boolean;
  /** Upper bound of one pg_basebackup or pg_rewind run. Default 6 h. */
  readonly timeoutMs?: number;
  /** Throttle pg_basebackup (its --max-rate, in kB/s) so a copy does not starve the source's disk. */
  readonly maxRateKbPerSec?: number;
}

const OLD_SUFFIX = 'old-';
const RESTORE_SUFFIX = 'restore';

export class BasebackupBackend implements BackupBackend {
  readonly kind = 'basebackup' as const;
  private readonly pg: PostgresServer;
  private readonly log: Logger;

  constructor(private readonly opts: BasebackupBackendOptions) {
    this.pg = opts.postgres;
    this.log = (opts.logger ?? silentLogger()).child({ room: 'backup', backend: 'basebackup', dataDir: opts.postgres.dataDir });
  }

  async restore(opts: RestoreOptions): Promise<RestoreResult> {
    const started = Date.now();
    const endpoint = parsePgUrl(opts.source.pgUrl, { user: this.pg.replicationUser, dbname: 'postgres' });
    const report = (p: RestoreProgress): void => { opts.onProgress?.(p); };
    await this.stopLocal();
    await this.pg.prepareRunDir();
    await this.recoverInterruptedSwap();

    if (opts.reason === 'rebuild' && (this.opts.tryRewind ?? true) && (await this.pg.hasData())) {
      report({ phase: 'rewinding', percent: 0, bytesDone: 0, bytesTotal: null, rateBytesPerSec: null, etaSec: null });
      try {
        // A former primary's data directory (not a standby's) that pg_rewind finds "no rewind
        // required" for is suspect: the source may sit on the same timeline without a promotion
        // (a standby started as primary by crash recovery), and the target's diverged WAL would stay.
        const formerPrimary = (await this.pg.standbyDataDir()) === null;
        const r = await pgRewind(this.pg, {
          sourceConninfo: endpointConninfo(endpoint, this.sourceFields(endpoint)),
          ...(endpoint.password !== null ? { password: endpoint.password } : {}),
          logger: this.log,
          signal: opts.signal,
          timeoutMs: this.opts.timeoutMs,
          onProgress: (p) => { report({ phase: 'rewinding', ...p }); },
        });
        if (!r.rewound && formerPrimary) {
          throw new PgError('MANATEE_ERR_PG_REWIND_FAILED', 'pg_rewind found no rewind required for a former primary: its WAL may have diverged on the same timeline');
        }
        if (!r.rewound && opts.cannotStream === true) {
          throw new PgError('MANATEE_ERR_PG_REWIND_FAILED', 'pg_rewind found no rewind required, but this standby cannot stream from its source: a rewind that changes nothing would not end the stall');
        }
        const result: RestoreResult = { method: 'rewind', bytes: r.bytes, durationMs: Date.now() - started };
        report({ phase: 'done', percent: 100, bytesDone: r.bytes, bytesTotal: r.bytes, rateBytesPerSec: null, etaSec: 0 });
        this.log.info({ decision: 'restored', reason: opts.reason, source: opts.source.peerId, ...result }, 'rebuilt by pg_rewind');
        return result;
      } catch (err) {
        if (opts.signal?.aborted === true) throw err;
        this.log.warn({ decision: 'rewind-fallback', reason: errorLine(err) },
          'pg_rewind failed: falling back to a full pg_basebackup');
      }
    }

    const bytes = await this.fullCopy(endpoint, opts, report);
    const result: RestoreResult = { method: 'full', bytes, durationMs: Date.now() - started };
    report({ phase: 'done', percent: 100, bytesDone: bytes, bytesTotal: bytes, rateBytesPerSec: null, etaSec: 0 });
    this.log.info({ decision: 'restored', reason: opts.reason, source: opts.source.peerId, ...result }, 'restored by pg_basebackup');
    return result;
  }

  /**
   * libpq reads the shard's replication password from the local passfile unless the URL has one,
   * and reaches the source over TLS, checking its certificate (sslmode=verify-full).
   */
  private sourceFields(e: PgEndpoint): Record<string, string> {
    return { ...(e.password === null ? { passfile: this.pg.passfile } : {}), ...this.pg.peerConninfoTls() };
  }

  private async stopLocal(): Promise<void> {
    const found = await checkPostmaster(this.pg.dataDir).catch(() => ({ kind: 'none' as const }));
    if (!this.pg.running && found.kind !== 'running') return;
    // A primary (a deposed one) stops immediately: a clean shutdown checkpoint would only diverge
    // it further. A standby stops fast: pg_rewind cannot crash-recover a standby (single-user
    // mode does not support standby mode), and its clean shutdown writes no new WAL.
    const standby = await this.pg.inRecovery().catch(() => false);
    const mode = standby ? 'fast' : 'immediate';
    this.log.info({ decision: 'stop-before-restore', mode, standby }, 'stopping local PostgreSQL before restoring its data');
    await this.pg.stop(mode);
  }

  /**
   * A sitter that died between the two renames of a swap leaves no data directory and an
   * `<data>.old-<ms>` beside it: put the old one back. A leftover partial copy is deleted.
   */
  private async recoverInterruptedSwap(): Promise<void> {
    const parent = dirname(this.pg.dataDir);
    const base = basename(this.pg.dataDir);
    const entries = await readdir(parent).catch(() => [] as string[]);
    const olds = entries.filter((e) => e.startsWith(`${base}.${OLD_SUFFIX}`)).sort();
    const hasData = await stat(this.pg.dataDir).then(() => true, () => false);
    const newest = olds.at(-1);
    if (!hasData && newest !== undefined) {
      this.log.warn({ decision: 'recover-swap', from: newest }, 'a previous restore stopped mid-swap: putting the old data directory back');
      await rename(join(parent, newest), this.pg.dataDir);
    }
    if (entries.includes(`${base}.${RESTORE_SUFFIX}`)) {
      this.log.info({ decision: 'remove-partial-copy' }, 'removing the partial copy of a previous restore');
      await rm(this.pg.siblingPath(RESTORE_SUFFIX), { recursive: true, force: true });
    }
  }

  private async fullCopy(endpoint: PgEndpoint, opts: RestoreOptions, report: (p: RestoreProgress) => void): Promise<number> {
    const tmp = this.pg.siblingPath(RESTORE_SUFFIX);
    await this.pg.makeOwnedDir(tmp);
    const overrides = await saveOverrides(this.pg.dataDir);
    const tracker = new ProgressTracker();
    let lastLoggedPercent = -10;
    report({ phase: 'receiving', percent: 0, bytesDone: 0, bytesTotal: null, rateBytesPerSec: null, etaSec: null });
    this.log.info({ decision: 'basebackup', source: `${endpoint.host}:${endpoint.port}`, into: tmp, reason: opts.reason }, 'running pg_basebackup');
    // --no-manifest: nothing verifies the manifest, and its per-file checksums cost CPU on
    // both ends. -X stream: the copy holds all the WAL it needs to start on its own.
    const r = await runTool(this.pg.binaries.pgBasebackup, [
      '-D', tmp, '-X', 'stream', '--progress', '--checkpoint=fast', '--no-password', '--no-manifest',
      ...(this.opts.maxRateKbPerSec !== undefined ? [`--max-rate=${this.opts.maxRateKbPerSec}k`] : []),
      '-d', endpointConninfo(endpoint, { ...this.sourceFields(endpoint), application_name: 'manatee-basebackup' }),
    ], {
      user: this.pg.user,
      env: endpoint.password !== null ? { PGPASSWORD: endpoint.password } : {},
      timeoutMs: this.opts.timeoutMs ?? 6 * 3_600_000,
      signal: opts.signal,
      onLine: (line) => {
        const p: CopyProgress | null = tracker.feed(line);
        if (p === null) return;
        report({ phase: 'receiving', ...p });
        if (p.percent !== null && p.percent >= lastLoggedPercent + 10) {
          lastLoggedPercent = p.percent;
          this.log.info({ percent: p.percent, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, rateBytesPerSec: p.rateBytesPerSec, etaSec: p.etaSec },
            'pg_basebackup progress');
        }
      },
    });
    if (r.exitCode !== 0) {
      await rm(tmp, { recursive: true, force: true });
      this.log.warn({ decision: 'restore-failed', outcome: describeRun(r), kept: this.pg.dataDir }, 'pg_basebackup failed: the old data directory is kept');
      throw new PgError('MANATEE_ERR_PG_BASEBACKUP_FAILED',
        `pg_basebackup from ${endpoint.host}:${endpoint.port} ${describeRun(r)}; the old data directory was left in place:\n${r.outputTail}`);
    }
    report({ phase: 'verifying', percent: 100, bytesDone: tracker.latest?.bytesDone ?? 0, bytesTotal: tracker.latest?.bytesTotal ?? null, rateBytesPerSec: null, etaSec: 0 });
    await this.verifyCopy(tmp);
    await restoreOverrides(this.pg, tmp, overrides);
    report({ phase: 'swapping', percent: 100, bytesDone: tracker.latest?.bytesDone ?? 0, bytesTotal: tracker.latest?.bytesTotal ?? null, rateBytesPerSec: null, etaSec: 0 });
    await this.swapIn(tmp);
    return tracker.latest?.bytesDone ?? 0;
  }

  /** The copy must be a PostgreSQL data directory before it replaces the old one; else it goes. */
  private async verifyCopy(tmp: string): Promise<void> {
    try {
      const v = await verifyDataDir(tmp, { pgControldata: this.pg.binaries.pgControldata, user: this.pg.user, timeoutMs: 60_000 });
      this.log.info({ decision: 'restore-accepted', reason: `a PostgreSQL ${v.pgVersion} data directory in state "${v.clusterState}"`, ...v },
        `the copy is a PostgreSQL ${v.pgVersion} data directory ("${v.clusterState}")`);
    } catch (err) {
      if (!(err instanceof RestoreInvalidError)) throw err;
      await rm(tmp, { recursive: true, force: true });
      this.log.error({ decision: 'restore-rejected', reason: err.problems.join('; '), path: tmp, kept: this.pg.dataDir, badCopy: 'deleted' },
        `rejected the pg_basebackup copy: ${err.problems.join('; ')}; the old data directory is kept`);
      throw new RestoreInvalidError(`${err.message}; the bad copy was deleted and the old data directory ${this.pg.dataDir} was left in place`, {
        path: tmp, problems: err.problems, restoredOld: true, cause: err,
      });
    }
  }

  private async swapIn(tmp: string): Promise<void> {
    const hasOld = await stat(this.pg.dataDir).then(() => true, () => false);
    if (!hasOld) {
      await rename(tmp, this.pg.dataDir);
      return;
    }
    const aside = this.pg.siblingPath(`${OLD_SUFFIX}${Date.now()}`);
    await rename(this.pg.dataDir, aside);
    try {
      await rename(tmp, this.pg.dataDir);
    } catch (err) {
      await rename(aside, this.pg.dataDir);
      throw new PgError('MANATEE_ERR_PG_BASEBACKUP_FAILED', `could not move the new copy into place; the old data directory was put back: ${(err as Error).message}`, { cause: err });
    }
    this.log.info({ decision: 'delete-old-copy', path: aside }, 'new data directory in place: deleting the old copy');
    await rm(aside, { recursive: true, force: true });
  }
}
