// Properties of the rules over random inputs (seeded; a failure prints its seed and input):
// every state the rules write is accepted by the store's validation, only the peers that
// may write do, and a decision is consistent with itself. Then random event sequences on a
// whole shard: every write is valid and the shard always comes to rest (no flapping).
import { describe, expect, it } from 'vitest';
import { type ClusterState, type PeerInfo, type PromoteRequest, type TimelineHistory, roleIn, compareLsn, historyFork } from '../../src/model/index.js';
import { stateShapeProblems, transitionProblems } from '../../src/store/validate.js';
import { decide, type Decision, type DecisionKind, type RulesInput } from '../../src/peer/rules/index.js';
import { Shard, lsn, peerInfo } from './shard-sim.js';
import { stateProblems } from './state-check.js';

/** mulberry32: a small seeded PRNG, so that any failure replays from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly next: () => number) {}
  chance(p: number): boolean {
    return this.next() < p;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

const WRITE_KINDS: ReadonlySet<DecisionKind> = new Set<DecisionKind>([
  'setupCluster',
  'appendAsyncs',
  'removeAsyncs',
  'updateAsyncs',
  'recordInitWalHistory',
  'replaceSync',
  'promoteAsync',
  'clearPromote',
  'skipPromote',
  'onwmUpgrade',
  'onwmDowngrade',
  'takeover',
  'promoteSync',
  'removeFromDeposed',
]);

const NOW_MS = Date.parse('2026-01-01T00:00:00.000Z');

/** A few timeline histories that share some WAL and part at some point (LSNs in the range of initWal's). */
const HISTORIES: readonly TimelineHistory[] = [
  { timeline: 1, switches: [] },
  { timeline: 2, switches: [{ timeline: 1, switchLsn: lsn(300) }] },
  { timeline: 2, switches: [{ timeline: 1, switchLsn: lsn(700) }] },
  { timeline: 3, switches: [{ timeline: 1, switchLsn: lsn(300) }, { timeline: 2, switchLsn: lsn(800) }] },
];

function randomState(g: Gen, ids: readonly string[]): ClusterState {
  const order = g.shuffle(ids);
  const generation = g.int(1, 6);
  const onwm = g.chance(0.15);
  const rest = order.slice(onwm ? 1 : 2);
  const async: PeerInfo[] = [];
  const deposed: PeerInfo[] = [];
  for (const id of rest) {
    const r = g.next();
    if (!onwm && r < 0.5) async.push(peerInfo(id));
    else if (r < 0.7) deposed.push(peerInfo(id));
  }
  const state: {
    -readonly [K in keyof ClusterState]: ClusterState[K];
  } = {
    generation,
    primary: peerInfo(order[0]!),
    sync: onwm ? null : peerInfo(order[1]!),
    async,
    deposed,
    initWal: lsn(g.int(0, 1000)),
  };
  // Mostly recorded; absent as in a state written before initWalHistory existed.
  if (g.chance(0.8)) state.initWalHistory = g.pick(HISTORIES);
  if (onwm) state.oneNodeWriteMode = true;
  // The operator's override (set-onwm): absent mostly, else either way, in either mode.
  if (g.chance(0.25)) state.onwmOverride = g.chance(0.5);
  if (g.chance(0.2)) state.freeze = { date: new Date(NOW_MS - 1000).toISOString(), reason: 'test' };
  if (g.chance(0.4)) {
    const role = g.pick(['sync', 'async'] as const);
    const asyncIndex = g.int(0, async.length + 1);
    // Half of the requests are current (the peer at the role it names, this generation, not
    // expired), so that the branches that act on them are reached; the rest are anything.
    const current = g.chance(0.5);
    const holder = role === 'sync' ? order[1] : async[asyncIndex]?.id;
    const request: PromoteRequest = {
      id: current && holder !== undefined ? holder : g.chance(0.9) ? g.pick(ids) : 'node99',
      role,
      generation: current ? generation : Math.max(1, generation + g.int(-1, 1)),
      expireTime: new Date(NOW_MS + (current ? 10_000 : g.int(-10_000, 10_000))).toISOString(),
      ...(role === 'async' || g.chance(0.2) ? { asyncIndex } : {}),
      // Some are scheduled switchovers, due or not yet.
      ...(g.chance(0.25) ? { at: new Date(NOW_MS + g.int(-5_000, 5_000)).toISOString() } : {}),
    };
    state.promote = request;
  }
  return state;
}

function randomInput(g: Gen): RulesInput {
  const ids = Array.from({ length: g.int(2, 6) }, (_, i) => `node${i + 1}`);
  const state = g.chance(0.15) ? null : randomState(g, ids);
  if (state !== null) expect(stateShapeProblems(state), 'the generator makes valid states').toEqual([]);
  const all = g.chance(0.3) ? [...ids, 'node9'] : ids;
  const active = all.filter(() => g.chance(0.7)).map(peerInfo);
  const self = peerInfo(g.pick(all));
  if (g.chance(0.8) && !active.some((p) => p.id === self.id)) active.push(self);
  const replay = g.chance(0.1) ? null : g.int(0, 1200);
  return {
    state,
    version: g.int(0, 100),
    active: g.shuffle(active),
    self,
    pg: {
      online: g.chance(0.8),
      replayLsn: replay === null ? null : lsn(replay),
      currentLsn: g.chance(0.1) ? null : lsn((replay ?? 0) + g.int(0, 100)),
      hasPreviousData: g.chance(0.3),
      rebuiltFrom: g.chance(0.3) ? { primaryId: g.pick(ids), generation: g.int(1, 6) } : null,
      // The state's own history half of the time, so that takeovers happen.
      history: g.chance(0.1) ? null : g.chance(0.5) && state?.initWalHistory !== undefined ? state.initWalHistory : g.pick(HISTORIES),
    },
    nowMs: NOW_MS,
    config: { oneNodeWriteMode: g.chance(0.15), autoRebuild: g.chance(0.8) },
  };
}

function checkDecision(input: RulesInput, d: Decision): void {
  const selfId = input.self.id;
  expect(d.reason.length).toBeGreaterThan(0);
  expect(d.reason).not.toContain('\n');
  expect(d.write !== null, `kind ${d.kind} has a write exactly when it is a writing kind`).toBe(WRITE_KINDS.has(d.kind));

  const result = d.write?.newState ?? input.state;
  const where = roleIn(result, selfId);
  expect(d.position).toBe(where.role);
  expect(d.generation).toBe(result?.generation ?? null);
  if (d.role === 'sync' || d.role === 'async') expect(d.upstream).not.toBeNull();
  if (d.role === 'primary' || d.role === 'none') expect(d.upstream).toBeNull();
  if (d.needsRebuild) expect(d.role).toBe('deposed');

  if (d.write === null) return;
  const before = input.state;
  const after = d.write.newState;
  expect(d.write.expectVersion).toBe(input.version);
  expect(d.write.summary.length).toBeGreaterThan(0);
  expect(stateShapeProblems(after), 'the store accepts the shape').toEqual([]);
  expect(transitionProblems(before, after), 'the store accepts the transition').toEqual([]);
  expect(stateProblems(before, after)).toEqual([]);
  expect(input.active.some((p) => p.id === selfId), 'only a peer with a session writes').toBe(true);

  if (before === null) {
    expect(d.kind).toBe('setupCluster');
    expect(after.primary.id).toBe(selfId);
    expect(input.pg.hasPreviousData).toBe(false);
    return;
  }
  const was = roleIn(before, selfId).role;
  expect(['primary', 'sync', 'deposed'], `a ${was} never writes`).toContain(was);
  if (was === 'deposed') {
    expect(d.kind).toBe('removeFromDeposed');
    expect(after).toEqual({ ...before, deposed: before.deposed.filter((p) => p.id !== selfId) });
  }
  if (after.generation !== before.generation) {
    expect(before.freeze, 'no generation change while frozen').toBeUndefined();
    expect(input.pg.online).toBe(true);
    const activeIds = new Set(input.active.map((p) => p.id));
    expect(activeIds.has(after.primary.id)).toBe(true);
    if (after.sync !== null) expect(activeIds.has(after.sync.id), 'a new generation has an active sync').toBe(true);
    if (after.primary.id !== before.primary.id) {
      // Only the sync takes over, only once caught up, and the old primary is deposed.
      expect(before.sync?.id).toBe(selfId);
      expect(input.pg.replayLsn).not.toBeNull();
      expect(compareLsn(input.pg.replayLsn!, before.initWal)).toBeGreaterThanOrEqual(0);
      expect(after.deposed.map((p) => p.id)).toContain(before.primary.id);
      // ...on the timeline history recorded with initWal: WAL up to initWal is common to both.
      if (before.initWalHistory !== undefined) {
        expect(input.pg.history).not.toBeNull();
        const fork = historyFork(input.pg.history!, before.initWalHistory);
        if (fork !== null) expect(compareLsn(fork.lsn, before.initWal), 'the sync holds the generation\'s WAL up to initWal').toBeGreaterThanOrEqual(0);
      }
    }
    if (after.generation !== before.generation && after.oneNodeWriteMode !== true) {
      // A new generation records the writer's own history with its initWal.
      expect(after.initWalHistory).toEqual(input.pg.history);
    }
    expect(after.promote, 'a new generation drops the promote request').toBeUndefined();
  }
}

describe('rules property: random inputs', () => {
  it('every write is valid for the store, made by a peer allowed to write, and each decision is consistent', () => {
    const seed = Number(process.env.RULES_SEED ?? 0x5eed);
    const g = new Gen(prng(seed));
    const kinds = new Map<DecisionKind, number>();
    for (let i = 0; i < 20_000; i++) {
      const input = randomInput(g);
      try {
        const d = decide(input);
        kinds.set(d.kind, (kinds.get(d.kind) ?? 0) + 1);
        checkDecision(input, d);
      } catch (err) {
        throw new Error(`seed ${seed}, iteration ${i}, input ${JSON.stringify(input)}: ${String(err)}`, { cause: err });
      }
    }
    // The generator reaches every branch that writes (so the checks above were exercised).
    for (const k of WRITE_KINDS) expect(kinds.get(k) ?? 0, `decisions of kind ${k}`).toBeGreaterThan(0);
  });
});

describe('rules property: random event sequences on a shard', () => {
  it('every write is valid and the shard always comes to rest', () => {
    const seed = Number(process.env.RULES_SEED ?? 0xfeed);
    const g = new Gen(prng(seed));
    const ids = ['node1', 'node2', 'node3', 'node4', 'node5'];
    let generationChanges = 0;
    for (let run = 0; run < 200; run++) {
      const shard = new Shard();
      const log: string[] = [];
      try {
        for (const id of ids.slice(0, g.int(2, 5))) shard.addPeer(id);
        shard.settle();
        for (let step = 0; step < 40; step++) {
          const id = g.pick(ids);
          const s = shard.state;
          const r = g.next();
          if (r < 0.25) {
            log.push(`rm ${id}`);
            shard.rmPeer(id);
          } else if (r < 0.5) {
            log.push(`add ${id}`);
            shard.addPeer(id);
          } else if (r < 0.65) {
            log.push(`catchUp ${id}`);
            if (s !== null && shard.knows(id)) shard.catchUp(id);
          } else if (r < 0.75) {
            log.push(`rebuild ${id}`);
            if (s !== null && shard.knows(id) && s.deposed.some((p) => p.id === id)) shard.rebuild(id);
          } else if (r < 0.8) {
            log.push('freeze/unfreeze');
            if (s !== null) {
              if (s.freeze === undefined) shard.freeze();
              else shard.unfreeze();
            }
          } else if (r < 0.84) {
            const mode = g.pick([true, false, undefined] as const);
            log.push(`set-onwm ${String(mode)}`);
            if (s !== null) {
              const { onwmOverride: _was, ...rest } = s;
              shard.setState(mode === undefined ? rest : { ...rest, onwmOverride: mode });
            }
          } else if (r < 0.9 && s !== null) {
            const role = g.pick(['sync', 'async'] as const);
            log.push(`promote ${id} ${role}`);
            shard.promote({ id, role, generation: s.generation, ...(role === 'async' ? { asyncIndex: g.int(0, 3) } : {}) });
          } else {
            log.push('time passes');
            shard.nowMs += 30_000;
          }
          const before = shard.state?.generation;
          shard.settle();
          if (shard.state?.generation !== before) generationChanges++;
        }
      } catch (err) {
        throw new Error(`seed ${seed}, run ${run}, events: ${log.join('; ')}; history: ${shard.history.join(' | ')}: ${String(err)}`, {
          cause: err,
        });
      }
    }
    expect(generationChanges).toBeGreaterThan(50);
  });
});
