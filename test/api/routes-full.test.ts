// The routes of issue 6 on real fastify servers on 127.0.0.1 (three peers, ephemeral ports, one
// in-memory cluster state; tools/lib/memory-peer.ts): health checks, /shard, /watch (SSE), /metrics,
// /members and the admin membership routes, /openapi.json. Each route: a success and its error
// statuses (400, 401, 403, 404, 409, 503) with the code in the body.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { request, type IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import { evaluateHealth, parseLag } from '../../src/api/routes/health.js';
import type { ShardReport } from '../../src/api/shard.js';
import type { PeerInfo } from '../../src/model/index.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { ADMIN_TOKEN, MemoryRaftNode, MemoryStore, memoryDeps, peer, statusOf, threePeerState } from '../../tools/lib/memory-peer.js';
import { expectApiError, httpCall, type HttpAnswer, type HttpCallOptions } from '../helpers/http.js';

let servers: FastifyInstance[] = [];
let store: MemoryStore;
let peers: PeerInfo[];
let raft: MemoryRaftNode;
let deadUrl: string;

beforeAll(async () => {
  const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  peers = ['a', 'b', 'c'].map((id, i) => peer(id, `http://127.0.0.1:${ports[i] ?? 0}`));
  deadUrl = `http://127.0.0.1:${ports[3]}`;
  store = new MemoryStore(threePeerState(peers, [peer('z', deadUrl)]), peers);
  raft = new MemoryRaftNode(['a', 'b', 'c']);
  for (const [i, self] of peers.entries()) {
    // No test here waits for a peer's /status to time out (a gone peer is ECONNREFUSED at once); at
    // 1000 ms, /shard saw two live peers as unreachable at a load average of 38.
    const app = await createApi(memoryDeps({ self, store, raft, limits: { watchersMax: 2, watchKeepaliveMs: 100, peerStatusTimeoutMs: 10_000 } }));
    servers.push(app);
    await app.listen({ host: '127.0.0.1', port: ports[i]! });
  }
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

const A = () => peers[0]!.apiUrl;
const B = () => peers[1]!.apiUrl;
const C = () => peers[2]!.apiUrl;




type Answer = HttpAnswer;

/** One exchange; admin routes get the admin token unless `token` says otherwise (null: none). */
function call(method: string, url: string, opts: HttpCallOptions = {}): Promise<Answer> {
  return httpCall(method, url, { ...opts, token: opts.token === undefined ? ADMIN_TOKEN : opts.token });
}

const expectError = expectApiError;

describe('health checks (Patroni convention)', () => {
  it('/primary and /read-write: 200 on the writable primary only, the same body on 503', async () => {
    for (const path of ['/primary', '/read-write']) {
      const ok = await call('GET', `${A()}${path}`);
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ peerId: 'a', role: 'primary', ok: true, writable: true, generation: 3 });
      const no = await call('GET', `${B()}${path}`);
      expect(no.status).toBe(503);
      expect(no.body).toMatchObject({ peerId: 'b', role: 'sync', ok: false, reason: 'this peer is a sync, not the primary' });
    }
  });

  it('HEAD answers the same status with no body (HAProxy option httpchk HEAD)', async () => {
    expect((await call('HEAD', `${A()}/primary`)).status).toBe(200);
    const h = await call('HEAD', `${C()}/primary`);
    expect(h.status).toBe(503);
    expect(h.text).toBe('');
  });

  it('/replica, /sync, /async, /read-only and /health per role', async () => {
    const codes = async (url: string) => Object.fromEntries(await Promise.all(
      ['replica', 'sync', 'async', 'read-only', 'health'].map(async (c) => [c, (await call('GET', `${url}/${c}`)).status] as const),
    ));
    expect(await codes(A())).toEqual({ replica: 503, sync: 503, async: 503, 'read-only': 200, health: 200 });
    expect(await codes(B())).toEqual({ replica: 200, sync: 200, async: 503, 'read-only': 200, health: 200 });
    expect(await codes(C())).toEqual({ replica: 200, sync: 503, async: 200, 'read-only': 200, health: 200 });
  });

  it('?lag= in bytes compares the primary\'s WAL position with the replayed one, in time the heartbeat lag', async () => {
    // a (primary) at 0/3000148 (asked over HTTP), c replayed 0/3000148 → 0 bytes; heartbeat lag 0.5 s.
    // test/api/health-patroni.test.ts has the standbys that are behind.
    expect((await call('GET', `${C()}/replica?lag=10MB`)).status).toBe(200);
    expect((await call('GET', `${C()}/replica?lag=0`)).status).toBe(200);
    expect((await call('GET', `${C()}/async?lag=5s`)).status).toBe(200);
    const late = await call('GET', `${C()}/replica?lag=100ms`);
    expect(late.status).toBe(503);
    expect(late.body.reason).toMatch(/0\.5 s behind \(limit 0\.1 s\)/);
  });

  it('a bad ?lag or an unknown parameter is a 400 naming the field', async () => {
    expectError(await call('GET', `${C()}/replica?lag=fast`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.lag/);
    expectError(await call('GET', `${C()}/replica?lag=5parsecs`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.lag/);
    expectError(await call('GET', `${C()}/primary?foo=1`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.foo: is not a known field/);
  });

  it('503 with an error body when the status cannot be had', async () => {
    store.unavailable = true;
    try {
      const a = await call('GET', `${A()}/primary`);
      expectError(a, 503, 'MANATEE_ERR_RAFT_NO_LEADER');
      expect(a.headers['retry-after']).toBe('1');
    } finally {
      store.unavailable = false;
    }
  });

  it('parseLag reads bytes and durations, and evaluateHealth fails a limit on an unknown lag', () => {
    expect(parseLag('1048576')).toEqual({ kind: 'bytes', bytes: 1048576 });
    expect(parseLag('16MiB')).toEqual({ kind: 'bytes', bytes: 16 * 1024 * 1024 });
    expect(parseLag('10MB')).toEqual({ kind: 'bytes', bytes: 10 * 1024 * 1024 }); // PostgreSQL's units, as Patroni
    expect(parseLag('500ms')).toEqual({ kind: 'seconds', seconds: 0.5 });
    expect(parseLag('2m')).toEqual({ kind: 'seconds', seconds: 120 });
    expect(parseLag('2min')).toEqual({ kind: 'seconds', seconds: 120 });
    expect(() => parseLag('2 weeks')).toThrow(/querystring\.lag/);
    const s = statusOf(peers[2]!, store);
    const blind = { ...s, heartbeat: { ...s.heartbeat!, lagSeconds: null } };
    expect(evaluateHealth(blind, 'replica', { kind: 'seconds', seconds: 10 })).toMatchObject({ ok: false, reason: expect.stringMatching(/unknown/) });
    const down = { ...s, postgres: { ...s.postgres, online: false, healthy: false, error: 'connection refused' } };
    expect(evaluateHealth(down, 'health', null)).toMatchObject({ ok: false, reason: 'PostgreSQL is not serving: connection refused' });
    const readOnlyPrimary = { ...statusOf(peers[0]!, store), postgres: { ...statusOf(peers[0]!, store).postgres, writable: false } };
    expect(evaluateHealth(readOnlyPrimary, 'primary', null)).toMatchObject({ ok: false, reason: 'the primary, but read-only (waiting for its sync)' });
  });

  it('a primary fenced for want of a lease fails every serving check at once, whatever PostgreSQL says', () => {
    const p = statusOf(peers[0]!, store);
    expect(evaluateHealth({ ...p, lease: { fenced: false, validForMs: 900, reason: 'lease valid for 900 ms' } }, 'primary', null).ok).toBe(true);
    const fenced = { ...p, lease: { fenced: true, validForMs: -5, reason: 'no keepalive acknowledged for 1340 ms' } };
    for (const check of ['primary', 'read-write', 'read-only', 'read-only-sync', 'readiness'] as const) {
      expect(evaluateHealth(fenced, check, null)).toMatchObject({ ok: false, reason: 'the primary, but fenced: no keepalive acknowledged for 1340 ms' });
    }
    // PostgreSQL itself is still up until its stop completes: /health says so.
    expect(evaluateHealth(fenced, 'health', null).ok).toBe(true);
  });

  it('a primary whose lease was never renewed since its sitter started (cut off before its session\'s open committed) fails every serving check', () => {
    const p = statusOf(peers[0]!, store);
    // A sitter restarted while its PostgreSQL ran as the writable primary.
    const unleased = { ...p, lease: { fenced: false, validForMs: null, reason: 'not renewed yet (no session open committed, no keepalive acknowledged)' } };
    expect(unleased.postgres.writable).toBe(true);
    for (const check of ['primary', 'read-write', 'read-only', 'read-only-sync', 'readiness'] as const) {
      expect(evaluateHealth(unleased, check, null)).toMatchObject({
        ok: false, reason: 'the primary, but without a lease: not renewed yet (no session open committed, no keepalive acknowledged)',
      });
    }
    expect(evaluateHealth(unleased, 'health', null).ok).toBe(true);
  });
});

describe('GET /shard', () => {
  it('shows every peer with role and health, and each link with lag in bytes and seconds; a gone peer as unreachable', async () => {
    const a = await call('GET', `${C()}/shard`);
    expect(a.status).toBe(200);
    const r = a.body as ShardReport;
    expect(r.answeredBy).toBe('c');
    expect(r.peers.map((p) => [p.id, p.role, p.reachable])).toEqual([['a', 'primary', true], ['b', 'sync', true], ['c', 'async', true], ['z', 'deposed', false]]);
    expect(r.peers[3]!.error).toMatch(/ECONNREFUSED/);
    expect(r.links).toEqual([
      { upstream: 'a', downstream: 'b', expected: 'sync', state: 'streaming', syncState: 'sync', streaming: true, lagBytes: 72, lagSeconds: 0.5 },
      { upstream: 'b', downstream: 'c', expected: 'async', state: 'streaming', syncState: 'async', streaming: true, lagBytes: 72, lagSeconds: 0.5 },
    ]);
    expect(r.peers[0]).toMatchObject({ currentLsn: '0/3000148', writable: true, active: true });
  });

  it('400 on an unknown parameter, 503 without the store', async () => {
    expectError(await call('GET', `${A()}/shard?verbose=1`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.verbose/);
    store.unavailable = true;
    try {
      expectError(await call('GET', `${A()}/shard`), 503, 'MANATEE_ERR_RAFT_NO_LEADER');
    } finally {
      store.unavailable = false;
    }
  });
});

/** Reads server-sent events until `count` events (not comments) arrived; also returns the comments seen. */
function readEvents(url: string, count: number, onOpen?: () => void): Promise<{ events: { event: string; data: any }[]; comments: number; status: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET' }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve({ events: [], comments: 0, status: res.statusCode ?? 0 });
        return;
      }
      let buf = '';
      const events: { event: string; data: any }[] = [];
      let comments = 0;
      onOpen?.();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith(':')) {
            comments++;
            continue;
          }
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev !== undefined && data !== undefined) events.push({ event: ev, data: JSON.parse(data) });
        }
        if (events.length >= count && comments >= 1) {
          req.destroy();
          resolve({ events, comments, status: 200 });
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET /watch (server-sent events)', () => {
  afterEach(async () => {
    if (store.state!.freeze !== undefined) await call('POST', `${A()}/admin/unfreeze`, { body: {} });
  });

  it('opens with the current state, then delivers each committed change and peers change, with keepalive comments', async () => {
    const version0 = store.version;
    const got = readEvents(`${B()}/watch`, 3, () => {
      setTimeout(() => {
        void call('POST', `${A()}/admin/freeze`, { body: { reason: 'watch test' } }).then(() => { store.setActive(peers); });
      }, 50);
    });
    const r = await got;
    expect(r.events[0]).toMatchObject({ event: 'state', data: { version: version0 } });
    expect(r.events[1]).toMatchObject({ event: 'state', data: { version: version0 + 1, state: { freeze: { reason: 'watch test' } } } });
    expect(r.events[2]?.event).toBe('peers');
    expect((r.events[2]?.data as { peers: PeerInfo[] }).peers.map((p) => p.id)).toEqual(['a', 'b', 'c']);
    expect(r.comments).toBeGreaterThanOrEqual(1);
  });

  it('refuses watchers past the limit with 503, and 503 when the store is unavailable', async () => {
    // Two streams held open on peer a (its limit is 2); the third is refused.
    const held: IncomingMessage[] = [];
    const open = () => new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(`${A()}/watch`, { method: 'GET' }, (res) => { held.push(res); resolve(res); });
      req.on('error', reject);
      req.end();
    });
    try {
      await open();
      await open();
      const third = await call('GET', `${A()}/watch`);
      expectError(third, 503, 'MANATEE_ERR_TOO_MANY_WATCHERS');
    } finally {
      for (const res of held) res.destroy();
    }
    store.unavailable = true;
    try {
      expectError(await call('GET', `${C()}/watch`), 503, 'MANATEE_ERR_RAFT_NO_LEADER');
    } finally {
      store.unavailable = false;
    }
    expectError(await call('GET', `${C()}/watch?since=3`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.since/);
  });
});

describe('GET /watch and shutdown', () => {
  it('closing the server ends open streams instead of waiting for them, and unsubscribes them', async () => {
    const own = new MemoryStore(threePeerState(peers), peers);
    const server = await createApi(memoryDeps({ self: peers[0]!, store: own }));
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    const ended = new Promise<string>((resolve, reject) => {
      const req = request(`${url}/watch`, { method: 'GET' }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => { resolve(text); });
      });
      req.on('error', reject);
      req.end();
    });
    await waitFor('the stream to subscribe', () => own.watchers.size >= 2 || null);
    const t0 = Date.now();
    await server.close();
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await ended).toMatch(/^retry: 1000\nid: 1\nevent: state\n/);
    expect(own.watchers.size).toBe(0);
  });

  it('a client that does not read is dropped once its unsent data passes the limit', async () => {
    const own = new MemoryStore(threePeerState(peers), peers);
    const server = await createApi(memoryDeps({ self: peers[0]!, store: own, limits: { watchBufferBytesMax: 64 * 1024, watchKeepaliveMs: 60_000 } }));
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    try {
      const req = request(`${url}/watch`, { method: 'GET' }, (res) => {
        res.pause(); // never reads
      });
      req.on('error', () => undefined);
      req.end();
      await waitFor('the stream to subscribe', () => own.watchers.size >= 2 || null);
      // Big states until the socket buffers fill and the server gives up on this client.
      const big = { ...own.state!, freeze: { date: new Date().toISOString(), reason: 'x'.repeat(200_000) } };
      for (let i = 0; i < 200 && own.watchers.size >= 2; i++) {
        own.commit(big, `big ${i}`);
        await new Promise((r) => setImmediate(r));
      }
      expect(own.watchers.size).toBe(1); // only the server's own metrics subscription is left
      req.destroy();
    } finally {
      await server.close();
    }
  });
});

describe('GET /metrics', () => {
  it('serves this peer\'s figures in Prometheus text format, from its own registry', async () => {
    const a = await call('GET', `${A()}/metrics`);
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toMatch(/^text\/plain/);
    expect(a.text).toMatch(/^manatee_role\{role="primary"\} 1$/m);
    expect(a.text).toMatch(/^manatee_role\{role="sync"\} 0$/m);
    expect(a.text).toMatch(/^manatee_generation 3$/m);
    expect(a.text).toMatch(/^manatee_raft_term 2$/m);
    expect(a.text).toMatch(/^manatee_sessions 3$/m);
    expect(a.text).toMatch(/^manatee_replication_lag_bytes\{upstream="a",downstream="b",state="streaming"\} 72$/m);
    expect(a.text).toMatch(/^manatee_health_check_latency_seconds 0\.002$/m);
    expect(a.text).toMatch(/^manatee_rebuild_running 0$/m);
    const c = await call('GET', `${C()}/metrics`);
    expect(c.text).toMatch(/^manatee_role\{role="async"\} 1$/m);
    expect(c.text).toMatch(/^manatee_replication_lag_seconds\{peer="c",upstream="b"\} 0\.5$/m);
  });

  it('counts primary changes as failovers', async () => {
    const before = store.state!;
    const [a, b, c] = peers as [PeerInfo, PeerInfo, PeerInfo];
    store.commit({ ...before, generation: before.generation + 1, primary: b, sync: c, async: [], deposed: [...before.deposed, a], initWal: '0/4000000' }, 'b took over');
    try {
      const m = await call('GET', `${C()}/metrics`);
      expect(m.text).toMatch(/^manatee_failovers_total 1$/m);
    } finally {
      store.commit(before, 'restored for the next tests');
    }
  });

  it('400 on a parameter, 503 without the store', async () => {
    expectError(await call('GET', `${A()}/metrics?x=1`), 400, 'MANATEE_ERR_BAD_REQUEST');
    store.unavailable = true;
    try {
      expectError(await call('GET', `${A()}/metrics`), 503, 'MANATEE_ERR_RAFT_NO_LEADER');
    } finally {
      store.unavailable = false;
    }
  });
});

describe('Raft membership: GET /members, POST /admin/peers, DELETE /admin/peers/:id, POST /admin/peers/remove', () => {
  beforeEach(() => {
    raft.voters = ['a', 'b', 'c'];
    raft.learners = [];
    raft.noLeader = false;
  });

  it('adds a peer as a learner then a voter, and removes it both ways', async () => {
    const add = await call('POST', `${B()}/admin/peers`, { body: { id: 'd', address: '127.0.0.1:7003' } });
    expect(add.status).toBe(200);
    expect(add.body).toMatchObject({ summary: 'added d (127.0.0.1:7003) to the Raft group as a voter', members: { voters: ['a', 'b', 'c', 'd'], learners: [] } });
    expect((await call('GET', `${C()}/members`)).body).toMatchObject({ voters: ['a', 'b', 'c', 'd'], addresses: { d: '127.0.0.1:7003' } });
    const del = await call('DELETE', `${A()}/admin/peers/d`);
    expect(del.status).toBe(200);
    expect(del.body.members.voters).toEqual(['a', 'b', 'c']);
    const rm = await call('POST', `${A()}/admin/peers/remove`, { body: { id: 'c' } });
    expect(rm.body.members.voters).toEqual(['a', 'b']);
  });

  it('401 without the token, 403 with a wrong one', async () => {
    expectError(await call('POST', `${A()}/admin/peers`, { body: { id: 'd', address: 'h:1' }, token: null }), 401, 'MANATEE_ERR_UNAUTHORIZED');
    expectError(await call('DELETE', `${A()}/admin/peers/c`, { token: 'wrong' }), 403, 'MANATEE_ERR_FORBIDDEN');
    expectError(await call('POST', `${A()}/admin/peers/remove`, { body: { id: 'c' }, token: 'wrong' }), 403, 'MANATEE_ERR_FORBIDDEN');
    expect(raft.voters).toEqual(['a', 'b', 'c']);
  });

  it('400 names the bad field; 404 for a non-member; 409 for a member already there or the last voter; 503 without a leader', async () => {
    expectError(await call('POST', `${A()}/admin/peers`, { body: { id: 'd' } }), 400, 'MANATEE_ERR_BAD_REQUEST', /body\.address: is required/);
    expectError(await call('POST', `${A()}/admin/peers`, { body: { id: 'd', address: 'no port' } }), 400, 'MANATEE_ERR_BAD_REQUEST', /body\.address: has a bad format/);
    expectError(await call('POST', `${A()}/admin/peers`, { body: { id: '../x', address: 'h:1' } }), 400, 'MANATEE_ERR_BAD_REQUEST', /body\.id/);
    expectError(await call('DELETE', `${A()}/admin/peers/no%20such`), 400, 'MANATEE_ERR_BAD_REQUEST', /params\.id/);
    expectError(await call('DELETE', `${A()}/admin/peers/q`), 404, 'MANATEE_ERR_PEER_NOT_FOUND', /q is not a member/);
    expectError(await call('POST', `${A()}/admin/peers`, { body: { id: 'a', address: 'h:1' } }), 409, 'MANATEE_ERR_PEER_ALREADY_MEMBER');
    raft.voters = ['a'];
    expectError(await call('POST', `${A()}/admin/peers/remove`, { body: { id: 'a' } }), 409, 'MANATEE_ERR_RAFT_CONF_CHANGE_INVALID', /last voter/);
    raft.voters = ['a', 'b', 'c'];
    raft.noLeader = true;
    expectError(await call('POST', `${A()}/admin/peers`, { body: { id: 'd', address: 'h:1' } }), 503, 'MANATEE_ERR_RAFT_NO_LEADER');
  });

  it('an add whose promotion failed is finished by adding again', async () => {
    raft.learners = ['d'];
    raft.addresses['d'] = '127.0.0.1:7003';
    const again = await call('POST', `${A()}/admin/peers`, { body: { id: 'd', address: '127.0.0.1:7003' } });
    expect(again.status).toBe(200);
    expect(again.body.members).toMatchObject({ voters: ['a', 'b', 'c', 'd'], learners: [] });
  });
});

describe('GET /openapi.json', () => {
  it('documents every route with its schemas, generated from the registered routes', async () => {
    const a = await call('GET', `${A()}/openapi.json`);
    expect(a.status).toBe(200);
    expect(a.body.openapi).toBe('3.1.0');
    const paths = a.body.paths as Record<string, Record<string, any>>;
    for (const p of ['/status', '/shard', '/state', '/history', '/peers', '/members', '/watch', '/metrics', '/primary', '/replica', '/health', '/admin/freeze', '/admin/peers', '/admin/peers/{id}', '/admin/peers/remove']) {
      expect(Object.keys(paths)).toContain(p);
    }
    expect(paths['/admin/peers']!['post'].requestBody.content['application/json'].schema.required).toEqual(['id', 'address']);
    expect(paths['/admin/peers/{id}']!['delete'].parameters).toEqual([expect.objectContaining({ name: 'id', in: 'path', required: true })]);
    expect(paths['/replica']!['get'].parameters).toEqual([
      expect.objectContaining({ name: 'lag', in: 'query', required: false }),
      expect.objectContaining({ name: 'replication_state', in: 'query', required: false, schema: expect.objectContaining({ enum: expect.arrayContaining(['streaming', 'stopped']) }) }),
    ]);
    expect(paths['/readiness']!['get'].parameters).toEqual([
      expect.objectContaining({ name: 'lag', in: 'query', required: false }),
      expect.objectContaining({ name: 'mode', in: 'query', required: false, schema: expect.objectContaining({ enum: ['apply', 'write'] }) }),
    ]);
    expect(paths['/liveness']!['get'].parameters ?? []).toEqual([]);
    expect(paths['/admin/freeze']!['post'].security).toEqual([{ adminToken: [] }]);
    expect(paths['/primary']!['get'].responses['503']).toBeDefined();
    expect(paths['/history']!['head']).toBeUndefined();
    // It lists itself, and OPTIONS on the health checks (HAProxy's default method).
    expect(paths['/openapi.json']!['get'].summary).toBe('This document');
    expect(paths['/replica']!['options'].summary).toBe(paths['/replica']!['get'].summary);
    expect(Object.keys(paths['/']!).sort()).toEqual(['get', 'options']);
  });

  it('is strict about its query string, as the other routes', async () => {
    expectError(await call('GET', `${A()}/openapi.json?x=1`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.x: is not a known field/);
  });
});

describe('fuzzing the API: nothing crashes, every answer is a clear 4xx', () => {
  const routes: [string, string][] = [
    ['POST', '/admin/freeze'], ['POST', '/admin/unfreeze'], ['POST', '/admin/promote'], ['POST', '/admin/clear-promote'],
    ['POST', '/admin/reap'], ['POST', '/admin/onwm'], ['POST', '/admin/rebuild'], ['POST', '/admin/peers'], ['POST', '/admin/peers/remove'],
  ];
  const bodies: (string | Buffer)[] = [
    // (A JSON null is taken as no body at all: `curl -X POST` with nothing works on argument-less routes.)
    '{', '{"reason":', '[]', '"text"', '42', 'true', '{"reason": 42}', '{"peerId": {"$ne": 1}}', '{"on": "yes"}',
    '{"id": "d", "address": 7}', '{"unknown": 1}', '{"reason": "x", "extra": [1,2,3]}', '{"__proto__": {"admin": true}}',
    '{"constructor": {"prototype": {"x": 1}}}', '\u0000\u0001\u0002', Buffer.from([0xff, 0xfe, 0xfd]), '{"a":'.repeat(2000),
    JSON.stringify({ reason: 'x'.repeat(100_000) }),
  ];

  it('malformed JSON, wrong types, unknown fields, huge and binary bodies on every admin route', async () => {
    const votersBefore = [...raft.voters];
    const seen = new Set<number>();
    for (const [method, path] of routes) {
      for (const body of bodies) {
        const a = await call(method, `${C()}${path}`, { raw: body });
        seen.add(a.status);
        expect(a.status, `${method} ${path} ${String(body).slice(0, 40)}`).toBeGreaterThanOrEqual(400);
        expect(a.status, `${method} ${path} ${String(body).slice(0, 40)}`).toBeLessThan(500);
        expect(typeof a.body?.error?.code, `${method} ${path} ${String(body).slice(0, 40)}`).toBe('string');
        expect(a.body.error.message.length).toBeGreaterThan(0);
      }
    }
    expect([...seen].sort()).toEqual(expect.arrayContaining([400, 413]));
    // The shard is as it was: no request got through.
    expect(store.state!.freeze).toBeUndefined();
    expect(raft.voters).toEqual(votersBefore);
  });

  it('wrong types and unknown fields in query strings and paths of the read routes', async () => {
    const urls = ['/history?limit=abc', '/history?limit=-1', '/history?limit=99999999', '/history?limit=1&limit=2', '/replica?lag=%00',
      '/replica?lag=' + '9'.repeat(40), '/state?x=1', '/watch?x', '/nowhere', '/admin/nowhere', '/%zz', '/status?' + 'a=1&'.repeat(500)];
    for (const u of urls) {
      const a = await call('GET', `${A()}${u}`, { token: null });
      expect(a.status, u).toBeGreaterThanOrEqual(400);
      expect(a.status, u).toBeLessThan(500);
      expect(typeof a.body?.error?.code, u).toBe('string');
    }
    // Still serving.
    expect((await call('GET', `${A()}/ping`)).status).toBe(200);
  });

  it('a foreign content type is a 415, and a body on a DELETE is refused or ignored, never a crash', async () => {
    expectError(await call('POST', `${A()}/admin/freeze`, { raw: 'reason=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'MANATEE_ERR_UNSUPPORTED_MEDIA_TYPE');
    const d = await call('DELETE', `${A()}/admin/peers/zz`, { raw: '{"x":' });
    expect(d.status).toBeGreaterThanOrEqual(400);
    expect(d.status).toBeLessThan(500);
  });
});
