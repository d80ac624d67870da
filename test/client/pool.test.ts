// The primary-following Pool on two real PostgreSQL servers, with the topology served by real
// APIs over a real cluster store (test/client/fixture.ts): writes move with the primary, the old
// primary's idle connections are ended while a checked-out one finishes its work, connection
// failures and read-only refusals are retried, and wrong credentials are not.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createClient, releaseAfter, type ManateeClient, type PrimaryPool } from '../../src/client/index.js';
import { CLIENT_ERR } from '../../src/client/errors.js';
import type { PostgresServer } from '../../src/postgres/index.js';
import type { ClusterState, PeerInfo } from '../../src/model/index.js';
import { connect, makePgSandbox, TEST_SUPER_PASSWORD, type PgSandbox } from '../helpers/pg.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { StoreShard } from './fixture.js';

const APP = 'manatee-pool-test';

function peerOn(id: string, port: number): PeerInfo {
  return { id, pgUrl: `postgres://127.0.0.1:${port}/postgres`, apiUrl: `http://127.0.0.1:1/${id}`, host: '127.0.0.1' };
}

let sandbox: PgSandbox;
let pg1: PostgresServer;
let pg2: PostgresServer;
let shard: StoreShard;
let client: ManateeClient;
let pool: PrimaryPool;
let version = 0;

async function countOn(server: PostgresServer, sql: string): Promise<number> {
  const c = await connect(server);
  try {
    const r = await c.query<{ n: string }>(sql);
    return Number(r.rows[0]?.n ?? 0);
  } finally {
    await c.end();
  }
}

const appConnections = (server: PostgresServer): Promise<number> =>
  countOn(server, `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = '${APP}'`);

async function setPrimary(primary: PeerInfo, sync: PeerInfo): Promise<void> {
  const state: ClusterState = { generation: version + 1, primary, sync, async: [], deposed: [], initWal: '0/0' };
  version = await shard.put(state);
}

beforeAll(async () => {
  sandbox = await makePgSandbox('client-pool');
  pg1 = await sandbox.primary('pg1');
  pg2 = await sandbox.primary('pg2');
  for (const s of [pg1, pg2]) {
    const c = await connect(s);
    await c.query('CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, note text)');
    await c.end();
  }
}, 180_000);

afterAll(async () => {
  await sandbox.cleanup();
});

afterEach(async () => {
  await pool.end();
  await client.close();
  await shard.teardown();
  version = 0;
  for (const s of [pg1, pg2]) {
    const c = await connect(s);
    await c.query('TRUNCATE t');
    await c.query('ALTER SYSTEM RESET default_transaction_read_only');
    await c.query('SELECT pg_reload_conf()');
    await c.end();
  }
});

async function start(primary: PeerInfo, sync: PeerInfo, poolExtra: Record<string, unknown> = {}): Promise<void> {
  shard = await StoreShard.create(['a', 'b']);
  await setPrimary(primary, sync);
  await shard.startApi('a');
  await shard.startApi('b');
  client = createClient({ peers: [shard.peer('a').url, shard.peer('b').url], backoff: { initialMs: 50, maxMs: 200 } });
  // The sandbox's servers take TLS connections only: the application passes pg's own `ssl`.
  pool = client.pool({ user: 'postgres', password: TEST_SUPER_PASSWORD, application_name: APP, max: 4, ssl: await sandbox.clientSsl(), retry: { attempts: 30, initialDelayMs: 50, maxDelayMs: 300 }, ...poolExtra });
}

describe('PrimaryPool', () => {
  it('writes to the primary, and after a topology change to the new one; the old idle connections end, a checked-out one finishes', async () => {
    const A = peerOn('a', pg1.port);
    const B = peerOn('b', pg2.port);
    await start(A, B);
    await pool.query('INSERT INTO t VALUES (1, $1)', ['before']);
    await pool.query('INSERT INTO t VALUES (2, $1)', ['before']);
    expect(pool.primaryUrl).toBe(A.pgUrl);
    expect(await countOn(pg1, 'SELECT count(*) AS n FROM t')).toBe(2);
    // A transaction in flight on the old primary.
    const held: pg.PoolClient = await pool.connect();
    await held.query('BEGIN');
    await held.query("INSERT INTO t VALUES (3, 'in flight')");
    expect(await appConnections(pg1)).toBeGreaterThanOrEqual(1);
    const switched = new Promise<string>((resolve) => pool.once('primary', resolve));
    await setPrimary(B, A);
    expect(await switched).toBe(B.pgUrl);
    await pool.query("INSERT INTO t VALUES (10, 'after')");
    expect(await countOn(pg2, 'SELECT count(*) AS n FROM t WHERE id = 10')).toBe(1);
    expect(await countOn(pg1, 'SELECT count(*) AS n FROM t WHERE id = 10')).toBe(0);
    // Idle connections to the old primary are gone; the checked-out one is still there and works.
    await waitFor('only the held connection on the old primary', async () => (await appConnections(pg1)) === 1, { timeoutMs: 10_000 });
    await held.query('COMMIT');
    held.release();
    expect(await countOn(pg1, 'SELECT count(*) AS n FROM t WHERE id = 3')).toBe(1);
    await waitFor('no connection left on the old primary', async () => (await appConnections(pg1)) === 0, { timeoutMs: 10_000 });
    expect(pool.counts.draining).toBe(0);
  });

  it('retries connection failures until the topology names a reachable primary', async () => {
    const dead = peerOn('a', await freePort());
    const B = peerOn('b', pg2.port);
    await start(dead, B);
    const write = pool.query("INSERT INTO t VALUES (20, 'retried')");
    // Let it fail against the dead primary a few times, then fail over.
    await new Promise((r) => setTimeout(r, 300));
    await setPrimary(B, dead);
    await write;
    expect(await countOn(pg2, 'SELECT count(*) AS n FROM t WHERE id = 20')).toBe(1);
  });

  it('gives up after its bounded attempts with MANATEE_ERR_CLIENT_NO_PRIMARY naming the primary', async () => {
    const dead = peerOn('a', await freePort());
    await start(dead, peerOn('b', pg2.port), { retry: { attempts: 3, initialDelayMs: 10, maxDelayMs: 10 } });
    const err = await pool.query('SELECT 1').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: CLIENT_ERR.noPrimary });
    expect((err as Error).message).toContain(`could not connect to the primary (${dead.pgUrl}) in 3 attempts`);
  });

  it('retries a statement refused because the primary is still read-only, and not other SQL errors', async () => {
    const A = peerOn('a', pg1.port);
    await start(A, peerOn('b', pg2.port));
    const admin = await connect(pg1);
    try {
      await admin.query('ALTER SYSTEM SET default_transaction_read_only = on');
      await admin.query('SELECT pg_reload_conf()');
      await waitFor('read-only to apply', async () => (await pool.query('SHOW default_transaction_read_only')).rows[0]?.default_transaction_read_only === 'on');
      const write = pool.query("INSERT INTO t VALUES (30, 'after read-only')");
      await new Promise((r) => setTimeout(r, 300));
      await admin.query('ALTER SYSTEM RESET default_transaction_read_only');
      await admin.query('SELECT pg_reload_conf()');
      await write;
      expect(await countOn(pg1, 'SELECT count(*) AS n FROM t WHERE id = 30')).toBe(1);
      // A duplicate key is the caller's problem: thrown at once.
      await expect(pool.query("INSERT INTO t VALUES (30, 'again')")).rejects.toMatchObject({ code: '23505' });
    } finally {
      await admin.end();
    }
  });

  it('never sends a statement again after its connection broke: the caller gets the error (the write may have committed)', async () => {
    await start(peerOn('a', pg1.port), peerOn('b', pg2.port));
    const admin = await connect(pg1);
    try {
      // nextval() is not transactional: it counts how many times the statement was executed.
      await admin.query('DROP SEQUENCE IF EXISTS pool_calls');
      await admin.query('CREATE SEQUENCE pool_calls');
      const write = pool.query('SELECT nextval(\'pool_calls\') AS n, pg_sleep(30)').then(() => null, (e: unknown) => e);
      const running = `SELECT pid FROM pg_stat_activity WHERE application_name = '${APP}' AND state = 'active' AND query LIKE '%pool_calls%'`;
      await waitFor('the statement to run', async () => (await admin.query(running)).rowCount === 1, { timeoutMs: 10_000 });
      await admin.query(`SELECT pg_terminate_backend(pid) FROM (${running}) AS r`);
      const err = await write;
      expect(err).toBeInstanceOf(Error);
      // The terminated session (FATAL 57P01) was not given back to the pool: the next caller
      // would have got it before its close was noticed ("Connection terminated unexpectedly").
      expect(pool.counts.idle).toBe(0);
      // query() settles only after its retries: one execution means it was not sent again.
      const calls = await admin.query<{ last_value: string; is_called: boolean }>('SELECT last_value, is_called FROM pool_calls');
      expect(calls.rows[0]).toEqual({ last_value: '1', is_called: true });
      // The pool is usable again: a new connection replaces the broken one.
      await expect(pool.query('SELECT 1 AS one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
    } finally {
      await admin.query('DROP SEQUENCE IF EXISTS pool_calls');
      await admin.end();
    }
  });

  it('releaseAfter() destroys a connection taken with connect() whose backend was terminated, and keeps one after an SQL error', async () => {
    await start(peerOn('a', pg1.port), peerOn('b', pg2.port), { max: 2 });
    const admin = await connect(pg1);
    try {
      // An SQL error leaves the session usable: the connection goes back to the pool.
      const kept = await pool.connect();
      const keptPid = (await kept.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const sqlErr = await kept.query('SELECT 1/0').then(() => null, (e: unknown) => e);
      expect(sqlErr).toMatchObject({ code: '22012', severity: 'ERROR' });
      releaseAfter(kept, sqlErr);
      expect(pool.counts).toMatchObject({ total: 1, idle: 1 });

      // A terminated backend (FATAL 57P01): the connection is destroyed, not handed to the next caller.
      const doomed = await pool.connect();
      expect((await doomed.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid).toBe(keptPid);
      const running = `SELECT pid FROM pg_stat_activity WHERE application_name = '${APP}' AND state = 'active' AND query LIKE '%pool_doomed%'`;
      const sleeping = doomed.query('SELECT pg_sleep(30) AS pool_doomed').then(() => null, (e: unknown) => e);
      await waitFor('the statement to run', async () => (await admin.query(running)).rowCount === 1, { timeoutMs: 10_000 });
      await admin.query(`SELECT pg_terminate_backend(pid) FROM (${running}) AS r`);
      const fatal = await sleeping;
      expect(fatal).toMatchObject({ code: '57P01', severity: 'FATAL' });
      releaseAfter(doomed, fatal);
      expect(pool.counts).toMatchObject({ total: 0, idle: 0 });

      // A failure that did not come from the server (a client-side timeout): destroyed too.
      const unsure = await pool.connect();
      const unsurePid = (await unsure.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      // A statement still running when the client gave up on it (a client-side timeout): its
      // socket is destroyed at once, not closed politely behind the unanswered statement.
      const stream = (unsure as unknown as { connection: { stream: { destroyed: boolean } } }).connection.stream;
      const abandoned = unsure.query('SELECT pg_sleep(2)').then(() => null, (e: unknown) => e);
      releaseAfter(unsure, new Error('statement timed out on the client'));
      expect(stream.destroyed).toBe(true);
      expect(pool.counts).toMatchObject({ total: 0, idle: 0 });
      expect(await abandoned).toBeInstanceOf(Error);
      await waitFor('the destroyed connection\'s backend to end', async () => (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [unsurePid])).rowCount === 0, { timeoutMs: 10_000 });

      // The next caller gets a working connection.
      await expect(pool.query('SELECT 1 AS one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
    } finally {
      await admin.end();
    }
  });

  it('does not retry wrong credentials', async () => {
    await start(peerOn('a', pg1.port), peerOn('b', pg2.port), { password: 'wrong-password' });
    const t0 = Date.now();
    await expect(pool.query('SELECT 1')).rejects.toMatchObject({ code: '28P01' });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('refuses work after end()', async () => {
    await start(peerOn('a', pg1.port), peerOn('b', pg2.port));
    await pool.end();
    await expect(pool.query('SELECT 1')).rejects.toMatchObject({ code: CLIENT_ERR.closed });
  });
});
