// WAL positions and replication status, read with SQL. Each function takes a query function so
// that it works on any connection (the sitter's socket connection in practice).
import { PgError } from './errors.js';
import { type Lsn, lsnAtLeast, lsnDiffBytes, parseTimelineHistory, timelineHistoryFile, type TimelineHistory } from '../model/index.js';

export type QueryFn = <R extends Record<string, unknown>>(sql: string, params?: readonly unknown[]) => Promise<R[]>;

export interface WalPositions {
  readonly inRecovery: boolean;
  readonly timeline: number | null;
  /** Primary: pg_current_wal_lsn() (write position). Null on a standby. */
  readonly currentLsn: Lsn | null;
  /** Primary: pg_current_wal_flush_lsn(). Null on a standby. */
  readonly flushLsn: Lsn | null;
  /** Standby: pg_last_wal_receive_lsn(). Null on a primary, or before anything was streamed. */
  readonly receiveLsn: Lsn | null;
  /** Standby: pg_last_wal_replay_lsn(). Null on a primary. */
  readonly replayLsn: Lsn | null;
  /** The position this server has: currentLsn on a primary, replayLsn on a standby. */
  readonly lastLsn: Lsn | null;
  /**
   * Standby: pg_stat_wal_receiver's status (streaming, starting, waiting, restarting, stopping),
   * or null when no WAL receiver runs (not connected to an upstream). Null on a primary.
   */
  readonly walReceiver: string | null;
}

/**
 * The columns of WalPositions in one statement, on a primary or a standby. `r.rec` comes from a
 * materialized pg_is_in_recovery(), evaluated once: a primary's functions (which fail during
 * recovery) only run on a server out of recovery, and one never goes back into it.
 */
const POSITIONS_SELECT =
  'WITH r AS MATERIALIZED (SELECT pg_is_in_recovery() AS rec) SELECT r.rec, ' +
  'CASE WHEN NOT r.rec THEN pg_current_wal_lsn()::text END AS cur, ' +
  'CASE WHEN NOT r.rec THEN pg_current_wal_flush_lsn()::text END AS flush, ' +
  // The WAL file name starts with the timeline being written; pg_control's checkpoint
  // timeline lags behind a promotion until the next checkpoint.
  "CASE WHEN NOT r.rec THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS ptli, " +
  // On a standby the timeline being received is the live one; the checkpoint's may lag behind.
  'CASE WHEN r.rec THEN pg_last_wal_receive_lsn()::text END AS recv, CASE WHEN r.rec THEN pg_last_wal_replay_lsn()::text END AS replay, ' +
  'CASE WHEN r.rec THEN (SELECT received_tli FROM pg_stat_wal_receiver) END AS rtli, ' +
  'CASE WHEN r.rec THEN (SELECT timeline_id FROM pg_control_checkpoint()) END AS cptli, ' +
  'CASE WHEN r.rec THEN (SELECT status FROM pg_stat_wal_receiver) END AS wr';

interface RawPositions extends Record<string, unknown> {
  rec: boolean; cur: string | null; flush: string | null; ptli: number | null;
  recv: string | null; replay: string | null; rtli: number | null; cptli: number | null; wr: string | null;
}

function positionsOf(p: RawPositions | undefined): WalPositions {
  if (p === undefined) throw new PgError('MANATEE_ERR_PG_QUERY', 'the WAL positions query returned no row');
  if (!p.rec) {
    return {
      inRecovery: false, timeline: p.ptli, currentLsn: p.cur, flushLsn: p.flush,
      receiveLsn: null, replayLsn: null, lastLsn: p.cur, walReceiver: null,
    };
  }
  return {
    inRecovery: true, timeline: p.rtli ?? p.cptli, currentLsn: null, flushLsn: null,
    receiveLsn: p.recv, replayLsn: p.replay, lastLsn: p.replay, walReceiver: p.wr,
  };
}

export async function readWalPositions(query: QueryFn): Promise<WalPositions> {
  const [row] = await query<RawPositions>(`${POSITIONS_SELECT} FROM r`);
  return positionsOf(row);
}

/**
 * `timeline`'s history as this server has it (its pg_wal/0000000N.history; timeline 1 has none),
 * read with pg_read_binary_file, which the replication role may call (pg_rewind needs it too).
 * Throws when the file cannot be read, and MANATEE_ERR_PG_TIMELINE_HISTORY_MALFORMED when it is not a history.
 */
export async function readTimelineHistory(query: QueryFn, timeline: number): Promise<TimelineHistory> {
  if (timeline === 1) return parseTimelineHistory(1, '');
  const [row] = await query<{ h: string }>("SELECT convert_from(pg_read_binary_file($1), 'UTF8') AS h", [timelineHistoryFile(timeline)]);
  return parseTimelineHistory(timeline, row?.h ?? '');
}

/** One row of pg_stat_replication: a standby streaming from this server. */
export interface ReplicationRow {
  readonly pid: number;
  readonly applicationName: string;
  readonly clientAddr: string | null;
  readonly state: string;
  readonly sentLsn: Lsn | null;
  readonly writeLsn: Lsn | null;
  readonly flushLsn: Lsn | null;
  readonly replayLsn: Lsn | null;
  readonly syncState: string;
  readonly writeLagMs: number | null;
  readonly flushLagMs: number | null;
  readonly replayLagMs: number | null;
  /** This server's WAL position minus the standby's replay position, in bytes. */
  readonly replayLagBytes: number | null;
}

interface RawReplicationRow extends Record<string, unknown> {
  pid: number; application_name: string; client_addr: string | null; state: string;
  sent_lsn: string | null; write_lsn: string | null; flush_lsn: string | null; replay_lsn: string | null;
  sync_state: string; write_lag_ms: number | null; flush_lag_ms: number | null; replay_lag_ms: number | null; here: string;
}

const REPLICATION_SELECT =
  'SELECT pid, application_name, host(client_addr) AS client_addr, state, sent_lsn::text, write_lsn::text, ' +
  'flush_lsn::text, replay_lsn::text, sync_state, ' +
  '(extract(epoch FROM write_lag) * 1000)::float8 AS write_lag_ms, (extract(epoch FROM flush_lag) * 1000)::float8 AS flush_lag_ms, ' +
  '(extract(epoch FROM replay_lag) * 1000)::float8 AS replay_lag_ms, ' +
  '(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS here ' +
  'FROM pg_stat_replication';

function replicationRowOf(r: RawReplicationRow): ReplicationRow {
  return {
    pid: r.pid,
    applicationName: r.application_name,
    clientAddr: r.client_addr,
    state: r.state,
    sentLsn: r.sent_lsn,
    writeLsn: r.write_lsn,
    flushLsn: r.flush_lsn,
    replayLsn: r.replay_lsn,
    syncState: r.sync_state,
    writeLagMs: r.write_lag_ms,
    flushLagMs: r.flush_lag_ms,
    replayLagMs: r.replay_lag_ms,
    replayLagBytes: r.replay_lsn === null ? null : Number(lsnDiffBytes(r.here, r.replay_lsn)),
  };
}

export async function readReplication(query: QueryFn): Promise<ReplicationRow[]> {
  const rows = await query<RawReplicationRow>(`${REPLICATION_SELECT} ORDER BY application_name`);
  return rows.map(replicationRowOf);
}

/**
 * readWalPositions and readReplication in one round trip (the health check's, every second): the
 * sitter and the server's backend are each woken once for both instead of three times.
 */
export async function readWalAndReplication(query: QueryFn): Promise<{ positions: WalPositions; rows: ReplicationRow[] }> {
  const [row] = await query<RawPositions & { repl: RawReplicationRow[] }>(
    `${POSITIONS_SELECT}, (SELECT coalesce(json_agg(s ORDER BY s.application_name), '[]'::json) FROM (${REPLICATION_SELECT}) s) AS repl FROM r`);
  return { positions: positionsOf(row), rows: (row?.repl ?? []).map(replicationRowOf) };
}

export interface SyncCatchUp {
  readonly caughtUp: boolean;
  /** One sentence for the sitter's decision log. */
  readonly reason: string;
  readonly primaryFlushLsn: Lsn | null;
  readonly syncFlushLsn: Lsn | null;
  readonly state: string | null;
}

/**
 * Has the sync (application_name = syncId) connected and caught up? True when it is streaming
 * and its flush position is at least this primary's flushed WAL position.
 */
export async function checkSyncCaughtUp(query: QueryFn, syncId: string): Promise<SyncCatchUp> {
  const rows = await query<{ state: string; flush: string | null; here: string; rec: boolean }>(
    'SELECT r.state, r.flush_lsn::text AS flush, pg_current_wal_flush_lsn()::text AS here, false AS rec ' +
    'FROM pg_stat_replication r WHERE r.application_name = $1 ' +
    'UNION ALL SELECT NULL, NULL, NULL, pg_is_in_recovery() WHERE pg_is_in_recovery()',
    [syncId]);
  if (rows.some((r) => r.rec)) {
    return { caughtUp: false, reason: 'this server is in recovery, not a primary', primaryFlushLsn: null, syncFlushLsn: null, state: null };
  }
  const [first] = rows;
  if (first === undefined) {
    return { caughtUp: false, reason: `sync ${syncId} is not connected`, primaryFlushLsn: null, syncFlushLsn: null, state: null };
  }
  // Several rows can exist for a moment when the sync reconnects; any streaming, caught-up one counts.
  for (const r of rows) {
    if (r.state === 'streaming' && r.flush !== null && lsnAtLeast(r.flush, r.here)) {
      return { caughtUp: true, reason: `sync ${syncId} is streaming with flush ${r.flush} >= primary ${r.here}`, primaryFlushLsn: r.here, syncFlushLsn: r.flush, state: r.state };
    }
  }
  const reason = first.state !== 'streaming'
    ? `sync ${syncId} is ${first.state}, not streaming`
    : `sync ${syncId} flushed ${first.flush ?? 'nothing'}, behind primary ${first.here}`;
  return { caughtUp: false, reason, primaryFlushLsn: first.here, syncFlushLsn: first.flush, state: first.state };
}
