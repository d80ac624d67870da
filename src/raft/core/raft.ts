// The Raft state machine (etcd's raft.go in TypeScript). Pure: it takes ticks, messages and local
// requests, and hands back a Ready batch of what to persist, send and apply. No I/O, no clock, no
// Math.random: given the same inputs and random source it does the same thing.
import { applyConfChangeTo, decodeConfChange, encodeConfChange, validateConfChange } from './confchange.js';
import { ProposalDroppedError, invariant } from './errors.js';
import { RaftLog } from './log.js';
import type { Progress, ProgressState } from './progress.js';
import { quorumSize } from './quorum.js';
import { ReadOnly } from './read-only.js';
import { ProgressTracker } from './tracker.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  LogReader,
  Message,
  NodeId,
  RaftConfig,
  RaftRole,
  ReadState,
  Ready,
  SoftState,
} from './types.js';

/** Context of a vote request sent after TimeoutNow: voters grant it even within a leader lease. */
const TRANSFER_CONTEXT = 'transfer';
/** Most committed entries handed out in one Ready (the driver applies them in one batch). */
const MAX_COMMITTED_ENTRIES_PER_READY = 1024;
/** Most ReadIndex requests pending at once on a leader (including those waiting for its first commit). */
const MAX_PENDING_READS = 4096;
/** Default bound on entry data in one append message (see RaftConfig.maxBytesPerMessage). */
const DEFAULT_MAX_BYTES_PER_MESSAGE = 8 * 1024 * 1024;
/** Most messages buffered between two Ready batches; beyond this the core is being misdriven. */
const MAX_BUFFERED_MESSAGES = 100_000;
/**
 * Ticks between the early campaigns of two voters next in rank (electionSoon): long enough for a
 * pre-vote and a vote round to finish before the next voter starts one, so they do not split.
 */
const ELECTION_STAGGER_TICKS = 2;

/** A node's term, leader and role (RaftCore.standing). */
export interface RaftStanding {
  readonly term: number;
  readonly leader: NodeId | null;
  readonly role: RaftRole;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly leader: NodeId | null;
  readonly role: RaftRole;
  readonly lastIndex: number;
  readonly confState: ConfState;
  readonly leadTransferee: NodeId | null;
  readonly progress?: Record<NodeId, { match: number; next: number; state: ProgressState }>;
}

type CampaignType = 'preElection' | 'election' | 'transfer';

function validateConfig(c: RaftConfig): void {
  invariant(c.id !== '', 'config: id must not be empty');
  invariant(Number.isInteger(c.heartbeatTicks) && c.heartbeatTicks > 0, 'config: heartbeatTicks must be a positive integer');
  invariant(Number.isInteger(c.electionTicks) && c.electionTicks > c.heartbeatTicks, 'config: electionTicks must be an integer above heartbeatTicks');
  invariant(c.maxEntriesPerMessage > 0, 'config: maxEntriesPerMessage must be positive');
  invariant(c.maxInflightMessages > 0, 'config: maxInflightMessages must be positive');
  invariant(c.maxUncommittedEntries > 0, 'config: maxUncommittedEntries must be positive');
  invariant(c.maxBytesPerMessage === undefined || c.maxBytesPerMessage > 0, 'config: maxBytesPerMessage must be positive');
}

export class RaftCore {
  readonly id: NodeId;
  private readonly config: RaftConfig;
  readonly raftLog: RaftLog;
  private readonly tracker: ProgressTracker;
  private readonly readOnly = new ReadOnly(MAX_PENDING_READS);

  private term = 0;
  private vote: NodeId | null = null;
  private role: RaftRole = 'follower';
  private lead: NodeId | null = null;
  private leadTransferee: NodeId | null = null;
  /** Index of the latest conf change proposed by this leader; a new one waits until it is applied. */
  private pendingConfIndex = 0;
  /** ReadIndex requests received before this leader committed an entry of its term (thesis §6.4 step 1). */
  private pendingReadRequests: { from: NodeId; context: string }[] = [];
  /** Leader, deferCommitBroadcast: the commit index moved and no append has carried it to everyone yet. */
  private commitUnsent = false;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];

  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** The Ready handed out and not yet advanced: at most one at a time. */
  private outstanding: Ready | null = null;

  constructor(config: RaftConfig, log: LogReader) {
    validateConfig(config);
    this.config = config;
    this.id = config.id;
    this.tracker = new ProgressTracker(config.maxInflightMessages);
    const { hardState, confState } = log.initialState();
    this.raftLog = new RaftLog(log, config.applied);
    invariant(hardState.commit <= this.raftLog.lastIndex(), () =>
      `stored commit ${hardState.commit} is beyond the stored last index ${this.raftLog.lastIndex()}`);
    this.raftLog.commitTo(hardState.commit);
    invariant(this.raftLog.applied <= this.raftLog.committed, () =>
      `applied ${this.raftLog.applied} is beyond commit ${this.raftLog.committed}`);
    this.tracker.setConf(confState, this.raftLog.lastIndex() + 1);
    this.becomeFollower(hardState.term, null);
    this.vote = hardState.vote;
    this.prevHardState = this.hardState();
    this.prevSoftState = this.softState();
  }

  // ---------------------------------------------------------------------------------------------
  // Public surface

  tick(): void {
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  /** The next tick() broadcasts a heartbeat (this node leads and its heartbeat interval is up). */
  heartbeatDueAtNextTick(): boolean {
    return this.role === 'leader' && this.heartbeatElapsed + 1 >= this.config.heartbeatTicks;
  }

  /**
   * For a follower that knows its leader: how many more ticks with no message from it until its
   * election timeout runs out (at least 1). Null otherwise (a leader, a candidate, a follower with
   * no leader). A driver may skip a follower's ticks between the leader's messages and tick at
   * them instead, as long as its own clock runs out no later than this.
   */
  ticksUntilElectionTimeout(): number | null {
    if (this.role !== 'follower' || this.lead === null) return null;
    return Math.max(1, this.randomizedElectionTimeout - this.electionElapsed);
  }

  /**
   * For a leader: how many more ticks until it broadcasts its next heartbeat (at least 1). Null
   * otherwise. Between heartbeats a leader's ticks only count (its check-quorum and an unfinished
   * transfer, at the election timeout, may run up to this many ticks late): a driver may run them
   * together when this many have come due.
   */
  ticksUntilHeartbeat(): number | null {
    if (this.role !== 'leader') return null;
    return Math.max(1, this.config.heartbeatTicks - this.heartbeatElapsed);
  }

  /** Start an election now (with a PreVote round first when preVote is on). */
  campaign(): void {
    this.hup(this.config.preVote ? 'preElection' : 'election');
  }

  propose(data: string): void {
    this.proposeEntry({ term: 0, index: 0, type: 'normal', data });
  }

  proposeConfChange(cc: ConfChange): void {
    if (this.role === 'leader') {
      if (this.leadTransferee !== null) {
        throw new ProposalDroppedError('leadershipTransfer', `leadership is being transferred to ${this.leadTransferee}`);
      }
      if (this.pendingConfIndex > this.raftLog.applied) {
        throw new ProposalDroppedError('confChangePending',
          `conf change at index ${this.pendingConfIndex} is not applied yet (applied ${this.raftLog.applied})`);
      }
      validateConfChange(this.tracker.confState(), cc);
    }
    this.proposeEntry({ term: 0, index: 0, type: 'confChange', data: encodeConfChange(cc) });
  }

  /** Called by the driver when it applies a committed confChange entry. Returns the new configuration. */
  applyConfChange(cc: ConfChange): ConfState {
    const before = this.tracker.confState();
    const after = applyConfChangeTo(before, cc);
    if (after === before) return before;
    const next = this.raftLog.lastIndex() + 1;
    const existing = new Map(this.tracker.progress);
    this.tracker.setConf(after, next);
    // Keep what we knew of members that stay (a promoted learner keeps its match).
    for (const [id, pr] of existing) {
      if (this.tracker.progress.has(id)) {
        pr.isLearner = this.tracker.isLearner(id);
        this.tracker.progress.set(id, pr);
      }
    }
    if (cc.type === 'addLearner') {
      const pr = this.tracker.progress.get(cc.nodeId);
      if (pr !== undefined) pr.recentActive = true;
    }
    if (this.role !== 'leader') return this.tracker.confState();
    if (!this.tracker.isVoter(this.id)) {
      // The leader was removed (or demoted): it steps down once the change is applied, and will not campaign.
      this.becomeFollower(this.term, null);
      return this.tracker.confState();
    }
    if (this.leadTransferee !== null && !this.tracker.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    // A smaller quorum may commit what was waiting.
    if (this.maybeCommit()) this.bcastAppend();
    else for (const id of this.tracker.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
    return this.tracker.confState();
  }

  /** True when a leader with deferCommitBroadcast has a commit index its followers were not sent. */
  hasUnsentCommit(): boolean {
    return this.commitUnsent && this.role === 'leader';
  }

  /**
   * Sends the commit index to every follower now (with deferCommitBroadcast, the driver calls this
   * a moment after a commit, unless a new proposal's appends carried it meanwhile).
   */
  broadcastCommit(): void {
    if (!this.hasUnsentCommit()) return;
    this.bcastAppend();
  }

  readIndex(context: string): void {
    if (this.role === 'leader') {
      this.leaderReadIndex(this.id, context, true);
      return;
    }
    if (this.lead === null) throw new ProposalDroppedError('noLeader', `no leader known at term ${this.term} for read ${context}`);
    this.send({ type: 'readIndex', from: this.id, to: this.lead, term: 0, context });
  }

  transferLeadership(to: NodeId): void {
    if (this.role === 'leader') {
      this.handleTransferLeader(to);
      return;
    }
    if (this.lead === null) throw new ProposalDroppedError('noLeader', `no leader known at term ${this.term} to transfer leadership`);
    this.send({ type: 'transferLeader', from: this.id, to: this.lead, term: this.term, context: to });
  }

  /**
   * The driver's dial to `id` was refused: nothing listens at its address, so its process is gone.
   * A follower whose leader that is forgets it and campaigns within a few ticks (electionSoon)
   * instead of a full election timeout. Only liveness changes: votes and terms follow the same
   * rules, and a leader that is alive after all is followed again at its next heartbeat, while the
   * other voters, still in its lease, ignore this node's pre-vote.
   */
  reportRefused(id: NodeId): void {
    if (this.role !== 'follower' || this.lead !== id || id === this.id) return;
    this.lead = null;
    this.electionSoon(id);
  }

  /**
   * The driver has just started this node: with no leader known it campaigns within a few ticks
   * (electionSoon) instead of a full election timeout. A node that restarts into a live group only
   * sends a pre-vote that the others, in their leader's lease, ignore.
   */
  campaignSoon(): void {
    if (this.role !== 'follower' || this.lead !== null) return;
    this.electionSoon(null);
  }

  /** The driver could not reach `id`: a leader stops pipelining to it and probes instead. */
  reportUnreachable(id: NodeId): void {
    if (this.role !== 'leader') return;
    const pr = this.tracker.progress.get(id);
    if (pr?.state === 'replicate') pr.becomeProbe();
  }

  /** The driver reports whether a snapshot message to `id` was delivered (ok) or failed. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    if (this.role !== 'leader') return;
    const pr = this.tracker.progress.get(id);
    if (pr?.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    // Either way, wait for the follower's answer (or the next heartbeat) before sending more.
    pr.becomeProbe();
    pr.probeSent = true;
  }

  step(m: Message): void {
    invariant(m.to === this.id, () => `message for ${m.to} stepped into ${this.id}`);
    if (m.term === 0) {
      this.stepLocal(m);
      return;
    }
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        const force = m.context === TRANSFER_CONTEXT;
        // Leader lease: a node that hears from a live leader ignores vote requests (CheckQuorum), and
        // never grants a pre-vote (thesis §9.6), so a rejoining partitioned node cannot disrupt it.
        const heardFromLeader = this.lead !== null && this.electionElapsed < this.config.electionTicks;
        const inLease = heardFromLeader && (this.config.checkQuorum || m.type === 'preVote');
        if (!force && inLease) return;
      }
      if (m.type === 'preVote') {
        // A pre-vote does not change our term.
      } else if (m.type === 'preVoteResp' && m.reject !== true) {
        // A granted pre-vote carries the future term; we move to it only when we win the pre-vote.
      } else if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, null);
      }
    } else if (m.term < this.term) {
      if ((this.config.checkQuorum || this.config.preVote) && (m.type === 'heartbeat' || m.type === 'append')) {
        // A stale leader (e.g. back from a partition) learns of the new term and steps down. Without
        // this, with PreVote it could never win again nor learn that it was replaced.
        this.send({ type: 'appendResp', from: this.id, to: m.from, term: this.term });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case 'vote':
      case 'preVote':
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
    }
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const ss = this.softState();
    if (ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role) return true;
    if (!hardStateEqual(this.hardState(), this.prevHardState)) return true;
    if (this.raftLog.unstable.snapshot !== null) return true;
    if (this.raftLog.unstable.entries.length > 0) return true;
    if (this.msgs.length > 0 || this.readStates.length > 0) return true;
    return this.raftLog.hasNextCommittedEntries();
  }

  ready(): Ready {
    invariant(this.outstanding === null, 'ready() called again before advance()');
    const ss = this.softState();
    const hs = this.hardState();
    const rd: Ready = {
      softState: ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role ? ss : null,
      hardState: hardStateEqual(hs, this.prevHardState) ? null : hs,
      entries: this.raftLog.unstableEntries(),
      snapshot: this.raftLog.unstable.snapshot,
      committedEntries: this.raftLog.nextCommittedEntries(MAX_COMMITTED_ENTRIES_PER_READY),
      messages: this.msgs,
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    this.outstanding = rd;
    return rd;
  }

  advance(rd: Ready): void {
    invariant(this.outstanding === rd, 'advance() with a Ready that is not the outstanding one');
    this.outstanding = null;
    if (rd.softState !== null) this.prevSoftState = rd.softState;
    if (rd.hardState !== null) {
      invariant(rd.hardState.commit >= this.prevHardState.commit, 'persisted commit went back');
      invariant(rd.hardState.term >= this.prevHardState.term, 'persisted term went back');
      this.prevHardState = rd.hardState;
    }
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted !== undefined) this.raftLog.appliedTo(lastCommitted.index);
    else if (rd.snapshot !== null && rd.snapshot.metadata.index > this.raftLog.applied) this.raftLog.appliedTo(rd.snapshot.metadata.index);
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) this.raftLog.stableTo(lastEntry.index, lastEntry.term);
    if (rd.snapshot !== null) this.raftLog.stableSnapTo(rd.snapshot.metadata.index);
    // Reads that waited for this leader's first commit can go now.
    this.releasePendingReadRequests();
  }

  /** Its term, leader and role: status()'s cheap part, for callers that ask on every message or tick. */
  standing(): RaftStanding {
    return { term: this.term, leader: this.lead, role: this.role };
  }

  /** What the node knows now. `withProgress` (default true) adds the leader's view of each follower. */
  status(withProgress = true): RaftStatus {
    const base = {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.raftLog.committed,
      applied: this.raftLog.applied,
      leader: this.lead,
      role: this.role,
      lastIndex: this.raftLog.lastIndex(),
      confState: this.tracker.confState(),
      leadTransferee: this.leadTransferee,
    };
    if (this.role !== 'leader' || !withProgress) return base;
    const progress: Record<NodeId, { match: number; next: number; state: ProgressState }> = {};
    for (const [id, pr] of this.tracker.progress) progress[id] = { match: pr.match, next: pr.next, state: pr.state };
    return { ...base, progress };
  }

  // ---------------------------------------------------------------------------------------------
  // State transitions

  private softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  private promotable(): boolean {
    return this.tracker.isVoter(this.id);
  }

  private reset(term: number): void {
    invariant(term >= this.term, () => `term went back ${this.term} -> ${term}`);
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.tracker.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.tracker.progress) {
      pr.match = id === this.id ? last : 0;
      pr.next = last + 1;
      pr.becomeProbe();
      pr.next = last + 1;
      pr.recentActive = false;
    }
    this.pendingConfIndex = 0;
    this.commitUnsent = false;
    this.readOnly.reset();
    this.pendingReadRequests = [];
  }

  private resetRandomizedElectionTimeout(): void {
    const r = this.config.random();
    invariant(r >= 0 && r < 1, () => `random source returned ${r}, outside [0, 1)`);
    this.randomizedElectionTimeout = this.config.electionTicks + Math.floor(r * this.config.electionTicks);
  }

  private becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    invariant(this.role !== 'leader', 'a leader cannot become a pre-candidate');
    // PreVote: neither the term nor the vote changes, so a node that cannot win disrupts nobody.
    this.tracker.resetVotes();
    this.lead = null;
    this.role = 'preCandidate';
  }

  private becomeCandidate(): void {
    invariant(this.role !== 'leader', 'a leader cannot become a candidate');
    this.reset(this.term + 1);
    this.setVote(this.id);
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    invariant(this.role === 'candidate', 'only a candidate becomes leader');
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    const self = this.tracker.progress.get(this.id);
    if (self !== undefined) {
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Raft §8: a new leader appends an empty entry of its term, to commit what earlier terms left.
    const ok = this.appendEntries([{ term: 0, index: 0, type: 'normal', data: '' }], true);
    invariant(ok, 'the empty entry of a new leader was refused');
    // No conf change until that entry is applied: conf changes left uncommitted by earlier terms are
    // then settled, and the leader has committed an entry of its own term (the fix to the
    // single-server membership change bug, Ongaro 2015). Stricter than etcd, which waits for the tail before it.
    this.pendingConfIndex = this.raftLog.lastIndex();
  }

  private setVote(id: NodeId): void {
    invariant(this.vote === null || this.vote === id, () =>
      `${this.id} would vote twice in term ${this.term}: ${this.vote} then ${id}`);
    this.vote = id;
  }

  // ---------------------------------------------------------------------------------------------
  // Ticks

  /**
   * Brings this follower's next campaign to within 1 + ELECTION_STAGGER_TICKS × rank ticks, its
   * rank being its place among the voters by id (`gone` left out), so that voters that learn at
   * the same moment that there is no leader campaign one after the other rather than together.
   */
  private electionSoon(gone: NodeId | null): void {
    const rank = this.tracker.voters.filter((v) => v !== gone).indexOf(this.id);
    if (rank < 0) return;
    const ticks = 1 + ELECTION_STAGGER_TICKS * rank;
    this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElectionTimeout - ticks);
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.config.preVote ? 'preElection' : 'election');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) {
        if (!this.tracker.quorumActive()) {
          // CheckQuorum: cut off from a majority for an election timeout, we step down so that
          // clients go to a leader that can make progress (and our lease-based guarantees hold).
          this.becomeFollower(this.term, null);
          return;
        }
        for (const [id, pr] of this.tracker.progress) if (id !== this.id) pr.recentActive = false;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.leadTransferee !== null) this.abortLeaderTransfer();
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat(null);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Elections

  private hup(type: CampaignType): void {
    if (this.role === 'leader') return;
    if (!this.promotable()) return;
    // A node that has not applied a committed conf change might campaign with an old configuration.
    if (this.hasUnappliedConfChange()) return;
    this.startCampaign(type);
  }

  private hasUnappliedConfChange(): boolean {
    if (this.raftLog.committed <= this.raftLog.applied) return false;
    const lo = Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
    const hi = this.raftLog.committed + 1;
    if (lo >= hi) return false;
    return this.raftLog.slice(lo, hi).some((e) => e.type === 'confChange');
  }

  private startCampaign(type: CampaignType): void {
    let voteType: 'vote' | 'preVote';
    let term: number;
    if (type === 'preElection') {
      this.becomePreCandidate();
      voteType = 'preVote';
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = 'vote';
      term = this.term;
    }
    this.tracker.recordVote(this.id, true);
    if (this.tracker.tallyVotes() === 'won') {
      // A single-voter group wins at once.
      if (type === 'preElection') this.startCampaign('election');
      else this.becomeLeader();
      return;
    }
    const index = this.raftLog.lastIndex();
    const logTerm = this.raftLog.lastTerm();
    for (const id of this.tracker.voters) {
      if (id === this.id) continue;
      const m: Message = type === 'transfer'
        ? { type: voteType, from: this.id, to: id, term, index, logTerm, context: TRANSFER_CONTEXT }
        : { type: voteType, from: this.id, to: id, term, index, logTerm };
      this.send(m);
    }
  }

  private handleVoteRequest(m: Message): void {
    const respType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.lead === null) ||
      (m.type === 'preVote' && m.term > this.term);
    if (canVote && this.raftLog.isUpToDate(m.index ?? 0, m.logTerm ?? 0)) {
      // The response carries the request's term: a granted pre-vote is for the future term.
      this.send({ type: respType, from: this.id, to: m.from, term: m.term });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.setVote(m.from);
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Steps per role

  /** Messages with term 0: proposals and reads forwarded by followers. */
  private stepLocal(m: Message): void {
    switch (m.type) {
      case 'propose':
        if (this.role !== 'leader') return; // forwarded once only: never forward again (no loops)
        this.leaderAcceptForwarded(m.entries ?? []);
        return;
      case 'readIndex':
        if (this.role !== 'leader' || m.context === undefined) return;
        this.leaderReadIndex(m.from, m.context, false);
        return;
      default:
        return; // any other message must carry a term: ignore
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'transferLeader':
        if (m.context !== undefined) this.handleTransferLeader(m.context);
        return;
      case 'appendResp':
        this.handleAppendResp(m);
        return;
      case 'heartbeatResp':
        this.handleHeartbeatResp(m);
        return;
      default:
        return;
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteResp = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    switch (m.type) {
      case 'append':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'preVoteResp':
      case 'voteResp': {
        if (m.type !== myVoteResp) return;
        if (!this.tracker.isVoter(m.from)) return;
        this.tracker.recordVote(m.from, m.reject !== true);
        const result = this.tracker.tallyVotes();
        if (result === 'won') {
          if (this.role === 'preCandidate') this.startCampaign('election');
          else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === 'lost') {
          // A rejection at a higher term already made us a follower of that term above.
          this.becomeFollower(this.term, null);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'transferLeader':
        if (this.lead !== null && m.context !== undefined) {
          this.send({ type: 'transferLeader', from: m.from, to: this.lead, term: this.term, context: m.context });
        }
        return;
      case 'timeoutNow':
        // Leadership transfer: start a real election at once, skipping PreVote, with the transfer flag.
        this.hup('transfer');
        return;
      case 'readIndexResp':
        if (m.context !== undefined && m.index !== undefined) this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Proposals

  private proposeEntry(e: Entry): void {
    if (this.role === 'leader') {
      if (!this.tracker.isVoter(this.id)) throw new ProposalDroppedError('notMember', `${this.id} is no longer a voter`);
      if (this.leadTransferee !== null) {
        throw new ProposalDroppedError('leadershipTransfer', `leadership is being transferred to ${this.leadTransferee}`);
      }
      if (e.type === 'confChange') this.pendingConfIndex = this.raftLog.lastIndex() + 1;
      if (!this.appendEntries([e], false)) {
        if (e.type === 'confChange') this.pendingConfIndex = 0;
        throw new ProposalDroppedError('tooManyUncommitted',
          `${this.raftLog.lastIndex() - this.raftLog.committed} uncommitted entries (limit ${this.config.maxUncommittedEntries})`);
      }
      this.bcastAppend();
      return;
    }
    if (this.lead === null) throw new ProposalDroppedError('noLeader', `no leader known at term ${this.term}`);
    this.send({ type: 'propose', from: this.id, to: this.lead, term: 0, entries: [e] });
  }

  /** Proposals forwarded by followers: dropped silently when they cannot be accepted (the proposer times out). */
  private leaderAcceptForwarded(entries: readonly Entry[]): void {
    if (entries.length === 0 || this.leadTransferee !== null || !this.tracker.isVoter(this.id)) return;
    const accepted: Entry[] = [];
    for (const e of entries) {
      if (e.type === 'confChange') {
        if (this.pendingConfIndex > this.raftLog.applied || accepted.some((a) => a.type === 'confChange')) continue;
        try {
          validateConfChange(this.tracker.confState(), decodeConfChange(e.data));
        } catch {
          continue;
        }
        this.pendingConfIndex = this.raftLog.lastIndex() + 1 + accepted.length;
      }
      accepted.push({ term: 0, index: 0, type: e.type, data: e.data });
    }
    if (accepted.length > 0 && this.appendEntries(accepted, false)) this.bcastAppend();
  }

  /** Appends entries of the current term on the leader. False if the uncommitted limit refuses them. */
  private appendEntries(es: readonly Entry[], bypassLimit: boolean): boolean {
    const last = this.raftLog.lastIndex();
    const uncommitted = last - this.raftLog.committed;
    if (!bypassLimit && uncommitted + es.length > this.config.maxUncommittedEntries) return false;
    const stamped = es.map((e, k) => ({ term: this.term, index: last + 1 + k, type: e.type, data: e.data }));
    const li = this.raftLog.append(stamped);
    // The leader's own entry counts towards the quorum: it is persisted before any message that
    // could make a follower acknowledge it is sent (the Ready contract).
    this.tracker.progress.get(this.id)?.maybeUpdate(li);
    this.maybeCommit();
    return true;
  }

  private maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.tracker.committed(), this.term);
  }

  // ---------------------------------------------------------------------------------------------
  // Replication (leader)

  private bcastAppend(): void {
    this.commitUnsent = false;
    for (const id of this.tracker.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, true);
  }

  private bcastHeartbeat(context: string | null): void {
    for (const [id, pr] of this.tracker.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.raftLog.committed);
      const m: Message = context === null
        ? { type: 'heartbeat', from: this.id, to: id, term: this.term, commit }
        : { type: 'heartbeat', from: this.id, to: id, term: this.term, commit, context };
      this.send(m);
    }
  }

  /** Sends an append (or a snapshot) to `to` if its progress allows. Returns true if a message was sent. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.tracker.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.raftLog.term(prevIndex);
    const last = this.raftLog.lastIndex();
    let ents: Entry[] | null = null;
    if (prevTerm !== null && pr.next >= this.raftLog.firstIndex()) {
      const hi = Math.min(last + 1, pr.next + this.config.maxEntriesPerMessage);
      ents = limitBytes(this.raftLog.slice(pr.next, hi), this.config.maxBytesPerMessage ?? DEFAULT_MAX_BYTES_PER_MESSAGE);
    }
    if (prevTerm === null || ents === null) return this.sendSnapshot(to, pr);
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send({ type: 'append', from: this.id, to, term: this.term, index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.raftLog.committed });
    const lastSent = ents[ents.length - 1];
    if (pr.state === 'replicate') {
      if (lastSent !== undefined) {
        pr.optimisticUpdate(lastSent.index);
        pr.inflights.add(lastSent.index);
      }
    } else {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // Only to a follower we heard from recently: a snapshot is large, do not send it into the void.
    if (!pr.recentActive) return false;
    const snap = this.raftLog.snapshot();
    invariant(snap.metadata.index > 0, 'need a non-empty snapshot to catch up a follower');
    this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot: snap });
    pr.becomeSnapshot(snap.metadata.index);
    return true;
  }

  private handleAppendResp(m: Message): void {
    const pr = this.tracker.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    const index = m.index ?? 0;
    if (m.reject === true) {
      let nextProbe = m.rejectHint ?? 0;
      if ((m.logTerm ?? 0) > 0) {
        // Fast backtracking: skip every entry of terms the follower cannot match.
        nextProbe = this.raftLog.findConflictByTerm(nextProbe, m.logTerm ?? 0).index;
      }
      if (pr.maybeDecrTo(index, nextProbe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.maybeSendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(index)) {
      // Nothing new; still, a stale duplicate may mean we can send.
      if (wasPaused && !pr.isPaused()) this.maybeSendAppend(m.from, false);
      return;
    }
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') pr.inflights.freeLE(index);

    if (this.maybeCommit()) {
      if (this.config.deferCommitBroadcast === true) this.commitUnsent = true;
      else this.bcastAppend();
      this.releasePendingReadRequests();
    } else if (wasPaused) {
      this.maybeSendAppend(m.from, false);
    }
    // Fill the pipe.
    for (let k = 0; k < this.config.maxInflightMessages && this.maybeSendAppend(m.from, false); k++);
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleHeartbeatResp(m: Message): void {
    const pr = this.tracker.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false;
    // A heartbeat answer frees one slot, so that a lost append cannot stall the pipe forever.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.raftLog.lastIndex()) this.maybeSendAppend(m.from, true);
    if (m.context === undefined || !this.tracker.isVoter(m.from)) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === null) return;
    let voterAcks = 0;
    for (const id of acks) if (this.tracker.isVoter(id)) voterAcks++;
    if (voterAcks < quorumSize(this.tracker.voters.length)) return;
    for (const rs of this.readOnly.advance(m.context)) this.emitReadState(rs.from, rs.index, rs.context);
  }

  // ---------------------------------------------------------------------------------------------
  // Follower side of replication

  private handleAppend(m: Message): void {
    const index = m.index ?? 0;
    if (index < this.raftLog.committed) {
      this.send({ type: 'appendResp', from: this.id, to: m.from, term: this.term, index: this.raftLog.committed });
      return;
    }
    const lastNew = this.raftLog.maybeAppend(index, m.logTerm ?? 0, m.commit ?? 0, m.entries ?? []);
    if (lastNew !== null) {
      this.send({ type: 'appendResp', from: this.id, to: m.from, term: this.term, index: lastNew });
      return;
    }
    // Reject with a hint: our last entry at or below `index` whose term is <= the leader's term there.
    const hint = this.raftLog.findConflictByTerm(Math.min(index, this.raftLog.lastIndex()), m.logTerm ?? 0);
    this.send({ type: 'appendResp', from: this.id, to: m.from, term: this.term, index, reject: true, rejectHint: hint.index, logTerm: hint.term });
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit ?? 0);
    const resp: Message = m.context === undefined
      ? { type: 'heartbeatResp', from: this.id, to: m.from, term: this.term }
      : { type: 'heartbeatResp', from: this.id, to: m.from, term: this.term, context: m.context };
    this.send(resp);
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap === undefined) return;
    const { index, term } = snap.metadata;
    if (index <= this.raftLog.committed) {
      this.send({ type: 'appendResp', from: this.id, to: m.from, term: this.term, index: this.raftLog.committed });
      return;
    }
    if (this.raftLog.matchTerm(index, term)) {
      // We already hold the snapshot's last entry: just fast-forward the commit.
      this.raftLog.commitTo(index);
      this.send({ type: 'appendResp', from: this.id, to: m.from, term: this.term, index: this.raftLog.committed });
      return;
    }
    this.raftLog.restore(snap);
    this.tracker.setConf(snap.metadata.confState, this.raftLog.lastIndex() + 1);
    this.send({ type: 'appendResp', from: this.id, to: m.from, term: this.term, index: this.raftLog.lastIndex() });
  }

  // ---------------------------------------------------------------------------------------------
  // ReadIndex (thesis §6.4)

  private leaderReadIndex(from: NodeId, context: string, local: boolean): void {
    if (this.readOnly.size() + this.pendingReadRequests.length >= MAX_PENDING_READS) {
      if (local) throw new ProposalDroppedError('tooManyPendingReads', `${MAX_PENDING_READS} reads pending`);
      return;
    }
    if (!this.committedInCurrentTerm()) {
      // Step 1: the leader's commit index is only known to be current once it committed an entry
      // of its own term. Until then, hold the request.
      this.pendingReadRequests.push({ from, context });
      return;
    }
    this.startReadIndex(from, context);
  }

  private committedInCurrentTerm(): boolean {
    return this.raftLog.term(this.raftLog.committed) === this.term;
  }

  private startReadIndex(from: NodeId, context: string): void {
    const index = this.raftLog.committed;
    if (this.tracker.voters.length === 1 && this.tracker.isVoter(this.id)) {
      this.emitReadState(from, index, context);
      return;
    }
    if (!this.readOnly.add(index, from, context)) return;
    // Our own acknowledgement, then a heartbeat round: a quorum of answers proves we were still
    // the leader after the request arrived, so no newer leader can have committed anything.
    this.readOnly.recvAck(this.id, context);
    this.bcastHeartbeat(context);
  }

  private releasePendingReadRequests(): void {
    if (this.role !== 'leader' || this.pendingReadRequests.length === 0 || !this.committedInCurrentTerm()) return;
    const reqs = this.pendingReadRequests;
    this.pendingReadRequests = [];
    for (const r of reqs) this.startReadIndex(r.from, r.context);
  }

  private emitReadState(from: NodeId, index: number, context: string): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send({ type: 'readIndexResp', from: this.id, to: from, term: this.term, index, context });
  }

  // ---------------------------------------------------------------------------------------------
  // Leadership transfer (thesis §3.10)

  private handleTransferLeader(target: NodeId): void {
    const pr = this.tracker.progress.get(target);
    if (pr === undefined || pr.isLearner) return;
    if (this.leadTransferee !== null) {
      if (this.leadTransferee === target) return;
      this.abortLeaderTransfer();
    }
    if (target === this.id) return;
    // The transfer must finish within an election timeout (see tickHeartbeat).
    this.electionElapsed = 0;
    this.leadTransferee = target;
    if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(target);
    else this.maybeSendAppend(target, true);
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = null;
  }

  // ---------------------------------------------------------------------------------------------

  private send(m: Message): void {
    invariant(m.to !== this.id, () => `${this.id} sending ${m.type} to itself`);
    invariant(this.msgs.length < MAX_BUFFERED_MESSAGES, 'too many messages buffered: is the driver calling ready()?');
    this.msgs.push(m);
  }
}

/** The longest prefix of `ents` whose data fits in `maxBytes` (at least one entry). */
function limitBytes(ents: Entry[], maxBytes: number): Entry[] {
  let bytes = 0;
  for (let k = 0; k < ents.length; k++) {
    // Length in UTF-16 units: a cheap bound that is close to bytes for the JSON the store writes.
    bytes += ents[k]!.data.length;
    if (bytes > maxBytes && k > 0) return ents.slice(0, k);
  }
  return ents;
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
