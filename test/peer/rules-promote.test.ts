// Planned promotion (manatee-adm promote), ported from manatee-state-machine's
// tst.promote_primary (the primary acts: asyncs) and tst.promote_sync (the sync acts).
import { describe, expect, it } from 'vitest';
import type { PromoteRequest } from '../../src/model/index.js';
import { Shard, lsn, topo } from './shard-sim.js';

const SIX = ['node1', 'node2', 'node3', 'node4', 'node5', 'node6'];

/** Joyent's fixture: six peers, then async promotions until the chain is [node5, node2, node6, node4]. */
function promotedShard(): Shard {
  const shard = new Shard();
  for (const id of SIX) shard.addPeer(id);
  shard.settle();
  expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3', 'node4', 'node5', 'node6'] }));
  return shard;
}

describe('promotion of asyncs (the primary acts)', () => {
  it('promoting async[0] makes it the sync in a new generation, and the old sync goes to the end of the chain', () => {
    const shard = promotedShard();
    shard.promote({ id: 'node3', role: 'async', asyncIndex: 0, generation: 1 });
    const d = shard.step('node1');
    expect(d.kind).toBe('promoteAsync');
    expect(d.reason).toMatch(/^acting on the promote request for "node3" \(async 0\): declaring generation 2 with "node3" as sync/);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', async: ['node4', 'node5', 'node6', 'node2'], initWal: lsn(10) }));
    expect(shard.settle()).toEqual([]);
  });

  it('promoting a later async moves it up one place, and the peer it passes goes to the end (same generation)', () => {
    const shard = promotedShard();
    shard.promote({ id: 'node3', role: 'async', asyncIndex: 0, generation: 1 }).settle();

    shard.promote({ id: 'node2', role: 'async', asyncIndex: 3, generation: 2 });
    expect(shard.settle()).toEqual(['async "node2" promoted to position 2 (node6 moved to the end)']);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', async: ['node4', 'node5', 'node2', 'node6'], initWal: lsn(10) }));

    shard.promote({ id: 'node5', role: 'async', asyncIndex: 1, generation: 2 });
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', async: ['node5', 'node2', 'node6', 'node4'], initWal: lsn(10) }));
  });

  // Each case of tst.promote_primary that must be ignored. The primary clears such a request;
  // nothing else changes.
  const ignored: [string, (s: Shard) => Record<string, unknown>, RegExp][] = [
    ['the role is primary', () => ({ id: 'node1', role: 'primary', generation: 2 }), /role "primary" is neither/],
    ['the role is unknown', () => ({ id: 'node1', role: 'test', generation: 2 }), /role "test" is neither/],
    ['it has expired', (s) => ({ id: 'node5', role: 'async', asyncIndex: 0, generation: 2, expireTime: new Date(s.nowMs).toISOString() }), /expired at/],
    ['its expireTime is not a time', () => ({ id: 'node5', role: 'async', asyncIndex: 0, generation: 2, expireTime: 'test' }), /expireTime "test" is not a time/],
    ['the id is not the sync', () => ({ id: 'node4', role: 'sync', generation: 2 }), /names "node4" as the sync, but the sync is "node3"/],
    ['the id is not at the async index', () => ({ id: 'node2', role: 'async', asyncIndex: 2, generation: 2 }), /names "node2" at async index 2, but that is "node6"/],
    ['the async index is past the end', () => ({ id: 'node2', role: 'async', asyncIndex: 999, generation: 2 }), /asyncIndex 999 is outside/],
    ['the async index is negative', () => ({ id: 'node2', role: 'async', asyncIndex: -1, generation: 2 }), /asyncIndex -1 is outside/],
    ['the async index is missing', () => ({ id: 'node2', role: 'async', generation: 2 }), /asyncIndex undefined is not an index/],
    ['the generation is later', () => ({ id: 'node2', role: 'async', asyncIndex: 1, generation: 100 }), /made for generation 100, and this is generation 2/],
    ['the generation is earlier', () => ({ id: 'node2', role: 'async', asyncIndex: 1, generation: 1 }), /made for generation 1, and this is generation 2/],
    ['the generation is not a number', () => ({ id: 'node2', role: 'async', asyncIndex: 1, generation: 'test' }), /generation "test" is not a number/],
    ['the id names no peer of the shard', () => ({ id: 'node999', role: 'sync', generation: 2 }), /names "node999" as the sync/],
    ['the id is missing', () => ({ role: 'async', asyncIndex: 1, generation: 2 }), /names no peer/],
  ];

  it.each(ignored)('ignores and clears a request when %s', (_what, make, why) => {
    const shard = promotedShard();
    shard.promote({ id: 'node3', role: 'async', asyncIndex: 0, generation: 1 }).settle();
    shard.promote({ id: 'node2', role: 'async', asyncIndex: 3, generation: 2 }).settle();
    shard.promote({ id: 'node5', role: 'async', asyncIndex: 1, generation: 2 }).settle();
    const before = shard.topology();

    const fields = make(shard);
    const expireTime = typeof fields.expireTime === 'string' ? fields.expireTime : new Date(shard.nowMs + 60_000).toISOString();
    shard.setState({ ...shard.mustState(), promote: { ...fields, expireTime } as unknown as PromoteRequest });

    expect(shard.step('node3').write).toBeNull(); // the sync never acts on it
    const d = shard.step('node1');
    expect(d.kind).toBe('clearPromote');
    expect(d.reason).toMatch(why);
    expect(d.write?.summary).toMatch(/^promote request cleared: /);
    expect(shard.settle()).toEqual([]);
    expect(shard.topology()).toEqual(before);
  });

  it('a request for an async without a session is not acted on; once the chain drops that async, the request is stale and cleared', () => {
    const shard = promotedShard();
    shard.rmPeer('node4');
    shard.promote({ id: 'node4', role: 'async', asyncIndex: 1, generation: 1, expireInMs: 5_000 });
    // The primary removes node4 from the chain, which makes the request stale.
    expect(shard.step('node1')).toMatchObject({ kind: 'removeAsyncs', write: { newState: { promote: { id: 'node4' } } } });
    expect(shard.topology()).toMatchObject({ generation: 1, sync: 'node2' });
    expect(shard.step('node1')).toMatchObject({ kind: 'clearPromote' });
  });

  it('frozen: a promote request is not acted on and stays until it expires', () => {
    const shard = promotedShard();
    shard.freeze();
    shard.promote({ id: 'node3', role: 'async', asyncIndex: 0, generation: 1, expireInMs: 5_000 });
    expect(shard.settle()).toEqual([]);
    expect(shard.topology()).toMatchObject({ generation: 1, sync: 'node2', promote: true });
    expect(shard.peer('node1').last?.kind).toBe('ignoredPromote');
    expect(shard.peer('node1').last?.reason).toMatch(
      /^ignoring the promote request for "node3" \(async 0\) for now because the cluster is frozen .*; it is cleared when it expires$/,
    );

    shard.nowMs += 5_000;
    const d = shard.step('node1');
    expect(d.kind).toBe('clearPromote');
    expect(d.reason).toMatch(/expired/);
    expect(shard.topology()).toMatchObject({ generation: 1, sync: 'node2', promote: false, frozen: true });
  });
});

describe('promotion of the sync (the sync acts)', () => {
  function twoPeers(): Shard {
    const shard = new Shard().addPeer('node1').addPeer('node2');
    shard.bootstrap('node2', 'node1').catchUp('node1');
    return shard;
  }

  it('is ignored while no async is active, and cleared by the primary once expired', () => {
    const shard = twoPeers();
    shard.promote({ id: 'node1', role: 'sync', generation: 1, expireInMs: 200 });
    const d = shard.step('node1');
    expect(d).toMatchObject({ kind: 'ignoredPromote', write: null, role: 'sync' });
    expect(d.reason).toBe('the promote request for "node1" (sync) names me, but no async is active to become my sync; not taking over');
    expect(shard.settle()).toEqual([]);
    shard.nowMs += 300;
    expect(shard.settle()).toEqual(['promote request cleared: it expired at 2026-01-01T00:00:00.200Z']);
  });

  it('the sync takes over while the primary is alive: generation+1, the primary deposed', () => {
    const shard = twoPeers();
    shard.addPeer('node3').addPeer('node4').addPeer('node5');
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node2', sync: 'node1', async: ['node3', 'node4', 'node5'] }));

    shard.promote({ id: 'node1', role: 'sync', generation: 1 });
    // The primary leaves a request for the sync to the sync.
    expect(shard.step('node2')).toMatchObject({ kind: 'none', write: null });
    const d = shard.step('node1');
    expect(d.kind).toBe('promoteSync');
    expect(d.write?.summary).toBe("sync (node1) took over as primary (from node2) on an operator's promote request");
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', async: ['node4', 'node5'], deposed: ['node2'], initWal: lsn(10) }));

    // The old primary, still alive, finds itself deposed and rebuilds.
    expect(shard.step('node2')).toMatchObject({ kind: 'deposed', role: 'deposed', needsRebuild: true, upstream: { id: 'node1' } });
  });

  it('the sync does not act on its promotion before catching up to initWal', () => {
    const shard = twoPeers();
    shard.addPeer('node3').settle();
    shard.setPg('node1', { replayLsn: null });
    shard.promote({ id: 'node1', role: 'sync', generation: 1 });
    expect(shard.step('node1')).toMatchObject({ kind: 'waitForCatchUp', write: null });
  });

  it('the sync reports a request for itself that it ignores, with why (wrong generation), and the primary clears it', () => {
    const shard = twoPeers();
    shard.addPeer('node3').settle();
    shard.promote({ id: 'node1', role: 'sync', generation: 7 });
    const d = shard.step('node1');
    expect(d.kind).toBe('ignoredPromote');
    expect(d.reason).toMatch(/made for generation 7, and this is generation 1/);
    expect(shard.step('node2').kind).toBe('clearPromote');
  });

  it('frozen: the sync does not act on its promotion', () => {
    const shard = twoPeers();
    shard.addPeer('node3').settle();
    shard.freeze().promote({ id: 'node1', role: 'sync', generation: 1 });
    const d = shard.step('node1');
    expect(d.kind).toBe('ignoredPromote');
    expect(d.reason).toMatch(/frozen/);
    expect(shard.settle()).toEqual([]);
    expect(shard.topology().generation).toBe(1);
  });
});

describe('scheduled switchover (promote --at)', () => {
  function twoPeers(): Shard {
    const shard = new Shard().addPeer('node1').addPeer('node2');
    shard.bootstrap('node2', 'node1').catchUp('node1');
    return shard;
  }

  it('is not acted on before its time, and fires once it is due', () => {
    const shard = twoPeers();
    shard.addPeer('node3').settle();
    const at = new Date(shard.nowMs + 10_000).toISOString();
    shard.promote({ id: 'node1', role: 'sync', generation: 1, at, expireInMs: 70_000 });
    const waiting = shard.step('node1');
    expect(waiting).toMatchObject({ kind: 'none', write: null });
    expect(waiting.reason).toBe(`no action: I am the sync of generation 1; the promote request for "node1" (sync) scheduled for ${at} waits for its time`);
    expect(shard.step('node2')).toMatchObject({ kind: 'ignoredPromote', write: null });
    expect(shard.settle()).toEqual([]);
    shard.nowMs += 10_000;
    expect(shard.step('node1').kind).toBe('promoteSync');
    expect(shard.topology()).toMatchObject({ generation: 2, primary: 'node1', sync: 'node3' });
  });

  it('is skipped by the primary, with the reason in the history, when it is due and the shard is not healthy', () => {
    const shard = twoPeers();
    shard.addPeer('node3').settle();
    const at = new Date(shard.nowMs + 5_000).toISOString();
    shard.promote({ id: 'node1', role: 'sync', generation: 1, at, expireInMs: 65_000 });
    shard.rmPeer('node3');
    shard.nowMs += 5_000;
    expect(shard.step('node1')).toMatchObject({ kind: 'ignoredPromote', write: null });
    const d = shard.step('node2');
    expect(d.kind).toBe('skipPromote');
    expect(d.write?.summary).toBe(`scheduled switchover to node1 skipped: the shard was not healthy at ${at} (no async is active to become the sync after it)`);
    expect(shard.mustState().promote).toBeUndefined();
    expect(shard.topology()).toMatchObject({ generation: 1, primary: 'node2', sync: 'node1' });
  });

  it('a frozen shard skips a due one too', () => {
    const shard = twoPeers();
    shard.addPeer('node3').settle();
    shard.freeze().promote({ id: 'node1', role: 'sync', generation: 1, at: new Date(shard.nowMs).toISOString() });
    const d = shard.step('node2');
    expect(d.kind).toBe('skipPromote');
    expect(d.reason).toMatch(/frozen/);
  });
});

