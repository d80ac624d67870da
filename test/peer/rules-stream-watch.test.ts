// A standby that cannot stream from an active upstream for the stall limit: an async asks for its
// own rebuild, a sync reports it; any streaming, a role change, or an upstream without a session
// starts the clock again (safety review, finding 6).
import { describe, expect, it } from 'vitest';
import { StreamWatch, syncCannotTakeOver, syncDiverged, type StreamObservation } from '../../src/peer/rules/stream-watch.js';

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

describe('syncDiverged', () => {
  it('is true for a sync on an older timeline than its primary', () => {
    expect(syncDiverged(2, 3)).toBe(true);
    expect(syncDiverged(1, 7)).toBe(true);
  });

  it('says why not for the same or a newer timeline, or unknown ones', () => {
    expect(syncDiverged(3, 3)).toMatch(/my timeline 3 is not older than the primary's 3/);
    expect(syncDiverged(4, 3)).toMatch(/not older/);
    expect(syncDiverged(null, 3)).toMatch(/timelines are unknown/);
    expect(syncDiverged(2, null)).toMatch(/timelines are unknown/);
  });
});
