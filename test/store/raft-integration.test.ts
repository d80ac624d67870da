// The store on three real RaftNodes (level storage in temp dirs, TCP on loopback): linearizable
// reads on a follower, session expiry by the leader, grace after the leader is killed, and
// snapshots restored by a restarted node.
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { RaftNode } from '../../src/raft/node.js';
import { ClusterStateMachine, type PeersChange } from '../../src/store/state-machine.js';
import { ClusterStore } from '../../src/store/store.js';
import { performance } from 'node:perf_hooks';
import { raftConsensus } from '../../src/store/raft-consensus.js';
import { LeaseClock } from '../../src/peer/lease-fence.js';
import { VersionMismatchError } from '../../src/store/errors.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { gen1, peer } from './fixtures.js';

const SECRET = 'store-integration-secret-0123456789';
const SESSION_TIMEOUT_MS = 1000;
const logger = pino({ level: process.env['STORE_TEST_LOG'] ?? 'silent' });

interface Member {
  id: string;
  dir: string;
  port: number;
  machine: ClusterStateMachine;
  node: RaftNode | null;
  store: ClusterStore | null;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function makeShard(ids: string[], opts: { snapshotEveryEntries?: number } = {}) {
  const tmp = await makeTmpDir('store-raft');
  cleanups.push(tmp.cleanup);
  const members = new Map<string, Member>();
  for (const id of ids) {
    members.set(id, { id, dir: `${tmp.path}/${id}`, port: await freePort(), machine: new ClusterStateMachine(), node: null, store: null });
  }
  const peers = Object.fromEntries([...members.values()].map((m) => [m.id, `127.0.0.1:${m.port}`]));

  async function start(id: string): Promise<ClusterStore> {
    const m = members.get(id)!;
    m.machine = new ClusterStateMachine(); // a restarted process starts empty and replays
    const node = await RaftNode.open({
      id,
      dataDir: m.dir,
      peers,
      initialVoters: ids,
      secret: SECRET,
      listen: { host: '127.0.0.1', port: m.port },
      stateMachine: m.machine,
      logger,
      tickMs: 25,
      electionTicks: 10,
      heartbeatTicks: 1,
      requestTimeoutMs: 5000,
      snapshotEveryEntries: opts.snapshotEveryEntries ?? 10_000,
      keepEntriesAfterSnapshot: 5,
    });
    await node.start();
    const store = new ClusterStore({
      machine: m.machine,
      consensus: raftConsensus(node),
      sessionTimeoutMs: SESSION_TIMEOUT_MS,
      log: logger.child({ peer: id }),
    });
    store.start();
    m.node = node;
    m.store = store;
    return store;
  }

  /** SIGKILL-like: the store's timers stop and the node closes without handing leadership over. */
  async function kill(id: string): Promise<void> {
    const m = members.get(id)!;
    m.store?.stop();
    await m.node?.close();
    m.store = null;
    m.node = null;
  }

  cleanups.push(async () => {
    for (const id of members.keys()) await kill(id);
  });

  function store(id: string): ClusterStore {
    const s = members.get(id)!.store;
    if (s === null) throw new Error(`${id} is not running`);
    return s;
  }

  /** A leader that every running member among `among` knows (an election can end before the last node hears of it). */
  async function leader(among = [...members.keys()]): Promise<string> {
    return waitFor(
      'a Raft leader known to every running member',
      () => {
        const l = among.find((id) => members.get(id)!.node?.status().role === 'leader');
        if (l === undefined) return undefined;
        return among.every((id) => { const n = members.get(id)!.node; return n === null || n.status().leader === l; }) ? l : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 25 },
    );
  }

  for (const id of ids) await start(id);
  return { members, start, kill, store, leader };
}

function activeIds(store: ClusterStore): string[] {
  return store.activePeers().map((p) => p.id).sort();
}

describe('ClusterStore on three RaftNodes', () => {
  it('writes on the leader and reads linearizably on a follower; a stale CAS from a follower loses', async () => {
    const sh = await makeShard(['a', 'b', 'c']);
    const l = await sh.leader();
    const f = ['a', 'b', 'c'].find((id) => id !== l)!;
    await expect(sh.store(l).putState(gen1(), 0)).resolves.toEqual({ version: 1 });
    expect(await sh.store(f).readState()).toEqual({ state: gen1(), version: 1 });
    // A follower's write goes through Raft (forwarded to the leader) and is checked there.
    await expect(sh.store(f).putState(gen1({ async: [] }), 1)).resolves.toEqual({ version: 2 });
    const err = await sh.store(l).putState(gen1(), 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VersionMismatchError);
    expect(err).toMatchObject({ currentVersion: 2 });
    const other = ['a', 'b', 'c'].find((id) => id !== l && id !== f)!;
    await sh.store(other).readState();
    expect(sh.store(other).history().map((h) => h.version)).toEqual([1, 2]);
  });

  it('keepalives are messages to the leader, not log entries: sessions live for many timeouts with no entry written', async () => {
    const sh = await makeShard(['a', 'b', 'c']);
    await sh.leader();
    for (const id of ['a', 'b', 'c']) await sh.store(id).openSession(peer(id));
    await waitFor('three active peers everywhere', () => ['a', 'b', 'c'].every((id) => activeIds(sh.store(id)).length === 3), {
      timeoutMs: 10_000,
      intervalMs: 25,
    });
    const applied: string[] = [];
    const heard = new Map<string, number>();
    for (const m of sh.members.values()) {
      m.node!.on('applied', (e) => applied.push(e.data));
      m.node!.on('leaderMessage', (msg) => heard.set(msg.from, (heard.get(msg.from) ?? 0) + 1));
    }
    const until = Date.now() + 4 * SESSION_TIMEOUT_MS;
    await waitFor('4 session timeouts', () => Date.now() >= until, { timeoutMs: 20_000, intervalMs: 50 });
    for (const id of ['a', 'b', 'c']) expect(activeIds(sh.store(id))).toEqual(['a', 'b', 'c']);
    // Keepalives every sessionTimeoutMs/3 from each peer reached the leader (whoever led)...
    for (const id of ['a', 'b', 'c']) expect(heard.get(id) ?? 0).toBeGreaterThanOrEqual(6);
    // ...and none of them is in the log (an election's empty entry may be).
    expect(applied.filter((d) => d.includes('"op":"keepalive"'))).toEqual([]);
  });

  it('acknowledged keepalives renew each peer\'s lease, and a peer cut off sees its lease end before the leader expires its session', async () => {
    const sh = await makeShard(['a', 'b', 'c']);
    const l = await sh.leader();
    for (const id of ['a', 'b', 'c']) await sh.store(id).openSession(peer(id));
    // Every peer's lease is renewed (the leader's own keepalives are acknowledged too), again and again.
    const first = await waitFor('a lease on every peer', () => {
      const r = ['a', 'b', 'c'].map((id) => sh.store(id).leaseRenewedAtMs());
      return r.every((x) => x !== null) ? r : null;
    }, { timeoutMs: 20_000, intervalMs: 25 });
    await waitFor('every lease renewed again', () => ['a', 'b', 'c'].every((id, i) => sh.store(id).leaseRenewedAtMs()! > first[i]!), { timeoutMs: 20_000, intervalMs: 25 });

    // A follower loses the group (its node stops): no keepalive of its is acknowledged any more.
    const f = ['a', 'b', 'c'].find((id) => id !== l)!;
    const cut = sh.store(f);
    await sh.kill(f);
    const cutAtMs = performance.now();
    const renewedAtMs = cut.leaseRenewedAtMs()!;
    expect(cutAtMs - renewedAtMs).toBeLessThan(SESSION_TIMEOUT_MS);
    const expiredAtMs = await waitFor(`the leader expiring ${f}'s session`, () => (activeIds(sh.store(l)).includes(f) ? null : performance.now()), { timeoutMs: 30_000, intervalMs: 5 });
    // Its lease (sent time + sessionTimeoutMs less drift and margin) ended before the expiry: a
    // primary that fences itself then never overlaps the takeover that the expiry allows.
    const leaseEndMs = renewedAtMs + new LeaseClock(SESSION_TIMEOUT_MS).budgetMs;
    expect(leaseEndMs).toBeLessThan(expiredAtMs);
    expect(new LeaseClock(SESSION_TIMEOUT_MS).verdict(expiredAtMs, renewedAtMs).fenced).toBe(true);
  });

  it('expires the session of a peer that stops sending keepalives, and no other', async () => {
    const sh = await makeShard(['a', 'b', 'c']);
    await sh.leader();
    for (const id of ['a', 'b', 'c']) await sh.store(id).openSession(peer(id));
    await waitFor('three active peers everywhere', () => ['a', 'b', 'c'].every((id) => activeIds(sh.store(id)).length === 3), {
      timeoutMs: 10_000,
      intervalMs: 25,
    });
    // A follower's whole peer dies (the store and its Raft node live in one sitter process, so
    // they stop together; the leader case is the next test).
    const l = await sh.leader();
    const gone = ['a', 'b', 'c'].find((id) => id !== l)!;
    const watcher = ['a', 'b', 'c'].find((id) => id !== l && id !== gone)!;
    const expiries: PeersChange[] = [];
    sh.store(watcher).on('peers', (e) => {
      if (e.cause === 'expire') expiries.push(e);
    });
    await sh.kill(gone);
    await waitFor(`${gone} expired`, () => !activeIds(sh.store(watcher)).includes(gone), { timeoutMs: 20_000, intervalMs: 25 });
    const alive = [l, watcher].sort();
    expect(activeIds(sh.store(l))).toEqual(alive);
    expect(expiries.map((e) => e.peerId)).toEqual([gone]);
    expect(expiries[0]!.reason).toMatch(/no keepalive for \d+ ms \(sessionTimeoutMs 1000\)/);
  });

  it('after the leader is killed, the new leader keeps live sessions (grace) and expires only the dead one', async () => {
    const sh = await makeShard(['a', 'b', 'c']);
    await sh.store(await sh.leader()).putState(gen1(), 0);
    for (const id of ['a', 'b', 'c']) await sh.store(id).openSession(peer(id));
    await waitFor('three active peers everywhere', () => ['a', 'b', 'c'].every((id) => activeIds(sh.store(id)).length === 3), {
      timeoutMs: 10_000,
      intervalMs: 25,
    });
    const old = await sh.leader();
    const survivors = ['a', 'b', 'c'].filter((id) => id !== old);
    const watcher = survivors[0]!;
    const ended: { peerId: string | undefined; cause: string; atMs: number }[] = [];
    sh.store(watcher).on('peers', (e) => {
      if (e.cause === 'expire' || e.cause === 'close') ended.push({ peerId: e.peerId, cause: e.cause, atMs: Date.now() });
    });

    // The moment a survivor learns of the new leader (the same event starts the new leader's grace).
    let electedAtMs: number | null = null;
    for (const id of survivors) {
      sh.members.get(id)!.node!.on('leaderChange', (e) => {
        if (electedAtMs === null && e.leader !== null && e.leader !== old) electedAtMs = Date.now();
      });
    }
    const killedAtMs = Date.now();
    await sh.kill(old);
    const next = await sh.leader(survivors);
    expect(next).not.toBe(old);
    await waitFor('the election seen', () => electedAtMs !== null, { timeoutMs: 10_000, intervalMs: 10 });

    await waitFor(`${old}'s session expired`, () => !activeIds(sh.store(watcher)).includes(old), { timeoutMs: 20_000, intervalMs: 25 });
    // Stay a few more timeouts: the living peers must keep their sessions.
    const until = Date.now() + 3 * SESSION_TIMEOUT_MS;
    await waitFor('3 session timeouts', () => Date.now() >= until, { timeoutMs: 10_000, intervalMs: 50 });

    expect(ended.map((e) => e.peerId)).toEqual([old]);
    for (const id of survivors) expect(activeIds(sh.store(id))).toEqual(survivors.slice().sort());
    // Grace: the dead peer's session outlived its last keepalive by at least a full timeout
    // counted from when the new leader took over (the election itself takes some time).
    expect(ended[0]!.atMs - electedAtMs!).toBeGreaterThanOrEqual(SESSION_TIMEOUT_MS - 50);
    expect(ended[0]!.atMs - killedAtMs).toBeGreaterThanOrEqual(SESSION_TIMEOUT_MS);
    // And the cluster state is untouched by all this.
    expect((await sh.store(watcher).readState()).version).toBe(1);
  });

  it('a node restarted after snapshots restores the state, history and sessions', async () => {
    const sh = await makeShard(['a', 'b', 'c'], { snapshotEveryEntries: 20 });
    const l = await sh.leader();
    await sh.store(l).putState(gen1(), 0);
    for (const id of ['a', 'b', 'c']) await sh.store(id).openSession(peer(id));
    const follower = ['a', 'b', 'c'].find((id) => id !== l)!;
    await sh.kill(follower);
    // Enough writes and keepalives for several snapshots while the follower is down.
    for (let i = 0; i < 30; i++) {
      const { version } = sh.store(l).getState();
      await sh.store(l).putState(gen1({ async: i % 2 === 0 ? [] : [peer('c')] }), version);
    }
    const expected = await sh.store(l).readState();
    const restarted = await sh.start(follower);
    await waitFor('the restarted node caught up', () => restarted.getState().version === expected.version, { timeoutMs: 20_000, intervalMs: 25 });
    expect(restarted.getState()).toEqual(expected);
    expect(restarted.history().map((h) => h.summary)).toEqual(sh.store(l).history().map((h) => h.summary));
    expect(activeIds(restarted)).toContain(l);
    const status = sh.members.get(follower)!.node!.status();
    expect(status.snapshotIndex).toBeGreaterThan(0);
  });
});
