// The checker's entry point: partitions a history by key (P-compositionality), searches each
// partition within a shared time budget, and on a violation shrinks the failing partition to a
// minimal sub-history that is still not linearizable (the operations that cannot be ordered).
import type { Model, Operation, Verdict } from './model.js';
import { searchLinearization, type SearchLimits } from './search.js';

export interface CheckOptions {
  /** Wall-clock budget of the whole check; past it, the verdict is `unknown` (never a guess). */
  readonly timeBudgetMs?: number;
  /** Bound on the cache of explored configurations, per partition. */
  readonly maxCacheEntries?: number;
  /** Shrink a violation to a minimal failing sub-history (default true), within this extra budget. */
  readonly shrink?: boolean;
  readonly shrinkBudgetMs?: number;
}

export const DEFAULT_TIME_BUDGET_MS = 60_000;
export const DEFAULT_MAX_CACHE_ENTRIES = 4_000_000;
export const DEFAULT_SHRINK_BUDGET_MS = 10_000;

export interface PartitionResult {
  readonly key: string;
  readonly operations: number;
  readonly verdict: Verdict;
  readonly elapsedMs: number;
  readonly reason?: string;
}

export interface Counterexample<I, O> {
  /** The partition (key) it comes from. */
  readonly key: string;
  /** Operations of the failing partition before shrinking. */
  readonly originalOperations: number;
  /** A sub-history that is not linearizable; in time order of calls. */
  readonly operations: readonly Operation<I, O>[];
  /** The end of the shortest failing prefix (see prefixAt); null when the whole history was needed or not shrunk. */
  readonly prefixEndMs: number | null;
  /** True when no shorter prefix fails and no single operation can be dropped soundly (the shrink finished in its budget). */
  readonly minimal: boolean;
}

export interface CheckReport<I, O> {
  readonly verdict: Verdict;
  readonly elapsedMs: number;
  readonly operations: number;
  readonly partitions: readonly PartitionResult[];
  /** Why the verdict is `unknown`; null otherwise. */
  readonly reason: string | null;
  readonly counterexample: Counterexample<I, O> | null;
}

function limitsFor(deadline: number, o: CheckOptions): SearchLimits {
  return { deadline, maxCacheEntries: o.maxCacheEntries ?? DEFAULT_MAX_CACHE_ENTRIES };
}

/** The operations of each key; operations that fit any state and change none are left out. */
export function partition<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[]): Map<string, Operation<I, O>[]> {
  const parts = new Map<string, Operation<I, O>[]>();
  for (const op of ops) {
    if (model.isNoOp?.(op.input, op.output) === true) continue;
    const key = model.partitionKey?.(op.input) ?? '';
    const list = parts.get(key);
    if (list === undefined) parts.set(key, [op]);
    else list.push(op);
  }
  return parts;
}

/** Decides one sub-history: true when it is definitely not linearizable. */
function failsWithin<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], limits: SearchLimits): boolean {
  return searchLinearization(model, ops, limits).verdict === 'not linearizable';
}

/**
 * The history as it stood at time `t`: the operations called by then; those still in flight at `t`
 * have an unknown outcome (they may take effect later, or never). If a history is linearizable, so
 * is each of its prefixes: its operations that completed by `t` are linearized before any operation
 * called after `t`, and an unknown outcome fits wherever the operation was placed.
 */
export function prefixAt<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], t: number): Operation<I, O>[] {
  const unknown = model.unknownOutput;
  if (unknown === undefined) throw new Error(`model ${model.name} has no unknown output`);
  return ops
    .filter((o) => o.callMs <= t)
    .map((o) => (o.returnMs > t ? { ...o, output: unknown(o.input), returnMs: Infinity } : o))
    .filter((o) => model.isNoOp?.(o.input, o.output) !== true);
}

/**
 * Shrinks a non-linearizable history to a smaller one that is still not linearizable, by steps
 * that never turn a linearizable history into a non-linearizable one, so that the smaller history
 * shows the original violation and not one made by the shrinking (dropping a write outright would:
 * a read of its value would fail for that reason alone, and a read of nothing but that read is
 * "not linearizable" too):
 * 1. the shortest prefix (see prefixAt) that is not linearizable, found by bisection (a prefix of a
 *    linearizable prefix is linearizable);
 * 2. then read-only operations (reads, failed compare-and-sets: nothing depends on them) are dropped
 *    in halves, quarters, ... single ones, as delta debugging does;
 * 3. then acknowledged writes (and successful compare-and-sets) anywhere, the same way, when the
 *    model says which operations saw which write (Model.observes): a write is dropped only when no
 *    kept operation saw its value, and the rest is still not linearizable *with the dropped writes
 *    kept as unknown* (each may take effect at any moment after its call, or never). So a write
 *    stays when the violation needs its timing: when it was acknowledged before a stale read, or
 *    could have explained a failed compare-and-set had it come later. An unknown write only adds
 *    freedom, so the rest fails on its own too. Operations whose outcome is unknown are kept.
 * `minimal`: no shorter prefix fails and no single operation can be dropped so (within the budget).
 */
export function shrink<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  budgetMs: number,
  maxCacheEntries = DEFAULT_MAX_CACHE_ENTRIES,
): { operations: Operation<I, O>[]; minimal: boolean; prefixEndMs: number | null } {
  const deadline = performance.now() + budgetMs;
  const limits: SearchLimits = { deadline, maxCacheEntries };
  const fails = (candidate: readonly Operation<I, O>[]): boolean => candidate.length > 0 && failsWithin(model, candidate, limits);
  let current = [...ops].sort((a, b) => a.callMs - b.callMs);
  let prefixEndMs: number | null = null;
  if (model.unknownOutput !== undefined) {
    const times = [...new Set(current.flatMap((o) => (Number.isFinite(o.returnMs) ? [o.callMs, o.returnMs] : [o.callMs])))].sort((a, b) => a - b);
    // Invariant: the prefix at times[hi] fails (times.length stands for the whole history).
    let lo = 0;
    let hi = times.length;
    while (lo < hi) {
      if (performance.now() > deadline) return { operations: current, minimal: false, prefixEndMs };
      const mid = (lo + hi) >>> 1;
      if (fails(prefixAt(model, current, times[mid]!))) hi = mid;
      else lo = mid + 1;
    }
    if (hi < times.length) {
      current = prefixAt(model, current, times[hi]!);
      prefixEndMs = times[hi]!;
    }
  }
  const unknown = model.unknownOutput;
  const observes = model.observes?.bind(model);
  const readOnly = (o: Operation<I, O>): boolean => model.isReadOnly?.(o.input, o.output) === true;
  const acknowledgedWrite = (o: Operation<I, O>): boolean => !readOnly(o) && Number.isFinite(o.returnMs);
  /** The candidate with the dropped writes kept as unknown (read-only ones simply left out). */
  const relaxed = (kept: readonly Operation<I, O>[], dropped: readonly Operation<I, O>[]): Operation<I, O>[] => {
    if (unknown === undefined) return [...kept];
    const weakened = dropped
      .filter((o) => !readOnly(o))
      .map((o) => ({ ...o, output: unknown(o.input), returnMs: Infinity }))
      .filter((o) => model.isNoOp?.(o.input, o.output) !== true);
    return [...kept, ...weakened].sort((a, b) => a.callMs - b.callMs);
  };
  const seen = (kept: readonly Operation<I, O>[], dropped: readonly Operation<I, O>[]): boolean =>
    observes !== undefined && dropped.some((w) => !readOnly(w) && kept.some((o) => o !== w && observes(o.input, o.output, w.input)));
  const passes: ((o: Operation<I, O>) => boolean)[] = [readOnly];
  if (unknown !== undefined && observes !== undefined) passes.push(acknowledgedWrite);
  for (const pass of passes) {
    let chunk = Math.max(1, Math.ceil(current.filter(pass).length / 2));
    for (;;) {
      let changed = false;
      const candidates = current.filter(pass);
      for (let start = 0; start < candidates.length; ) {
        if (performance.now() > deadline) return { operations: current, minimal: false, prefixEndMs };
        const dropped = candidates.slice(start, start + chunk);
        const drop = new Set(dropped);
        const kept = current.filter((o) => !drop.has(o));
        if (kept.length > 0 && !seen(kept, dropped) && fails(relaxed(kept, dropped))) {
          current = kept;
          candidates.splice(start, chunk);
          changed = true;
        } else {
          start += chunk;
        }
      }
      if (chunk > 1) chunk = Math.max(1, Math.floor(chunk / 2));
      else if (!changed) break;
    }
  }
  return { operations: current, minimal: performance.now() <= deadline, prefixEndMs };
}

/**
 * Checks a history against a model. Partitions are searched smallest first, and the check stops at
 * the first partition that is not linearizable (a large partition may take long; a small one that
 * fails already decides). The verdict: not linearizable when any partition is not; otherwise
 * unknown when any partition ran out of budget; otherwise linearizable.
 */
export function checkOperations<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[], options: CheckOptions = {}): CheckReport<I, O> {
  const started = performance.now();
  const deadline = started + (options.timeBudgetMs ?? DEFAULT_TIME_BUDGET_MS);
  const parts = [...partition(model, ops)].sort((a, b) => a[1].length - b[1].length || (a[0] < b[0] ? -1 : 1));
  const results: PartitionResult[] = [];
  let failed: { key: string; ops: Operation<I, O>[] } | null = null;
  for (const [key, partOps] of parts) {
    const t0 = performance.now();
    const outcome = searchLinearization(model, partOps, limitsFor(deadline, options));
    results.push({
      key,
      operations: partOps.length,
      verdict: outcome.verdict,
      elapsedMs: performance.now() - t0,
      ...(outcome.verdict === 'unknown' ? { reason: outcome.reason } : {}),
    });
    if (outcome.verdict === 'not linearizable') {
      failed = { key, ops: partOps };
      break;
    }
  }
  let counterexample: Counterexample<I, O> | null = null;
  if (failed !== null) {
    const shrunk = options.shrink === false
      ? { operations: [...failed.ops].sort((a, b) => a.callMs - b.callMs), minimal: false, prefixEndMs: null }
      : shrink(model, failed.ops, options.shrinkBudgetMs ?? DEFAULT_SHRINK_BUDGET_MS, options.maxCacheEntries);
    counterexample = { key: failed.key, originalOperations: failed.ops.length, ...shrunk };
  }
  const unknown = results.filter((r) => r.verdict === 'unknown');
  const verdict: Verdict = failed !== null ? 'not linearizable' : unknown.length > 0 ? 'unknown' : 'linearizable';
  return {
    verdict,
    elapsedMs: performance.now() - started,
    operations: ops.length,
    partitions: results,
    reason: verdict === 'unknown' ? unknown.map((r) => `key ${JSON.stringify(r.key)}: ${r.reason ?? ''}`).join('; ') : null,
    counterexample,
  };
}

/** The counterexample as lines of text, one operation each, for summaries and error messages. */
export function describeCounterexample<S, I, O>(model: Model<S, I, O>, c: Counterexample<I, O>): string[] {
  const at = (t: number): string => (Number.isFinite(t) ? String(t) : '∞');
  return c.operations.map((op) => `client ${op.client}: ${model.describeOperation(op.input, op.output)} [${at(op.callMs)}, ${at(op.returnMs)}]`);
}
