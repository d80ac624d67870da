// The admin membership routes over real RaftNodes (three voters on loopback, a fourth node that
// starts empty): POST /admin/peers on a follower's API adds the new node as a learner and
// promotes it to voter; it then receives the log. DELETE /admin/peers/:id removes it again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import { raftMembership } from '../../src/api/membership.js';
import { RaftNode } from '../../src/raft/node.js';
import { ListMachine } from '../helpers/list-machine.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { ADMIN_TOKEN, MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';

const SECRET = 'membership-test-secret-0123456789';


const nodes = new Map<string, { node: RaftNode; sm: ListMachine; address: string }>();
let cleanupDir: (() => Promise<void>) | null = null;
let app: FastifyInstance | null = null;
let base = '';

beforeAll(async () => {
  const tmp = await makeTmpDir('api-membership');
  cleanupDir = tmp.cleanup;
  const ids = ['a', 'b', 'c', 'd'];
  const ports = new Map<string, number>();
  for (const id of ids) ports.set(id, await freePort());
  const peers = Object.fromEntries(ids.map((id) => [id, `127.0.0.1:${ports.get(id) ?? 0}`]));
  for (const id of ids) {
    const sm = new ListMachine();
    // d knows where the others are but is in no configuration: it waits to be added.
    const node = await RaftNode.open({
      id, dataDir: `${tmp.path}/${id}`, peers: id === 'd' ? peers : Object.fromEntries(Object.entries(peers).filter(([k]) => k !== 'd')),
      ...(id === 'd' ? {} : { initialVoters: ['a', 'b', 'c'] }),
      secret: SECRET, listen: { host: '127.0.0.1', port: ports.get(id) ?? 0 }, stateMachine: sm,
      logger: pino({ level: 'silent' }), tickMs: 25, electionTicks: 10, heartbeatTicks: 1, requestTimeoutMs: 8000,
    });
    await node.start();
    nodes.set(id, { node, sm, address: peers[id] ?? '' });
  }
  const leader = await waitFor('a leader', () => {
    const l = ['a', 'b', 'c'].map((id) => nodes.get(id)!.node).find((n) => n.status().role === 'leader');
    return l ?? null;
  }, { timeoutMs: 30_000, intervalMs: 20 });
  // The API of a follower: the membership change is forwarded to the leader by the node.
  const follower = ['a', 'b', 'c'].find((id) => id !== leader.id)!;
  const store = new MemoryStore(threePeerState([peer('a'), peer('b'), peer('c')]), []);
  app = await createApi({ ...memoryDeps({ self: peer(follower), store }), membership: raftMembership(nodes.get(follower)!.node) });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
}, 60_000);

afterAll(async () => {
  await app?.close();
  for (const { node } of nodes.values()) await node.close().catch(() => undefined);
  await cleanupDir?.();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

describe('admin membership over real Raft nodes', () => {
  it('adds a fourth node (learner, then voter) through a follower, which then receives the log; removes it again', async () => {
    const d = nodes.get('d')!;
    // A 503 (no leader, or not applied in time: elections churn on a loaded machine with these
    // short ticks) says "retry": the add is idempotent (a learner left by a failed promotion is
    // promoted by the next add), so the test retries as a client must.
    const added = await waitFor('the add to be answered 200', async () => {
      const r = await call('POST', '/admin/peers', { id: 'd', address: d.address });
      if (r.status === 503) {
        console.log(`add-peer answered 503, retrying: ${JSON.stringify(r.body)}`);
        return null;
      }
      return r;
    }, { timeoutMs: 90_000, intervalMs: 200 });
    expect(added.status).toBe(200);
    expect(added.body.members.voters).toEqual(expect.arrayContaining(['a', 'b', 'c', 'd']));
    expect(added.body.members.learners).toEqual([]);
    // The new voter takes part: a command proposed on a is applied on d.
    await nodes.get('a')!.node.propose('after-join');
    await waitFor('d to apply the command', () => d.sm.items.includes('after-join') || null, { timeoutMs: 20_000, intervalMs: 20 });
    expect((await call('GET', '/members')).body.voters).toHaveLength(4);

    const again = await call('POST', '/admin/peers', { id: 'd', address: d.address });
    expect({ status: again.status, code: again.body.error.code }).toEqual({ status: 409, code: 'MANATEE_ERR_PEER_ALREADY_MEMBER' });

    const removed = await call('DELETE', '/admin/peers/d');
    expect(removed.status).toBe(200);
    expect([...removed.body.members.voters].sort()).toEqual(['a', 'b', 'c']);
    const gone = await call('DELETE', '/admin/peers/d');
    expect({ status: gone.status, code: gone.body.error.code }).toEqual({ status: 404, code: 'MANATEE_ERR_PEER_NOT_FOUND' });
  }, 60_000);
});
