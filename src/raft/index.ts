// What other rooms (src/store, src/peer) import from Raft.
export { RaftNode, RaftOverloadedError, RaftProposalLostError, type RaftNodeOptions, type RaftNodeStatus, type RaftNodeEvents } from './node.js';
export { RaftNoLeaderError, RaftTimeoutError, RaftLeaderChangedError, RaftStoppedError, RaftStorageCorruptError, RaftStorageError, RaftConfigError, RaftLeaderMessageTooLargeError } from './errors.js';
export type { StateMachine, AppliedEntry } from './state-machine.js';
export type { NodeId, ConfState, ConfChange } from './core/types.js';
export { ProposalDroppedError, ConfChangeInvalidError } from './core/errors.js';
export type { TransportStats } from './transport/tcp-transport.js';
