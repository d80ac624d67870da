// The sitter's held connection on a real PostgreSQL 15: its queries share one backend; a server
// error leaves the session usable and outside any transaction; a hung backend (SIGSTOP) fails the
// query at its deadline and the next query connects afresh; a terminated backend is replaced; and
// a server out of connection slots, which still answers on the held connection, is seen by
// checkNewConnection() and by the health check (PgMonitor) as unhealthy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { silentLogger } from '../../src/log.js';
import { PgMonitor } from '../../src/peer/pg-monitor.js';
import type { PostgresServer } from '../../src/postgres/index.js';
import { connect, makePgSandbox, type PgSandbox } from '../helpers/pg.js';
import { waitFor } from '../../tools/lib/wait.js';

let sandbox: PgSandbox;
let server: PostgresServer;

beforeAll(async () => {
  sandbox = await makePgSandbox('held-conn');
  // Few slots, none reserved for superusers: the test can fill them all.
  server = await sandbox.primary('p1', { settings: { max_connections: 4, superuser_reserved_connections: 0 } });
}, 120_000);

afterAll(async () => {
  await sandbox.cleanup();
}, 60_000);

async function backendPid(): Promise<number> {
  const [r] = await server.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return r!.pid;
}

describe('held connection', () => {
  it('runs every query of the sitter on one backend: no new connection per query', async () => {
    const pid = await backendPid();
    const connects = server.heldConnectCount;
    const [before] = await server.query<{ n: string }>('SELECT sum(sessions)::text AS n FROM pg_stat_database');
    for (let i = 0; i < 20; i++) await server.walPositions();
    const [after] = await server.query<{ n: string }>('SELECT sum(sessions)::text AS n FROM pg_stat_database');
    expect(await backendPid()).toBe(pid);
    expect(server.heldConnectCount).toBe(connects);
    expect(Number(after!.n)).toBe(Number(before!.n));
  });

  it('a server error keeps the session, and leaves no transaction open behind it', async () => {
    const pid = await backendPid();
    await expect(server.query('BEGIN; SELECT 1/0; COMMIT')).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_QUERY', message: /division by zero/ });
    // In an aborted transaction this would fail with "current transaction is aborted".
    const [r] = await server.query<{ one: number }>('SELECT 1 AS one');
    expect(r!.one).toBe(1);
    // Inside a transaction left open, now() would be the transaction's start, before this statement.
    const [tx] = await server.query<{ fresh: boolean }>('SELECT now() = statement_timestamp() AS fresh');
    expect(tx!.fresh).toBe(true);
    expect(await backendPid()).toBe(pid);
  });

  it('a hung backend fails the query at its deadline, and the next query runs on a new backend', async () => {
    const pid = await backendPid();
    process.kill(pid, 'SIGSTOP');
    try {
      const started = Date.now();
      await expect(server.queryWithTimeout('SELECT 1', undefined, 300)).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_QUERY', message: /no answer within/ });
      expect(Date.now() - started).toBeLessThan(5000);
      const next = await backendPid();
      expect(next).not.toBe(pid);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('a query queued behind one on a hung backend is answered at its own deadline, not after the earlier one\'s', async () => {
    const pid = await backendPid();
    process.kill(pid, 'SIGSTOP');
    try {
      let earlierSettled = false;
      const earlier = server.queryWithTimeout('SELECT 1', undefined, 9000).finally(() => { earlierSettled = true; });
      earlier.catch(() => undefined);
      await expect(server.queryWithTimeout('SELECT 2', undefined, 300)).rejects.toMatchObject({
        code: 'MANATEE_ERR_PG_QUERY', message: /no answer within 1300 ms: queued behind an earlier query on the held connection that has not ended/,
      });
      expect(earlierSettled).toBe(false);
      await expect(earlier).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_QUERY', message: /no answer within/ });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // The query that gave up while it waited was never sent; the next one runs on a new backend.
    expect(await backendPid()).not.toBe(pid);
  }, 60_000);

  it('a backend terminated by the server is replaced: at most one query fails', async () => {
    const pid = await backendPid();
    const other = await connect(server);
    try {
      await other.query('SELECT pg_terminate_backend($1)', [pid]);
    } finally {
      await other.end();
    }
    let failures = 0;
    await waitFor('a query on a new backend', async () => {
      try {
        return (await backendPid()) !== pid;
      } catch (err) {
        expect(err).toMatchObject({ code: 'MANATEE_ERR_PG_QUERY' });
        failures++;
        return false;
      }
    }, { timeoutMs: 30_000 });
    expect(failures).toBeLessThanOrEqual(1);
  });

  it('a server out of connection slots: the held connection still answers, but a new connection is refused and the health check says unhealthy', async () => {
    await backendPid(); // the held connection holds one of the 4 slots
    const fillers: pg.Client[] = [];
    const monitor = new PgMonitor({ postgres: server, intervalMs: 60_000, timeoutMs: 5000, log: silentLogger(), newConnectionCheckIntervalMs: 0 });
    try {
      for (;;) {
        const c = new pg.Client({ ...server.clientConfig(), statement_timeout: 0 });
        c.on('error', () => undefined);
        try {
          await c.connect();
        } catch (err) {
          expect((err as Error).message).toMatch(/too many clients|remaining connection slots/);
          break;
        }
        fillers.push(c);
        expect(fillers.length).toBeLessThan(10);
      }
      expect((await server.query<{ one: number }>('SELECT 1 AS one'))[0]!.one).toBe(1);
      await expect(server.checkNewConnection(5000)).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_NEW_CONNECTION', message: /accepts no new connection: .*too many clients/ });
      const s = await monitor.checkNow();
      expect(s).toMatchObject({ healthy: false, error: expect.stringMatching(/accepts no new connection/) });
    } finally {
      for (const c of fillers) await c.end().catch(() => undefined);
    }
    const s = await monitor.checkNow();
    expect(s).toMatchObject({ healthy: true, error: null });
  });
});
