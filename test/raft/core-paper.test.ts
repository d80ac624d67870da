// Named scenarios from the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus
// Algorithm", and Ongaro's dissertation), each run on the deterministic simulator. Each test names the
// section it checks. The safety checker (election safety, log matching, leader completeness, state
// machine safety, commit monotonicity) runs after every event of every scenario.
import { describe, expect, test } from 'vitest';
import { ProposalDroppedError, type ConfChange, type Message, type NodeId } from '../../src/raft/core/index.js';
import { SimCluster } from './sim/cluster.js';

const THREE = ['a', 'b', 'c'];
const FIVE = ['a', 'b', 'c', 'd', 'e'];

function termOf(c: SimCluster, id: NodeId): number {
  return c.core(id).status().term;
}

/** Proposes until accepted by some leader (proposals can be dropped while there is none). */
function proposeOk(c: SimCluster, value: string, at?: NodeId): void {
  c.runUntil(`proposal ${value} accepted`, () => {
    const target = at ?? c.stableLeader()?.id;
    return target !== undefined && c.propose(target, value);
  }, 200);
}

/** Proposes a conf change at `at`, retrying while an earlier one (or the leader's first entry) is not applied yet. */
function proposeConfChangeOk(c: SimCluster, at: NodeId, cc: ConfChange): void {
  c.runUntil(`conf change ${cc.type} ${cc.nodeId} accepted`, () => {
    try {
      c.proposeConfChange(at, cc);
      return true;
    } catch (err) {
      if (err instanceof ProposalDroppedError && err.reason === 'confChangePending') return false;
      throw err;
    }
  }, 100);
}

function appliedEverywhere(c: SimCluster, ids: readonly NodeId[], value: string): boolean {
  return ids.every((id) => c.node(id).up && c.values(id).includes(value));
}

describe('§5.2 leader election', () => {
  test('initial election: one leader is elected and every node agrees on it and its term', () => {
    const c = new SimCluster({ seed: 1, ids: THREE });
    const leader = c.waitForLeader(100);
    const term = termOf(c, leader.id);
    expect(term).toBeGreaterThan(1);
    for (const id of THREE) {
      expect(c.core(id).status().leader).toBe(leader.id);
      expect(termOf(c, id)).toBe(term);
    }
    // Heartbeats keep it: no new election without a failure.
    c.ticks(100);
    expect(c.stableLeader()?.id).toBe(leader.id);
    expect(termOf(c, leader.id)).toBe(term);
  });

  test('re-election after the leader fails: a survivor takes over in a higher term; the old leader rejoins as follower', () => {
    const c = new SimCluster({ seed: 2, ids: THREE });
    const first = c.waitForLeader(100);
    const firstTerm = termOf(c, first.id);
    c.crash(first.id);
    const second = c.waitForLeader(100);
    expect(second.id).not.toBe(first.id);
    expect(termOf(c, second.id)).toBeGreaterThan(firstTerm);
    c.restart(first.id);
    c.runUntil('old leader follows the new one', () => c.core(first.id).status().leader === second.id, 100);
    expect(c.core(first.id).status().role).toBe('follower');
  });

  test('many elections: leaders fail one after another and each time exactly one new leader emerges', () => {
    const c = new SimCluster({ seed: 3, ids: FIVE });
    let term = 0;
    for (let round = 0; round < 10; round++) {
      const leader = c.waitForLeader(200);
      expect(termOf(c, leader.id)).toBeGreaterThan(term);
      term = termOf(c, leader.id);
      c.crash(leader.id);
      c.ticks(5);
      c.restart(leader.id);
    }
    expect(c.stats.elections).toBeGreaterThanOrEqual(10);
  });
});

describe('§5.3 log replication', () => {
  test('basic agreement: every node applies the same commands in the same order', () => {
    const c = new SimCluster({ seed: 4, ids: THREE });
    c.waitForLeader();
    for (let k = 0; k < 20; k++) proposeOk(c, `cmd-${k}`);
    c.runUntil('all applied', () => appliedEverywhere(c, THREE, 'cmd-19'));
    const expected = Array.from({ length: 20 }, (_, k) => `cmd-${k}`);
    for (const id of THREE) expect(c.values(id)).toEqual(expected);
  });

  test('agreement despite a failed follower: a majority commits; the follower catches up when it returns', () => {
    const c = new SimCluster({ seed: 5, ids: THREE });
    const leader = c.waitForLeader();
    const follower = THREE.find((id) => id !== leader.id)!;
    c.crash(follower);
    for (let k = 0; k < 10; k++) proposeOk(c, `x${k}`);
    const up = THREE.filter((id) => id !== follower);
    c.runUntil('majority applied', () => appliedEverywhere(c, up, 'x9'));
    c.restart(follower);
    c.runUntil('follower caught up', () => appliedEverywhere(c, THREE, 'x9'));
    expect(c.values(follower)).toEqual(c.values(leader.id));
  });

  test('no commit without a majority: with 3 of 5 down, a proposal stays uncommitted until they return', () => {
    const c = new SimCluster({ seed: 6, ids: FIVE, raft: { checkQuorum: false } });
    const leader = c.waitForLeader();
    proposeOk(c, 'warm-up', leader.id);
    c.runUntil('warm-up applied', () => appliedEverywhere(c, FIVE, 'warm-up'));
    const down = FIVE.filter((id) => id !== leader.id).slice(0, 3);
    for (const id of down) c.crash(id);
    const commitBefore = c.core(leader.id).status().commit;
    expect(c.propose(leader.id, 'lonely')).toBe(true);
    c.ticks(100);
    expect(c.core(leader.id).status().commit).toBe(commitBefore);
    expect(c.values(leader.id)).not.toContain('lonely');
    for (const id of down) c.restart(id);
    c.runUntil('committed once a majority is back', () => appliedEverywhere(c, FIVE, 'lonely'));
  });

  test('concurrent proposals: proposals made at every node at once are applied once each, in one order', () => {
    const c = new SimCluster({ seed: 7, ids: FIVE, faults: { maxDelay: 4 } });
    c.waitForLeader();
    const sent: string[] = [];
    for (let k = 0; k < 10; k++) {
      // Followers forward their proposals to the leader (etcd's MsgProp forwarding).
      for (const id of FIVE) if (c.propose(id, `${id}-${k}`)) sent.push(`${id}-${k}`);
    }
    expect(sent.length).toBe(50);
    c.runUntil('all applied', () => sent.every((v) => appliedEverywhere(c, FIVE, v)));
    const order = c.values('a');
    expect(new Set(order).size).toBe(order.length);
    for (const id of FIVE) expect(c.values(id)).toEqual(order);
  });

  test('batching: an append carries at most maxEntriesPerMessage entries and maxBytesPerMessage bytes (one entry always fits)', () => {
    const c = new SimCluster({ seed: 21, ids: THREE, raft: { maxEntriesPerMessage: 3, maxBytesPerMessage: 10, maxInflightMessages: 2 } });
    const leader = c.waitForLeader();
    proposeOk(c, 'warm');
    c.runUntil('warm applied', () => appliedEverywhere(c, THREE, 'warm'));
    const sizes: number[][] = [];
    c.filter = (m: Message) => {
      if (m.type === 'append' && (m.entries ?? []).length > 0) sizes.push(m.entries!.map((e) => e.data.length));
      return true;
    };
    const follower = THREE.find((id) => id !== leader.id)!;
    c.crash(follower);
    const values = ['aaaa', 'bbbb', 'cccc', 'dd', 'e', 'f', 'a-very-long-value', 'g'];
    for (const v of values) expect(c.propose(leader.id, v)).toBe(true);
    sizes.length = 0;
    c.restart(follower);
    c.runUntil('follower caught up', () => appliedEverywhere(c, [follower], 'g'));
    const toFollower = sizes.filter((s) => s.length > 0);
    expect(toFollower.length).toBeGreaterThan(2);
    for (const s of toFollower) {
      expect(s.length).toBeLessThanOrEqual(3);
      if (s.length > 1) expect(s.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(10);
    }
    expect(toFollower.some((s) => s.length === 1 && s[0]! > 10)).toBe(true);
  });

  test('fast backtracking (§5.3 optimization): a follower with many conflicting entries is repaired in a few round trips', () => {
    const c = new SimCluster({ seed: 8, ids: FIVE, raft: { checkQuorum: false, maxUncommittedEntries: 1000, maxEntriesPerMessage: 64 } });
    const old = c.waitForLeader();
    // The old leader, cut off, appends 100 entries of its term that will never commit.
    c.isolate(old.id);
    for (let k = 0; k < 100; k++) expect(c.propose(old.id, `doomed-${k}`)).toBe(true);
    const others = FIVE.filter((id) => id !== old.id);
    c.runUntil('a new leader among the majority', () => {
      const l = c.leader();
      return l !== null && l.id !== old.id;
    });
    for (let k = 0; k < 30; k++) proposeOk(c, `kept-${k}`, c.leader()!.id === old.id ? others[0] : undefined);
    c.runUntil('majority applied', () => appliedEverywhere(c, others, 'kept-29'));
    let rejections = 0;
    c.filter = (m: Message) => {
      if (m.type === 'appendResp' && m.reject === true && m.from === old.id) rejections++;
      return true;
    };
    c.heal();
    c.runUntil('old leader repaired', () => appliedEverywhere(c, FIVE, 'kept-29'));
    for (const v of c.values(old.id)) expect(v.startsWith('doomed')).toBe(false);
    // Entry-by-entry backtracking would need about 100 rejections; skipping a term at a time needs a handful.
    expect(rejections).toBeLessThanOrEqual(4);
  });
});

describe('§5.4 safety', () => {
  test('a partitioned old leader rejoins (§5.4.1): it steps down and its uncommitted entries are discarded', () => {
    const c = new SimCluster({ seed: 9, ids: FIVE });
    const old = c.waitForLeader();
    const oldTerm = termOf(c, old.id);
    c.partition([old.id, FIVE.find((id) => id !== old.id)!], FIVE.filter((id) => id !== old.id).slice(1));
    expect(c.propose(old.id, 'minority-write')).toBe(true);
    const majority = FIVE.filter((id) => id !== old.id).slice(1);
    c.runUntil('a leader in the majority', () => {
      const l = c.leader();
      return l !== null && majority.includes(l.id);
    });
    proposeOk(c, 'majority-write', c.leader()!.id);
    c.runUntil('majority applied', () => appliedEverywhere(c, majority, 'majority-write'));
    c.heal();
    c.runUntil('everyone agrees', () => appliedEverywhere(c, FIVE, 'majority-write') && c.stableLeader() !== null);
    expect(termOf(c, old.id)).toBeGreaterThan(oldTerm);
    for (const id of FIVE) expect(c.values(id)).not.toContain('minority-write');
  });

  test('persistence across crashes (§5.4.2, Figure 8): an old-term entry stored on a majority is not committed by counting replicas', () => {
    // The paper's Figure 8 with five servers s1..s5, driven step by step. Elections are started by
    // hand (no PreVote, no CheckQuorum, as in the paper) and time does not advance, so no election
    // timer interferes. One entry per append message makes the partial replication possible.
    const ids = ['s1', 's2', 's3', 's4', 's5'];
    const c = new SimCluster({ seed: 10, ids, raft: { preVote: false, checkQuorum: false, maxEntriesPerMessage: 1 } });
    const onlyTo = (leader: NodeId, allowed: NodeId[]) => (m: Message) =>
      m.from !== leader || m.type !== 'append' || (m.entries ?? []).length === 0 || allowed.includes(m.to);

    // (a) s1 leads term 2 and replicates its entry at index 3 to s2 only.
    c.core('s1').campaign();
    c.settle();
    expect(c.core('s1').status().role).toBe('leader');
    const base = c.core('s1').status().lastIndex; // s1's empty entry of term 2 (index 2), committed
    c.settle();
    c.filter = onlyTo('s1', ['s2']);
    expect(c.propose('s1', 'from-term-2')).toBe(true);
    c.settle();
    const x = base + 1;
    expect(c.node('s2').disk.lastIndex()).toBe(x);
    expect(c.node('s3').disk.lastIndex()).toBe(base);

    // (b) s1 crashes; s5 is elected for term 3 by s3, s4 (and itself) and appends its own entry at index 3, then crashes.
    c.crash('s1');
    c.filter = (m) => !(m.from === 's5' && m.type === 'append' && (m.entries ?? []).length > 0);
    c.core('s5').campaign();
    c.settle();
    expect(c.core('s5').status().role).toBe('leader');
    expect(c.core('s5').status().term).toBe(3);
    c.crash('s5');

    // (c) s1 restarts, is elected for term 4, and replicates the term-2 entry to s3: now on s1, s2, s3.
    c.restart('s1');
    c.filter = (m) => {
      if (m.from !== 's1' || m.type !== 'append' || (m.entries ?? []).length === 0) return true;
      // s2 gets everything (so s1 learns that s2 holds index 3); s3 only until it holds index 3 (its
      // rejection makes s1 back up and send the term-2 entry); s4 nothing. s1's term-4 entry is then on
      // s1 and s2 only: a minority.
      if (m.to === 's2') return true;
      return m.to === 's3' && c.node('s3').disk.lastIndex() < x;
    };
    // Term 3 is taken (s3 and s4 voted for s5 in it), so s1 needs two tries, as in the paper.
    for (let attempt = 0; attempt < 2 && c.core('s1').status().role !== 'leader'; attempt++) {
      c.core('s1').campaign();
      c.settle();
    }
    expect(c.core('s1').status().role).toBe('leader');
    expect(c.core('s1').status().term).toBe(4);
    c.settle();
    const holders = ids.filter((id) => c.node(id).up && c.node(id).disk.lastIndex() >= x && c.node(id).disk.term(x) === 2);
    expect(holders).toEqual(['s1', 's2', 's3']);
    // Stored on a majority, but from an earlier term: the leader must not count it committed.
    expect(c.core('s1').status().commit).toBeLessThan(x);

    // (d) s1 crashes again; s5 comes back and wins term 5 with s3 and s4 (its last term 3 beats their 2), and its
    // entry replaces the term-2 entry everywhere. Had s1 committed it in (c), the checker would fail here.
    c.crash('s1');
    c.restart('s5');
    c.filter = null;
    // Term 4 is taken too (s2, s3, s4 voted for s1): s5 wins term 5.
    for (let attempt = 0; attempt < 2 && c.core('s5').status().role !== 'leader'; attempt++) {
      c.core('s5').campaign();
      c.settle();
    }
    expect(c.core('s5').status().role).toBe('leader');
    expect(c.core('s5').status().term).toBe(5);
    c.restart('s1');
    c.ticks(5);
    for (const id of ids) expect(c.node(id).disk.term(x)).toBe(3);
    for (const id of ids) expect(c.values(id)).not.toContain('from-term-2');
  });
});

describe('§5.4.2 Figure 8, randomized (as MIT 6.824\'s Figure8 test)', () => {
  test('leaders crash right after proposing, again and again: no committed entry is ever lost', () => {
    for (let seed = 100; seed < 110; seed++) {
      const c = new SimCluster({ seed, ids: FIVE, raft: { maxEntriesPerMessage: 1 }, faults: { maxDelay: 3 } });
      const rng = c.rng.fork();
      for (let iter = 0; iter < 150; iter++) {
        for (const id of c.upIds()) c.propose(id, `f${seed}-${iter}-${id}`);
        const units = rng.chance(0.1) ? rng.int(0, 20 * c.unitsPerTick) : rng.int(0, 5 * c.unitsPerTick);
        for (let u = 0; u < units; u++) c.stepUnit();
        const leader = c.leader();
        if (leader !== null) c.crash(leader.id);
        if (c.upIds().length < 3) c.restart(rng.pick(FIVE.filter((id) => !c.node(id).up)));
      }
      for (const id of FIVE) c.restart(id);
      const committed = c.checker.maxCommitted;
      expect(committed).toBeGreaterThan(5);
      c.runUntil('all caught up', () => FIVE.every((id) => c.node(id).sm.index >= committed), 300);
    }
  });
});

describe('unreliable network', () => {
  test('churn: with loss, duplication, reordering and crashes, every committed proposal is applied everywhere once healed', () => {
    const c = new SimCluster({ seed: 11, ids: FIVE, faults: { drop: 0.2, duplicate: 0.1, maxDelay: 8, slowDisk: 0.2, asyncDisk: 0.3 } });
    const proposed: string[] = [];
    for (let t = 0; t < 300; t++) {
      const up = c.upIds();
      const at = up[t % up.length];
      if (at !== undefined && c.propose(at, `churn-${t}`)) proposed.push(`churn-${t}`);
      if (t % 60 === 30) c.crash(FIVE[(t / 60) % 5 | 0]!);
      if (t % 60 === 50) for (const id of FIVE) c.restart(id);
      c.ticks(1);
    }
    c.faults = { drop: 0, duplicate: 0, maxDelay: 1, slowDisk: 0, asyncDisk: 0 };
    for (const id of FIVE) c.restart(id);
    const committed = c.checker.maxCommitted;
    c.runUntil('all caught up', () => FIVE.every((id) => c.node(id).sm.index >= committed));
    const applied = c.values('a');
    for (const id of FIVE) expect(c.values(id).slice(0, applied.length)).toEqual(applied.slice(0, c.values(id).length));
    // Most proposals made it despite the chaos (a proposal can be lost with the message carrying it).
    expect(applied.length).toBeGreaterThan(proposed.length / 3);
    for (const v of applied) expect(proposed).toContain(v);
  });
});

describe('§7 log compaction', () => {
  test('snapshot install to a lagging follower: the leader sends its snapshot when the entries are compacted', () => {
    const c = new SimCluster({ seed: 12, ids: THREE });
    const leader = c.waitForLeader();
    const lagging = THREE.find((id) => id !== leader.id)!;
    c.crash(lagging);
    for (let k = 0; k < 40; k++) proposeOk(c, `s${k}`);
    c.runUntil('applied on the majority', () => appliedEverywhere(c, THREE.filter((id) => id !== lagging), 's39'));
    for (const id of THREE) if (id !== lagging) expect(c.compact(id)).toBe(true);
    expect(c.node(leader.id).disk.firstIndex()).toBeGreaterThan(c.node(lagging).disk.lastIndex() + 1);
    const sentBefore = c.stats.snapshotsSent;
    c.restart(lagging);
    c.runUntil('lagging follower restored', () => appliedEverywhere(c, THREE, 's39'));
    expect(c.stats.snapshotsSent).toBeGreaterThan(sentBefore);
    expect(c.node(lagging).disk.snapshot().metadata.index).toBeGreaterThan(1);
    expect(c.values(lagging)).toEqual(c.values(leader.id));
    // It goes on replicating normally after the snapshot.
    proposeOk(c, 'after-snapshot');
    c.runUntil('replicated', () => appliedEverywhere(c, THREE, 'after-snapshot'));
  });
});

describe('§4.1 membership changes, one server at a time', () => {
  test('add a learner, promote it, remove the leader: the group goes on with a new leader', () => {
    const c = new SimCluster({ seed: 13, ids: THREE });
    const leader = c.waitForLeader();
    proposeOk(c, 'before');
    c.addNode('d');
    proposeConfChangeOk(c, leader.id, { type: 'addLearner', nodeId: 'd' });
    c.runUntil('learner caught up', () => appliedEverywhere(c, ['d'], 'before'));
    expect(c.core(leader.id).status().confState.learners).toEqual(['d']);
    // A learner never campaigns, even when it hears nothing for a long time.
    c.isolate('d');
    c.ticks(60);
    expect(c.core('d').status().role).toBe('follower');
    c.heal();
    proposeConfChangeOk(c, leader.id, { type: 'promote', nodeId: 'd' });
    c.runUntil('d is a voter everywhere', () => ['a', 'b', 'c', 'd'].every((id) => c.core(id).status().confState.voters.includes('d')));
    proposeConfChangeOk(c, leader.id, { type: 'remove', nodeId: leader.id });
    c.runUntil('the old leader steps down', () => c.core(leader.id).status().role !== 'leader');
    const rest = ['a', 'b', 'c', 'd'].filter((id) => id !== leader.id);
    c.runUntil('a new leader among the remaining voters', () => {
      const l = c.stableLeader();
      return l !== null && rest.includes(l.id);
    });
    expect(c.core(leader.id).status().confState.voters).not.toContain(leader.id);
    proposeOk(c, 'after', c.stableLeader()!.id);
    c.runUntil('applied by the new configuration', () => appliedEverywhere(c, rest, 'after'));
    // The removed node never campaigns again.
    c.isolate(leader.id);
    const termBefore = termOf(c, leader.id);
    c.ticks(100);
    expect(termOf(c, leader.id)).toBe(termBefore);
    expect(c.core(leader.id).status().role).toBe('follower');
  });
});

describe('§3.10 leadership transfer', () => {
  test('the target catches up, receives TimeoutNow and wins the next term; proposals are refused meanwhile', () => {
    const c = new SimCluster({ seed: 14, ids: THREE });
    const leader = c.waitForLeader();
    const target = THREE.find((id) => id !== leader.id)!;
    // Make the target lag, so that the leader must catch it up first.
    c.crash(target);
    for (let k = 0; k < 10; k++) proposeOk(c, `t${k}`);
    c.restart(target);
    const term = termOf(c, leader.id);
    c.transferLeadership(leader.id, target);
    expect(c.core(leader.id).status().leadTransferee).toBe(target);
    expect(() => { c.core(leader.id).propose('during-transfer'); }).toThrow(ProposalDroppedError);
    c.runUntil('target leads', () => c.stableLeader()?.id === target, 15);
    expect(termOf(c, target)).toBe(term + 1);
    expect(c.values(target)).toContain('t9');
  });

  test('a transfer to an unreachable node is abandoned after an election timeout', () => {
    const c = new SimCluster({ seed: 15, ids: THREE });
    const leader = c.waitForLeader();
    const target = THREE.find((id) => id !== leader.id)!;
    c.crash(target);
    c.transferLeadership(leader.id, target);
    expect(c.core(leader.id).status().leadTransferee).toBe(target);
    c.ticks(11);
    expect(c.core(leader.id).status().leadTransferee).toBeNull();
    expect(c.stableLeader()?.id).toBe(leader.id);
    expect(c.propose(leader.id, 'accepted-again')).toBe(true);
  });
});

describe('§9.6 PreVote and CheckQuorum', () => {
  test('PreVote keeps a rejoining partitioned node from disrupting the leader', () => {
    const c = new SimCluster({ seed: 16, ids: THREE, raft: { preVote: true } });
    const leader = c.waitForLeader();
    const term = termOf(c, leader.id);
    const loner = THREE.find((id) => id !== leader.id)!;
    c.isolate(loner);
    c.ticks(200);
    // It kept trying, but a pre-candidate never bumps its term.
    expect(termOf(c, loner)).toBe(term);
    c.heal();
    c.ticks(50);
    expect(c.stableLeader()?.id).toBe(leader.id);
    expect(termOf(c, leader.id)).toBe(term);
  });

  test('without PreVote the same rejoining node does disrupt the leader (the behaviour PreVote prevents)', () => {
    const c = new SimCluster({ seed: 16, ids: THREE, raft: { preVote: false, checkQuorum: false } });
    const leader = c.waitForLeader();
    const term = termOf(c, leader.id);
    const loner = THREE.find((id) => id !== leader.id)!;
    c.isolate(loner);
    c.ticks(200);
    expect(termOf(c, loner)).toBeGreaterThan(term + 5);
    c.heal();
    c.waitForLeader();
    expect(termOf(c, c.stableLeader()!.id)).toBeGreaterThan(term);
  });

  test('CheckQuorum makes a cut-off leader step down within two election timeouts', () => {
    const c = new SimCluster({ seed: 17, ids: FIVE, raft: { checkQuorum: true } });
    const leader = c.waitForLeader();
    c.isolate(leader.id);
    c.runUntil('the isolated leader steps down', () => c.core(leader.id).status().role !== 'leader', 20);
    expect(() => { c.core(leader.id).propose('nowhere'); }).toThrow(ProposalDroppedError);
  });
});

describe('§6.4 ReadIndex', () => {
  test('a read returns an index that covers every write committed before it began', () => {
    const c = new SimCluster({ seed: 18, ids: THREE });
    const leader = c.waitForLeader();
    proposeOk(c, 'w1');
    c.runUntil('w1 applied', () => appliedEverywhere(c, THREE, 'w1'));
    const follower = THREE.find((id) => id !== leader.id)!;
    const atLeader = c.readIndex(leader.id)!;
    const atFollower = c.readIndex(follower)!;
    c.runUntil('reads served', () => c.reads.get(atLeader)?.result != null && c.reads.get(atFollower)?.result != null, 20);
    expect(c.reads.get(atLeader)!.result!.values).toContain('w1');
    expect(c.reads.get(atFollower)!.result!.values).toContain('w1');
  });

  test('a ReadIndex read on a deposed leader never returns stale data', () => {
    // Without CheckQuorum the cut-off leader keeps believing it leads: the heartbeat round of
    // ReadIndex is then all that stands between a client and a stale read.
    const c = new SimCluster({ seed: 19, ids: FIVE, raft: { checkQuorum: false } });
    const old = c.waitForLeader();
    proposeOk(c, 'before');
    c.runUntil('applied', () => appliedEverywhere(c, FIVE, 'before'));
    // The old leader keeps one follower: two of five, one short of a quorum.
    const minority = [old.id, FIVE.find((id) => id !== old.id)!];
    const majority = FIVE.filter((id) => !minority.includes(id));
    c.partition(minority, majority);
    c.runUntil('new leader', () => {
      const l = c.leader();
      return l !== null && l.id !== old.id && majority.includes(l.id);
    });
    proposeOk(c, 'after', c.leader()!.id);
    c.runUntil('after applied on the majority', () => appliedEverywhere(c, majority, 'after'));
    expect(c.core(old.id).status().role).toBe('leader');
    const stale = c.readIndex(old.id)!;
    c.ticks(100);
    // It cannot gather a quorum of heartbeat answers: no ReadState, no answer.
    expect(c.reads.get(stale)!.readIndex).toBeNull();
    expect(c.reads.get(stale)!.result).toBeNull();
    c.heal();
    c.runUntil('old leader deposed', () => c.core(old.id).status().role === 'follower');
    c.ticks(20);
    // The pending read was dropped with the leadership, never answered with stale data.
    expect(c.reads.get(stale)!.result).toBeNull();
    const fresh = c.readIndex(old.id)!;
    c.runUntil('fresh read served', () => c.reads.get(fresh)?.result != null, 50);
    expect(c.reads.get(fresh)!.result!.values).toContain('after');
  });
});

test('determinism: the same seed replays the same history', () => {
  const run = (): string[] => {
    const c = new SimCluster({ seed: 20, ids: FIVE, trace: true, faults: { drop: 0.1, duplicate: 0.05, maxDelay: 5 } });
    for (let t = 0; t < 100; t++) {
      c.propose(FIVE[t % 5]!, `d${t}`);
      c.ticks(1);
    }
    return c.trace!;
  };
  const first = run();
  expect(first.length).toBeGreaterThan(100);
  expect(run()).toEqual(first);
});
