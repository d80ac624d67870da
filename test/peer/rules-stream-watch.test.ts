// A standby that cannot stream from an active upstream for the stall limit: an async asks for its
// own rebuild, a sync reports it; any streaming, a role change, or an upstream without a session
// starts the clock again (safety review, finding 6).
import { describe, expect, it } from 'vitest';
import type { TimelineHistory } from '../../src/model/index.js';
import { describeDivergence, ownWalEnd, StreamWatch, syncCannotTakeOver, syncDiverged, type OwnWal, type StreamObservation } from '../../src/peer/rules/stream-watch.js';

const base: StreamObservation = { role: 'async', upstreamId: 'b', upstreamActive: true, streaming: false, nowMs: 0 };

describe('StreamWatch', () => {
  it('an async not streaming from an active upstream for the limit asks for a rebuild, once per limit', () => {
    const w = new StreamWatch(10_000);
    expect(w.observe({ ...base, nowMs: 0 }).action).toBe('none');
    expect(w.observe({ ...base, nowMs: 9_999 })).toEqual({ stalledForMs: 9_999, action: 'none' });
    expect(w.observe({ ...base, nowMs: 10_000 })).toEqual({ stalledForMs: 10_000, action: 'rebuild' });
    expect(w.observe({ ...base, nowMs: 15_000 }).action).toBe('none');
    expect(w.observe({ ...base, nowMs: 20_000 }).action).toBe('rebuild');
  });

  it('a sync only reports', () => {
    const w = new StreamWatch(1_000);
    w.observe({ ...base, role: 'sync', nowMs: 0 });
    expect(w.observe({ ...base, role: 'sync', nowMs: 1_000 }).action).toBe('report');
  });

  it('streaming, an inactive upstream, an unknown status, a new upstream or another role restart the clock', () => {
    const cases: Partial<StreamObservation>[] = [
      { streaming: true }, { upstreamActive: false }, { streaming: null }, { upstreamId: 'c' }, { role: 'primary' }, { role: 'sync' },
    ];
    for (const c of cases) {
      const w = new StreamWatch(10_000);
      w.observe({ ...base, nowMs: 0 });
      w.observe({ ...base, ...c, nowMs: 5_000 });
      // After the interruption the clock starts again (at 5 s, or at the next stalled sample).
      expect(w.observe({ ...base, nowMs: 12_000 }).action).toBe('none');
      expect(w.observe({ ...base, nowMs: 23_000 }).action).toBe('rebuild');
    }
  });
});

describe('StreamWatch and replay progress', () => {
  it('a standby whose replay moves is not stalled (it replays WAL it has); a replay that stands still is', () => {
    const w = new StreamWatch(10_000);
    const sync = { ...base, role: 'sync' as const };
    w.observe({ ...sync, replayLsn: '0/1000000', nowMs: 0 });
    // Replaying a local backlog for 30 s without a WAL receiver: never a verdict.
    for (let t = 5_000, lsn = 0x1100000; t <= 30_000; t += 5_000, lsn += 0x100000) {
      expect(w.observe({ ...sync, replayLsn: `0/${lsn.toString(16).toUpperCase()}`, nowMs: t }).action).toBe('none');
    }
    // Then it stops moving (the last move was seen at 30 s): the clock runs from there.
    expect(w.observe({ ...sync, replayLsn: '0/1600000', nowMs: 35_000 }).action).toBe('none');
    expect(w.observe({ ...sync, replayLsn: '0/1600000', nowMs: 39_999 }).action).toBe('none');
    expect(w.observe({ ...sync, replayLsn: '0/1600000', nowMs: 40_000 }).action).toBe('report');
    // An unknown replay position is no evidence of progress.
    const w2 = new StreamWatch(10_000);
    w2.observe({ ...base, replayLsn: '0/1', nowMs: 0 });
    expect(w2.observe({ ...base, replayLsn: null, nowMs: 10_000 }).action).toBe('rebuild');
  });
});

describe('syncCannotTakeOver', () => {
  it('is true only when neither the replayed nor the received WAL reaches initWal', () => {
    expect(syncCannotTakeOver('0/5000000', { replayLsn: '0/3000000', receiveLsn: null })).toBe(true);
    expect(syncCannotTakeOver('0/5000000', { replayLsn: '0/3000000', receiveLsn: '0/4FFFFFF' })).toBe(true);
    expect(syncCannotTakeOver('1/0', { replayLsn: '0/FFFFFFFF', receiveLsn: '0/FFFFFFFF' })).toBe(true);
  });

  it('keeps the data of a sync that can (or once replayed, could) take over, or whose position is unknown', () => {
    expect(syncCannotTakeOver('0/5000000', { replayLsn: '0/5000000', receiveLsn: null })).toMatch(/replayed 0\/5000000, at or past initWal 0\/5000000: I can take over/);
    expect(syncCannotTakeOver('0/5000000', { replayLsn: '0/6000000', receiveLsn: '0/6000000' })).toMatch(/I can take over/);
    expect(syncCannotTakeOver('0/5000000', { replayLsn: '0/3000000', receiveLsn: '0/5000001' })).toMatch(/received WAL up to 0\/5000001, at or past initWal/);
    expect(syncCannotTakeOver('0/5000000', { replayLsn: null, receiveLsn: null })).toMatch(/replay position is unknown/);
    expect(syncCannotTakeOver('0/0', { replayLsn: '0/0', receiveLsn: null })).toMatch(/I can take over/);
  });
});

describe('syncDiverged: the timeline histories decide, not the numbers', () => {
  const tl = (timeline: number, ...switches: [number, string][]): TimelineHistory => ({ timeline, switches: switches.map(([t, l]) => ({ timeline: t, switchLsn: l })) });
  const at = (lsn: string, history: TimelineHistory | null): OwnWal => ({ replayLsn: lsn, receiveLsn: lsn, history });

  it('finds a sync on an older timeline with WAL past the primary\'s switch point (seeds 41, 681)', () => {
    expect(syncDiverged(at('0/6000000', tl(2, [1, '0/1000000'])), tl(3, [1, '0/1000000'], [2, '0/5000000']))).toEqual({ timeline: 2, lsn: '0/5000000' });
    expect(syncDiverged(at('0/6000000', tl(1)), tl(7, [1, '0/2000000'], [3, '0/3000000'], [6, '0/4000000']))).toEqual({ timeline: 1, lsn: '0/2000000' });
  });

  it('finds a sync on the SAME timeline number whose history switched elsewhere (seed 50019: two peers promoted to 3 on their own)', () => {
    const own = at('0/500', tl(3, [1, '0/280'], [2, '0/4C0']));
    expect(syncDiverged(own, tl(3, [1, '0/280'], [2, '0/500']))).toEqual({ timeline: 2, lsn: '0/4C0' });
    expect(describeDivergence(own, tl(3, [1, '0/280'], [2, '0/500']), { timeline: 2, lsn: '0/4C0' }))
      .toBe('I am on timeline 3 (from 2 at 0/4C0, from 1 at 0/280) and the primary on timeline 3 (from 2 at 0/500, from 1 at 0/280): the histories part at 0/4C0 on timeline 2, and I hold WAL up to 0/500');
    // Histories that share nothing (the first timeline began elsewhere) part at the very start.
    expect(syncDiverged(at('0/10', { timeline: 2, switches: [{ timeline: 2, switchLsn: '0/0' }] }), tl(2, [1, '0/5']))).toEqual({ timeline: 0, lsn: '0/0' });
  });

  it('counts the received WAL too (it is past the fork even before it is replayed)', () => {
    expect(syncDiverged({ replayLsn: '0/4000000', receiveLsn: '0/6000000', history: tl(2, [1, '0/1']) }, tl(3, [1, '0/1'], [2, '0/5000000']))).toEqual({ timeline: 2, lsn: '0/5000000' });
    expect(ownWalEnd({ replayLsn: '0/7', receiveLsn: null })).toBe('0/7');
    expect(ownWalEnd({ replayLsn: null, receiveLsn: null })).toBeNull();
  });

  it('says why not when the sync is on the primary\'s history, at or behind the fork (it can follow), or a history is unknown', () => {
    expect(syncDiverged(at('0/6000000', tl(3, [1, '0/1'], [2, '0/5000000'])), tl(3, [1, '0/1'], [2, '0/5000000']))).toMatch(/my timeline 3 \(from 2 at 0\/5000000, from 1 at 0\/1\) is the primary's/);
    expect(syncDiverged(at('0/5000000', tl(2, [1, '0/1'])), tl(3, [1, '0/1'], [2, '0/5000000']))).toMatch(/my WAL ends at 0\/5000000, not past 0\/5000000 where my timeline 2/);
    expect(syncDiverged(at('0/6000000', tl(3, [1, '0/1'], [2, '0/5000000'])), tl(4, [1, '0/1'], [2, '0/5000000'], [3, '0/7000000']))).toMatch(/not past 0\/7000000/);
    expect(syncDiverged(at('0/6000000', null), tl(3))).toBe('the timeline histories are unknown');
    expect(syncDiverged(at('0/6000000', tl(2, [1, '0/1'])), null)).toBe('the timeline histories are unknown');
    expect(syncDiverged({ replayLsn: null, receiveLsn: null, history: tl(2, [1, '0/1']) }, tl(3, [1, '0/1'], [2, '0/5']))).toBe('my WAL position is unknown');
  });
});
