// Manatee's rules: one evaluation, from what this peer sees to what it should do.
// It follows Joyent's manatee-state-machine rule for rule, with ZooKeeper's sessions replaced
// by sessions in our Raft store. Pure: no I/O, no clock, no randomness.
import { type ClusterState, roleIn } from '../../model/index.js';
import { outcome } from './outcome.js';
import { ActivePeers, name } from './peers.js';
import { decideAsPrimary, effectiveOnwm } from './primary.js';
import { decideSetup } from './setup.js';
import { decideAsSync } from './sync.js';
import type { Decision, RulesInput } from './types.js';

export function decide(input: RulesInput): Decision {
  const active = new ActivePeers(input.active, input.tags);
  const state = input.state;

  // A peer without a session is dead to the others: anything it wrote could race with
  // the peers acting on its absence. It keeps its role and waits for its session.
  if (!active.has(input.self)) {
    return outcome(input, 'noSession', 'my own session is not active; making no change until it is');
  }
  if (state === null) return decideSetup(input, active);

  if (state.onwmOverride === undefined && effectiveOnwm(input, state) && state.oneNodeWriteMode !== true) {
    // Joyent's Manatee stopped here with a fatal error. We make no writes and keep the role,
    // so that a configuration mistake on a running primary does not also stop the database.
    // With the operator's override in the state, the same mismatch is no mistake but a request:
    // the primary acts on it (onwmDowngrade), and the other peers keep their roles meanwhile
    // (the sync may still take over a dead primary; the new primary then acts on it).
    return outcome(
      input,
      'onwmMismatch',
      'I am configured for one-node-write mode, but the cluster is in normal mode; making no change until the configuration is fixed',
    );
  }

  switch (roleIn(state, input.self.id).role) {
    case 'primary':
      return decideAsPrimary(input, state, active);
    case 'sync':
      return decideAsSync(input, state, active);
    case 'async':
      return decideAsAsync(input, state);
    case 'deposed':
      return decideAsDeposed(input, state, active);
    case 'unassigned':
      return outcome(
        input,
        'none',
        state.oneNodeWriteMode === true
          ? `no action: the cluster is in one-node-write mode, and its primary ${name(state.primary)} takes no other peers`
          : `no action: I am not in the async chain yet; primary ${name(state.primary)} adds me`,
      );
  }
}

/** Rule 4: asyncs never write. They follow their place in the chain. */
function decideAsAsync(input: RulesInput, state: ClusterState): Decision {
  const i = state.async.findIndex((p) => p.id === input.self.id);
  const upstream = roleIn(state, input.self.id).upstream;
  return outcome(
    input,
    'none',
    `no action: I am async ${i} of generation ${state.generation}, replicating from ${upstream === null ? 'nobody' : name(upstream)}`,
  );
}

/**
 * Rule 4's exception: a deposed peer writes once, to remove itself from `deposed` after its data
 * was rebuilt from the current primary. Then the primary appends it to the async chain.
 */
function decideAsDeposed(input: RulesInput, state: ClusterState, active: ActivePeers): Decision {
  const primary = state.primary;
  const rebuilt = input.pg.rebuiltFrom;
  // The rebuild vouches for this data only if it was made in this very generation: the primary's
  // id alone is not enough, since the same peer may be primary again after other failovers (its
  // timeline then differs from the one the rebuild followed). A generation changes with every
  // primary or sync change, so a rebuild of an older generation is simply done again (cheap:
  // pg_rewind or an incremental zfs receive).
  if (rebuilt !== null && rebuilt.primaryId === primary.id && rebuilt.generation === state.generation) {
    const newState: ClusterState = { ...state, deposed: state.deposed.filter((p) => p.id !== input.self.id) };
    return outcome(
      input,
      'removeFromDeposed',
      `I am deposed and my data was rebuilt from the current primary ${name(primary)} (in generation ${rebuilt.generation}); leaving deposed to rejoin as an async`,
      { write: { newState, summary: `${name(input.self)} no longer deposed (rebuilt from ${primary.id})` } },
    );
  }
  if (!input.config.autoRebuild) {
    return outcome(input, 'deposed', `I am deposed by generation ${state.generation}; automatic rebuild is off, so I wait for an operator's rebuild`);
  }
  if (!active.has(primary)) {
    return outcome(input, 'deposed', `I am deposed by generation ${state.generation}, but primary ${name(primary)} has no session to rebuild from; waiting`);
  }
  return outcome(input, 'deposed', `I am deposed by generation ${state.generation}; rebuilding my data from primary ${name(primary)}`, {
    needsRebuild: true,
  });
}
