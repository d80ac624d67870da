// The checker on hand-made histories: each violation it exists for is caught, and what is
// allowed (unknown writes that vanished, a primary that comes back after a rebuild) is not flagged.
import { describe, expect, it } from 'vitest';
import { check, findUnavailability, type CheckInput } from './checker.js';
import type { FaultRecord, FinalRead, Op, ReadOp, WriteOp } from './history.js';

function w(id: number, outcome: WriteOp['outcome'], t: number, extra: Partial<WriteOp> = {}): WriteOp {
  return {
    f: 'write',
    client: 0,
    id,
    peer: 'p1',
    generation: 1,
    invokedAtMs: t,
    completedAtMs: t + 5,
    outcome,
    ...(outcome === 'ok' ? { timeline: 1 } : {}),
    ...extra,
  };
}

function final(primary: string, ids: number[], replicas: Record<string, { ids: number[]; caughtUp?: boolean }> = {}): CheckInput['final'] {
  const reads: FinalRead[] = [{ peer: primary, role: 'primary', caughtUp: true, ids: new Set(ids) }];
  for (const [peer, r] of Object.entries(replicas)) reads.push({ peer, role: 'sync', caughtUp: r.caughtUp ?? true, ids: new Set(r.ids) });
  return { primary, reads };
}

function input(ops: Op[], fin: CheckInput['final'], faults: FaultRecord[] = []): CheckInput {
  return { ops, faults, final: fin, workloadStartMs: 0, workloadEndMs: 1000, gapThresholdMs: 500 };
}

describe('checker', () => {
  it('accepts a history in which every acknowledged write survived', () => {
    const ops = [w(1, 'ok', 0), w(2, 'ok', 10), w(3, 'fail', 20), w(4, 'ok', 30)];
    const r = check(input(ops, final('p1', [1, 2, 4], { p2: { ids: [1, 2, 4] } })));
    expect(r.valid).toBe(true);
    expect(r.problems).toEqual([]);
    expect(r.counts.writes).toEqual({ invoked: 4, ok: 3, fail: 1, unknown: 0 });
  });

  it('catches an acknowledged write missing on the final primary', () => {
    const ops = [w(1, 'ok', 0), w(2, 'ok', 10), w(3, 'ok', 20)];
    const r = check(input(ops, final('p2', [1, 3])));
    expect(r.valid).toBe(false);
    expect(r.lost.count).toBe(1);
    expect(r.lost.writes[0]?.id).toBe(2);
    expect(r.problems[0]).toMatch(/1 acknowledged writes are missing on the final primary p2/);
  });

  it('catches an acknowledged write missing on a caught-up replica, but not on one still catching up', () => {
    const ops = [w(1, 'ok', 0), w(2, 'ok', 10)];
    const r = check(input(ops, final('p1', [1, 2], { p2: { ids: [1] }, p3: { ids: [], caughtUp: false } })));
    expect(r.valid).toBe(false);
    expect(r.missingOnReplicas).toEqual([{ peer: 'p2', count: 1, ids: [2] }]);
    expect(r.replicasNotCaughtUp).toEqual(['p3']);
  });

  it('catches a write reported failed that is present at the end', () => {
    const ops = [w(1, 'ok', 0), w(2, 'fail', 10)];
    const r = check(input(ops, final('p1', [1, 2])));
    expect(r.valid).toBe(false);
    expect(r.failedPresent.count).toBe(1);
    expect(r.failedPresent.writes[0]?.where).toEqual(['final p1']);
  });

  it('catches a write reported failed that a replica read returned during the run', () => {
    const read: ReadOp = { f: 'read', client: 9, peer: 'p3', asked: [2], invokedAtMs: 50, completedAtMs: 52, outcome: 'ok', found: [2] };
    const ops: Op[] = [w(1, 'ok', 0), w(2, 'fail', 10), read];
    const r = check(input(ops, final('p1', [1])));
    expect(r.valid).toBe(false);
    expect(r.failedPresent.writes[0]?.where[0]).toMatch(/read by client 9 on p3/);
  });

  it('does not count unknown writes as lost, and reports how they resolved', () => {
    const ops = [w(1, 'ok', 0), w(2, 'unknown', 10), w(3, 'unknown', 20), w(4, 'unknown', 30)];
    const r = check(input(ops, final('p1', [1, 3])));
    expect(r.valid).toBe(true);
    expect(r.lost.count).toBe(0);
    expect(r.unknown).toMatchObject({ total: 3, committed: 1, notCommitted: 2, committedIds: [3] });
    expect(r.unknown.resolutions.map((u) => [u.id, u.resolved])).toEqual([[2, 'not committed'], [3, 'committed'], [4, 'not committed']]);
  });

  it('catches a write acknowledged by a deposed primary after the new primary acknowledged one', () => {
    // p1 (timeline 1) was deposed; p2 was promoted (timeline 2) and acknowledged write 2 at t=105.
    // Write 3 was sent to p1 at t=110 and acknowledged: p1 still accepted writes as primary.
    const ops = [
      w(1, 'ok', 0, { peer: 'p1', timeline: 1, generation: 1 }),
      w(2, 'ok', 100, { peer: 'p2', timeline: 2, generation: 2, client: 1 }),
      w(3, 'ok', 110, { peer: 'p1', timeline: 1, generation: 1, client: 2 }),
    ];
    const r = check(input(ops, final('p2', [1, 2, 3])));
    expect(r.valid).toBe(false);
    expect(r.doublePrimary.count).toBe(1);
    expect(r.doublePrimary.pairs[0]?.newer.id).toBe(2);
    expect(r.doublePrimary.pairs[0]?.older.id).toBe(3);
  });

  it('allows a deposed primary\'s write that was sent before the failover and acknowledged late', () => {
    // Write 3 was in flight on p1 while p2 took over: the two may have committed in either order.
    const ops = [
      w(1, 'ok', 0, { peer: 'p1', timeline: 1 }),
      { ...w(3, 'ok', 90, { peer: 'p1', timeline: 1 }), completedAtMs: 200 },
      w(2, 'ok', 100, { peer: 'p2', timeline: 2, generation: 2 }),
    ];
    const r = check(input(ops, final('p2', [1, 2, 3])));
    expect(r.doublePrimary.count).toBe(0);
    expect(r.valid).toBe(true);
  });

  it('allows the old primary to serve again on a newer timeline after its rebuild and promotion', () => {
    const ops = [
      w(1, 'ok', 0, { peer: 'p1', timeline: 1 }),
      w(2, 'ok', 100, { peer: 'p2', timeline: 2, generation: 2 }),
      w(3, 'ok', 300, { peer: 'p1', timeline: 3, generation: 4 }),
    ];
    expect(check(input(ops, final('p1', [1, 2, 3]))).valid).toBe(true);
  });

  it('catches two peers acknowledging writes on the same timeline', () => {
    const ops = [w(1, 'ok', 0, { peer: 'p1', timeline: 1 }), w(2, 'ok', 100, { peer: 'p2', timeline: 1, client: 1 })];
    const r = check(input(ops, final('p1', [1, 2])));
    expect(r.doublePrimary.count).toBe(1);
    expect(r.valid).toBe(false);
  });

  it('catches a client whose writes went back to an older generation', () => {
    const ops = [w(1, 'ok', 0, { generation: 3 }), w(2, 'ok', 10, { generation: 5 }), w(3, 'fail', 20, { generation: 4 })];
    const r = check(input(ops, final('p1', [1, 2])));
    expect(r.valid).toBe(false);
    expect(r.generationRegressions.cases).toEqual([{ client: 0, from: 5, to: 4, id: 3, atMs: 20 }]);
  });

  it('counts stale status rounds without failing the run', () => {
    const inp = { ...input([w(1, 'ok', 0)], final('p1', [1])), statusObservations: [{ client: 0, atMs: 0, generation: 4 }, { client: 0, atMs: 5, generation: 3 }] };
    const r = check(inp);
    expect(r.statusRegressions).toBe(1);
    expect(r.valid).toBe(true);
  });

  it('is invalid when there was no final primary to read from (a stuck shard)', () => {
    const r = check(input([w(1, 'ok', 0)], { primary: null, reads: [] }));
    expect(r.valid).toBe(false);
    expect(r.problems[0]).toMatch(/stuck/);
  });

  it('reports windows without successful writes and the fault that caused each', () => {
    const fault: FaultRecord = { seq: 1, kind: 'kill-peer', targets: ['p1'], startedAtMs: 290, healedAtMs: 400, detail: '' };
    const ops = [w(1, 'ok', 0), w(2, 'ok', 100), w(3, 'ok', 200), w(4, 'ok', 900), w(5, 'unknown', 300)];
    const windows = findUnavailability(ops.filter((o) => o.outcome === 'ok'), [fault], 0, 1000, 500);
    expect(windows).toEqual([{ startMs: 205, endMs: 905, durationMs: 700, cause: 'kill-peer #1 (p1)' }]);
    const r = check(input(ops, final('p1', [1, 2, 3, 4]), [fault]));
    expect(r.unavailability.longestMs).toBe(700);
  });

  it('counts the acknowledged writes of another workload (the register) for availability', () => {
    // Without them, 205..905 is a window; a register write acknowledged at 550 splits it in two short gaps.
    const ops = [w(1, 'ok', 0), w(2, 'ok', 100), w(3, 'ok', 200), w(4, 'ok', 900)];
    expect(findUnavailability(ops, [], 0, 1000, 500, [550])).toEqual([]);
    const r = check({ ...input(ops, final('p1', [1, 2, 3, 4])), otherWriteCompletionsMs: [550] });
    expect(r.unavailability.windows).toEqual([]);
    expect(check(input(ops, final('p1', [1, 2, 3, 4]))).unavailability.longestMs).toBe(700);
  });

  it('reports a window at the end of the run when writes never came back', () => {
    const windows = findUnavailability([w(1, 'ok', 0)], [], 0, 1000, 500);
    expect(windows).toEqual([{ startMs: 5, endMs: 1000, durationMs: 995, cause: null }]);
  });
});
