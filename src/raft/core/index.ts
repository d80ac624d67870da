// The pure Raft core: what node.ts, storage/ and the simulator import.
export * from './types.js';
export * from './errors.js';
export { MemoryLog, type MemoryLogInit } from './memory-log.js';
export { RaftCore, type RaftStanding, type RaftStatus } from './raft.js';
export { applyConfChangeTo, decodeConfChange, encodeConfChange, validateConfChange } from './confchange.js';
export { bootstrapSnapshot } from './bootstrap.js';
