// The fence before a generation change holds while the change's write has no answer
// (src/peer/fencing.ts resolveUnknownWrite): a takeover whose proposal timed out may still
// commit, so the sync stays detached (and is not configured as the old primary's standby again)
// until the store shows the outcome. Found by the whole-shard simulator (seed 19644 with --operator).
import { describe, expect, it } from 'vitest';
import { ManateeError } from '../../src/errors.js';
import type { ClusterState, PeerInfo, PostgresStatus } from '../../src/model/index.js';
import { DecisionLog } from '../../src/peer/decision-log.js';
import { Evaluation, type EvaluationOptions } from '../../src/peer/evaluation.js';
import { FactsKeeper, FileFacts, NO_FACTS } from '../../src/peer/facts.js';
import { writeFailure } from '../../src/peer/fencing.js';
import type { Reconciler } from '../../src/peer/reconciler.js';
import type { Decision } from '../../src/peer/rules/index.js';
import { VersionMismatchError } from '../../src/store/errors.js';
import { capturingLogger } from '../../tools/lib/memory-peer.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

function peer(id: string): PeerInfo {
  return { id, host: id, pgUrl: `postgres://${id}:5432/postgres`, apiUrl: `http://${id}:5433` };
}

const A = peer('a');
const B = peer('b');
const C = peer('c');

/** Generation 1: a primary, b sync, c async. */
const G1: ClusterState = { generation: 1, primary: A, sync: B, async: [C], deposed: [], initWal: '0/0' };

const PG_STANDBY: PostgresStatus = {
  online: true, healthy: true, error: null, inRecovery: true, writable: false,
  currentLsn: null, receiveLsn: '0/100', replayLsn: '0/100', walReceiver: 'streaming', lastCheckAt: null, checkLatencyMs: null,
};

type Answer = 'commit' | Error;

/** A store with a script of answers to putState; a committed write becomes the next version. */
class FakeStore {
  state: ClusterState | null = G1;
  version = 1;
  readonly puts: { generation: number; expectVersion: number }[] = [];
  readonly answers: Answer[] = [];
  active: PeerInfo[] = [B, C]; // a's session is gone

  readState(): Promise<{ state: ClusterState | null; version: number }> {
    return Promise.resolve(this.getState());
  }
  getState(): { state: ClusterState | null; version: number } {
    return { state: this.state, version: this.version };
  }
  activePeers(): PeerInfo[] {
    return this.active;
  }
  activeTags(): Record<string, never> {
    return {};
  }
  putState(state: ClusterState, expectVersion: number): Promise<{ version: number }> {
    this.puts.push({ generation: state.generation, expectVersion });
    const a = this.answers.shift() ?? 'commit';
    if (a !== 'commit') return Promise.reject(a);
    if (expectVersion !== this.version) return Promise.reject(new VersionMismatchError(expectVersion, this.version));
    this.commit(state);
    return Promise.resolve({ version: this.version });
  }
  /** A write committed (ours late, or anybody's). */
  commit(state: ClusterState): void {
    this.state = state;
    this.version += 1;
  }
}

function timeout(): ManateeError {
  return new ManateeError('MANATEE_ERR_RAFT_TIMEOUT', 'proposal 13 not applied in time');
}

function setup(self: PeerInfo = B, pg: PostgresStatus = PG_STANDBY, opts: { store?: FakeStore; facts?: FactsKeeper } = {}): {
  evaluation: Evaluation; store: FakeStore; effects: string[]; reconciled: Decision[]; decisions: DecisionLog; logged: () => string[];
} {
  const store = opts.store ?? new FakeStore();
  const effects: string[] = [];
  const reconciled: Decision[] = [];
  const { logger: log, lines } = capturingLogger();
  const decisions = new DecisionLog({ log, metrics: { recordDecision: () => undefined } });
  const reconciler = {
    invalidate: () => { effects.push('invalidate'); },
    reconcile: (d: Decision) => {
      reconciled.push(d);
      effects.push(`reconcile ${d.role}`);
      return Promise.resolve({ action: 'none', retrySoon: false });
    },
  } as unknown as Reconciler;
  const o: EvaluationOptions = {
    self,
    config: { oneNodeWriteMode: false, autoRebuild: true },
    store,
    pgStatus: () => pg,
    postgres: {
      detachFromUpstream: () => { effects.push('detach'); return Promise.resolve(); },
      fenceWrites: () => { effects.push('fenceWrites'); return Promise.resolve(); },
      walPositions: () => Promise.resolve(pg.inRecovery === true
        ? { inRecovery: true, timeline: 1, currentLsn: null, flushLsn: null, receiveLsn: '0/100', replayLsn: '0/100', lastLsn: '0/100', walReceiver: null }
        : { inRecovery: false, timeline: 1, currentLsn: '0/200', flushLsn: '0/200', receiveLsn: null, replayLsn: null, lastLsn: '0/200', walReceiver: null }),
    },
    history: { current: () => ({ timeline: 1, switches: [] }), read: () => Promise.resolve({ timeline: 1, switches: [] }) },
    hasPreviousData: true,
    facts: opts.facts ?? new FactsKeeper({ where: 'memory', read: () => Promise.resolve(NO_FACTS), write: () => Promise.resolve() }, NO_FACTS),
    reconciler,
    sessions: { keep: () => Promise.resolve() } as unknown as EvaluationOptions['sessions'],
    leader: { check: () => undefined } as unknown as EvaluationOptions['leader'],
    streams: { check: () => Promise.resolve() } as unknown as EvaluationOptions['streams'],
    decisions,
    clock: { nowMs: () => Date.parse('2026-01-01T00:00:10Z') },
    log,
    kick: () => undefined,
    kickSoon: () => undefined,
  };
  const logged = (): string[] => lines().map((l) => String(l.decision)).filter((k) => /unknown|committed|superseded|settled/.test(k));
  return { evaluation: new Evaluation(o), store, effects, reconciled, decisions, logged };
}

describe('a takeover whose write has no answer', () => {
  it('keeps the sync detached and proposes the same write again, and takes the primary role once it commits', async () => {
    const { evaluation, store, effects, reconciled } = setup();
    store.answers.push(timeout());
    await expect(evaluation.evaluate()).rejects.toThrow(/not applied in time/);
    expect(effects).toEqual(['detach']); // fenced, and the fence is not lifted
    expect(evaluation.unresolvedWrite?.kind).toBe('takeover');
    expect(store.puts).toEqual([{ generation: 2, expectVersion: 1 }]);

    // a comes back: the rules alone would now make b a's sync again (and attach it to a).
    store.active = [A, B, C];
    store.answers.push(timeout());
    await evaluation.evaluate();
    expect(store.puts).toEqual([{ generation: 2, expectVersion: 1 }, { generation: 2, expectVersion: 1 }]);
    expect(effects).toEqual(['detach']); // still fenced: no reconcile, no invalidation
    expect(reconciled).toEqual([]);

    // The store answers the proposal made again: committed. b is the primary of generation 2.
    await evaluation.evaluate();
    expect(evaluation.unresolvedWrite).toBeNull();
    expect(store.getState().state?.primary.id).toBe('b');
    expect(reconciled.map((d) => `${d.role} g${d.generation ?? '-'}`)).toEqual(['primary g2']);
    expect(effects).toEqual(['detach', 'invalidate', 'reconcile primary']);
  });

  it('settles when the first proposal commits late: the store shows its state at the next version', async () => {
    const { evaluation, store, effects, reconciled } = setup();
    store.answers.push(timeout());
    await expect(evaluation.evaluate()).rejects.toThrow(/not applied in time/);
    store.commit({ generation: 2, primary: B, sync: C, async: [], deposed: [A], initWal: '0/100', initWalHistory: { timeline: 1, switches: [] } });
    await evaluation.evaluate();
    expect(store.puts).toHaveLength(1); // settled by the version, not proposed again
    expect(evaluation.unresolvedWrite).toBeNull();
    expect(reconciled.map((d) => d.role)).toEqual(['primary']);
    expect(effects).toEqual(['detach', 'invalidate', 'reconcile primary']);
  });

  it('lifts the fence when another write took the version it was based on (it can never commit)', async () => {
    const { evaluation, store, effects, reconciled } = setup();
    store.answers.push(timeout());
    await expect(evaluation.evaluate()).rejects.toThrow(/not applied in time/);
    // a, back, wrote first (a new async chain, same generation): b's write can no longer apply.
    store.active = [A, B, C];
    store.commit({ ...G1, async: [] });
    await evaluation.evaluate();
    expect(store.puts).toHaveLength(1);
    expect(evaluation.unresolvedWrite).toBeNull();
    expect(reconciled.map((d) => `${d.role} ${d.upstream?.id ?? '-'}`)).toEqual(['sync a']);
    expect(effects).toEqual(['detach', 'invalidate', 'reconcile sync']);
  });

  it('keeps the fence while Raft knows no leader (nothing is settled by a proposal that was never appended)', async () => {
    const { evaluation, store, effects } = setup();
    store.answers.push(timeout(), new ManateeError('MANATEE_ERR_RAFT_NO_LEADER', 'no Raft leader is known'));
    await expect(evaluation.evaluate()).rejects.toThrow(/not applied in time/);
    await evaluation.evaluate();
    expect(evaluation.unresolvedWrite?.kind).toBe('takeover');
    expect(effects).toEqual(['detach']);
  });

  it('lifts the fence when the same write on the same version is refused as invalid (the first is refused too)', async () => {
    const { evaluation, store, effects } = setup();
    store.answers.push(timeout(), new ManateeError('MANATEE_ERR_STORE_INVALID_STATE', 'bad state'));
    await expect(evaluation.evaluate()).rejects.toThrow(/not applied in time/);
    store.active = [A, B, C];
    await evaluation.evaluate();
    expect(evaluation.unresolvedWrite).toBeNull();
    expect(effects).toEqual(['detach', 'invalidate', 'reconcile sync']);
  });

  it('lifts the fence at once when the write definitely failed (no leader: never appended)', async () => {
    const { evaluation, store, effects } = setup();
    store.answers.push(new ManateeError('MANATEE_ERR_RAFT_NO_LEADER', 'no Raft leader is known'));
    await expect(evaluation.evaluate()).rejects.toThrow(/no Raft leader/);
    expect(evaluation.unresolvedWrite).toBeNull();
    expect(effects).toEqual(['detach', 'invalidate']);
  });
});

describe('what a fenced write without an answer says', () => {
  it('shows in /status as the last decision, says "still unsettled" once per distinct answer, and says how it was settled', async () => {
    const { evaluation, store, decisions, logged } = setup();
    store.answers.push(timeout());
    await expect(evaluation.evaluate()).rejects.toThrow(/not applied in time/);
    expect(decisions.record).toMatchObject({ kind: 'fencedWriteUnknown', generation: 2 });
    expect(decisions.record?.reason).toMatch(/the takeover write of generation 2 has no answer \(proposal 13 not applied in time\); it may still commit/);
    const noLeader = (): ManateeError => new ManateeError('MANATEE_ERR_RAFT_NO_LEADER', 'no Raft leader is known');
    store.answers.push(noLeader(), noLeader(), noLeader());
    for (let i = 0; i < 3; i++) await evaluation.evaluate();
    expect(logged()).toEqual(['takeover-unknown', 'takeover-still-unknown']);
    expect(decisions.record?.reason).toMatch(/is still unsettled \(no Raft leader is known\); keeping the fence/);
    await evaluation.evaluate();
    expect(logged()).toEqual(['takeover-unknown', 'takeover-still-unknown', 'takeover-committed']);
  });
});

describe('a fenced write without an answer, across a restart of the sitter', () => {
  /** The real facts file, in a fresh directory, with other facts in it already. */
  async function factsFile(): Promise<{ path: string; keeper: () => Promise<FactsKeeper>; onDisk: () => Promise<Record<string, unknown>>; cleanup: () => Promise<void> }> {
    const tmp = await makeTmpDir('unsettled');
    const path = join(tmp.path, 'sitter-facts.json');
    const file = new FileFacts(path);
    await file.write({ rebuiltFrom: { primaryId: 'a', generation: 1 }, initdbDone: true });
    return {
      path,
      // What a sitter that starts reads (sitter-wiring.ts: FileFacts.read, then its keeper).
      keeper: async () => new FactsKeeper(file, await file.read()),
      onDisk: async () => JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>,
      cleanup: () => tmp.cleanup(),
    };
  }

  it('is recorded in the facts file (beside the other facts) when it becomes unsettled, and cleared when settled', async () => {
    const f = await factsFile();
    try {
      const { evaluation, store } = setup(B, PG_STANDBY, { facts: await f.keeper() });
      store.answers.push(timeout());
      await expect(evaluation.evaluate()).rejects.toThrow(/not applied in time/);
      const recorded = await f.onDisk();
      expect(recorded).toMatchObject({ rebuiltFrom: { primaryId: 'a', generation: 1 }, initdbDone: true, unsettledWrite: { kind: 'takeover', write: { expectVersion: 1, newState: { generation: 2, primary: { id: 'b' } } } } });
      expect((await f.keeper()).current.unsettledWrite).toEqual(evaluation.unresolvedWrite);
      await evaluation.evaluate(); // proposed again: committed
      expect(evaluation.unresolvedWrite).toBeNull();
      // (rebuiltFrom is forgotten as b serves as primary: evaluation.ts, forget-rebuild.)
      expect(await f.onDisk()).toEqual({ rebuiltFrom: null, initdbDone: true, unsettledWrite: null });
    } finally {
      await f.cleanup();
    }
  });

  it('a restarted sitter that finds one keeps the fence, does nothing else, says why in /status, and settles it as before', async () => {
    const f = await factsFile();
    try {
      const before = setup(B, PG_STANDBY, { facts: await f.keeper() });
      before.store.answers.push(timeout());
      await expect(before.evaluation.evaluate()).rejects.toThrow(/not applied in time/);
      expect(before.effects).toEqual(['detach']);

      // The sitter restarts (its PostgreSQL keeps the fence in its files). a is back meanwhile:
      // the rules alone would make b a's sync again and attach it to a.
      const store = before.store;
      store.active = [A, B, C];
      const after = setup(B, PG_STANDBY, { store, facts: await f.keeper() });
      expect(after.evaluation.unresolvedWrite?.kind).toBe('takeover');
      expect(after.decisions.record).toMatchObject({ kind: 'fencedWriteUnknown', generation: 2 });
      expect(after.decisions.record?.reason).toBe(`restarted with the takeover write of generation 2 unsettled (recorded in ${f.path}): it may still commit, so the fence holds and nothing else is done until the store shows its outcome`);
      store.answers.push(new ManateeError('MANATEE_ERR_RAFT_NO_LEADER', 'no Raft leader is known'));
      await after.evaluation.evaluate();
      expect(after.effects).toEqual([]); // no reconcile, no invalidation: the fence holds
      expect(after.reconciled).toEqual([]);
      expect(store.puts).toEqual([{ generation: 2, expectVersion: 1 }, { generation: 2, expectVersion: 1 }]);
      expect(after.decisions.record?.reason).toMatch(/is still unsettled \(no Raft leader is known\); keeping the fence/);

      // The first proposal committed late: the store shows it, the fence gives way to the role in it.
      store.commit({ generation: 2, primary: B, sync: C, async: [], deposed: [A], initWal: '0/100', initWalHistory: { timeline: 1, switches: [] } });
      await after.evaluation.evaluate();
      expect(after.evaluation.unresolvedWrite).toBeNull();
      expect(after.reconciled.map((d) => `${d.role} g${d.generation ?? '-'}`)).toEqual(['primary g2']);
      expect(after.effects).toEqual(['invalidate', 'reconcile primary']);
      expect((await f.keeper()).current).toEqual({ rebuiltFrom: null, initdbDone: true });
    } finally {
      await f.cleanup();
    }
  });

  it('a record whose write was settled while the sitter was down gives way at the first evaluation', async () => {
    const f = await factsFile();
    try {
      const before = setup(B, PG_STANDBY, { facts: await f.keeper() });
      before.store.answers.push(timeout());
      await expect(before.evaluation.evaluate()).rejects.toThrow(/not applied in time/);
      // a wrote first (same generation): b's write can never commit.
      before.store.active = [A, B, C];
      before.store.commit({ ...G1, async: [] });
      const after = setup(B, PG_STANDBY, { store: before.store, facts: await f.keeper() });
      await after.evaluation.evaluate();
      expect(before.store.puts).toHaveLength(1);
      expect(after.evaluation.unresolvedWrite).toBeNull();
      expect(after.effects).toEqual(['invalidate', 'reconcile sync']);
      expect((await f.onDisk())['unsettledWrite']).toBeNull();
    } finally {
      await f.cleanup();
    }
  });

  it('when the record cannot be written, the evaluation fails with the file\'s error and the fence still holds', async () => {
    const failing = new FactsKeeper({ where: 'disk', read: () => Promise.resolve(NO_FACTS), write: () => Promise.reject(new ManateeError('MANATEE_ERR_FACTS_WRITE', 'disk: ENOSPC')) }, NO_FACTS);
    const { evaluation, store, effects } = setup(B, PG_STANDBY, { facts: failing });
    store.answers.push(timeout());
    await expect(evaluation.evaluate()).rejects.toThrow(/ENOSPC/);
    expect(evaluation.unresolvedWrite?.kind).toBe('takeover');
    expect(effects).toEqual(['detach']);
  });
});

describe('a new sync whose write has no answer', () => {
  it('keeps the primary\'s commits fenced, even when the old sync is back, until the write is settled', async () => {
    const primary: PostgresStatus = { ...PG_STANDBY, inRecovery: false, writable: true, currentLsn: '0/200', receiveLsn: null, replayLsn: null, walReceiver: null };
    const { evaluation, store, effects, reconciled } = setup(A, primary);
    store.active = [A, C]; // b's session is gone: a makes c its sync
    store.answers.push(timeout());
    await expect(evaluation.evaluate()).rejects.toThrow(/not applied in time/);
    expect(evaluation.unresolvedWrite?.kind).toBe('replaceSync');
    expect(effects).toEqual(['fenceWrites']);
    // b is back: the rules alone would keep b as the sync (and enable writes with it).
    store.active = [A, B, C];
    store.answers.push(timeout());
    await evaluation.evaluate();
    expect(effects).toEqual(['fenceWrites']);
    expect(reconciled).toEqual([]);
    await evaluation.evaluate(); // proposed again: committed; then b, back, is added as an async
    expect(store.getState().state?.sync?.id).toBe('c');
    expect(store.getState().state?.async.map((p) => p.id)).toEqual(['b']);
    await evaluation.evaluate();
    expect(reconciled.map((d) => `${d.role} ${d.downstream?.id ?? '-'}`)).toEqual(['primary c']);
    expect(effects).toEqual(['fenceWrites', 'invalidate', 'reconcile primary']);
  });
});

describe('writeFailure', () => {
  it('tells a refusal, a proposal never appended, and an unknown outcome apart', () => {
    expect(writeFailure(new VersionMismatchError(1, 2))).toBe('refused');
    expect(writeFailure(new ManateeError('MANATEE_ERR_STORE_INVALID_STATE', 'x'))).toBe('refused');
    expect(writeFailure(new ManateeError('MANATEE_ERR_RAFT_NO_LEADER', 'x'))).toBe('notProposed');
    expect(writeFailure(new ManateeError('MANATEE_ERR_RAFT_PROPOSAL_DROPPED', 'x'))).toBe('notProposed');
    expect(writeFailure(timeout())).toBe('unknown');
    expect(writeFailure(new ManateeError('MANATEE_ERR_RAFT_LEADER_CHANGED', 'x'))).toBe('unknown');
    expect(writeFailure(new Error('socket hang up'))).toBe('unknown');
    // The sitter is stopping: its PostgreSQL is stopped with the fence in place, not attached again first.
    expect(writeFailure(new ManateeError('MANATEE_ERR_STORE_STOPPED', 'the cluster store is stopped'))).toBe('unknown');
  });
});
