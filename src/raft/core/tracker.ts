// The configuration (voters, learners) with the leader's progress for each member, and votes.
import { invariant } from './errors.js';
import { Progress } from './progress.js';
import { committedIndex, quorumSize, voteResult, type VoteResult } from './quorum.js';
import type { ConfState, NodeId } from './types.js';

export class ProgressTracker {
  voters: NodeId[] = [];
  learners: NodeId[] = [];
  readonly progress = new Map<NodeId, Progress>();
  readonly votes = new Map<NodeId, boolean>();
  readonly maxInflight: number;

  constructor(maxInflight: number) {
    this.maxInflight = maxInflight;
  }

  /** The current configuration (a frozen value, rebuilt only when the configuration changes). */
  confState(): ConfState {
    return this.conf;
  }

  private conf: ConfState = Object.freeze({ voters: Object.freeze([]), learners: Object.freeze([]) });

  /** Replace the configuration (restart, snapshot). Progress is reset for every member. */
  setConf(cs: ConfState, nextIndex: number): void {
    for (const id of cs.voters) invariant(!cs.learners.includes(id), () => `${id} is both voter and learner`);
    this.voters = [...new Set(cs.voters)].sort();
    this.learners = [...new Set(cs.learners)].sort();
    this.conf = Object.freeze({ voters: Object.freeze(this.voters.slice()), learners: Object.freeze(this.learners.slice()) });
    this.progress.clear();
    for (const id of this.voters) this.progress.set(id, new Progress(nextIndex, this.maxInflight, false));
    for (const id of this.learners) this.progress.set(id, new Progress(nextIndex, this.maxInflight, true));
  }

  isVoter(id: NodeId): boolean {
    return this.voters.includes(id);
  }

  isLearner(id: NodeId): boolean {
    return this.learners.includes(id);
  }

  committed(): number {
    return committedIndex(this.voters, (id) => this.progress.get(id)?.match ?? 0);
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): VoteResult {
    return voteResult(this.voters, this.votes);
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** CheckQuorum: a majority of voters was heard from within the last election timeout. */
  quorumActive(): boolean {
    let active = 0;
    for (const id of this.voters) if (this.progress.get(id)?.recentActive === true) active++;
    return active >= quorumSize(this.voters.length);
  }
}
