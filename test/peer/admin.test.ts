// The operators' changes to the cluster state (src/peer/admin.ts): each one's new state,
// and each refusal with its stable code.
import { describe, expect, it } from 'vitest';
import {
  AdminError,
  checkRebuild,
  clearPromote,
  freeze,
  isPromotePending,
  promote,
  PROMOTE_EXPIRE_MS_DEFAULT,
  clearRestart,
  reap,
  scheduleRestart,
  setOnwm,
  unfreeze,
} from '../../src/peer/admin.js';
import { storeAdminOperations } from '../../src/api/admin-ops.js';
import { MemoryStore, peer as apiPeer, threePeerState } from '../../tools/lib/memory-peer.js';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';

function peer(id: string): PeerInfo {
  return { id, pgUrl: `postgres://postgres@${id}:5432/postgres`, apiUrl: `http://${id}:5433`, host: id };
}

const NOW = new Date('2026-11-24T07:00:00.000Z');

function shard(overrides: Partial<ClusterState> = {}): ClusterState {
  return {
    generation: 4,
    primary: peer('a'),
    sync: peer('b'),
    async: [peer('c'), peer('d')],
    deposed: [peer('z')],
    initWal: '0/3000060',
    ...overrides,
  };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AdminError);
    return (err as AdminError).code;
  }
  throw new Error('expected an AdminError');
}

describe('every operation', () => {
  it('refuses when the shard has no state yet', () => {
    expect(codeOf(() => freeze(null, 'x', NOW))).toBe('MANATEE_ERR_NO_STATE');
    expect(codeOf(() => unfreeze(null))).toBe('MANATEE_ERR_NO_STATE');
    expect(codeOf(() => promote(null, { peerId: 'b', now: NOW }))).toBe('MANATEE_ERR_NO_STATE');
    expect(codeOf(() => clearPromote(null))).toBe('MANATEE_ERR_NO_STATE');
    expect(codeOf(() => reap(null, 'z'))).toBe('MANATEE_ERR_NO_STATE');
    expect(codeOf(() => setOnwm(null, 'on'))).toBe('MANATEE_ERR_NO_STATE');
  });

  it('never changes the generation, the primary or the sync', () => {
    const s = shard();
    const frozen = freeze(s, 'maintenance', NOW).state;
    const promoted = promote(s, { peerId: 'b', now: NOW }).state;
    const changes = [
      frozen,
      unfreeze(frozen).state,
      promoted,
      clearPromote(promoted).state,
      reap(s, 'z').state,
      setOnwm(s, 'on').state,
    ];
    for (const c of changes) {
      expect(c.generation).toBe(4);
      expect(c.primary.id).toBe('a');
      expect(c.sync?.id).toBe('b');
    }
  });
});

describe('freeze', () => {
  it('records the reason and the time, and says so in the summary', () => {
    const { state, summary } = freeze(shard(), '  upgrading PostgreSQL  ', NOW);
    expect(state.freeze).toEqual({ date: '2026-11-24T07:00:00.000Z', reason: 'upgrading PostgreSQL' });
    expect(summary).toBe('frozen by operator: upgrading PostgreSQL');
  });

  it('refuses a shard that is already frozen, naming the first reason', () => {
    const s = shard({ freeze: { date: NOW.toISOString(), reason: 'first' } });
    expect(codeOf(() => freeze(s, 'second', NOW))).toBe('MANATEE_ERR_ALREADY_FROZEN');
    expect(() => freeze(s, 'second', NOW)).toThrow(/first/);
  });

  it('refuses an empty, multi-line, control-character or overlong reason', () => {
    expect(codeOf(() => freeze(shard(), '   ', NOW))).toBe('MANATEE_ERR_INVALID_ARGUMENT');
    expect(codeOf(() => freeze(shard(), 'a\nb', NOW))).toBe('MANATEE_ERR_INVALID_ARGUMENT');
    expect(codeOf(() => freeze(shard(), 'a\u0000b', NOW))).toBe('MANATEE_ERR_INVALID_ARGUMENT');
    expect(codeOf(() => freeze(shard(), 'x'.repeat(513), NOW))).toBe('MANATEE_ERR_INVALID_ARGUMENT');
  });
});

describe('unfreeze', () => {
  it('removes the freeze field entirely', () => {
    const { state, summary } = unfreeze(shard({ freeze: { date: NOW.toISOString(), reason: 'r' } }));
    expect('freeze' in state).toBe(false);
    expect(summary).toContain('unfrozen');
  });

  it('refuses a shard that is not frozen', () => {
    expect(codeOf(() => unfreeze(shard()))).toBe('MANATEE_ERR_NOT_FROZEN');
  });
});

describe('promote', () => {
  it('asks for the sync to take over, for this generation, expiring in 60 s by default', () => {
    const { state, summary } = promote(shard(), { peerId: 'b', now: NOW });
    expect(state.promote).toEqual({
      id: 'b',
      role: 'sync',
      generation: 4,
      expireTime: new Date(NOW.getTime() + PROMOTE_EXPIRE_MS_DEFAULT).toISOString(),
    });
    expect(summary).toContain('promote b');
  });

  it('names an async by its role and its index in the chain', () => {
    const { state } = promote(shard(), { peerId: 'd', expireMs: 5_000, now: NOW });
    expect(state.promote).toEqual({
      id: 'd',
      role: 'async',
      asyncIndex: 1,
      generation: 4,
      expireTime: '2026-11-24T07:00:05.000Z',
    });
  });

  it('refuses the primary, a deposed peer, and a peer not in the chain', () => {
    expect(codeOf(() => promote(shard(), { peerId: 'a', now: NOW }))).toBe('MANATEE_ERR_BAD_PROMOTE');
    expect(codeOf(() => promote(shard(), { peerId: 'z', now: NOW }))).toBe('MANATEE_ERR_BAD_PROMOTE');
    expect(codeOf(() => promote(shard(), { peerId: 'nobody', now: NOW }))).toBe('MANATEE_ERR_PEER_NOT_FOUND');
  });

  it('refuses a frozen shard', () => {
    const s = shard({ freeze: { date: NOW.toISOString(), reason: 'maintenance' } });
    expect(codeOf(() => promote(s, { peerId: 'b', now: NOW }))).toBe('MANATEE_ERR_FROZEN');
  });

  it('names a wrong target before a frozen shard or a pending request', () => {
    const frozen = shard({ freeze: { date: NOW.toISOString(), reason: 'maintenance' } });
    expect(codeOf(() => promote(frozen, { peerId: 'a', now: NOW }))).toBe('MANATEE_ERR_BAD_PROMOTE');
    const pending = promote(shard(), { peerId: 'b', now: NOW }).state;
    expect(codeOf(() => promote(pending, { peerId: 'nobody', now: NOW }))).toBe('MANATEE_ERR_PEER_NOT_FOUND');
  });

  it('refuses while another request is pending, but replaces an expired or stale one', () => {
    const pending = promote(shard(), { peerId: 'b', now: NOW }).state;
    expect(isPromotePending(pending, NOW)).toBe(true);
    expect(codeOf(() => promote(pending, { peerId: 'c', now: NOW }))).toBe('MANATEE_ERR_PROMOTE_PENDING');

    const later = new Date(NOW.getTime() + PROMOTE_EXPIRE_MS_DEFAULT);
    expect(isPromotePending(pending, later)).toBe(false);
    expect(promote(pending, { peerId: 'c', now: later }).state.promote?.id).toBe('c');

    const stale = { ...pending, generation: 5 };
    expect(isPromotePending(stale, NOW)).toBe(false);
    expect(promote(stale, { peerId: 'c', now: NOW }).state.promote).toMatchObject({ id: 'c', generation: 5 });
  });

  it('refuses an expiry outside 1 s .. 1 h or not a whole number', () => {
    for (const expireMs of [999, 3_600_001, 1500.5, Number.NaN]) {
      expect(codeOf(() => promote(shard(), { peerId: 'b', expireMs, now: NOW }))).toBe('MANATEE_ERR_INVALID_ARGUMENT');
    }
  });
});

describe('clearPromote', () => {
  it('removes the request', () => {
    const { state, summary } = clearPromote(promote(shard(), { peerId: 'c', now: NOW }).state);
    expect('promote' in state).toBe(false);
    expect(summary).toContain('c');
  });

  it('refuses when there is no request', () => {
    expect(codeOf(() => clearPromote(shard()))).toBe('MANATEE_ERR_NO_PROMOTE');
  });
});

describe('reap', () => {
  it('forgets a deposed peer', () => {
    const { state, summary } = reap(shard({ deposed: [peer('y'), peer('z')] }), 'z');
    expect(state.deposed.map((p) => p.id)).toEqual(['y']);
    expect(summary).toBe('operator reaped deposed peer z');
  });

  it('refuses a peer in the chain (primary, sync or async)', () => {
    for (const id of ['a', 'b', 'c']) expect(codeOf(() => reap(shard(), id))).toBe('MANATEE_ERR_PEER_IN_CHAIN');
  });

  it('refuses a peer that is nowhere in the state', () => {
    expect(codeOf(() => reap(shard(), 'nobody'))).toBe('MANATEE_ERR_PEER_NOT_FOUND');
  });

  it('refuses a deposed peer whose session is alive', () => {
    expect(codeOf(() => reap(shard(), 'z', { activePeerIds: ['a', 'z'] }))).toBe('MANATEE_ERR_PEER_ACTIVE');
    expect(reap(shard(), 'z', { activePeerIds: ['a', 'b'] }).state.deposed).toEqual([]);
  });
});

describe('setOnwm', () => {
  const alone = shard({ sync: null, async: [], deposed: [], oneNodeWriteMode: true });
  const frozenAt = { date: NOW.toISOString(), reason: 'maintenance' };

  it('on: records the override in a normal shard, and says the primary drops its sync next', () => {
    const s = shard();
    const { state, summary } = setOnwm(s, 'on');
    // Only the override: the generation change is the primary's (onwmDowngrade).
    expect(state).toEqual({ ...s, onwmOverride: true });
    expect(summary).toBe(
      'operator turned one-node-write mode on: the primary drops its sync and asyncs at the next generation, and then commits writes alone',
    );
  });

  it('off: records the override in an ONWM shard, and says the primary picks a sync next', () => {
    const { state, summary } = setOnwm(alone, 'off');
    expect(state).toEqual({ ...alone, onwmOverride: false });
    expect(state.oneNodeWriteMode).toBe(true);
    expect(summary).toBe('operator turned one-node-write mode off: the primary picks a sync at the next generation once another peer is active');
  });

  it('replaces an override in the other direction, and pins the mode the shard is already in', () => {
    expect(setOnwm({ ...shard(), onwmOverride: true }, 'off').state.onwmOverride).toBe(false);
    expect(setOnwm({ ...alone, onwmOverride: false }, 'on').state.onwmOverride).toBe(true);
    const pinned = setOnwm(alone, 'on');
    expect(pinned.state.onwmOverride).toBe(true);
    expect(pinned.summary).toMatch(/one-node-write mode on: the shard is in one-node-write mode already/);
    expect(setOnwm(shard(), 'off').state.onwmOverride).toBe(false);
  });

  it('refuses an override that is already set, whether or not the primary acted on it yet', () => {
    expect(codeOf(() => setOnwm({ ...alone, onwmOverride: true }, 'on'))).toBe('MANATEE_ERR_ONWM_UNCHANGED');
    expect(codeOf(() => setOnwm({ ...shard(), onwmOverride: false }, 'off'))).toBe('MANATEE_ERR_ONWM_UNCHANGED');
    expect(() => setOnwm({ ...shard(), onwmOverride: true }, 'on')).toThrow(/already set on by operator .*has not acted on it yet/);
    expect(codeOf(() => setOnwm(shard(), 'config'))).toBe('MANATEE_ERR_ONWM_UNCHANGED');
  });

  it('config: removes the override, so that each sitter follows its configuration again', () => {
    const { state, summary } = setOnwm({ ...alone, onwmOverride: false }, 'config');
    expect(state).toEqual(alone);
    expect('onwmOverride' in state).toBe(false);
    expect(summary).toMatch(/^operator cleared the one-node-write mode override \(was off\)/);
  });

  it('refuses a change of mode while frozen (a freeze blocks the generation it takes), but not a pin or a clear', () => {
    expect(codeOf(() => setOnwm(shard({ freeze: frozenAt }), 'on'))).toBe('MANATEE_ERR_FROZEN');
    expect(codeOf(() => setOnwm({ ...alone, freeze: frozenAt }, 'off'))).toBe('MANATEE_ERR_FROZEN');
    expect(() => setOnwm({ ...alone, freeze: frozenAt }, 'off')).toThrow(/unfreeze it first/);
    expect(setOnwm({ ...alone, freeze: frozenAt }, 'on').state.onwmOverride).toBe(true);
    expect(setOnwm(shard({ freeze: frozenAt, onwmOverride: true }), 'config').state.onwmOverride).toBeUndefined();
  });
});

describe('checkRebuild', () => {
  it('allows an async, a deposed or an unassigned peer, and any peer before the first state', () => {
    expect(() => { checkRebuild(shard(), 'c'); }).not.toThrow();
    expect(() => { checkRebuild(shard(), 'z'); }).not.toThrow();
    expect(() => { checkRebuild(shard(), 'new'); }).not.toThrow();
    expect(() => { checkRebuild(null, 'a'); }).not.toThrow();
  });

  it('refuses the primary and the sync', () => {
    expect(codeOf(() => { checkRebuild(shard(), 'a'); })).toBe('MANATEE_ERR_BAD_REBUILD');
    expect(codeOf(() => { checkRebuild(shard(), 'b'); })).toBe('MANATEE_ERR_BAD_REBUILD');
    // The primary even with WAL positions given.
    expect(codeOf(() => { checkRebuild(shard(), 'a', { replayLsn: '0/1000000', receiveLsn: null }); })).toBe('MANATEE_ERR_BAD_REBUILD');
  });

  it('allows the sync only when its replayed and received WAL are below initWal (it could not take over)', () => {
    expect(checkRebuild(shard(), 'c')).toBe('standby');
    expect(checkRebuild(shard(), 'b', { replayLsn: '0/1000000', receiveLsn: null })).toBe('sync');
    expect(checkRebuild(shard(), 'b', { replayLsn: '0/1000000', receiveLsn: '0/300005F' })).toBe('sync');
    const refused: [string, { replayLsn: string | null; receiveLsn: string | null } | undefined][] = [
      ['its WAL position is unknown here', undefined],
      ['my replay position is unknown', { replayLsn: null, receiveLsn: null }],
      ['I have replayed 0/3000060, at or past initWal 0/3000060', { replayLsn: '0/3000060', receiveLsn: null }],
      ['I have received WAL up to 0/3000060', { replayLsn: '0/1000000', receiveLsn: '0/3000060' }],
    ];
    for (const [why, own] of refused) {
      let err: unknown = null;
      try {
        checkRebuild(shard(), 'b', own);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Error);
      expect((err as { code: string }).code).toBe('MANATEE_ERR_BAD_REBUILD');
      expect((err as Error).message).toContain(`will not rebuild b: it is the sync (${why}`);
    }
  });
});

describe('rebuild through storeAdminOperations (the API path), on the sync', () => {
  const peers = ['a', 'b', 'c'].map((id) => apiPeer(id));

  function ops(peerId: string, ownWal?: () => Promise<{ replayLsn: string | null; receiveLsn: string | null }>): { calls: unknown[]; rebuild: () => Promise<unknown> } {
    const calls: unknown[] = [];
    const o = storeAdminOperations({
      store: new MemoryStore(threePeerState(peers), peers),
      peerId,
      startRebuild: (opts) => {
        calls.push(opts);
        return Promise.resolve({ peerId, started: true, message: 'started' });
      },
      ...(ownWal === undefined ? {} : { ownWal }),
    });
    return { calls, rebuild: () => o.rebuild() };
  }

  it("starts the sync's rebuild with the generation, upstream and initWal it was checked against, when below initWal", async () => {
    const o = ops('b', () => Promise.resolve({ replayLsn: '0/1000000', receiveLsn: '0/2000000' }));
    await o.rebuild();
    expect(o.calls).toEqual([{ asSync: { generation: 3, upstreamId: 'a', initWal: '0/3000060' } }]);
  });

  it('refuses the sync at or past initWal, without its position, or when reading it fails; an async is an ordinary rebuild', async () => {
    const cases: [ReturnType<typeof ops>, RegExp][] = [
      [ops('b', () => Promise.resolve({ replayLsn: '0/3000060', receiveLsn: null })), /at or past initWal 0\/3000060/],
      [ops('b'), /its WAL position is unknown here/],
      [ops('b', () => Promise.reject(new Error('connection refused'))), /its WAL position is unknown here/],
    ];
    for (const [o, why] of cases) {
      const err = await o.rebuild().then(() => null, (e: unknown) => e);
      expect((err as { code?: string } | null)?.code).toBe('MANATEE_ERR_BAD_REBUILD');
      expect((err as Error).message).toMatch(why);
      expect(o.calls).toEqual([]);
    }
    const asyncOps = ops('c', () => Promise.reject(new Error('not asked for an async')));
    await asyncOps.rebuild();
    expect(asyncOps.calls).toEqual([{}]);
  });
});

describe('scheduled restart (restart --at)', () => {
  const at = '2026-11-24T08:00:00.000Z';

  it('is stored in the state with its scope, and the summary says what and when', () => {
    const c = scheduleRestart(shard(), { at, pending: true, now: NOW });
    expect(c.state.restart).toEqual({ at, pending: true });
    expect(c.summary).toBe(`operator scheduled a rolling restart of every peer with settings pending a restart for ${at}`);
    expect(c.state.generation).toBe(4);
    const one = scheduleRestart(shard(), { at: '2026-11-24T09:30:00+01:00', pending: false, peer: 'c', now: NOW });
    expect(one.state.restart).toEqual({ at: '2026-11-24T08:30:00.000Z', pending: false, peer: 'c' });
    expect(one.summary).toBe('operator scheduled a rolling restart of peer c for 2026-11-24T08:30:00.000Z');
  });

  it('refuses a bad time, a time past or too far ahead, a peer outside the chain, and a second one', () => {
    expect(codeOf(() => scheduleRestart(null, { at, pending: false, now: NOW }))).toBe('MANATEE_ERR_NO_STATE');
    expect(() => scheduleRestart(shard(), { at: 'tomorrow', pending: false, now: NOW })).toThrow(/restart time "tomorrow" is not an ISO 8601 time/);
    expect(() => scheduleRestart(shard(), { at: '2026-11-24T06:00:00Z', pending: false, now: NOW })).toThrow(/restart time 2026-11-24T06:00:00.000Z is not in the future/);
    expect(codeOf(() => scheduleRestart(shard(), { at: '2027-01-24T06:00:00Z', pending: false, now: NOW }))).toBe('MANATEE_ERR_INVALID_ARGUMENT');
    expect(codeOf(() => scheduleRestart(shard(), { at, pending: false, peer: 'z', now: NOW }))).toBe('MANATEE_ERR_PEER_NOT_FOUND');
    const scheduled = scheduleRestart(shard(), { at, pending: false, now: NOW }).state;
    expect(codeOf(() => scheduleRestart(scheduled, { at, pending: true, now: NOW }))).toBe('MANATEE_ERR_RESTART_SCHEDULED');
  });

  it('is cancelled by clear-restart; with none scheduled, clear-restart is refused', () => {
    const scheduled = scheduleRestart(shard(), { at, pending: false, now: NOW }).state;
    const c = clearRestart(scheduled);
    expect(c.state).toEqual(shard());
    expect(c.summary).toBe(`operator cancelled the rolling restart of every peer scheduled for ${at}`);
    expect(codeOf(() => clearRestart(shard()))).toBe('MANATEE_ERR_NO_RESTART');
  });
});
