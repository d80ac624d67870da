// MembershipOperations over a running Raft node (src/raft/node.ts's RaftNode has these methods;
// the API names only their shape, so that it does not depend on how Raft is built).
// One server at a time: add = addLearner, then promote once the learner is in the configuration.
import { ManateeError } from '../errors.js';
import type { MembershipOperations, MembershipResult, RaftMembers } from './types.js';

export interface MembershipNode {
  status(): { readonly members: { readonly voters: readonly string[]; readonly learners: readonly string[] }; readonly addresses: Readonly<Record<string, string>> };
  addLearner(id: string, address: string, opts?: { timeoutMs?: number }): Promise<unknown>;
  promote(id: string, opts?: { timeoutMs?: number }): Promise<unknown>;
  remove(id: string, opts?: { timeoutMs?: number }): Promise<unknown>;
}

export class MembershipError extends ManateeError {}

/** Each step (one conf change) may take this long: an election, then a commit. */
const STEP_TIMEOUT_MS_DEFAULT = 15_000;

export function raftMembership(node: MembershipNode, opts: { stepTimeoutMs?: number } = {}): MembershipOperations {
  const timeoutMs = opts.stepTimeoutMs ?? STEP_TIMEOUT_MS_DEFAULT;
  const members = (): RaftMembers => {
    const st = node.status();
    return { voters: [...st.members.voters], learners: [...st.members.learners], addresses: { ...st.addresses } };
  };
  const result = (summary: string): MembershipResult => ({ summary, members: members() });
  return {
    members: () => Promise.resolve(members()),
    async add(id, address) {
      const now = members();
      if (now.voters.includes(id)) {
        throw new MembershipError('MANATEE_ERR_PEER_ALREADY_MEMBER', `${id} is already a voting member of the Raft group`);
      }
      // A learner left by an earlier add whose promotion failed is promoted now (the add is retried).
      if (!now.learners.includes(id)) await node.addLearner(id, address, { timeoutMs });
      await node.promote(id, { timeoutMs });
      return result(`added ${id} (${address}) to the Raft group as a voter`);
    },
    async remove(id) {
      const now = members();
      if (!now.voters.includes(id) && !now.learners.includes(id)) {
        throw new MembershipError('MANATEE_ERR_PEER_NOT_FOUND', `${id} is not a member of the Raft group (voters: ${now.voters.join(', ')})`);
      }
      await node.remove(id, { timeoutMs });
      return result(`removed ${id} from the Raft group`);
    },
  };
}
