// What the HTTP API needs from the sitter (src/peer/sitter.ts implements ApiDeps). The API only
// reads and asks: it holds no state of its own, so that any peer's API answers for the shard.
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from '../log.js';
import type { SitterStatus, ClusterState, HistoryEntry, PeerId, PeerInfo, PeerTags } from '../model/index.js';
import type { ApiMetrics } from './metrics.js';
import type { OnwmMode } from '../peer/admin.js';
import type { ConfigDeps } from './routes/config.js';
import type { PgOperations } from './routes/pg-ops.js';
import type { ReloadableTls } from '../tls/index.js';
import type { AdminResult, MembershipResult, RaftMembers, RebuildResult, VersionedState } from '../wire/index.js';

// The answers' types are the wire contract's, derived from the routes' schemas (src/wire).
export type { AdminResult, MembershipResult, RaftMembers, RebuildResult, VersionedState };

export interface PromoteInput {
  readonly peerId: PeerId;
  /** How long the primary and the sync may take to act on it; PROMOTE_EXPIRE_MS_DEFAULT when absent. */
  readonly expireMs?: number;
  /** A scheduled switchover: not before this time (ISO 8601); the expiry counts from it. */
  readonly at?: string;
}

/**
 * The operators' writes. Each one throws a ManateeError with a stable code when it is refused
 * (src/peer/admin.ts's codes, the store's version mismatch, MANATEE_ERR_RAFT_NO_LEADER...);
 * src/api/errors.ts maps codes to HTTP statuses. A follower's write goes through the store, which
 * forwards it to the Raft leader, so the API never redirects.
 */
export interface ScheduleRestartInput {
  readonly at: string;
  readonly pending: boolean;
  readonly peer?: PeerId;
}

export interface AdminOperations {
  freeze(reason: string): Promise<AdminResult>;
  unfreeze(): Promise<AdminResult>;
  promote(input: PromoteInput): Promise<AdminResult>;
  clearPromote(): Promise<AdminResult>;
  /** A rolling restart scheduled for `at` (manatee-adm restart --at), run by the primary's sitter when due. */
  scheduleRestart(input: ScheduleRestartInput): Promise<AdminResult>;
  clearRestart(): Promise<AdminResult>;
  reap(peerId: PeerId): Promise<AdminResult>;
  /** Rebuild *this* peer (the one whose API was called) from its upstream. */
  rebuild(): Promise<RebuildResult>;
  /** One-node-write mode by operator: on, off, or 'config' (remove the override). */
  setOnwm(mode: OnwmMode): Promise<AdminResult>;
}

/**
 * Raft membership changes, one server at a time (DESIGN.md). Each throws a ManateeError
 * (MANATEE_ERR_RAFT_CONF_CHANGE_INVALID, MANATEE_ERR_RAFT_NO_LEADER...) when it cannot be made.
 */
export interface MembershipOperations {
  members(): Promise<RaftMembers>;
  /** Adds `id` as a learner at `address` ("host:port"), then promotes it to voter. */
  add(id: PeerId, address: string): Promise<MembershipResult>;
  remove(id: PeerId): Promise<MembershipResult>;
}

/** What GET /watch streams: each committed state change, and each change of the active peers. */
export type WatchEvent =
  | { readonly type: 'state'; readonly state: ClusterState | null; readonly version: number }
  | { readonly type: 'peers'; readonly peers: readonly PeerInfo[] };

/** Bounds on what a caller may ask for (TIGER_STYLE: everything that grows has a limit). */
export interface ApiLimits {
  /** Largest accepted request body. */
  readonly bodyLimitBytes: number;
  /** Most history entries in one GET /history. */
  readonly historyLimitMax: number;
  readonly historyLimitDefault: number;
  /** Most GET /watch streams open at once; one more is answered 503. */
  readonly watchersMax: number;
  /** A comment line on each /watch stream this often, so that proxies and clients see it alive. */
  readonly watchKeepaliveMs: number;
  /** A watcher that does not read and has this much unsent is dropped (it reconnects and re-reads). */
  readonly watchBufferBytesMax: number;
  /** GET /shard asks each other peer's /status with this deadline. */
  readonly peerStatusTimeoutMs: number;
  /** Wrong admin tokens from one address within authFailureWindowMs before it gets 429 on admin routes. */
  readonly authFailuresMax: number;
  readonly authFailureWindowMs: number;
  /** Addresses whose failures are remembered at once (the oldest is forgotten first). */
  readonly authFailureAddressesMax: number;
  /** Open connections at once; more are closed as they arrive. */
  readonly connectionsMax: number;
  /** A connection must have sent a request's headers within this long (half-open and slow clients are cut). */
  readonly headersTimeoutMs: number;
}

export const API_LIMITS_DEFAULT: ApiLimits = {
  bodyLimitBytes: 16 * 1024,
  historyLimitMax: 1000,
  historyLimitDefault: 100,
  watchersMax: 64,
  watchKeepaliveMs: 5000,
  watchBufferBytesMax: 1024 * 1024,
  peerStatusTimeoutMs: 1500,
  authFailuresMax: 10,
  authFailureWindowMs: 60_000,
  authFailureAddressesMax: 10_000,
  connectionsMax: 512,
  headersTimeoutMs: 10_000,
};

export interface ApiDeps {
  /** This peer's id (GET /ping). */
  readonly peerId: PeerId;
  status(): Promise<SitterStatus>;
  /** The committed state (a linearizable read where the store offers one). */
  state(): Promise<VersionedState>;
  /** The newest `limit` history entries, oldest first. */
  history(limit: number): Promise<readonly HistoryEntry[]>;
  /** Peers whose sessions exist now. */
  activePeers(): Promise<readonly PeerInfo[]>;
  /** The tags of the active peers that have any, from their sessions (GET /peers); absent: none shown. */
  activeTags?(): Readonly<Record<PeerId, PeerTags>>;
  readonly admin: AdminOperations;
  readonly membership: MembershipOperations;
  /** Subscribes to committed changes (GET /watch); returns the unsubscribe function. */
  watch(listener: (e: WatchEvent) => void): () => void;
  /** Another peer's GET /status (GET /shard); default: HTTP with limits.peerStatusTimeoutMs. */
  readonly fetchPeerStatus?: (apiUrl: string, timeoutMs: number, peerId?: string) => Promise<SitterStatus>;
  /**
   * HTTPS (TLS 1.3) with this peer's certificate, reloaded with it. A client may present a
   * certificate; the backup routes require one of a peer of the shard.
   */
  readonly tls?: ReloadableTls;
  /** The sitter's metrics (it counts decisions into them); a fresh set when absent. */
  readonly metrics?: ApiMetrics;
  /** Required as `Authorization: Bearer <adminToken>` on every /admin route. Must not be empty. */
  readonly adminToken: string;
  /**
   * Every admin token accepted, read at each request (a rotation's window: src/peer/credentials.ts);
   * absent: adminToken alone.
   */
  readonly adminTokens?: () => readonly string[];
  readonly logger: Logger;
  /** More routes registered by the sitter (the backup server's, issue 6's health checks...). */
  readonly extraPlugins?: readonly FastifyPluginAsync[];
  readonly limits?: Partial<ApiLimits>;
  /** The shard-wide PostgreSQL settings (GET /config, POST /admin/config, GET /pg-settings); absent: no such routes. */
  readonly config?: ConfigDeps;
  /** This peer's PostgreSQL reload and restart (POST /admin/reload-postgres, /admin/restart-postgres); absent: no such routes. */
  readonly pgOps?: PgOperations;
}
