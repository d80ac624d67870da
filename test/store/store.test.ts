// ClusterStore on the deterministic in-process consensus: typed errors, linearizable reads,
// sessions and the leader's expiry with grace, driven by an injected clock.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InProcessGroup } from './in-process-consensus.js';
import { ClusterStateMachine, type PeersChange, type StateChange } from '../../src/store/state-machine.js';
import { ClusterStore, type SessionExpiredEvent } from '../../src/store/store.js';
import { InvalidStateError, STORE_ERR, VersionMismatchError } from '../../src/store/errors.js';
import { encodeCommand } from '../../src/store/commands.js';
import { hasCode } from '../../src/errors.js';
import { waitFor } from '../../tools/lib/wait.js';
import { a, b, c, gen1, peer } from './fixtures.js';
import type { PeerInfo } from '../../src/model/index.js';

const TIMEOUT_MS = 1000;

class Clock {
  ms = 1_700_000_000_000;
  now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

interface Shard {
  group: InProcessGroup;
  clock: Clock;
  stores: Map<string, ClusterStore>;
  s(id: string): ClusterStore;
}

const live: ClusterStore[] = [];
afterEach(() => {
  for (const s of live.splice(0)) s.stop();
});

function shard(ids = ['a', 'b', 'c'], opts: { sessionTimeoutMs?: number; clock?: Clock; reopen?: boolean; confirmPeerGone?: (p: PeerInfo) => Promise<string | null> } = {}): Shard {
  const group = new InProcessGroup();
  const clock = opts.clock ?? new Clock();
  const stores = new Map<string, ClusterStore>();
  for (const id of ids) {
    const machine = new ClusterStateMachine();
    const member = group.add(id, machine);
    const store = new ClusterStore({
      machine,
      consensus: member,
      sessionTimeoutMs: opts.sessionTimeoutMs ?? TIMEOUT_MS,
      now: clock.now,
      ...(opts.reopen === undefined ? {} : { reopenExpiredSession: opts.reopen }),
      ...(opts.confirmPeerGone === undefined ? {} : { confirmPeerGone: opts.confirmPeerGone }),
    });
    live.push(store);
    stores.set(id, store);
  }
  group.elect(ids[0]!);
  return { group, clock, stores, s: (id) => stores.get(id)! };
}

async function openAll(sh: Shard, peers: PeerInfo[]): Promise<void> {
  for (const p of peers) await sh.s(p.id).openSession(p);
  await sh.group.settle();
}

async function beat(sh: Shard, ids: string[]): Promise<void> {
  for (const id of ids) await sh.s(id).keepalive();
  await sh.group.settle();
}

function ids(peers: readonly PeerInfo[]): string[] {
  return peers.map((p) => p.id);
}

describe('state reads and writes', () => {
  it('writes on one member and reads linearizably on another', async () => {
    const sh = shard();
    expect(sh.s('b').getState()).toEqual({ state: null, version: 0 });
    await expect(sh.s('a').putState(gen1(), 0)).resolves.toEqual({ version: 1 });
    const read = await sh.s('b').readState();
    expect(read).toEqual({ state: gen1(), version: 1 });
    expect(sh.s('c').history()).toHaveLength(1);
  });

  it('a lost compare-and-set is a VersionMismatchError that carries the current version', async () => {
    const sh = shard();
    await sh.s('a').putState(gen1(), 0);
    const err = await sh.s('b').putState(gen1({ async: [] }), 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VersionMismatchError);
    expect(err).toMatchObject({ code: 'MANATEE_ERR_STORE_VERSION_MISMATCH', currentVersion: 1, expectedVersion: 0 });
  });

  it('an invalid state is an InvalidStateError naming each problem', async () => {
    const sh = shard();
    const err = await sh.s('a').putState(gen1({ sync: a, initWal: 'nope' }), 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidStateError);
    expect(hasCode(err, 'MANATEE_ERR_STORE_INVALID_STATE')).toBe(true);
    expect((err as InvalidStateError).problems).toEqual([expect.stringMatching(/^initWal: must be an LSN/)]);
    const err2 = (await sh.s('a').putState(gen1({ sync: a }), 0).catch((e: unknown) => e)) as InvalidStateError;
    expect(err2.message).toBe('invalid cluster state: primary and sync are the same peer (a)');
  });

  it('passes on the consensus errors (no leader)', async () => {
    const sh = shard();
    sh.group.elect(null);
    await expect(sh.s('a').putState(gen1(), 0)).rejects.toMatchObject({ code: 'MANATEE_ERR_RAFT_NO_LEADER' });
    await expect(sh.s('b').readState()).rejects.toMatchObject({ code: 'MANATEE_ERR_RAFT_NO_LEADER' });
  });

  it('watches fire on every member with the new state and version', async () => {
    const sh = shard();
    const seen: StateChange[] = [];
    sh.s('c').on('state', (e) => seen.push(e));
    await sh.s('a').putState(gen1(), 0, 'setup');
    await sh.group.settle();
    expect(seen.map((e) => [e.version, e.summary, e.state.primary.id])).toEqual([[1, 'setup', 'a']]);
  });

  it('a stopped store refuses calls', async () => {
    const sh = shard();
    sh.s('a').stop();
    await expect(sh.s('a').putState(gen1(), 0)).rejects.toMatchObject({ code: STORE_ERR.stopped });
    await expect(sh.s('a').readState()).rejects.toMatchObject({ code: STORE_ERR.stopped });
    expect(() => { sh.s('a').start(); }).toThrow(/stopped/);
  });

  it('refuses bad timing options', () => {
    const machine = new ClusterStateMachine();
    const consensus = new InProcessGroup().add('x', machine);
    expect(() => new ClusterStore({ machine, consensus, sessionTimeoutMs: 0 })).toThrow(/sessionTimeoutMs must be >= 10/);
    expect(() => new ClusterStore({ machine, consensus, sessionTimeoutMs: 1000, keepaliveIntervalMs: 600 })).toThrow(
      /keepaliveIntervalMs must be > 0 and at most half of sessionTimeoutMs 1000/,
    );
    expect(() => new ClusterStore({ machine, consensus, sessionTimeoutMs: 1000, expiryCheckIntervalMs: 2000 })).toThrow(/expiryCheckIntervalMs/);
  });
});

describe('sessions', () => {
  it('open sessions make peers active on every member, in opening order; close removes at once', async () => {
    const sh = shard();
    const peers: PeersChange[] = [];
    sh.s('b').on('peers', (e) => peers.push(e));
    await openAll(sh, [b, a, c]);
    for (const id of ['a', 'b', 'c']) expect(ids(sh.s(id).activePeers())).toEqual(['b', 'a', 'c']);
    expect(sh.s('a').session()).toMatchObject({ peer: a, openedIndex: 2 });
    await sh.s('a').closeSession();
    await sh.group.settle();
    expect(ids(sh.s('c').activePeers())).toEqual(['b', 'c']);
    expect(sh.s('a').session()).toBeNull();
    expect(peers.map((e) => e.cause)).toEqual(['open', 'open', 'open', 'close']);
  });

  it('keepalive and close without an open session are refused', async () => {
    const sh = shard();
    await expect(sh.s('a').keepalive()).rejects.toMatchObject({ code: STORE_ERR.noSession });
    await expect(sh.s('a').closeSession()).rejects.toMatchObject({ code: STORE_ERR.noSession });
  });

  it('a reopened session (a restarted sitter) replaces the old one', async () => {
    const sh = shard();
    await openAll(sh, [a, b]);
    const old = sh.s('b').session()!;
    // The sitter restarts: a new store instance on the same member opens b again.
    const again = await sh.s('b').openSession(b);
    expect(again.openedIndex).toBeGreaterThan(old.openedIndex);
    expect(ids(sh.s('a').activePeers())).toEqual(['a', 'b']);
  });
});

describe('expiry by the leader', () => {
  it('expires a session silent for sessionTimeoutMs, on the leader only, and tells its owner', async () => {
    const sh = shard(['a', 'b', 'c'], { reopen: false });
    await openAll(sh, [a, b, c]);
    expect(await sh.s('a').checkSessions()).toEqual([]); // first pass as leader: grace starts now
    const expiredEvents: SessionExpiredEvent[] = [];
    sh.s('c').on('sessionExpired', (e) => expiredEvents.push(e));

    for (let t = 0; t < 4; t++) {
      sh.clock.advance(300);
      await beat(sh, ['a', 'b']); // c says nothing
      expect(await sh.s('b').checkSessions()).toEqual([]); // a follower never expires
      const expired = await sh.s('a').checkSessions();
      expect(expired).toEqual(t < 3 ? [] : ['c']); // 900 ms: still alive; 1200 ms: expired
    }
    await sh.group.settle();
    for (const id of ['a', 'b', 'c']) expect(ids(sh.s(id).activePeers())).toEqual(['a', 'b']);
    expect(expiredEvents).toHaveLength(1);
    expect(expiredEvents[0]!.reason).toMatch(/no keepalive for 1200 ms \(sessionTimeoutMs 1000\)/);
    expect(sh.s('c').session()).toBeNull();
    await expect(sh.s('c').keepalive()).rejects.toMatchObject({ code: STORE_ERR.noSession });
  });

  it('expires at once the session of a peer whose process is gone (its Raft port refused, confirmed), on the leader only', async () => {
    const asked: string[] = [];
    const sh = shard(['a', 'b', 'c'], { reopen: false, confirmPeerGone: (p) => { asked.push(p.id); return Promise.resolve(`its PostgreSQL port ${p.id}:5432 refused`); } });
    await openAll(sh, [a, b, c]);
    expect(await sh.s('a').checkSessions()).toEqual([]); // grace starts now
    const expiredEvents: SessionExpiredEvent[] = [];
    sh.s('c').on('sessionExpired', (e) => expiredEvents.push(e));
    sh.clock.advance(100);
    await beat(sh, ['c']); // heard by this leader since its grace
    sh.clock.advance(100); // far from the 1000 ms timeout
    expect(await sh.s('b').expireGone('c')).toBe(false); // a follower never expires
    expect(asked).toEqual([]);
    expect(await sh.s('a').expireGone('c')).toBe(true);
    expect(asked).toEqual(['c']);
    await sh.group.settle();
    for (const id of ['a', 'b', 'c']) expect(ids(sh.s(id).activePeers())).toEqual(['a', 'b']);
    expect(expiredEvents).toHaveLength(1);
    expect(expiredEvents[0]!.reason).toBe('its process is gone: its Raft port refused and its PostgreSQL port c:5432 refused (no keepalive for 100 ms)');
    expect(await sh.s('a').expireGone('c')).toBe(false); // no session any more
  });

  it('keeps the session of a refused peer when nothing confirms it gone, in a new leader\'s grace, after a keepalive meanwhile, or without a way to confirm', async () => {
    let answer: 'gone' | 'alive' | 'throws' | 'beats' = 'alive';
    let sh: Shard | null = null;
    const confirm = async (p: PeerInfo): Promise<string | null> => {
      if (answer === 'throws') throw new Error('probe failed');
      if (answer === 'beats') {
        sh!.clock.advance(10);
        await beat(sh!, [p.id]); // a keepalive lands while the probe runs
      }
      return answer === 'alive' ? null : 'its PostgreSQL port refused';
    };
    sh = shard(['a', 'b', 'c'], { reopen: false, confirmPeerGone: confirm });
    await openAll(sh, [a, b, c]);
    // a has not heard c since its grace (its election): it cannot know c's lease, the timeout stands.
    answer = 'gone';
    sh.clock.advance(100);
    expect(await sh.s('a').checkSessions()).toEqual([]);
    expect(await sh.s('a').expireGone('c')).toBe(false);
    await beat(sh, ['c']);
    sh.clock.advance(100);
    for (const a2 of ['alive', 'throws', 'beats'] as const) {
      answer = a2;
      expect(await sh.s('a').expireGone('c'), a2).toBe(false);
    }
    await sh.group.settle();
    expect(ids(sh.s('a').activePeers())).toEqual(['a', 'b', 'c']);
    // Without confirmPeerGone a refusal alone never expires a session.
    const plain = shard(['a', 'b', 'c'], { reopen: false });
    await openAll(plain, [a, b, c]);
    plain.clock.advance(100);
    await beat(plain, ['c']);
    expect(await plain.s('a').expireGone('c')).toBe(false);
  });

  it('a peer cut off during its expiry learns of it when it catches up', async () => {
    const sh = shard(['a', 'b', 'c'], { reopen: false });
    await openAll(sh, [a, b, c]);
    const expiredEvents: SessionExpiredEvent[] = [];
    sh.s('c').on('sessionExpired', (e) => expiredEvents.push(e));
    sh.group.stop('c');
    await sh.s('a').checkSessions();
    sh.clock.advance(TIMEOUT_MS + 1);
    await beat(sh, ['a', 'b']);
    expect(await sh.s('a').checkSessions()).toEqual(['c']);
    expect(sh.s('c').session()).not.toBeNull(); // c has not applied the expiry yet
    sh.group.start('c');
    await sh.group.settle();
    expect(sh.s('c').session()).toBeNull();
    expect(expiredEvents.map((e) => e.session.peer.id)).toEqual(['c']);
  });

  it('a keepalive for a replaced session is refused as SESSION_EXPIRED and tells its owner', async () => {
    const sh = shard(['a', 'b'], { reopen: false });
    await openAll(sh, [a, b]);
    // A second store for peer b on member b (say, a sitter that restarted while the old one hung).
    const machine = sh.s('b').machine;
    const newer = new ClusterStore({ machine, consensus: sh.group.member('b'), sessionTimeoutMs: TIMEOUT_MS, now: sh.clock.now });
    live.push(newer);
    await newer.openSession(b);
    const expiredEvents: SessionExpiredEvent[] = [];
    sh.s('b').on('sessionExpired', (e) => expiredEvents.push(e));
    await expect(sh.s('b').keepalive()).rejects.toMatchObject({
      code: 'MANATEE_ERR_STORE_SESSION_EXPIRED',
      message: expect.stringMatching(/no longer exists \(a newer one was opened at index \d+\)/),
    });
    expect(expiredEvents).toHaveLength(1);
    expect(sh.s('b').session()).toBeNull();
    await expect(newer.keepalive()).resolves.toBeUndefined();
  });

  it('gives every session a full sessionTimeoutMs of grace after a leader change', async () => {
    const sh = shard();
    await openAll(sh, [a, b, c]);
    await sh.s('a').checkSessions(); // a leads, grace from t=0
    sh.clock.advance(900); // nobody has beaten for 900 ms: the old leader would expire everyone at 1000
    sh.group.elect('b'); // a new leader, in a new term
    expect(sh.s('b').leaderInfo()).toEqual({ leader: 'b', term: 2, isLeader: true });
    sh.clock.advance(200); // t=1100: silent for 1100 ms in total, but only 200 ms of b's leadership
    expect(await sh.s('b').checkSessions()).toEqual([]);
    expect(await sh.s('a').checkSessions()).toEqual([]); // no longer leader: does nothing
    await beat(sh, ['a', 'b']);
    sh.clock.advance(799); // 999 ms after the election
    expect(await sh.s('b').checkSessions()).toEqual([]);
    sh.clock.advance(1); // c: a full timeout since the election with no keepalive
    expect(await sh.s('b').checkSessions()).toEqual(['c']);
    await sh.group.settle();
    expect(ids(sh.s('a').activePeers())).toEqual(['a', 'b']);
  });

  it('a leader whose expiry loop was stalled (SIGSTOP, a paused VM) gives every session a full timeout before expiring any', async () => {
    const sh = shard();
    await openAll(sh, [a, b, c]);
    await sh.s('a').checkSessions(); // a leads, grace from t=0
    expect(sh.s('a').noteExpiryTick(sh.clock.now())).toBe(false); // the first tick only starts counting
    sh.clock.advance(100);
    expect(sh.s('a').noteExpiryTick(sh.clock.now())).toBe(false); // a normal interval
    sh.clock.advance(5000); // the process did not run for 5 s: nobody's keepalive could be heard
    expect(sh.s('a').noteExpiryTick(sh.clock.now())).toBe(true);
    expect(await sh.s('a').checkSessions()).toEqual([]);
    expect(sh.s('b').noteExpiryTick(sh.clock.now())).toBe(false); // not the leader: nothing to grant
    sh.clock.advance(200);
    await beat(sh, ['a', 'b']);
    sh.clock.advance(TIMEOUT_MS - 201); // 999 ms after the stall
    expect(await sh.s('a').checkSessions()).toEqual([]);
    sh.clock.advance(1); // c: a full timeout since the stall with no keepalive
    expect(await sh.s('a').checkSessions()).toEqual(['c']);
  });

  it('grants grace when leadership returns to the same node in a new term', async () => {
    const sh = shard();
    await openAll(sh, [a, b]);
    await sh.s('a').checkSessions();
    sh.clock.advance(900);
    sh.group.elect(null);
    sh.group.elect('a');
    sh.clock.advance(500);
    expect(await sh.s('a').checkSessions()).toEqual([]);
    sh.clock.advance(500);
    expect((await sh.s('a').checkSessions()).sort()).toEqual(['a', 'b']);
  });

  it('a blip shorter than sessionTimeoutMs changes nothing', async () => {
    const sh = shard();
    await sh.s('a').putState(gen1(), 0);
    await openAll(sh, [a, b, c]);
    await sh.s('a').checkSessions();
    const before = { state: sh.s('a').getState(), sessions: sh.s('a').sessions() };
    const peersEvents: PeersChange[] = [];
    const stateEvents: StateChange[] = [];
    sh.s('b').on('peers', (e) => peersEvents.push(e));
    sh.s('b').on('state', (e) => stateEvents.push(e));
    // c cannot reach the leader for 999 ms (its keepalives are lost), then it is back.
    for (let t = 0; t < 9; t++) {
      sh.clock.advance(111);
      await beat(sh, ['a', 'b']);
      expect(await sh.s('a').checkSessions()).toEqual([]);
    }
    await beat(sh, ['c']);
    sh.clock.advance(900);
    expect(await sh.s('a').checkSessions()).toEqual([]);
    // And the leader itself losing the group briefly (no leader, then re-elected) changes nothing either.
    sh.group.elect(null);
    await expect(sh.s('b').keepalive()).rejects.toMatchObject({ code: 'MANATEE_ERR_RAFT_NO_LEADER' });
    sh.clock.advance(500);
    sh.group.elect('a');
    expect(await sh.s('a').checkSessions()).toEqual([]);
    sh.clock.advance(600);
    await beat(sh, ['a', 'b', 'c']);
    expect(await sh.s('a').checkSessions()).toEqual([]);
    expect(peersEvents).toEqual([]);
    expect(stateEvents).toEqual([]);
    expect({ state: sh.s('a').getState(), sessions: sh.s('a').sessions() }).toEqual(before);
  });

  it('counts only keepalives for the session the leader knows (same openedIndex), and only on the leader', async () => {
    const sh = shard();
    await openAll(sh, [a, b]);
    await sh.s('a').checkSessions();
    const stale = sh.s('b').session()!.openedIndex + 1000;
    for (let t = 0; t < 4; t++) {
      sh.clock.advance(250);
      await sh.group.member('b').keepalive(stale); // not b's session: ignored
      await beat(sh, ['a']);
    }
    expect(await sh.s('a').checkSessions()).toEqual(['b']);
    // No log entry was written for any of these keepalives: only the open of two sessions and b's expiry.
    await sh.group.settle();
    expect(sh.group.lastIndex).toBe(3);
  });

  it('does not expire the new incarnation of a restarted peer', async () => {
    const sh = shard();
    await openAll(sh, [a, b]);
    await sh.s('a').checkSessions();
    sh.clock.advance(900);
    await sh.s('b').openSession(b); // the sitter restarted and opened a new session just in time
    await sh.group.settle();
    sh.clock.advance(200);
    await beat(sh, ['a']);
    expect(await sh.s('a').checkSessions()).toEqual([]);
    expect(ids(sh.s('a').activePeers())).toEqual(['a', 'b']);
  });

  it('a new member learns sessions from a snapshot and gives them grace', async () => {
    const sh = shard();
    await openAll(sh, [a, b]);
    const machine = new ClusterStateMachine();
    machine.restore(sh.s('a').machine.snapshot());
    const g2 = new InProcessGroup({ startIndex: machine.appliedIndex });
    const member = g2.add('d', machine);
    const clock = new Clock();
    const store = new ClusterStore({ machine, consensus: member, sessionTimeoutMs: TIMEOUT_MS, now: clock.now });
    live.push(store);
    g2.elect('d');
    expect(ids(store.activePeers())).toEqual(['a', 'b']);
    expect(await store.checkSessions()).toEqual([]);
    clock.advance(TIMEOUT_MS - 1);
    expect(await store.checkSessions()).toEqual([]);
    clock.advance(1);
    expect((await store.checkSessions()).sort()).toEqual(['a', 'b']);
  });
});

describe('timers (real time, short timeouts)', () => {
  it('keeps sessions alive with keepalives, expires a stopped peer, and reopens a session after an expiry', async () => {
    const group = new InProcessGroup();
    const stores = new Map<string, ClusterStore>();
    for (const p of [a, b, c]) {
      const machine = new ClusterStateMachine();
      const store = new ClusterStore({ machine, consensus: group.add(p.id, machine), sessionTimeoutMs: 300 });
      live.push(store);
      stores.set(p.id, store);
    }
    group.elect('a');
    for (const [id, s] of stores) {
      s.start();
      await s.openSession(peer(id));
    }
    const sa = stores.get('a')!;
    // Three session timeouts pass: keepalives hold every session.
    const t0 = Date.now();
    await waitFor('900 ms', () => Date.now() - t0 >= 900, { intervalMs: 50 });
    expect(ids(sa.activePeers()).sort()).toEqual(['a', 'b', 'c']);

    // c is cut off (its member stops): the leader expires it.
    group.stop('c');
    await waitFor('c expired', () => !ids(sa.activePeers()).includes('c'), { timeoutMs: 5000, intervalMs: 20 });
    expect(ids(sa.activePeers()).sort()).toEqual(['a', 'b']);

    // c comes back, learns that its session expired, and opens a new one.
    const expired: SessionExpiredEvent[] = [];
    stores.get('c')!.on('sessionExpired', (e) => expired.push(e));
    group.start('c');
    await waitFor('c active again', () => ids(sa.activePeers()).includes('c'), { timeoutMs: 5000, intervalMs: 20 });
    expect(expired).toHaveLength(1);
    expect(expired[0]!.reason).toMatch(/no keepalive for \d+ ms/);
    expect(stores.get('c')!.session()?.openedIndex).toBeGreaterThan(expired[0]!.session.openedIndex);

    // A closed session stays closed: no keepalives, no reopen.
    await stores.get('b')!.closeSession();
    const t1 = Date.now();
    await waitFor('600 ms', () => Date.now() - t1 >= 600, { intervalMs: 50 });
    expect(ids(sa.activePeers()).sort()).toEqual(['a', 'c']);
  });
});

describe('the leader\'s due timer (fake timers)', () => {
  it('expires a silent session when it falls due, not at the next periodic check', async () => {
    // The periodic check runs every 1000 ms (at 1000, 2000, ...); keepalives every 300 ms. c falls
    // silent after its keepalive at 900 ms, so its session is due at 1900 ms: the leader checks
    // then, instead of at 2000 ms.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: 1_700_000_000_000 });
    try {
      const group = new InProcessGroup();
      const stores = new Map<string, ClusterStore>();
      for (const p of [a, b, c]) {
        const machine = new ClusterStateMachine();
        const store = new ClusterStore({
          machine, consensus: group.add(p.id, machine), sessionTimeoutMs: 1000, keepaliveIntervalMs: 300, expiryCheckIntervalMs: 1000, reopenExpiredSession: false,
        });
        live.push(store);
        stores.set(p.id, store);
      }
      group.elect('a');
      for (const [id, s] of stores) await s.openSession(peer(id));
      await group.settle();
      for (const s of stores.values()) s.start();
      const expired: SessionExpiredEvent[] = [];
      stores.get('c')!.on('sessionExpired', (e) => expired.push(e));
      await vi.advanceTimersByTimeAsync(950);
      group.stop('c'); // after c's keepalive at 900 ms
      await vi.advanceTimersByTimeAsync(1920 - 950);
      await group.settle();
      const sa = stores.get('a')!;
      expect(ids(sa.activePeers())).toEqual(['a', 'b']);
      group.start('c');
      await group.settle();
      expect(expired).toHaveLength(1);
      expect(expired[0]!.reason).toBe('no keepalive for 1000 ms (sessionTimeoutMs 1000)');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('the expiry loop runs on the leader only (fake timers)', () => {
  it('a follower runs no pass of it; a follower that becomes the leader starts it at once, and stops it when it loses the lead', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: 1_700_000_000_000 });
    try {
      const group = new InProcessGroup();
      const stores = new Map<string, ClusterStore>();
      for (const p of [a, b, c]) {
        const machine = new ClusterStateMachine();
        const store = new ClusterStore({ machine, consensus: group.add(p.id, machine), sessionTimeoutMs: 1000, keepaliveIntervalMs: 300, expiryCheckIntervalMs: 100, reopenExpiredSession: false });
        live.push(store);
        stores.set(p.id, store);
      }
      group.elect('a');
      for (const [id, s] of stores) await s.openSession(peer(id));
      await group.settle();
      const passes = new Map([...stores.keys()].map((id) => [id, 0]));
      for (const [id, s] of stores) {
        const orig = s.noteExpiryTick.bind(s);
        s.noteExpiryTick = (nowMs: number) => { passes.set(id, passes.get(id)! + 1); return orig(nowMs); };
        s.start();
      }
      await vi.advanceTimersByTimeAsync(2000);
      // Every 100 ms on the leader; none on the followers (before: 20 each).
      expect(passes.get('a')).toBeGreaterThanOrEqual(19);
      expect(passes.get('b')).toBe(0);
      expect(passes.get('c')).toBe(0);
      group.elect('b');
      await group.settle();
      passes.set('a', 0);
      await vi.advanceTimersByTimeAsync(1000);
      expect(passes.get('a')).toBe(0);
      expect(passes.get('b')).toBeGreaterThanOrEqual(9);
      expect(passes.get('c')).toBe(0);
      // The new leader's loop measures a stall from its own start: no 'stalled' grace for the 2 s it did not lead.
      expect(ids(stores.get('b')!.activePeers())).toEqual(['a', 'b', 'c']);
      // It still expires a silent session.
      group.stop('c');
      await vi.advanceTimersByTimeAsync(2500);
      group.start('c');
      await group.settle();
      expect(ids(stores.get('b')!.activePeers())).toEqual(['a', 'b']);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('keepalives after a leader change (fake timers)', () => {
  it('each peer renews its session with the new leader at once, not at its next beat', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'], now: 1_700_000_000_000 });
    try {
      const group = new InProcessGroup();
      const stores = new Map<string, ClusterStore>();
      for (const p of [a, b, c]) {
        const machine = new ClusterStateMachine();
        const store = new ClusterStore({ machine, consensus: group.add(p.id, machine), sessionTimeoutMs: 3000, keepaliveIntervalMs: 1000 });
        live.push(store);
        stores.set(p.id, store);
      }
      group.elect('a');
      for (const [id, s] of stores) await s.openSession(peer(id));
      await group.settle();
      for (const s of stores.values()) s.start();
      await vi.advanceTimersByTimeAsync(1100); // every peer's first beat went to a
      const heardByB: string[] = [];
      group.member('b').onKeepalive((k) => { heardByB.push(k.peerId); });
      group.elect('b'); // 100 ms after the last beat: the next is 900 ms away
      await vi.advanceTimersByTimeAsync(10);
      expect([...new Set(heardByB)].sort()).toEqual(['a', 'b', 'c']);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('concurrent session calls', () => {
  it('two opens at once share one session instead of replacing each other', async () => {
    const sh = shard(['a']);
    const [x, y] = await Promise.all([sh.s('a').openSession(a), sh.s('a').openSession(a)]);
    expect(x).toEqual(y);
    await sh.group.settle();
    expect(sh.s('a').sessions()).toHaveLength(1);
    expect(sh.s('a').session()).toEqual(x);
    await expect(sh.s('a').keepalive()).resolves.toBeUndefined();
  });

  it('a close while the open is in flight leaves no session', async () => {
    const sh = shard(['a']);
    const opening = sh.s('a').openSession(a);
    await sh.s('a').closeSession();
    await expect(opening).rejects.toMatchObject({ code: STORE_ERR.noSession, message: /closed while it was being opened/ });
    await sh.group.settle();
    expect(sh.s('a').activePeers()).toEqual([]);
    expect(sh.s('a').session()).toBeNull();
  });

  it('a session that expires in the same applied batch as its open is not taken for open: the open fails and a new one works', async () => {
    // A peer cut off while its open was in flight: the leader applied the open, heard no keepalive
    // and expired it; the peer then applies both entries at once (found by the whole-shard
    // simulator, seed 754: the peer kept a session the shard no longer had and stayed inactive).
    const sh = shard(['a', 'b']);
    await openAll(sh, [a]);
    const openedIndex = sh.group.lastIndex + 1;
    const opening = sh.s('b').openSession(b);
    await sh.group.member('a').propose(encodeCommand({
      op: 'expireSession', peerId: 'b', openedIndex, keepaliveIndex: openedIndex, reason: 'no keepalive (test)', time: new Date(sh.clock.ms).toISOString(),
    }));
    await expect(opening).rejects.toMatchObject({ code: STORE_ERR.sessionExpired, message: /ended before its open returned/ });
    expect(sh.s('b').session()).toBeNull();
    expect(ids(sh.s('a').activePeers())).toEqual(['a']);
    const again = await sh.s('b').openSession(b);
    await sh.group.settle();
    expect(sh.s('b').session()).toEqual(again);
    expect(ids(sh.s('a').activePeers())).toEqual(['a', 'b']);
  });

  it('reports how long each session has been silent', async () => {
    const sh = shard(['a', 'b']);
    await openAll(sh, [a, b]);
    sh.clock.advance(300);
    await beat(sh, ['a']);
    sh.clock.advance(200);
    expect(sh.s('a').sessionsLiveness()).toEqual([
      { peerId: 'a', openedIndex: 1, silentMs: 200 },
      { peerId: 'b', openedIndex: 2, silentMs: 500 },
    ]);
  });
});
