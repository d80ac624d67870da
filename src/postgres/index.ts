// src/postgres: PostgreSQL 15 as a managed child process. The sitter uses PostgresServer
// (start/stop/configure/promote/enableWrites/WAL positions), PgHealthChecker and pgRewind.
export * from './errors.js';
export * from './binaries.js';
export type { OsUser } from './os-user.js';
export { resolveOsUser } from './os-user.js';
export type { PgRole, RenderedRole } from './config.js';
export {
  FILE_ENFORCED_CONF, FILE_MANATEE_CONF, FILE_OVERRIDES_CONF, FILE_HBA_CONF, FILE_IDENT_CONF, FILE_STANDBY_SIGNAL, NO_SYNC_PLACEHOLDER,
} from './config.js';
export type { WalPositions, ReplicationRow, SyncCatchUp } from './replication.js';
export { readTimelineHistory } from './replication.js';
export { closeClient, HeldConnection, type HeldConnectionOptions } from './connection.js';
export { DEFAULT_STOP_TIMEOUT_MS, PostgresServer, peerAddressTable, type PgPeer, type PostgresServerOptions, type PgExit, type ConfigureResult, type ShardSettingsApplied, type ShutdownMode } from './server.js';
export { FILE_SHARD_CONF, rejectedSettings, sourceOfFile, type PeerSettingReport, type RejectedSetting, type RejectedSettingRow, type SettingSource } from './shard-conf.js';
export { PgHealthChecker, type HealthResult, type HealthCheckerOptions } from './health.js';
export { pgRewind, type RewindOptions, type RewindResult } from './rewind.js';
export { parsePgUrl, endpointConninfo, type PgEndpoint } from './url.js';
export { parseProgressLine, ProgressTracker, type CopyProgress } from './progress.js';
export { checkPostmaster, readPostmasterPid } from './postmaster-pid.js';
export {
  checkSetting, checkSettings, readPgSettings, PgSettingsCatalog, PgSettingsError, PG_SETTINGS_QUERY, SETTING_VALUE_CHARS_MAX,
  type CheckedSetting, type PgSettingRow, type PgSettingContext, type PgSettingType, type SettingProblem, type SettingErrorCode,
} from './settings.js';
export { MANATEE_SETTINGS, type Ownership } from './owned-settings.js';
