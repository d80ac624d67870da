// The HTTP API: what the sitter builds and listens with, and what the CLI and client read.
//
// Wiring in the sitter (src/peer/sitter.ts does this):
//   const metrics = new ApiMetrics();                          // the loop calls metrics.recordDecision(kind)
//   const api = await createApi({
//     peerId: config.peerId,
//     status: () => Promise.resolve(sitter.status()),          // SitterStatus, src/peer/status.ts (with its heartbeat)
//     state: () => store.readState(),                          // linearizable read
//     history: (limit) => Promise.resolve(store.history(limit)),
//     activePeers: () => Promise.resolve(store.activePeers()),
//     admin: storeAdminOperations({ store, peerId: config.peerId, startRebuild: () => sitter.startRebuild() }),
//     membership: raftMembership(node),                        // POST/DELETE /admin/peers, GET /members
//     watch: (listener) => ...store.on('state'/'peers')...,    // GET /watch (server-sent events)
//     metrics,                                                 // GET /metrics
//     adminToken: config.adminToken,
//     logger,
//     extraPlugins: [backupRoutes],                            // src/backup's fastify plugin
//   });
//   await api.listen({ host: config.api.listen, port: config.api.port });
//   ... on shutdown: await api.close();                        // ends /watch streams first
// startRebuild() resolves with a RebuildResult (started or not, and why) or throws a ManateeError,
// e.g. MANATEE_ERR_REBUILD_RUNNING (409) when one is already running.
// GET /shard asks the other peers' GET /status itself (fetchPeerStatus, default over HTTP).
export { createApi, API_VERSION } from './server.js';
export { ApiMetrics } from './metrics.js';
export { raftMembership, type MembershipNode } from './membership.js';
export { buildShardReport, chainLinks, fetchPeerStatusHttp, lsnDiffBytes, type ShardLink, type ShardPeer, type ShardReport } from './shard.js';
export { evaluateHealth, parseLag, type HealthBody, type HealthCheck, type LagLimit } from './routes/health.js';
export { PrimaryPositionCache, type PrimaryPosition } from './primary-position.js';
export { storeAdminOperations, VERSION_MISMATCH_CODE, type AdminStateStore, type StoreAdminOptions } from './admin-ops.js';
export { ApiError, errorBody, statusForCode, type ApiErrorCode, type ErrorBody } from './errors.js';
export { OPERATOR_HEADER } from './routes/admin.js';
export {
  API_LIMITS_DEFAULT,
  type AdminOperations,
  type AdminResult,
  type ApiDeps,
  type ApiLimits,
  type MembershipOperations,
  type MembershipResult,
  type RaftMembers,
  type WatchEvent,
  type PromoteInput,
  type RebuildResult,
  type VersionedState,
} from './types.js';
