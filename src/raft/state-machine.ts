// The interface between Raft (node.ts) and the replicated state machine that sits on it
// (src/store). Raft knows nothing of what the commands mean.

export interface AppliedEntry {
  readonly index: number;
  readonly term: number;
  /** The opaque command that was proposed (JSON text for the store). */
  readonly data: string;
}

export interface StateMachine {
  /**
   * Apply one committed command, in log order, exactly once per index. Must be deterministic:
   * every node applies the same commands and must reach the same state. The return value is
   * handed back to the proposer (node.propose resolves with it) when the proposal was local.
   */
  apply(entry: AppliedEntry): unknown;
  /** A serialization of the whole state, taken at the last applied index. */
  snapshot(): string;
  /** Replace the whole state with a snapshot's data. */
  restore(data: string): void;
}
