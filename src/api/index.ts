// The HTTP API: what the sitter builds and listens with, and what the CLI and client read.
//
// Wiring in the sitter (a sketch):
//   const api = await createApi({
//     peerId: config.peerId,
//     status: () => Promise.resolve(sitter.status()),          // SitterStatus, src/peer/status.ts
//     state: () => store.readState(),                          // linearizable read
//     history: (limit) => Promise.resolve(store.history(limit)),
//     activePeers: () => Promise.resolve(store.activePeers()),
//     admin: storeAdminOperations({ store, peerId: config.peerId, startRebuild: () => sitter.startRebuild() }),
//     adminToken: config.adminToken,
//     logger,
//     extraPlugins: [backupRoutes],                            // src/backup's fastify plugin
//   });
//   await api.listen({ host: config.api.listen, port: config.api.port });
//   ... on shutdown: await api.close();
// startRebuild() resolves with a RebuildResult (started or not, and why) or throws a ManateeError,
// e.g. MANATEE_ERR_REBUILD_RUNNING (409) when one is already running.
export { createApi, API_VERSION } from './server.js';
export { ApiMetrics } from './metrics.js';
export { raftMembership, type MembershipNode } from './membership.js';
export { buildShardReport, chainLinks, fetchPeerStatusHttp, lsnDiffBytes, type ShardLink, type ShardPeer, type ShardReport } from './shard.js';
export { evaluateHealth, parseLag, type HealthBody, type HealthCheck, type LagLimit } from './routes/health.js';
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
