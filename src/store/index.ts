// The cluster store: the replicated state machine on Raft (cluster state, sessions, history)
// and the client API that the sitter uses.
export * from './errors.js';
export * from './validate.js';
export * from './summary.js';
export * from './commands.js';
export * from './settings.js';
export * from './state-machine.js';
export * from './sessions.js';
export * from './consensus.js';
export * from './store.js';
export * from './raft-consensus.js';
