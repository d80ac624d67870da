// Errors of the Raft core. Stable codes so that node.ts, the store and the CLI can match them.
import { ManateeError } from '../../errors.js';

/** Why a proposal (or a read, or a conf change) was refused by the core without being appended. */
export type DropReason =
  | 'noLeader'
  | 'leadershipTransfer'
  | 'tooManyUncommitted'
  | 'confChangePending'
  | 'tooManyPendingReads'
  | 'notMember';

/** The core refused a proposal: the caller may retry later (for example once a leader is known). */
export class ProposalDroppedError extends ManateeError {
  readonly reason: DropReason;
  constructor(reason: DropReason, detail: string) {
    super('MANATEE_ERR_RAFT_PROPOSAL_DROPPED', `proposal dropped (${reason}): ${detail}`);
    this.reason = reason;
  }
}

/** A conf change that makes no sense against the current configuration (e.g. promote a non-learner). */
export class ConfChangeInvalidError extends ManateeError {
  constructor(detail: string) {
    super('MANATEE_ERR_RAFT_CONF_CHANGE_INVALID', `invalid conf change: ${detail}`);
  }
}

/** The requested log index was compacted into a snapshot. */
export class CompactedError extends ManateeError {
  constructor(index: number, firstIndex: number) {
    super('MANATEE_ERR_RAFT_LOG_COMPACTED', `log index ${index} is compacted (first index ${firstIndex})`);
  }
}

/** The requested log index is beyond the end of the log. */
export class UnavailableError extends ManateeError {
  constructor(index: number, lastIndex: number) {
    super('MANATEE_ERR_RAFT_LOG_UNAVAILABLE', `log index ${index} is unavailable (last index ${lastIndex})`);
  }
}

/** A snapshot older than the one already held was offered. */
export class SnapshotOutOfDateError extends ManateeError {
  constructor(index: number, current: number) {
    super('MANATEE_ERR_RAFT_SNAPSHOT_OUT_OF_DATE', `snapshot at ${index} is older than the current one at ${current}`);
  }
}

/** A broken invariant: the core stops loudly rather than continue with corrupt state (TigerBeetle style). */
export class RaftInvariantError extends ManateeError {
  constructor(detail: string) {
    super('MANATEE_ERR_RAFT_INVARIANT', `raft invariant violated: ${detail}`);
  }
}

export function invariant(condition: boolean, detail: string | (() => string)): asserts condition {
  if (!condition) throw new RaftInvariantError(typeof detail === 'string' ? detail : detail());
}
