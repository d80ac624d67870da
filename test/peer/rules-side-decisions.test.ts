// The decisions that used to be made beside the rules, now pure rules of their own: the session
// (rules/session.ts), the Raft leader's placement (rules/leader-placement.ts) and stalled
// streams (decideStreamStall in rules/stream-watch.ts).
import { describe, expect, it } from 'vitest';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';
import { decideSession, decideStreamStall, pgShouldRun, placeLeader, unhealthySince, type LeaderPlacementInput } from '../../src/peer/rules/index.js';

const peer = (id: string): PeerInfo => ({ id, pgUrl: `postgres://${id}:5432/postgres`, apiUrl: `http://${id}:5433`, host: id });
const [A, B, C, D] = [peer('a'), peer('b'), peer('c'), peer('d')];
const state: ClusterState = { generation: 3, primary: A, sync: B, async: [C, D], deposed: [], initWal: '0/5000000' };

describe('the session rule', () => {
  const base = { open: true, closedForHealth: false, unhealthyForMs: 0, unhealthyTimeoutMs: 5000 };

  it('closes an open session once PostgreSQL has been unhealthy for longer than the limit, and not before', () => {
    expect(decideSession({ ...base, unhealthyForMs: 5000 }).kind).toBe('keepSession');
    expect(decideSession({ ...base, unhealthyForMs: 5001 })).toEqual({ kind: 'closeSession', reason: 'PostgreSQL unhealthy for 5001 ms (limit 5000 ms)' });
  });

  it('does not reopen a session closed for health while PostgreSQL is still unhealthy (no flapping)', () => {
    expect(decideSession({ ...base, open: false, closedForHealth: true, unhealthyForMs: 10 }).kind).toBe('waitForHealth');
    expect(decideSession({ ...base, open: false, closedForHealth: true, unhealthyForMs: 0 }).kind).toBe('openSession');
  });

  it('opens a session that is closed for any other reason (start-up, expiry), even while unhealthy', () => {
    expect(decideSession({ ...base, open: false, unhealthyForMs: 10 }).kind).toBe('openSession');
  });

  it('gives the sync the unhealthy limit again to take over before a primary that closed its session reopens it', () => {
    const closed = { ...base, open: false, closedForHealth: true };
    expect(decideSession({ ...closed, closedAsPrimaryForMs: 4999 })).toEqual({
      kind: 'waitForTakeover',
      reason: 'I closed my session as the primary 4999 ms ago for PostgreSQL\'s health; the sync may take over for 1 ms more before I reopen it',
    });
    const reopen = decideSession({ ...closed, closedAsPrimaryForMs: 5000 });
    expect(reopen.kind).toBe('openSession');
    expect(reopen.reason).toMatch(/no peer took over within 5000 ms; reopening it to renew my lease and restart PostgreSQL/);
    // Still unhealthy (not yet stopped by its lease fence): it waits for health first.
    expect(decideSession({ ...closed, closedAsPrimaryForMs: 9000, unhealthyForMs: 10 }).kind).toBe('waitForHealth');
    // A sync or async that closed its own reopens as soon as it is healthy.
    expect(decideSession({ ...closed, closedAsPrimaryForMs: null }).kind).toBe('openSession');
  });

  it('keeps the session of a primary without data closed, whatever its health and however long ago', () => {
    const d = decideSession({ ...base, open: false, closedForHealth: true, closedAsPrimaryForMs: 60_000, lostDataAsPrimary: true });
    expect(d).toEqual({ kind: 'waitForTakeover', reason: 'I am the primary but my data is gone; the session stays closed so that the sync takes over' });
  });
});

describe('whether PostgreSQL\'s health counts', () => {
  it('counts for a primary, a sync and an async, and for nobody else', () => {
    for (const role of ['primary', 'sync', 'async'] as const) expect(pgShouldRun({ role, rebuilding: false, leaseFenced: false })).toBe(true);
    for (const role of ['none', 'deposed', undefined] as const) expect(pgShouldRun({ role, rebuilding: false, leaseFenced: false })).toBe(false);
  });

  it('does not count while the sitter itself keeps PostgreSQL down: a rebuild, or the primary\'s lease fence', () => {
    expect(pgShouldRun({ role: 'async', rebuilding: true, leaseFenced: false })).toBe(false);
    expect(pgShouldRun({ role: 'primary', rebuilding: false, leaseFenced: true })).toBe(false);
    // The fence is the primary's: a fence left over from a role change does not excuse a standby.
    expect(pgShouldRun({ role: 'sync', rebuilding: false, leaseFenced: true })).toBe(true);
  });
});

describe('since when PostgreSQL counts as unhealthy', () => {
  const base = { sinceMs: null, nowMs: 50_000, shouldRun: true, healthy: false, notBeforeMs: 0 };

  it('starts at the first unhealthy look and keeps its start while unhealthy', () => {
    expect(unhealthySince(base)).toBe(50_000);
    expect(unhealthySince({ ...base, sinceMs: 40_000 })).toBe(40_000);
  });

  it('is cleared by health, and when PostgreSQL need not run', () => {
    expect(unhealthySince({ ...base, sinceMs: 40_000, healthy: true })).toBeNull();
    expect(unhealthySince({ ...base, sinceMs: 40_000, shouldRun: false })).toBeNull();
  });

  it('never counts the time before the last restore ended (a sync that waited for its source, then copied)', () => {
    // Unhealthy since 30 s (waiting for the source), a restore ended at 45 s: 5 s, not 20 s.
    expect(unhealthySince({ ...base, sinceMs: 30_000, notBeforeMs: 45_000 })).toBe(45_000);
    // A restore that ended before the unhealthy spell began changes nothing.
    expect(unhealthySince({ ...base, sinceMs: 30_000, notBeforeMs: 20_000 })).toBe(30_000);
    // A clock that reads a restore's end later than now never yields a negative duration.
    expect(unhealthySince({ ...base, sinceMs: 30_000, notBeforeMs: 60_000 })).toBe(50_000);
  });
});

describe('the Raft leader placement rule', () => {
  const base: LeaderPlacementInput = {
    state, selfId: 'a', raft: { leader: 'a', role: 'leader', voters: ['a', 'b', 'c', 'd'] }, active: [A, B, C, D],
    nowMs: 100_000, lastMoveMs: 0, moveIntervalMs: 5000,
  };

  it('moves the leadership from the primary to the first active voting async', () => {
    expect(placeLeader(base)).toEqual({ kind: 'moveRaftLeader', to: 'c', role: 'primary', reason: 'I am the primary and the Raft leader' });
    expect(placeLeader({ ...base, active: [A, B, D] })?.to).toBe('d');
    expect(placeLeader({ ...base, raft: { ...base.raft, voters: ['a', 'b', 'd'] } })?.to).toBe('d');
  });

  it('moves it from the sync too', () => {
    expect(placeLeader({ ...base, selfId: 'b', raft: { ...base.raft, leader: 'b' } })).toMatchObject({ to: 'c', role: 'sync' });
  });

  it('leaves it where it is when this peer does not lead, is an async, has no async to move to, or moved it recently', () => {
    expect(placeLeader({ ...base, raft: { ...base.raft, leader: 'c' } })).toBeNull();
    expect(placeLeader({ ...base, raft: { ...base.raft, role: 'follower' } })).toBeNull();
    expect(placeLeader({ ...base, selfId: 'c', raft: { ...base.raft, leader: 'c' } })).toBeNull();
    expect(placeLeader({ ...base, active: [A, B] })).toBeNull();
    expect(placeLeader({ ...base, state: null })).toBeNull();
    expect(placeLeader({ ...base, lastMoveMs: 96_000 })).toBeNull();
    expect(placeLeader({ ...base, lastMoveMs: 95_000 })).not.toBeNull();
  });
});

describe('the stalled stream rule', () => {
  const stalled = { stalledForMs: 20_000 };
  const committed = { generation: 3, initWal: '0/5000000' };

  it('does nothing without a verdict, and rebuilds a stalled async', () => {
    expect(decideStreamStall({ verdict: { ...stalled, action: 'none' }, generation: 3, state: committed, own: null })).toEqual({ kind: 'none' });
    expect(decideStreamStall({ verdict: { ...stalled, action: 'rebuild' }, generation: 3, state: committed, own: null }).kind).toBe('streamStalledRebuild');
  });

  it('rebuilds a stalled sync that has neither replayed nor received initWal (it could not take over)', () => {
    const d = decideStreamStall({ verdict: { ...stalled, action: 'report' }, generation: 3, state: committed, own: { replayLsn: '0/4000000', receiveLsn: '0/4800000', error: null } });
    expect(d).toEqual({
      kind: 'streamStalledRebuildSync', generation: 3, initWal: '0/5000000',
      reason: 'replayed 0/4000000 (received 0/4800000) is below initWal 0/5000000: I could not take over, and the primary has every acknowledged write',
    });
  });

  it('keeps a stalled sync\'s data when it could take over, when its WAL is unknown, or when the generation moved on', () => {
    const report = { ...stalled, action: 'report' } as const;
    const keep = (i: Parameters<typeof decideStreamStall>[0]): string => {
      const d = decideStreamStall(i);
      expect(d.kind).toBe('streamStalled');
      return d.kind === 'streamStalled' ? d.reason : '';
    };
    expect(keep({ verdict: report, generation: 3, state: committed, own: { replayLsn: '0/5000000', receiveLsn: null, error: null } })).toMatch(/at or past initWal/);
    expect(keep({ verdict: report, generation: 3, state: committed, own: { replayLsn: '0/4000000', receiveLsn: '0/5000001', error: null } })).toMatch(/received WAL up to 0\/5000001/);
    expect(keep({ verdict: report, generation: 3, state: committed, own: { replayLsn: null, receiveLsn: null, error: 'connection refused' } })).toBe('my WAL positions could not be read (connection refused)');
    expect(keep({ verdict: report, generation: 2, state: committed, own: { replayLsn: '0/1', receiveLsn: null, error: null } })).toBe('the committed state is not of generation 2 any more');
    expect(keep({ verdict: report, generation: null, state: committed, own: null })).toBe('the committed state is not of generation none any more');
  });

  it('rebuilds a stalled sync past initWal whose timeline history leaves its primary\'s before its WAL ends (seeds 41, 681: an older timeline; 50019: the same number)', () => {
    const report = { ...stalled, action: 'report' } as const;
    const own = { replayLsn: '0/6000000', receiveLsn: '0/6000000', history: { timeline: 2, switches: [{ timeline: 1, switchLsn: '0/1000000' }] }, error: null };
    const primaryHistory = { timeline: 3, switches: [{ timeline: 1, switchLsn: '0/1000000' }, { timeline: 2, switchLsn: '0/5000000' }] };
    const d = decideStreamStall({ verdict: report, generation: 3, state: committed, own, primaryHistory });
    expect(d).toEqual({
      kind: 'streamStalledRebuildSync', generation: 3, initWal: '0/5000000', forkLsn: '0/5000000',
      reason: 'I am on timeline 2 (from 1 at 0/1000000) and the primary on timeline 3 (from 2 at 0/5000000, from 1 at 0/1000000): ' +
        'the histories part at 0/5000000 on timeline 2, and I hold WAL up to 0/6000000: my WAL past the fork was never acknowledged, and the primary has every acknowledged write',
    });
    const sameNumber = { ...own, history: { timeline: 3, switches: [{ timeline: 1, switchLsn: '0/1000000' }, { timeline: 2, switchLsn: '0/5800000' }] } };
    expect(decideStreamStall({ verdict: report, generation: 3, state: committed, own: sameNumber, primaryHistory }))
      .toMatchObject({ kind: 'streamStalledRebuildSync', forkLsn: '0/5000000', reason: expect.stringMatching(/^I am on timeline 3 \(from 2 at 0\/5800000/) });
  });

  it('rebuilds a stalled sync past initWal on its primary\'s history when the primary is read-only, waiting for it (seed 110731: the same timeline begun at the same position)', () => {
    const report = { ...stalled, action: 'report' } as const;
    const h2 = { timeline: 2, switches: [{ timeline: 1, switchLsn: '0/5000000' }] };
    const own = { replayLsn: '0/6000000', receiveLsn: '0/6000000', history: h2, error: null };
    expect(decideStreamStall({ verdict: report, generation: 3, state: committed, own, primaryHistory: h2, primaryReadOnly: true })).toEqual({
      kind: 'streamStalledRebuildSync', generation: 3, initWal: '0/5000000', primaryReadOnly: true,
      reason: "my primary is read-only, waiting for me (and my timeline 2 (from 1 at 0/5000000) is the primary's): " +
        'it has every acknowledged write and takes none until I stream, so my copy holds nothing it lacks',
    });
    // A writable primary, or one whose state is unknown, keeps it (it may have acknowledged writes through it).
    for (const primaryReadOnly of [false, null, undefined]) {
      const d = decideStreamStall({ verdict: report, generation: 3, state: committed, own, primaryHistory: h2, ...(primaryReadOnly === undefined ? {} : { primaryReadOnly }) });
      expect(d.kind).toBe('streamStalled');
    }
    // Below initWal it rebuilds anyway, without asking.
    expect(decideStreamStall({ verdict: report, generation: 3, state: committed, own: { ...own, replayLsn: '0/1', receiveLsn: '0/1' }, primaryHistory: h2, primaryReadOnly: false }).kind).toBe('streamStalledRebuildSync');
  });

  it('keeps a stalled sync past initWal on its primary\'s history, or when a history is unknown, and says so', () => {
    const report = { ...stalled, action: 'report' } as const;
    const h3 = { timeline: 3, switches: [{ timeline: 1, switchLsn: '0/1000000' }, { timeline: 2, switchLsn: '0/5000000' }] };
    const own = { replayLsn: '0/6000000', receiveLsn: null, history: h3, error: null };
    const same = decideStreamStall({ verdict: report, generation: 3, state: committed, own, primaryHistory: h3 });
    expect(same).toMatchObject({ kind: 'streamStalled', reason: expect.stringMatching(/at or past initWal .*, and my timeline 3 \(.*\) is the primary's$/) });
    const unknown = decideStreamStall({ verdict: report, generation: 3, state: committed, own, primaryHistory: null });
    expect(unknown).toMatchObject({ kind: 'streamStalled', reason: expect.stringMatching(/, and the timeline histories are unknown$/) });
    const noOwn = decideStreamStall({ verdict: report, generation: 3, state: committed, own: { ...own, history: null }, primaryHistory: h3 });
    expect(noOwn).toMatchObject({ kind: 'streamStalled', reason: expect.stringMatching(/timeline histories are unknown/) });
  });
});
