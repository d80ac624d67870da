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

// The operator's override (manatee-adm set-onwm): `onwmOverride` in the state beats every peer's
// configured oneNodeWriteMode, and the primary brings the state in line at the next generation.
describe("one-node-write mode by operator's override", () => {
  function normalShard(): Shard {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    shard.settle();
    shard.setPg('node1', { currentLsn: lsn(7) });
    expect(shard.topology()).toEqual(topo({ generation: 1, primary: 'node1', sync: 'node2', async: ['node3'] }));
    return shard;
  }

  function override(shard: Shard, on: boolean | undefined): Shard {
    const { onwmOverride: _was, ...rest } = shard.mustState();
    return shard.setState(on === undefined ? rest : { ...rest, onwmOverride: on });
  }

  it('on: the primary drops its sync and asyncs at generation+1, keeping initWal and the deposed peers', () => {
    const shard = normalShard();
    shard.setState({ ...shard.mustState(), deposed: [peerInfo('node9')] });
    override(shard, true);
    const d = shard.step('node1');
    expect(d).toMatchObject({ kind: 'onwmDowngrade', role: 'primary', writableWithoutSync: true, downstream: null, generation: 2 });
    expect(d.reason).toBe(
      "one-node-write mode is on by the operator's override; declaring generation 2 in one-node-write mode without sync \"node2\" and asyncs [node3], initWal kept at 0/0",
    );
    expect(shard.mustState()).toMatchObject({ onwmOverride: true, oneNodeWriteMode: true });
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: null, deposed: ['node9'], oneNodeWriteMode: true }));
    expect(shard.history.at(-1)).toBe('primary (node1) entered one-node-write mode, dropping node2, node3');
    // The former sync and async are unassigned: PostgreSQL stopped, no writes, and the shard rests.
    for (const id of ['node2', 'node3']) {
      expect(shard.step(id)).toMatchObject({ kind: 'none', position: 'unassigned', role: 'none', upstream: null, write: null });
    }
    expect(shard.settle()).toEqual([]);
  });

  it('the former sync never takes over in ONWM, even once the primary is gone', () => {
    const shard = normalShard();
    override(shard, true).step('node1');
    shard.rmPeer('node1');
    expect(shard.settle()).toEqual([]);
    expect(shard.peer('node2').last).toMatchObject({ kind: 'none', position: 'unassigned', write: null });
    expect(shard.topology()).toMatchObject({ generation: 2, primary: 'node1', sync: null, oneNodeWriteMode: true });
  });

  it('while the primary has not acted, the others keep their roles: the sync still takes over a dead primary, and the new primary then drops its sync', () => {
    const shard = normalShard();
    shard.catchUp('node2');
    override(shard, true).rmPeer('node1');
    expect(shard.step('node2')).toMatchObject({ kind: 'takeover' });
    expect(shard.topology()).toMatchObject({ generation: 2, primary: 'node2', sync: 'node3', deposed: ['node1'] });
    expect(shard.step('node2')).toMatchObject({ kind: 'onwmDowngrade', generation: 3 });
    expect(shard.topology()).toMatchObject({ generation: 3, primary: 'node2', sync: null, async: [], deposed: ['node1'], oneNodeWriteMode: true });
  });

  it('a freeze blocks the downgrade, and so does a primary whose PostgreSQL is not online', () => {
    const shard = normalShard();
    override(shard, true).freeze();
    expect(shard.step('node1')).toMatchObject({ kind: 'frozen', write: null, downstream: { id: 'node2' }, writableWithoutSync: false });
    expect(shard.peer('node1').last?.reason).toMatch(/^one-node-write mode is on by the operator's override, but the cluster is frozen/);
    shard.unfreeze().setPg('node1', { online: false });
    expect(shard.step('node1')).toMatchObject({ kind: 'waitForPostgres', write: null, downstream: { id: 'node2' } });
    shard.setPg('node1', { online: true });
    expect(shard.step('node1').kind).toBe('onwmDowngrade');
  });

  it('the downgrade drops a pending promote request', () => {
    const shard = normalShard();
    shard.promote({ id: 'node2', role: 'sync', generation: 1 });
    override(shard, true);
    // The sync acts on the request first if it evaluates first; here the primary does.
    expect(shard.step('node1').kind).toBe('onwmDowngrade');
    expect(shard.topology()).toMatchObject({ generation: 2, promote: false });
  });

  it('on beats a configuration that says off, also in an ONWM shard; off beats a configuration that says on', () => {
    const onwm = onwmShard();
    onwm.unfreeze().addPeer('node2');
    onwm.setConfig('node1', { oneNodeWriteMode: false });
    override(onwm, true);
    expect(onwm.step('node1')).toMatchObject({ kind: 'none', writableWithoutSync: true });

    // node1 is configured for ONWM, but the operator says off: a normal shard, no mismatch.
    const normal = normalShard();
    normal.setConfig('node1', { oneNodeWriteMode: true }).setConfig('node2', { oneNodeWriteMode: true });
    expect(normal.step('node1').kind).toBe('onwmMismatch');
    override(normal, false);
    expect(normal.step('node1')).toMatchObject({ kind: 'none', writableWithoutSync: false });
    expect(normal.step('node2')).toMatchObject({ kind: 'none', role: 'sync' });
    // And on, with the configuration on too: the primary acts (no mismatch while the override is set).
    override(normal, true);
    expect(normal.step('node1').kind).toBe('onwmDowngrade');
  });

  it('off: the ONWM primary configured for ONWM picks a sync at generation+1 with a fresh initWal; a freeze blocks it', () => {
    const shard = onwmShard(); // set up frozen, with node1 configured for ONWM
    shard.addPeer('node3').addPeer('node2').setPg('node1', { currentLsn: lsn(40) });
    override(shard, false);
    expect(shard.step('node1')).toMatchObject({ kind: 'frozen', write: null });
    expect(shard.peer('node1').last?.reason).toMatch(/^one-node-write mode is off by the operator's override, but the cluster is frozen/);
    shard.unfreeze();
    const d = shard.step('node1');
    expect(d).toMatchObject({ kind: 'onwmUpgrade', writableWithoutSync: false, downstream: { id: 'node2' } });
    expect(d.reason).toMatch(/^one-node-write mode is off by the operator's override and "node2" is active; declaring generation 2/);
    expect(shard.topology()).toEqual(topo({ generation: 2, primary: 'node1', sync: 'node2', async: ['node3'], initWal: lsn(40) }));
    expect(shard.mustState().onwmOverride).toBe(false);
  });

  it('a round trip: on, then off, then back to the configuration (off) with no further change', () => {
    const shard = normalShard();
    override(shard, true);
    expect(shard.settle()).toEqual(['primary (node1) entered one-node-write mode, dropping node2, node3']);
    shard.setPg('node1', { currentLsn: lsn(60) });
    override(shard, false);
    // Every other active peer is placed at once: node2 as sync, node3 as async.
    expect(shard.settle()).toEqual(['primary (node1) left one-node-write mode with sync (node2)']);
    expect(shard.topology()).toEqual(topo({ generation: 3, primary: 'node1', sync: 'node2', async: ['node3'], initWal: lsn(60) }));
    override(shard, undefined);
    expect(shard.settle()).toEqual([]);
    expect(shard.topology()).toMatchObject({ generation: 3, sync: 'node2', oneNodeWriteMode: false });
  });
});
