// RaftNode in-process: three nodes on loopback with level storage in temp dirs.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { RaftNode, type RaftTraceStep } from '../../src/raft/node.js';
import { RaftStorage, type StorageUpdate } from '../../src/raft/storage/index.js';
import { LEADER_MESSAGE_DATA_MAX } from '../../src/raft/transport/messages.js';
import type { AppliedEntry, StateMachine } from '../../src/raft/state-machine.js';
import { hasCode } from '../../src/errors.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';

const SECRET = 'node-test-secret-0123456789';

/** A state machine that records every command in order (so nodes can be compared). */
class ListMachine implements StateMachine {
  items: string[] = [];
  apply(e: AppliedEntry): unknown {
    if (e.data === 'boom') throw new Error('boom refused');
    this.items.push(e.data);
    return { n: this.items.length, index: e.index };
  }
  snapshot(): string {
    return JSON.stringify(this.items);
  }
  restore(data: string): void {
    this.items = JSON.parse(data) as string[];
  }
}

interface Member {
  id: string;
  dir: string;
  port: number;
  sm: ListMachine;
  node: RaftNode | null;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const logger = pino({ level: process.env['RAFT_TEST_LOG'] ?? 'silent' });

async function makeCluster(ids: string[], opts: { snapshotEveryEntries?: number; keepEntriesAfterSnapshot?: number; voters?: string[]; maxPendingRequests?: number; commitBroadcastDelayMs?: number; tickMs?: number; heartbeatTicks?: number; trace?: (id: string, step: RaftTraceStep, index: number) => void } = {}) {
  const tmp = await makeTmpDir('raft-node');
  cleanups.push(tmp.cleanup);
  const members = new Map<string, Member>();
  for (const id of ids) members.set(id, { id, dir: `${tmp.path}/${id}`, port: await freePort(), sm: new ListMachine(), node: null });
  const addr = (m: Member) => `127.0.0.1:${m.port}`;
  const peers = () => Object.fromEntries([...members.values()].map((m) => [m.id, addr(m)]));
  const voters = opts.voters ?? ids;

  async function start(id: string, fresh = false): Promise<RaftNode> {
    const m = members.get(id)!;
    if (fresh) m.sm = new ListMachine();
    const node = await RaftNode.open({
      id, dataDir: m.dir, peers: peers(), ...(voters.includes(id) ? { initialVoters: voters } : {}),
      secret: SECRET, listen: { host: '127.0.0.1', port: m.port }, stateMachine: m.sm, logger,
      tickMs: opts.tickMs ?? 25, electionTicks: 10, heartbeatTicks: opts.heartbeatTicks ?? 1, requestTimeoutMs: 8000,
      ...(opts.commitBroadcastDelayMs !== undefined ? { commitBroadcastDelayMs: opts.commitBroadcastDelayMs } : {}),
      snapshotEveryEntries: opts.snapshotEveryEntries ?? 10_000, keepEntriesAfterSnapshot: opts.keepEntriesAfterSnapshot ?? 1000,
      ...(opts.maxPendingRequests !== undefined ? { maxPendingRequests: opts.maxPendingRequests } : {}),
      ...(opts.trace !== undefined ? { trace: (step: RaftTraceStep, index: number) => { opts.trace?.(id, step, index); } } : {}),
    });
    await node.start();
    m.node = node;
    return node;
  }
  async function stop(id: string): Promise<void> {
    const m = members.get(id)!;
    const n = m.node;
    m.node = null;
    await n?.close();
  }
  cleanups.push(async () => { for (const m of members.values()) await m.node?.close(); });
  async function leader(among = [...members.keys()]): Promise<RaftNode> {
    return waitFor('a leader', () => {
      const live = among.map((id) => members.get(id)!.node).filter((n): n is RaftNode => n !== null);
      const l = live.find((n) => n.status().role === 'leader');
      if (!l) return null;
      // Everybody alive agrees on it.
      return live.every((n) => n.status().leader === l.id) ? l : null;
    }, { timeoutMs: 30_000, intervalMs: 20 });
  }
  return { members, start, stop, leader, addr, tmp: tmp.path };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<Error> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err, `expected ${code}`).not.toBeNull();
  expect((err as { code?: string }).code).toBe(code);
  expect(hasCode(err, code)).toBe(true);
  return err as Error;
}

describe('RaftNode with three nodes on loopback', () => {
  it('elects a leader, commits proposals on every node, forwards from followers, reads linearizably', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const changes: unknown[] = [];
    leader.on('leaderChange', (e) => changes.push(e));
    await expect(leader.propose('x1')).resolves.toEqual({ n: 1, index: expect.any(Number) });
    const follower = [...c.members.values()].find((m) => m.id !== leader.id)!;
    // A follower's proposal goes through the leader and resolves on the follower when applied there.
    const r = (await follower.node!.propose('x2')) as { n: number };
    expect(r.n).toBe(2);
    expect(follower.sm.items).toEqual(['x1', 'x2']);
    // Concurrent proposals from all nodes.
    const all = await Promise.all([...c.members.values()].flatMap((m) => [1, 2, 3].map((k) => m.node!.propose(`${m.id}-${k}`))));
    expect(all).toHaveLength(9);
    // Linearizable read on a follower: once it resolves, everything committed before is applied there.
    const last = await leader.propose('x-last');
    expect(last).toBeDefined();
    for (const m of c.members.values()) {
      await m.node!.read();
      expect(m.sm.items).toContain('x-last');
    }
    await waitFor('all applied the same sequence', () => {
      const seqs = [...c.members.values()].map((m) => JSON.stringify(m.sm.items));
      return seqs.every((s) => s === seqs[0]) && c.members.get('a')!.sm.items.length === 12;
    });
    const st = leader.status();
    expect(st.role).toBe('leader');
    expect(st.members.voters).toEqual(['a', 'b', 'c']);
    expect(st.applied).toBeGreaterThanOrEqual(st.commit - 0);
    expect(st.transport.authFailures).toBe(0);
  });

  it('trace: a write\'s steps on the leader and on the follower that acknowledged it, in order (tools/bench/raft-steps.ts)', async () => {
    const steps: { id: string; step: RaftTraceStep; index: number; seq: number }[] = [];
    const c = await makeCluster(['a', 'b', 'c'], { trace: (id, step, index) => { steps.push({ id, step, index, seq: steps.length }); } });
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const { index } = (await leader.propose('traced')) as { index: number };
    const at = (id: string, step: RaftTraceStep): number => steps.find((s) => s.id === id && s.step === step && s.index === index)?.seq ?? -1;
    const L = leader.id;
    const order = (id: string, names: RaftTraceStep[]): number[] => names.map((n) => at(id, n));
    const onLeader = order(L, ['propose', 'send', 'saveStart', 'saveEnd', 'commitReady', 'apply']);
    expect(onLeader.every((x) => x >= 0), JSON.stringify(onLeader)).toBe(true);
    expect([...onLeader].sort((x, y) => x - y)).toEqual(onLeader);
    // The first acknowledgement the leader got: its follower's steps come before it, in order.
    const recvAck = at(L, 'recvAck');
    expect(recvAck).toBeGreaterThan(at(L, 'send'));
    expect(recvAck).toBeLessThan(at(L, 'commitReady'));
    const acker = ['a', 'b', 'c'].filter((id) => id !== L).find((id) => at(id, 'ack') >= 0 && at(id, 'ack') < recvAck)!;
    const onFollower = order(acker, ['recvAppend', 'saveStart', 'saveEnd', 'ack']);
    expect(onFollower.every((x) => x >= 0), JSON.stringify(onFollower)).toBe(true);
    expect([...onFollower].sort((x, y) => x - y)).toEqual(onFollower);
    expect(onFollower[0]).toBeGreaterThan(at(L, 'propose'));
    // A follower does not trace leader steps.
    expect(at(acker, 'propose')).toBe(-1);
  });

  it('survives the leader being closed, and the old leader catches up after restarting from disk', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const first = await c.leader();
    for (let i = 0; i < 10; i++) await first.propose(`before-${i}`);
    const oldId = first.id;
    await c.stop(oldId);
    const rest = ['a', 'b', 'c'].filter((id) => id !== oldId);
    const second = await c.leader(rest);
    expect(second.id).not.toBe(oldId);
    for (let i = 0; i < 10; i++) await second.propose(`after-${i}`);
    await c.start(oldId, true);
    const back = c.members.get(oldId)!;
    await waitFor('old leader caught up', () => back.sm.items.length === 20);
    expect(back.sm.items).toEqual(c.members.get(second.id)!.sm.items);
    expect(back.sm.items.slice(0, 10)).toEqual([...Array(10).keys()].map((i) => `before-${i}`));
  });

  it('rejects with typed errors: no leader, timeout, stopped, and a failing command', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    // Alone, a voter of a three-node group never learns of a leader.
    const a = await c.start('a');
    await expectCode(a.propose('x'), 'MANATEE_ERR_RAFT_NO_LEADER');
    await expectCode(a.read(), 'MANATEE_ERR_RAFT_NO_LEADER');
    await c.start('b');
    await c.start('c');
    const leader = await c.leader();
    // The state machine's error reaches the proposer.
    await expect(leader.propose('boom')).rejects.toThrow('boom refused');
    // Cut the leader off: its proposals cannot commit and time out.
    for (const id of ['a', 'b', 'c']) if (id !== leader.id) await c.stop(id);
    await expectCode(leader.propose('lost', { timeoutMs: 150 }), 'MANATEE_ERR_RAFT_TIMEOUT');
    // CheckQuorum: a leader that hears from no majority steps down, and then knows no leader.
    await waitFor('leader stepped down', () => leader.status().leader === null, { timeoutMs: 20_000 });
    await expectCode(leader.propose('x'), 'MANATEE_ERR_RAFT_NO_LEADER');
    // Shutting down fails what is pending, and everything after.
    const b = await c.start([...c.members.keys()].find((id) => id !== leader.id)!);
    await waitFor('a leader again', () => leader.status().leader !== null, { timeoutMs: 20_000 });
    const pendingWhenClosed = leader.propose('in-flight', { timeoutMs: 20_000 }).then(() => null, (e: unknown) => e);
    const pendingRead = leader.read({ timeoutMs: 20_000 }).then(() => null, (e: unknown) => e);
    await c.stop(leader.id);
    const [e1, e2] = await Promise.all([pendingWhenClosed, pendingRead]);
    // The proposal may have been applied just before the close; if not, it failed as "stopped".
    if (e1 !== null) expect((e1 as { code: string }).code).toBe('MANATEE_ERR_RAFT_STOPPED');
    if (e2 !== null) expect((e2 as { code: string }).code).toBe('MANATEE_ERR_RAFT_STOPPED');
    await expectCode(leader.propose('after close'), 'MANATEE_ERR_RAFT_STOPPED');
    await expectCode(leader.read(), 'MANATEE_ERR_RAFT_STOPPED');
    expect(b).toBeDefined();
  });

  it('installs a snapshot on a node that was down while the log was compacted', async () => {
    const c = await makeCluster(['a', 'b', 'c'], { snapshotEveryEntries: 20, keepEntriesAfterSnapshot: 5 });
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const down = ['a', 'b', 'c'].find((id) => id !== leader.id)!;
    await leader.propose('first');
    await waitFor('down node has first', () => c.members.get(down)!.sm.items.length === 1);
    await c.stop(down);
    for (let i = 0; i < 120; i++) await leader.propose(`v${i}`);
    const st = leader.status();
    expect(st.snapshotIndex).toBeGreaterThan(100);
    await c.start(down, true);
    const m = c.members.get(down)!;
    await waitFor('restarted node caught up through a snapshot', () => m.sm.items.length === 121);
    expect(m.sm.items).toEqual(c.members.get(leader.id)!.sm.items);
    expect(m.node!.status().snapshotIndex).toBeGreaterThan(100);
    // And it keeps following afterwards.
    await leader.propose('after-snap');
    await waitFor('follows after snapshot', () => m.sm.items.at(-1) === 'after-snap');
  });

  it('adds a learner, promotes it, removes the old leader, and transfers leadership', async () => {
    const c = await makeCluster(['a', 'b', 'c', 'd'], { voters: ['a', 'b', 'c'] });
    for (const id of ['a', 'b', 'c', 'd']) await c.start(id);
    const leader = await c.leader(['a', 'b', 'c']);
    await leader.propose('one');
    const d = c.members.get('d')!;
    const afterAdd = await leader.addLearner('d', c.addr(d));
    expect(afterAdd.learners).toEqual(['d']);
    await waitFor('learner caught up', () => d.sm.items.length === 1);
    expect(d.node!.status().members.learners).toEqual(['d']);
    const afterPromote = await leader.promote('d');
    expect(afterPromote.voters).toEqual(['a', 'b', 'c', 'd']);
    await expect(leader.promote('d')).rejects.toMatchObject({ code: expect.stringMatching(/CONF_CHANGE_INVALID|PROPOSAL_DROPPED/) });
    await leader.transferLeadership('d');
    const newLeader = await c.leader(['a', 'b', 'c', 'd']);
    expect(newLeader.id).toBe('d');
    const afterRemove = await newLeader.remove(leader.id);
    expect(afterRemove.voters).not.toContain(leader.id);
    await newLeader.propose('two');
    const remaining = ['a', 'b', 'c', 'd'].filter((id) => id !== leader.id);
    await waitFor('remaining members applied', () => remaining.every((id) => c.members.get(id)!.sm.items.at(-1) === 'two'));
  });

  it('restarts from disk without initialVoters mattering, keeping its applied state', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    for (let i = 0; i < 5; i++) await leader.propose(`k${i}`);
    await waitFor('all have 5', () => [...c.members.values()].every((m) => m.sm.items.length === 5));
    for (const id of ['a', 'b', 'c']) await c.stop(id);
    for (const id of ['a', 'b', 'c']) await c.start(id, true);
    const l2 = await c.leader();
    await l2.propose('k5');
    await waitFor('replayed and extended', () => [...c.members.values()].every((m) => m.sm.items.length === 6));
    expect(c.members.get('a')!.sm.items).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5']);
  });

  it('emits leaderChange and applied events', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    const changes: { id: string; leader: string | null; term: number }[] = [];
    const applied: { id: string; index: number; data: string }[] = [];
    for (const id of ['a', 'b', 'c']) {
      const n = await c.start(id);
      n.on('leaderChange', (e) => changes.push({ id, ...e }));
      n.on('applied', (e) => applied.push({ id, index: e.index, data: e.data }));
    }
    const leader = await c.leader();
    await waitFor('every node reported the leader', () => changes.filter((e) => e.leader === leader.id).map((e) => e.id).sort().join() === 'a,b,c');
    expect(changes.every((e) => e.term >= 1)).toBe(true);
    const r = (await leader.propose('evt')) as { index: number };
    await waitFor('applied everywhere', () => applied.filter((e) => e.data === 'evt').length === 3);
    // The envelope that carries the request id is stripped before the state machine and listeners see it.
    expect(applied.filter((e) => e.data === 'evt').map((e) => e.index)).toEqual([r.index, r.index, r.index]);
  });

  it('a graceful stop of the leader hands leadership over before closing', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    await leader.propose('x');
    const others = ['a', 'b', 'c'].filter((id) => id !== leader.id);
    const t0 = Date.now();
    await leader.stop();
    // The transfer completed inside stop(): another node was already leader when it returned.
    const now = others.map((id) => c.members.get(id)!.node!.status());
    const newLeader = now.find((s) => s.role === 'leader');
    expect(newLeader, `no leader right after stop() (took ${Date.now() - t0} ms)`).toBeDefined();
    expect(newLeader!.term).toBeGreaterThan(0);
    await expectCode(leader.propose('y'), 'MANATEE_ERR_RAFT_STOPPED');
  });

  it('refuses requests past maxPendingRequests', async () => {
    const c = await makeCluster(['a', 'b', 'c'], { maxPendingRequests: 2 });
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    for (const id of ['a', 'b', 'c']) if (id !== leader.id) await c.stop(id);
    // Cut off from its followers, the leader cannot commit: its proposals stay pending.
    const p1 = leader.propose('p1', { timeoutMs: 200 }).catch((e: unknown) => e);
    const p2 = leader.propose('p2', { timeoutMs: 200 }).catch((e: unknown) => e);
    await expectCode(leader.propose('p3'), 'MANATEE_ERR_RAFT_OVERLOADED');
    await expectCode(leader.read(), 'MANATEE_ERR_RAFT_OVERLOADED');
    expect(((await p1) as { code: string }).code).toBe('MANATEE_ERR_RAFT_TIMEOUT');
    expect(((await p2) as { code: string }).code).toBe('MANATEE_ERR_RAFT_TIMEOUT');
  });

  it('stops with an error event when its storage fails, failing pending requests', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const errors: Error[] = [];
    leader.on('error', (e) => errors.push(e));
    // Pull the disk out from under the node (its level database closes).
    await (leader as unknown as { storage: { close(): Promise<void> } }).storage.close();
    const p = leader.propose('doomed').then(() => null, (e: unknown) => e);
    await waitFor('error event', () => errors.length === 1);
    expect(errors[0]!.message).toMatch(/closed/);
    expect(((await p) as { code: string }).code).toBe('MANATEE_ERR_RAFT_STOPPED');
    await expectCode(leader.propose('after'), 'MANATEE_ERR_RAFT_STOPPED');
    // The other two carry on.
    const rest = ['a', 'b', 'c'].filter((id) => id !== leader.id);
    const l2 = await c.leader(rest);
    await expect(l2.propose('still')).resolves.toBeDefined();
  });

  it('refuses an invalid configuration at open', async () => {
    const tmp = await makeTmpDir('raft-node-cfg');
    cleanups.push(tmp.cleanup);
    const base = { id: 'a', dataDir: `${tmp.path}/a`, peers: {}, secret: SECRET, listen: { host: '127.0.0.1', port: 0 }, stateMachine: new ListMachine(), logger };
    await expect(RaftNode.open({ ...base, id: '' })).rejects.toMatchObject({ code: 'MANATEE_ERR_RAFT_CONFIG' });
    await expect(RaftNode.open({ ...base, heartbeatTicks: 10, electionTicks: 10 })).rejects.toMatchObject({ code: 'MANATEE_ERR_RAFT_CONFIG' });
    await expect(RaftNode.open({ ...base, tickMs: 0 })).rejects.toMatchObject({ code: 'MANATEE_ERR_RAFT_CONFIG' });
    await expect(RaftNode.open({ ...base, commitBroadcastDelayMs: -1 })).rejects.toThrow(/commitBroadcastDelayMs must be at least 0 and below tickMs \(100\), got -1/);
    await expect(RaftNode.open({ ...base, tickMs: 50, commitBroadcastDelayMs: 50 })).rejects.toMatchObject({ code: 'MANATEE_ERR_RAFT_CONFIG' });
    // A node that is not started refuses requests as stopped.
    const n = await RaftNode.open({ ...base, initialVoters: ['a'] });
    cleanups.push(() => n.close());
    await expectCode(n.propose('x'), 'MANATEE_ERR_RAFT_STOPPED');
  });

  it('a change of the commit index alone is not written on the proposal\'s path, but at the next tick, and at close', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    // Every write the leader's storage is asked for, seen from outside.
    const storage = (leader as unknown as { storage: RaftStorage }).storage;
    const save = storage.save.bind(storage);
    const writes: StorageUpdate[] = [];
    storage.save = (u: StorageUpdate): Promise<void> => { writes.push(u); return save(u); };
    const commitWritten = (index: number): boolean => writes.some((w) => w.entries.length === 0 && (w.hardState?.commit ?? 0) >= index);

    const first = (await leader.propose('p1')) as { index: number };
    // Resolved: the entry is durable on a quorum and applied, and its commit index is not yet on disk.
    expect(writes.some((w) => w.entries.some((e) => e.index === first.index))).toBe(true);
    expect(commitWritten(first.index)).toBe(false);
    await waitFor('the commit index written at a tick', () => commitWritten(first.index), { timeoutMs: 10_000 });

    const second = (await leader.propose('p2')) as { index: number };
    expect(commitWritten(second.index)).toBe(false);
    // Closed before any tick could write it: close() does.
    const dir = c.members.get(leader.id)!.dir;
    await c.stop(leader.id);
    const reopened = await RaftStorage.open(dir);
    try {
      expect((await reopened.load()).hardState?.commit).toBeGreaterThanOrEqual(second.index);
    } finally {
      await reopened.close();
    }
  });

  it('a follower applies committed entries it already holds while it writes the next ones, and never an entry before writing it', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const f = [...c.members.values()].find((m) => m.id !== leader.id)!;
    // The follower's writes of x1 and of x2 wait until the test lets each go.
    const gates = new Map<string, { open: () => void; opened: Promise<void> }>();
    for (const cmd of ['x1', 'x2']) {
      let open = (): void => undefined;
      const opened = new Promise<void>((r) => { open = r; });
      gates.set(cmd, { open, opened });
    }
    const held = new Set<string>();
    const storage = (f.node as unknown as { storage: RaftStorage }).storage;
    const save = storage.save.bind(storage);
    storage.save = async (u: StorageUpdate): Promise<void> => {
      for (const [cmd, g] of gates) {
        if (!u.entries.some((e) => e.data.endsWith(`~${cmd}`))) continue;
        held.add(cmd);
        await g.opened;
      }
      return save(u);
    };
    // A failure must not leave the follower's loop waiting forever (the cleanup closes it).
    cleanups.push(() => { for (const g of gates.values()) g.open(); return Promise.resolve(); });
    // Committed by the leader and the other follower while this one's write of x1 waits.
    await leader.propose('x1');
    await waitFor('the follower to be writing x1', () => held.has('x1'), { timeoutMs: 10_000 });
    await leader.propose('x2');
    expect(f.sm.items).toEqual([]);
    gates.get('x1')!.open();
    // x1 is on its disk now and committed: it is applied while x2 is being written...
    await waitFor('the follower to be writing x2', () => held.has('x2'), { timeoutMs: 10_000 });
    await waitFor('x1 applied during the write of x2', () => f.sm.items.includes('x1'), { timeoutMs: 10_000 });
    // ...and x2, committed too, only once it is on this follower's disk.
    expect(f.sm.items).toEqual(['x1']);
    gates.get('x2')!.open();
    await waitFor('x2 applied after its write', () => f.sm.items.includes('x2'), { timeoutMs: 10_000 });
    expect(f.sm.items).toEqual(['x1', 'x2']);
  });

  it('a single-voter group commits on its own', async () => {
    const c = await makeCluster(['solo']);
    const n = await c.start('solo');
    await waitFor('solo leader', () => n.status().role === 'leader', { timeoutMs: 20_000 });
    await expect(n.propose('only')).resolves.toMatchObject({ n: 1 });
    await n.read();
    expect(c.members.get('solo')!.sm.items).toEqual(['only']);
  });

  it('concurrent reads share ReadIndex rounds, and a read whose request was lost is re-issued', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const f = [...c.members.values()].find((m) => m.id !== leader.id)!;
    await leader.propose('v1');
    const sentBefore = leader.status().transport.messagesSent;
    await Promise.all(Array.from({ length: 200 }, () => f.node!.read()));
    expect(f.sm.items).toContain('v1');
    // 200 reads, far fewer heartbeat rounds than 200 (each round is 2 heartbeats from the leader).
    expect(leader.status().transport.messagesSent - sentBefore).toBeLessThan(200);
    // The follower's link to the leader now ends at a listener that accepts and never answers, so
    // its next ReadIndex request is lost while it still names the leader (the leader's heartbeats
    // come on the leader's own connection). A refused dial would instead tell the follower that the
    // leader is gone before the request is sent.
    const silent = createServer(() => undefined);
    await new Promise<void>((done) => silent.listen(0, '127.0.0.1', done));
    cleanups.push(() => new Promise<void>((done) => { silent.close(() => { done(); }); }));
    const silentPort = (silent.address() as AddressInfo).port;
    (f.node as unknown as { transport: { setPeer(id: string, addr: string): void } }).transport.setPeer(leader.id, `127.0.0.1:${silentPort}`);
    expect(f.node!.status().leader).toBe(leader.id);
    let answered = false;
    const lost = f.node!.read({ timeoutMs: 20_000 }).then(() => { answered = true; });
    // The leader goes; the read is re-issued to the next leader and answered there.
    await c.stop(leader.id);
    expect(answered).toBe(false);
    await lost;
    expect(f.node!.status().leader).not.toBe(leader.id);
  });

  it('a read atHeartbeat on the leader starts its round with the next heartbeat, in the same batch: no message of its own', async () => {
    const c = await makeCluster(['a', 'b', 'c'], { heartbeatTicks: 4 });
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    await leader.propose('v1');
    // Every batch the leader hands its transport, as the heartbeats in it (to, with a read context or not).
    const transport = (leader as unknown as { transport: { send(ms: readonly { type: string; to: string; context?: string }[]): void } }).transport;
    const batches: { to: string; ctx: boolean }[][] = [];
    const send = transport.send.bind(transport);
    transport.send = (ms) => {
      batches.push(ms.filter((m) => m.type === 'heartbeat').map((m) => ({ to: m.to, ctx: m.context !== undefined })));
      send(ms);
    };
    const readBatches = (): { to: string; ctx: boolean }[][] => batches.filter((b) => b.some((h) => h.ctx));
    for (let i = 0; i < 5; i++) await leader.read({ atHeartbeat: true });
    expect(readBatches().length).toBeGreaterThanOrEqual(5);
    // Each round's heartbeats went out with the regular heartbeat to the same follower.
    for (const b of readBatches()) {
      for (const h of b.filter((x) => x.ctx)) expect(b.some((x) => !x.ctx && x.to === h.to)).toBe(true);
    }
    // A plain read does not wait: its round goes out on its own, before the next heartbeat.
    batches.length = 0;
    for (let i = 0; i < 5; i++) await leader.read();
    expect(readBatches().filter((b) => b.every((h) => h.ctx)).length).toBeGreaterThanOrEqual(3);
    // A follower's read atHeartbeat is a plain read (only the leader waits for its heartbeat).
    const f = [...c.members.values()].find((m) => m.id !== leader.id)!;
    await f.node!.read({ atHeartbeat: true });
  });

  it('every() keeps its rate when ticks run two at a time (a leader ticks at its heartbeats): a 3-tick period alternates 4 and 2 ticks', async () => {
    const c = await makeCluster(['a'], { tickMs: 100, heartbeatTicks: 2 });
    const n = await c.start('a');
    await waitFor('a leads', () => n.status().role === 'leader', { timeoutMs: 30_000 });
    const at: number[] = [];
    const stop = n.every(300, () => { at.push(performance.now()); })!;
    await waitFor('twenty runs', () => at.length >= 20, { timeoutMs: 60_000 });
    stop();
    // Counted in ticks of time: one run per 3 ticks on average. Without the carry it ran every 4
    // (the first boundary at or past 3 in steps of 2): 15 runs in 60 ticks, not 20. A stall of a
    // period or more (a loaded machine) may cost a run: two are allowed for.
    const elapsedTicks = Math.round((at[at.length - 1]! - at[0]!) / 100);
    expect(at.length - 1, `${at.length - 1} periods in ${elapsedTicks} ticks`).toBeGreaterThanOrEqual(Math.floor(elapsedTicks / 3) - 2);
    expect(at.length - 1).toBeLessThanOrEqual(Math.ceil(elapsedTicks / 2) + 1);
  });

  it('every() runs a callback from the ticker every floor(ms / tickMs) ticks of time, until stopped, and at once after a stall; null when ms is shorter than a tick', async () => {
    const c = await makeCluster(['a'], { tickMs: 25 });
    const n = await c.start('a');
    expect(n.every(24, () => undefined)).toBeNull();
    expect(n.every(0, () => undefined)).toBeNull();
    // A 25 ms callback next to a 100 ms one: the slow one runs in the same ticker runs as the fast
    // one, never sooner than 100 ms after its last run (a loaded machine can make it later).
    const runs: { kind: 'f' | 's'; tick: number; atMs: number; lateMs?: number }[] = [];
    const mark = (kind: 'f' | 's'): void => { runs.push({ kind, tick: n.status().clock.ticks, atMs: performance.now(), lateMs: n.lastTickLateMs() }); };
    const count = (kind: 'f' | 's'): number => runs.filter((r) => r.kind === kind).length;
    const stopFast = n.every(25, () => { mark('f'); })!;
    const stopSlow = n.every(100, () => { mark('s'); })!;
    await waitFor('eight slow runs', () => count('s') >= 8, { timeoutMs: 30_000 });
    stopFast();
    stopSlow();
    expect(count('f')).toBeGreaterThanOrEqual(count('s'));
    const slow = runs.filter((r) => r.kind === 's');
    // On the ticker's schedule: a run that came late (a loaded machine) can be followed by one on
    // time, so two runs are at least the period apart less the first one's lateness.
    for (let i = 1; i < slow.length; i++) expect(slow[i]!.atMs - slow[i - 1]!.atMs).toBeGreaterThanOrEqual(100 - slow[i - 1]!.lateMs! - 2);
    // Each slow run came right after a fast one, in the same tick.
    for (let i = 0; i < runs.length; i++) if (runs[i]!.kind === 's') expect(runs[i - 1]).toMatchObject({ kind: 'f', tick: runs[i]!.tick });
    const [f0, s0] = [count('f'), count('s')];
    await new Promise((r) => setTimeout(r, 300));
    expect([count('f'), count('s')]).toEqual([f0, s0]);
    // A period the tick does not divide runs every floor(ms / tick) ticks: 60 ms at 25 ms, every 2 ticks (50 ms).
    const odd: { atMs: number; lateMs: number }[] = [];
    const stopOdd = n.every(60, () => { odd.push({ atMs: performance.now(), lateMs: n.lastTickLateMs() }); })!;
    await waitFor('ten runs', () => odd.length >= 10, { timeoutMs: 30_000 });
    stopOdd();
    for (let i = 1; i < odd.length; i++) expect(odd[i]!.atMs - odd[i - 1]!.atMs).toBeGreaterThanOrEqual(50 - odd[i - 1]!.lateMs - 2);
    // After a stall of the event loop (12 ticks long), a callback whose period passed meanwhile runs
    // at the first tick after it, with the core ticked once (no burst), as a timer of its own would.
    runs.length = 0;
    let stalled = false;
    const stopStall = n.every(25, () => {
      mark('f');
      if (!stalled && runs.length === 3) {
        stalled = true;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
        runs.push({ kind: 'f', tick: -1, atMs: performance.now() });
      }
    })!;
    const stopSlow2 = n.every(200, () => { mark('s'); })!;
    await waitFor('a slow run after the stall', () => runs.some((r, i) => r.kind === 's' && runs.slice(0, i).some((x) => x.tick === -1)), { timeoutMs: 30_000 });
    stopStall();
    stopSlow2();
    const at = runs.findIndex((r) => r.tick === -1);
    const before = runs[at - 1]!.tick;
    const next = runs.slice(at + 1);
    expect(next[0]).toMatchObject({ kind: 'f', tick: before + 1 });
    expect(next[1]).toMatchObject({ kind: 's', tick: before + 1 });
    // A callback that throws is logged and skipped: the tick and the other callbacks go on.
    let after = 0;
    const stopBad = n.every(25, () => { throw new Error('a bug in a periodic job'); })!;
    const stopAfter = n.every(25, () => { after++; })!;
    await waitFor('ticks after the throwing callback', () => after >= 5, { timeoutMs: 30_000 });
    stopBad();
    stopAfter();
    expect(n.status().role).toBe('leader');
  });

  it('a proposal whose entry a new leader replaced fails at once with PROPOSAL_LOST', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const old = await c.leader();
    await old.propose('ok');
    const others = ['a', 'b', 'c'].filter((id) => id !== old.id);
    // Cut the leader's outbound links: it still hears the others, but nothing it sends arrives.
    const transport = (old as unknown as { transport: { setPeer(id: string, addr: string): void } }).transport;
    const deadPort = await freePort();
    for (const id of others) transport.setPeer(id, `127.0.0.1:${deadPort}`);
    const lost = old.propose('doomed', { timeoutMs: 60_000 }).then(() => null, (e: unknown) => e);
    // The others elect a new leader and commit their own entry at the same index.
    const next = await c.leader(others);
    expect(next.id).not.toBe(old.id);
    await next.propose('winner');
    // Heal: the old leader learns the new term and its uncommitted entry is replaced.
    const t0 = Date.now();
    for (const id of others) transport.setPeer(id, c.addr(c.members.get(id)!));
    const err = await lost;
    expect((err as { code?: string }).code).toBe('MANATEE_ERR_RAFT_PROPOSAL_LOST');
    expect(Date.now() - t0).toBeLessThan(30_000);
    await waitFor('old leader caught up', () => c.members.get(old.id)!.sm.items.includes('winner'));
    expect(c.members.get(old.id)!.sm.items).not.toContain('doomed');
  });

  it('a forwarded proposal that the leader never got ends with LEADER_CHANGED at the next leader change, not at its timeout', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const lead = await c.leader();
    await lead.propose('ok');
    const [fid, tid] = ['a', 'b', 'c'].filter((id) => id !== lead.id) as [string, string];
    const follower = c.members.get(fid)!.node!;
    await waitFor('the follower applied the first entry', () => c.members.get(fid)!.sm.items.includes('ok'));
    // Cut the follower's link to the leader: what it forwards there is lost, as a leader drops a
    // forwarded proposal during a leadership transfer or after stepping down.
    const transport = (follower as unknown as { transport: { setPeer(id: string, addr: string): void } }).transport;
    transport.setPeer(lead.id, `127.0.0.1:${await freePort()}`);
    const t0 = Date.now();
    const lost = follower.propose('forwarded-into-the-void', { timeoutMs: 120_000 }).then(() => null, (e: unknown) => e);
    // The leader hands over to the third node; the follower hears of it from the new leader.
    await lead.transferLeadership(tid);
    const err = await lost;
    expect((err as { code?: string }).code).toBe('MANATEE_ERR_RAFT_LEADER_CHANGED');
    expect((err as Error).message).toContain(`went to leader ${lead.id}`);
    expect(Date.now() - t0).toBeLessThan(60_000);
    // Retrying on the new leader works, and the lost one was never applied.
    await follower.propose('retried');
    await waitFor('the retry applied on the new leader', () => c.members.get(tid)!.sm.items.includes('retried'));
    expect(c.members.get(tid)!.sm.items).not.toContain('forwarded-into-the-void');
  });

  it('sendToLeader reaches the leader as a leaderMessage (never a Raft message), from followers and from itself', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const heard: { from: string; data: string }[] = [];
    leader.on('leaderMessage', (m) => heard.push(m));
    const followers = ['a', 'b', 'c'].filter((id) => id !== leader.id).map((id) => c.members.get(id)!.node!);
    const followerHeard: unknown[] = [];
    for (const f of followers) f.on('leaderMessage', (m) => followerHeard.push(m));
    const readsBefore = leader.status().pendingReads;
    for (const f of followers) f.sendToLeader(`keepalive:${f.id}`);
    leader.sendToLeader('keepalive:self');
    await waitFor('three leader messages', () => heard.length === 3);
    expect(heard.map((m) => `${m.from}=${m.data}`).sort()).toEqual(
      [...followers.map((f) => `${f.id}=keepalive:${f.id}`), `${leader.id}=keepalive:self`].sort(),
    );
    expect(followerHeard).toEqual([]);
    expect(leader.status().pendingReads).toBe(readsBefore);
    // The limit is checked before anything is sent, with a code the caller can match.
    let err: unknown = null;
    try {
      followers[0]!.sendToLeader('x'.repeat(LEADER_MESSAGE_DATA_MAX + 1));
    } catch (e) {
      err = e;
    }
    expect(hasCode(err, 'MANATEE_ERR_RAFT_LEADER_MESSAGE_TOO_LARGE')).toBe(true);
    expect((err as Error).message).toMatch(/4097 characters, more than the 4096/);
  });

  it('replyFromLeader withNextHeartbeat goes out in the frame of the next heartbeat', async () => {
    const c = await makeCluster(['a', 'b', 'c'], { tickMs: 200 });
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const follower = ['a', 'b', 'c'].filter((id) => id !== leader.id).map((id) => c.members.get(id)!.node!)[0]!;
    const heard: string[] = [];
    follower.on('leaderReply', (m) => heard.push(`${m.from}=${m.data}`));
    const shared = (): number => { const t = follower.status().transport; return t.messagesReceived - t.framesReceived; };
    const before = shared();
    leader.replyFromLeader(follower.id, 'ack-1', { withNextHeartbeat: true });
    await waitFor('the reply delivered', () => heard.length === 1);
    expect(heard).toEqual([`${leader.id}=ack-1`]);
    // Exactly one frame carried two messages (the heartbeat and the reply); every other frame to an
    // idle follower carries one.
    expect(shared() - before).toBe(1);
  });

  it('replyFromLeader withNextHeartbeat is dropped when its sender no longer leads by then', async () => {
    // Long ticks: a second between heartbeats, against milliseconds for a leadership transfer.
    const c = await makeCluster(['a', 'b', 'c'], { tickMs: 1000 });
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const [follower, other] = ['a', 'b', 'c'].filter((id) => id !== leader.id).map((id) => c.members.get(id)!.node!) as [RaftNode, RaftNode];
    const heard: string[] = [];
    follower.on('leaderReply', (m) => heard.push(m.data));
    // Right after one of its ticks, the next is a second away.
    const ticks = leader.status().clock.ticks;
    await waitFor('a tick of the leader', () => leader.status().clock.ticks > ticks, { timeoutMs: 10_000, intervalMs: 2 });
    leader.replyFromLeader(follower.id, 'stale', { withNextHeartbeat: true });
    await leader.transferLeadership(other.id);
    expect(leader.status().role).toBe('follower');
    // Two ticks of the old leader later, the reply never went out.
    const t2 = leader.status().clock.ticks;
    await waitFor('two more ticks of the old leader', () => leader.status().clock.ticks >= t2 + 2, { timeoutMs: 10_000 });
    expect(heard).toEqual([]);
  });

  it('a leaderMessage that reaches a node that no longer leads is dropped', async () => {
    const c = await makeCluster(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    const follower = ['a', 'b', 'c'].filter((id) => id !== leader.id).map((id) => c.members.get(id)!.node!)[0]!;
    const other = ['a', 'b', 'c'].find((id) => id !== leader.id && id !== follower.id)!;
    const heard: unknown[] = [];
    follower.on('leaderMessage', (m) => heard.push(m));
    // Sent straight to a follower, as a sender with a stale view of the leader would.
    const transport = (c.members.get(other)!.node! as unknown as { transport: { send(ms: unknown[]): void; stats(): { messagesSent: number } } }).transport;
    const sentBefore = transport.stats().messagesSent;
    transport.send([{ type: 'leaderMessage', from: other, to: follower.id, term: leader.status().term, data: 'keepalive:1' }]);
    await waitFor('the message left', () => transport.stats().messagesSent > sentBefore);
    // A round trip through the group after it: the follower has handled what came before.
    await follower.read();
    await new Promise((r) => setImmediate(r));
    expect(heard).toEqual([]);
    expect(follower.status().role).toBe('follower');
  });

  it.each([
    { name: 'deferred (the default)', delayMs: undefined, perProposal: 2 },
    { name: 'sent at once (0 ms)', delayMs: 0, perProposal: 4 },
  ])('commit broadcast $name: back-to-back proposals cost the leader about $perProposal messages each, and followers apply the last one', async ({ delayMs, perProposal }) => {
    // Long ticks, so that heartbeats hardly count in the message totals.
    const c = await makeCluster(['a', 'b', 'c'], { tickMs: 200, ...(delayMs !== undefined ? { commitBroadcastDelayMs: delayMs } : {}) });
    for (const id of ['a', 'b', 'c']) await c.start(id);
    const leader = await c.leader();
    await leader.propose('warm');
    await waitFor('followers applied warm-up', () => [...c.members.values()].every((m) => m.sm.items.includes('warm')));
    const before = leader.status().transport.messagesSent;
    const n = 30;
    const started = Date.now();
    for (let i = 0; i < n; i++) await leader.propose(`p${i}`);
    const sent = leader.status().transport.messagesSent - before;
    const ticks = Math.ceil((Date.now() - started) / 200);
    // Each proposal: an append to each follower; at once, also a commit-only append to each.
    // Slack for the odd commit broadcast that fires between two proposals, and for the heartbeats
    // (one to each follower per tick): on a loaded machine the 30 proposals can take seconds.
    expect(sent).toBeGreaterThanOrEqual(n * 2);
    expect(sent).toBeLessThan(n * perProposal + n + 2 * ticks);
    // Nothing follows the last proposal: its commit reaches the followers all the same.
    await waitFor('followers applied the last proposal', () => [...c.members.values()].every((m) => m.sm.items.includes(`p${n - 1}`)), { timeoutMs: 30_000 });
  });
});
