// How a new group starts. The initial members each begin with the same snapshot at index 1, term 1,
// holding the initial configuration. A member added later starts with an empty log and no
// configuration: since entry 1 never exists in anyone's log, the leader must send it a snapshot,
// and so it learns the full configuration (which the log alone would not tell it).
import type { HardState, NodeId, Snapshot } from './types.js';

export function bootstrapSnapshot(voters: readonly NodeId[], data = ''): { snapshot: Snapshot; hardState: HardState } {
  return {
    snapshot: { metadata: { index: 1, term: 1, confState: { voters: [...voters].sort(), learners: [] } }, data },
    hardState: { term: 1, vote: null, commit: 1 },
  };
}
