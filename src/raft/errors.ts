// Typed errors of the running Raft node (storage, transport, node). The core has its own
// (ProposalDroppedError); these are the ones a caller of RaftNode matches by `code`.
import { ManateeError } from '../errors.js';

/** Not the leader, and no leader is known: retry later or elsewhere. */
export class RaftNoLeaderError extends ManateeError {
  constructor(message = 'no Raft leader is known') {
    super('MANATEE_ERR_RAFT_NO_LEADER', message);
  }
}

/** The command or read did not complete in time. A proposal may still be applied later. */
export class RaftTimeoutError extends ManateeError {
  constructor(message: string) {
    super('MANATEE_ERR_RAFT_TIMEOUT', message);
  }
}

/**
 * A proposal forwarded to a leader that is no longer the leader, before this node saw it applied.
 * Like a timeout, its outcome is unknown (the old leader may have appended it, and the new leader
 * may still commit it), but the caller hears so at the leader change, not at its timeout: a
 * proposal that the old leader dropped (e.g. during a leadership transfer) is never answered.
 */
export class RaftLeaderChangedError extends ManateeError {
  constructor(message: string) {
    super('MANATEE_ERR_RAFT_LEADER_CHANGED', message);
  }
}

/** The node is shutting down or closed. */
export class RaftStoppedError extends ManateeError {
  constructor(message = 'the Raft node is stopped') {
    super('MANATEE_ERR_RAFT_STOPPED', message);
  }
}

/**
 * A record on disk failed its checksum, did not parse, or contradicts the rest of the log
 * (a gap in indexes, a term above the hard state's term). The node refuses to start: it must
 * never run on silently wrong state. `file` is the LevelDB directory, `key` the record's key.
 */
export class RaftStorageCorruptError extends ManateeError {
  readonly file: string;
  readonly key: string;
  readonly index: number | null;

  constructor(file: string, key: string, index: number | null, reason: string) {
    const where = index === null ? `key ${key}` : `key ${key} (index ${index})`;
    super('MANATEE_ERR_RAFT_STORAGE_CORRUPT', `Raft storage ${file} is corrupt at ${where}: ${reason}`);
    this.file = file;
    this.key = key;
    this.index = index;
  }
}

/** The storage could not be opened or written (disk full, permissions, lock held by another process). */
export class RaftStorageError extends ManateeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MANATEE_ERR_RAFT_STORAGE', message, options);
  }
}

/** A configuration value given to the node or transport is invalid. */
export class RaftConfigError extends ManateeError {
  constructor(message: string) {
    super('MANATEE_ERR_RAFT_CONFIG', message);
  }
}

/** sendToLeader() was given more data than a leader message may carry. */
export class RaftLeaderMessageTooLargeError extends ManateeError {
  constructor(lengthChars: number, maxChars: number) {
    super('MANATEE_ERR_RAFT_LEADER_MESSAGE_TOO_LARGE', `a message to the leader holds ${lengthChars} characters, more than the ${maxChars} allowed`);
  }
}
