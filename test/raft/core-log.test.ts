// The building blocks of the core, one concept each: the log (with its unstable tail), progress and
// inflights, quorum arithmetic, ReadIndex bookkeeping and conf change validation.
import { describe, expect, test } from 'vitest';
import { MemoryLog, bootstrapSnapshot, type ConfState, type Entry } from '../../src/raft/core/index.js';
import { RaftLog } from '../../src/raft/core/log.js';
import { Progress } from '../../src/raft/core/progress.js';
import { Inflights } from '../../src/raft/core/inflights.js';
import { committedIndex, voteResult } from '../../src/raft/core/quorum.js';
import { ReadOnly } from '../../src/raft/core/read-only.js';
import { applyConfChangeTo, decodeConfChange, encodeConfChange } from '../../src/raft/core/confchange.js';
import { RaftInvariantError, ConfChangeInvalidError } from '../../src/raft/core/errors.js';

function ents(from: number, terms: number[]): Entry[] {
  return terms.map((term, k) => ({ term, index: from + k, type: 'normal', data: `${from + k}@${term}` }));
}

function logOf(terms: number[]): RaftLog {
  const b = bootstrapSnapshot(['a']);
  const storage = new MemoryLog({ snapshot: b.snapshot, hardState: b.hardState });
  storage.append(ents(2, terms));
  return new RaftLog(storage);
}

describe('RaftLog', () => {
  test('maybeAppend refuses entries whose predecessor does not match (§5.3 consistency check)', () => {
    const log = logOf([1, 1, 2]); // 2..4
    expect(log.maybeAppend(4, 3, 0, ents(5, [3]))).toBeNull();
    expect(log.maybeAppend(4, 2, 0, ents(5, [3]))).toBe(5);
    expect(log.lastIndex()).toBe(5);
  });

  test('maybeAppend truncates a conflicting suffix and keeps matching entries', () => {
    const log = logOf([1, 1, 2, 2]); // 2..5
    expect(log.maybeAppend(3, 1, 0, ents(4, [3, 3, 3]))).toBe(6);
    expect([2, 3, 4, 5, 6].map((i) => log.term(i))).toEqual([1, 1, 3, 3, 3]);
    // The stable tail past the conflict is shadowed by the unstable entries.
    expect(log.unstable.offset).toBe(4);
  });

  test('maybeAppend never truncates committed entries', () => {
    const log = logOf([1, 1, 2]);
    log.commitTo(4);
    expect(() => log.maybeAppend(2, 1, 0, ents(3, [5, 5]))).toThrow(RaftInvariantError);
  });

  test('commit is capped by the last new entry, and never goes back', () => {
    const log = logOf([1]);
    log.maybeAppend(2, 1, 100, ents(3, [1, 1]));
    expect(log.committed).toBe(4);
    log.commitTo(2);
    expect(log.committed).toBe(4);
  });

  test('findConflictByTerm skips a whole term in one step (fast backtracking)', () => {
    const log = logOf([1, 1, 1, 4, 4, 4, 4]); // index 2..8
    expect(log.findConflictByTerm(8, 3)).toEqual({ index: 4, term: 1 });
    expect(log.findConflictByTerm(8, 4)).toEqual({ index: 8, term: 4 });
    expect(log.findConflictByTerm(8, 0)).toEqual({ index: 0, term: 0 });
  });

  test('only entries of the current term are committed by counting (Figure 8)', () => {
    const log = logOf([2, 2, 3]);
    expect(log.maybeCommit(3, 3)).toBe(false);
    expect(log.maybeCommit(4, 3)).toBe(true);
    expect(log.committed).toBe(4);
  });

  test('isUpToDate compares last term, then length (§5.4.1)', () => {
    const log = logOf([1, 2]); // last 3 @ 2
    expect(log.isUpToDate(2, 3)).toBe(true);
    expect(log.isUpToDate(3, 2)).toBe(true);
    expect(log.isUpToDate(9, 1)).toBe(false);
    expect(log.isUpToDate(2, 2)).toBe(false);
  });

  test('stableTo ignores an acknowledgement for entries that a conflicting append replaced meanwhile', () => {
    const log = logOf([]);
    log.append(ents(2, [2, 2, 2]));
    log.append(ents(3, [3])); // replaces 3..4 while 2..4@2 were being persisted
    log.stableTo(4, 2);
    expect(log.unstable.entries.map((e) => `${e.index}@${e.term}`)).toEqual(['2@2', '3@3']);
    log.stableTo(3, 3);
    expect(log.unstable.entries).toEqual([]);
  });

  test('a snapshot replaces the log and moves commit', () => {
    const log = logOf([1, 1]);
    log.restore({ metadata: { index: 10, term: 4, confState: { voters: ['a'], learners: [] } }, data: '' });
    expect(log.firstIndex()).toBe(11);
    expect(log.lastIndex()).toBe(10);
    expect(log.term(10)).toBe(4);
    expect(log.term(9)).toBeNull();
    expect(log.committed).toBe(10);
    expect(log.nextCommittedEntries(100)).toEqual([]);
  });

  test('nextCommittedEntries is bounded and spans stable and unstable entries', () => {
    const log = logOf([1, 1]); // stable 2..3
    log.append(ents(4, [2, 2])); // unstable 4..5
    log.commitTo(5);
    expect(log.nextCommittedEntries(100).map((e) => e.index)).toEqual([2, 3, 4, 5]);
    expect(log.nextCommittedEntries(2).map((e) => e.index)).toEqual([2, 3]);
  });
});

describe('Progress and Inflights', () => {
  test('probe sends one append at a time; replicate pipelines up to the inflight limit', () => {
    const pr = new Progress(5, 2, false);
    expect(pr.isPaused()).toBe(false);
    pr.probeSent = true;
    expect(pr.isPaused()).toBe(true);
    pr.maybeUpdate(4);
    pr.becomeReplicate();
    expect(pr.next).toBe(5);
    pr.inflights.add(6);
    pr.inflights.add(8);
    expect(pr.isPaused()).toBe(true);
    pr.inflights.freeLE(6);
    expect(pr.isPaused()).toBe(false);
  });

  test('a stale rejection is ignored; a fresh one moves next back using the hint', () => {
    const pr = new Progress(10, 4, false);
    expect(pr.maybeDecrTo(5, 2)).toBe(false); // not the probe we sent (next-1 is 9)
    expect(pr.maybeDecrTo(9, 3)).toBe(true);
    expect(pr.next).toBe(4);
    const rep = new Progress(10, 4, false);
    rep.maybeUpdate(7);
    rep.becomeReplicate();
    expect(rep.maybeDecrTo(6, 0)).toBe(false); // below match: stale
    expect(rep.maybeDecrTo(8, 0)).toBe(true);
    expect(rep.next).toBe(8);
  });

  test('after a snapshot, probing resumes past it', () => {
    const pr = new Progress(3, 4, false);
    pr.becomeSnapshot(50);
    expect(pr.isPaused()).toBe(true);
    pr.becomeProbe();
    expect(pr.next).toBe(51);
  });

  test('inflights refuse to overflow and must grow', () => {
    const inf = new Inflights(1);
    inf.add(3);
    expect(() => { inf.add(4); }).toThrow(RaftInvariantError);
    inf.freeFirstOne();
    expect(() => { inf.add(2); }).not.toThrow();
    expect(() => { inf.add(2); }).toThrow(RaftInvariantError);
    expect(() => new Inflights(0)).toThrow(RaftInvariantError);
  });
});

describe('quorum', () => {
  test('committed index is the highest index a majority of voters matched', () => {
    const match: Record<string, number> = { a: 9, b: 7, c: 3, d: 2, e: 1 };
    expect(committedIndex(['a', 'b', 'c', 'd', 'e'], (id) => match[id]!)).toBe(3);
    expect(committedIndex(['a', 'b'], (id) => match[id]!)).toBe(7);
    expect(committedIndex(['a'], (id) => match[id]!)).toBe(9);
  });

  test('vote results count voters only', () => {
    const votes = new Map([['a', true], ['b', true], ['x', true]]);
    expect(voteResult(['a', 'b', 'c', 'd', 'e'], votes)).toBe('pending');
    votes.set('c', true);
    expect(voteResult(['a', 'b', 'c', 'd', 'e'], votes)).toBe('won');
    expect(voteResult(['a', 'b', 'c'], new Map([['b', false], ['c', false]]))).toBe('lost');
  });
});

describe('ReadOnly', () => {
  test('releasing a read releases the reads queued before it', () => {
    const ro = new ReadOnly(3);
    expect(ro.add(5, 'a', 'r1')).toBe(true);
    expect(ro.add(6, 'b', 'r2')).toBe(true);
    expect(ro.add(6, 'b', 'r2')).toBe(false);
    expect(ro.recvAck('c', 'nope')).toBeNull();
    expect([...ro.recvAck('c', 'r2')!]).toEqual(['c']);
    expect(ro.advance('r2').map((r) => [r.context, r.index, r.from])).toEqual([['r1', 5, 'a'], ['r2', 6, 'b']]);
    expect(ro.size()).toBe(0);
    ro.add(1, 'a', 'x');
    ro.add(1, 'a', 'y');
    ro.add(1, 'a', 'z');
    expect(ro.full()).toBe(true);
    expect(() => ro.add(1, 'a', 'w')).toThrow(RaftInvariantError);
  });
});

describe('conf changes', () => {
  test('add a learner, promote it, remove a voter', () => {
    let cs: ConfState = { voters: ['a', 'b', 'c'], learners: [] };
    cs = applyConfChangeTo(cs, { type: 'addLearner', nodeId: 'd' });
    expect(cs).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    cs = applyConfChangeTo(cs, { type: 'promote', nodeId: 'd' });
    expect(cs).toEqual({ voters: ['a', 'b', 'c', 'd'], learners: [] });
    cs = applyConfChangeTo(cs, { type: 'remove', nodeId: 'a' });
    expect(cs).toEqual({ voters: ['b', 'c', 'd'], learners: [] });
  });

  test('entry data round-trips, and malformed data is refused', () => {
    const cc = { type: 'addLearner' as const, nodeId: 'd', context: '127.0.0.1:7000' };
    expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc);
    for (const bad of ['not json', '1', '{"type":"explode","nodeId":"d"}', '{"type":"remove","nodeId":7}', '{"type":"remove","nodeId":"d","context":5}']) {
      expect(() => decodeConfChange(bad)).toThrow(ConfChangeInvalidError);
    }
  });
});
