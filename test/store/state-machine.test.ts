// The replicated state machine on its own: compare-and-set, history, sessions, watches,
// snapshots, determinism and its invariants. Entries are applied as Raft would apply them.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { STORE_ERR, StoreInvariantError } from '../../src/store/errors.js';
import { ClusterStateMachine, type PeersChange, type StateChange } from '../../src/store/state-machine.js';
import { summarizeChange } from '../../src/store/summary.js';
import { Driver, T0, a, b, c, d, gen1, rejection } from './fixtures.js';

describe('compare-and-set', () => {
  it('writes the first state with expectVersion 0 and counts versions from 1', () => {
    const drv = new Driver();
    expect(drv.machine.version).toBe(0);
    expect(drv.put(gen1(), 0)).toEqual({ ok: true, op: 'putState', version: 1 });
    expect(drv.machine.state).toEqual(gen1());
    expect(drv.put(gen1({ async: [] }), 1)).toEqual({ ok: true, op: 'putState', version: 2 });
  });

  it('rejects a write with a stale version and says the current version', () => {
    const drv = new Driver();
    drv.ok(gen1());
    drv.ok(gen1({ async: [] }));
    const r = drv.put(gen1({ async: [c, d] }), 1);
    expect(r).toMatchObject({ ok: false, code: STORE_ERR.versionMismatch, currentVersion: 2 });
    expect(rejection(r).message).toMatch(/expected version 1, current version is 2/);
    expect(drv.machine.state?.async).toEqual([]);
  });

  it('rejects a second initial setup (expectVersion 0 once a state exists)', () => {
    const drv = new Driver();
    drv.ok(gen1());
    expect(drv.put(gen1({ primary: b, sync: a }), 0)).toMatchObject({ ok: false, code: STORE_ERR.versionMismatch, currentVersion: 1 });
  });

  it('stores a canonical copy that callers cannot mutate', () => {
    const drv = new Driver();
    const s = { ...gen1(), async: [{ ...c }] };
    drv.ok(s);
    (s.async as { id: string }[])[0]!.id = 'zzz';
    expect(drv.machine.state?.async[0]?.id).toBe('c');
    expect(() => {
      (drv.machine.state as { generation: number }).generation = 9;
    }).toThrow(TypeError);
  });

  it('returns a rejection (never throws) for commands that do not parse', () => {
    const drv = new Driver();
    expect(drv.raw('not json')).toMatchObject({ ok: false, code: STORE_ERR.invalidCommand, message: 'command is not JSON' });
    expect(drv.raw('[1]')).toMatchObject({ ok: false, code: STORE_ERR.invalidCommand });
    expect(drv.raw('{"op":"drop"}')).toMatchObject({ ok: false, message: 'unknown command op "drop"' });
    expect(drv.raw(JSON.stringify({ op: 'putState', expectVersion: -1, state: gen1(), time: T0 }))).toMatchObject({
      ok: false,
      message: 'putState.expectVersion: must be an integer >= 0',
    });
    expect(drv.raw(JSON.stringify({ op: 'putState', expectVersion: 0, state: gen1(), time: 'now' }))).toMatchObject({
      ok: false,
      message: 'putState.time: must be an ISO 8601 time',
    });
    expect(drv.raw(JSON.stringify({ op: 'openSession', peer: { id: 'x' }, time: T0 }))).toMatchObject({
      ok: false,
      code: STORE_ERR.invalidCommand,
    });
    expect(drv.raw('x'.repeat(300 * 1024))).toMatchObject({ ok: false, message: /more than 262144/ });
    expect(drv.raw('')).toEqual({ ok: true, op: 'noop' });
    expect(drv.machine.version).toBe(0);
  });
});

describe('history', () => {
  it('appends every accepted change with a generated one-line summary', () => {
    const drv = new Driver();
    drv.ok(gen1());
    drv.ok({ generation: 2, primary: b, sync: c, async: [], deposed: [a], initWal: '0/3000060' });
    const h = drv.machine.history();
    expect(h.map((e) => e.version)).toEqual([1, 2]);
    expect(h[0]!.summary).toBe('generation 1: primary a, sync b, async [c], deposed [], initWal 0/0; initial setup');
    expect(h[1]!.summary).toBe(
      'generation 2 (was 1): primary b (was a), sync c (was b), async [] (was [c]), deposed [a] (was []), initWal 0/3000060 (was 0/0)',
    );
    expect(h[1]).toMatchObject({ generation: 2, time: T0, state: { primary: { id: 'b' } } });
  });

  it('does not record rejected writes', () => {
    const drv = new Driver();
    drv.ok(gen1());
    drv.put(gen1({ sync: a }));
    drv.put(gen1(), 0);
    expect(drv.machine.history()).toHaveLength(1);
  });

  it("keeps the writer's summary, on one line and bounded", () => {
    const drv = new Driver();
    drv.ok(gen1(), 'initial setup by a\nwith b as sync');
    drv.ok(gen1({ async: [] }), 'x'.repeat(2000));
    const h = drv.machine.history();
    expect(h[0]!.summary).toBe('initial setup by a with b as sync');
    expect(h[1]!.summary).toHaveLength(500);
    expect(h[1]!.summary.endsWith('...')).toBe(true);
  });

  it('summarizes freeze, ONWM and promote changes', () => {
    const frozen = gen1({ freeze: { date: T0, reason: 'upgrade' } });
    expect(summarizeChange(gen1(), frozen)).toMatch(/; frozen: upgrade$/);
    expect(summarizeChange(frozen, gen1())).toMatch(/; unfrozen$/);
    const onwm = gen1({ oneNodeWriteMode: true, sync: null, async: [] });
    expect(summarizeChange(null, onwm)).toBe('generation 1: primary a, sync none, async [], deposed [], initWal 0/0; initial setup; one-node-write mode on');
    expect(summarizeChange(onwm, { ...gen1({ generation: 2, async: [] }) })).toMatch(/sync b \(was none\).*one-node-write mode off/);
    const promote = gen1({ promote: { id: 'c', role: 'async', asyncIndex: 0, generation: 1, expireTime: T0 } });
    expect(summarizeChange(gen1(), promote)).toMatch(/promote c \(async at async\[0\]\) requested for generation 1 until/);
    expect(summarizeChange(promote, gen1())).toMatch(/promote of c cleared$/);
    const pinned = gen1({ onwmOverride: true });
    expect(summarizeChange(gen1(), pinned)).toMatch(/; operator override: one-node-write mode on$/);
    expect(summarizeChange(pinned, gen1({ onwmOverride: false }))).toMatch(/; operator override: one-node-write mode off$/);
    expect(summarizeChange(pinned, gen1())).toMatch(/; operator override of one-node-write mode cleared$/);
    expect(summarizeChange(pinned, pinned)).not.toMatch(/override/);
  });

  it('keeps only the last historyLimit entries, in order', () => {
    const drv = Driver.with({ historyLimit: 3 });
    drv.ok(gen1());
    for (let i = 0; i < 5; i++) drv.ok(gen1({ async: i % 2 === 0 ? [] : [c] }));
    const h = drv.machine.history();
    expect(h.map((e) => e.version)).toEqual([4, 5, 6]);
    expect(drv.machine.history(2).map((e) => e.version)).toEqual([5, 6]);
    expect(drv.machine.history(0)).toEqual([]);
    expect(() => drv.machine.history(-1)).toThrow(expect.objectContaining({ code: 'MANATEE_ERR_INVALID_ARGUMENT', message: 'history limit must be an integer >= 0 (got -1)' }));
  });

  it('refuses a history limit outside its bounds', () => {
    expect(() => new ClusterStateMachine({ historyLimit: 0 })).toThrow(/historyLimit must be an integer in \[1, 100000\]/);
    expect(() => new ClusterStateMachine({ sessionsMax: 0 })).toThrow(/sessionsMax must be an integer >= 1/);
  });
});

describe('sessions', () => {
  it('opens sessions in order and lists the active peers in that order', () => {
    const drv = new Driver();
    const ia = drv.open(a);
    const ib = drv.open(b);
    expect(drv.machine.activePeers().map((p) => p.id)).toEqual(['a', 'b']);
    expect(drv.machine.session('a')).toMatchObject({ openedIndex: ia, keepaliveIndex: ia, openedTime: T0 });
    expect(ib).toBeGreaterThan(ia);
  });

  it('replaces an older session of the same peer id, which moves to the end', () => {
    const drv = new Driver();
    const old = drv.open(a);
    drv.open(b);
    const fresh = drv.open(a);
    expect(drv.machine.activePeers().map((p) => p.id)).toEqual(['b', 'a']);
    expect(drv.machine.session('a')?.openedIndex).toBe(fresh);
    // The old incarnation's keepalive is refused: its owner must learn that it was replaced.
    expect(drv.run({ op: 'keepalive', peerId: 'a', openedIndex: old })).toMatchObject({
      ok: false,
      code: STORE_ERR.sessionExpired,
      message: `the session of a opened at index ${old} no longer exists (a newer one was opened at index ${fresh})`,
    });
  });

  it('records each keepalive index', () => {
    const drv = new Driver();
    const ia = drv.open(a);
    expect(drv.run({ op: 'keepalive', peerId: 'a', openedIndex: ia })).toEqual({ ok: true, op: 'keepalive' });
    expect(drv.machine.session('a')?.keepaliveIndex).toBe(drv.index);
    expect(drv.run({ op: 'keepalive', peerId: 'zz', openedIndex: 1 })).toMatchObject({ ok: false, code: STORE_ERR.sessionExpired });
  });

  it('closes a session only for the incarnation named', () => {
    const drv = new Driver();
    const ia = drv.open(a);
    expect(drv.run({ op: 'closeSession', peerId: 'a', openedIndex: ia + 100, time: T0 })).toEqual({ ok: true, op: 'closeSession', closed: false });
    expect(drv.machine.activePeers()).toHaveLength(1);
    expect(drv.run({ op: 'closeSession', peerId: 'a', openedIndex: ia, time: T0 })).toEqual({ ok: true, op: 'closeSession', closed: true });
    expect(drv.machine.activePeers()).toHaveLength(0);
  });

  it('expires a session when no keepalive was committed after the one the leader decided on', () => {
    const drv = new Driver();
    const ia = drv.open(a);
    const r = drv.run({ op: 'expireSession', peerId: 'a', openedIndex: ia, keepaliveIndex: ia, reason: 'silent', time: T0 });
    expect(r).toEqual({ ok: true, op: 'expireSession', expired: true });
    expect(drv.machine.session('a')).toBeUndefined();
  });

  it('voids an expiry when a later keepalive was committed before it', () => {
    const drv = new Driver();
    const ia = drv.open(a);
    drv.run({ op: 'keepalive', peerId: 'a', openedIndex: ia });
    const r = drv.run({ op: 'expireSession', peerId: 'a', openedIndex: ia, keepaliveIndex: ia, reason: 'silent', time: T0 });
    expect(r).toMatchObject({ ok: true, op: 'expireSession', expired: false, why: expect.stringMatching(/was committed after/) });
    expect(drv.machine.session('a')).toBeDefined();
  });

  it('does not expire a newer incarnation of the peer', () => {
    const drv = new Driver();
    const old = drv.open(a);
    drv.open(a);
    const r = drv.run({ op: 'expireSession', peerId: 'a', openedIndex: old, keepaliveIndex: old, reason: 'silent', time: T0 });
    expect(r).toMatchObject({ expired: false, why: 'the session no longer exists' });
    expect(drv.machine.activePeers()).toHaveLength(1);
  });

  it('keeps the tags a session was opened with, and refuses bad tags naming the field', () => {
    const drv = new Driver();
    const r = drv.run({ op: 'openSession', peer: a, time: T0, tags: { priority: 3, nofailover: true } });
    expect(r).toMatchObject({ ok: true, session: { peer: { id: 'a' }, tags: { nofailover: true, priority: 3 } } });
    expect(drv.machine.session('a')?.tags).toEqual({ nofailover: true, priority: 3 });
    // A reopen without tags drops them (the peer's configuration no longer has any).
    drv.open(a);
    expect(drv.machine.session('a')?.tags).toBeUndefined();
    expect(drv.raw(JSON.stringify({ op: 'openSession', peer: b, time: T0, tags: { nofailover: 1 } }))).toMatchObject({
      ok: false,
      message: expect.stringMatching(/openSession\.tags\.nofailover: must be true or false \(got 1\)/),
    });
    expect(drv.machine.session('b')).toBeUndefined();
  });

  it('refuses sessions beyond its limit, but lets a peer reopen its own', () => {
    const drv = Driver.with({ sessionsMax: 2 });
    drv.open(a);
    drv.open(b);
    expect(drv.run({ op: 'openSession', peer: c, time: T0 })).toMatchObject({
      ok: false,
      code: STORE_ERR.tooManySessions,
      message: expect.stringMatching(/limit is 2/),
    });
    expect(() => drv.open(a)).not.toThrow();
  });
});

describe('watches', () => {
  it('emits state changes with the new state, version and summary, after apply', () => {
    const drv = new Driver();
    const seen: StateChange[] = [];
    drv.machine.onState((e) => {
      expect(drv.machine.version).toBe(e.version); // the change is complete when listeners run
      seen.push(e);
    });
    drv.ok(gen1());
    drv.put(gen1({ sync: a })); // rejected: no event
    drv.ok(gen1({ async: [] }));
    expect(seen.map((e) => [e.version, e.state.async.length, e.cause])).toEqual([
      [1, 1, 'put'],
      [2, 0, 'put'],
    ]);
    expect(seen[0]!.previous).toBeNull();
    expect(seen[1]!.previous).toEqual(gen1());
    expect(seen[1]!.summary).toMatch(/async \[\] \(was \[c\]\)/);
  });

  it('emits active-peer changes on open, close and expire, but not on keepalive', () => {
    const drv = new Driver();
    const seen: PeersChange[] = [];
    const keepalives: string[] = [];
    drv.machine.onPeers((e) => seen.push(e));
    drv.machine.onKeepalive((e) => keepalives.push(e.peerId));
    const ia = drv.open(a);
    const ib = drv.open(b);
    drv.run({ op: 'keepalive', peerId: 'a', openedIndex: ia });
    drv.run({ op: 'closeSession', peerId: 'a', openedIndex: ia, time: T0 });
    drv.run({ op: 'expireSession', peerId: 'b', openedIndex: ib, keepaliveIndex: ib, reason: 'no keepalive for 2000 ms', time: T0 });
    expect(seen.map((e) => [e.cause, e.peerId, e.peers.map((p) => p.id)])).toEqual([
      ['open', 'a', ['a']],
      ['open', 'b', ['a', 'b']],
      ['close', 'a', ['b']],
      ['expire', 'b', []],
    ]);
    expect(seen[3]!.reason).toBe('no keepalive for 2000 ms');
    expect(keepalives).toEqual(['a']);
  });

  it('keeps applying when a listener throws (and logs it), and unsubscribes', () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => { lines.push(l); } });
    const drv = Driver.with({ log });
    let calls = 0;
    drv.machine.onState(() => {
      throw new Error('observer bug');
    });
    const off = drv.machine.onState(() => {
      calls += 1;
    });
    drv.ok(gen1());
    off();
    drv.ok(gen1({ async: [] }));
    expect(calls).toBe(1);
    expect(drv.machine.version).toBe(2);
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 50, event: 'state', msg: 'a state listener threw; ignored', err: { message: 'observer bug' } });
  });
});

describe('snapshot and restore', () => {
  function busy(): Driver {
    const drv = Driver.with({ historyLimit: 10 });
    drv.ok(gen1());
    drv.ok({ generation: 2, primary: b, sync: c, async: [], deposed: [a], initWal: '0/3000060' });
    const ia = drv.open(a);
    drv.open(b);
    drv.run({ op: 'keepalive', peerId: 'a', openedIndex: ia });
    drv.run({ op: 'openSession', peer: c, time: T0, tags: { nofailover: true, priority: 2 } });
    return drv;
  }

  it('round-trips state, version, history and sessions', () => {
    const src = busy();
    const snap = src.machine.snapshot();
    const dst = Driver.with({ historyLimit: 10 });
    const states: StateChange[] = [];
    const peers: PeersChange[] = [];
    dst.machine.onState((e) => states.push(e));
    dst.machine.onPeers((e) => peers.push(e));
    dst.machine.restore(snap);
    expect(dst.machine.state).toEqual(src.machine.state);
    expect(dst.machine.version).toBe(2);
    expect(dst.machine.history()).toEqual(src.machine.history());
    expect(dst.machine.sessions()).toEqual(src.machine.sessions());
    expect(dst.machine.appliedIndex).toBe(src.machine.appliedIndex);
    expect(dst.machine.snapshot()).toBe(snap);
    expect(states.map((e) => [e.cause, e.version])).toEqual([['restore', 2]]);
    expect(peers.map((e) => [e.cause, e.peers.map((p) => p.id)])).toEqual([['restore', ['a', 'b', 'c']]]);
    // It goes on from there like the original.
    dst.index = src.machine.appliedIndex;
    expect(dst.put({ generation: 2, primary: b, sync: c, async: [a], deposed: [], initWal: '0/3000060' }, 2)).toMatchObject({ ok: true, version: 3 });
  });

  it('round-trips an empty store', () => {
    const dst = new Driver();
    dst.machine.restore(new ClusterStateMachine().snapshot());
    expect(dst.machine.state).toBeNull();
    expect(dst.machine.version).toBe(0);
  });

  it('trims a restored history to its own limit', () => {
    const src = Driver.with({ historyLimit: 10 });
    src.ok(gen1());
    for (let i = 0; i < 5; i++) src.ok(gen1({ async: i % 2 === 0 ? [] : [c] }));
    const dst = Driver.with({ historyLimit: 2 });
    dst.machine.restore(src.machine.snapshot());
    expect(dst.machine.history().map((h) => h.version)).toEqual([5, 6]);
  });

  const malformed: [string, (s: Record<string, any>) => unknown, RegExp][] = [
    ['not JSON', () => '{', /not JSON/],
    ['another format', (s) => ({ ...s, format: 'etcd' }), /format: must be "manatee-store"/],
    ['a newer format version', (s) => ({ ...s, formatVersion: 2 }), /formatVersion: this store reads version 1 \(got 2\)/],
    ['a negative version', (s) => ({ ...s, version: -1 }), /version: must be an integer >= 0/],
    ['a version without a state', (s) => ({ ...s, state: null }), /version: is 2 but the state is null/],
    ['an invalid state', (s) => ({ ...s, state: { ...s['state'], sync: s['state'].primary } }), /state: primary and sync are the same peer \(b\)/],
    ['history out of order', (s) => ({ ...s, history: [...s['history']].reverse() }), /history\[1\]\.version: 1 is not after 2 \(history must be ordered\)/],
    ['history not ending at the current version', (s) => ({ ...s, history: s['history'].slice(0, 1) }), /history: the last entry has version 1, the store 2/],
    ['a history entry with a bad state', (s) => ({ ...s, history: [{ ...s['history'][0], state: { ...s['history'][0].state, initWal: 'x' } }, s['history'][1]] }), /history\[0\]\.state: initWal: must be an LSN/],
    ['duplicate sessions', (s) => ({ ...s, sessions: [s['sessions'][0], { ...s['sessions'][0], openedIndex: 99 }] }), /sessions\[1\]\.peer\.id: a has two sessions \(sessions must be unique by peer id\)/],
    ['a session with a malformed peer', (s) => ({ ...s, sessions: [{ ...s['sessions'][0], peer: { id: 'a' } }] }), /sessions\[0\]\.peer\.pgUrl: must be a non-empty string/],
    ['a session opened after the applied index', (s) => ({ ...s, sessions: [{ ...s['sessions'][0], openedIndex: 1000, keepaliveIndex: 1000 }] }), /sessions\[0\]\.openedIndex: must be an integer in \[1, appliedIndex \d+\]/],
    ['sessions out of opening order', (s) => ({ ...s, sessions: [...s['sessions']].reverse() }), /sessions\[1\]\.openedIndex: sessions must be in opening order/],
    ['missing sessions', (s) => ({ ...s, sessions: undefined }), /sessions: must be an array/],
    ['a session with a bad tag', (s) => ({ ...s, sessions: [s['sessions'][0], s['sessions'][1], { ...s['sessions'][2], tags: { priority: 'high' } }] }), /sessions\[2\]\.tags\.priority: must be an integer from -1000 to 1000 \(got "high"\)/],
  ];
  for (const [name, mutate, re] of malformed) {
    it(`rejects a snapshot with ${name}, clearly, and keeps its state`, () => {
      const src = busy();
      const parsed = JSON.parse(src.machine.snapshot());
      const bad = mutate(parsed);
      const dst = new Driver();
      dst.ok(gen1());
      let err: unknown;
      try {
        dst.machine.restore(typeof bad === 'string' ? bad : JSON.stringify(bad));
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: STORE_ERR.invalidSnapshot });
      expect((err as Error).message).toMatch(/^invalid store snapshot: /);
      expect((err as Error).message).toMatch(re);
      expect(dst.machine.version).toBe(1);
      expect(dst.machine.state).toEqual(gen1());
    });
  }
});

describe('determinism and invariants', () => {
  it('reaches byte-identical snapshots on two machines that apply the same entries', () => {
    const x = new Driver();
    const y = new Driver();
    const script = (drv: Driver): void => {
      drv.ok(gen1());
      const ia = drv.open(a);
      drv.open(b);
      drv.put(gen1({ sync: a }));
      drv.run({ op: 'keepalive', peerId: 'a', openedIndex: ia });
      drv.ok(gen1({ async: [c, d] }));
      drv.run({ op: 'expireSession', peerId: 'a', openedIndex: ia, keepaliveIndex: 1, reason: 'r', time: T0 });
    };
    script(x);
    script(y);
    expect(x.machine.snapshot()).toBe(y.machine.snapshot());
  });

  it('crashes loudly on entries applied out of order', () => {
    const drv = new Driver();
    drv.ok(gen1());
    expect(() => drv.machine.apply({ index: 1, term: 1, data: '' })).toThrow(StoreInvariantError);
    expect(() => drv.machine.apply({ index: 1, term: 1, data: '' })).toThrow(/entries applied out of order: index 1 after 1/);
  });
});
