// The checker: judges a chaos run's history against the final contents of every peer.
// Pure: it takes the records and returns a verdict, so that its unit tests feed it hand-made histories.
import type { FaultRecord, FinalRead, Op, ReadOp, StatusSample, WriteOp } from './history.js';

/** Lists in the result are cut at this length (the counts stay exact): a summary stays readable. */
export const LIST_LIMIT = 200;

export interface CheckInput {
  readonly ops: readonly Op[];
  readonly faults: readonly FaultRecord[];
  /** The peer that was the writable primary at the final read, and what every peer held then. */
  readonly final: { readonly primary: string | null; readonly reads: readonly FinalRead[] };
  /** When the workload started and stopped: the bounds of the unavailability analysis. */
  readonly workloadStartMs: number;
  readonly workloadEndMs: number;
  /** A gap between successful writes at least this long is an unavailability window. */
  readonly gapThresholdMs: number;
  /** Status observations per client, in the order each client made them (informational). */
  readonly statusObservations?: readonly { readonly client: number; readonly atMs: number; readonly generation: number }[];
  readonly samples?: readonly StatusSample[];
  /** When other workloads' writes were acknowledged (they count for the unavailability analysis only). */
  readonly otherWriteCompletionsMs?: readonly number[];
}

export interface WriteRef {
  readonly id: number;
  readonly client: number;
  readonly peer: string;
  readonly generation: number;
  readonly timeline: number | null;
  readonly invokedAtMs: number;
  readonly completedAtMs: number;
}

/**
 * Evidence of two primaries: a write acknowledged on a newer timeline before a write on an older
 * timeline was even sent (both servers accepted writes), or two peers acknowledging writes on one timeline.
 */
export interface DoublePrimary {
  readonly newer: WriteRef;
  readonly older: WriteRef;
}

export interface UnavailabilityWindow {
  readonly startMs: number;
  readonly endMs: number;
  readonly durationMs: number;
  /** "kill-peer #3 (peer2)", or null when no fault was active or recent. */
  readonly cause: string | null;
}

export interface CheckResult {
  readonly valid: boolean;
  /** One line per kind of violation found; empty when valid. */
  readonly problems: readonly string[];
  readonly counts: {
    readonly writes: { invoked: number; ok: number; fail: number; unknown: number };
    readonly reads: { invoked: number; ok: number; fail: number; unknown: number };
    readonly faults: number;
  };
  readonly lost: { readonly count: number; readonly writes: readonly WriteRef[] };
  readonly missingOnReplicas: readonly { readonly peer: string; readonly count: number; readonly ids: readonly number[] }[];
  readonly replicasNotCaughtUp: readonly string[];
  readonly failedPresent: { readonly count: number; readonly writes: readonly (WriteRef & { where: readonly string[] })[] };
  readonly doublePrimary: { readonly count: number; readonly pairs: readonly DoublePrimary[] };
  readonly generationRegressions: { readonly count: number; readonly cases: readonly { client: number; from: number; to: number; id: number; atMs: number }[] };
  /** Status rounds in which a client saw a lower generation than it had seen before (stale status; informational). */
  readonly statusRegressions: number;
  readonly unknown: {
    readonly total: number;
    readonly committed: number;
    readonly notCommitted: number;
    readonly committedIds: readonly number[];
    /** Each unknown write (up to LIST_LIMIT) and how it resolved: present on the final primary or not. */
    readonly resolutions: readonly (WriteRef & { readonly error: string | null; readonly resolved: 'committed' | 'not committed' | 'no final read' })[];
  };
  readonly unavailability: { readonly windows: readonly UnavailabilityWindow[]; readonly longestMs: number; readonly totalMs: number };
}

function ref(w: WriteOp): WriteRef {
  return {
    id: w.id,
    client: w.client,
    peer: w.peer,
    generation: w.generation,
    timeline: w.timeline ?? null,
    invokedAtMs: w.invokedAtMs,
    completedAtMs: w.completedAtMs,
  };
}

function countOutcomes(ops: readonly (WriteOp | ReadOp)[]): { invoked: number; ok: number; fail: number; unknown: number } {
  const c = { invoked: ops.length, ok: 0, fail: 0, unknown: 0 };
  for (const o of ops) c[o.outcome]++;
  return c;
}

/**
 * Two servers accepted writes as primary at overlapping times when a write on an older timeline was
 * sent only after a write on a newer timeline had been acknowledged: the newer primary existed
 * already, and the older one still committed. Timelines are read inside each write's transaction,
 * and every promotion starts a new one, so this needs no trust in any status report.
 */
export function findDoublePrimary(okWrites: readonly WriteOp[]): DoublePrimary[] {
  const withTimeline = okWrites.filter((w) => w.timeline !== undefined);
  const byCompletion = [...withTimeline].sort((a, b) => a.completedAtMs - b.completedAtMs);
  const byInvocation = [...withTimeline].sort((a, b) => a.invokedAtMs - b.invokedAtMs);
  const found: DoublePrimary[] = [];
  let best: WriteOp | null = null; // highest timeline among writes acknowledged so far
  let i = 0;
  for (const w of byInvocation) {
    while (i < byCompletion.length && byCompletion[i]!.completedAtMs < w.invokedAtMs) {
      const c = byCompletion[i]!;
      if (best === null || c.timeline! > best.timeline!) best = c;
      i++;
    }
    if (best !== null && best.timeline! > w.timeline!) {
      found.push({ newer: ref(best), older: ref(w) });
    }
  }
  // One timeline belongs to one server: only a promotion starts a timeline, on the promoted peer.
  const owner = new Map<number, WriteOp>();
  for (const w of byCompletion) {
    const first = owner.get(w.timeline!);
    if (first === undefined) owner.set(w.timeline!, w);
    else if (first.peer !== w.peer) found.push({ newer: ref(w), older: ref(first) });
  }
  return found;
}

/** Gaps between successful writes, each attributed to the fault that was active (or last healed) at its start. */
export function findUnavailability(
  okWrites: readonly WriteOp[],
  faults: readonly FaultRecord[],
  startMs: number,
  endMs: number,
  thresholdMs: number,
  otherCompletionsMs: readonly number[] = [],
): UnavailabilityWindow[] {
  const times = [...okWrites.map((w) => w.completedAtMs), ...otherCompletionsMs].filter((t) => t >= startMs && t <= endMs).sort((a, b) => a - b);
  const points = [startMs, ...times, endMs];
  const windows: UnavailabilityWindow[] = [];
  for (let k = 1; k < points.length; k++) {
    const a = points[k - 1]!;
    const b = points[k]!;
    if (b - a < thresholdMs) continue;
    // The cause: the latest fault that started before the window ended and had not long been healed at its start.
    let cause: FaultRecord | null = null;
    for (const f of faults) {
      if (f.startedAtMs > b) continue;
      if (cause === null || f.startedAtMs > cause.startedAtMs) cause = f;
    }
    const label = cause === null ? null : `${cause.kind} #${cause.seq} (${cause.targets.join(', ') || 'all'})`;
    windows.push({ startMs: a, endMs: b, durationMs: b - a, cause: label });
  }
  return windows;
}

export function check(input: CheckInput): CheckResult {
  const writes = input.ops.filter((o): o is WriteOp => o.f === 'write');
  const reads = input.ops.filter((o): o is ReadOp => o.f === 'read');
  const ok = writes.filter((w) => w.outcome === 'ok');
  const failed = writes.filter((w) => w.outcome === 'fail');
  const unknown = writes.filter((w) => w.outcome === 'unknown');
  const problems: string[] = [];

  const primaryRead = input.final.reads.find((r) => r.peer === input.final.primary) ?? null;
  if (primaryRead === null) problems.push('no final read from a writable primary: the shard did not recover (stuck)');

  // 1. Every acknowledged write is on the final primary...
  const lostWrites = primaryRead === null ? [] : ok.filter((w) => !primaryRead.ids.has(w.id));
  if (lostWrites.length > 0) problems.push(`${lostWrites.length} acknowledged writes are missing on the final primary ${input.final.primary}`);

  // ...and on every replica that has caught up.
  const missingOnReplicas: { peer: string; count: number; ids: number[] }[] = [];
  const replicasNotCaughtUp: string[] = [];
  for (const r of input.final.reads) {
    if (r.peer === input.final.primary) continue;
    if (!r.caughtUp) {
      replicasNotCaughtUp.push(r.peer);
      continue;
    }
    const missing = ok.filter((w) => !r.ids.has(w.id)).map((w) => w.id);
    if (missing.length > 0) {
      missingOnReplicas.push({ peer: r.peer, count: missing.length, ids: missing.slice(0, LIST_LIMIT) });
      problems.push(`${missing.length} acknowledged writes are missing on the caught-up replica ${r.peer}`);
    }
  }

  // 2. No write reported failed is present anywhere: in a final read or in a replica read during the run.
  const seenByReads = new Map<number, string[]>();
  for (const r of reads) {
    if (r.outcome !== 'ok') continue;
    for (const id of r.found ?? []) {
      const where = seenByReads.get(id) ?? [];
      if (where.length < 4) where.push(`read by client ${r.client} on ${r.peer} at ${r.completedAtMs}`);
      seenByReads.set(id, where);
    }
  }
  const failedPresent: (WriteRef & { where: string[] })[] = [];
  for (const w of failed) {
    const where = input.final.reads.filter((r) => r.ids.has(w.id)).map((r) => `final ${r.peer}`);
    where.push(...(seenByReads.get(w.id) ?? []));
    if (where.length > 0) failedPresent.push({ ...ref(w), where });
  }
  if (failedPresent.length > 0) problems.push(`${failedPresent.length} writes reported failed are present`);

  // 3. No two primaries accepted writes in overlapping time.
  const doublePrimary = findDoublePrimary(ok);
  if (doublePrimary.length > 0) {
    problems.push(`${doublePrimary.length} pairs of writes show two primaries accepting writes at overlapping times`);
  }

  // 4. The generation that each client wrote under never went backwards.
  const regressions: { client: number; from: number; to: number; id: number; atMs: number }[] = [];
  const lastGen = new Map<number, number>();
  for (const w of [...writes].sort((a, b) => a.invokedAtMs - b.invokedAtMs)) {
    const prev = lastGen.get(w.client);
    if (prev !== undefined && w.generation < prev) regressions.push({ client: w.client, from: prev, to: w.generation, id: w.id, atMs: w.invokedAtMs });
    lastGen.set(w.client, Math.max(prev ?? w.generation, w.generation));
  }
  if (regressions.length > 0) problems.push(`${regressions.length} writes went to an older generation than their client had already written to`);
  let statusRegressions = 0;
  const lastSeen = new Map<number, number>();
  for (const o of input.statusObservations ?? []) {
    const prev = lastSeen.get(o.client);
    if (prev !== undefined && o.generation < prev) statusRegressions++;
    lastSeen.set(o.client, Math.max(prev ?? o.generation, o.generation));
  }

  // Unknown writes: how they resolved (present on the final primary = committed).
  const committedUnknown = primaryRead === null ? [] : unknown.filter((w) => primaryRead.ids.has(w.id));

  const windows = findUnavailability(ok, input.faults, input.workloadStartMs, input.workloadEndMs, input.gapThresholdMs, input.otherWriteCompletionsMs);
  return {
    valid: problems.length === 0,
    problems,
    counts: { writes: countOutcomes(writes), reads: countOutcomes(reads), faults: input.faults.length },
    lost: { count: lostWrites.length, writes: lostWrites.slice(0, LIST_LIMIT).map(ref) },
    missingOnReplicas,
    replicasNotCaughtUp,
    failedPresent: { count: failedPresent.length, writes: failedPresent.slice(0, LIST_LIMIT) },
    doublePrimary: { count: doublePrimary.length, pairs: doublePrimary.slice(0, LIST_LIMIT) },
    generationRegressions: { count: regressions.length, cases: regressions.slice(0, LIST_LIMIT) },
    statusRegressions,
    unknown: {
      total: unknown.length,
      committed: committedUnknown.length,
      notCommitted: primaryRead === null ? 0 : unknown.length - committedUnknown.length,
      committedIds: committedUnknown.slice(0, LIST_LIMIT).map((w) => w.id),
      resolutions: unknown.slice(0, LIST_LIMIT).map((w) => ({
        ...ref(w),
        error: w.error ?? null,
        resolved: primaryRead === null ? 'no final read' : primaryRead.ids.has(w.id) ? 'committed' : 'not committed',
      })),
    },
    unavailability: {
      windows: windows.slice(0, LIST_LIMIT * 5),
      longestMs: windows.reduce((m, w) => Math.max(m, w.durationMs), 0),
      totalMs: windows.reduce((s, w) => s + w.durationMs, 0),
    },
  };
}
