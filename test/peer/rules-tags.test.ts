// Peer tags in the rules: a peer tagged nofailover is never chosen as sync or primary, and
// priority orders the choice of the sync (higher first, ties by the chain's order).
import { describe, expect, it } from 'vitest';
import { peerTagsProblems } from '../../src/model/index.js';
import { Shard, lsn, topo } from './shard-sim.js';

const NOFAILOVER = { tags: { nofailover: true } };

describe('nofailover', () => {
  it('setup: the smallest id that may be primary sets up, and a nofailover peer is never the first sync', () => {
    const shard = new Shard().addPeer('node1', NOFAILOVER).addPeer('node2', NOFAILOVER).addPeer('node3').addPeer('node4');
    const d = shard.step('node1');
    expect(d).toMatchObject({ kind: 'waitForSetup', write: null });
    expect(d.reason).toBe('no cluster state yet; the active peer with the smallest id that may be primary ("node3") sets it up, so I wait (I am tagged nofailover)');
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node3', sync: 'node4', async: ['node1', 'node2'] }));
  });

  it('setup waits when every other peer is tagged nofailover', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2', NOFAILOVER);
    const d = shard.step('node1');
    expect(d).toMatchObject({ kind: 'waitForPeers', write: null });
    expect(d.reason).toBe('no cluster state yet and the other active peers [node2] are tagged nofailover; waiting for a second peer that may be sync to set up the cluster');
  });

  it('a nofailover async is never made sync, even when it is the only candidate: the primary keeps its dead sync (no write is acknowledged)', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3', NOFAILOVER);
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'] }));
    shard.rmPeer('node2');
    const d = shard.step('node1');
    expect(d).toMatchObject({ kind: 'waitForAsync', write: null, downstream: { id: 'node2' } });
    expect(d.reason).toBe('sync "node2" has no session and no active async may become the sync ([node3] is tagged nofailover); keeping it as sync until an async can replace it');
    expect(shard.settle()).toEqual([]);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'] }));
    // An untagged peer arrives: it is placed and made the sync, never node3.
    shard.addPeer('node4');
    expect(shard.settle()).toEqual(['async "node4" added', 'primary (node1) selected new sync (was node2, now node4)']);
    expect(shard.topology()).toMatchObject({ generation: 2, sync: 'node4', async: ['node3'] });
  });

  it('the sync does not take over when the only active async is tagged nofailover (no sync after it)', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3', NOFAILOVER);
    shard.settle();
    shard.catchUp('node2').rmPeer('node1');
    const d = shard.step('node2');
    expect(d).toMatchObject({ kind: 'waitForAsync', write: null });
    expect(d.reason).toBe('primary "node1" has no session, but no active async may become my sync ([node3] is tagged nofailover); not taking over');
  });

  it('a sync tagged nofailover never takes over, and the primary replaces it with an async that may', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    // node2's configuration gains the tag after it was chosen (its sitter restarted).
    shard.addPeer('node2', NOFAILOVER);
    expect(shard.settle()).toEqual(['primary (node1) selected new sync (was node2, tagged nofailover; now node3)']);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node3', async: ['node2'], initWal: lsn(10) }));

    // With no other async, a nofailover sync stays the sync (writes stay safe) but never takes over.
    const lone = new Shard().addPeer('node1').addPeer('node2');
    lone.settle();
    lone.addPeer('node2', NOFAILOVER).addPeer('node3', NOFAILOVER);
    expect(lone.settle()).toEqual(['async "node3" added']);
    lone.catchUp('node2').rmPeer('node1');
    const d = lone.step('node2');
    expect(d).toMatchObject({ kind: 'noFailover', write: null });
    expect(d.reason).toBe('primary "node1" has no session, but I am tagged nofailover; not taking over');
  });

  it('a frozen cluster keeps its nofailover sync (no generation change)', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.freeze().addPeer('node2', NOFAILOVER);
    expect(shard.settle()).toEqual([]);
    expect(shard.topology().sync).toBe('node2');
  });

  it('a promote request that would make a nofailover peer primary or sync is cleared', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3', NOFAILOVER);
    shard.settle();
    shard.promote({ id: 'node3', role: 'async', asyncIndex: 0, generation: 1 });
    const d = shard.step('node1');
    expect(d.kind).toBe('clearPromote');
    expect(d.reason).toMatch(/"node3" is tagged nofailover: it may not become the sync/);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'] }));
  });

  it('one-node-write mode is left only with a sync that may take over', () => {
    const shard = new Shard().addPeer('node1', { config: { oneNodeWriteMode: true } });
    shard.settle();
    shard.unfreeze().setConfig('node1', { oneNodeWriteMode: false });
    shard.setState({ ...shard.mustState(), onwmOverride: false });
    shard.addPeer('node2', NOFAILOVER);
    const d = shard.step('node1');
    expect(d.kind).toBe('waitForPeers');
    expect(d.reason).toMatch(/\[node2\] tagged nofailover/);
    shard.addPeer('node3');
    shard.settle();
    expect(shard.topology()).toMatchObject({ sync: 'node3', async: ['node2'], oneNodeWriteMode: false });
  });
});

describe('priority', () => {
  it('the primary replaces a dead sync with the active async of highest priority, ties by the chain order', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3').addPeer('node4').addPeer('node5');
    shard.settle();
    expect(shard.topology()).toMatchObject({ sync: 'node2', async: ['node3', 'node4', 'node5'] });
    // Their sitters restart with a priority: the chain stays as it is until a sync is chosen.
    shard.addPeer('node4', { tags: { priority: 5 } }).addPeer('node5', { tags: { priority: 5 } });
    expect(shard.settle()).toEqual([]);
    shard.rmPeer('node2');
    expect(shard.settle()).toContain('primary (node1) selected new sync (was node2, now node4)');
    expect(shard.topology()).toMatchObject({ generation: 2, sync: 'node4', async: ['node3', 'node5'] });
  });

  it('a takeover makes the async of highest priority the new sync', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3').addPeer('node4');
    shard.settle();
    shard.addPeer('node4', { tags: { priority: 1 } });
    shard.catchUp('node2').rmPeer('node1');
    expect(shard.step('node2').kind).toBe('takeover');
    expect(shard.topology()).toMatchObject({ primary: 'node2', sync: 'node4', async: ['node3'] });
  });

  it('setup chooses the first sync by priority', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3', { tags: { priority: -1 } }).addPeer('node4', { tags: { priority: 3 } });
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node4', async: ['node2', 'node3'] }));
  });
});

describe('tags validation', () => {
  it('names each bad field', () => {
    expect(peerTagsProblems({ nofailover: 'yes', priority: 1.5, color: 'red' }, 'tags')).toEqual([
      'tags.color: is not a known tag (expected one of nofailover, noloadbalance, priority)',
      'tags.nofailover: must be true or false (got "yes")',
      'tags.priority: must be an integer from -1000 to 1000 (got 1.5)',
    ]);
    expect(peerTagsProblems({ priority: 1001 }, 'tags')).toEqual(['tags.priority: must be an integer from -1000 to 1000 (got 1001)']);
    expect(peerTagsProblems([], 'tags')).toEqual(['tags: must be an object {nofailover?, noloadbalance?, priority?} (got an array)']);
    expect(peerTagsProblems({ nofailover: false, noloadbalance: true, priority: -1000 }, 'tags')).toEqual([]);
  });
});
