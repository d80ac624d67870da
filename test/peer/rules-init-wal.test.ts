// initWal's timeline history (rules/init-wal.ts): a sync takes over only when its own timeline
// history holds the generation's WAL up to initWal, not merely when its LSN is past it. LSNs on
// two histories that parted are unrelated.
import { describe, expect, it } from 'vitest';
import type { ClusterState, TimelineHistory } from '../../src/model/index.js';
import { historyHoldsInitWal } from '../../src/peer/rules/init-wal.js';
import { stateShapeProblems, transitionProblems } from '../../src/store/validate.js';
import { Shard, peerInfo } from './shard-sim.js';

const TL1: TimelineHistory = { timeline: 1, switches: [] };
/** b promoted at 0/6C0: timeline 2 (the history of whole-shard simulator seed 136570 --operator). */
const TL2_AT_6C0: TimelineHistory = { timeline: 2, switches: [{ timeline: 1, switchLsn: '0/6C0' }] };

/**
 * Seed 136570 with --operator, generation 6: b is the primary on timeline 2 (from 1 at 0/6C0) and
 * declared initWal 0/780 there; c, made the sync by an operator's promote of the async, had
 * followed a on timeline 1 past 0/6C0 (to 0/7C0) while partitioned and never streamed from b. b's
 * session ends.
 */
function seed136570(): Shard {
  const shard = new Shard().addPeer('a').addPeer('b').addPeer('c');
  shard.setState({
    generation: 6,
    primary: peerInfo('b'),
    sync: peerInfo('c'),
    async: [peerInfo('a')],
    deposed: [],
    initWal: '0/780',
    initWalHistory: TL2_AT_6C0,
  });
  shard.setPg('b', { currentLsn: '0/780', history: TL2_AT_6C0 });
  shard.setPg('a', { replayLsn: '0/780', currentLsn: '0/780', history: TL2_AT_6C0 });
  shard.setPg('c', { replayLsn: '0/7C0', currentLsn: '0/7C0', history: TL1 });
  return shard.rmPeer('b');
}

describe('historyHoldsInitWal', () => {
  const state = (initWal: string, initWalHistory?: TimelineHistory): ClusterState => ({
    generation: 2, primary: peerInfo('a'), sync: peerInfo('b'), async: [], deposed: [], initWal,
    ...(initWalHistory === undefined ? {} : { initWalHistory }),
  });

  it('holds on the same history, or one that parts from it at or after initWal', () => {
    expect(historyHoldsInitWal(state('0/780', TL2_AT_6C0), TL2_AT_6C0)).toBe(true);
    // The sync went on to a timeline of its own at 0/800, past initWal: WAL up to 0/800 is common.
    const tl3 = { timeline: 3, switches: [{ timeline: 1, switchLsn: '0/6C0' }, { timeline: 2, switchLsn: '0/800' }] };
    expect(historyHoldsInitWal(state('0/780', TL2_AT_6C0), tl3)).toBe(true);
    expect(historyHoldsInitWal(state('0/800', TL2_AT_6C0), tl3)).toBe(true);
    // A takeover records the sync's history before its promotion; its sync follows the promotion.
    expect(historyHoldsInitWal(state('0/6C0', TL1), TL2_AT_6C0)).toBe(true);
    // initWal 0/0 (the setup) is on every history.
    expect(historyHoldsInitWal(state('0/0', TL1), TL2_AT_6C0)).toBe(true);
  });

  it('does not hold on a history that parts before initWal, whatever the LSNs', () => {
    expect(historyHoldsInitWal(state('0/780', TL2_AT_6C0), TL1)).toBe(
      'my timeline 1 leaves timeline 2 (from 1 at 0/6C0), where initWal 0/780 is, at 0/6C0 (timeline 1): my WAL past 0/6C0 is not the generation\'s',
    );
    // The same timeline NUMBER, begun elsewhere: another history.
    const otherTl2 = { timeline: 2, switches: [{ timeline: 1, switchLsn: '0/700' }] };
    expect(historyHoldsInitWal(state('0/780', TL2_AT_6C0), otherTl2)).toMatch(/leaves timeline 2 \(from 1 at 0\/6C0\).* at 0\/6C0/);
    const tl3Early = { timeline: 3, switches: [{ timeline: 1, switchLsn: '0/6C0' }, { timeline: 2, switchLsn: '0/740' }] };
    expect(historyHoldsInitWal(state('0/780', TL2_AT_6C0), tl3Early)).toMatch(/at 0\/740 \(timeline 2\)/);
  });

  it('does not hold when the history is unknown; a state without one (written before it was recorded) leaves it to the LSN', () => {
    expect(historyHoldsInitWal(state('0/780', TL2_AT_6C0), null)).toBe('my timeline history is unknown, and initWal 0/780 is on timeline 2 (from 1 at 0/6C0)');
    expect(historyHoldsInitWal(state('0/780'), TL1)).toBe(true);
    expect(historyHoldsInitWal(state('0/780'), null)).toBe(true);
  });
});

describe('the sync takeover and initWal\'s timeline history', () => {
  it('seed 136570: a sync past initWal on another history does not take over (it held no acknowledged write of generation 5)', () => {
    const shard = seed136570();
    const d = shard.step('c');
    expect(d).toMatchObject({ kind: 'divergedFromInitWal', write: null, role: 'sync' });
    expect(d.reason).toBe(
      'primary "b" has no session, but my timeline 1 leaves timeline 2 (from 1 at 0/6C0), where initWal 0/780 is, at 0/6C0 (timeline 1): ' +
      'my WAL past 0/6C0 is not the generation\'s; not taking over',
    );
    expect(shard.settle()).toEqual([]);
    expect(shard.topology().generation).toBe(6);
  });

  it('seed 136570: an operator\'s promote of that sync is refused the same way', () => {
    const shard = seed136570().addPeer('b');
    shard.promote({ id: 'c', role: 'sync', generation: 6 });
    expect(shard.step('c')).toMatchObject({ kind: 'divergedFromInitWal', write: null });
    expect(shard.step('c').reason).toMatch(/^the promote request for "c" \(sync\) names me, but my timeline 1 leaves timeline 2/);
    expect(shard.topology().generation).toBe(6);
  });

  it('the same sync on the primary\'s history takes over and records its own history with initWal', () => {
    const shard = seed136570().setPg('c', { history: TL2_AT_6C0 });
    const d = shard.step('c');
    expect(d.kind).toBe('takeover');
    expect(d.reason).toBe(
      'primary "b" has no session; I am the sync with replay 0/7C0 >= initWal 0/780 on timeline 2 (from 1 at 0/6C0); taking over as primary of ' +
      'generation 7 with "a" as sync, asyncs [], "b" deposed and initWal 0/7C0 on my timeline 2 (from 1 at 0/6C0)',
    );
    expect(d.write?.newState).toMatchObject({ generation: 7, initWal: '0/7C0', initWalHistory: TL2_AT_6C0 });
  });

  it('a sync whose history is unknown waits for it', () => {
    const shard = seed136570().setPg('c', { history: null });
    expect(shard.step('c')).toMatchObject({ kind: 'waitForPostgres', write: null });
    expect(shard.peer('c').last?.reason).toBe(
      'primary "b" has no session, but my timeline history is unknown, and initWal 0/780 is on timeline 2 (from 1 at 0/6C0); not taking over',
    );
  });

  it('a state without a recorded history (from before it was recorded): the sync judges by the LSN alone, as before, and records its own', () => {
    const shard = seed136570();
    const { initWalHistory: _h, ...legacy } = shard.mustState();
    shard.setState(legacy);
    const d = shard.step('c');
    expect(d.kind).toBe('takeover');
    expect(d.reason).toContain('>= initWal 0/780 (no timeline history recorded with it: a state from before it was); taking over');
    expect(d.write?.newState.initWalHistory).toEqual(TL1);
    // Its own history must be known all the same: the new generation records it.
    shard.setState(legacy).setPg('c', { history: null });
    expect(shard.step('c')).toMatchObject({ kind: 'waitForPostgres', write: null });
  });
});

describe('recording initWal\'s timeline history', () => {
  it('the cluster\'s setup records timeline 1 with initWal 0/0', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2');
    expect(shard.settle()).toEqual(['cluster setup for normal (multi-peer) mode']);
    expect(shard.mustState()).toMatchObject({ initWal: '0/0', initWalHistory: TL1 });
  });

  it('a primary that declares a generation records its own history, and waits while it is unknown', () => {
    const shard = seed136570().addPeer('b').rmPeer('c');
    shard.setPg('b', { history: null });
    expect(shard.step('b')).toMatchObject({ kind: 'waitForPostgres', write: null });
    expect(shard.peer('b').last?.reason).toBe(
      'sync "c" has no session; replacing it with "a" records my WAL position as initWal, but my timeline history is unknown',
    );
    const tl3 = { timeline: 3, switches: [{ timeline: 1, switchLsn: '0/6C0' }, { timeline: 2, switchLsn: '0/7C0' }] };
    shard.setPg('b', { history: tl3, currentLsn: '0/800' });
    expect(shard.step('b')).toMatchObject({ kind: 'replaceSync', write: { newState: { generation: 7, initWal: '0/800', initWalHistory: tl3 } } });
  });

  it('the primary of a state without one records its own (same generation), after the async chain, and only with its PostgreSQL online', () => {
    const shard = seed136570().addPeer('b').addPeer('d');
    const { initWalHistory: _h, ...legacy } = shard.mustState();
    shard.setState(legacy).setPg('b', { online: false });
    expect(shard.step('b').kind).toBe('appendAsyncs');
    expect(shard.step('b').kind).toBe('none');
    shard.setPg('b', { online: true, currentLsn: '0/900' });
    const d = shard.step('b');
    expect(d).toMatchObject({ kind: 'recordInitWalHistory', generation: 6 });
    expect(d.reason).toBe(
      'the state records no timeline history with initWal 0/780 (written before it was recorded); I am the primary at 0/900 on timeline 2 (from 1 at 0/6C0), so recording mine',
    );
    expect(shard.mustState()).toEqual({ ...legacy, async: [peerInfo('a'), peerInfo('d')], initWalHistory: TL2_AT_6C0 });
    expect(shard.settle()).toEqual([]);
  });
});

describe('the store and initWalHistory', () => {
  const base: ClusterState = { generation: 3, primary: peerInfo('a'), sync: peerInfo('b'), async: [], deposed: [], initWal: '0/780' };

  it('accepts a state without it (written before it existed) and one with it', () => {
    expect(stateShapeProblems(base)).toEqual([]);
    expect(stateShapeProblems({ ...base, initWalHistory: TL2_AT_6C0 })).toEqual([]);
  });

  it('rejects a malformed history, naming the field', () => {
    const bad = (h: unknown): string[] => stateShapeProblems({ ...base, initWalHistory: h });
    expect(bad('timeline 2')).toEqual(['initWalHistory: must be a timeline history {timeline, switches} (got the string "timeline 2")']);
    expect(bad({ timeline: 0, switches: [] })).toEqual(['initWalHistory.timeline: must be an integer >= 1 (got number 0)']);
    expect(bad({ timeline: 2, switches: [] })).toEqual(['initWalHistory.switches: timeline 2 must list its ancestors']);
    expect(bad({ timeline: 2, switches: [{ timeline: 2, switchLsn: '0/6C0' }] })).toEqual([
      'initWalHistory.switches[0].timeline: must be an integer from 1 to 1, an ancestor of timeline 2 (got number 2)',
    ]);
    expect(bad({ timeline: 3, switches: [{ timeline: 1, switchLsn: '0/7C0' }, { timeline: 2, switchLsn: '0/6C0' }] })).toEqual([
      'initWalHistory.switches[1].switchLsn: 0/6C0 is before 0/7C0',
    ]);
    expect(bad({ timeline: 2, switches: [{ timeline: 1, switchLsn: 'x' }] })).toEqual(['initWalHistory.switches[0].switchLsn: must be an LSN like "0/16B3748" (got the string "x")']);
    expect(bad({ timeline: 1, switches: [], extra: 1 })).toEqual(['initWalHistory.extra: is not a known field']);
    const many = Array.from({ length: 1001 }, (_, i) => ({ timeline: i + 1, switchLsn: '0/6C0' }));
    expect(bad({ timeline: 1002, switches: many })).toEqual(['initWalHistory.switches: has 1001 entries, more than the limit of 1000']);
  });

  it('within a generation, a state may gain one but never change or lose it', () => {
    const withIt = { ...base, initWalHistory: TL2_AT_6C0 };
    expect(transitionProblems(base, withIt)).toEqual([]);
    expect(transitionProblems(withIt, { ...withIt, async: [peerInfo('c')] })).toEqual([]);
    expect(transitionProblems(withIt, { ...withIt, initWalHistory: TL1 })).toEqual([
      'initWalHistory changed from timeline 2 (from 1 at 0/6C0) to timeline 1 within generation 3 (it is recorded with initWal; a state from before it existed may only gain one)',
    ]);
    expect(transitionProblems(withIt, base)).toEqual([
      'initWalHistory changed from timeline 2 (from 1 at 0/6C0) to none within generation 3 (it is recorded with initWal; a state from before it existed may only gain one)',
    ]);
    // A new generation records a new one (or none, from a writer that does not know it).
    expect(transitionProblems(withIt, { ...base, generation: 4, primary: peerInfo('b'), sync: peerInfo('a'), initWal: '0/800', initWalHistory: TL1 })).toEqual([]);
  });
});
