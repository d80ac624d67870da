// The zfs room: datasets, snapshots, send/receive streams, rollback, isolation; the snapshotter.
export * from './errors.js';
export * from './names.js';
export { ZfsCommand, type ZfsCommandOptions } from './command.js';
export { Zfs, ISOLATED_MOUNTPOINT_PROPERTY, type ZfsOptions, type SnapshotInfo, type CreateDatasetOptions } from './zfs.js';
export { ZfsStreamInterruptedError, ZFS_ERR_STREAM_INTERRUPTED, ZFS_ERR_DIRECT_STREAM, type ZfsSendStream, type ZfsReceiveOptions, type ZfsSocketStream } from './stream.js';
export { Snapshotter, type SnapshotterOptions, type SnapshotterDecision } from './snapshotter.js';
