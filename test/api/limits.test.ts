// The API's defences against a client that guesses or floods: wrong admin tokens are rate-limited
// per address (429 with Retry-After, other addresses unaffected), and connections are capped: past
// the cap a newcomer takes the slot of the oldest socket that sent no request, and half-open
// sockets are cut after the headers timeout, so that a flood cannot keep real callers out.
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import { AuthFailureLimiter } from '../../src/api/auth-limit.js';
import type { ApiLimits } from '../../src/api/types.js';
import { ADMIN_TOKEN, MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';
import { waitFor } from '../../tools/lib/wait.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { ReloadableTls } from '../../src/tls/index.js';
import { silentLogger } from '../../src/log.js';
import { makeTestCa } from '../helpers/certs.js';

let app: FastifyInstance | null = null;
const sockets: Socket[] = [];

let tmp: { path: string; cleanup: () => Promise<void> } | null = null;

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  // The server's side of a held socket would keep close() waiting: cut them all first.
  app?.server.closeAllConnections();
  await app?.close();
  app = null;
  await tmp?.cleanup();
  tmp = null;
});

async function api(limits: Partial<ApiLimits>, tls?: ReloadableTls): Promise<number> {
  const peers = ['a', 'b', 'c'].map((id) => peer(id));
  const store = new MemoryStore(threePeerState(peers), peers);
  app = await createApi({ ...memoryDeps({ self: peers[0]!, store, limits }), ...(tls !== undefined ? { tls } : {}) });
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

/**
 * A socket that sends nothing. It reads what the server sends (as a real client does): a socket with
 * unread data never sees the server's FIN, so it would never close. Node's own headers check may cut
 * the socket before the guard does, and it writes a 408 response first.
 */
function idleSocket(port: number, from = '127.0.0.2'): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from }, () => { resolve({ socket, closed }); });
    socket.resume();
    const closed = new Promise<void>((r) => socket.once('close', () => { r(); }));
    socket.on('error', () => undefined);
    socket.once('error', reject);
    sockets.push(socket);
  });
}

/** A keep-alive connection that has carried one request (answered), and stays open. */
function servedSocket(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => { socket.write('GET /state HTTP/1.1\r\nHost: x\r\n\r\n'); });
    const closed = new Promise<void>((r) => socket.once('close', () => { r(); }));
    socket.once('data', () => { resolve({ socket, closed }); });
    socket.on('error', () => undefined);
    socket.once('error', reject);
    sockets.push(socket);
  });
}

const isClosed = (s: Socket): boolean => s.destroyed || s.readableEnded;

/** Opens idle sockets one after another, each accepted before the next (a request after each orders them on the server). */
async function idleSockets(port: number, n: number): Promise<{ socket: Socket; closed: Promise<void> }[]> {
  const out: { socket: Socket; closed: Promise<void> }[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await idleSocket(port));
    // The server has accepted it once it answers a request sent after it (connections are accepted in order).
    expect((await call(port, { path: '/state' })).status).toBe(200);
  }
  return out;
}

describe('connections', () => {
  it('a newcomer past the cap takes the slot of the oldest socket that sent no request, so a real request gets through a full cap', async () => {
    const port = await api({ connectionsMax: 20, headersTimeoutMs: 60_000 });
    const first = await idleSockets(port, 20);
    // Ten more: each evicts the oldest idle one.
    const more = await idleSockets(port, 10);
    await waitFor('the ten oldest idle sockets to be evicted', () => first.slice(0, 10).every((f) => isClosed(f.socket)), { timeoutMs: 10_000 });
    // The real requests above evicted idle sockets too, but never one of the ten youngest.
    expect(more.every((f) => !isClosed(f.socket))).toBe(true);
    expect((await call(port, { path: '/state' })).status).toBe(200);
  });

  it('when every slot has carried a request, a newcomer is closed and the served connections stay', async () => {
    const port = await api({ connectionsMax: 3, headersTimeoutMs: 60_000 });
    const served = [await servedSocket(port), await servedSocket(port), await servedSocket(port)];
    const late = await idleSocket(port);
    await late.closed;
    expect(served.every((f) => !isClosed(f.socket))).toBe(true);
  });

  it('cuts sockets that send no request after the headers timeout', async () => {
    const port = await api({ connectionsMax: 20, headersTimeoutMs: 1000 });
    const idle = await Promise.all(Array.from({ length: 5 }, () => idleSocket(port)));
    // Its own deadline, far under the test's, naming what is still open.
    await waitFor('the five idle sockets to be cut', () => {
      const open = idle.filter((f) => !isClosed(f.socket)).length;
      if (open > 0) throw new Error(`${open} of 5 still open`);
      return true;
    }, { timeoutMs: 30_000 });
    expect((await call(port, { path: '/state' })).status).toBe(200);
  });

  it('with TLS, a socket that never starts the handshake holds no slot: a newcomer evicts it, and it is cut after the headers timeout', async () => {
    tmp = await makeTmpDir('api-limits-tls');
    const ca = await makeTestCa(tmp.path);
    const tls = await ReloadableTls.open(await ca.peer('a'), { expectedPeerId: 'a', log: silentLogger() });
    const port = await api({ connectionsMax: 2, headersTimeoutMs: 3000 }, tls);
    const first = await idleSocket(port);
    await new Promise((r) => setTimeout(r, 100));
    const second = await idleSocket(port);
    await new Promise((r) => setTimeout(r, 100));
    const third = await idleSocket(port);
    // The oldest gave its slot to the newest; the TLS server's own handshake timeout (120 s) never comes into it.
    await first.closed;
    expect(isClosed(second.socket) && isClosed(third.socket)).toBe(false);
    await Promise.all([second.closed, third.closed]);
    const caPem = await readFile(ca.caFile, 'utf8');
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/state', ca: caPem, timeout: 10_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
    expect(status).toBe(200);
  });
});
