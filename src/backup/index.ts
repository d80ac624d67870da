// The backup room: bootstrapping a peer's data from another peer.
export * from './types.js';
export * from './errors.js';
export { backupRoutes, SECRET_HEADER, type BackupRoutesOptions, type BackupJobStatus, type BackupJobState } from './server.js';
export { ZfsBackupBackend, type ZfsBackendOptions, type ZfsVerifyConfig } from './zfs-backend.js';
export { verifyDataDir, PG_CONTROL_SIZE_BYTES, STANDBY_SOURCE_STATES, type DataDirCheckOptions, type DataDirReport } from './verify.js';
export { ByteProgress } from './rate.js';
