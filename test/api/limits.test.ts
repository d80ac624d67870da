// The API's defences against a client that guesses or floods: wrong admin tokens are rate-limited
// per address (429 with Retry-After, other addresses unaffected), and connections are capped, with
// half-open sockets cut after the headers timeout so that real callers get through again.
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import { AuthFailureLimiter } from '../../src/api/auth-limit.js';
import type { ApiLimits } from '../../src/api/types.js';
import { ADMIN_TOKEN, MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';
import { waitFor } from '../../tools/lib/wait.js';

let app: FastifyInstance | null = null;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  // The server's side of a held socket would keep close() waiting: cut them all first.
  app?.server.closeAllConnections();
  await app?.close();
  app = null;
});

async function api(limits: Partial<ApiLimits>): Promise<number> {
  const peers = ['a', 'b', 'c'].map((id) => peer(id));
  const store = new MemoryStore(threePeerState(peers), peers);
  app = await createApi(memoryDeps({ self: peers[0]!, store, limits }));
  // Every address of 127.0.0.0/8 reaches it, so that a test can call from 127.0.0.1 and from 127.0.0.2.
  await app.listen({ host: '0.0.0.0', port: 0 });
  return (app.server.address() as { port: number }).port;
}

function call(port: number, opts: { path: string; method?: string; token?: string; from?: string; body?: unknown }): Promise<{ status: number; headers: Record<string, unknown>; body: { error?: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = request({
      host: '127.0.0.1', port, path: opts.path, method: opts.method ?? 'GET', localAddress: opts.from ?? '127.0.0.1',
      headers: { ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }), ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
      timeout: 10_000,
    }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text === '' ? {} : JSON.parse(text) as { error?: { code: string; message: string } } }); });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(payload);
  });
}

describe('wrong admin tokens, per address', () => {
  it('past the limit an address gets 429 with Retry-After, even with the right token; another address is unaffected', async () => {
    const port = await api({ authFailuresMax: 3, authFailureWindowMs: 2000 });
    for (let i = 0; i < 3; i++) {
      const r = await call(port, { path: '/admin/unfreeze', method: 'POST', token: `guess-${i}`, body: {} });
      expect(r.status).toBe(403);
    }
    const throttled = await call(port, { path: '/admin/freeze', method: 'POST', token: ADMIN_TOKEN, body: { reason: 'x' } });
    expect(throttled.status).toBe(429);
    expect(throttled.body.error?.code).toBe('MANATEE_ERR_TOO_MANY_AUTH_FAILURES');
    expect(throttled.body.error?.message).toMatch(/^too many wrong admin tokens from 127\.0\.0\.1 \(3 within 2 s\): retry in [12] s$/);
    expect(Number(throttled.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(throttled.headers['retry-after'])).toBeLessThanOrEqual(2);
    // Read-only routes need no token and are not throttled.
    expect((await call(port, { path: '/state' })).status).toBe(200);
    // Another address is judged on its own.
    expect((await call(port, { path: '/admin/freeze', method: 'POST', token: ADMIN_TOKEN, from: '127.0.0.2', body: { reason: 'from elsewhere' } })).status).toBe(200);
    // Once the window has passed, the right token works again from the first address.
    const ok = await waitFor('the window to pass', async () => {
      const r = await call(port, { path: '/admin/unfreeze', method: 'POST', token: ADMIN_TOKEN, body: {} });
      return r.status === 429 ? null : r;
    }, { timeoutMs: 30_000, intervalMs: 250 });
    expect(ok.status).toBe(200);
  });

  it('a missing token (401) is not a guess and is not counted', async () => {
    const port = await api({ authFailuresMax: 1, authFailureWindowMs: 60_000 });
    for (let i = 0; i < 3; i++) expect((await call(port, { path: '/admin/unfreeze', method: 'POST', body: {} })).status).toBe(401);
    expect((await call(port, { path: '/admin/freeze', method: 'POST', token: ADMIN_TOKEN, body: { reason: 'x' } })).status).toBe(200);
  });

  it('the limiter keeps at most addressesMax addresses, forgetting the one that failed longest ago', () => {
    let now = 0;
    const l = new AuthFailureLimiter({ failuresMax: 2, windowMs: 1000, addressesMax: 2 }, () => now);
    l.recordFailure('a');
    l.recordFailure('a');
    expect(l.blockedForMs('a')).toBe(1000);
    now = 400;
    expect(l.blockedForMs('a')).toBe(600);
    l.recordFailure('b');
    l.recordFailure('c');
    expect(l.trackedAddresses).toBe(2);
    expect(l.blockedForMs('a')).toBe(0);
    now = 1500;
    expect(l.blockedForMs('b')).toBe(0);
    expect(l.trackedAddresses).toBe(1);
  });
});

function idleSocket(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => { resolve({ socket, closed }); });
    const closed = new Promise<void>((r) => socket.once('close', () => { r(); }));
    socket.on('error', () => undefined);
    socket.once('error', reject);
    sockets.push(socket);
  });
}

describe('connections', () => {
  it('caps open connections, and cuts sockets that send no request after the headers timeout', async () => {
    const port = await api({ connectionsMax: 20, headersTimeoutMs: 2000 });
    const flood = await Promise.all(Array.from({ length: 40 }, () => idleSocket(port)));
    // Past the cap, sockets are closed as soon as they are accepted.
    let closedAtOnce = 0;
    await waitFor('the server to close the sockets past its cap', () => {
      closedAtOnce = flood.filter((f) => f.socket.destroyed || f.socket.readableEnded).length;
      return closedAtOnce >= 20;
    }, { timeoutMs: 10_000 });
    // The 20 held ones are cut once they have sent no headers for the timeout; then a real request gets through.
    // With its own deadline: a socket the server never cuts would otherwise hang here until the test's timeout.
    const open = new Set(flood);
    for (const f of flood) void f.closed.then(() => open.delete(f));
    await waitFor('the server to cut the held sockets', () => open.size === 0 || undefined, { timeoutMs: 30_000, intervalMs: 100 })
      .catch((err: unknown) => {
        const ports = [...open].map((f) => f.socket.localPort).join(', ');
        throw new Error(`${(err as Error).message}: ${open.size} of 40 still open (client ports ${ports})`);
      });
    expect((await call(port, { path: '/state' })).status).toBe(200);
  });
});
