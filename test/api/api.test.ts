// The HTTP API on a real fastify server on 127.0.0.1 (ephemeral port), over the in-memory
// reference implementation of its dependencies: each route's success and each error status
// with the code in the body.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import type { ApiDeps } from '../../src/api/types.js';
import { ManateeError } from '../../src/errors.js';
import { ADMIN_TOKEN, capturingLogger, MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';
import { expectApiError } from '../helpers/http.js';

const A = peer('a');
const B = peer('b');
const C = peer('c');
const Z = peer('z');

let app: FastifyInstance | null = null;
let base = '';
let store: MemoryStore;
let log: ReturnType<typeof capturingLogger>;

async function start(deps: ApiDeps): Promise<void> {
  app = await createApi(deps);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
}

beforeEach(async () => {
  store = new MemoryStore(threePeerState([A, B, C], [Z]), [A, B, C]);
  log = capturingLogger();
  await start(memoryDeps({ self: C, store, logger: log.logger }));
});

afterEach(async () => {
  await app?.close();
  app = null;
});

interface Answer {
  status: number;
  body: any;
}

async function call(
  method: 'GET' | 'POST',
  path: string,
  opts: { body?: unknown; raw?: string; token?: string | null; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : JSON.parse(text) };
}

const expectError = expectApiError;

describe('read routes', () => {
  it('GET /ping answers with this peer id', async () => {
    const a = await call('GET', '/ping');
    expect(a).toEqual({ status: 200, body: { ok: true, peerId: 'c' } });
  });

  it('GET /status returns the sitter status', async () => {
    const a = await call('GET', '/status');
    expect(a.status).toBe(200);
    expect(a.body.peer.id).toBe('c');
    expect(a.body.role).toBe('async');
    expect(a.body.state.primary.id).toBe('a');
    expect(a.body.postgres.online).toBe(true);
    expect(a.body.lastDecision.kind).toBe('none');
    expect(a.body.sitterPid).toBe(process.pid);
  });

  it('GET /state returns the state and its version', async () => {
    const a = await call('GET', '/state');
    expect(a.status).toBe(200);
    expect(a.body.version).toBe(1);
    expect(a.body.state.sync.id).toBe('b');
    expect(a.body.state.deposed.map((p: { id: string }) => p.id)).toEqual(['z']);
  });

  it('GET /state before initial setup returns a null state', async () => {
    await app?.close();
    store = new MemoryStore(null, [A]);
    await start(memoryDeps({ self: A, store }));
    expect(await call('GET', '/state')).toEqual({ status: 200, body: { state: null, version: 0 } });
    expect((await call('GET', '/status')).body.role).toBe('unassigned');
  });

  it('GET /history returns the newest entries up to ?limit', async () => {
    for (const gen of [4, 5, 6]) store.commit({ ...store.state!, generation: gen }, `generation ${gen}`);
    const all = await call('GET', '/history');
    expect(all.body.history.map((h: { generation: number }) => h.generation)).toEqual([3, 4, 5, 6]);
    const two = await call('GET', '/history?limit=2');
    expect(two.status).toBe(200);
    expect(two.body.history.map((h: { summary: string }) => h.summary)).toEqual(['generation 5', 'generation 6']);
  });

  it('GET /history refuses a limit out of range or not a number, naming the field', async () => {
    expectError(await call('GET', '/history?limit=0'), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.limit/);
    expectError(await call('GET', '/history?limit=1001'), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.limit/);
    expectError(await call('GET', '/history?limit=many'), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.limit/);
  });

  it('GET /peers returns the active peers', async () => {
    const a = await call('GET', '/peers');
    expect(a.status).toBe(200);
    expect(a.body.peers.map((p: { id: string }) => p.id)).toEqual(['a', 'b', 'c']);
  });

  it('refuses unknown query parameters, naming them', async () => {
    expectError(await call('GET', '/ping?verbose=1'), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.verbose: is not a known field/);
  });

  it('answers 404 with a code for an unknown route', async () => {
    expectError(await call('GET', '/nowhere'), 404, 'MANATEE_ERR_NOT_FOUND', /GET \/nowhere/);
  });

  it('answers 503 when the store has no leader', async () => {
    store.unavailable = true;
    for (const path of ['/status', '/state', '/history', '/peers']) {
      expectError(await call('GET', path), 503, 'MANATEE_ERR_RAFT_NO_LEADER');
    }
    expect((await fetch(`${base}/state`)).headers.get('retry-after')).toBe('1');
    expect((await call('GET', '/ping')).status).toBe(200); // the sitter itself is alive
  });

  it('answers 500 without details when a dependency fails unexpectedly, and logs it', async () => {
    await app?.close();
    const deps = memoryDeps({ self: A, store, logger: log.logger });
    await start({ ...deps, status: () => Promise.reject(new TypeError('secret internals')) });
    const a = await call('GET', '/status');
    expectError(a, 500, 'MANATEE_ERR_INTERNAL');
    expect(a.body.error.message).not.toContain('secret');
    expect(log.lines().some((l) => l['msg'] === 'request failed: secret internals')).toBe(true);
  });

  it('registers the extra plugins that the sitter passes', async () => {
    await app?.close();
    const deps = memoryDeps({ self: A, store });
    // eslint-disable-next-line @typescript-eslint/require-await
    await start({ ...deps, extraPlugins: [async (f) => { f.get('/backup/ping', () => ({ backup: true })); }] });
    expect(await call('GET', '/backup/ping')).toEqual({ status: 200, body: { backup: true } });
  });
});

describe('admin authentication', () => {
  it('answers 401 without a token and with a malformed header, 403 with a wrong token', async () => {
    expectError(await call('POST', '/admin/freeze', { body: { reason: 'x' }, token: null }), 401, 'MANATEE_ERR_UNAUTHORIZED');
    expectError(
      await call('POST', '/admin/freeze', { body: { reason: 'x' }, token: null, headers: { authorization: `Basic ${ADMIN_TOKEN}` } }),
      401,
      'MANATEE_ERR_UNAUTHORIZED',
    );
    expectError(await call('POST', '/admin/freeze', { body: { reason: 'x' }, token: 'wrong' }), 403, 'MANATEE_ERR_FORBIDDEN');
    expectError(await call('POST', '/admin/freeze', { body: { reason: 'x' }, token: `${ADMIN_TOKEN}x` }), 403, 'MANATEE_ERR_FORBIDDEN');
    expect(store.state!.freeze).toBeUndefined();
    const denied = log.lines().filter((l) => l['result'] === 'denied');
    expect(denied.map((l) => l['code'])).toEqual([
      'MANATEE_ERR_UNAUTHORIZED',
      'MANATEE_ERR_UNAUTHORIZED',
      'MANATEE_ERR_FORBIDDEN',
      'MANATEE_ERR_FORBIDDEN',
    ]);
  });

  it('checks the token before reading the body', async () => {
    // Without the token, even a malformed body gets 401, not 400: nothing is parsed for strangers.
    expectError(await call('POST', '/admin/freeze', { raw: '{not json', token: null }), 401, 'MANATEE_ERR_UNAUTHORIZED');
  });

  it('refuses to build an API without an admin token', async () => {
    await expect(createApi({ ...memoryDeps({ self: A, store }), adminToken: '' })).rejects.toThrow(/admin token/);
  });
});

describe('admin input validation', () => {
  it('names a missing field, an unknown field and a wrong type', async () => {
    expectError(await call('POST', '/admin/freeze', { body: {} }), 400, 'MANATEE_ERR_BAD_REQUEST', /body\.reason: is required/);
    expectError(
      await call('POST', '/admin/freeze', { body: { reason: 'x', force: true } }),
      400,
      'MANATEE_ERR_BAD_REQUEST',
      /body\.force: is not a known field/,
    );
    expectError(await call('POST', '/admin/onwm', { body: { on: 'yes' } }), 400, 'MANATEE_ERR_BAD_REQUEST', /body\.on: must be boolean/);
    expectError(await call('POST', '/admin/promote', { body: { peerId: 'b', expireMs: 10 } }), 400, 'MANATEE_ERR_BAD_REQUEST', /body\.expireMs/);
    expectError(await call('POST', '/admin/reap', { body: { peerId: '../etc' } }), 400, 'MANATEE_ERR_BAD_REQUEST', /body\.peerId/);
    expectError(await call('POST', '/admin/unfreeze', { body: { now: true } }), 400, 'MANATEE_ERR_BAD_REQUEST', /body\.now/);
    expect(store.version).toBe(1);
  });

  it('answers 400 to malformed JSON, 413 to a huge body and 415 to a foreign media type', async () => {
    expectError(await call('POST', '/admin/freeze', { raw: '{"reason": ' }), 400, 'MANATEE_ERR_BAD_REQUEST');
    expectError(await call('POST', '/admin/freeze', { body: { reason: 'x'.repeat(20_000) } }), 413, 'MANATEE_ERR_BODY_TOO_LARGE');
    expectError(
      await call('POST', '/admin/freeze', { raw: '<reason/>', headers: { 'content-type': 'application/xml' } }),
      415,
      'MANATEE_ERR_UNSUPPORTED_MEDIA_TYPE',
    );
  });
});

describe('admin routes', () => {
  it('freeze: 200 with the new state, then 409 when already frozen; logs who did what', async () => {
    const a = await call('POST', '/admin/freeze', { body: { reason: 'upgrade' }, headers: { 'x-manatee-operator': 'ops@box' } });
    expect(a.status).toBe(200);
    expect(a.body.state.freeze.reason).toBe('upgrade');
    expect(a.body.version).toBe(2);
    expect(a.body.summary).toBe('frozen by operator: upgrade');
    expect(store.entries.at(-1)?.summary).toBe('frozen by operator: upgrade');
    expectError(await call('POST', '/admin/freeze', { body: { reason: 'again' } }), 409, 'MANATEE_ERR_ALREADY_FROZEN', /upgrade/);

    const lines = log.lines().filter((l) => l['admin'] === 'freeze');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ result: 'ok', operator: 'ops@box', from: '127.0.0.1', args: { reason: 'upgrade' }, version: 2 });
    expect(lines[1]).toMatchObject({ result: 'refused', code: 'MANATEE_ERR_ALREADY_FROZEN' });
  });

  it('unfreeze: 200 on a frozen shard (also with no body at all), 409 otherwise', async () => {
    expectError(await call('POST', '/admin/unfreeze', { body: {} }), 409, 'MANATEE_ERR_NOT_FROZEN');
    await call('POST', '/admin/freeze', { body: { reason: 'r' } });
    const a = await call('POST', '/admin/unfreeze');
    expect(a.status).toBe(200);
    expect(a.body.state.freeze).toBeUndefined();
  });

  it('promote: 200 for the sync, then 409 while pending; 404 for a stranger; 409 for the primary or when frozen', async () => {
    expectError(await call('POST', '/admin/promote', { body: { peerId: 'nobody' } }), 404, 'MANATEE_ERR_PEER_NOT_FOUND');
    expectError(await call('POST', '/admin/promote', { body: { peerId: 'a' } }), 409, 'MANATEE_ERR_BAD_PROMOTE');
    const a = await call('POST', '/admin/promote', { body: { peerId: 'b', expireMs: 30_000 } });
    expect(a.status).toBe(200);
    expect(a.body.state.promote).toMatchObject({ id: 'b', role: 'sync', generation: 3 });
    const expiresInMs = Date.parse(a.body.state.promote.expireTime) - Date.now();
    expect(expiresInMs).toBeGreaterThan(20_000);
    expect(expiresInMs).toBeLessThanOrEqual(30_000);
    expectError(await call('POST', '/admin/promote', { body: { peerId: 'c' } }), 409, 'MANATEE_ERR_PROMOTE_PENDING');

    expect((await call('POST', '/admin/clear-promote')).status).toBe(200);
    await call('POST', '/admin/freeze', { body: { reason: 'r' } });
    expectError(await call('POST', '/admin/promote', { body: { peerId: 'c' } }), 409, 'MANATEE_ERR_FROZEN');
  });

  it('clear-promote: 200 with a request, 409 without', async () => {
    expectError(await call('POST', '/admin/clear-promote', { body: {} }), 409, 'MANATEE_ERR_NO_PROMOTE');
    await call('POST', '/admin/promote', { body: { peerId: 'c' } });
    const a = await call('POST', '/admin/clear-promote', { body: {} });
    expect(a.status).toBe(200);
    expect(a.body.state.promote).toBeUndefined();
  });

  it('reap: 200 for a gone deposed peer; 409 in the chain or alive; 404 unknown', async () => {
    expectError(await call('POST', '/admin/reap', { body: { peerId: 'b' } }), 409, 'MANATEE_ERR_PEER_IN_CHAIN');
    expectError(await call('POST', '/admin/reap', { body: { peerId: 'nobody' } }), 404, 'MANATEE_ERR_PEER_NOT_FOUND');
    store.active.push(Z);
    expectError(await call('POST', '/admin/reap', { body: { peerId: 'z' } }), 409, 'MANATEE_ERR_PEER_ACTIVE');
    store.active.pop();
    const a = await call('POST', '/admin/reap', { body: { peerId: 'z' } });
    expect(a.status).toBe(200);
    expect(a.body.state.deposed).toEqual([]);
  });

  it('rebuild: 200 on an async (this server is peer c), 409 on the primary', async () => {
    const a = await call('POST', '/admin/rebuild', { body: {} });
    expect(a).toEqual({ status: 200, body: { peerId: 'c', started: true, message: 'rebuild of c started' } });
    await app?.close();
    await start(memoryDeps({ self: A, store }));
    expectError(await call('POST', '/admin/rebuild'), 409, 'MANATEE_ERR_BAD_REBUILD', /primary/);
  });

  it("onwm: the operator's override on, refused when unchanged, off, and cleared with mode config", async () => {
    const on = await call('POST', '/admin/onwm', { body: { on: true } });
    expect(on.status).toBe(200);
    expect(on.body.state.onwmOverride).toBe(true);
    expect(on.body.state.sync.id).toBe('b'); // the primary drops it at the next generation, not the API
    expect(on.body.summary).toMatch(/the primary drops its sync and asyncs at the next generation/);
    expectError(await call('POST', '/admin/onwm', { body: { mode: 'on' } }), 409, 'MANATEE_ERR_ONWM_UNCHANGED');
    const off = await call('POST', '/admin/onwm', { body: { mode: 'off' } });
    expect(off.status).toBe(200);
    expect(off.body.state.onwmOverride).toBe(false);
    const clear = await call('POST', '/admin/onwm', { body: { mode: 'config' } });
    expect(clear.status).toBe(200);
    expect('onwmOverride' in clear.body.state).toBe(false);
    expect(store.state!.onwmOverride).toBeUndefined();
    expectError(await call('POST', '/admin/onwm', { body: { mode: 'config' } }), 409, 'MANATEE_ERR_ONWM_UNCHANGED');
  });

  it('onwm: 409 MANATEE_ERR_FROZEN on a frozen shard; 400 for a bad mode, both fields, or neither', async () => {
    store.commit({ ...store.state!, freeze: { date: '2026-01-01T00:00:00.000Z', reason: 'r' } }, 'test: frozen');
    expectError(await call('POST', '/admin/onwm', { body: { on: true } }), 409, 'MANATEE_ERR_FROZEN', /unfreeze it first/);
    expectError(await call('POST', '/admin/onwm', { body: { mode: 'maybe' } }), 400, 'MANATEE_ERR_BAD_REQUEST', /body\.mode: must be equal to one of the allowed values/);
    expectError(await call('POST', '/admin/onwm', { body: { on: true, mode: 'on' } }), 400, 'MANATEE_ERR_BAD_REQUEST', /body: must NOT have more than 1 properties/);
    expectError(await call('POST', '/admin/onwm', { body: {} }), 400, 'MANATEE_ERR_BAD_REQUEST', /body: must NOT have fewer than 1 properties/);
    expect(store.state!.onwmOverride).toBeUndefined();
  });

  it('answers 409 when there is no state yet', async () => {
    await app?.close();
    store = new MemoryStore(null, [A]);
    await start(memoryDeps({ self: A, store }));
    expectError(await call('POST', '/admin/freeze', { body: { reason: 'r' } }), 409, 'MANATEE_ERR_NO_STATE');
  });

  it('answers 503 when the store cannot write (no Raft leader)', async () => {
    store.unavailable = true;
    expectError(await call('POST', '/admin/freeze', { body: { reason: 'r' } }), 503, 'MANATEE_ERR_RAFT_NO_LEADER');
    expect(log.lines().filter((l) => l['admin'] === 'freeze')[0]).toMatchObject({ result: 'failed', code: 'MANATEE_ERR_RAFT_NO_LEADER' });
  });

  it('recomputes the change when another writer wins the compare-and-set, and gives up with 409 after repeated losses', async () => {
    // One concurrent write (the primary appends an async) between the read and the write.
    let races = 1;
    store.beforePut = () => {
      if (races-- > 0) store.commit({ ...store.state!, async: [...store.state!.async, peer('d')] }, 'async d added');
    };
    const a = await call('POST', '/admin/freeze', { body: { reason: 'r' } });
    expect(a.status).toBe(200);
    expect(a.body.state.async.map((p: { id: string }) => p.id)).toEqual(['c', 'd']);
    expect(a.body.state.freeze.reason).toBe('r');

    store.beforePut = () => store.commit(store.state!, 'someone else again');
    expectError(await call('POST', '/admin/unfreeze'), 409, 'MANATEE_ERR_STORE_VERSION_MISMATCH');
  });

  it('maps a ManateeError with an unlisted code to 500 but keeps its code', async () => {
    await app?.close();
    const deps = memoryDeps({ self: A, store });
    await start({ ...deps, admin: { ...deps.admin, unfreeze: () => Promise.reject(new ManateeError('MANATEE_ERR_SOMETHING_NEW', 'new failure')) } });
    expectError(await call('POST', '/admin/unfreeze'), 500, 'MANATEE_ERR_SOMETHING_NEW', /new failure/);
  });
});

describe('malformed input', () => {
  // Deterministic junk for every admin route that takes arguments: every answer is a clear 4xx
  // with a code, nothing is written, and the server keeps answering.
  const junk: string[] = [
    '',
    '[]',
    '"reason"',
    '42',
    'true',
    '{',
    '{"reason": 5}',
    '{"peerId": 5}',
    '{"peerId": ""}',
    '{"on": null}',
    '{"__proto__": {"admin": true}}',
    '{"constructor": {"prototype": {"x": 1}}}',
    `{"reason": "${'\\u0000'.repeat(10)}"}`,
    `${'['.repeat(5000)}${']'.repeat(5000)}`,
    `{"peerId": "${'a'.repeat(100)}"}`,
    '{"reason": "x", "reason": {"nested": 1}}',
  ];
  const routes = ['/admin/freeze', '/admin/promote', '/admin/reap', '/admin/onwm'];
  const codes = new Set(['MANATEE_ERR_BAD_REQUEST', 'MANATEE_ERR_BODY_TOO_LARGE', 'MANATEE_ERR_INVALID_ARGUMENT']);

  it('answers every malformed body with a 4xx and a code, and writes nothing', async () => {
    for (const route of routes) {
      for (const raw of junk) {
        const a = await call('POST', route, { raw, headers: { 'content-type': 'application/json' } });
        expect({ route, raw: raw.slice(0, 40), status: a.status >= 400 && a.status < 500 }).toEqual({ route, raw: raw.slice(0, 40), status: true });
        expect(codes.has(a.body.error.code)).toBe(true);
      }
    }
    expect(store.version).toBe(1);
    expect(({} as Record<string, unknown>)['admin']).toBeUndefined();
    expect((await call('GET', '/ping')).status).toBe(200);
  });
});
