export { RaftStorage, WAL_FORMAT_VERSION, type RaftStorageOptions } from './raft-storage.js';
export { LevelRaftStorage, CORRUPT_MARKER } from './level-storage.js';
export type { PersistedState, StorageUpdate } from './types.js';
export { crc32c } from './crc32c.js';
export { entryKey, HARD_STATE_KEY, SNAPSHOT_KEY } from './records.js';
