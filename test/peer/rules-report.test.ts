// The glue between the rules and the sitter: PostgreSQL status in, log line and status record out.
import { describe, expect, it } from 'vitest';
import type { PostgresStatus } from '../../src/model/index.js';
import { decisionLogFields, decisionRecord, rulesPgStatus } from '../../src/peer/rules/index.js';
import { Shard } from './shard-sim.js';

const base: PostgresStatus = {
  online: true,
  healthy: true,
  error: null,
  inRecovery: false,
  writable: true,
  currentLsn: '0/3000',
  receiveLsn: null,
  replayLsn: null,
  walReceiver: null,
  lastCheckAt: null,
  checkLatencyMs: null,
};

describe('rules glue', () => {
  it('a primary reports its current WAL position; a standby its received position, or its replay position when it has none', () => {
    const none = { hasPreviousData: true, rebuiltFrom: null, history: { timeline: 2, switches: [{ timeline: 1, switchLsn: '0/2000' }] } };
    expect(rulesPgStatus(base, none)).toEqual({ online: true, replayLsn: null, currentLsn: '0/3000', history: none.history, hasPreviousData: true, rebuiltFrom: null });
    const standby = { ...base, inRecovery: true, currentLsn: null, receiveLsn: '0/2F00', replayLsn: '0/2E00' };
    expect(rulesPgStatus(standby, none)).toMatchObject({ replayLsn: '0/2E00', currentLsn: '0/2F00' });
    expect(rulesPgStatus({ ...standby, receiveLsn: null }, none).currentLsn).toBe('0/2E00');
    expect(rulesPgStatus({ ...base, online: false }, none)).toMatchObject({ online: false, history: null });
  });

  it('one log line names the decision, its reason, the role and the write', () => {
    const shard = new Shard().addPeer('node1').addPeer('node2').addPeer('node3');
    const d = shard.decide('node1');
    expect(decisionLogFields(d)).toEqual({
      decision: 'setupCluster',
      reason: d.reason,
      generation: 1,
      position: 'primary',
      role: 'primary',
      upstream: null,
      downstream: 'node2',
      needsRebuild: false,
      write: 'cluster setup for normal (multi-peer) mode',
      expectVersion: 0,
    });
    expect(decisionRecord(d, Date.parse('2026-01-01T00:00:01Z'))).toEqual({
      kind: 'setupCluster',
      reason: d.reason,
      generation: 1,
      at: '2026-01-01T00:00:01.000Z',
    });
  });
});
