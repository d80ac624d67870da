// Membership changes one server at a time (Raft dissertation §4.1): validation against the current
// configuration, and the resulting configuration. Pure functions.
import { ConfChangeInvalidError } from './errors.js';
import type { ConfChange, ConfState } from './types.js';

/** Throws ConfChangeInvalidError if `cc` cannot apply to `cs`. */
export function validateConfChange(cs: ConfState, cc: ConfChange): void {
  const isVoter = cs.voters.includes(cc.nodeId);
  const isLearner = cs.learners.includes(cc.nodeId);
  if (cc.nodeId === '') throw new ConfChangeInvalidError('empty node id');
  switch (cc.type) {
    case 'addLearner':
      if (isVoter || isLearner) throw new ConfChangeInvalidError(`${cc.nodeId} is already a member`);
      return;
    case 'promote':
      if (!isLearner) throw new ConfChangeInvalidError(`${cc.nodeId} is not a learner`);
      return;
    case 'remove':
      if (!isVoter && !isLearner) throw new ConfChangeInvalidError(`${cc.nodeId} is not a member`);
      if (isVoter && cs.voters.length === 1) throw new ConfChangeInvalidError(`${cc.nodeId} is the last voter`);
      return;
  }
}

/** The configuration after `cc`. An invalid change (already validated at proposal) leaves it as is. */
export function applyConfChangeTo(cs: ConfState, cc: ConfChange): ConfState {
  try {
    validateConfChange(cs, cc);
  } catch (err) {
    if (err instanceof ConfChangeInvalidError) return cs;
    throw err;
  }
  switch (cc.type) {
    case 'addLearner':
      return { voters: cs.voters.slice(), learners: [...cs.learners, cc.nodeId].sort() };
    case 'promote':
      return { voters: [...cs.voters, cc.nodeId].sort(), learners: cs.learners.filter((id) => id !== cc.nodeId) };
    case 'remove':
      return { voters: cs.voters.filter((id) => id !== cc.nodeId), learners: cs.learners.filter((id) => id !== cc.nodeId) };
  }
}

export function encodeConfChange(cc: ConfChange): string {
  return JSON.stringify(cc);
}

/** Parses the data of a confChange entry. Throws ConfChangeInvalidError on malformed data. */
export function decodeConfChange(data: string): ConfChange {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    throw new ConfChangeInvalidError('entry data is not JSON');
  }
  if (typeof v !== 'object' || v === null) throw new ConfChangeInvalidError('entry data is not an object');
  const o = v as Record<string, unknown>;
  const type = o['type'];
  const nodeId = o['nodeId'];
  const context = o['context'];
  if (type !== 'addLearner' && type !== 'promote' && type !== 'remove') throw new ConfChangeInvalidError('bad type');
  if (typeof nodeId !== 'string') throw new ConfChangeInvalidError('bad nodeId');
  if (context !== undefined && typeof context !== 'string') throw new ConfChangeInvalidError('bad context');
  return context === undefined ? { type, nodeId } : { type, nodeId, context };
}
