// Manatee's rules as pure functions (DESIGN.md, "The cluster state and its rules").
export { decide } from './decide.js';
export { checkPromote, describePromote, type PromoteCheck } from './promote.js';
export { compareIds, sortById, ActivePeers } from './peers.js';
export type {
  Decision,
  DecisionKind,
  PgRole,
  RulesConfig,
  RulesInput,
  RulesPgStatus,
  StateWrite,
} from './types.js';
export { rulesPgStatus, decisionLogFields, decisionRecord } from './report.js';
export { assertWritable, RulesInvariantError } from './invariants.js';
export { decideSession, pgShouldRun, unhealthySince, type SessionDecision, type SessionDecisionKind, type SessionInput } from './session.js';
export { placeLeader, type LeaderMove, type LeaderPlacementInput } from './leader-placement.js';
export {
  decideStreamStall, StreamWatch, syncCannotTakeOver,
  type OwnWal, type StreamObservation, type StreamStallDecision, type StreamStallInput, type StreamVerdict,
} from './stream-watch.js';
