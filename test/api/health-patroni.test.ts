// The health checks against Patroni's convention, over real HTTP on 127.0.0.1: real fastify
// servers for a primary (a), its sync (b) and an async (c) over one in-memory cluster state
// (tools/lib/memory-peer.ts), where a test changes what one peer's status says (its WAL position, its
// PostgreSQL down). A standby asks the primary's sitter for the primary's WAL position over HTTP,
// as in production; the servers that stand for an unreachable primary are real sockets too.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import {
  evaluateHealth, LIVENESS_MAX_IDLE_MS, parseLag, PRIMARY_POSITION_FRESH_MS, PRIMARY_POSITION_MAX_AGE_MS,
} from '../../src/api/routes/health.js';
import { PrimaryPositionCache } from '../../src/api/primary-position.js';
import type { SitterStatus, PeerInfo } from '../../src/model/index.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { MemoryStore, memoryDeps, peer, statusOf, threePeerState } from '../../tools/lib/memory-peer.js';
import { expectApiError, httpCall, type HttpAnswer } from '../helpers/http.js';

/** What each peer's status says on top of statusOf(): a test sets it, beforeEach clears it. */
const tweaks = new Map<string, (s: SitterStatus) => SitterStatus>();
/** How many times each peer's status was read (the primary's, by the standbys' lag checks). */
const statusReads = new Map<string, number>();

let servers: FastifyInstance[] = [];
let rawServers: Server[] = [];
let store: MemoryStore;
let peers: PeerInfo[];

async function startApi(self: PeerInfo, on: MemoryStore): Promise<FastifyInstance> {
  const base = memoryDeps({ self, store: on });
  const app = await createApi({
    ...base,
    status: async () => {
      const s = await base.status();
      statusReads.set(self.id, (statusReads.get(self.id) ?? 0) + 1);
      return (tweaks.get(self.id) ?? ((x: SitterStatus) => x))(s);
    },
  });
  servers.push(app);
  await app.listen({ host: '127.0.0.1', port: Number(new URL(self.apiUrl).port) });
  return app;
}

/** A primary whose PostgreSQL is at `lsn` (its sitter answers /status with it). */
function primaryAt(lsn: string): void {
  tweaks.set('a', (s) => ({ ...s, postgres: { ...s.postgres, currentLsn: lsn } }));
}

beforeAll(async () => {
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  peers = ['a', 'b', 'c'].map((id, i) => peer(id, `http://127.0.0.1:${ports[i] ?? 0}`));
  store = new MemoryStore(threePeerState(peers), peers);
  for (const p of peers) await startApi(p, store);
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const s of rawServers) s.closeAllConnections();
  await Promise.all(rawServers.map((s) => new Promise((r) => s.close(r))));
  servers = [];
  rawServers = [];
});

beforeEach(() => {
  tweaks.clear();
  statusReads.clear();
});

const A = () => peers[0]!.apiUrl;
const B = () => peers[1]!.apiUrl;
const C = () => peers[2]!.apiUrl;



/** The standbys replayed 0/3000148 (tools/lib/memory-peer.ts); these are that plus 1024 and 1048576 bytes. */
type Answer = HttpAnswer;
const call = (method: string, url: string): Promise<Answer> => httpCall(method, url);

const PLUS_1KIB = '0/3000548';
const PLUS_1MIB = '0/3100148';
const FAR_AHEAD = '5/0';

/** Waits until the standby's cached view of the primary is the one the test set (it is kept ~1 s). */
async function untilPrimaryLsn(url: string, lsn: string): Promise<void> {
  await waitFor(`${url} to see the primary at ${lsn}`, async () => (await call('GET', `${url}/replica?lag=1TB`)).body?.primaryLsn === lsn, { timeoutMs: 20_000, intervalMs: 50 });
}

const HEALTH_BODY_KEYS = ['check', 'generation', 'inRecovery', 'lagBytes', 'lagSeconds', 'ok', 'peerId', 'pgHealthy', 'pgOnline',
  'primaryLsn', 'primaryLsnAgeMs', 'reason', 'replicationState', 'role', 'writable'];

describe('?lag= in bytes: the primary\'s WAL position minus the standby\'s replayed one (Patroni)', () => {
  it('a standby with nothing left to replay but far behind the primary (its WAL receiver stalled) fails; within the bound it passes', async () => {
    primaryAt(FAR_AHEAD);
    await untilPrimaryLsn(C(), FAR_AHEAD);
    // c received and replayed 0/3000148: by its own numbers it is caught up.
    const far = await call('GET', `${C()}/replica?lag=1GB`);
    expect(far.status).toBe(503);
    const behind = 5 * 2 ** 32 - 0x3000148;
    expect(far.body).toMatchObject({ peerId: 'c', role: 'async', ok: false, lagBytes: behind, primaryLsn: FAR_AHEAD });
    expect(far.body.reason).toBe(`an async standby, but ${behind} bytes behind the primary (limit ${1024 ** 3})`);
    expect(far.body.primaryLsnAgeMs).toBeGreaterThanOrEqual(0);
    expect(far.body.primaryLsnAgeMs).toBeLessThan(5000);
    expect((await call('GET', `${C()}/replica?lag=21GB`)).status).toBe(200);
    expect((await call('GET', `${C()}/async?lag=1TB`)).status).toBe(200);
    expect((await call('GET', `${C()}/async?lag=100MB`)).status).toBe(503);
    // Without a limit the check passes whatever the lag (Patroni's /replica), with the lag in the body.
    const plain = await call('GET', `${C()}/replica`);
    expect(plain.status).toBe(200);
    expect(plain.body.lagBytes).toBe(behind);
  });

  it('units are PostgreSQL\'s, 1024-based: 1kB = 1024 bytes, 1MB = 1048576', async () => {
    primaryAt(PLUS_1KIB);
    await untilPrimaryLsn(C(), PLUS_1KIB);
    const codes = async (lag: string) => (await call('GET', `${C()}/replica?lag=${lag}`)).status;
    expect(await codes('1kB')).toBe(200);
    expect(await codes('1KiB')).toBe(200);
    expect(await codes('1024')).toBe(200);
    expect(await codes('1023')).toBe(503); // a bare number is bytes
    expect(await codes('1000')).toBe(503); // what a 1000-based kB would have let through
    primaryAt(PLUS_1MIB);
    await untilPrimaryLsn(C(), PLUS_1MIB);
    expect(await codes('1MB')).toBe(200);
    expect(await codes('1MiB')).toBe(200);
    expect(await codes('1024kB')).toBe(200);
    expect(await codes('1048575')).toBe(503);
    expect(await codes('1000kB')).toBe(503);
    expect(parseLag('1kB')).toEqual({ kind: 'bytes', bytes: 1024 });
    expect(parseLag('1MB')).toEqual({ kind: 'bytes', bytes: 1048576 });
    expect(parseLag('1GB')).toEqual({ kind: 'bytes', bytes: 1024 ** 3 });
    expect(parseLag('2TB')).toEqual({ kind: 'bytes', bytes: 2 * 1024 ** 4 });
  });

  it('a bad unit is a 400 that names lag', async () => {
    for (const lag of ['5XB', '10mb', '1kb', '3 parsecs', '1e6', '-1', '0x10']) {
      const a = await call('GET', `${C()}/replica?lag=${encodeURIComponent(lag)}`);
      expect({ lag, status: a.status, code: a.body?.error?.code }).toEqual({ lag, status: 400, code: 'MANATEE_ERR_BAD_REQUEST' });
      expect(a.body.error.message).toMatch(/querystring\.lag/);
    }
  });

  it('/sync?lag=: 200 within the bound, 503 past it; /read-only?lag= is 200 on the primary, bounded on a standby', async () => {
    primaryAt(PLUS_1MIB);
    await untilPrimaryLsn(B(), PLUS_1MIB);
    const ok = await call('GET', `${B()}/sync?lag=1MB`);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ peerId: 'b', role: 'sync', ok: true, lagBytes: 1048576, reason: 'the sync standby, 1048576 bytes behind the primary (limit 1048576)' });
    const no = await call('GET', `${B()}/sync?lag=512kB`);
    expect(no.status).toBe(503);
    expect(no.body).toMatchObject({ ok: false, lagBytes: 1048576, reason: 'the sync standby, but 1048576 bytes behind the primary (limit 524288)' });
    expect(Object.keys(ok.body).sort()).toEqual(HEALTH_BODY_KEYS);
    expect(Object.keys(no.body).sort()).toEqual(HEALTH_BODY_KEYS);
    expect((await call('GET', `${B()}/read-only?lag=2MB`)).status).toBe(200);
    expect((await call('GET', `${B()}/read-only?lag=1023kB`)).status).toBe(503);
    // The primary is never behind itself: 0 bytes, its own position, no ask.
    const primary = await call('GET', `${A()}/read-only?lag=0`);
    expect(primary.status).toBe(200);
    expect(primary.body).toMatchObject({ role: 'primary', lagBytes: 0, primaryLsn: PLUS_1MIB, primaryLsnAgeMs: 0 });
  });

  it('asks the primary at most about once a second, whatever the number of checks', async () => {
    primaryAt(PLUS_1KIB);
    await untilPrimaryLsn(C(), PLUS_1KIB);
    statusReads.set('a', 0);
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 30 }, () => call('GET', `${C()}/replica?lag=1MB`)));
    const elapsedMs = Date.now() - t0;
    expect(answers.every((x) => x.status === 200)).toBe(true);
    // 30 checks at once: one ask per started second (plus the one in flight), not one per check.
    expect(statusReads.get('a') ?? 0).toBeLessThanOrEqual(2 + Math.floor(elapsedMs / 1000));
  });
});

describe('the primary\'s position unknown or old', () => {
  it('a primary that cannot be asked, and was never read: a byte limit fails with a reason that says so', async () => {
    // A second shard whose primary x is a refused port; e is its async, with a real API.
    const [deadPort, ePort, hungPort, gPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const e = peer('e', `http://127.0.0.1:${ePort}`);
    const refused = new MemoryStore(threePeerState([peer('x', `http://127.0.0.1:${deadPort}`), peer('d'), e]), [e]);
    await startApi(e, refused);
    const a = await call('GET', `${e.apiUrl}/replica?lag=1GB`);
    expect(a.status).toBe(503);
    expect(a.body).toMatchObject({ peerId: 'e', ok: false, lagBytes: null, primaryLsn: null, primaryLsnAgeMs: null });
    expect(a.body.reason).toMatch(/^an async standby, but its lag in bytes is unknown: the primary's WAL position is unknown \(x: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    expect(Object.keys(a.body).sort()).toEqual(HEALTH_BODY_KEYS);
    // Without a limit, or with a limit in time (the heartbeat), the lag in bytes does not matter.
    expect((await call('GET', `${e.apiUrl}/replica`)).status).toBe(200);
    expect((await call('GET', `${e.apiUrl}/replica?lag=5s`)).status).toBe(200);
    expect((await call('OPTIONS', `${e.apiUrl}/replica?lag=1GB`)).status).toBe(503);

    // A primary whose sitter accepts the connection and never answers: the check still answers,
    // after the short deadline of the ask, not after the load balancer gave up.
    const hung = createServer(() => { /* never answers */ });
    rawServers.push(hung);
    await new Promise<void>((r) => hung.listen(hungPort, '127.0.0.1', r));
    const g = peer('g', `http://127.0.0.1:${gPort}`);
    await startApi(g, new MemoryStore(threePeerState([peer('y', `http://127.0.0.1:${hungPort}`), peer('f'), g]), [g]));
    const t0 = Date.now();
    const h = await call('GET', `${g.apiUrl}/async?lag=1MB`);
    expect(h.status).toBe(503);
    expect(h.body.reason).toMatch(/the primary's WAL position is unknown \(y: no answer from http:\/\/127\.0\.0\.1:\d+ within 500 ms/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a primary that was read and then cannot be asked: its last position is used within the age bound, and the reason gives its age', async () => {
    primaryAt(PLUS_1KIB);
    await untilPrimaryLsn(C(), PLUS_1KIB);
    // a's sitter now fails its /status (503): c keeps the last position it read.
    tweaks.set('a', () => { throw new Error('status unavailable'); });
    const stale = await waitFor('c to use an old position of the primary', async () => {
      const r = await call('GET', `${C()}/replica?lag=1kB`);
      return typeof r.body?.reason === 'string' && r.body.reason.includes(' ago ') ? r : null;
    }, { timeoutMs: 20_000, intervalMs: 100 });
    expect(stale.status).toBe(200);
    expect(stale.body).toMatchObject({ lagBytes: 1024, primaryLsn: PLUS_1KIB });
    expect(stale.body.primaryLsnAgeMs).toBeGreaterThanOrEqual(900);
    expect(stale.body.primaryLsnAgeMs).toBeLessThanOrEqual(PRIMARY_POSITION_MAX_AGE_MS);
    expect(stale.body.reason).toMatch(/^an async standby, 1024 bytes behind the primary \(limit 1024\), measured from the primary's position of [0-9.]+ (s|ms) ago \(HTTP 5\d\d from /);
    expect((await call('GET', `${C()}/replica?lag=1000`)).status).toBe(503);
  });

  it('a primary position older than the bound is unknown: a cut-off standby fails a byte limit (time injected)', async () => {
    // c's WAL receiver stopped at 0/3000148 (what it replayed) and the primary's position was read
    // there: lag 0. Then the primary's sitter cannot be asked any more.
    const s = statusOf(peers[2]!, store);
    const a = peers[0]!;
    let nowMs = 1_000_000;
    let reachable = true;
    const cache = new PrimaryPositionCache({
      fetchStatus: () => reachable
        ? Promise.resolve({ ...statusOf(a, store), postgres: { ...statusOf(a, store).postgres, currentLsn: s.postgres.replayLsn } })
        : Promise.reject(new Error('connect ETIMEDOUT')),
      timeoutMs: 100, freshMs: PRIMARY_POSITION_FRESH_MS, nowMs: () => nowMs,
    });
    const limit1MiB = { kind: 'bytes', bytes: 1 << 20 } as const;
    expect(evaluateHealth(s, 'async', limit1MiB, await cache.get(a, true))).toMatchObject({ ok: true, lagBytes: 0, primaryLsnAgeMs: 0 });
    reachable = false;
    // Within the bound: the old position is used, and the reason gives its age and the failure.
    nowMs += PRIMARY_POSITION_MAX_AGE_MS;
    const within = evaluateHealth(s, 'async', limit1MiB, await cache.get(a, true));
    expect(within).toMatchObject({ ok: true, lagBytes: 0, primaryLsnAgeMs: PRIMARY_POSITION_MAX_AGE_MS });
    expect(within.reason).toBe('an async standby, 0 bytes behind the primary (limit 1048576), measured from the primary\'s position of 5.0 s ago (connect ETIMEDOUT)');
    // Beyond it: unknown, whatever the limit; the body still shows the old position and its age.
    nowMs += 1;
    const beyond = await cache.get(a, true);
    for (const check of ['replica', 'async', 'read-only'] as const) {
      const h = evaluateHealth(s, check, { kind: 'bytes', bytes: 1 << 30 }, beyond);
      expect(h).toMatchObject({ ok: false, lagBytes: null, primaryLsn: s.postgres.replayLsn, primaryLsnAgeMs: PRIMARY_POSITION_MAX_AGE_MS + 1 });
      expect(h.reason).toMatch(/but its lag in bytes is unknown: the primary's WAL position is 5\.0 s old, older than the limit of 5\.0 s \(a: connect ETIMEDOUT\)$/);
    }
    // A limit in time (the heartbeat) does not depend on it; nor does a check without a limit.
    expect(evaluateHealth(s, 'async', { kind: 'seconds', seconds: 3600 }, beyond).ok).toBe(true);
    expect(evaluateHealth(s, 'async', null, beyond).ok).toBe(true);
    // The primary answers again: the position is fresh, and the check passes again.
    reachable = true;
    nowMs += PRIMARY_POSITION_FRESH_MS;
    expect(evaluateHealth(s, 'async', limit1MiB, await cache.get(a, true))).toMatchObject({ ok: true, lagBytes: 0, primaryLsnAgeMs: 0 });
  });

  it('evaluateHealth: no primary in the state, or no replayed position, is an unknown lag', () => {
    const s = statusOf(peers[2]!, store);
    expect(evaluateHealth(s, 'replica', { kind: 'bytes', bytes: 1 << 30 }, null)).toMatchObject({
      ok: false, lagBytes: null, reason: 'an async standby, but its lag in bytes is unknown: the primary\'s WAL position is unknown (no primary in the state)',
    });
    const blind = { ...s, postgres: { ...s.postgres, replayLsn: null } };
    const known = { primaryId: 'a', lsn: PLUS_1KIB, ageMs: 10, error: null };
    expect(evaluateHealth(blind, 'async', { kind: 'bytes', bytes: 1 << 30 }, known)).toMatchObject({
      ok: false, lagBytes: null, reason: 'an async standby, but its lag in bytes is unknown: its replayed WAL position is unknown',
    });
    expect(evaluateHealth(s, 'async', { kind: 'bytes', bytes: 1024 }, known)).toMatchObject({ ok: true, lagBytes: 1024, primaryLsn: PLUS_1KIB, primaryLsnAgeMs: 10 });
  });
});

describe('PrimaryPositionCache', () => {
  const a = peer('a', 'http://127.0.0.1:1');

  it('refuses an answer from another peer, a primary in recovery, or one with no WAL position', async () => {
    const s = statusOf(peers[0]!, store);
    const answers: SitterStatus[] = [
      { ...s, peer: peer('b') },
      { ...s, postgres: { ...s.postgres, inRecovery: true } },
      { ...s, postgres: { ...s.postgres, currentLsn: null } },
      { ...s, postgres: { ...s.postgres, currentLsn: 'garbage' } },
    ];
    const expected = [/answered as b, not a/, /not a running primary \(in recovery\)/, /reported no WAL position/, /reported no WAL position/];
    for (const [i, answer] of answers.entries()) {
      let nowMs = 0;
      const cache = new PrimaryPositionCache({ fetchStatus: () => Promise.resolve(answer), timeoutMs: 100, freshMs: 1000, nowMs: () => nowMs });
      const got = await cache.get(a, true);
      expect(got.lsn).toBeNull();
      expect(got.error).toMatch(expected[i]!);
      nowMs += 10;
    }
  });

  it('a new primary starts from nothing; without waiting, the ask finishes in the background', async () => {
    let nowMs = 0;
    let lsn = '0/10';
    const cache = new PrimaryPositionCache({
      fetchStatus: (url) => Promise.resolve({ ...statusOf(peers[0]!, store), peer: url.endsWith(':1') ? a : peer('b', url), postgres: { ...statusOf(peers[0]!, store).postgres, currentLsn: lsn } }),
      timeoutMs: 100, freshMs: 1000, nowMs: () => nowMs,
    });
    expect(await cache.get(a, false)).toMatchObject({ lsn: null, error: 'not asked yet' });
    await waitFor('the background ask', async () => (await cache.get(a, false)).lsn === '0/10', { timeoutMs: 5000, intervalMs: 5 });
    lsn = '0/20';
    nowMs = 500;
    expect((await cache.get(a, true)).lsn).toBe('0/10'); // fresh: not asked again
    nowMs = 1000;
    expect(await cache.get(a, true)).toMatchObject({ lsn: '0/20', ageMs: 0, error: null });
    const b = peer('b', 'http://127.0.0.1:2');
    expect(await cache.get(b, false)).toMatchObject({ primaryId: 'b', lsn: null, ageMs: null });
  });
});

describe('PostgreSQL down, OPTIONS and HEAD', () => {
  it('/read-only and /health are 503 when PostgreSQL is down, with the same body as a 200', async () => {
    const up = await call('GET', `${C()}/health`);
    expect(up.status).toBe(200);
    tweaks.set('c', (s) => ({ ...s, postgres: { ...s.postgres, online: false, healthy: false, error: 'connection refused', inRecovery: null, replayLsn: null } }));
    for (const check of ['health', 'read-only', 'replica', 'async']) {
      const down = await call('GET', `${C()}/${check}`);
      expect(down.status, check).toBe(503);
      expect(down.body, check).toMatchObject({ peerId: 'c', check, ok: false, pgOnline: false, reason: 'PostgreSQL is not serving: connection refused' });
      expect(Object.keys(down.body).sort()).toEqual(Object.keys(up.body).sort());
    }
    // The primary's: its /read-only and /health too.
    tweaks.set('a', (s) => ({ ...s, postgres: { ...s.postgres, online: false, healthy: false, error: 'the server is starting up', writable: false } }));
    expect((await call('GET', `${A()}/read-only`)).status).toBe(503);
    expect((await call('GET', `${A()}/health`)).status).toBe(503);
    expect((await call('OPTIONS', `${A()}/primary`)).status).toBe(503);
  });

  it('OPTIONS answers the status GET answers, on every check; OPTIONS / is the primary check (GET / is the page)', async () => {
    for (const check of ['primary', 'read-write', 'replica', 'sync', 'async', 'read-only', 'health']) {
      for (const url of [A(), B(), C()]) {
        const get = await call('GET', `${url}/${check}`);
        const options = await call('OPTIONS', `${url}/${check}`);
        expect({ check, url, status: options.status }).toEqual({ check, url, status: get.status });
      }
    }
    expect((await call('OPTIONS', `${A()}/primary`)).status).toBe(200);
    expect((await call('OPTIONS', `${C()}/primary`)).status).toBe(503);
    const root = await call('OPTIONS', `${A()}/`);
    expect(root.status).toBe(200);
    expect(root.body).toMatchObject({ check: 'primary', ok: true });
    expect((await call('OPTIONS', `${B()}/`)).status).toBe(503);
    expect((await call('OPTIONS', `${C()}/`)).status).toBe(503);
    const page = await call('GET', `${C()}/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    // Bad input on OPTIONS is a 400 as on GET.
    expect((await call('OPTIONS', `${C()}/replica?lag=fast`)).status).toBe(400);
    expect((await call('OPTIONS', `${C()}/primary?x=1`)).status).toBe(400);
  });

  it('HEAD answers the same status with no body, lag bound included', async () => {
    primaryAt(FAR_AHEAD);
    await untilPrimaryLsn(C(), FAR_AHEAD);
    const far = await call('HEAD', `${C()}/replica?lag=1MB`);
    expect(far.status).toBe(503);
    expect(far.text).toBe('');
    expect((await call('HEAD', `${C()}/replica?lag=100GB`)).status).toBe(200);
    expect((await call('HEAD', `${A()}/primary`)).status).toBe(200);
    expect((await call('HEAD', `${B()}/primary`)).status).toBe(503);
    expect((await call('HEAD', `${C()}/replica?lag=5XB`)).status).toBe(400);
  });

  it('reason strings use the right article', async () => {
    expect((await call('GET', `${C()}/replica`)).body.reason).toBe('an async standby');
    expect((await call('GET', `${B()}/replica`)).body.reason).toBe('a sync standby');
    expect((await call('GET', `${C()}/primary`)).body.reason).toBe('this peer is an async, not the primary');
    expect((await call('GET', `${B()}/primary`)).body.reason).toBe('this peer is a sync, not the primary');
  });
});

/** `b` (the sync) with its status changed by `f`. */
function syncWith(f: (s: SitterStatus) => SitterStatus): void {
  tweaks.set('b', f);
}

/** 0/3000148 (what the standbys replayed) plus 1 MiB and 1 KiB: past the default readiness limit. */
const PLUS_1MIB_1KIB = '0/3100548';

describe('?replication_state= (Patroni): the standby\'s WAL receiver', () => {
  it('streaming passes; a standby whose receiver stopped or waits fails it, whatever its lag', async () => {
    const ok = await call('GET', `${B()}/replica?replication_state=streaming`);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ ok: true, replicationState: 'streaming', reason: 'a sync standby' });
    // No WAL receiver: `stopped`. The lag is still 0 by every number the standby has.
    syncWith((s) => ({ ...s, postgres: { ...s.postgres, walReceiver: null } }));
    const stopped = await call('GET', `${B()}/sync?replication_state=streaming&lag=1TB`);
    expect(stopped.status).toBe(503);
    expect(stopped.body).toMatchObject({ ok: false, replicationState: 'stopped', reason: 'the sync standby, but its replication state is stopped, not streaming' });
    expect((await call('GET', `${B()}/replica?replication_state=stopped`)).status).toBe(200);
    expect((await call('GET', `${B()}/replica`)).status).toBe(200);
    syncWith((s) => ({ ...s, postgres: { ...s.postgres, walReceiver: 'waiting' } }));
    expect((await call('GET', `${B()}/read-only?replication_state=streaming`)).body).toMatchObject({ ok: false, replicationState: 'waiting' });
    // The primary has no receiver: not a replica; /read-only passes on it as without the parameter.
    expect((await call('GET', `${A()}/replica?replication_state=streaming`)).body).toMatchObject({ ok: false, replicationState: null });
    expect((await call('GET', `${A()}/read-only?replication_state=streaming`)).status).toBe(200);
  });

  it('an unknown state, or the parameter on /readiness or /liveness, is a 400 that names it', async () => {
    expectApiError(await call('GET', `${B()}/replica?replication_state=archive`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.replication_state/);
    expectApiError(await call('GET', `${B()}/readiness?replication_state=streaming`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.replication_state: is not a known field/);
    expectApiError(await call('GET', `${B()}/liveness?lag=1MB`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.lag: is not a known field/);
    expectApiError(await call('GET', `${B()}/readiness?mode=read`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.mode/);
    expectApiError(await call('GET', `${B()}/replica?mode=write`), 400, 'MANATEE_ERR_BAD_REQUEST', /querystring\.mode: is not a known field/);
  });
});

describe('/read-only-sync (Patroni): the primary or the sync', () => {
  it('200 on the primary and the sync (within ?lag=), 503 on the async and on a deposed peer', async () => {
    expect((await call('GET', `${A()}/read-only-sync`)).body).toMatchObject({ ok: true, reason: 'the primary (serves reads)' });
    expect((await call('GET', `${B()}/read-only-sync`)).body).toMatchObject({ ok: true, reason: 'the sync standby' });
    expect((await call('GET', `${C()}/read-only-sync`)).body).toMatchObject({ ok: false, reason: 'this peer is neither the primary nor the sync (role async)' });
    primaryAt(FAR_AHEAD);
    await untilPrimaryLsn(B(), FAR_AHEAD);
    expect((await call('GET', `${B()}/read-only-sync?lag=1MB`)).status).toBe(503);
    expect((await call('GET', `${A()}/read-only-sync?lag=1MB`)).status).toBe(200);
    syncWith((s) => ({ ...s, role: 'deposed' }));
    expect((await call('OPTIONS', `${B()}/read-only-sync`)).status).toBe(503);
  });
});

describe('noloadbalance (Patroni\'s tag): the reader checks leave the standby out', () => {
  it('/replica and /read-only answer 503 on a standby tagged noloadbalance, with the reason; /async and the primary are unchanged', async () => {
    tweaks.set('c', (s) => ({ ...s, tags: { noloadbalance: true } }));
    tweaks.set('a', (s) => ({ ...s, tags: { noloadbalance: true } }));
    const replica = await call('GET', `${C()}/replica`);
    expect(replica.status).toBe(503);
    expect(replica.body).toMatchObject({ ok: false, reason: 'an async standby, but tagged noloadbalance: it takes no readers from load balancers' });
    expect((await call('GET', `${C()}/read-only`)).status).toBe(503);
    expect((await call('GET', `${C()}/async`)).status).toBe(200);
    expect((await call('GET', `${A()}/read-only`)).status).toBe(200);
    expect((await call('GET', `${B()}/replica`)).status).toBe(200);
  });
});

describe('/readiness (Patroni\'s readinessProbe)', () => {
  it('the primary is ready; a streaming standby within 1MB of the primary (the default) is ready, past it is not', async () => {
    expect((await call('GET', `${A()}/readiness`)).body).toMatchObject({ check: 'readiness', ok: true, reason: 'the writable primary' });
    primaryAt(PLUS_1MIB);
    await untilPrimaryLsn(B(), PLUS_1MIB);
    expect((await call('GET', `${B()}/readiness`)).body).toMatchObject({ ok: true, lagBytes: 1048576, reason: 'a sync standby, streaming, 1048576 bytes behind the primary (limit 1048576)' });
    primaryAt(PLUS_1MIB_1KIB);
    await untilPrimaryLsn(B(), PLUS_1MIB_1KIB);
    const behind = await call('GET', `${B()}/readiness`);
    expect(behind.status).toBe(503);
    expect(behind.body).toMatchObject({ ok: false, lagBytes: 1049600, reason: 'a sync standby, streaming, but 1049600 bytes behind the primary (limit 1048576)' });
    expect((await call('GET', `${B()}/readiness?lag=2MB`)).status).toBe(200);
    // In time (the heartbeat, 0.5 s behind in the memory cluster).
    expect((await call('GET', `${B()}/readiness?lag=1s`)).status).toBe(200);
    expect((await call('GET', `${B()}/readiness?lag=100ms`)).status).toBe(503);
  });

  it('?mode=write measures from the received WAL, ?mode=apply (the default) from the replayed WAL', async () => {
    primaryAt(PLUS_1MIB_1KIB);
    // Received up to 1 KiB behind the primary, replayed 1 MiB + 1 KiB behind.
    syncWith((s) => ({ ...s, postgres: { ...s.postgres, receiveLsn: PLUS_1MIB } }));
    await untilPrimaryLsn(B(), PLUS_1MIB_1KIB);
    expect((await call('GET', `${B()}/readiness?mode=apply`)).body).toMatchObject({ ok: false, lagBytes: 1049600 });
    expect((await call('GET', `${B()}/readiness`)).body).toMatchObject({ ok: false, lagBytes: 1049600 });
    expect((await call('GET', `${B()}/readiness?mode=write`)).body).toMatchObject({ ok: true, lagBytes: 1024 });
    // After a receiver restart the received position can be behind the replayed one: the later counts.
    syncWith((s) => ({ ...s, postgres: { ...s.postgres, replayLsn: PLUS_1MIB, receiveLsn: '0/3000000' } }));
    expect((await call('GET', `${B()}/readiness?mode=write`)).body).toMatchObject({ ok: true, lagBytes: 1024 });
  });

  it('a standby that does not stream, a deposed peer, and a peer whose PostgreSQL is down are not ready', async () => {
    syncWith((s) => ({ ...s, postgres: { ...s.postgres, walReceiver: 'waiting' } }));
    expect((await call('GET', `${B()}/readiness`)).body).toMatchObject({ ok: false, reason: 'a sync standby, but not streaming (its WAL receiver is waiting)' });
    syncWith((s) => ({ ...s, role: 'deposed' }));
    expect((await call('GET', `${B()}/readiness`)).body).toMatchObject({ ok: false, reason: 'this peer is neither the primary nor a standby (role deposed)' });
    syncWith((s) => ({ ...s, postgres: { ...s.postgres, online: false, healthy: false, error: 'connection refused' } }));
    const down = await call('GET', `${B()}/readiness`);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ ok: false, reason: 'PostgreSQL is not serving: connection refused' });
    // A primary waiting for its sync is ready (it is the primary) but says it is read-only.
    tweaks.set('a', (s) => ({ ...s, postgres: { ...s.postgres, writable: false } }));
    expect((await call('GET', `${A()}/readiness`)).body).toMatchObject({ ok: true, reason: 'the primary (read-only until its sync catches up)' });
  });
});

describe('/liveness (Patroni\'s livenessProbe): the sitter\'s loop, not PostgreSQL', () => {
  const NOW = Date.parse('2026-11-24T12:00:00.000Z');
  const STUCK_AFTER_MS = 300_000;
  const ago = (ms: number): string => new Date(NOW - ms).toISOString();
  const idle = (lastMs: number | null): SitterStatus['loop'] => ({ lastEvaluatedAt: lastMs === null ? null : ago(lastMs), evaluatingSince: null, lastProgressAt: null, stuckAfterMs: STUCK_AFTER_MS });
  const running = (sinceMs: number, progressMs: number): SitterStatus['loop'] => ({ lastEvaluatedAt: ago(sinceMs + 1000), evaluatingSince: ago(sinceMs), lastProgressAt: ago(progressMs), stuckAfterMs: STUCK_AFTER_MS });
  const at = (loop: SitterStatus['loop'], extra: Partial<SitterStatus> = {}): SitterStatus => ({ ...statusOf(peers[1]!, store), startedAt: ago(3_600_000), loop, ...extra });
  const live = (s: SitterStatus) => evaluateHealth(s, 'liveness', null, null, { nowMs: NOW });

  it('alive while evaluations end; stuck when the last one ended too long ago', () => {
    expect(live(at(idle(900)))).toMatchObject({ ok: true, reason: "the sitter's loop is alive: its last evaluation ended 900 ms ago" });
    expect(live(at(idle(LIVENESS_MAX_IDLE_MS))).ok).toBe(true);
    expect(live(at(idle(LIVENESS_MAX_IDLE_MS + 1)))).toMatchObject({
      ok: false, reason: "the sitter's loop looks stuck: its last evaluation ended 10.0 s ago, more than 10.0 s",
    });
  });

  it('a long evaluation is alive while it makes progress, measured from its last progress, not its start', () => {
    expect(live(at(running(120_000, 120_000))).ok).toBe(true);
    expect(live(at(running(STUCK_AFTER_MS + 1000, STUCK_AFTER_MS + 1000)))).toMatchObject({
      ok: false, reason: "the sitter's loop looks stuck: an evaluation has run for 301.0 s, its last progress 301.0 s ago, more than 300.0 s",
    });
    // An hour-long rebuild that reported progress a second ago is alive...
    const rebuild = { running: true, reason: 'rebuild', source: 'a', progress: null, lastError: null, lastResult: null };
    expect(live(at(running(3_600_000, 1000), { rebuild }))).toMatchObject({
      ok: true, reason: "the sitter's loop is alive: an evaluation has run for 3600.0 s, copying data (rebuild from a), its last progress 1.0 s ago",
    });
    // ...and so is the start of PostgreSQL that follows the copy, in the same evaluation.
    expect(live(at(running(3_600_000, 200_000))).ok).toBe(true);
    // A copy that stopped reporting progress is stuck.
    expect(live(at(running(3_600_000, STUCK_AFTER_MS + 1), { rebuild })).ok).toBe(false);
    // The bound is the sitter's (derived from its timeouts).
    expect(live(at({ ...running(3_600_000, 400_000), stuckAfterMs: 600_000 })).ok).toBe(true);
  });

  it('a sitter that never ended an evaluation is alive only for its first seconds', () => {
    expect(live(at(idle(null), { startedAt: ago(2000) })).ok).toBe(true);
    expect(live(at(idle(null), { startedAt: ago(20_000) }))).toMatchObject({
      ok: false, reason: "the sitter's loop looks stuck: no evaluation has run in the 20.0 s since it started",
    });
  });

  it('over HTTP: 200 with PostgreSQL down, 503 when the loop stopped; HEAD and OPTIONS agree', async () => {
    syncWith((s) => ({ ...s, postgres: { ...s.postgres, online: false, healthy: false, error: 'connection refused' } }));
    expect((await call('GET', `${B()}/health`)).status).toBe(503);
    const alive = await call('GET', `${B()}/liveness`);
    expect(alive.status).toBe(200);
    expect(alive.body).toMatchObject({ check: 'liveness', ok: true, pgOnline: false });
    syncWith((s) => ({ ...s, loop: { ...s.loop, lastEvaluatedAt: new Date(Date.now() - 60_000).toISOString(), evaluatingSince: null } }));
    const stuck = await call('GET', `${B()}/liveness`);
    expect(stuck.status).toBe(503);
    expect(stuck.body.reason).toMatch(/^the sitter's loop looks stuck: its last evaluation ended 6[0-9]\.[0-9] s ago/);
    expect((await call('HEAD', `${B()}/liveness`)).status).toBe(503);
    expect((await call('OPTIONS', `${B()}/liveness`)).status).toBe(503);
    expect((await call('OPTIONS', `${A()}/liveness`)).status).toBe(200);
  });
});
