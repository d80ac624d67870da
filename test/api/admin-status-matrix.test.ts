// Every admin route against every status it can answer, table-driven: no token → 401, a wrong
// token → 403, bad input → 400 naming the field, an unknown peer → 404 (where the route names a
// peer), no Raft leader → 503, and a success. The table is checked against the routes the app
// really serves (/openapi.json is generated from them), so an admin route added without a row
// fails here. Each error answer carries {error: {code, message}} and changes nothing.
// A real fastify on 127.0.0.1 (ephemeral port) over the in-memory deps of memory.ts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import type { ApiDeps } from '../../src/api/types.js';
import { RaftStoppedError } from '../../src/raft/errors.js';
import { ADMIN_TOKEN, MemoryRaftNode, MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';
import { expectApiError } from '../helpers/http.js';

const A = peer('a');
const B = peer('b');
const C = peer('c');
const Z = peer('z');

let app: FastifyInstance | null = null;
let base = '';
let store: MemoryStore;
let raft: MemoryRaftNode;
let deps: ApiDeps;

async function start(d: ApiDeps): Promise<void> {
  app = await createApi(d);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
}

beforeEach(async () => {
  // This API is c's, an async: rebuild is allowed there. z is deposed and gone (reapable).
  store = new MemoryStore(threePeerState([A, B, C], [Z]), [A, B, C]);
  raft = new MemoryRaftNode(['a', 'b', 'c']);
  deps = memoryDeps({ self: C, store, raft });
  await start(deps);
});

afterEach(async () => {
  await app?.close();
  app = null;
});

type Method = 'GET' | 'POST' | 'DELETE';

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

interface Req {
  readonly url: string;
  readonly body?: unknown;
  /** A body sent as is (not JSON.stringify'd). */
  readonly raw?: string;
}

async function call(method: Method, req: Req, token: string | null = ADMIN_TOKEN): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== null) headers['authorization'] = `Bearer ${token}`;
  const body = req.raw ?? (req.body === undefined ? undefined : JSON.stringify(req.body));
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${req.url}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? null : JSON.parse(text) };
}

const expectError = expectApiError;

/** What the admin routes can change: the cluster state and the Raft configuration. */
function snapshot(): unknown {
  return { version: store.version, state: store.state, voters: [...raft.voters], learners: [...raft.learners] };
}

/** A lost quorum: no Raft leader, so neither the store nor the membership can make a write. */
function loseQuorum(): void {
  store.unavailable = true;
  raft.noLeader = true;
}

interface AdminRow {
  readonly method: 'POST' | 'DELETE';
  /** As /openapi.json spells it. */
  readonly path: string;
  /** A well-formed request: what 401, 403 and 503 are asked with (only the token or the store is wrong). */
  readonly valid: Req;
  /** null: not tested here (onwm's body is being changed; its success is tested with it). */
  readonly success: { readonly setup?: () => Promise<unknown>; readonly req: Req; readonly check: (body: any) => void } | null;
  /** Bad input, and the field the message must name. */
  readonly badRequest: { readonly req: Req; readonly message: RegExp };
  /** An unknown peer, or why the route cannot answer 404 (it names no peer): no 404 test then. */
  readonly notFound: { readonly req: Req; readonly message: RegExp } | { readonly notApplicable: string };
}

const ids = (list: readonly { id: string }[]): string[] => list.map((p) => p.id);

/** A time in the future for the scheduled restart rows (the API takes ISO 8601 only). */
const RESTART_AT = new Date(Date.now() + 3_600_000).toISOString();

const ROWS: readonly AdminRow[] = [
  {
    method: 'POST',
    path: '/admin/freeze',
    valid: { url: '/admin/freeze', body: { reason: 'maintenance' } },
    success: {
      req: { url: '/admin/freeze', body: { reason: 'maintenance' } },
      check: (b) => {
        expect(b.state.freeze.reason).toBe('maintenance');
        expect(b.version).toBe(2);
      },
    },
    badRequest: { req: { url: '/admin/freeze', body: {} }, message: /body\.reason: is required/ },
    notFound: { notApplicable: 'freeze names no peer' },
  },
  {
    method: 'POST',
    path: '/admin/unfreeze',
    valid: { url: '/admin/unfreeze' },
    success: {
      setup: () => deps.admin.freeze('before unfreeze'),
      req: { url: '/admin/unfreeze' },
      check: (b) => {
        expect(b.state.freeze).toBeUndefined();
        expect(b.summary).toMatch(/unfr/i);
      },
    },
    badRequest: { req: { url: '/admin/unfreeze', body: { force: true } }, message: /body\.force: is not a known field/ },
    notFound: { notApplicable: 'unfreeze names no peer' },
  },
  {
    method: 'POST',
    path: '/admin/promote',
    valid: { url: '/admin/promote', body: { peerId: 'b' } },
    success: {
      req: { url: '/admin/promote', body: { peerId: 'b', expireMs: 60_000 } },
      check: (b) => {
        expect(b.state.promote).toMatchObject({ id: 'b', role: 'sync', generation: 3 });
      },
    },
    badRequest: { req: { url: '/admin/promote', body: { peerId: '-not an id' } }, message: /body\.peerId: has a bad format/ },
    notFound: { req: { url: '/admin/promote', body: { peerId: 'nobody' } }, message: /nobody/ },
  },
  {
    method: 'POST',
    path: '/admin/clear-promote',
    valid: { url: '/admin/clear-promote' },
    success: {
      setup: () => deps.admin.promote({ peerId: 'b' }),
      req: { url: '/admin/clear-promote', body: {} },
      check: (b) => {
        expect(b.state.promote).toBeUndefined();
      },
    },
    badRequest: { req: { url: '/admin/clear-promote', body: { peerId: 'b' } }, message: /body\.peerId: is not a known field/ },
    notFound: { notApplicable: 'clear-promote names no peer' },
  },
  {
    method: 'POST',
    path: '/admin/restart-schedule',
    valid: { url: '/admin/restart-schedule', body: { at: RESTART_AT } },
    success: {
      req: { url: '/admin/restart-schedule', body: { at: RESTART_AT, pending: true, peer: 'b' } },
      check: (b) => {
        expect(b.state.restart).toEqual({ at: RESTART_AT, pending: true, peer: 'b' });
      },
    },
    badRequest: { req: { url: '/admin/restart-schedule', body: { pending: true } }, message: /body\.at: is required/ },
    notFound: { req: { url: '/admin/restart-schedule', body: { at: RESTART_AT, peer: 'nobody' } }, message: /nobody/ },
  },
  {
    method: 'POST',
    path: '/admin/clear-restart',
    valid: { url: '/admin/clear-restart' },
    success: {
      setup: () => deps.admin.scheduleRestart({ at: RESTART_AT, pending: false }),
      req: { url: '/admin/clear-restart', body: {} },
      check: (b) => {
        expect(b.state.restart).toBeUndefined();
      },
    },
    badRequest: { req: { url: '/admin/clear-restart', body: { at: RESTART_AT } }, message: /body\.at: is not a known field/ },
    notFound: { notApplicable: 'clear-restart names no peer' },
  },
  {
    method: 'POST',
    path: '/admin/reap',
    valid: { url: '/admin/reap', body: { peerId: 'z' } },
    success: {
      req: { url: '/admin/reap', body: { peerId: 'z' } },
      check: (b) => {
        expect(ids(b.state.deposed)).toEqual([]);
      },
    },
    badRequest: { req: { url: '/admin/reap', body: {} }, message: /body\.peerId: is required/ },
    notFound: { req: { url: '/admin/reap', body: { peerId: 'nobody' } }, message: /nobody/ },
  },
  {
    // Only the statuses that do not depend on the body's shape: set-onwm's body is being changed.
    method: 'POST',
    path: '/admin/onwm',
    valid: { url: '/admin/onwm', body: { mode: 'on' } },
    success: null,
    badRequest: { req: { url: '/admin/onwm', raw: '["on"]' }, message: /body: must be object/ },
    notFound: { notApplicable: 'onwm names no peer' },
  },
  {
    method: 'POST',
    path: '/admin/rebuild',
    valid: { url: '/admin/rebuild' },
    success: {
      req: { url: '/admin/rebuild' },
      check: (b) => {
        expect(b).toEqual({ peerId: 'c', started: true, message: 'rebuild of c started' });
      },
    },
    badRequest: { req: { url: '/admin/rebuild', body: { peerId: 'a' } }, message: /body\.peerId: is not a known field/ },
    notFound: { notApplicable: 'rebuild always rebuilds the peer whose API is called' },
  },
  {
    method: 'POST',
    path: '/admin/peers',
    valid: { url: '/admin/peers', body: { id: 'd', address: '127.0.0.1:7003' } },
    success: {
      req: { url: '/admin/peers', body: { id: 'd', address: '127.0.0.1:7003' } },
      check: (b) => {
        expect(b.members.voters).toEqual(['a', 'b', 'c', 'd']);
        expect(b.members.addresses.d).toBe('127.0.0.1:7003');
      },
    },
    badRequest: { req: { url: '/admin/peers', body: { id: 'd', address: 'no port' } }, message: /body\.address: has a bad format/ },
    notFound: { notApplicable: 'add-peer names a peer that is not a member yet (a member already is 409)' },
  },
  {
    method: 'DELETE',
    path: '/admin/peers/{id}',
    valid: { url: '/admin/peers/b' },
    success: {
      req: { url: '/admin/peers/b' },
      check: (b) => {
        expect(b.members.voters).toEqual(['a', 'c']);
      },
    },
    badRequest: { req: { url: '/admin/peers/-bad' }, message: /params\.id: has a bad format/ },
    notFound: { req: { url: '/admin/peers/nobody' }, message: /nobody is not a member/ },
  },
  {
    method: 'POST',
    path: '/admin/peers/remove',
    valid: { url: '/admin/peers/remove', body: { id: 'b' } },
    success: {
      req: { url: '/admin/peers/remove', body: { id: 'b' } },
      check: (b) => {
        expect(b.members.voters).toEqual(['a', 'c']);
      },
    },
    badRequest: { req: { url: '/admin/peers/remove', body: { id: 7 } }, message: /body\.id: must be string/ },
    notFound: { req: { url: '/admin/peers/remove', body: { id: 'nobody' } }, message: /nobody is not a member/ },
  },
];

describe('the admin table', () => {
  it('has a row for each admin route that the app serves, and no other', async () => {
    const doc = (await call('GET', { url: '/openapi.json' }, null)).body;
    const served: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      if (!path.startsWith('/admin/')) continue;
      for (const method of Object.keys(ops)) served.push(`${method.toUpperCase()} ${path}`);
    }
    expect(served.length).toBeGreaterThan(0);
    expect(ROWS.map((r) => `${r.method} ${r.path}`).sort()).toEqual(served.sort());
  });
});

for (const row of ROWS) {
  describe(`${row.method} ${row.path}`, () => {
    it('401 without a token, and nothing changes', async () => {
      const before = snapshot();
      expectError(await call(row.method, row.valid, null), 401, 'MANATEE_ERR_UNAUTHORIZED', /Authorization/);
      expect(snapshot()).toEqual(before);
    });

    it('401 with an Authorization header that is not a bearer token', async () => {
      const res = await fetch(`${base}${row.valid.url}`, { method: row.method, headers: { authorization: `Basic ${ADMIN_TOKEN}` } });
      expectError({ status: res.status, body: await res.json() }, 401, 'MANATEE_ERR_UNAUTHORIZED', /Bearer/);
    });

    it('403 with a wrong token, and nothing changes', async () => {
      const before = snapshot();
      expectError(await call(row.method, row.valid, `${ADMIN_TOKEN}-wrong`), 403, 'MANATEE_ERR_FORBIDDEN', /token is wrong/);
      expect(snapshot()).toEqual(before);
    });

    it('checks the token before it reads the body: malformed JSON is 401 without a token, 403 with a wrong one', async () => {
      const garbage = { url: row.valid.url, raw: '{"reason": ' };
      expectError(await call(row.method, garbage, null), 401, 'MANATEE_ERR_UNAUTHORIZED');
      expectError(await call(row.method, garbage, 'guess'), 403, 'MANATEE_ERR_FORBIDDEN');
      expectError(await call(row.method, garbage), 400, 'MANATEE_ERR_BAD_REQUEST', /JSON/);
    });

    it('400 on bad input, naming the field, and nothing changes', async () => {
      const before = snapshot();
      expectError(await call(row.method, row.badRequest.req), 400, 'MANATEE_ERR_BAD_REQUEST', row.badRequest.message);
      expect(snapshot()).toEqual(before);
    });

    it('400 on an unknown query parameter, naming it', async () => {
      const a = await call(row.method, { ...row.valid, url: `${row.valid.url}?dryRun=1` });
      expectError(a, 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.dryRun: is not a known field/);
    });

    const nf = row.notFound;
    if ('req' in nf) {
      it('404 for an unknown peer, naming it, and nothing changes', async () => {
        const before = snapshot();
        expectError(await call(row.method, nf.req), 404, 'MANATEE_ERR_PEER_NOT_FOUND', nf.message);
        expect(snapshot()).toEqual(before);
      });
    }

    it('503 with retry-after when there is no Raft leader, and nothing changes', async () => {
      loseQuorum();
      const before = snapshot();
      const a = await call(row.method, row.valid);
      expectError(a, 503, 'MANATEE_ERR_RAFT_NO_LEADER', /leader/);
      expect(a.headers.get('retry-after')).toBe('1');
      expect(snapshot()).toEqual(before);
    });

    const ok = row.success;
    if (ok !== null) {
      it('200 on success, also for a request first refused with 503 once the quorum is back', async () => {
        await ok.setup?.();
        loseQuorum();
        expect((await call(row.method, ok.req)).status).toBe(503);
        store.unavailable = false;
        raft.noLeader = false;
        const a = await call(row.method, ok.req);
        expect(a.status).toBe(200);
        expect(a.body.error).toBeUndefined();
        ok.check(a.body);
      });
    }
  });
}

describe('read routes: the statuses the review found untested', () => {
  it('GET /members: 200 with the voters, learners and addresses', async () => {
    const a = await call('GET', { url: '/members' }, null);
    expect(a.status).toBe(200);
    expect(a.body).toEqual({
      voters: ['a', 'b', 'c'],
      learners: [],
      addresses: { a: '127.0.0.1:7000', b: '127.0.0.1:7001', c: '127.0.0.1:7002' },
    });
  });

  it('GET /members: 400 on an unknown query parameter, naming it', async () => {
    expectError(await call('GET', { url: '/members?voters=1' }, null), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.voters: is not a known field/);
  });

  it('GET /members still answers without a Raft leader: it is this node\'s own view, what an operator needs when quorum is lost', async () => {
    loseQuorum();
    const a = await call('GET', { url: '/members' }, null);
    expect(a.status).toBe(200);
    expect(a.body.voters).toEqual(['a', 'b', 'c']);
  });

  // The node's own status() does not fail today; this pins what the route does if the contract's
  // promise rejects (a node shutting down), so that it is a 503 with a code and not a 500.
  it('GET /members: 503 with retry-after when the membership cannot be read (the Raft node stopped)', async () => {
    await app?.close();
    const stopped = new RaftStoppedError('the Raft node of c is stopped');
    await start({ ...deps, membership: { ...deps.membership, members: () => Promise.reject(stopped) } });
    const a = await call('GET', { url: '/members' }, null);
    expectError(a, 503, 'MANATEE_ERR_RAFT_STOPPED', /stopped/);
    expect(a.headers.get('retry-after')).toBe('1');
  });

  it('GET /peers: 400 on an unknown query parameter, naming it', async () => {
    expectError(await call('GET', { url: '/peers?role=primary' }, null), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.role: is not a known field/);
  });

  it('GET /status: 400 on an unknown query parameter, naming it', async () => {
    expectError(await call('GET', { url: '/status?verbose=true' }, null), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.verbose: is not a known field/);
  });
});
