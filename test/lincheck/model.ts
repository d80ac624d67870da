// What the linearizability checker judges: operations (a call, a return, an input and an output)
// against a sequential model of the object. Plain data and one interface; the search is in search.ts.

/** The model says an operation cannot take effect in a state with the output it returned. */
export const ILLEGAL: unique symbol = Symbol('illegal');
export type Illegal = typeof ILLEGAL;

/**
 * One completed or abandoned operation. `returnMs` is +Infinity when the outcome is unknown (a
 * timeout, a broken connection): it may take effect at any moment after its call, or never.
 */
export interface Operation<I, O> {
  readonly client: number;
  readonly input: I;
  readonly output: O;
  readonly callMs: number;
  readonly returnMs: number;
}

/** A sequential specification. States are values: `step` never mutates the state it is given. */
export interface Model<S, I, O> {
  readonly name: string;
  init(): S;
  /** The state after `input` returned `output` in `state`, or ILLEGAL when that cannot happen. */
  step(state: S, input: I, output: O): S | Illegal;
  /** Hash and equality of states, for the search's cache of (linearized set, state). */
  hash(state: S): number;
  equal(a: S, b: S): boolean;
  /**
   * P-compositionality: operations on independent parts (keys) of the object. Each part is
   * checked alone, and the whole is linearizable exactly when every part is.
   */
  partitionKey?(input: I): string;
  /** An operation that fits every state and changes none (a read that timed out): left out of the search. */
  isNoOp?(input: I, output: O): boolean;
  /**
   * An operation that leaves every state in which it is legal unchanged (a read, a failed
   * compare-and-set). The search linearizes it as soon as it is legal, with no alternatives.
   */
  isReadOnly?(input: I, output: O): boolean;
  /** The output of `input` when its outcome is unknown (it may take effect at any time after its call, or never). */
  readonly unknownOutput?: (input: I) => O;
  /**
   * Whether the operation (input, output) saw the value that `writer` wrote (a read that returned
   * it, a compare-and-set that succeeded from it). The shrinker keeps a write that a kept operation
   * saw; without this, it drops read-only operations only.
   */
  observes?(input: I, output: O, writer: I): boolean;
  describeOperation(input: I, output: O): string;
  describeState(state: S): string;
}

export type Verdict = 'linearizable' | 'not linearizable' | 'unknown';

/** Cheap, well-mixed 32-bit hash of a string (FNV-1a), for model states that are strings. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
