// Rule 1, initial setup: there is no cluster state yet.
// The active peer with the smallest id writes generation 1 when at least two peers are active
// (or it is configured for one-node-write mode) and it has no previous PostgreSQL data.
// Every other peer waits. A smallest peer with old data holds off: the state may have been
// lost, and its data may be the only copy of what that state protected; an operator decides.
import { type ClusterState, LSN_ZERO } from '../../model/index.js';
import { FIRST_TIMELINE_HISTORY } from './init-wal.js';
import { outcome } from './outcome.js';
import { name, names, type ActivePeers } from './peers.js';
import type { Decision, RulesInput } from './types.js';

export function decideSetup(input: RulesInput, active: ActivePeers): Decision {
  const peers = active.sorted();
  // A peer tagged nofailover is never the primary: the smallest id among the others sets up.
  const first = peers.find((p) => !active.noFailover(p));
  if (first === undefined || first.id !== input.self.id) {
    const anyTagged = peers.some((p) => active.noFailover(p));
    const tagged = active.noFailover(input.self) ? ' (I am tagged nofailover)' : '';
    return outcome(
      input,
      'waitForSetup',
      `no cluster state yet; the active peer with the smallest id${anyTagged ? ' that may be primary' : ''} (${first === undefined ? 'none' : name(first)}) sets it up, so I wait${tagged}`,
    );
  }
  if (input.pg.hasPreviousData) {
    return outcome(
      input,
      'holdOffExistingData',
      'no cluster state yet and I have the smallest id, but my PostgreSQL data directory already holds a database; holding off so that an operator decides',
    );
  }

  const nowIso = new Date(input.nowMs).toISOString();
  if (input.config.oneNodeWriteMode) {
    // As Joyent's Manatee: ONWM starts frozen, so that nothing tries to turn it into a
    // normal cluster until an operator unfreezes it.
    const newState: ClusterState = {
      generation: 1,
      primary: input.self,
      sync: null,
      async: [],
      deposed: [],
      initWal: LSN_ZERO,
      initWalHistory: FIRST_TIMELINE_HISTORY,
      oneNodeWriteMode: true,
      freeze: { date: nowIso, reason: 'manatee setup: one node write mode' },
    };
    return outcome(input, 'setupCluster', 'no cluster state yet and I am configured for one-node-write mode; setting up generation 1 with myself as the only primary', {
      write: { newState, summary: 'cluster setup for one-node-write mode' },
    });
  }

  const others = peers.filter((p) => p.id !== input.self.id);
  const sync = active.chooseSync(others);
  if (sync === undefined) {
    const why = others.length === 0
      ? 'I am the only active peer; waiting for a second peer'
      : `the other active peers ${names(others)} are tagged nofailover; waiting for a second peer that may be sync`;
    return outcome(input, 'waitForPeers', `no cluster state yet and ${why} to set up the cluster`);
  }
  const asyncs = others.filter((p) => p.id !== sync.id);
  const newState: ClusterState = {
    generation: 1,
    primary: input.self,
    sync,
    async: asyncs,
    deposed: [],
    initWal: LSN_ZERO,
    initWalHistory: FIRST_TIMELINE_HISTORY,
  };
  return outcome(
    input,
    'setupCluster',
    `no cluster state yet and I am the active peer with the smallest id, with no previous data; setting up generation 1 with myself as primary, ${name(sync)} as sync and asyncs ${names(asyncs)}`,
    { write: { newState, summary: 'cluster setup for normal (multi-peer) mode' } },
  );
}
