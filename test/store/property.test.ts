// Seeded random runs of the state machine (TIGER_STYLE's simulator, for the store): random valid
// and invalid writes, stale versions, session traffic and garbage, applied to three machines:
// one from the start, one restored from a snapshot in the middle, one replaying everything.
// After every step the store's invariants and Manatee's generation rule are checked; at the end
// the three machines must hold byte-identical snapshots. A failure prints its seed.
import { describe, expect, it } from 'vitest';
import { ClusterStateMachine } from '../../src/store/state-machine.js';
import { encodeCommand, type StoreCommand } from '../../src/store/commands.js';
import { stateShapeProblems } from '../../src/store/validate.js';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';
import { peer } from './fixtures.js';

function mulberry32(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

const POOL = ['a', 'b', 'c', 'd', 'e'].map(peer);

function shuffle<T>(xs: T[], rnd: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function hex(n: number): string {
  return n.toString(16).toUpperCase();
}

/** A next state: mostly what Manatee's writers would do, sometimes something broken. */
function nextState(cur: ClusterState | null, rnd: () => number, lsn: { n: number }): unknown {
  const pick = (): PeerInfo[] => shuffle(POOL, rnd);
  if (cur === null) {
    const [p, s, ...rest] = pick();
    return { generation: 1 + (rnd() < 0.1 ? -1 : 0), primary: p, sync: s, async: rest.slice(0, Math.floor(rnd() * 3)), deposed: [], initWal: '0/0' };
  }
  const r = rnd();
  lsn.n += Math.floor(rnd() * 0x1000);
  const wal = `0/${hex(lsn.n)}`;
  if (r < 0.3) {
    // Takeover: the sync becomes primary, an async becomes sync.
    const nextSync = cur.async[0] ?? POOL.find((p) => p.id !== cur.primary.id && p.id !== cur.sync?.id)!;
    return { generation: cur.generation + 1, primary: cur.sync ?? cur.primary, sync: nextSync, async: cur.async.filter((p) => p.id !== nextSync.id), deposed: cur.sync === null ? cur.deposed : [...cur.deposed.filter((p) => p.id !== nextSync.id), cur.primary], initWal: wal };
  }
  if (r < 0.55) {
    // Same generation: the primary rearranges the asyncs, or a deposed peer leaves.
    const used = new Set([cur.primary.id, cur.sync?.id, ...cur.deposed.map((p) => p.id)]);
    const free = POOL.filter((p) => !used.has(p.id));
    return { ...cur, async: shuffle(free, rnd).slice(0, Math.floor(rnd() * (free.length + 1))), deposed: rnd() < 0.3 ? [] : cur.deposed };
  }
  if (r < 0.65) return { ...cur, freeze: cur.freeze === undefined ? { date: '2026-01-01T00:00:00.000Z', reason: 'sim' } : undefined };
  // Broken on purpose: each must be rejected.
  const broken: unknown[] = [
    { ...cur, sync: cur.primary },
    { ...cur, generation: cur.generation + 2 },
    { ...cur, generation: cur.generation + 1 },
    { ...cur, initWal: 'zz' },
    { ...cur, sync: null },
    { ...cur, async: [...cur.async, cur.primary] },
    { ...cur, primary: cur.sync ?? cur.primary, sync: cur.primary },
    { ...cur, generation: cur.generation + 1, primary: cur.sync, sync: cur.primary, initWal: '0/0', deposed: [] },
  ];
  return broken[Math.floor(rnd() * broken.length)];
}

function checkInvariants(m: ClusterStateMachine, prevVersion: number, accepted: boolean, before: ClusterState | null): void {
  expect(m.version).toBe(accepted ? prevVersion + 1 : prevVersion);
  const h = m.history();
  for (let i = 1; i < h.length; i++) expect(h[i]!.version).toBeGreaterThan(h[i - 1]!.version);
  if (m.state !== null) {
    expect(stateShapeProblems(m.state)).toEqual([]);
    expect(h[h.length - 1]!.state).toEqual(m.state);
  }
  if (accepted && before !== null && m.state !== null) {
    const changed = before.primary.id !== m.state.primary.id || (before.sync?.id ?? null) !== (m.state.sync?.id ?? null);
    expect(m.state.generation).toBe(changed ? before.generation + 1 : before.generation);
    if (changed) expect(before.freeze).toBeUndefined();
  }
  const ids = m.sessions().map((s) => s.peer.id);
  expect(new Set(ids).size).toBe(ids.length);
}

function run(seed: number, steps: number): void {
  const rnd = mulberry32(seed);
  const lsn = { n: 0 };
  const a = new ClusterStateMachine({ historyLimit: 50 });
  const b = new ClusterStateMachine({ historyLimit: 50 });
  const log: string[] = [];
  const snapAt = 1 + Math.floor(rnd() * steps);
  let bStarted = false;
  let accepted = 0;
  for (let index = 1; index <= steps; index++) {
    const r = rnd();
    let cmd: StoreCommand | string;
    const p = POOL[Math.floor(rnd() * POOL.length)]!;
    const s = a.session(p.id);
    const time = '2026-01-01T00:00:00.000Z';
    if (r < 0.4) {
      const stale = rnd() < 0.1;
      cmd = { op: 'putState', expectVersion: stale ? Math.max(0, a.version - 1 - Math.floor(rnd() * 2)) : a.version, state: nextState(a.state, rnd, lsn), time };
    } else if (r < 0.55) cmd = { op: 'openSession', peer: p, time };
    else if (r < 0.8) cmd = { op: 'keepalive', peerId: p.id, openedIndex: s?.openedIndex ?? 1 };
    else if (r < 0.87) cmd = { op: 'closeSession', peerId: p.id, openedIndex: s?.openedIndex ?? 1, time };
    else if (r < 0.97) cmd = { op: 'expireSession', peerId: p.id, openedIndex: s?.openedIndex ?? 1, keepaliveIndex: Math.max(1, (s?.keepaliveIndex ?? 1) - (rnd() < 0.5 ? 1 : 0)), reason: 'sim', time };
    else cmd = rnd() < 0.5 ? '{"op":"nope"}' : '';
    const data = typeof cmd === 'string' ? cmd : encodeCommand(cmd);
    log.push(data);
    const before = a.state;
    const prevVersion = a.version;
    const res = a.apply({ index, term: 1, data });
    const ok = res.ok && res.op === 'putState';
    if (ok) accepted++;
    checkInvariants(a, prevVersion, ok, before);
    if (bStarted) b.apply({ index, term: 1, data });
    if (index === snapAt) {
      b.restore(a.snapshot());
      bStarted = true;
    }
  }
  const c = new ClusterStateMachine({ historyLimit: 50 });
  log.forEach((data, i) => c.apply({ index: i + 1, term: 1, data }));
  expect(b.snapshot()).toBe(a.snapshot());
  expect(c.snapshot()).toBe(a.snapshot());
  expect(accepted).toBeGreaterThan(0);
}

describe('seeded random runs of the state machine', () => {
  const base = Number(process.env['STORE_SEED'] ?? Date.now() % 1_000_000);
  for (let k = 0; k < 20; k++) {
    const seed = base + k;
    it(`seed ${seed}: invariants hold and snapshot, restore and replay agree`, () => {
      try {
        run(seed, 400);
      } catch (err) {
        console.error(`store simulation failed; replay with STORE_SEED=${seed}`);
        throw err;
      }
    });
  }
});
