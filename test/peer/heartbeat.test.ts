// The replication heartbeat on a real PostgreSQL 15: the writable primary creates Manatee's own
// schema and updates its one row; a reader computes the lag in seconds from it; failures are
// reported in the status and never thrown; user schemas are never touched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Heartbeat, HEARTBEAT_TABLE, type HeartbeatRole } from '../../src/peer/heartbeat.js';
import { silentLogger } from '../../src/log.js';
import type { PostgresServer } from '../../src/postgres/index.js';
import { makePgSandbox, type PgSandbox } from '../helpers/pg.js';

let sandbox: PgSandbox;
let pg: PostgresServer;

beforeAll(async () => {
  sandbox = await makePgSandbox('heartbeat');
  pg = await sandbox.primary('p1');
}, 120_000);

afterAll(async () => {
  await sandbox.cleanup();
}, 60_000);

function beat(role: HeartbeatRole, selfId = 'p1'): Heartbeat {
  return new Heartbeat({
    selfId,
    query: (sql, params, timeoutMs) => pg.queryWithTimeout(sql, params, timeoutMs),
    role: () => role,
    log: silentLogger(),
    intervalMs: 50,
  });
}

describe('heartbeat', () => {
  it('a reader before any primary wrote says so, without an error thrown', async () => {
    const s = await beat({ writablePrimary: false, online: true, generation: 1 }).tick();
    expect(s).toMatchObject({ primaryId: null, lagSeconds: null, error: 'no heartbeat written yet' });
  });

  it('the writable primary creates manatee.heartbeat and updates its one row; a reader gets the lag in seconds', async () => {
    const w = beat({ writablePrimary: true, online: true, generation: 4 });
    const first = await w.tick();
    expect(first).toMatchObject({ primaryId: 'p1', generation: 4, lagSeconds: 0, error: null });
    await w.tick();
    const rows = await pg.query<{ id: number; generation: number; primary_id: string; lsn: string | null }>(`SELECT id, generation, primary_id, lsn::text AS lsn FROM ${HEARTBEAT_TABLE}`);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: 1, generation: 4, primary_id: 'p1' });
    expect(rows[0]!.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    await new Promise((r) => setTimeout(r, 300));
    const read = await beat({ writablePrimary: false, online: true, generation: 4 }, 'p2').tick();
    expect(read).toMatchObject({ primaryId: 'p1', generation: 4, error: null });
    expect(read.lagSeconds!).toBeGreaterThanOrEqual(0.25);
    expect(read.lagSeconds!).toBeLessThan(30);
    expect(read.writtenAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('the heartbeat\'s synchronous_commit = local stays inside its own transaction on the shared connection', async () => {
    await beat({ writablePrimary: true, online: true, generation: 4 }).tick();
    // The same held connection serves the sitter's other queries: they must still wait for the sync.
    const [r] = await pg.query<{ sc: string; pid: number }>("SELECT current_setting('synchronous_commit') AS sc, pg_backend_pid() AS pid");
    expect(r!.sc).toBe('on');
    const [again] = await pg.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(again!.pid).toBe(r!.pid);
  });

  it('touches no user schema: only manatee.heartbeat exists besides the catalogs', async () => {
    const tables = await pg.query<{ t: string }>(
      "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    );
    expect(tables.map((r) => r.t)).toEqual(['manatee.heartbeat']);
  });

  it('runs on its timer after start() and stops after stop()', async () => {
    const w = beat({ writablePrimary: true, online: true, generation: 5 });
    w.start();
    try {
      const deadline = Date.now() + 10_000;
      while (w.status().generation !== 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(w.status()).toMatchObject({ generation: 5, error: null });
    } finally {
      w.stop();
    }
  });

  it('a write refused by PostgreSQL (read-only) is reported in the status, not thrown', async () => {
    const w = beat({ writablePrimary: true, online: true, generation: 6 });
    await pg.query('ALTER SYSTEM SET default_transaction_read_only = on');
    // reload() waits until the sitter's (held) session has read the new configuration.
    await pg.reload();
    try {
      const s = await w.tick();
      expect(s.error).toMatch(/read-only transaction/);
      expect(s.lagSeconds).toBeNull();
    } finally {
      await pg.query('ALTER SYSTEM RESET default_transaction_read_only');
      await pg.reload();
    }
    // And the next beat works again, creating the table again if it must.
    const deadline = Date.now() + 10_000;
    let s = await w.tick();
    while (s.error !== null && Date.now() < deadline) s = await w.tick();
    expect(s).toMatchObject({ generation: 6, error: null, lagSeconds: 0 });
  });

  it('PostgreSQL not serving: the role says so, or the query fails; both end in the status', async () => {
    const off = await beat({ writablePrimary: false, online: false, generation: 6 }).tick();
    expect(off).toMatchObject({ lagSeconds: null, error: 'PostgreSQL is not serving' });
    await pg.stop('fast');
    try {
      const s = await beat({ writablePrimary: false, online: true, generation: 6 }).tick();
      expect(s.lagSeconds).toBeNull();
      expect(s.error).toMatch(/query failed/);
    } finally {
      await pg.start();
    }
  });

  it('refuses a bad generation before sending anything', async () => {
    const s = await beat({ writablePrimary: true, online: true, generation: -1 }).tick();
    expect(s.error).toMatch(/bad generation -1/);
  });
});
