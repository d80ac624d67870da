// Restarts, ported from manatee-state-machine's tst.start_primary, tst.start_sync,
// tst.start_deposed, tst.start_primary_async and tst.start_sync_async: the cluster state
// exists and the peers come up in some order.
import { describe, expect, it } from 'vitest';
import { Shard, lsn, topo } from './shard-sim.js';

/** Generation 1 (node1 primary, node2 sync, node3 async) written, and every session gone. */
function restartedShard(): Shard {
  const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
  shard.bootstrap('node1', 'node2', ['node3']).catchUp('node2').catchUp('node3');
  shard.rmPeer('node1').rmPeer('node2').rmPeer('node3');
  return shard;
}

describe('restarts', () => {
  it('all peers come back together: nothing changes, same primary', () => {
    const shard = restartedShard();
    shard.addPeer('node1').addPeer('node2').addPeer('node3');
    expect(shard.settle()).toEqual([]);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'] }));
  });

  it('the primary comes up last, but while its session is still held: no takeover', () => {
    const shard = restartedShard();
    // The store keeps a session for sessionTimeoutMs after the last keepalive: a quick restart
    // of the primary's sitter is invisible to the rules.
    shard.addPeer('node1').addPeer('node2').addPeer('node3');
    expect(shard.step('node2')).toMatchObject({ kind: 'none', role: 'sync' });
    expect(shard.step('node3')).toMatchObject({ kind: 'none', role: 'async' });
  });

  it('the primary comes up last, after its session expired: the caught-up sync takes over, and the primary returns deposed', () => {
    const shard = restartedShard();
    shard.addPeer('node3').addPeer('node2');
    expect(shard.settle()).toEqual(['sync (node2) took over as primary (from node1)']);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node2', sync: 'node3', deposed: ['node1'], initWal: lsn(10) }));

    shard.addPeer('node1');
    expect(shard.step('node1')).toMatchObject({ kind: 'deposed', needsRebuild: true, upstream: { id: 'node2' } });
    shard.rebuild('node1');
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node2', sync: 'node3', async: ['node1'], initWal: lsn(10) }));
  });

  it('the primary comes up last, and the sync had not replayed up to initWal: the sync waits for the primary', () => {
    const shard = restartedShard();
    shard.setPg('node2', { replayLsn: null });
    shard.addPeer('node3').addPeer('node2');
    expect(shard.settle()).toEqual([]);
    shard.addPeer('node1');
    expect(shard.settle()).toEqual([]);
    expect(shard.topology().primary).toBe('node1');
  });

  it('the sync comes up last: the primary makes the async its sync, and the old sync rejoins as an async without a rebuild', () => {
    const shard = restartedShard();
    shard.addPeer('node1').addPeer('node3');
    expect(shard.settle()).toEqual(['primary (node1) selected new sync (was node2, now node3)']);
    shard.addPeer('node2');
    expect(shard.settle()).toEqual(['async "node2" added']);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', async: ['node2'], initWal: lsn(10) }));
    expect(shard.step('node2')).toMatchObject({ role: 'async', upstream: { id: 'node3' }, needsRebuild: false });
  });

  it('the primary comes up first and alone: it keeps its sync until the others return', () => {
    const shard = restartedShard();
    shard.addPeer('node1');
    expect(shard.settle()).toEqual(['async "node3" removed']);
    expect(shard.peer('node1').last?.kind).toBe('waitForAsync');
    shard.addPeer('node2');
    expect(shard.settle()).toEqual([]);
    shard.addPeer('node3');
    expect(shard.settle()).toEqual(['async "node3" added']);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'] }));
  });

  it('a deposed peer that starts stays deposed (PostgreSQL stopped) until rebuilt, then rejoins as an async', () => {
    const shard = restartedShard();
    shard.addPeer('node2').addPeer('node3').settle();
    expect(shard.topology().deposed).toEqual(['node1']);
    shard.addPeer('node1');
    expect(shard.settle()).toEqual([]);
    expect(shard.peer('node1').last).toMatchObject({ kind: 'deposed', role: 'deposed' });
    shard.rebuild('node1');
    const d = shard.step('node1');
    expect(d).toMatchObject({ kind: 'removeFromDeposed', position: 'unassigned', role: 'none' });
    expect(d.write?.newState.deposed).toEqual([]);
    expect(shard.settle()).toEqual(['async "node1" added']);
  });
});
