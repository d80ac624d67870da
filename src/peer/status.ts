// What a sitter reports about itself: the body of GET /status, and what manatee-adm and
// tools/dev-cluster read. Pure data, shared by src/peer (producer) and src/api, src/cli (consumers).
import type { ClusterState, Lsn, PeerInfo } from '../store/types.js';
import type { RestoreProgress } from '../backup/types.js';
import type { HooksStatus } from './hooks.js';

/** Where this peer stands in the committed state. */
export type PeerRole = 'primary' | 'sync' | 'async' | 'deposed' | 'unassigned';

/** One evaluation of Manatee's rules: what was decided and why (Patroni-style, one line). */
export interface DecisionRecord {
  readonly kind: string;
  readonly reason: string;
  readonly generation: number | null;
  readonly at: string; // ISO 8601
}

/** One row of pg_stat_replication on this peer (its downstream standbys). */
export interface ReplicationRow {
  readonly applicationName: string;
  readonly clientAddr: string | null;
  readonly state: string;
  readonly syncState: string;
  readonly sentLsn: Lsn | null;
  readonly writeLsn: Lsn | null;
  readonly flushLsn: Lsn | null;
  readonly replayLsn: Lsn | null;
  /** Bytes between this peer's current WAL position and the standby's replay position. */
  readonly replayLagBytes: number | null;
}

export interface PostgresStatus {
  /** The server process is running and answered the last health check. */
  readonly online: boolean;
  readonly healthy: boolean;
  /** Why it is unhealthy (last health check error), or null. */
  readonly error: string | null;
  readonly inRecovery: boolean | null;
  /** Writes enabled (primary with a caught-up sync, or ONWM). */
  readonly writable: boolean;
  readonly currentLsn: Lsn | null;
  readonly receiveLsn: Lsn | null;
  readonly replayLsn: Lsn | null;
  /** Standby: its WAL receiver's status (pg_stat_wal_receiver: streaming, waiting...), null when none runs. */
  readonly walReceiver: string | null;
  readonly lastCheckAt: string | null;
  readonly checkLatencyMs: number | null;
}

export interface RaftStatus {
  readonly id: string;
  readonly term: number;
  readonly leader: string | null;
  readonly role: string;
  readonly commit: number;
  readonly applied: number;
}

export interface RebuildStatus {
  readonly running: boolean;
  readonly reason: string | null;
  readonly source: string | null;
  readonly progress: RestoreProgress | null;
  readonly lastError: string | null;
  readonly lastResult: string | null;
}

/** The sitter's evaluation loop (GET /liveness). */
export interface LoopStatus {
  /** When an evaluation last ended (null: none yet). */
  readonly lastEvaluatedAt: string | null;
  /** When the running evaluation began (null: none runs). */
  readonly evaluatingSince: string | null;
  /** When the running evaluation last made progress: its start, or a restore's progress (null: none runs). */
  readonly lastProgressAt: string | null;
  /** How long a running evaluation may go without progress before the loop counts as stuck. */
  readonly stuckAfterMs: number;
}

/**
 * The heartbeat row (src/peer/heartbeat.ts) as this peer last saw it. The primary writes it every
 * second; a standby reads it back, so `lagSeconds` is how old the newest replayed data is, which
 * stays meaningful on an idle primary (where the replay timestamp alone would grow forever).
 */
export interface HeartbeatStatus {
  /** The primary that wrote the row, in its generation, at `writtenAt` (ISO 8601). */
  readonly primaryId: string | null;
  readonly generation: number | null;
  readonly writtenAt: string | null;
  /** now() − writtenAt on this peer's clock; 0 on the primary that writes it; null when unknown. */
  readonly lagSeconds: number | null;
  /** When this peer last wrote or read the row. */
  readonly checkedAt: string | null;
  /** Why the last write or read failed (no row yet, PostgreSQL down...), or null. */
  readonly error: string | null;
}

export interface SitterStatus {
  readonly peer: PeerInfo;
  readonly role: PeerRole;
  readonly sitterPid: number;
  readonly postgresPid: number | null;
  readonly backend: 'zfs' | 'basebackup';
  readonly postgres: PostgresStatus;
  readonly replication: readonly ReplicationRow[];
  readonly raft: RaftStatus;
  readonly state: ClusterState | null;
  readonly stateVersion: number;
  readonly activePeers: readonly PeerInfo[];
  readonly lastDecision: DecisionRecord | null;
  readonly rebuild: RebuildStatus;
  readonly startedAt: string;
  /** The evaluation loop, for GET /liveness. */
  readonly loop: LoopStatus;
  /** Absent from sitters built before the heartbeat existed. */
  readonly heartbeat?: HeartbeatStatus;
  /** Hook runs by event and outcome, and the last failure (src/peer/hooks.ts). Absent where no hook runner exists (older sitters, tests' in-memory peers). */
  readonly hooks?: HooksStatus;
}

/** Where a peer stands in a state: its role, and the peer it replicates from. */
export function roleIn(state: ClusterState | null, id: string): { role: PeerRole; upstream: PeerInfo | null } {
  if (state === null) return { role: 'unassigned', upstream: null };
  if (state.primary.id === id) return { role: 'primary', upstream: null };
  if (state.sync?.id === id) return { role: 'sync', upstream: state.primary };
  const i = state.async.findIndex((p) => p.id === id);
  if (i >= 0) {
    const upstream = i === 0 ? state.sync ?? state.primary : state.async[i - 1] ?? null;
    return { role: 'async', upstream };
  }
  if (state.deposed.some((p) => p.id === id)) return { role: 'deposed', upstream: null };
  return { role: 'unassigned', upstream: null };
}
