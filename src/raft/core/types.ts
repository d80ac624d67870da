// The vocabulary of the Raft core: what it persists, what it sends, what it hands back.
// Shared by core/, storage/, transport/ and node.ts. Pure data: no I/O, no classes.

/** A peer's id in the Raft group. The same as the Manatee peer id. Never reused. */
export type NodeId = string;

/**
 * A log entry. `data` is opaque to Raft: the store puts a JSON command there.
 * - `normal`: an application command (data may be "" for the empty entry a new leader appends).
 * - `confChange`: `data` is the JSON of a `ConfChange`; it takes effect when applied.
 */
export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: 'normal' | 'confChange';
  readonly data: string;
}

/** The part of a node's state that must be on disk (fsynced) before it sends any message. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
}

/** Who is in the group. Learners receive the log but do not vote and do not count for quorum. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** One membership change, one server at a time (Raft dissertation §4.1). */
export interface ConfChange {
  readonly type: 'addLearner' | 'promote' | 'remove';
  readonly nodeId: NodeId;
  /** Opaque context for the application (e.g. the new peer's address). */
  readonly context?: string;
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

/** A snapshot of the state machine up to and including `metadata.index`. `data` is opaque. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: string;
}

export type MessageType =
  | 'preVote'
  | 'preVoteResp'
  | 'vote'
  | 'voteResp'
  | 'append'
  | 'appendResp'
  | 'heartbeat'
  | 'heartbeatResp'
  | 'snapshot'
  | 'snapshotStatus'
  | 'timeoutNow'
  | 'propose'
  | 'readIndex'
  | 'readIndexResp'
  | 'transferLeader';

/**
 * A message between Raft nodes. Fields are used per type as in etcd's raftpb.Message:
 * `index`/`logTerm` locate the entry before `entries` (append) or the candidate's last entry (vote);
 * `reject`/`rejectHint`/`logTerm` carry the follower's hint for fast backtracking (appendResp);
 * `context` carries a ReadIndex request id.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly logTerm?: number;
  readonly index?: number;
  readonly entries?: readonly Entry[];
  readonly commit?: number;
  readonly reject?: boolean;
  readonly rejectHint?: number;
  readonly snapshot?: Snapshot;
  readonly context?: string;
}

export type RaftRole = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state that the application may want to observe (not persisted). */
export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: RaftRole;
}

/** A ReadIndex result: once `index` is applied, a read for request `context` is linearizable. */
export interface ReadState {
  readonly index: number;
  readonly context: string;
}

/**
 * The batch of work that the core hands to its driver (node.ts or the simulator).
 * The driver must, in order:
 *   1. persist `snapshot` (if any), then `entries`, then `hardState` (if any), with fsync;
 *   2. send `messages` (only after step 1: a vote or an ack must not outrun its persistence);
 *   3. apply `committedEntries` to the state machine, in order;
 *   4. call `advance(ready)`.
 * Only one Ready is outstanding at a time: `hasReady()` is false until `advance`. The driver may keep
 * calling `step`/`tick` between `ready()` and `advance()`; what they produce comes in the next Ready.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
}

/** Configuration of one core instance. Times are counted in ticks; the driver decides a tick's length. */
export interface RaftConfig {
  readonly id: NodeId;
  /** A follower starts an election after a randomized timeout in [electionTicks, 2*electionTicks). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Most entries in one append message. */
  readonly maxEntriesPerMessage: number;
  /**
   * Optional: most bytes of entry data in one append message (one entry is always sent, whatever
   * its size). Default 8 MiB, so that a batch stays well under the transport's frame limit.
   */
  readonly maxBytesPerMessage?: number;
  /** Most append messages in flight (unacknowledged) to one follower. */
  readonly maxInflightMessages: number;
  /** Most entries kept in the proposal queue of a leader before proposals are refused. */
  readonly maxUncommittedEntries: number;
  /** Seeded random source in [0, 1). The core never calls Math.random. */
  readonly random: () => number;
  /**
   * Optional: the last index the state machine has already applied (e.g. restored from its own
   * snapshot). Defaults to the stored snapshot's index; committed entries after it are handed out again.
   * If set beyond the snapshot, `LogReader.initialState().confState` must be the configuration as of
   * this index (conf change entries up to it are not handed out again).
   */
  readonly applied?: number;
  /**
   * Optional (default false): when an acknowledgement moves the commit index, a leader does not
   * send it to the followers at once (an append with no entries to each, and an answer from each);
   * the driver calls broadcastCommit() a moment later, and the next proposal's appends, which
   * carry the commit index anyway, usually make that unnecessary. Saves half of the messages of a
   * lone proposal.
   */
  readonly deferCommitBroadcast?: boolean;
}

/**
 * What the core reads from stable storage (like etcd's raft.Storage). The driver appends
 * entries to it *after* persisting them, so the core sees only durable entries here.
 */
export interface LogReader {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi). Throws CompactedError if lo <= snapshot index. */
  entries(lo: number, hi: number): Entry[];
  /** Term of entry i; for i === snapshot index returns the snapshot's term. Throws CompactedError below it. */
  term(i: number): number;
  /** Index of the first entry still in the log (snapshot index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}
