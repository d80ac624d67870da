// Error paths and invariants of the Raft core: every refusal has a typed error with a stable code,
// and a broken invariant stops loudly.
import { describe, expect, test } from 'vitest';
import {
  CompactedError,
  ConfChangeInvalidError,
  MemoryLog,
  ProposalDroppedError,
  RaftCore,
  RaftInvariantError,
  SnapshotOutOfDateError,
  UnavailableError,
  bootstrapSnapshot,
  type Message,
  type RaftConfig,
} from '../../src/raft/core/index.js';
import { hasCode } from '../../src/errors.js';
import { SimCluster } from './sim/cluster.js';

function config(id: string, over: Partial<RaftConfig> = {}): RaftConfig {
  let x = 0.5;
  return {
    id,
    electionTicks: 10,
    heartbeatTicks: 2,
    preVote: false,
    checkQuorum: false,
    maxEntriesPerMessage: 4,
    maxInflightMessages: 4,
    maxUncommittedEntries: 64,
    random: () => (x = (x * 9301 + 0.49297) % 1),
    ...over,
  };
}

function bootLog(voters: string[]): MemoryLog {
  const b = bootstrapSnapshot(voters);
  return new MemoryLog({ snapshot: b.snapshot, hardState: b.hardState });
}

/** Catches what `fn` throws, so that the test can look at its class, code and reason. */
function thrown(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('proposals that the core refuses (ProposalDroppedError, MANATEE_ERR_RAFT_PROPOSAL_DROPPED)', () => {
  test('no leader known: a follower that never heard from a leader refuses proposals, reads and transfers', () => {
    const core = new RaftCore(config('a'), bootLog(['a', 'b', 'c']));
    for (const op of [() => { core.propose('x'); }, () => { core.readIndex('r'); }, () => { core.transferLeadership('b'); },
      () => { core.proposeConfChange({ type: 'addLearner', nodeId: 'd' }); }]) {
      const err = thrown(op);
      expect(err).toBeInstanceOf(ProposalDroppedError);
      expect(hasCode(err, 'MANATEE_ERR_RAFT_PROPOSAL_DROPPED')).toBe(true);
      expect((err as ProposalDroppedError).reason).toBe('noLeader');
    }
  });

  test('a candidate (no leader) refuses proposals', () => {
    const core = new RaftCore(config('a'), bootLog(['a', 'b', 'c']));
    core.campaign();
    expect(core.status().role).toBe('candidate');
    expect((thrown(() => { core.propose('x'); }) as ProposalDroppedError).reason).toBe('noLeader');
  });

  test('a leadership transfer in progress refuses proposals', () => {
    const c = new SimCluster({ seed: 31, ids: ['a', 'b', 'c'] });
    const leader = c.waitForLeader();
    const target = ['a', 'b', 'c'].find((id) => id !== leader.id)!;
    c.crash(target); // so that the transfer cannot complete
    c.transferLeadership(leader.id, target);
    const err = thrown(() => { c.core(leader.id).propose('x'); });
    expect((err as ProposalDroppedError).reason).toBe('leadershipTransfer');
    expect((thrown(() => { c.core(leader.id).proposeConfChange({ type: 'addLearner', nodeId: 'z' }); }) as ProposalDroppedError).reason)
      .toBe('leadershipTransfer');
  });

  test('more than maxUncommittedEntries pending refuses proposals until they commit', () => {
    const c = new SimCluster({ seed: 32, ids: ['a', 'b', 'c'], raft: { maxUncommittedEntries: 5 } });
    const leader = c.waitForLeader();
    c.ticks(5);
    for (const id of ['a', 'b', 'c']) if (id !== leader.id) c.crash(id);
    for (let k = 0; k < 5; k++) c.core(leader.id).propose(`p${k}`);
    const err = thrown(() => { c.core(leader.id).propose('one-too-many'); });
    expect((err as ProposalDroppedError).reason).toBe('tooManyUncommitted');
    for (const id of ['a', 'b', 'c']) c.restart(id);
    c.runUntil('committed', () => c.core(leader.id).status().commit === c.core(leader.id).status().lastIndex);
    expect(() => { c.core(leader.id).propose('fits-again'); }).not.toThrow();
  });

  test('a second conf change while one is not yet applied is refused', () => {
    const c = new SimCluster({ seed: 33, ids: ['a', 'b', 'c'] });
    const leader = c.waitForLeader();
    c.ticks(5);
    c.addNode('d');
    c.core(leader.id).proposeConfChange({ type: 'addLearner', nodeId: 'd' });
    const err = thrown(() => { c.core(leader.id).proposeConfChange({ type: 'addLearner', nodeId: 'e' }); });
    expect(err).toBeInstanceOf(ProposalDroppedError);
    expect((err as ProposalDroppedError).reason).toBe('confChangePending');
    c.runUntil('first change applied', () => c.core(leader.id).status().confState.learners.includes('d'));
    c.ticks(2);
    expect(() => { c.core(leader.id).proposeConfChange({ type: 'promote', nodeId: 'd' }); }).not.toThrow();
  });

  test('a new leader refuses conf changes until it has applied its own first entry', () => {
    // Conf changes from an earlier term may sit uncommitted in its log (Raft dissertation §4.1's bug fix).
    const core = new RaftCore(config('a'), bootLog(['a', 'b', 'c']));
    core.campaign();
    core.step({ type: 'voteResp', from: 'b', to: 'a', term: 2 });
    expect(core.status().role).toBe('leader');
    expect(core.status().applied).toBeLessThan(core.status().lastIndex);
    expect((thrown(() => { core.proposeConfChange({ type: 'addLearner', nodeId: 'z' }); }) as ProposalDroppedError).reason)
      .toBe('confChangePending');
  });

  test('a leader that removed itself steps down and no longer accepts proposals', () => {
    const core = new RaftCore(config('a'), bootLog(['a', 'b', 'c']));
    core.campaign();
    core.step({ type: 'voteResp', from: 'b', to: 'a', term: 2 });
    expect(core.status().role).toBe('leader');
    core.applyConfChange({ type: 'remove', nodeId: 'a' });
    expect(core.status().role).toBe('follower');
    expect((thrown(() => { core.propose('x'); }) as ProposalDroppedError).reason).toBe('noLeader');
    // And it never campaigns again.
    for (let k = 0; k < 100; k++) core.tick();
    expect(core.status().role).toBe('follower');
    expect(core.status().term).toBe(2);
  });

  test('the last voter cannot remove itself', () => {
    const core = new RaftCore(config('a'), bootLog(['a']));
    core.campaign();
    expect(core.status().role).toBe('leader');
    core.advance(core.ready()); // a single voter commits its first entry at once; this applies it
    expect(thrown(() => { core.proposeConfChange({ type: 'remove', nodeId: 'a' }); })).toBeInstanceOf(ConfChangeInvalidError);
  });
});

describe('reads and driver reports', () => {
  test('more than 4096 pending reads on a leader are refused (tooManyPendingReads)', () => {
    const c = new SimCluster({ seed: 36, ids: ['a', 'b', 'c'], raft: { checkQuorum: false } });
    const leader = c.waitForLeader();
    c.ticks(5);
    c.isolate(leader.id); // no heartbeat answers: every read stays pending
    const core = c.core(leader.id);
    for (let k = 0; k < 4096; k++) core.readIndex(`r${k}`);
    const err = thrown(() => { core.readIndex('one-too-many'); });
    expect((err as ProposalDroppedError).reason).toBe('tooManyPendingReads');
  });

  test('reportUnreachable moves a replicating follower back to probing', () => {
    const c = new SimCluster({ seed: 37, ids: ['a', 'b', 'c'] });
    const leader = c.waitForLeader();
    proposeAndSettle(c, leader.id);
    const follower = ['a', 'b', 'c'].find((id) => id !== leader.id)!;
    expect(c.core(leader.id).status().progress![follower]!.state).toBe('replicate');
    c.core(leader.id).reportUnreachable(follower);
    expect(c.core(leader.id).status().progress![follower]!.state).toBe('probe');
    // A follower's core ignores the report.
    expect(() => { c.core(follower).reportUnreachable(leader.id); }).not.toThrow();
  });

  test('a failed snapshot is retried after the next heartbeat answer', () => {
    const c = new SimCluster({ seed: 38, ids: ['a', 'b', 'c'] });
    const leader = c.waitForLeader();
    const lagging = ['a', 'b', 'c'].find((id) => id !== leader.id)!;
    c.crash(lagging);
    for (let k = 0; k < 5; k++) proposeAndSettle(c, leader.id);
    expect(c.compact(leader.id)).toBe(true);
    let failed = 0;
    c.filter = (m) => {
      if (m.type !== 'snapshot' || failed > 0) return true;
      failed++;
      return false; // the sim reports reportSnapshot(to, false) for a lost snapshot
    };
    c.restart(lagging);
    c.runUntil('snapshot installed despite a first failure', () => c.node(lagging).disk.snapshot().metadata.index > 1);
    expect(failed).toBe(1);
    expect(c.stats.snapshotsSent).toBeGreaterThanOrEqual(2);
  });
});

function proposeAndSettle(c: SimCluster, leader: string): void {
  c.runUntil('leader applied its first entry', () => c.core(leader).status().applied >= 2);
  c.core(leader).propose('x');
  c.processReady(c.node(leader), true);
  c.ticks(3);
}

describe('invalid conf changes (ConfChangeInvalidError, MANATEE_ERR_RAFT_CONF_CHANGE_INVALID)', () => {
  const cases: { name: string; cc: { type: 'addLearner' | 'promote' | 'remove'; nodeId: string } }[] = [
    { name: 'adding a member that exists', cc: { type: 'addLearner', nodeId: 'b' } },
    { name: 'promoting a node that is not a learner', cc: { type: 'promote', nodeId: 'b' } },
    { name: 'promoting an unknown node', cc: { type: 'promote', nodeId: 'zz' } },
    { name: 'removing a node that is not a member', cc: { type: 'remove', nodeId: 'zz' } },
    { name: 'an empty node id', cc: { type: 'addLearner', nodeId: '' } },
  ];
  for (const { name, cc } of cases) {
    test(`${name} is refused at proposal`, () => {
      const c = new SimCluster({ seed: 35, ids: ['a', 'b', 'c'] });
      const leader = c.waitForLeader();
      c.ticks(5);
      const err = thrown(() => { c.core(leader.id).proposeConfChange(cc); });
      expect(err).toBeInstanceOf(ConfChangeInvalidError);
      expect(hasCode(err, 'MANATEE_ERR_RAFT_CONF_CHANGE_INVALID')).toBe(true);
    });
  }

  test('an invalid change that reaches the log anyway is a no-op when applied', () => {
    const core = new RaftCore(config('a'), bootLog(['a', 'b', 'c']));
    const before = core.status().confState;
    expect(core.applyConfChange({ type: 'promote', nodeId: 'zz' })).toEqual(before);
  });
});

describe('invariants stop the core loudly (RaftInvariantError)', () => {
  test('ready() twice without advance()', () => {
    const core = new RaftCore(config('a'), bootLog(['a', 'b', 'c']));
    core.campaign();
    expect(core.hasReady()).toBe(true);
    const rd = core.ready();
    expect(core.hasReady()).toBe(false);
    expect(() => core.ready()).toThrow(RaftInvariantError);
    core.advance(rd);
    expect(() => { core.advance(rd); }).toThrow(RaftInvariantError);
  });

  test('a node never votes twice in one term', () => {
    const core = new RaftCore(config('a'), bootLog(['a', 'b', 'c']));
    const vote = (from: string): Message => ({ type: 'vote', from, to: 'a', term: 5, index: 1, logTerm: 1 });
    core.step(vote('b'));
    core.step(vote('c'));
    const msgs = core.ready().messages;
    expect(msgs.map((m) => [m.to, m.reject === true])).toEqual([['b', false], ['c', true]]);
    expect(core.status().vote).toBe('b');
  });

  test('a message for another node', () => {
    const core = new RaftCore(config('a'), bootLog(['a', 'b', 'c']));
    expect(() => { core.step({ type: 'heartbeat', from: 'b', to: 'c', term: 1 }); }).toThrow(RaftInvariantError);
  });

  test('a leader telling a follower to commit beyond its log (a lost or truncated log)', () => {
    const core = new RaftCore(config('a'), bootLog(['a', 'b', 'c']));
    expect(() => { core.step({ type: 'heartbeat', from: 'b', to: 'a', term: 2, commit: 50 }); }).toThrow(/commit 50 is beyond the last index/);
  });

  test('stored commit beyond the stored log is refused at start', () => {
    const b = bootstrapSnapshot(['a']);
    const log = new MemoryLog({ snapshot: b.snapshot, hardState: { term: 1, vote: null, commit: 9 } });
    expect(() => new RaftCore(config('a'), log)).toThrow(RaftInvariantError);
  });

  test('bad configuration and a bad random source', () => {
    expect(() => new RaftCore(config('a', { electionTicks: 2, heartbeatTicks: 2 }), bootLog(['a']))).toThrow(RaftInvariantError);
    expect(() => new RaftCore(config('a', { maxInflightMessages: 0 }), bootLog(['a']))).toThrow(RaftInvariantError);
    expect(() => new RaftCore(config(''), bootLog(['a']))).toThrow(RaftInvariantError);
    expect(() => new RaftCore(config('a', { random: () => 1 }), bootLog(['a']))).toThrow(/random source/);
  });
});

describe('MemoryLog errors', () => {
  function logWith(n: number): MemoryLog {
    const log = bootLog(['a']);
    log.append(Array.from({ length: n }, (_, k) => ({ term: 2, index: 2 + k, type: 'normal' as const, data: `e${k}` })));
    return log;
  }

  test('reading compacted entries throws CompactedError; beyond the end UnavailableError', () => {
    const log = logWith(10); // entries 2..11
    log.createSnapshot(6, { voters: ['a'], learners: [] }, 'state@6');
    log.compact(6);
    expect(log.firstIndex()).toBe(7);
    expect(log.term(6)).toBe(2);
    expect(thrown(() => log.entries(5, 8))).toBeInstanceOf(CompactedError);
    expect(hasCode(thrown(() => log.term(5)), 'MANATEE_ERR_RAFT_LOG_COMPACTED')).toBe(true);
    expect(thrown(() => log.term(12))).toBeInstanceOf(UnavailableError);
    expect(log.entries(7, 12).map((e) => e.index)).toEqual([7, 8, 9, 10, 11]);
  });

  test('an append that leaves a gap, or is not contiguous, is an invariant violation', () => {
    const log = logWith(3);
    expect(() => { log.append([{ term: 2, index: 9, type: 'normal', data: '' }]); }).toThrow(RaftInvariantError);
    expect(() => {
      log.append([{ term: 2, index: 5, type: 'normal', data: '' }, { term: 2, index: 7, type: 'normal', data: '' }]);
    }).toThrow(RaftInvariantError);
  });

  test('an append that conflicts replaces the tail', () => {
    const log = logWith(5); // 2..6 term 2
    log.append([{ term: 3, index: 4, type: 'normal', data: 'new' }]);
    expect(log.lastIndex()).toBe(4);
    expect(log.term(4)).toBe(3);
  });

  test('old snapshots are refused; compaction beyond the snapshot is refused', () => {
    const log = logWith(10);
    log.createSnapshot(5, { voters: ['a'], learners: [] }, '');
    expect(thrown(() => log.createSnapshot(4, { voters: ['a'], learners: [] }, ''))).toBeInstanceOf(SnapshotOutOfDateError);
    expect(() => { log.compact(8); }).toThrow(RaftInvariantError);
    expect(thrown(() => { log.applySnapshot(bootstrapSnapshot(['a']).snapshot); })).toBeInstanceOf(SnapshotOutOfDateError);
  });

  test('the hard state never goes back', () => {
    const log = bootLog(['a']);
    log.setHardState({ term: 3, vote: 'a', commit: 1 });
    expect(() => { log.setHardState({ term: 2, vote: null, commit: 1 }); }).toThrow(RaftInvariantError);
    expect(() => { log.setHardState({ term: 3, vote: 'b', commit: 1 }); }).toThrow(/vote changed/);
  });
});
