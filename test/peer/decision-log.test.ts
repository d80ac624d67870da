// Every decision of the sitter, the rules' and the others (session, leader placement, stalled
// streams), is logged once with its reason, counted, and shown in /status as the last decision.
import { describe, expect, it } from 'vitest';
import { DecisionLog, SIDE_DECISION_SHOWN_MS } from '../../src/peer/decision-log.js';
import { decide, type Decision } from '../../src/peer/rules/index.js';
import type { PeerInfo } from '../../src/model/index.js';
import { capturingLogger } from '../../tools/lib/memory-peer.js';

const peer = (id: string): PeerInfo => ({ id, pgUrl: `postgres://${id}:5432/postgres`, apiUrl: `http://${id}:5433`, host: id });

function setup(): { decisions: DecisionLog; kinds: string[]; lines: () => Record<string, unknown>[] } {
  const { logger, lines } = capturingLogger();
  const kinds: string[] = [];
  return { decisions: new DecisionLog({ log: logger, metrics: { recordDecision: (k) => { kinds.push(k); } } }), kinds, lines };
}

const waitForPeers: Decision = decide({
  state: null, version: 0, active: [peer('a')], self: peer('a'),
  pg: { online: true, replayLsn: null, currentLsn: null, history: null, hasPreviousData: false, rebuiltFrom: null },
  nowMs: 0, config: { oneNodeWriteMode: false, autoRebuild: true },
});

describe('the decision log', () => {
  it('logs a rules decision once while it repeats, and counts every evaluation', () => {
    const { decisions, kinds, lines } = setup();
    decisions.rules(waitForPeers, 1000);
    decisions.rules(waitForPeers, 2000);
    expect(kinds).toEqual(['waitForPeers', 'waitForPeers']);
    expect(lines().filter((l) => l['decision'] === 'waitForPeers')).toHaveLength(1);
    expect(decisions.record).toEqual({ kind: 'waitForPeers', reason: waitForPeers.reason, generation: null, at: new Date(1000).toISOString() });
    expect(decisions.last).toBe(waitForPeers);
  });

  it('shows a decision of the session rule as the last decision, with its log line and reason', () => {
    const { decisions, kinds, lines } = setup();
    decisions.rules(waitForPeers, 1000);
    decisions.side({
      kind: 'closeSession', reason: 'PostgreSQL unhealthy for 6000 ms (limit 5000 ms)', generation: 4, logDecision: 'closeSession', level: 'warn',
      fields: { role: 'primary' }, message: 'closing this peer\'s session',
    }, 3000);
    expect(decisions.record).toEqual({ kind: 'closeSession', reason: 'PostgreSQL unhealthy for 6000 ms (limit 5000 ms)', generation: 4, at: new Date(3000).toISOString() });
    // The rules' own last decision (whose role says whether PostgreSQL should run) is unchanged.
    expect(decisions.last).toBe(waitForPeers);
    expect(kinds).toEqual(['waitForPeers', 'closeSession']);
    expect(lines().find((l) => l['decision'] === 'closeSession')).toMatchObject({ level: 40, reason: 'PostgreSQL unhealthy for 6000 ms (limit 5000 ms)', role: 'primary', msg: 'closing this peer\'s session' });
  });

  it('shows the rules\' repeated decision again once the other decision is SIDE_DECISION_SHOWN_MS old, and a new one at once', () => {
    const { decisions } = setup();
    decisions.rules(waitForPeers, 1000);
    decisions.side({ kind: 'moveRaftLeader', reason: 'I am the primary and the Raft leader', generation: 4, logDecision: 'moveRaftLeader', level: 'info', message: 'moving' }, 2000);
    decisions.rules(waitForPeers, 2000 + SIDE_DECISION_SHOWN_MS - 1);
    expect(decisions.record?.kind).toBe('moveRaftLeader');
    decisions.rules(waitForPeers, 2000 + SIDE_DECISION_SHOWN_MS);
    expect(decisions.record).toEqual({ kind: 'waitForPeers', reason: waitForPeers.reason, generation: null, at: new Date(1000).toISOString() });
    decisions.side({ kind: 'openSession', reason: 'this peer can serve', generation: null, logDecision: 'openSession', level: 'info', message: 'opened' }, 20_000);
    const other: Decision = { ...waitForPeers, kind: 'waitForSetup', reason: 'b sets the cluster up' };
    decisions.rules(other, 20_001);
    expect(decisions.record?.kind).toBe('waitForSetup');
  });
});
