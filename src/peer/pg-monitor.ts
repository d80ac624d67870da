// Watches this peer's PostgreSQL: a health check on an interval (which also reads the WAL
// positions and the replication rows), turned into the PostgresStatus that the rules, the
// status API and the unhealthy-timeout rule read. It only observes; the reconciler acts.
// The check's queries run on the sitter's held connection; every newConnectionCheckIntervalMs
// the check also opens a new connection, since a server out of connection slots still answers
// on a connection it already has and must be seen as unhealthy all the same.
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import { PgHealthChecker, readTimelineHistory, type HealthResult, type RenderedRole, type WalPositions } from '../postgres/index.js';
import { readWalAndReplication, type QueryFn, type ReplicationRow as PgReplicationRow } from '../postgres/replication.js';
import type { PostgresStatus, ReplicationRow, TimelineHistory } from '../model/index.js';
import { unhealthySince } from './rules/index.js';
import { PgError } from '../postgres/errors.js';
import type { Every } from './clock.js';
import { errorMessage } from '../errors.js';

/** What the monitor reads of this peer's PostgreSQL (PostgresServer has these). */
export interface MonitoredPostgres {
  /** The postmaster runs (started by this process or adopted). */
  readonly running: boolean;
  /** The role last rendered (null before the first configure). */
  readonly role: RenderedRole | null;
  readonly postgresPid: number | null;
  /**
   * A query on the held connection, given up after timeoutMs (and the connection dropped): the
   * monitor's queries wait no longer than its check does, so that a hung server does not hold the
   * connection, and every query queued behind it (the evaluation's), for the server's own 10 s.
   */
  queryWithTimeout<R extends Record<string, unknown>>(sql: string, params: readonly unknown[] | undefined, timeoutMs: number): Promise<R[]>;
  /** Opens a new connection and runs one query on it, within timeoutMs. */
  checkNewConnection(timeoutMs: number): Promise<void>;
}

export interface PgMonitorOptions {
  readonly postgres: MonitoredPostgres;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly log: Logger;
  /** How often a check also opens a new connection (default 10 s): a fresh connect per check costs the primary throughput. */
  readonly newConnectionCheckIntervalMs?: number;
  /** The checks' clock (default a timer of its own): see clock.ts everyFrom. */
  readonly every?: Every;
}

export const NEW_CONNECTION_CHECK_INTERVAL_MS_DEFAULT = 10_000;

/** A pg_stat_replication row as the model keeps it. */
function modelRowOf(r: PgReplicationRow): ReplicationRow {
  return {
    applicationName: r.applicationName,
    clientAddr: r.clientAddr,
    state: r.state,
    syncState: r.syncState,
    sentLsn: r.sentLsn,
    writeLsn: r.writeLsn,
    flushLsn: r.flushLsn,
    replayLsn: r.replayLsn,
    replayLagBytes: r.replayLagBytes,
  };
}

interface MonitorEvents {
  /** online or healthy flipped. */
  change: [PostgresStatus];
}

const OFFLINE: PostgresStatus = {
  online: false,
  healthy: false,
  error: 'not running',
  inRecovery: null,
  writable: false,
  currentLsn: null,
  receiveLsn: null,
  walReceiver: null,
  replayLsn: null,
  lastCheckAt: null,
  checkLatencyMs: null,
};

export class PgMonitor extends EventEmitter<MonitorEvents> {
  private readonly pg: MonitoredPostgres;
  /** The monitor's queries, each given up after the check's timeout (see MonitoredPostgres.queryWithTimeout). */
  private readonly query: QueryFn;
  private readonly log: Logger;
  private readonly checker: PgHealthChecker;
  private positions: WalPositions | null = null;
  private rows: ReplicationRow[] = [];
  private current: PostgresStatus = OFFLINE;
  /** Since when PostgreSQL has been unhealthy while it was meant to run (null: healthy or not meant to run). */
  private unhealthySinceMs: number | null = null;
  /** When a new connection last succeeded (epoch ms; 0: not yet): the next check opens one after the interval. */
  private newConnectionOkAtMs = 0;
  private readonly newConnectionCheckIntervalMs: number;
  /** The history of the newest timeline seen since this postmaster started (see readHistory). */
  private historySeen: { readonly pid: number | null; readonly history: TimelineHistory } | null = null;
  private historyError: string | null = null;

  constructor(opts: PgMonitorOptions) {
    super();
    this.pg = opts.postgres;
    this.query = (sql, params) => opts.postgres.queryWithTimeout(sql, params, opts.timeoutMs);
    this.log = opts.log;
    this.newConnectionCheckIntervalMs = opts.newConnectionCheckIntervalMs ?? NEW_CONNECTION_CHECK_INTERVAL_MS_DEFAULT;
    this.checker = new PgHealthChecker({
      intervalMs: opts.intervalMs,
      timeoutMs: opts.timeoutMs,
      logger: opts.log,
      ...(opts.every !== undefined ? { every: opts.every } : {}),
      probe: async (timeoutMs) => {
        if (!this.pg.running) throw new PgError('MANATEE_ERR_PG_NOT_RUNNING', 'PostgreSQL is not running');
        const nowMs = Date.now();
        if (nowMs - this.newConnectionOkAtMs >= this.newConnectionCheckIntervalMs) {
          await this.pg.checkNewConnection(timeoutMs);
          this.newConnectionOkAtMs = nowMs;
        }
        // One round trip for both. A standby has rows too: the cascading asyncs that replicate
        // from it (GET /shard's links).
        const { positions, rows } = await readWalAndReplication(this.query);
        this.positions = positions;
        this.rows = rows.map(modelRowOf);
        await this.readHistory(positions);
      },
    });
    this.checker.on('healthy', (r) => { this.update(r); });
    this.checker.on('unhealthy', (r) => { this.update(r); });
  }

  start(): void {
    this.checker.start();
  }

  stop(): void {
    this.checker.stop();
  }

  /** Check now (after a start, a promote, a reconfiguration) instead of waiting for the interval. */
  async checkNow(): Promise<PostgresStatus> {
    await this.checker.checkOnce();
    return this.current;
  }

  status(): PostgresStatus {
    // `writable` follows the server's role as it is now, not as it was at the last check: writes
    // are enabled right after a check, and the status would otherwise say read-only for up to
    // intervalMs (clients and tools that wait for a writable primary waited that much longer).
    const role = this.pg.role;
    // A primary role with writes enabled implies the promotion is done (configure promotes first).
    const writable = this.current.healthy && this.pg.running && role?.role === 'primary' && role.writable;
    return writable === this.current.writable ? this.current : { ...this.current, writable };
  }

  /**
   * The timeline history of this server's WAL as of the last check (null: unknown, or another
   * postmaster since). What a new generation records with initWal, and what the sync's takeover
   * compares with the recorded one.
   */
  history(): TimelineHistory | null {
    const seen = this.historySeen;
    return seen !== null && seen.pid === this.pg.postgresPid && this.pg.running ? seen.history : null;
  }

  /**
   * Reads the history of `positions`' timeline when it is newer than the one seen (or the
   * postmaster changed), and returns history(). A standby's reported timeline can lag: once its WAL
   * receiver stops (the takeover's fence), it is the last checkpoint's, older than the timeline it
   * replays until a restartpoint. While one postmaster runs its timeline never goes back (it moves
   * on when it follows a switch or is promoted; a rewind or a copy restarts it), so the newest one
   * seen since it started is kept. A history that cannot be read leaves the last one in place.
   */
  async readHistory(positions: WalPositions): Promise<TimelineHistory | null> {
    const timeline = positions.timeline;
    const pid = this.pg.postgresPid;
    const seen = this.historySeen;
    if (timeline !== null && (seen === null || seen.pid !== pid || seen.history.timeline < timeline)) {
      try {
        this.historySeen = { pid, history: await readTimelineHistory(this.query, timeline) };
        this.historyError = null;
      } catch (err) {
        const message = errorMessage(err);
        // Once per distinct error: the next check tries again.
        if (message !== this.historyError) this.log.warn({ decision: 'timeline-history-unread', timeline, err: message }, `the history of timeline ${timeline} could not be read: ${message}`);
        this.historyError = message;
      }
    }
    return this.history();
  }

  replication(): readonly ReplicationRow[] {
    return this.rows;
  }

  /**
   * How long PostgreSQL has been unhealthy although it should be running, in ms (0 when healthy).
   * `shouldRun` is the reconciler's view: a stopped server of an unassigned peer is not unhealthy.
   * `notBeforeMs`: the clock starts no earlier (the end of the last restore; see unhealthySince).
   */
  unhealthyForMs(nowMs: number, shouldRun: boolean, notBeforeMs = 0): number {
    this.unhealthySinceMs = unhealthySince({ sinceMs: this.unhealthySinceMs, nowMs, shouldRun, healthy: this.current.healthy, notBeforeMs });
    return this.unhealthySinceMs === null ? 0 : nowMs - this.unhealthySinceMs;
  }

  private update(r: HealthResult): void {
    const p = r.healthy ? this.positions : null;
    const role = this.pg.role;
    const next: PostgresStatus = r.healthy
      ? {
          online: true,
          healthy: true,
          error: null,
          inRecovery: p?.inRecovery ?? null,
          writable: role?.role === 'primary' && role.writable && p?.inRecovery === false,
          currentLsn: p?.currentLsn ?? null,
          receiveLsn: p?.receiveLsn ?? null,
          walReceiver: p?.walReceiver ?? null,
          replayLsn: p?.replayLsn ?? null,
          lastCheckAt: new Date(r.at).toISOString(),
          checkLatencyMs: r.latencyMs,
        }
      : { ...OFFLINE, online: this.pg.running, error: r.reason, lastCheckAt: new Date(r.at).toISOString(), checkLatencyMs: r.latencyMs };
    if (!r.healthy) this.rows = [];
    const flipped = next.online !== this.current.online || next.healthy !== this.current.healthy;
    this.current = next;
    // The checker already logs each flip of health; here the reconciler is woken up.
    if (flipped) this.emit('change', next);
  }
}
