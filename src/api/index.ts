// The HTTP API: what the sitter builds and listens with, and what the CLI and client read.
export { createApi } from './server.js';
export { storeAdminOperations, VERSION_MISMATCH_CODE, type AdminStateStore, type StoreAdminOptions } from './admin-ops.js';
export { ApiError, errorBody, statusForCode, type ApiErrorCode, type ErrorBody } from './errors.js';
export { OPERATOR_HEADER } from './routes/admin.js';
export {
  API_LIMITS_DEFAULT,
  type AdminOperations,
  type AdminResult,
  type ApiDeps,
  type ApiLimits,
  type PromoteInput,
  type RebuildResult,
  type VersionedState,
} from './types.js';
