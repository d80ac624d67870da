export { RaftStorage, type PersistedState, type StorageUpdate } from './level-storage.js';
export { crc32c } from './crc32c.js';
export { entryKey, HARD_STATE_KEY, SNAPSHOT_KEY } from './records.js';
