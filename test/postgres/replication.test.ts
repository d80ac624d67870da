// Two real PostgreSQL 15 servers, a (peer-a) and b (peer-b), through a whole Manatee story:
// b bootstraps from a (pg_basebackup over TLS); a stays read-only until b has caught up; synchronous replication holds
// while b is down; b is promoted; a diverges, is rewound, and then follows b.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePgSandbox, connect, pgUrlOf, waitCaughtUp, type PgSandbox } from '../helpers/pg.js';
import { waitFor } from '../../tools/lib/wait.js';
import { PostgresServer } from '../../src/postgres/index.js';
import { readWalAndReplication } from '../../src/postgres/replication.js';
import { BasebackupBackend } from '../../src/backup/basebackup.js';
import { hasCode } from '../../src/errors.js';

let sb: PgSandbox;
let a: PostgresServer;
let b: PostgresServer;

beforeAll(async () => {
  sb = await makePgSandbox('pgrepl');
  a = await sb.primary('a');
  await a.query('CREATE TABLE t (id int PRIMARY KEY, note text)');
  await a.query("INSERT INTO t VALUES (1, 'before b')");
  b = await sb.server('b');
});

afterAll(async () => {
  await sb.cleanup();
});

function source(s: PostgresServer, id: string): { peerId: string; pgUrl: string; backupUrl: string } {
  return { peerId: id, pgUrl: pgUrlOf(s), backupUrl: 'http://unused' };
}

describe('the WAL positions query', () => {
  it('refuses an answer with no row, with its code', async () => {
    const none = <R,>(): Promise<R[]> => Promise.resolve([]);
    await expect(readWalAndReplication(none)).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_QUERY', message: expect.stringContaining('returned no row') });
  });
});

describe('replication between two peers', () => {
  it('a new primary is read-only until its sync has caught up, then enableWrites turns writes on', async () => {
    const r = await a.configure({ role: 'primary', syncId: 'peer-b' });
    expect(r.action).toBe('reloaded');
    await expect(a.query("INSERT INTO t VALUES (2, 'too early')")).rejects.toThrow(/read-only transaction/);

    const restored = await new BasebackupBackend({ postgres: b }).restore({ source: source(a, 'peer-a'), reason: 'bootstrap' });
    expect(restored.method).toBe('full');
    const rb = await b.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-b' });
    expect(rb.action).toBe('started');
    expect(await b.inRecovery()).toBe(true);
    expect(await b.show('primary_conninfo')).toMatch(/application_name='?peer-b/);

    const caught = await waitFor('peer-b to catch up', async () => {
      const c = await a.syncCaughtUp('peer-b');
      return c.caughtUp ? c : null;
    });
    expect(caught.reason).toMatch(/streaming/);
    await a.enableWrites('peer-b');
    expect(await a.show('synchronous_standby_names')).toBe('"peer-b"');
    expect(await a.show('default_transaction_read_only')).toBe('off');
    await a.query("INSERT INTO t VALUES (2, 'after catch-up')");
    await waitFor('row 2 on b', async () => (await b.query('SELECT 1 FROM t WHERE id = 2')).length === 1);

    const rows = await a.replicationStatus();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ applicationName: 'peer-b', state: 'streaming', syncState: 'sync' });
    // The stream runs over TLS 1.3, and b logged in with its peer certificate (pg_hba's cert, pg_ident's map).
    const ssl = await a.query<{ ssl: boolean; version: string; client_dn: string | null }>(
      'SELECT s.ssl, s.version, s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)');
    expect(ssl).toEqual([{ ssl: true, version: 'TLSv1.3', client_dn: '/CN=b' }]);
    expect(await b.show('primary_conninfo')).toMatch(/sslmode='?verify-full/);
    const pos = await b.walPositions();
    expect(pos.inRecovery).toBe(true);
    expect(pos.receiveLsn).not.toBeNull();
    expect(pos.replayLsn).not.toBeNull();
    expect(pos.timeline).toBe(1);
    // The health check's single round trip reads the same as the separate queries, on both.
    const both = async (s: PostgresServer) => readWalAndReplication((sql, params) => s.query(sql, params));
    const onA = await both(a);
    expect(onA.positions).toMatchObject({ inRecovery: false, timeline: 1, receiveLsn: null, replayLsn: null, walReceiver: null });
    expect(onA.positions.currentLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(onA.positions.lastLsn).toBe(onA.positions.currentLsn);
    expect(onA.rows.map((x) => [x.applicationName, x.state, x.syncState, x.pid])).toEqual(rows.map((x) => [x.applicationName, x.state, x.syncState, x.pid]));
    expect(onA.rows[0]!.replayLagBytes).toBeGreaterThanOrEqual(0);
    const onB = await both(b);
    expect(onB.positions).toMatchObject({ inRecovery: true, timeline: 1, currentLsn: null, flushLsn: null, walReceiver: 'streaming' });
    expect(onB.positions.replayLsn).not.toBeNull();
    expect(onB.rows).toEqual([]);
  });

  it('a standby picks up a changed primary_conninfo by reload, without a restart', async () => {
    const pid = b.postgresPid;
    const r = await b.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-b-renamed' });
    expect(r.action).toBe('reloaded');
    expect(b.postgresPid).toBe(pid);
    await waitFor('the walreceiver to reconnect under its new name', async () =>
      (await a.replicationStatus()).some((row) => row.applicationName === 'peer-b-renamed' && row.state === 'streaming'));
    // Commits named "peer-b" as their sync: with peer-b gone they would wait. Name it back.
    await b.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-b' });
    await waitFor('peer-b streaming again', async () => (await a.syncCaughtUp('peer-b')).caughtUp);
  });

  it('a commit waits while the sync is down and returns once it is back', async () => {
    await b.stop('fast');
    const c = await connect(a);
    try {
      let settled = false;
      const commit = c.query("INSERT INTO t VALUES (3, 'waits for b')").then(() => { settled = true; });
      // Still pending after a few seconds: the commit is local but not acknowledged.
      await new Promise((r) => setTimeout(r, 3000));
      expect(settled).toBe(false);
      const waiting = await a.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
      expect(waiting[0]?.n).toBe('1');
      await b.start();
      await commit;
      expect(settled).toBe(true);
    } finally {
      await c.end();
    }
    await waitFor('row 3 on b', async () => (await b.query('SELECT 1 FROM t WHERE id = 3')).length === 1);
  });

  it('promotes the standby: it leaves recovery on a new timeline, read-only until told otherwise', async () => {
    await waitCaughtUp(a, b);
    const r = await b.configure({ role: 'primary', syncId: 'peer-a' });
    expect(r.action).toBe('promoted');
    expect(await b.inRecovery()).toBe(false);
    const pos = await b.walPositions();
    expect(pos.timeline).toBe(2);
    const promoted = (await readWalAndReplication((sql, params) => b.query(sql, params))).positions;
    expect(promoted).toMatchObject({ inRecovery: false, timeline: 2, receiveLsn: null });
    expect(promoted.currentLsn).not.toBeNull();
    expect(await b.show('default_transaction_read_only')).toBe('on');
    let caught: unknown = null;
    try { await b.promote(); } catch (err) { caught = err; }
    expect(hasCode(caught, 'MANATEE_ERR_PG_WRONG_ROLE')).toBe(true);
    await b.configure({ role: 'primary', oneNodeWriteMode: true });
    await b.query("INSERT INTO t VALUES (10, 'b as primary')");
  });

  it('rewinds the diverged former primary, which then replicates from the new primary', async () => {
    // a did not see the takeover: it writes on its own timeline (ONWM so that commits return).
    await a.configure({ role: 'primary', oneNodeWriteMode: true });
    await a.query("INSERT INTO t SELECT g, 'diverged on a' FROM generate_series(100, 2000) g");
    await a.stop('immediate');

    // Without a checkpoint on the source, pg_rewind is not run at all (the just-promoted source's
    // pg_control may still show the old timeline, and pg_rewind would answer "no rewind required").
    const { pgRewind } = await import('../../src/postgres/index.js');
    const refusedLines: string[] = [];
    const refusedLog = pino({ level: 'info' }, { write: (line: string) => { refusedLines.push(line); } });
    let refused: unknown = null;
    try { await pgRewind(a, { sourceConninfo: 'host=127.0.0.1 port=1 dbname=postgres connect_timeout=5', logger: refusedLog }); } catch (err) { refused = err; }
    expect(hasCode(refused, 'MANATEE_ERR_PG_REWIND_FAILED')).toBe(true);
    expect((refused as Error).message).toMatch(/did not write a checkpoint before pg_rewind/);
    expect(refusedLines.some((l) => l.includes('"decision":"checkpoint-source-failed"'))).toBe(true);
    expect(refusedLines.some((l) => l.includes('"decision":"rewind"'))).toBe(false);

    const progress: string[] = [];
    const logLines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => { logLines.push(line); } });
    const restored = await new BasebackupBackend({ postgres: a, logger }).restore({
      source: source(b, 'peer-b'), reason: 'rebuild', onProgress: (p) => progress.push(p.phase),
    });
    expect(restored.method).toBe('rewind');
    // The source was asked for a checkpoint first, and pg_rewind really rewound (diverged WAL).
    expect(logLines.some((l) => l.includes('"decision":"checkpoint-source"'))).toBe(true);
    expect(logLines.some((l) => l.includes('"decision":"rewound"') && l.includes('"rewound":true'))).toBe(true);
    expect(progress[0]).toBe('rewinding');
    expect(progress.at(-1)).toBe('done');

    const r = await a.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: b.port }, applicationName: 'peer-a' });
    expect(r.action).toBe('started');
    expect(await a.inRecovery()).toBe(true);
    await b.query("INSERT INTO t VALUES (11, 'after rewind')");
    await waitFor('row 11 on a', async () => (await a.query('SELECT 1 FROM t WHERE id = 11')).length === 1);
    // The diverged rows are gone: a now has b's history.
    expect((await a.query<{ n: string }>('SELECT count(*)::text AS n FROM t WHERE id >= 100'))[0]?.n).toBe('0');
    expect((await a.walPositions()).timeline).toBe(2);
    await waitFor('peer-a to be caught up on b', async () => (await b.syncCaughtUp('peer-a')).caughtUp);
  });
});
