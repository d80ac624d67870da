// The replication heartbeat (plusmoin's method): the writable primary's sitter updates one row
// in a schema that Manatee owns (`manatee.heartbeat`) every second, and each standby's sitter
// reads that row back. `now() − ts` on the standby is how far its replayed data is behind the
// primary, in seconds. pg_last_xact_replay_timestamp() alone misleads: on an idle primary it
// grows without bound although the standby is fully caught up.
//
// User tables are never touched. The schema is created on the primary only, and only while it
// is writable (a primary that waits for its sync is read-only). The heartbeat's own commits are
// `synchronous_commit = local`: a heartbeat must never hang on a lost sync, and it is not user data.
import type { Logger } from '../log.js';
import type { HeartbeatStatus } from '../model/index.js';
import { ManateeError, errorMessage } from '../errors.js';
import { timerEvery, type Every } from './clock.js';

export const HEARTBEAT_SCHEMA = 'manatee';
export const HEARTBEAT_TABLE = `${HEARTBEAT_SCHEMA}.heartbeat`;
export const HEARTBEAT_INTERVAL_MS_DEFAULT = 1000;
/** One heartbeat query may take this long; a slower one is a failed beat, retried on the next tick. */
const HEARTBEAT_QUERY_TIMEOUT_MS_DEFAULT = 2000;
/** The single row's key: one shard, one heartbeat. */
const ROW_ID = 1;

export type HeartbeatQuery = <R extends Record<string, unknown>>(sql: string, params: readonly unknown[] | undefined, timeoutMs: number) => Promise<R[]>;

/** What the heartbeat needs to know about this peer at each tick. */
export interface HeartbeatRole {
  /** This peer is the primary in the committed state and its PostgreSQL accepts writes. */
  readonly writablePrimary: boolean;
  /** This peer's PostgreSQL is up and serving (any role): a standby reads the row then. */
  readonly online: boolean;
  /** The committed generation (written into the row), or null before setup. */
  readonly generation: number | null;
}

export interface HeartbeatOptions {
  readonly selfId: string;
  /** A query on this peer's PostgreSQL with its own timeout (PostgresServer.queryWithTimeout). */
  readonly query: HeartbeatQuery;
  readonly role: () => HeartbeatRole;
  readonly log: Logger;
  readonly intervalMs?: number;
  /** The beat's clock (default a timer of its own): see clock.ts everyFrom. */
  readonly every?: Every;
  readonly queryTimeoutMs?: number;
  readonly now?: () => number;
}

const NONE: HeartbeatStatus = { primaryId: null, generation: null, writtenAt: null, lagSeconds: null, checkedAt: null, error: null };

/** A SQL string literal (standard_conforming_strings is on in every supported PostgreSQL). */
function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** The statements that create the schema and table (idempotent), and the upsert of the row. */
export function heartbeatSql(selfId: string, generation: number): { create: string; beat: string } {
  if (!Number.isSafeInteger(generation) || generation < 0) throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `heartbeat: bad generation ${generation}`);
  return {
    // The sitter's connection is held and shared by its other queries: SET LOCAL inside an
    // explicit transaction keeps `synchronous_commit = local` to the heartbeat's own commit.
    create:
      'BEGIN; SET LOCAL synchronous_commit TO local; ' +
      `CREATE SCHEMA IF NOT EXISTS ${HEARTBEAT_SCHEMA}; ` +
      `CREATE TABLE IF NOT EXISTS ${HEARTBEAT_TABLE} (id int PRIMARY KEY CHECK (id = ${ROW_ID}), generation int NOT NULL, primary_id text NOT NULL, lsn pg_lsn, ts timestamptz NOT NULL); ` +
      `COMMENT ON TABLE ${HEARTBEAT_TABLE} IS 'written every second by the Manatee primary; read by standbys to measure lag in seconds'; ` +
      'COMMIT',
    beat:
      'BEGIN; SET LOCAL synchronous_commit TO local; ' +
      `INSERT INTO ${HEARTBEAT_TABLE} (id, generation, primary_id, lsn, ts) VALUES (${ROW_ID}, ${generation}, ${literal(selfId)}, pg_current_wal_lsn(), clock_timestamp()) ` +
      'ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation, primary_id = EXCLUDED.primary_id, lsn = EXCLUDED.lsn, ts = EXCLUDED.ts; ' +
      'COMMIT',
  };
}

export const HEARTBEAT_READ_SQL =
  `SELECT primary_id, generation, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS written_at, ` +
  `extract(epoch FROM (clock_timestamp() - ts))::float8 AS lag_s FROM ${HEARTBEAT_TABLE} WHERE id = ${ROW_ID}`;


export class Heartbeat {
  private readonly opts: HeartbeatOptions;
  private readonly intervalMs: number;
  private readonly queryTimeoutMs: number;
  private readonly now: () => number;
  private current: HeartbeatStatus = NONE;
  private stopTimer: (() => void) | null = null;
  private running = false;
  /** The table exists (created by this process, or seen): no need to create it again. */
  private created = false;
  private lastLoggedError: string | null = null;

  constructor(opts: HeartbeatOptions) {
    this.opts = opts;
    this.intervalMs = opts.intervalMs ?? HEARTBEAT_INTERVAL_MS_DEFAULT;
    this.queryTimeoutMs = opts.queryTimeoutMs ?? HEARTBEAT_QUERY_TIMEOUT_MS_DEFAULT;
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.stopTimer !== null) return;
    this.stopTimer = (this.opts.every ?? timerEvery)(this.intervalMs, () => { void this.tick(); });
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  status(): HeartbeatStatus {
    return this.current;
  }

  /** One beat: write the row on a writable primary, read it elsewhere. Never throws. */
  async tick(): Promise<HeartbeatStatus> {
    if (this.running) return this.current; // a slow query: skip this tick rather than pile up
    this.running = true;
    try {
      const role = this.opts.role();
      if (role.writablePrimary && role.generation !== null) await this.write(role.generation);
      else if (role.online) await this.read();
      else this.current = { ...NONE, checkedAt: new Date(this.now()).toISOString(), error: 'PostgreSQL is not serving' };
      if (this.current.error === null) this.lastLoggedError = null;
    } catch (err) {
      const message = errorMessage(err);
      this.created = false; // a failover or a restore may have lost it: check again next time
      this.current = { ...this.current, lagSeconds: null, checkedAt: new Date(this.now()).toISOString(), error: message };
      if (message !== this.lastLoggedError) this.opts.log.debug({ heartbeat: 'failed', err: message }, `heartbeat failed: ${message}`);
      this.lastLoggedError = message;
    } finally {
      this.running = false;
    }
    return this.current;
  }

  private async write(generation: number): Promise<void> {
    const sql = heartbeatSql(this.opts.selfId, generation);
    if (!this.created) {
      await this.opts.query(sql.create, undefined, this.queryTimeoutMs);
      this.created = true;
      this.opts.log.info({ heartbeat: 'table', table: HEARTBEAT_TABLE }, `heartbeat table ${HEARTBEAT_TABLE} ready`);
    }
    await this.opts.query(sql.beat, undefined, this.queryTimeoutMs);
    const at = new Date(this.now()).toISOString();
    this.current = { primaryId: this.opts.selfId, generation, writtenAt: at, lagSeconds: 0, checkedAt: at, error: null };
  }

  private async read(): Promise<void> {
    let rows: { primary_id: string; generation: number; written_at: string; lag_s: number }[];
    try {
      rows = await this.opts.query(HEARTBEAT_READ_SQL, undefined, this.queryTimeoutMs);
    } catch (err) {
      // 42P01/3F000: no table or schema yet, i.e. no primary has beaten yet; not a failure.
      const code = (err as { cause?: { code?: unknown } }).cause?.code;
      if (code === '42P01' || code === '3F000') {
        this.current = { ...NONE, checkedAt: new Date(this.now()).toISOString(), error: 'no heartbeat written yet' };
        return;
      }
      throw err;
    }
    const row = rows[0];
    if (row === undefined) {
      this.current = { ...NONE, checkedAt: new Date(this.now()).toISOString(), error: 'no heartbeat written yet' };
      return;
    }
    // A clock a little behind the primary's would give a negative lag: it is zero.
    this.current = {
      primaryId: row.primary_id,
      generation: row.generation,
      writtenAt: row.written_at,
      lagSeconds: Math.max(0, Math.round(row.lag_s * 1000) / 1000),
      checkedAt: new Date(this.now()).toISOString(),
      error: null,
    };
  }
}
