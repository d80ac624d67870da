// One-node-write mode, ported from manatee-state-machine's tst.onwm, tst.onwm_newpeer and
// tst.onwm_upgrade.
import { describe, expect, it } from 'vitest';
import { Shard, lsn, peerInfo, topo } from './shard-sim.js';

function onwmShard(): Shard {
  const shard = new Shard().addPeer('node1', { config: { oneNodeWriteMode: true } });
  shard.settle();
  expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: null, oneNodeWriteMode: true, frozen: true }));
  return shard;
}

describe('one-node-write mode', () => {
  it('the ONWM primary is writable without a sync', () => {
    const shard = onwmShard();
    expect(shard.step('node1')).toMatchObject({
      kind: 'none',
      role: 'primary',
      writableWithoutSync: true,
      downstream: null,
      reason: 'no action: I am the primary in one-node-write mode',
    });
  });

  it('ignores new peers: they stay unassigned with PostgreSQL stopped, even after unfreeze', () => {
    const shard = onwmShard();
    shard.addPeer('node2').addPeer('node3');
    expect(shard.settle()).toEqual([]);
    expect(shard.peer('node1').last?.reason).toBe('no action: I am the primary in one-node-write mode; ignoring the other active peers [node2, node3]');
    expect(shard.peer('node2').last).toMatchObject({ kind: 'none', position: 'unassigned', role: 'none', upstream: null });
    shard.unfreeze();
    expect(shard.settle()).toEqual([]);
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: null, oneNodeWriteMode: true }));
  });

  it('upgrades to normal mode when ONWM is turned off, the cluster is unfrozen and a peer is available', () => {
    const shard = onwmShard();
    shard.setPg('node1', { currentLsn: lsn(10) });

    // ONWM off in the configuration: still frozen from setup, so it stays.
    shard.setConfig('node1', { oneNodeWriteMode: false });
    expect(shard.step('node1')).toMatchObject({ kind: 'frozen', write: null });

    // Unfrozen, but alone: it waits for a peer.
    shard.unfreeze();
    expect(shard.step('node1')).toMatchObject({ kind: 'waitForPeers', write: null, writableWithoutSync: true });

    // A peer arrives: generation 2 in normal mode, with it as sync.
    shard.addPeer('node2');
    const d = shard.step('node1');
    expect(d.kind).toBe('onwmUpgrade');
    expect(d).toMatchObject({ role: 'primary', writableWithoutSync: false, downstream: { id: 'node2' } });
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node2', initWal: lsn(10) }));
    expect(shard.history.at(-1)).toBe('primary (node1) left one-node-write mode with sync (node2)');

    // From there on the cluster behaves normally.
    shard.addPeer('node3');
    shard.settle();
    shard.rmPeer('node2');
    shard.settle();
    shard.addPeer('node2');
    shard.settle();
    expect(shard.topology()).toEqual(topo({ generation: 3, primary: 'node1', sync: 'node3', async: ['node2'], initWal: lsn(20) }));
  });

  it('the upgrade places every other active peer: the smallest id as sync, the rest as asyncs', () => {
    const shard = onwmShard();
    shard.addPeer('node3').addPeer('node2').addPeer('node4');
    shard.unfreeze().setConfig('node1', { oneNodeWriteMode: false });
    expect(shard.step('node1').kind).toBe('onwmUpgrade');
    expect(shard.topology()).toMatchObject({ sync: 'node2', async: ['node3', 'node4'], oneNodeWriteMode: false });
  });

  it('the upgrade waits for the primary PostgreSQL (it records initWal)', () => {
    const shard = onwmShard();
    shard.addPeer('node2').unfreeze().setConfig('node1', { oneNodeWriteMode: false }).setPg('node1', { online: false });
    expect(shard.step('node1')).toMatchObject({ kind: 'waitForPostgres', write: null });
  });

  it('a peer configured for ONWM in a normal cluster makes no change and keeps its role', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.setConfig('node1', { oneNodeWriteMode: true }).rmPeer('node2');
    const d = shard.step('node1');
    expect(d).toMatchObject({ kind: 'onwmMismatch', role: 'primary', write: null });
  });

  it('starting as the primary of an existing ONWM state keeps it', () => {
    const shard = new Shard().addPeer('node1', { config: { oneNodeWriteMode: true } });
    shard.setState({ generation: 1, primary: peerInfo('node1'), sync: null, async: [], deposed: [], initWal: lsn(0), oneNodeWriteMode: true });
    expect(shard.step('node1')).toMatchObject({ kind: 'none', role: 'primary', writableWithoutSync: true });
  });
});
