// The backup room: bootstrapping a peer's data from another peer.
export * from './types.js';
export * from './errors.js';
export { backupRoutes, SECRET_HEADER, type BackupRoutesOptions, type BackupJobStatus, type BackupJobState } from './server.js';
export { ZfsBackupBackend, type ZfsBackendOptions } from './zfs-backend.js';
export { ByteProgress } from './rate.js';
