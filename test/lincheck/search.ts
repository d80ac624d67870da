// The search for a linearization of one partition's history: Wing & Gong's backtracking search with
// Lowe's just-in-time linearization and a cache of (linearized set, model state), as Porcupine does.
//
// Calls and returns are one doubly linked list in time order. The search walks it: at a call, it
// tries to linearize that operation now (the model accepts it from the current state, and the pair
// (set of linearized operations, new state) was never reached before); it then lifts the call and
// its return out of the list and starts again from the head. At a return, the operation that
// returned was not linearized yet, so the last choice was wrong: it backtracks. The history is
// linearizable when the list becomes empty. The cache prunes every path into a configuration that
// was already explored; a configuration is the set of linearized operations and the model's state.
import { ILLEGAL, type Model, type Operation } from './model.js';

export interface SearchLimits {
  /** performance.now() beyond which the search gives up with `unknown`. */
  readonly deadline: number;
  /** The cache of explored configurations never grows beyond this many entries (memory bound). */
  readonly maxCacheEntries: number;
}

export type SearchOutcome =
  | { readonly verdict: 'linearizable'; readonly steps: number }
  | { readonly verdict: 'not linearizable'; readonly steps: number }
  | { readonly verdict: 'unknown'; readonly steps: number; readonly reason: string };

interface Node {
  readonly id: number;
  /** For a call: its return. For a return: null. */
  readonly match: Node | null;
  prev: Node | null;
  next: Node | null;
}

interface CacheEntry<S> {
  readonly bits: Uint32Array;
  readonly state: S;
}

/** How often (in steps) the search looks at the clock. */
const CLOCK_EVERY_STEPS = 1024;

/** Zobrist keys: the hash of a set of operations is the xor of its members' keys (updated in O(1)). */
function zobristKeys(n: number, seed: number): Uint32Array {
  const keys = new Uint32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    keys[i] = (t ^ (t >>> 14)) >>> 0;
  }
  return keys;
}

/** The list of calls and returns in time order; at equal times calls come first (they overlap). */
function buildList<I, O>(ops: readonly Operation<I, O>[]): Node {
  const events: { time: number; isCall: boolean; id: number }[] = [];
  ops.forEach((op, id) => {
    if (!(op.returnMs >= op.callMs)) throw new Error(`operation ${id} returns (${op.returnMs}) before its call (${op.callMs})`);
    events.push({ time: op.callMs, isCall: true, id }, { time: op.returnMs, isCall: false, id });
  });
  events.sort((a, b) => (a.time !== b.time ? a.time - b.time : a.isCall !== b.isCall ? (a.isCall ? -1 : 1) : a.id - b.id));
  // Built back to front, so that each call can point at its (later) return.
  const returns = new Map<number, Node>();
  let next: Node | null = null;
  for (let k = events.length - 1; k >= 0; k--) {
    const e = events[k]!;
    const node: Node = { id: e.id, match: e.isCall ? returns.get(e.id)! : null, prev: null, next };
    if (!e.isCall) returns.set(e.id, node);
    if (next !== null) next.prev = node;
    next = node;
  }
  const head: Node = { id: -1, match: null, prev: null, next };
  if (next !== null) next.prev = head;
  return head;
}

/** Takes a call and its return out of the list (the operation is linearized). */
function lift(call: Node): void {
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

/** Puts them back, in the reverse order of lift. */
function unlift(call: Node): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

function sameBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Symmetry: two operations with the same input whose outcome is unknown (both return at +infinity)
 * are interchangeable once both are called, so the later-called one is linearized only after the
 * earlier one. Without this, every subset of the pending unknown writes is a configuration of its own.
 * Returns, for each operation, the index of its earlier twin, or -1.
 */
function unknownTwins<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[]): Int32Array {
  const twins = new Int32Array(ops.length).fill(-1);
  const last = new Map<string, number>();
  const order = ops.map((_, i) => i).filter((i) => ops[i]!.returnMs === Infinity);
  order.sort((a, b) => ops[a]!.callMs - ops[b]!.callMs || a - b);
  for (const i of order) {
    const op = ops[i]!;
    const identity = model.describeOperation(op.input, op.output);
    const prev = last.get(identity);
    if (prev !== undefined) twins[i] = prev;
    last.set(identity, i);
  }
  return twins;
}

/** Decides whether `ops` (one partition) is linearizable with respect to `model`, from its initial state. */
export function searchLinearization<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], limits: SearchLimits): SearchOutcome {
  const n = ops.length;
  const head = buildList(ops);
  const bits = new Uint32Array((n + 31) >>> 5);
  const z1 = zobristKeys(n, 0x1234567);
  const z2 = zobristKeys(n, 0x7654321);
  let h1 = 0;
  let h2 = 0;
  const cache = new Map<number, CacheEntry<S>[]>();
  let cacheSize = 0;
  const stack: { call: Node; state: S; forced: boolean }[] = [];
  const twinBefore = unknownTwins(model, ops);
  const readOnly = Uint8Array.from(ops, (op) => (model.isReadOnly?.(op.input, op.output) === true ? 1 : 0));
  let state = model.init();
  let entry = head.next;
  let steps = 0;

  const toggle = (id: number): void => {
    bits[id >>> 5]! ^= 1 << (id & 31);
    h1 ^= z1[id]!;
    h2 ^= z2[id]!;
  };
  /** Adds (bits, s) to the cache; false when it was there already (explored). */
  const remember = (s: S): boolean => {
    const key = ((h1 ^ Math.imul(model.hash(s), 0x9e3779b1)) >>> 0) + (h2 & 0x1fffff) * 0x100000000;
    const bucket = cache.get(key);
    if (bucket !== undefined) {
      for (const c of bucket) if (model.equal(c.state, s) && sameBits(c.bits, bits)) return false;
      bucket.push({ bits: bits.slice(), state: s });
    } else {
      cache.set(key, [{ bits: bits.slice(), state: s }]);
    }
    cacheSize++;
    return true;
  };

  while (entry !== null) {
    if (++steps % CLOCK_EVERY_STEPS === 0) {
      if (performance.now() > limits.deadline) return { verdict: 'unknown', steps, reason: `the time budget ran out after ${steps} search steps (${n} operations)` };
      if (cacheSize > limits.maxCacheEntries) return { verdict: 'unknown', steps, reason: `the cache of explored configurations passed ${limits.maxCacheEntries} entries (${n} operations)` };
    }
    let backtrack = entry.match === null;
    if (entry.match !== null) {
      const op = ops[entry.id]!;
      const twin = twinBefore[entry.id]!;
      const next = twin >= 0 && (bits[twin >>> 5]! & (1 << (twin & 31))) === 0 ? ILLEGAL : model.step(state, op.input, op.output);
      if (next !== ILLEGAL) {
        // An operation that never changes the state (a read) and is legal now can be moved to now in
        // any linearization from here: if none exists with it placed now, none exists at all.
        const forced = readOnly[entry.id] === 1;
        toggle(entry.id);
        if (remember(next)) {
          stack.push({ call: entry, state, forced });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        toggle(entry.id);
        backtrack = forced;
      }
      if (!backtrack) entry = entry.next;
    }
    if (backtrack) {
      // A return whose operation is not linearized yet (or a forced step into an explored, failed
      // configuration): every order tried from here is wrong. Forced steps were no choice: undo them too.
      let top = stack.pop();
      while (top?.forced === true) {
        toggle(top.call.id);
        unlift(top.call);
        top = stack.pop();
      }
      if (top === undefined) return { verdict: 'not linearizable', steps };
      toggle(top.call.id);
      state = top.state;
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { verdict: 'linearizable', steps };
}
