// Invariants of every state the rules write, checked where the state is made (the store checks
// them again where it is written: TIGER_STYLE's pairs). A broken one is a bug in the rules:
// it throws rather than let the sitter propose a corrupt state.
import { ManateeError } from '../../errors.js';
import type { ClusterState } from '../../model/index.js';

export class RulesInvariantError extends ManateeError {
  constructor(message: string) {
    super('MANATEE_ERR_RULES_INVARIANT', message);
  }
}

/** Throws RulesInvariantError unless `next` may follow `current` (null: no state yet). */
export function assertWritable(current: ClusterState | null, next: ClusterState): void {
  const seen = new Set<string>();
  for (const p of [next.primary, ...(next.sync === null ? [] : [next.sync]), ...next.async, ...next.deposed]) {
    if (seen.has(p.id)) throw new RulesInvariantError(`the rules made a state with peer ${p.id} in two places`);
    seen.add(p.id);
  }
  if (next.sync === null && next.oneNodeWriteMode !== true) {
    throw new RulesInvariantError('the rules made a state without a sync outside one-node-write mode');
  }
  const expected = current === null ? [1] : [current.generation, current.generation + 1];
  if (!expected.includes(next.generation)) {
    throw new RulesInvariantError(`the rules made generation ${next.generation} after ${current?.generation ?? 'no state'}`);
  }
  if (current !== null && next.generation !== current.generation && current.freeze !== undefined) {
    throw new RulesInvariantError(`the rules changed the generation of a frozen cluster (${current.generation} to ${next.generation})`);
  }
}
