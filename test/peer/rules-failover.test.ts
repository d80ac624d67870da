// Failures and the chain (rules 2-4), ported from manatee-state-machine's tst.basic,
// tst.start_primary, tst.start_sync, tst.noflap and tst.freeze.
import { describe, expect, it } from 'vitest';
import { Shard, lsn, topo } from './shard-sim.js';

describe('basic: one peer goes unassigned -> async -> sync -> primary over successive failures', () => {
  it('follows the chain through failures, deposes old primaries and takes rebuilt peers back', () => {
    // node1 is the peer followed (the peer under test in Joyent's tst.basic).
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.bootstrap('node2', 'node3');

    // Unassigned until the primary places it.
    expect(shard.step('node1')).toMatchObject({ kind: 'none', position: 'unassigned', role: 'none', upstream: null });
    expect(shard.step('node2')).toMatchObject({ kind: 'appendAsyncs', write: { summary: 'async "node1" added' } });
    // async[0] replicates from the sync.
    expect(shard.step('node1')).toMatchObject({ kind: 'none', position: 'async', role: 'async', upstream: { id: 'node3' } });

    // The primary dies; the sync (caught up) takes over, and node1 becomes the sync.
    shard.catchUp('node3').rmPeer('node2');
    expect(shard.settle()).toEqual(['sync (node3) took over as primary (from node2)']);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node3', sync: 'node1', deposed: ['node2'], initWal: lsn(10) }));
    expect(shard.step('node1')).toMatchObject({ position: 'sync', role: 'sync', upstream: { id: 'node3' } });

    // The old primary comes back: it is deposed until rebuilt, then rejoins as an async.
    shard.addPeer('node2');
    expect(shard.step('node2')).toMatchObject({ kind: 'deposed', role: 'deposed', needsRebuild: true, upstream: { id: 'node3' } });
    shard.rebuild('node2');
    expect(shard.settle()).toEqual(['"node2" no longer deposed (rebuilt from node3)', 'async "node2" added']);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node3', sync: 'node1', async: ['node2'], initWal: lsn(10) }));

    // The primary dies, but node1 has not replayed up to initWal: no takeover, however long it waits.
    shard.rmPeer('node3');
    expect(shard.settle()).toEqual([]);
    expect(shard.peer('node1').last?.kind).toBe('waitForCatchUp');
    shard.addPeer('node3');
    expect(shard.settle()).toEqual([]);
    expect(shard.topology().generation).toBe(2);

    // Caught up, the same failure makes node1 the primary.
    shard.catchUp('node1').rmPeer('node3');
    expect(shard.settle()).toEqual(['sync (node1) took over as primary (from node3)']);
    expect(shard.topology()).toEqual(topo({ generation: 3, primary: 'node1', sync: 'node2', deposed: ['node3'], initWal: lsn(20) }));
    shard.rebuild('node3').addPeer('node3');
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 3, primary: 'node1', sync: 'node2', async: ['node3'], initWal: lsn(20) }));

    // The sync fails: the primary makes the async its sync; the old sync rejoins as an async.
    shard.rmPeer('node2');
    expect(shard.settle()).toEqual(['primary (node1) selected new sync (was node2, now node3)']);
    expect(shard.topology()).toEqual(topo({ generation: 4, primary: 'node1', sync: 'node3', initWal: lsn(30) }));
    shard.addPeer('node2');
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 4, primary: 'node1', sync: 'node3', async: ['node2'], initWal: lsn(30) }));

    // Asyncs come and go within the generation.
    shard.addPeer('node4');
    expect(shard.settle()).toEqual(['async "node4" added']);
    expect(shard.topology().async).toEqual(['node2', 'node4']);
    expect(shard.step('node4')).toMatchObject({ role: 'async', upstream: { id: 'node2' } });
    shard.rmPeer('node4');
    expect(shard.settle()).toEqual(['async "node4" removed']);
    expect(shard.topology()).toEqual(topo({ generation: 4, primary: 'node1', sync: 'node3', async: ['node2'], initWal: lsn(30) }));

    // Finally node1 itself is deposed.
    shard.catchUp('node3').rmPeer('node1');
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 5, primary: 'node3', sync: 'node2', deposed: ['node1'], initWal: lsn(40) }));
    shard.addPeer('node1');
    expect(shard.step('node1')).toMatchObject({ kind: 'deposed', position: 'deposed', role: 'deposed', write: null });
  });
});

describe('the sync takeover and initWal', () => {
  function shardWithLaggingSync(): Shard {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle(); // generation 1: node1 primary, node2 sync, node3 async
    shard.catchUp('node2').rmPeer('node1');
    shard.settle(); // generation 2: node2 primary (initWal 0/A), node3 sync
    shard.rebuild('node1').addPeer('node1');
    shard.settle(); // node1 rejoins as an async
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node2', sync: 'node3', async: ['node1'], initWal: lsn(10) }));
    return shard;
  }

  it('no takeover before catching up to initWal: a sync behind initWal waits, and says so', () => {
    const shard = shardWithLaggingSync();
    shard.setPg('node3', { replayLsn: lsn(9), currentLsn: lsn(9) }).rmPeer('node2');
    const d = shard.step('node3');
    expect(d.kind).toBe('waitForCatchUp');
    expect(d.write).toBeNull();
    expect(d.reason).toBe(
      'primary "node2" has no session, but my replay position 0/9 is behind initWal 0/A; not taking over until I catch up',
    );
    expect(shard.settle()).toEqual([]);
  });

  it('no takeover while the sync does not know its replay position', () => {
    const shard = shardWithLaggingSync();
    shard.setPg('node3', { replayLsn: null }).rmPeer('node2');
    expect(shard.step('node3').kind).toBe('waitForCatchUp');
  });

  it('no takeover while the sync PostgreSQL is offline', () => {
    const shard = shardWithLaggingSync();
    shard.catchUp('node3').setPg('node3', { online: false }).rmPeer('node2');
    expect(shard.step('node3')).toMatchObject({ kind: 'waitForPostgres', write: null });
  });

  it('takeover after catching up: generation+1, self primary, first active async sync, old primary deposed, initWal = own LSN', () => {
    const shard = shardWithLaggingSync();
    shard.setPg('node3', { replayLsn: lsn(0x3000), currentLsn: lsn(0x3000) }).rmPeer('node2');
    const d = shard.step('node3');
    expect(d.kind).toBe('takeover');
    expect(d.reason).toBe(
      'primary "node2" has no session; I am the sync with replay 0/3000 >= initWal 0/A on timeline 1; taking over as primary of generation 3 with "node1" as sync, asyncs [], "node2" deposed and initWal 0/3000 on my timeline 1',
    );
    expect(d).toMatchObject({ position: 'primary', role: 'primary', upstream: null, downstream: { id: 'node1' }, generation: 3 });
    expect(shard.topology()).toEqual(topo({ generation: 3, primary: 'node3', sync: 'node1', deposed: ['node2'], initWal: lsn(0x3000) }));
  });

  it('the takeover skips asyncs without a session and drops them from the chain', () => {
    const shard = new Shard();
    for (const id of ['node1', 'node2', 'node3', 'node4', 'node5']) shard.addPeer(id);
    shard.settle();
    expect(shard.topology().async).toEqual(['node3', 'node4', 'node5']);
    shard.rmPeer('node3').rmPeer('node1');
    expect(shard.step('node2').kind).toBe('takeover');
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node2', sync: 'node4', async: ['node5'], deposed: ['node1'], initWal: lsn(0) }));
  });
});

describe('sync failure and asyncs (start as primary)', () => {
  it('the primary replaces a failed sync with the first active async, and the old sync rejoins at the end of the chain', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.bootstrap('node1', 'node2', ['node3']);
    expect(shard.settle()).toEqual([]);

    shard.rmPeer('node2');
    const d = shard.step('node1');
    expect(d.kind).toBe('replaceSync');
    expect(d.reason).toBe('sync "node2" has no session; I am the primary and "node3" is the first active async; declaring generation 2 with it as sync and initWal 0/A');
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', initWal: lsn(10) }));

    shard.addPeer('node2');
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', async: ['node2'], initWal: lsn(10) }));
    expect(shard.step('node2')).toMatchObject({ role: 'async', upstream: { id: 'node3' } });
  });

  it('the primary adds and removes several asyncs in one write, keeping the order of those that stay', () => {
    const shard = new Shard();
    for (const id of ['node1', 'node2', 'node3', 'node4']) shard.addPeer(id);
    shard.settle();
    shard.rmPeer('node3').addPeer('node6').addPeer('node5');
    const d = shard.step('node1');
    expect(d.kind).toBe('updateAsyncs');
    expect(d.write?.summary).toBe('async "node5" added, async "node6" added, async "node3" removed');
    expect(shard.topology().async).toEqual(['node4', 'node5', 'node6']);
    expect(shard.step('node6')).toMatchObject({ role: 'async', upstream: { id: 'node5' } });
  });

  it('the primary never places a deposed peer in the chain, even while it is active', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.catchUp('node2').rmPeer('node1');
    shard.settle();
    shard.addPeer('node1');
    expect(shard.settle()).toEqual([]);
    expect(shard.topology()).toMatchObject({ async: [], deposed: ['node1'] });
  });

  it('the primary does not replace the sync while its own PostgreSQL is offline (it needs its LSN for initWal)', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.setPg('node1', { online: false }).rmPeer('node2');
    expect(shard.step('node1')).toMatchObject({ kind: 'waitForPostgres', write: null });
    shard.setPg('node1', { online: true });
    expect(shard.step('node1').kind).toBe('replaceSync');
  });
});

describe('no flapping without asyncs', () => {
  it('a two-peer shard never fails over: the sync keeps waiting when the primary dies', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2');
    shard.bootstrap('node2', 'node1');
    shard.catchUp('node1').rmPeer('node2');
    const d = shard.step('node1');
    expect(d).toMatchObject({ kind: 'waitForAsync', role: 'sync', upstream: { id: 'node2' }, write: null });
    expect(d.reason).toBe('primary "node2" has no session, but no async is active to become my sync; not taking over');
    expect(shard.settle()).toEqual([]);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node2', sync: 'node1' }));
  });

  it('a two-peer shard never fails over: the primary keeps its dead sync until an async can replace it', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2');
    shard.settle();
    shard.rmPeer('node2');
    expect(shard.step('node1')).toMatchObject({ kind: 'waitForAsync', write: null });
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2' }));

    // A third peer: first placed as an async (same generation), then made the sync.
    shard.addPeer('node3');
    expect(shard.settle()).toEqual(['async "node3" added', 'primary (node1) selected new sync (was node2, now node3)']);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', initWal: lsn(10) }));
  });

  it('the sync takes over once an async of the chain is active again', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.rmPeer('node3').settle();
    shard.catchUp('node2').rmPeer('node1');
    expect(shard.settle()).toEqual([]);
    // node3 is no longer in the chain, and only the primary places peers: a fresh session
    // alone does not let the sync take over (as in Joyent's Manatee).
    shard.addPeer('node3');
    expect(shard.settle()).toEqual([]);
    expect(shard.peer('node2').last?.kind).toBe('waitForAsync');
  });
});

describe('freeze', () => {
  it('blocks a sync replacement, lets the primary still add and remove asyncs, and is kept across those writes', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.freeze('maintenance');

    shard.rmPeer('node2');
    const d = shard.step('node1');
    expect(d.kind).toBe('frozen');
    expect(d.reason).toMatch(/^sync "node2" has no session, but the cluster is frozen \(maintenance, since .*\); not replacing it$/);
    shard.addPeer('node2');
    expect(shard.settle()).toEqual([]);

    shard.rmPeer('node3');
    expect(shard.settle()).toEqual(['async "node3" removed']);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', frozen: true }));
    shard.addPeer('node3');
    expect(shard.settle()).toEqual(['async "node3" added']);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'], frozen: true }));

    shard.unfreeze().rmPeer('node2');
    expect(shard.settle()).toEqual(['primary (node1) selected new sync (was node2, now node3)']);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', initWal: lsn(10) }));
  });

  it('blocks the sync takeover, and unfreezing lets it happen', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.freeze().catchUp('node2').rmPeer('node1');
    expect(shard.settle()).toEqual([]);
    expect(shard.peer('node2').last?.kind).toBe('frozen');
    shard.unfreeze();
    expect(shard.settle()).toEqual(['sync (node2) took over as primary (from node1)']);
  });
});

describe('roles and upstreams', () => {
  it('async[0] replicates from the sync, async[i] from async[i-1], the sync from the primary', () => {
    const shard = new Shard();
    for (const id of ['node1', 'node2', 'node3', 'node4', 'node5']) shard.addPeer(id);
    shard.settle();
    expect(shard.step('node1')).toMatchObject({ role: 'primary', upstream: null, downstream: { id: 'node2' }, writableWithoutSync: false });
    expect(shard.step('node2')).toMatchObject({ role: 'sync', upstream: { id: 'node1' }, downstream: null });
    expect(shard.step('node3')).toMatchObject({ role: 'async', upstream: { id: 'node2' } });
    expect(shard.step('node4')).toMatchObject({ role: 'async', upstream: { id: 'node3' } });
    expect(shard.step('node5')).toMatchObject({ role: 'async', upstream: { id: 'node4' } });
    expect(shard.peer('node5').last?.reason).toBe('no action: I am async 2 of generation 1, replicating from "node4"');
  });

  it('a peer whose own session is not active keeps its role and writes nothing', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.rmPeer('node1').rmPeer('node2');
    expect(shard.decide('node1')).toMatchObject({ kind: 'noSession', role: 'primary', write: null });
  });

  it('a deposed peer does not ask for a rebuild when automatic rebuild is off, or while the primary has no session', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.catchUp('node2').rmPeer('node1').settle();
    shard.addPeer('node1', { config: { autoRebuild: false } });
    expect(shard.step('node1')).toMatchObject({ kind: 'deposed', needsRebuild: false, write: null });
    expect(shard.peer('node1').last?.reason).toMatch(/automatic rebuild is off/);

    shard.setConfig('node1', { autoRebuild: true }).rmPeer('node2');
    expect(shard.step('node1')).toMatchObject({ kind: 'deposed', needsRebuild: false });
    expect(shard.peer('node1').last?.reason).toMatch(/no session to rebuild from/);
  });

  it('a deposed peer rebuilt from an earlier primary stays deposed', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.catchUp('node2').rmPeer('node1').settle();
    shard.addPeer('node1').setPg('node1', { rebuiltFrom: { primaryId: 'node1', generation: 1 } });
    expect(shard.step('node1')).toMatchObject({ kind: 'deposed', write: null });
  });

  it('a deposed peer rebuilt from the current primary in an earlier generation rebuilds again', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3').addPeer('node4');
    shard.settle();
    shard.catchUp('node2').rmPeer('node1').settle();
    expect(shard.mustState()).toMatchObject({ generation: 2, primary: { id: 'node2' } });
    // The sync fails: the primary (still node2) replaces it, generation 3.
    shard.rmPeer('node3').settle();
    const g = shard.mustState().generation;
    expect(g).toBe(3);
    expect(shard.mustState().primary.id).toBe('node2');
    shard.addPeer('node1').setPg('node1', { rebuiltFrom: { primaryId: 'node2', generation: 2 } });
    expect(shard.step('node1')).toMatchObject({ kind: 'deposed', needsRebuild: true, write: null });
    shard.setPg('node1', { rebuiltFrom: { primaryId: 'node2', generation: 3 } });
    expect(shard.step('node1')).toMatchObject({ kind: 'removeFromDeposed' });
  });
});
