// Building a Decision: where this peer stands in the resulting state, and how its PostgreSQL
// should run there. Every branch of the rules ends here, so the role derivation is in one place.
import { type ClusterState, roleIn } from '../../model/index.js';
import { assertWritable } from './invariants.js';
import type { Decision, DecisionKind, PgRole, RulesInput } from './types.js';

export interface OutcomeOptions {
  /** The state the decision leads to when it writes; otherwise the committed state is used. */
  readonly write?: { readonly newState: ClusterState; readonly summary: string } | null;
  readonly needsRebuild?: boolean;
}

export function outcome(input: RulesInput, kind: DecisionKind, reason: string, opts: OutcomeOptions = {}): Decision {
  const write = opts.write ?? null;
  if (write !== null) assertWritable(input.state, write.newState);
  const state = write !== null ? write.newState : input.state;
  const where = roleIn(state, input.self.id);
  let role: PgRole;
  switch (where.role) {
    case 'primary':
      role = 'primary';
      break;
    case 'sync':
      role = 'sync';
      break;
    case 'async':
      role = 'async';
      break;
    case 'deposed':
      role = 'deposed';
      break;
    case 'unassigned':
      role = 'none';
      break;
  }
  return {
    kind,
    reason,
    position: where.role,
    role,
    // A deposed peer rebuilds from the current primary; nobody else replicates from it.
    upstream: where.role === 'deposed' && state !== null ? state.primary : where.upstream,
    downstream: where.role === 'primary' && state !== null ? state.sync : null,
    writableWithoutSync: where.role === 'primary' && state?.oneNodeWriteMode === true,
    needsRebuild: opts.needsRebuild ?? false,
    generation: state?.generation ?? null,
    write: write === null ? null : { expectVersion: input.version, newState: write.newState, summary: write.summary },
  };
}
