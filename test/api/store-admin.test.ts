// The admin routes over the real cluster store (src/store: state machine, validation, CAS,
// history, sessions) on the in-process consensus group: a follower's write lands in the shard's
// state, the store accepts every state the admin operations produce, and no leader means 503.
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { storeAdminOperations } from '../../src/api/admin-ops.js';
import { createApi } from '../../src/api/server.js';
import { ClusterStateMachine } from '../../src/store/state-machine.js';
import { InProcessGroup } from '../store/in-process-consensus.js';
import { ClusterStore } from '../../src/store/store.js';
import type { ClusterState } from '../../src/model/index.js';
import { ADMIN_TOKEN, memoryMembership, MemoryStore, peer, statusOf } from '../../tools/lib/memory-peer.js';

const A = peer('a');
const B = peer('b');
const C = peer('c');
const Z = peer('z');

const stores: ClusterStore[] = [];
let app: FastifyInstance | null = null;

afterEach(async () => {
  await app?.close();
  app = null;
  for (const s of stores.splice(0)) s.stop();
});

async function shardWithApiOn(self: 'a' | 'b' | 'c') {
  const group = new InProcessGroup();
  const byId = new Map<string, ClusterStore>();
  for (const id of ['a', 'b', 'c']) {
    const machine = new ClusterStateMachine();
    const store = new ClusterStore({ machine, consensus: group.add(id, machine), sessionTimeoutMs: 60_000 });
    stores.push(store);
    byId.set(id, store);
  }
  group.elect('a');
  const leader = byId.get('a')!;
  for (const p of [A, B, C]) await byId.get(p.id)!.openSession(p);
  const initial: ClusterState = { generation: 2, primary: A, sync: B, async: [C], deposed: [Z], initWal: '0/3000060' };
  // Generation 1 had z as primary; a took over in generation 2 and z was deposed.
  await leader.putState({ generation: 1, primary: Z, sync: A, async: [B, C], deposed: [], initWal: '0/0' }, 0, 'cluster setup');
  await leader.putState(initial, 1, 'sync (a) took over as primary (from z)');
  await group.settle();

  const store = byId.get(self)!;
  const me = [A, B, C].find((p) => p.id === self)!;
  app = await createApi({
    peerId: self,
    // The status is not what this test is about: the in-memory one over the same state will do.
    status: async () => {
      const { state, version } = await store.readState();
      const mem = new MemoryStore(state, store.activePeers());
      mem.version = version;
      return statusOf(me, mem);
    },
    state: () => store.readState(),
    history: (limit) => Promise.resolve(store.history(limit)),
    activePeers: () => Promise.resolve(store.activePeers()),
    // The ClusterStore is passed as it is: it has the three methods that AdminStateStore names.
    admin: storeAdminOperations({
      store,
      peerId: self,
      startRebuild: () => Promise.resolve({ peerId: self, started: true, message: 'started' }),
    }),
    membership: memoryMembership(['a', 'b', 'c']),
    watch: (listener) => store.on('state', (c) => { listener({ type: 'state', state: c.state, version: c.version }); }),
    adminToken: ADMIN_TOKEN,
    logger: (await import('pino')).pino({ level: 'silent' }),
  });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  return { group, byId, base, post };
}

describe('admin routes over the cluster store', () => {
  it("a follower's freeze is committed for the whole shard, with its history entry", async () => {
    const sh = await shardWithApiOn('c');
    const r = await sh.post('/admin/freeze', { reason: 'maintenance window' });
    expect(r.status).toBe(200);
    await sh.group.settle();
    const onLeader = await sh.byId.get('a')!.readState();
    expect(onLeader.state?.freeze?.reason).toBe('maintenance window');
    expect(onLeader.version).toBe(r.body.version);
    expect(sh.byId.get('b')!.history().at(-1)?.summary).toBe('frozen by operator: maintenance window');
  });

  it('the store accepts promote requests for the sync and for an async, and their clearing', async () => {
    const sh = await shardWithApiOn('b');
    const p = await sh.post('/admin/promote', { peerId: 'c', expireMs: 60_000 });
    expect(p.status).toBe(200);
    expect((await sh.byId.get('a')!.readState()).state?.promote).toMatchObject({ id: 'c', role: 'async', asyncIndex: 0, generation: 2 });
    expect((await sh.post('/admin/clear-promote', {})).status).toBe(200);
    expect((await sh.post('/admin/promote', { peerId: 'b' })).status).toBe(200);
    expect((await sh.byId.get('c')!.readState()).state?.promote).toMatchObject({ id: 'b', role: 'sync' });
  });

  it('reap of a deposed peer without a session is committed; one in the chain is refused', async () => {
    const sh = await shardWithApiOn('a');
    expect((await sh.post('/admin/reap', { peerId: 'c' })).body.error.code).toBe('MANATEE_ERR_PEER_IN_CHAIN');
    const r = await sh.post('/admin/reap', { peerId: 'z' });
    expect(r.status).toBe(200);
    expect((await sh.byId.get('b')!.readState()).state?.deposed).toEqual([]);
  });

  it('answers 503 with the Raft code when the shard has no leader', async () => {
    const sh = await shardWithApiOn('b');
    sh.group.elect(null);
    const r = await sh.post('/admin/freeze', { reason: 'x' });
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('MANATEE_ERR_RAFT_NO_LEADER');
  });
});
