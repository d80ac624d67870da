// src/model: the shared vocabulary of every room (DESIGN.md, "Rooms"). Imports nothing from the
// other rooms.
export * from './peer.js';
export * from './lsn.js';
export * from './cluster-state.js';
export * from './decision.js';
export * from './status.js';
export * from './timeline.js';
export * from './secret-settings.js';
