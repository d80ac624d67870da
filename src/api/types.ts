// What the HTTP API needs from the sitter (src/peer/sitter.ts implements ApiDeps). The API only
// reads and asks: it holds no state of its own, so that any peer's API answers for the shard.
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from '../log.js';
import type { SitterStatus } from '../peer/status.js';
import type { ClusterState, HistoryEntry, PeerId, PeerInfo } from '../store/types.js';

/** The committed cluster state with the store's version of it (the compare-and-set token). */
export interface VersionedState {
  readonly state: ClusterState | null;
  readonly version: number;
}

/** The answer to an admin write: what changed, and the state and version it produced. */
export interface AdminResult {
  /** One line, as the history entry records it. */
  readonly summary: string;
  readonly state: ClusterState;
  readonly version: number;
}

/** The answer to a rebuild request: the rebuild runs in the background; GET /status shows its progress. */
export interface RebuildResult {
  readonly peerId: PeerId;
  readonly started: boolean;
  /** Why (or why not): one line for the operator. */
  readonly message: string;
}

export interface PromoteInput {
  readonly peerId: PeerId;
  /** How long the primary and the sync may take to act on it; PROMOTE_EXPIRE_MS_DEFAULT when absent. */
  readonly expireMs?: number;
}

/**
 * The operators' writes. Each one throws a ManateeError with a stable code when it is refused
 * (src/peer/admin.ts's codes, the store's version mismatch, MANATEE_ERR_RAFT_NO_LEADER...);
 * src/api/errors.ts maps codes to HTTP statuses. A follower's write goes through the store, which
 * forwards it to the Raft leader, so the API never redirects.
 */
export interface AdminOperations {
  freeze(reason: string): Promise<AdminResult>;
  unfreeze(): Promise<AdminResult>;
  promote(input: PromoteInput): Promise<AdminResult>;
  clearPromote(): Promise<AdminResult>;
  reap(peerId: PeerId): Promise<AdminResult>;
  /** Rebuild *this* peer (the one whose API was called) from its upstream. */
  rebuild(): Promise<RebuildResult>;
  setOnwm(on: boolean): Promise<AdminResult>;
}

/** Bounds on what a caller may ask for (TIGER_STYLE: everything that grows has a limit). */
export interface ApiLimits {
  /** Largest accepted request body. */
  readonly bodyLimitBytes: number;
  /** Most history entries in one GET /history. */
  readonly historyLimitMax: number;
  readonly historyLimitDefault: number;
}

export const API_LIMITS_DEFAULT: ApiLimits = {
  bodyLimitBytes: 16 * 1024,
  historyLimitMax: 1000,
  historyLimitDefault: 100,
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
  readonly admin: AdminOperations;
  /** Required as `Authorization: Bearer <adminToken>` on every /admin route. Must not be empty. */
  readonly adminToken: string;
  readonly logger: Logger;
  /** More routes registered by the sitter (the backup server's, issue 6's health checks...). */
  readonly extraPlugins?: readonly FastifyPluginAsync[];
  readonly limits?: Partial<ApiLimits>;
}
