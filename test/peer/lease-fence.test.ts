// The primary's lease, pure: the budget after drift and margin, the verdict over time, and the
// sender's side of acknowledged keepalives (what an acknowledgement renews, and what it does not).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { LeaseClock, PrimaryLeaseFence } from '../../src/peer/lease-fence.js';
import { InProcessGroup } from '../store/in-process-consensus.js';
import { ClusterStateMachine } from '../../src/store/state-machine.js';
import { ClusterStore } from '../../src/store/store.js';
import { peer } from '../store/fixtures.js';
import { KeepaliveLease, decodeKeepalive, decodeKeepaliveAck, decodeKeepaliveWithSeq, encodeKeepalive, encodeKeepaliveAck } from '../../src/store/raft-consensus.js';

describe('LeaseClock', () => {
  it('ends the lease sessionTimeoutMs less 1% drift and the margin after the acknowledged send', () => {
    const c = new LeaseClock(1500);
    expect(c.marginMs).toBe(150);
    expect(c.budgetMs).toBe(1485 - 150);
    expect(c.verdict(10_000, null)).toEqual({ fenced: false, validForMs: null, reason: 'not renewed yet (no session open committed, no keepalive acknowledged)' });
    expect(c.verdict(10_000, 9_000)).toMatchObject({ fenced: false, validForMs: 335 });
    const late = c.verdict(10_400, 9_000);
    expect(late.fenced).toBe(true);
    expect(late.reason).toBe('lease not renewed for 1400 ms (no keepalive acknowledged nor session open committed since; lease 1335 ms: sessionTimeoutMs 1500 less 1% clock drift and a 150 ms margin)');
  });

  it('refuses a session timeout that leaves no lease', () => {
    expect(() => new LeaseClock(100)).toThrow(/leaves no lease/);
  });
});

describe('acknowledged keepalives', () => {
  it('encode a sequence number, and read keepalives of older senders without one', () => {
    expect(encodeKeepalive(7, 3)).toBe('keepalive:7:3');
    expect(decodeKeepaliveWithSeq('keepalive:7:3')).toEqual({ openedIndex: 7, seq: 3 });
    expect(decodeKeepaliveWithSeq('keepalive:7')).toEqual({ openedIndex: 7, seq: null });
    expect(decodeKeepalive('keepalive:7:3')).toBe(7);
    for (const bad of ['keepalive:7:', 'keepalive:7:0', 'keepalive:x:1', 'keepalive:7:1:2', 'other']) expect(decodeKeepaliveWithSeq(bad)).toBeNull();
    expect(decodeKeepaliveAck(encodeKeepaliveAck(12))).toBe(12);
    expect(decodeKeepaliveAck('keepaliveAck:-1')).toBeNull();
  });

  it('renews the lease from the send time of the newest acknowledged keepalive, never backwards', () => {
    const l = new KeepaliveLease();
    const s1 = l.next(100);
    const s2 = l.next(400);
    expect(l.renewedAt()).toBeNull();
    l.acked(s2);
    expect(l.renewedAt()).toBe(400);
    // A late acknowledgement of an older keepalive renews nothing.
    l.acked(s1);
    expect(l.renewedAt()).toBe(400);
    // An acknowledgement of a keepalive never sent (or forgotten) renews nothing.
    l.acked(99);
    expect(l.renewedAt()).toBe(400);
    const s3 = l.next(700);
    l.acked(s3);
    expect(l.renewedAt()).toBe(700);
  });

  it('tells its listeners of each renewal that moves the lease forward, and of nothing else', () => {
    const l = new KeepaliveLease();
    let renewals = 0;
    const off = l.onRenewed(() => { renewals++; });
    const s1 = l.next(100);
    const s2 = l.next(400);
    l.acked(s2);
    expect(renewals).toBe(1);
    l.acked(s1);
    l.acked(99);
    expect(renewals).toBe(1);
    off();
    l.acked(l.next(700));
    expect(l.renewedAt()).toBe(700);
    expect(renewals).toBe(1);
  });

  it('forgets the oldest of too many keepalives in flight', () => {
    const l = new KeepaliveLease();
    const first = l.next(1);
    for (let i = 0; i < 64; i++) l.next(2 + i);
    l.acked(first);
    expect(l.renewedAt()).toBeNull();
  });
});

describe('PrimaryLeaseFence', () => {
  function rig(primary = true) {
    let nowMs = 10_000;
    let renewedAtMs: number | null = 9_900;
    const calls = { stops: 0, invalidations: 0, kicks: 0 };
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
    const fence = new PrimaryLeaseFence({
      leaseClock: new LeaseClock(1500), nowMs: () => nowMs, renewedAtMs: () => renewedAtMs, isPrimary: () => primary,
      stopPostgres: () => { calls.stops++; return Promise.resolve(); }, invalidate: () => { calls.invalidations++; }, kick: () => { calls.kicks++; }, log,
    });
    return { fence, calls, lines, at: (ms: number) => { nowMs = ms; }, renew: (ms: number) => { renewedAtMs = ms; } };
  }

  it('fences a primary whose lease ran out, once, and keeps it fenced until a keepalive sent after the fence is acknowledged', () => {
    const r = rig();
    r.fence.check();
    expect(r.fence.status().fenced).toBe(false);
    r.at(9_900 + 1335 + 1);
    r.fence.check();
    r.fence.check();
    expect(r.fence.status()).toMatchObject({ fenced: true });
    expect(r.calls).toEqual({ stops: 1, invalidations: 1, kicks: 0 });
    expect(r.lines.find((l) => l['decision'] === 'lease-fence')?.['reason']).toMatch(/^lease not renewed for 1336 ms/);
    expect(r.fence.holdsPrimary('primary')).toBe(true);
    expect(r.fence.holding).toBe(true);
    // An acknowledgement of a keepalive sent before the fence does not lift it.
    r.renew(11_200);
    r.at(11_300);
    r.fence.check();
    expect(r.fence.status().fenced).toBe(true);
    // One sent after it does.
    r.renew(11_250);
    r.fence.check();
    expect(r.fence.status().fenced).toBe(false);
    expect(r.calls.kicks).toBe(1);
    expect(r.fence.holdsPrimary('primary')).toBe(false);
    expect(r.fence.holding).toBe(false);
  });

  it('never fences a peer that is not the primary, and a role change ends a fence', () => {
    const idle = rig(false);
    idle.at(50_000);
    idle.fence.check();
    expect(idle.calls.stops).toBe(0);
    const r = rig();
    r.at(50_000);
    r.fence.check();
    expect(r.fence.holdsPrimary('deposed')).toBe(false);
    expect(r.fence.holdsPrimary('primary')).toBe(false);
    expect(r.lines.some((l) => l['decision'] === 'lease-fence-moot')).toBe(true);
  });

  describe('on its own timer (start)', () => {
    afterEach(() => { vi.useRealTimers(); });

    /** A fence started on fake timers, its clock the fake clock, with the store's notifications in the test's hands. */
    function started(opts: { primary?: boolean; renewedAtMs?: number | null } = {}) {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'], now: 0 });
      vi.advanceTimersByTime(10_000);
      let primary = opts.primary ?? true;
      let renewedAtMs: number | null = opts.renewedAtMs === undefined ? 9_900 : opts.renewedAtMs;
      let notify: (() => void) | null = null;
      let clockReads = 0;
      const calls = { stops: 0, kicks: 0 };
      const fence = new PrimaryLeaseFence({
        leaseClock: new LeaseClock(1500),
        nowMs: () => { clockReads++; return performance.now(); },
        renewedAtMs: () => renewedAtMs,
        isPrimary: () => primary,
        subscribe: (changed) => { notify = changed; return () => { notify = null; }; },
        stopPostgres: () => { calls.stops++; return Promise.resolve(); },
        invalidate: () => undefined,
        kick: () => { calls.kicks++; },
        log: pino({ level: 'silent' }),
      });
      fence.start();
      return {
        fence, calls,
        clockReads: () => clockReads,
        /** A keepalive sent at `ms` was acknowledged now. */
        renew: (ms: number) => { renewedAtMs = ms; notify?.(); },
        /** The same, without telling the fence. */
        renewSilently: (ms: number) => { renewedAtMs = ms; },
        /** The committed state changed this peer's role. */
        setPrimary: (p: boolean) => { primary = p; notify?.(); },
        subscribed: () => notify !== null,
      };
    }

    it('fences at the lease deadline from one timer, without polling', () => {
      const r = started();
      expect(performance.now()).toBe(10_000);
      // One timer, for the deadline (9_900 + 1335 = 11_235): no periodic check.
      expect(vi.getTimerCount()).toBe(1);
      expect(r.fence.armed).toBe(true);
      const readsAtStart = r.clockReads();
      vi.advanceTimersByTime(1_234);
      expect(r.fence.status().fenced).toBe(false);
      expect(r.calls.stops).toBe(0);
      // Nothing ran in those 1234 ms: the only clock read since the start is status()'s own.
      expect(r.clockReads() - readsAtStart).toBe(1);
      vi.advanceTimersByTime(1);
      expect(performance.now()).toBe(11_235);
      expect(r.calls.stops).toBe(1);
      expect(r.fence.status().fenced).toBe(true);
      // Fenced: no timer; the acknowledgement of a keepalive sent after the fence lifts it at once.
      expect(vi.getTimerCount()).toBe(0);
      r.renew(11_100);
      expect(r.fence.status().fenced).toBe(true);
      r.renew(11_300);
      expect(r.calls.kicks).toBe(1);
      expect(r.fence.holding).toBe(false);
      // And the timer is armed again for the new lease's end.
      expect(vi.getTimerCount()).toBe(1);
      r.fence.stop();
      expect(vi.getTimerCount()).toBe(0);
      expect(r.subscribed()).toBe(false);
    });

    it('moves the deadline at each acknowledged keepalive, so that a renewed primary is never fenced and its timer never fires', () => {
      const r = started();
      const readsAtStart = r.clockReads();
      for (let i = 1; i <= 20; i++) {
        vi.advanceTimersByTime(300);
        r.renew(10_000 + 300 * i);
      }
      expect(r.calls.stops).toBe(0);
      expect(vi.getTimerCount()).toBe(1);
      // 20 renewals, two clock reads each (the check and the arming): the timer itself never ran.
      expect(r.clockReads() - readsAtStart).toBe(40);
      vi.advanceTimersByTime(1_334);
      expect(r.calls.stops).toBe(0);
      vi.advanceTimersByTime(1);
      expect(r.calls.stops).toBe(1);
    });

    it('has no timer on a peer that is not the primary, nor before its first acknowledgement, and arms one when it becomes the primary', () => {
      const r = started({ primary: false });
      expect(vi.getTimerCount()).toBe(0);
      r.renew(10_000);
      expect(vi.getTimerCount()).toBe(0);
      vi.advanceTimersByTime(60_000);
      expect(r.calls.stops).toBe(0);
      r.renew(70_000);
      r.setPrimary(true);
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(1_335);
      expect(r.calls.stops).toBe(1);
      vi.useRealTimers();
      const fresh = started({ renewedAtMs: null });
      expect(vi.getTimerCount()).toBe(0);
      expect(fresh.fence.status()).toMatchObject({ fenced: false, validForMs: null });
    });

    it('fires early without fencing early: it checks again and waits out what is left of the lease', () => {
      const r = started();
      // A renewal the fence was not told of: its timer (armed for 11_235) comes before the lease's end,
      // as when Node runs a timer early by its cached loop time.
      r.renewSilently(10_500);
      vi.advanceTimersByTime(1_235);
      expect(r.calls.stops).toBe(0);
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(599);
      expect(r.calls.stops).toBe(0);
      vi.advanceTimersByTime(1);
      expect(performance.now()).toBe(11_835);
      expect(r.calls.stops).toBe(1);
    });
  });
});

describe('the lease of a primary that (re)started and is cut off before its first acknowledged keepalive', () => {
  // The real store on the in-process consensus, which acknowledges no keepalive: the only renewal is
  // the session's open. Before the open counted, renewedAtMs stayed null and the primary was never fenced.
  function restarted() {
    let nowMs = 20_000;
    const group = new InProcessGroup();
    const machine = new ClusterStateMachine();
    group.add('a', machine);
    group.elect('a');
    const store = new ClusterStore({ machine, consensus: group.member('a'), sessionTimeoutMs: 1500, monoNowMs: () => nowMs });
    const calls = { stops: 0 };
    const log = pino({ level: 'silent' });
    const fence = new PrimaryLeaseFence({
      leaseClock: new LeaseClock(1500), nowMs: () => nowMs, renewedAtMs: () => store.leaseRenewedAtMs(), isPrimary: () => true,
      stopPostgres: () => { calls.stops++; return Promise.resolve(); }, invalidate: () => undefined, kick: () => undefined, log,
    });
    return { store, fence, calls, at: (ms: number) => { nowMs = ms; } };
  }

  it('fences lease-budget after the open was sent', async () => {
    const r = restarted();
    try {
      const opening = r.store.openSession(peer('a'));
      r.at(20_200); // committed 200 ms after it was sent
      await opening;
      r.fence.check();
      expect(r.fence.status()).toMatchObject({ fenced: false, validForMs: 1335 - 200 });
      r.at(20_000 + 1335 - 1);
      r.fence.check();
      expect(r.calls.stops).toBe(0);
      // Cut off: no keepalive is ever acknowledged.
      r.at(20_000 + 1335 + 1);
      r.fence.check();
      expect(r.fence.status()).toMatchObject({ fenced: true, validForMs: -1 });
      expect(r.calls.stops).toBe(1);
    } finally {
      r.store.stop();
    }
  });

  it('tells the store\'s lease listeners (the fence\'s timer) of each committed open', async () => {
    const r = restarted();
    let renewals = 0;
    const off = r.store.onLeaseRenewed(() => { renewals++; });
    try {
      await r.store.openSession(peer('a'));
      expect(renewals).toBe(1);
      expect(r.store.leaseRenewedAtMs()).toBe(20_000);
      off();
      r.at(21_000);
      await r.store.openSession(peer('a'));
      expect(renewals).toBe(1);
    } finally {
      r.store.stop();
    }
  });

  it('an open that took longer than the lease to commit fences at once; a later open lifts the fence', async () => {
    const r = restarted();
    try {
      const opening = r.store.openSession(peer('a'));
      r.at(20_000 + 1500);
      await opening;
      r.fence.check();
      expect(r.fence.status().fenced).toBe(true);
      expect(r.calls.stops).toBe(1);
      // An open sent after the fence (the session reopened, e.g. after an expiry) renews the lease.
      r.at(22_000);
      await r.store.openSession(peer('a'));
      r.at(22_100);
      r.fence.check();
      expect(r.fence.status().fenced).toBe(false);
    } finally {
      r.store.stop();
    }
  });
});
