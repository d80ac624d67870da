// What a sitter reports about itself: the body of GET /status, and what manatee-adm, the status
// page and tools/dev-cluster read. Pure data: src/peer produces it; src/api and src/cli show it.
import type { ClusterState } from './cluster-state.js';
import type { DecisionRecord } from './decision.js';
import type { Lsn } from './lsn.js';
import type { PeerId, PeerInfo, PeerTags } from './peer.js';

/** Where this peer stands in the committed state. */
export type PeerRole = 'primary' | 'sync' | 'async' | 'deposed' | 'unassigned';

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

/** Progress of a long copy, for logs and for the status API. */
export interface RestoreProgress {
  readonly phase: string; // e.g. "isolating", "receiving", "rewinding", "snapshotting", "done"
  readonly percent: number | null;
  readonly bytesDone: number;
  readonly bytesTotal: number | null;
  readonly rateBytesPerSec: number | null;
  readonly etaSec: number | null;
}

/** The hook events (src/peer/hooks.ts runs them). */
export const HOOK_EVENTS = ['primary_changed', 'sync_changed', 'peer_up', 'peer_down', 'deposed', 'rebuild_done', 'sitter_up', 'heartbeat'] as const;
export type HookEvent = (typeof HOOK_EVENTS)[number];

/** What became of one run: it exited 0, failed (non-zero exit, killed by a signal, not started), timed out, or was dropped unrun (full queue, or queued when the runner stopped). */
export const HOOK_OUTCOMES = ['ok', 'failed', 'timedOut', 'dropped'] as const;
export type HookOutcome = (typeof HOOK_OUTCOMES)[number];

export type HookOutcomeCounts = Record<HookOutcome, number>;

/** The last run that did not succeed: what an operator looks at first. */
export interface HookFailure {
  readonly event: HookEvent;
  readonly command: string;
  /** ISO 8601, when the run ended. */
  readonly at: string;
  readonly outcome: 'failed' | 'timedOut';
  /** One line: why (the same words as the log line). */
  readonly reason: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly durationMs: number;
}

/** The hooks part of GET /status: counts per configured event and outcome since the sitter started. */
export interface HooksStatus {
  /** One entry per configured event (the label set is the closed list HOOK_EVENTS). */
  readonly events: Partial<Readonly<Record<HookEvent, Readonly<HookOutcomeCounts>>>>;
  /** Processes running now, and runs waiting in the queues. */
  readonly running: number;
  readonly queued: number;
  readonly lastFailure: HookFailure | null;
}

/** The TLS certificate a peer serves with (src/tls ReloadableTls.status), and when it expires. */
export interface TlsCertificateStatus {
  readonly certFile: string;
  readonly subject: string;
  readonly peerId: string | null;
  readonly fingerprint256: string;
  readonly notAfter: string;
  readonly expiresInSeconds: number;
  readonly caNotAfter: string;
  readonly caExpiresInSeconds: number;
  readonly loadedAt: string;
  /** The last reload that was refused (the previous certificate stayed), until one succeeds. */
  readonly reloadError: { readonly at: string; readonly code: string; readonly message: string } | null;
}

/**
 * Which shard secrets and admin tokens a peer holds (src/peer/credentials.ts), as one-way
 * fingerprints, never values: during a rotation an operator compares them across the peers to
 * know when every peer has switched and the old value can be dropped (manatee-adm verify does).
 */
export interface CredentialsStatus {
  /** The secret this peer proves itself with (Raft hello, backup requests). */
  readonly secret: string;
  /** The other secrets it accepts from its peers. */
  readonly acceptedSecrets: readonly string[];
  /** The configured admin token. */
  readonly adminToken: string;
  /** The other admin tokens it accepts. */
  readonly acceptedAdminTokens: readonly string[];
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
  /**
   * The primary's lease (src/peer/lease-fence.ts): `fenced` while a primary could not renew its
   * session in time and must not serve. Absent from older sitters and from non-Raft test peers.
   */
  readonly lease?: { readonly fenced: boolean; readonly validForMs: number | null; readonly reason: string };
  /** Absent from sitters built before the heartbeat existed. */
  readonly heartbeat?: HeartbeatStatus;
  /** Hook runs by event and outcome, and the last failure (src/peer/hooks.ts). Absent where no hook runner exists (older sitters, tests' in-memory peers). */
  readonly hooks?: HooksStatus;
  /** The shard-wide PostgreSQL settings on this peer: applied version, pending restarts, sources (src/peer/shard-settings.ts). */
  readonly settings?: PeerSettingsStatus;
  /** The certificate this peer serves with; absent without TLS. */
  readonly tls?: TlsCertificateStatus;
  /** Fingerprints of the shard secrets and admin tokens in force; absent from older sitters. */
  readonly credentials?: CredentialsStatus;
  /** This peer's tags (its configuration's); absent when none is set. */
  readonly tags?: PeerTags;
  /** The tags of the active peers that have any, as this peer's store has them from their sessions. */
  readonly peerTags?: Readonly<Record<PeerId, PeerTags>>;
}

/** Where a setting's effective value comes from on one peer (the file that sets it last). */
export type SettingSource = 'shard' | 'peer overrides file' | 'manatee default' | 'manatee enforced' | 'ALTER SYSTEM' | 'default' | 'other file';

/** One setting on one peer: the shard's settings and those of its overrides file. */
export interface PeerSettingReport {
  readonly name: string;
  /** The value the files give it now (the running one may differ until a reload or restart). */
  readonly value: string | null;
  readonly source: SettingSource;
  /** The value PostgreSQL runs with (current_setting). */
  readonly running: string | null;
  /** A postmaster setting whose file value differs from the running one: it waits for a restart. */
  readonly pendingRestart: boolean;
}

/**
 * A line of a configuration file that PostgreSQL refused (pg_file_settings.error), other than a
 * postmaster setting merely waiting for a restart. PostgreSQL would not start with it.
 */
export interface RejectedSetting {
  /** The setting's name (null: a line that is not a setting at all, such as a syntax error). */
  readonly name: string | null;
  /** The value in the file ([redacted] for a setting that may hold a credential). */
  readonly value: string | null;
  /** The file's name (manatee-overrides.conf, manatee-shard.conf...) and which source it is. */
  readonly file: string | null;
  readonly source: SettingSource;
  readonly line: number | null;
  /** PostgreSQL's error: "unrecognized configuration parameter", "setting could not be applied"... */
  readonly error: string;
  /** True when PostgreSQL applies no change of any configuration file at a reload while this line is there. */
  readonly blocksReload: boolean;
  /** What it means, in one sentence. */
  readonly reason: string;
}

/** What GET /status shows of this peer's shard settings. */
export interface PeerSettingsStatus {
  /** The version of the shard settings that this peer's store has applied. */
  readonly version: number;
  /** The version written to manatee-shard.conf and reloaded (null: none yet). */
  readonly appliedVersion: number | null;
  /** Settings whose new value waits for a restart of this peer's PostgreSQL. */
  readonly pendingRestart: readonly string[];
  /** Each shard setting and each setting of the overrides file: its value here and where it comes from. */
  readonly settings: readonly PeerSettingReport[];
  /** Lines of the configuration files that PostgreSQL refused at its last reload (empty: none). */
  readonly rejected: readonly RejectedSetting[];
  /** Why the last apply or report failed, or null. */
  readonly error: string | null;
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
