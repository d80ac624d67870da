// The invariants that the rules check on every state they write (the store checks them again).
import { describe, expect, it } from 'vitest';
import { hasCode } from '../../src/errors.js';
import { assertWritable } from '../../src/peer/rules/index.js';
import type { ClusterState } from '../../src/model/index.js';
import { lsn, peerInfo } from './shard-sim.js';

const gen1: ClusterState = {
  generation: 1,
  primary: peerInfo('node1'),
  sync: peerInfo('node2'),
  async: [peerInfo('node3')],
  deposed: [],
  initWal: lsn(0),
};

function thrown(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return null;
}

describe('rules invariants', () => {
  it('accept a valid first state and valid successors', () => {
    expect(() => { assertWritable(null, gen1); }).not.toThrow();
    expect(() => { assertWritable(gen1, { ...gen1, async: [] }); }).not.toThrow();
    expect(() => { assertWritable(gen1, { ...gen1, generation: 2, sync: peerInfo('node3'), async: [] }); }).not.toThrow();
  });

  it('reject a peer in two places', () => {
    const err = thrown(() => { assertWritable(gen1, { ...gen1, async: [peerInfo('node2')] }); });
    expect(hasCode(err, 'MANATEE_ERR_RULES_INVARIANT')).toBe(true);
    expect(String(err)).toMatch(/peer node2 in two places/);
  });

  it('reject a missing sync outside one-node-write mode', () => {
    expect(String(thrown(() => { assertWritable(gen1, { ...gen1, sync: null }); }))).toMatch(/without a sync/);
    expect(() => { assertWritable(gen1, { ...gen1, generation: 2, sync: null, async: [], oneNodeWriteMode: true }); }).not.toThrow();
  });

  it('reject a generation that skips or goes back, and a first state that is not generation 1', () => {
    expect(String(thrown(() => { assertWritable(gen1, { ...gen1, generation: 3 }); }))).toMatch(/generation 3 after 1/);
    expect(String(thrown(() => { assertWritable(null, { ...gen1, generation: 2 }); }))).toMatch(/generation 2 after no state/);
  });

  it('reject a generation change of a frozen cluster', () => {
    const frozen = { ...gen1, freeze: { date: '2026-01-01T00:00:00.000Z', reason: 'test' } };
    expect(String(thrown(() => { assertWritable(frozen, { ...frozen, generation: 2, sync: peerInfo('node3'), async: [] }); }))).toMatch(/frozen/);
  });
});
