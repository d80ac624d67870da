// The admin routes that a sitter adds only with its PostgreSQL and its shard settings (absent from
// the in-memory API of admin-status-matrix.test.ts): GET and POST /admin/config,
// POST /admin/reload-postgres and /admin/restart-postgres. Each: 401 without a token, 403 with a
// wrong one, 400 naming a bad field, the refusals of the operations with their codes and statuses
// (a reload blocked by a bad line of the configuration files is 409, not a 500), and a success.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import { ManateeError } from '../../src/errors.js';
import { PgError } from '../../src/postgres/index.js';
import type { SettingsChangeInput } from '../../src/peer/settings-admin.js';
import { ADMIN_TOKEN, MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';

let app: FastifyInstance;
const changes: SettingsChangeInput[] = [];
let reloadError: Error | null = null;
let restartError: Error | null = null;

beforeAll(async () => {
  const peers = ['a', 'b', 'c'].map((id) => peer(id));
  const store = new MemoryStore(threePeerState(peers), peers);
  app = await createApi({
    ...memoryDeps({ self: peers[2]!, store }),
    config: {
      settings: {
        read: () => Promise.resolve({ settings: { archive_command: 'cp %p /secret/%f', work_mem: '8MB' }, version: 4 }),
        change: (input) => {
          changes.push(input);
          if (input.set?.['work_mem'] === 'lots') return Promise.reject(new ManateeError('MANATEE_ERR_PG_SETTING_INVALID', 'work_mem = "lots": expected an integer with a memory unit'));
          return Promise.resolve({ summary: 'set work_mem=16MB', settings: { work_mem: '16MB' }, version: 5, restart: [] });
        },
      },
      pgSettingRows: () => Promise.resolve([]),
    },
    pgOps: {
      reload: () => (reloadError !== null ? Promise.reject(reloadError) : Promise.resolve({ peerId: 'c', action: 'reloaded', pendingRestart: ['shared_buffers'], message: 'c: PostgreSQL reloaded its configuration' })),
      restart: () => (restartError !== null ? Promise.reject(restartError) : Promise.resolve({ peerId: 'c', action: 'restarted', pendingRestart: [], message: 'c: PostgreSQL restarted (async)' })),
    },
  });
});

afterAll(async () => {
  await app.close();
});

const call = async (method: 'GET' | 'POST', url: string, opts: { token?: string | null; body?: unknown } = {}) => {
  const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
  const res = await app.inject({
    method, url,
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(opts.body === undefined ? {} : { payload: JSON.stringify(opts.body) }),
  });
  return { status: res.statusCode, body: res.json<Record<string, any>>() };
};

const ROUTES: readonly { method: 'GET' | 'POST'; url: string; body?: unknown; badBody: unknown; badField: RegExp }[] = [
  { method: 'GET', url: '/admin/config', badBody: undefined, badField: /querystring\.x: is not a known field/ },
  { method: 'POST', url: '/admin/config', body: { set: { work_mem: '16MB' } }, badBody: { sett: {} }, badField: /body\.sett: is not a known field/ },
  { method: 'POST', url: '/admin/reload-postgres', body: {}, badBody: { now: true }, badField: /body\.now: is not a known field/ },
  { method: 'POST', url: '/admin/restart-postgres', body: {}, badBody: { force: true }, badField: /body\.force: is not a known field/ },
];

/** The /admin/ routes an API serves, as /openapi.json lists them. */
async function adminRoutesOf(a: FastifyInstance): Promise<string[]> {
  const doc = (await a.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
  return Object.entries(doc.paths).filter(([path]) => path.startsWith('/admin/'))
    .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`)).sort();
}

describe('the table', () => {
  it('has a row for each admin route that only a sitter\'s PostgreSQL and settings add (the matrix covers the others)', async () => {
    const peers = ['a', 'b', 'c'].map((id) => peer(id));
    const plain = await createApi(memoryDeps({ self: peers[0]!, store: new MemoryStore(threePeerState(peers), peers) }));
    try {
      const base = new Set(await adminRoutesOf(plain));
      expect((await adminRoutesOf(app)).filter((r) => !base.has(r))).toEqual(ROUTES.map((r) => `${r.method} ${r.url}`).sort());
    } finally {
      await plain.close();
    }
  });
});

describe.each(ROUTES)('$method $url', (r) => {
  it('401 without a token, 403 with a wrong one, and the operation is not called', async () => {
    const before = changes.length;
    expect(await call(r.method, r.url, { token: null, body: r.body })).toMatchObject({ status: 401, body: { error: { code: 'MANATEE_ERR_UNAUTHORIZED' } } });
    expect(await call(r.method, r.url, { token: `${ADMIN_TOKEN}-wrong`, body: r.body })).toMatchObject({ status: 403, body: { error: { code: 'MANATEE_ERR_FORBIDDEN' } } });
    expect(changes.length).toBe(before);
  });

  it('400 naming the bad field', async () => {
    const a = r.badBody === undefined ? await call(r.method, `${r.url}?x=1`) : await call(r.method, r.url, { body: r.badBody });
    expect(a.status).toBe(400);
    expect(a.body['error']).toMatchObject({ code: 'MANATEE_ERR_BAD_REQUEST', message: expect.stringMatching(r.badField) });
  });

  it('200 on success', async () => {
    const a = await call(r.method, r.url, { body: r.body });
    expect(a.status).toBe(200);
    expect(a.body['error']).toBeUndefined();
  });
});

describe('the operations\' refusals, each with its code and status', () => {
  it('GET /admin/config shows every value whole (behind the token)', async () => {
    expect((await call('GET', '/admin/config')).body).toEqual({ settings: { archive_command: 'cp %p /secret/%f', work_mem: '8MB' }, version: 4 });
  });

  it('a refused setting is 400 with its code', async () => {
    const a = await call('POST', '/admin/config', { body: { set: { work_mem: 'lots' } } });
    expect(a).toMatchObject({ status: 400, body: { error: { code: 'MANATEE_ERR_PG_SETTING_INVALID', message: expect.stringMatching(/work_mem = "lots"/) } } });
  });

  it('a reload that a bad line of the configuration files blocks is 409, naming the line', async () => {
    reloadError = new PgError('MANATEE_ERR_PG_RELOAD_BLOCKED', 'reload: PostgreSQL applied no change: unknown setting "wrok_mem" in manatee-overrides.conf line 1: ...');
    try {
      const a = await call('POST', '/admin/reload-postgres', { body: {} });
      expect(a).toMatchObject({ status: 409, body: { error: { code: 'MANATEE_ERR_PG_RELOAD_BLOCKED', message: expect.stringContaining('wrok_mem" in manatee-overrides.conf line 1') } } });
    } finally {
      reloadError = null;
    }
  });

  it('a restart of the primary\'s PostgreSQL is 409, and one of a stopped PostgreSQL too', async () => {
    restartError = new ManateeError('MANATEE_ERR_RESTART_PRIMARY', 'c is the primary: restart it by a planned switchover');
    try {
      expect(await call('POST', '/admin/restart-postgres', { body: {} })).toMatchObject({ status: 409, body: { error: { code: 'MANATEE_ERR_RESTART_PRIMARY' } } });
      restartError = new PgError('MANATEE_ERR_PG_NOT_RUNNING', 'restart: PostgreSQL is not running');
      expect(await call('POST', '/admin/restart-postgres', { body: {} })).toMatchObject({ status: 409, body: { error: { code: 'MANATEE_ERR_PG_NOT_RUNNING' } } });
    } finally {
      restartError = null;
    }
  });
});
