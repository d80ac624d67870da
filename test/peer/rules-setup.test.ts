// Initial setup (rule 1), ported from manatee-state-machine's tst.cluster_setup_immed,
// tst.cluster_setup_delay, tst.cluster_setup_passive and tst.cluster_setup_onwm.
import { describe, expect, it } from 'vitest';
import { Shard, lsn, topo } from './shard-sim.js';

describe('cluster setup', () => {
  it('immediate: with three peers active, the smallest id sets up generation 1 with the next as sync and the rest as asyncs', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');

    const d = shard.step('node1');
    expect(d.kind).toBe('setupCluster');
    expect(d.reason).toMatch(/smallest id/);
    expect(d.position).toBe('primary');
    expect(d.role).toBe('primary');
    expect(d.downstream?.id).toBe('node2');
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'], initWal: lsn(0) }));
    expect(shard.history).toEqual(['cluster setup for normal (multi-peer) mode']);

    expect(shard.settle()).toEqual([]);
    expect(shard.peer('node2').last).toMatchObject({ kind: 'none', role: 'sync', upstream: { id: 'node1' } });
    expect(shard.peer('node3').last).toMatchObject({ kind: 'none', role: 'async', upstream: { id: 'node2' } });
  });

  it('setup orders peers by id, not by the order their sessions opened', () => {
    const shard = new Shard().addPeer('node3').addPeer('node2').addPeer('node1');
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'] }));
  });

  it('delayed: a lone peer waits for a second one, then sets up, and the third joins as an async', () => {
    const shard = new Shard().addPeer('node1');
    expect(shard.step('node1')).toMatchObject({ kind: 'waitForPeers', write: null, role: 'none' });
    expect(shard.state).toBeNull();

    shard.addPeer('node2');
    expect(shard.settle()).toEqual(['cluster setup for normal (multi-peer) mode']);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2' }));

    shard.addPeer('node3');
    expect(shard.settle()).toEqual(['async "node3" added']);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'] }));
  });

  it('passive: a peer that does not have the smallest id never sets up the cluster', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2');
    const d = shard.step('node2');
    expect(d).toMatchObject({ kind: 'waitForSetup', write: null, role: 'none' });
    expect(d.reason).toContain('"node1"');
    expect(shard.state).toBeNull();

    shard.step('node1');
    expect(shard.step('node2')).toMatchObject({ kind: 'none', position: 'sync', role: 'sync', upstream: { id: 'node1' } });
  });

  it('holds off with existing data: the smallest peer with a database already on disk does not set up, and nobody else does', () => {
    const shard = new Shard().addPeer('node1', { pg: { hasPreviousData: true } }).addPeer('node2').addPeer('node3');
    expect(shard.settle()).toEqual([]);
    expect(shard.state).toBeNull();
    expect(shard.peer('node1').last).toMatchObject({ kind: 'holdOffExistingData', role: 'none' });
    expect(shard.peer('node1').last?.reason).toMatch(/already holds a database/);
    expect(shard.peer('node2').last?.kind).toBe('waitForSetup');
  });

  it('one-node-write mode: a lone peer configured for ONWM sets up a frozen single-primary cluster', () => {
    const shard = new Shard().addPeer('node1', { config: { oneNodeWriteMode: true } });
    const d = shard.step('node1');
    expect(d.kind).toBe('setupCluster');
    expect(d).toMatchObject({ role: 'primary', writableWithoutSync: true, downstream: null });
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: null, oneNodeWriteMode: true, frozen: true }));
    expect(shard.mustState().freeze?.reason).toBe('manatee setup: one node write mode');
    expect(shard.history).toEqual(['cluster setup for one-node-write mode']);
  });

  it('a peer without its own session does not set up the cluster', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2');
    shard.rmPeer('node1');
    shard.addPeer('node0').rmPeer('node0');
    expect(shard.decide('node1')).toMatchObject({ kind: 'noSession', write: null });
  });
});
