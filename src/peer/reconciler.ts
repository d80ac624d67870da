// The reconciler: makes this peer's PostgreSQL match a Decision of the rules (role, upstream,
// downstream), through src/postgres and src/backup. It never writes the cluster state; the
// sitter does that before it asks for the matching role.
//
// What each role means (DESIGN.md, "PostgreSQL per role"):
//   primary   configured read-only with commits waiting for a sync; writes are enabled once the
//             sync streams and has flushed everything the primary has (or at once in ONWM);
//   sync/async standby.signal and primary_conninfo → the upstream, application_name = our id;
//             a peer without data first copies it from the upstream (bootstrap);
//   none      stopped (fast);
//   deposed   stopped with an immediate shutdown (a clean one writes a checkpoint that the new
//             primary never had), then rebuilt from the new primary when automatic.
import { ManateeError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { BackupBackend, RestoreResult } from '../backup/types.js';
import { RestoreBusyError } from '../backup/errors.js';
import { ZfsBusyError } from '../zfs/errors.js';
import { parsePgUrl, type PgRole as PgServerRole } from '../postgres/index.js';
import { type RestoreProgress, type PeerInfo, type RebuildStatus } from '../model/index.js';
import type { LocalPostgres } from './local-postgres.js';
import type { Decision } from './rules/index.js';
import { checkSyncRebuildCutOff, type SyncRebuildRequest } from './sync-rebuild.js';

export type { SyncRebuildRequest } from './sync-rebuild.js';

export interface ReconcilerOptions {
  readonly self: PeerInfo;
  /** This peer's PostgreSQL: a PostgresServer, or the simulator's model of one. */
  readonly postgres: LocalPostgres;
  readonly backend: BackupBackend;
  readonly log: Logger;
  /** Make sure the storage for a new data directory exists (the zfs dataset), before initdb or a restore. */
  readonly prepareStorage: () => Promise<void>;
  /** Called after a restore completed, with where the data came from. */
  readonly onRebuilt: (from: PeerInfo, generation: number | null, result: RestoreResult) => Promise<void>;
  /**
   * Whether `source`'s PostgreSQL is out of recovery (promoted), or why not. A deposed peer
   * rebuilds only from a promoted source: pg_rewind against a standby that has not finished its
   * promotion still sees the old timeline, answers "no rewind required", and leaves the deposed
   * peer's diverged WAL in place (it then never streams from the new timeline).
   */
  readonly sourcePromoted: (source: PeerInfo) => Promise<true | string>;
  /**
   * Whether `source`'s PostgreSQL answers, or why not. A new standby copies its data only from a
   * running upstream: a zfs snapshot of a primary still running initdb holds no database.
   */
  readonly sourceOnline?: (source: PeerInfo) => Promise<true | string>;
  /**
   * Whether a primary with an empty data directory may create a new database (initdb), or why
   * not. Only the setup of a new cluster may: anything else would serve an empty database in
   * place of data that the sync still holds. Absent: never.
   */
  readonly mayInitdb?: () => true | string;
  /** Called once initdb has created a new database (the sitter remembers it). */
  readonly onInitdb?: () => Promise<void>;
  /**
   * Waits between failed restores: the first retry after initialMs, doubling up to maxMs. A
   * restore that keeps failing (a source whose copies fail verification) would otherwise copy the
   * whole database again on every evaluation (each second). Default 1 s up to 2 min.
   */
  readonly restoreBackoff?: { readonly initialMs: number; readonly maxMs: number };
  /**
   * Wait after a restore that could not start because this peer's own dataset was busy
   * (RestoreBusyError: nothing changed, the source is not at fault). zfs-fuse holds a dataset busy
   * for seconds to minutes; with the source's doubling backoff a rebuild waited up to 2 min after
   * the dataset was free again (a 30-minute zfs chaos run's shard stayed unwhole 4.4 min). Default 3 s.
   */
  readonly busyRetryMs?: number;
  /** Milliseconds since the epoch (restore backoff and activity); default Date.now. The simulator's clock. */
  readonly now?: () => number;
}

/**
 * How long a primary that was just (re)configured waits, within one reconcile, for its sync to
 * catch up before it enables writes (then it retries on the loop's RETRY_SOON_MS). It is the
 * last step of a failover: after a promotion the sync follows the new timeline within tens of ms.
 */
export const SYNC_CATCH_UP_WAIT_MS = 1000;

/** A primary without data that must not initdb: the sitter closes its session so that the sync takes over. */
export const INITDB_REFUSED = 'MANATEE_ERR_PEER_INITDB_REFUSED';

/** What one reconcile step did, for the sitter's log line and its next wake-up. */
export interface ReconcileOutcome {
  readonly action: string;
  /** Wake the loop again soon (waiting for the sync to catch up, or a restart in progress). */
  readonly retrySoon: boolean;
}

export class Reconciler {
  private readonly o: ReconcilerOptions;
  private readonly pg: LocalPostgres;
  private readonly now: () => number;
  /** The last role handed to PostgresServer.configure, as JSON: unchanged roles are not re-rendered. */
  private applied: string | null = null;
  private rebuildState: RebuildStatus = { running: false, reason: null, source: null, progress: null, lastError: null, lastResult: null };
  /** An operator asked for a rebuild of this peer (manatee-adm rebuild), or a stalled async did. */
  private rebuildRequested = false;
  /** The requested rebuild is for a standby that cannot stream (see RestoreOptions.cannotStream). */
  private rebuildCannotStream = false;
  /**
   * A rebuild of this peer as the sync (see SyncRebuildRequest), or null. Honoured only while the
   * decision is still the sync of that generation with that upstream; dropped otherwise.
   */
  private syncRebuild: SyncRebuildRequest | null = null;
  /** The sync rebuild's final check passed (see verifySyncRebuild); later attempts (retries) need none. */
  private syncRebuildVerified = false;
  /**
   * Restores failed in a row from each source, and when the next from it may start (epoch ms):
   * failures copying from one peer do not delay a copy from another, and two failing sources in
   * turn each keep their own backoff. Cleared by a success.
   */
  private readonly restoreBackoffs = new Map<string, { failures: number; retryAtMs: number }>();
  /** Restores that found this peer's dataset busy, in a row, and when the next may start; null after any other outcome. */
  private localBusy: { failures: number; sinceMs: number; retryAtMs: number } | null = null;
  /** When a restore last reported progress, began or ended (epoch ms): the sitter's liveness. */
  private activityAtMs = 0;

  constructor(opts: ReconcilerOptions) {
    this.o = opts;
    this.pg = opts.postgres;
    this.now = opts.now ?? Date.now;
  }

  rebuildStatus(): RebuildStatus {
    return this.rebuildState;
  }

  /**
   * When a restore last began, reported progress or ended, or an initdb ended (epoch ms; 0: never).
   * The unhealthy-time rule starts no earlier (a new database is not an unhealthy one).
   */
  lastActivityMs(): number {
    return this.activityAtMs;
  }

  /**
   * Ask for a rebuild of this peer. Without `asSync`: an async's or deposed peer's rebuild (an
   * operator's, or a stalled async's); dropped when this peer is (or becomes) the sync or primary.
   * With `asSync`: the sync's own rebuild, which the caller has checked is safe
   * (rules/stream-watch.ts syncCannotTakeOver); carried out only while this peer is the sync of
   * `asSync.generation` replicating from `asSync.upstreamId`, and dropped as soon as it is not.
   */
  requestRebuild(opts: { asSync?: SyncRebuildRequest; cannotStream?: boolean } = {}): void {
    if (opts.asSync === undefined) {
      // An operator's request after a stalled async's keeps the full copy the stall needs.
      this.rebuildCannotStream = this.rebuildRequested ? this.rebuildCannotStream || opts.cannotStream === true : opts.cannotStream === true;
      this.rebuildRequested = true;
    } else {
      this.syncRebuild = opts.asSync;
      this.syncRebuildVerified = false;
    }
    // A request is a reason to try now, not after the backoff of earlier failures.
    for (const b of this.restoreBackoffs.values()) b.retryAtMs = 0;
    if (this.localBusy !== null) this.localBusy.retryAtMs = 0;
  }

  /** The sync rebuild asked for and not yet done or dropped (for tests and status). */
  pendingSyncRebuild(): SyncRebuildRequest | null {
    return this.syncRebuild;
  }

  /** Forget what was applied, so that the next step re-renders (after PostgreSQL exited, say). */
  invalidate(): void {
    this.applied = null;
  }

  async reconcile(d: Decision): Promise<ReconcileOutcome> {
    if (this.rebuildRequested && (d.role === 'sync' || d.role === 'primary')) {
      // A full copy stops PostgreSQL: as the sync it would stop the primary's commits, and a
      // primary has nobody to copy from. The request was meant for an async or deposed peer.
      this.rebuildRequested = false;
      this.o.log.warn({ decision: 'drop-rebuild-request', role: d.role, reason: `this peer is now the ${d.role}` },
        `dropping the requested rebuild: this peer is now the ${d.role}, and a rebuild would stop writes`);
    }
    const sr = this.syncRebuild;
    if (sr !== null && (d.role !== 'sync' || d.generation !== sr.generation || d.upstream?.id !== sr.upstreamId)) {
      // It was checked against one generation's initWal and one upstream: anything else needs a new check.
      this.syncRebuild = null;
      const now = d.role === 'sync' ? `the sync of generation ${d.generation ?? 'none'} replicating from ${d.upstream?.id ?? 'nobody'}` : `the ${d.role}`;
      this.o.log.warn({ decision: 'drop-sync-rebuild', role: d.role, generation: d.generation, requestedFor: sr, reason: `this peer is now ${now}` },
        `dropping the sync's rebuild asked for generation ${sr.generation} from ${sr.upstreamId}: this peer is now ${now}`);
    }
    switch (d.role) {
      case 'primary':
        return this.asPrimary(d);
      case 'sync':
      case 'async':
        return this.asStandby(d);
      case 'deposed':
        return this.asDeposed(d);
      case 'none':
        return this.configure({ role: 'stopped', shutdown: 'fast' });
    }
  }

  private async configure(role: PgServerRole, force = false): Promise<ReconcileOutcome> {
    const key = JSON.stringify(role);
    const stopped = role.role === 'stopped';
    if (!force && key === this.applied && (stopped || this.pg.running)) return { action: 'none', retrySoon: false };
    const r = await this.pg.configure(role);
    this.applied = key;
    return { action: `configure ${r.role.role}: ${r.action}`, retrySoon: false };
  }

  private async asPrimary(d: Decision): Promise<ReconcileOutcome> {
    if (!(await this.pg.hasData())) {
      // prepareStorage first: an unmounted zfs dataset looks like an empty directory.
      await this.o.prepareStorage();
    }
    if (!(await this.pg.hasData())) {
      // Only the peer that set the cluster up (or an ONWM primary) starts from an empty directory.
      const may = this.o.mayInitdb?.() ?? 'no initdb policy was given';
      if (may !== true) {
        this.o.log.error({ decision: 'initdb-refused', reason: may }, `I am the primary but my data directory holds no database, and I will not create an empty one: ${may}`);
        throw new ManateeError(INITDB_REFUSED, `primary without data: initdb refused (${may})`);
      }
      await this.pg.initdb();
      // initdb blocks evaluations as a restore does: under load it took 8 s, and the new
      // primary's unhealthy time must not count it (it closed its session at a loaded setup).
      this.activityAtMs = this.now();
      await this.o.onInitdb?.();
      this.o.log.info({ decision: 'initdb', reason: 'primary with no data: a new cluster' }, 'initialized a new database');
    }
    const syncId = d.downstream?.id ?? null;
    const configured = await this.configure({ role: 'primary', syncId, oneNodeWriteMode: d.writableWithoutSync });
    const role = this.pg.role;
    if (role?.role === 'primary' && !role.writable && syncId !== null && !d.writableWithoutSync) {
      // Right after a role change (a promotion above all) the sync is still reconnecting to this
      // new primary: wait for it here, a few ms at a time, rather than a whole retry interval.
      const check = await this.pg.syncCaughtUp(syncId, configured.action === 'none' ? 0 : SYNC_CATCH_UP_WAIT_MS);
      if (!check.caughtUp) return { action: `${configured.action}; waiting for sync ${syncId}: ${check.reason}`, retrySoon: true };
      await this.pg.enableWrites(syncId);
      return { action: `writes enabled: sync ${syncId} caught up (${check.reason})`, retrySoon: false };
    }
    return configured;
  }

  private upstreamOf(d: Decision): { host: string; port: number } {
    if (d.upstream === null) throw new ManateeError('MANATEE_ERR_INTERNAL', `decision ${d.kind} for role ${d.role} has no upstream`);
    const e = parsePgUrl(d.upstream.pgUrl, { user: this.pg.replicationUser });
    return { host: e.host, port: e.port };
  }

  private async asStandby(d: Decision): Promise<ReconcileOutcome> {
    const upstream = d.upstream;
    if (upstream === null) return { action: 'no upstream yet', retrySoon: true };
    const rebuild = (this.rebuildRequested && d.role === 'async') || (this.syncRebuild !== null && d.role === 'sync');
    if (rebuild || !(await this.pg.hasData())) {
      const reason = rebuild ? 'rebuild' : 'bootstrap';
      const online = this.o.sourceOnline === undefined ? true : await this.o.sourceOnline(upstream).catch((err: unknown) => `cannot ask it: ${errorMessage(err)}`);
      if (online !== true) return { action: `${reason}: waiting for ${upstream.id}'s PostgreSQL to answer before copying its data (${online})`, retrySoon: true };
      const wait = this.restoreBackoffWait(reason, upstream);
      if (wait !== null) return { action: wait, retrySoon: false };
      // The sync's own rebuild: the last check comes right before the copy (nothing is waited for after it).
      const check = rebuild && d.role === 'sync' && this.syncRebuild !== null && !this.syncRebuildVerified ? await this.verifySyncRebuild(this.syncRebuild) : true;
      // A sync's own rebuild is always for a sync that cannot stream (or is below initWal).
      if (check === true) await this.restore(upstream, d.generation, reason, rebuild && (d.role === 'sync' || this.rebuildCannotStream));
      else {
        this.o.log.warn({ decision: 'drop-sync-rebuild', requestedFor: this.syncRebuild, reason: check }, `not rebuilding the sync after all: ${check}`);
        this.syncRebuild = null;
      }
    }
    return this.configure({ role: 'standby', upstream: this.upstreamOf(d), applicationName: this.o.self.id });
  }

  /** The last check before a sync's own rebuild (sync-rebuild.ts); a pass holds for the retries. */
  private async verifySyncRebuild(req: SyncRebuildRequest): Promise<true | string> {
    // Whatever follows, the next configure renders the role again (and so attaches to the upstream).
    if (this.pg.running) this.applied = null;
    const check = await checkSyncRebuildCutOff(this.pg, req, this.o.log);
    if (check === true) this.syncRebuildVerified = true;
    return check;
  }

  private async asDeposed(d: Decision): Promise<ReconcileOutcome> {
    // Immediate: a clean shutdown of a former primary writes a checkpoint the new primary lacks.
    await this.configure({ role: 'stopped', shutdown: 'immediate' });
    if (!(d.needsRebuild || this.rebuildRequested) || d.upstream === null) return { action: 'deposed: waiting', retrySoon: false };
    const promoted = await this.o.sourcePromoted(d.upstream).catch((err: unknown) => `cannot ask it: ${errorMessage(err)}`);
    if (promoted !== true) return { action: `deposed: waiting for ${d.upstream.id} to finish its promotion before rebuilding (${promoted})`, retrySoon: true };
    const wait = this.restoreBackoffWait('rebuild', d.upstream);
    if (wait !== null) return { action: wait, retrySoon: false };
    await this.restore(d.upstream, d.generation, 'rebuild');
    return { action: `rebuilt from ${d.upstream.id}`, retrySoon: true };
  }

  /**
   * Why the next restore must wait (the backoff after failures), or null when it may start. The
   * backoff is for copying from the same source again: a new source starts without it.
   */
  private restoreBackoffWait(reason: 'bootstrap' | 'rebuild', source: PeerInfo): string | null {
    const busy = this.localBusy;
    if (busy !== null && this.now() < busy.retryAtMs) {
      return `${reason}: my dataset was busy (${busy.failures} times in a row since ${new Date(busy.sinceMs).toISOString()}); trying again soon`;
    }
    const b = this.restoreBackoffs.get(source.id);
    if (b === undefined || this.now() >= b.retryAtMs) return null;
    // A stable sentence (no countdown): the sitter logs every reconcile action.
    return `${reason}: waiting until ${new Date(b.retryAtMs).toISOString()} before copying from ${source.id} again (${b.failures} failed in a row)`;
  }

  private async restore(source: PeerInfo, generation: number | null, reason: 'bootstrap' | 'rebuild', cannotStream = false): Promise<void> {
    const log = this.o.log;
    this.rebuildState = { running: true, reason, source: source.id, progress: null, lastError: null, lastResult: this.rebuildState.lastResult };
    log.info({ decision: reason, source: source.id, backend: this.o.backend.kind }, `${reason}: copying data from ${source.id}`);
    let lastLoggedPercent = -10;
    this.activityAtMs = this.now();
    const onProgress = (p: RestoreProgress): void => {
      this.activityAtMs = this.now();
      this.rebuildState = { ...this.rebuildState, progress: p };
      const pct = p.percent ?? 0;
      if (pct >= lastLoggedPercent + 10 || p.phase === 'done') {
        lastLoggedPercent = pct;
        log.info({ progress: p }, `${reason}: ${p.phase} ${p.percent ?? '?'}% (${p.bytesDone} bytes)`);
      }
    };
    try {
      await this.pg.configure({ role: 'stopped', shutdown: 'immediate' });
      this.applied = null;
      await this.prepareStorageForCopy();
      const result = await this.o.backend.restore({
        source: { peerId: source.id, pgUrl: source.pgUrl, backupUrl: source.apiUrl },
        reason,
        ...(cannotStream ? { cannotStream } : {}),
        onProgress,
      });
      this.rebuildRequested = false;
      this.rebuildCannotStream = false;
      this.syncRebuild = null;
      this.syncRebuildVerified = false;
      this.restoreBackoffs.clear();
      this.localBusy = null;
      this.activityAtMs = this.now();
      const summary = `${result.method} copy of ${result.bytes} bytes from ${source.id} in ${result.durationMs} ms`;
      this.rebuildState = { ...this.rebuildState, running: false, lastResult: summary };
      log.info({ decision: `${reason}-done`, source: source.id, ...result }, `${reason} done: ${summary}`);
      await this.o.onRebuilt(source, generation, result);
    } catch (err) {
      this.activityAtMs = this.now();
      if (err instanceof RestoreBusyError) {
        this.restoreBusy(err, reason, source);
        throw err;
      }
      this.localBusy = null;
      const code = err instanceof ManateeError ? err.code : null;
      const message = errorMessage(err);
      const backoff = this.o.restoreBackoff ?? { initialMs: 1000, maxMs: 120_000 };
      const failures = (this.restoreBackoffs.get(source.id)?.failures ?? 0) + 1;
      const waitMs = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(failures - 1, 30));
      this.restoreBackoffs.set(source.id, { failures, retryAtMs: this.now() + waitMs });
      const retryAt = new Date(this.now() + waitMs).toISOString();
      this.rebuildState = {
        ...this.rebuildState, running: false,
        lastError: `${code === null ? '' : `${code}: `}${message} [failure ${failures} in a row from ${source.id}; next attempt from it not before ${retryAt}]`,
      };
      log.error({ decision: `${reason}-failed`, source: source.id, code, err: message, failuresInARow: failures, retryInMs: waitMs },
        `${reason} from ${source.id} failed; retrying in ${waitMs} ms`);
      throw err;
    }
  }

  /**
   * The storage made ready for a copy. A dataset that zfs-fuse still holds busy (it could not be
   * mounted again after a restore that found it busy: seen in a 30-minute zfs chaos run) is the
   * same local, passing condition as a busy move aside, and is retried as soon.
   */
  private async prepareStorageForCopy(): Promise<void> {
    try {
      await this.o.prepareStorage();
    } catch (err) {
      if (!(err instanceof ZfsBusyError)) throw err;
      const dataset = err.args.at(-1) ?? '';
      throw new RestoreBusyError(`my dataset ${dataset} could not be made ready for the copy: it is busy (${err.message}); nothing was changed`, { dataset, cause: err });
    }
  }

  /**
   * A restore that found this peer's own dataset busy: nothing changed, and the source is not at
   * fault, so its backoff stays as it was; the next attempt comes after busyRetryMs, however many
   * came before, so that the rebuild starts within seconds of zfs-fuse letting the dataset go.
   */
  private restoreBusy(err: RestoreBusyError, reason: 'bootstrap' | 'rebuild', source: PeerInfo): void {
    const waitMs = this.o.busyRetryMs ?? 3000;
    const nowMs = this.now();
    const failures = (this.localBusy?.failures ?? 0) + 1;
    const sinceMs = this.localBusy?.sinceMs ?? nowMs;
    this.localBusy = { failures, sinceMs, retryAtMs: nowMs + waitMs };
    const retryAt = new Date(nowMs + waitMs).toISOString();
    this.rebuildState = {
      ...this.rebuildState, running: false,
      lastError: `${err.code}: ${err.message} [busy ${failures} times in a row since ${new Date(sinceMs).toISOString()}; next attempt not before ${retryAt}]`,
    };
    this.o.log.warn({ decision: `${reason}-busy`, source: source.id, code: err.code, dataset: err.dataset, err: err.message, busyInARow: failures, busyForMs: nowMs - sinceMs, retryInMs: waitMs },
      `${reason} from ${source.id} could not start: my dataset is busy; retrying in ${waitMs} ms`);
  }
}
