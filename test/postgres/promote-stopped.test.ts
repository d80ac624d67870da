// A stopped standby's data directory configured as a primary must come up promoted, on a NEW
// timeline. Starting it without standby.signal would end recovery by crash recovery on the same
// timeline: the deposed primary's pg_rewind would then find "no rewind required" and rejoin with
// diverged WAL (safety review, finding 1).
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePgSandbox, pgUrlOf, waitCaughtUp, type PgSandbox } from '../helpers/pg.js';
import { waitFor } from '../../tools/lib/wait.js';
import { readFileSync } from 'node:fs';
import { PostgresServer, readTimelineHistory } from '../../src/postgres/index.js';
import { HeldSourcePostgres } from '../../src/peer/source-postgres.js';
import { TEST_REPL_PASSWORD } from '../helpers/pg.js';
import { BasebackupBackend } from '../../src/backup/basebackup.js';
import { PgMonitor } from '../../src/peer/pg-monitor.js';
import { capturingLogger } from '../../tools/lib/memory-peer.js';

let sb: PgSandbox;
let a: PostgresServer;

beforeAll(async () => {
  sb = await makePgSandbox('pgpromstop');
  a = await sb.primary('a');
  await a.query('CREATE TABLE t (id int PRIMARY KEY)');
  await a.query('INSERT INTO t VALUES (1)');
});

afterAll(async () => {
  await sb.cleanup();
});

async function standbyOfA(name: string): Promise<PostgresServer> {
  const s = await sb.server(name);
  await new BasebackupBackend({ postgres: s }).restore({ source: { peerId: 'peer-a', pgUrl: pgUrlOf(a), backupUrl: 'http://unused' }, reason: 'bootstrap' });
  await s.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: `peer-${name}` });
  await a.query(`INSERT INTO t VALUES (${String(Math.floor(Math.random() * 1e6) + 10)})`);
  await waitCaughtUp(a, s);
  return s;
}

/** The checkpoint after a promotion runs in the background (d024528): wait for it to name timeline 2. */
async function checkpointOnTimeline2(s: PostgresServer): Promise<void> {
  await waitFor('the checkpoint after the promotion to name timeline 2', async () => (await checkpointTimeline(s)) === 2);
}

async function checkpointTimeline(s: PostgresServer): Promise<number> {
  const [r] = await s.query<{ tli: number }>('SELECT timeline_id AS tli FROM pg_control_checkpoint()');
  return Number(r?.tli);
}

describe('configure primary on a stopped standby', () => {
  it('a standby killed -9 (standby.signal present) comes up promoted on a new timeline', async () => {
    const b = await standbyOfA('b');
    expect(await checkpointTimeline(b)).toBe(1);
    const pid = b.postgresPid;
    expect(pid).not.toBeNull();
    process.kill(pid!, 'SIGKILL');
    await waitFor('b to be gone', () => !b.running);
    expect(await b.standbyDataDir()).toMatch(/standby.signal/);

    const r = await b.configure({ role: 'primary', syncId: 'peer-a' });
    expect(r.action).toBe('promoted');
    expect(await b.inRecovery()).toBe(false);
    await checkpointOnTimeline2(b);
    expect((await b.walPositions()).timeline).toBe(2);
    // Still the safe primary: read-only until its sync has caught up.
    expect(await b.show('default_transaction_read_only')).toBe('on');
    expect((await b.query('SELECT count(*)::int AS n FROM t'))[0]).toEqual({ n: 2 });
    // A primary's own data directory is not a standby's.
    await b.stop('fast');
    expect(await b.standbyDataDir()).toBeNull();
    const again = await b.configure({ role: 'primary', syncId: 'peer-a' });
    expect(again.action).toBe('started');
    await checkpointOnTimeline2(b);
  });

  it('a standby whose standby.signal was lost (pg_control: in recovery) is promoted too', async () => {
    const c = await standbyOfA('c');
    await c.stop('immediate');
    await rm(join(c.dataDir, 'standby.signal'));
    expect(await c.standbyDataDir()).toMatch(/pg_control says "in archive recovery"/);

    const r = await c.configure({ role: 'primary', syncId: 'peer-a' });
    expect(r.action).toBe('promoted');
    expect(await c.inRecovery()).toBe(false);
    await checkpointOnTimeline2(c);
  });
});

describe('fences before a new generation records its WAL position', () => {
  it('detachFromUpstream stops the WAL receiver; configure standby undoes it, configure primary promotes it', async () => {
    const d = await standbyOfA('d');
    await d.detachFromUpstream();
    expect(await d.query('SELECT pid FROM pg_stat_wal_receiver WHERE pid IS NOT NULL')).toEqual([]);
    expect(await d.inRecovery()).toBe(true);
    await waitFor('a to see d gone', async () => !(await a.replicationStatus()).some((r) => r.applicationName === 'peer-d'));
    const before = (await d.walPositions()).receiveLsn;
    await a.query('INSERT INTO t VALUES (-1)');
    const { lsnAtLeast } = await import('../../src/model/index.js');
    const aFlush = (await a.walPositions()).flushLsn;
    expect(lsnAtLeast(before!, aFlush!)).toBe(false);
    expect((await d.walPositions()).receiveLsn).toBe(before);

    // Undo (the write of the new generation failed): the standby configuration reconnects it.
    await d.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'peer-d' });
    await waitCaughtUp(a, d);

    // Fence again, then promote (the takeover committed).
    await d.detachFromUpstream();
    const r = await d.configure({ role: 'primary', syncId: 'peer-a' });
    expect(r.action).toBe('promoted');
    await checkpointOnTimeline2(d);
  });

  it('detachFromUpstream refuses on a primary, fenceWrites on a standby', async () => {
    const e = await standbyOfA('e');
    await expect(a.detachFromUpstream()).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_WRONG_ROLE' });
    await expect(e.fenceWrites()).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_WRONG_ROLE' });
    await e.stop('fast');
    await expect(e.fenceWrites()).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_NOT_RUNNING' });
    await expect(e.detachFromUpstream()).rejects.toMatchObject({ code: 'MANATEE_ERR_PG_NOT_RUNNING' });
  });

  it('fenceWrites makes a writable primary read-only with commits waiting for an unnamed sync', async () => {
    expect(await a.show('default_transaction_read_only')).toBe('off');
    await a.fenceWrites();
    expect(await a.show('default_transaction_read_only')).toBe('on');
    expect(await a.show('synchronous_standby_names')).toBe('"!manatee-no-sync"');
    await expect(a.query('INSERT INTO t VALUES (-2)')).rejects.toThrow(/read-only transaction/);
    // Undo: the ONWM configuration makes it writable again.
    await a.configure({ role: 'primary', oneNodeWriteMode: true });
    await a.query('INSERT INTO t VALUES (-2)');
  });
});

describe('the timeline history a promotion writes', () => {
  it('is read back, as the superuser and as the replication role over TLS (a stalled sync compares its history with its primary\'s, and asks whether it is read-only)', async () => {
    const h = await standbyOfA('h');
    await h.detachFromUpstream();
    const replayed = (await h.walPositions()).replayLsn!;
    expect((await h.configure({ role: 'primary', syncId: 'peer-a' })).action).toBe('promoted');
    const history = { timeline: 2, switches: [{ timeline: 1, switchLsn: replayed }] };
    expect(await readTimelineHistory(h.query, 2)).toEqual(history);
    expect(await readTimelineHistory(h.query, 1)).toEqual({ timeline: 1, switches: [] });
    await expect(readTimelineHistory(h.query, 3)).rejects.toThrow(/00000003\.history/);
    const tls = await (await sb.ca()).peer('a');
    // The sources' ids are those of the certificates their servers hold (h, a): the peer id is checked.
    const sources = new HeldSourcePostgres({
      selfId: 'peer-a', replicationUser: h.replicationUser, replicationPassword: TEST_REPL_PASSWORD, timeoutMs: 10_000,
      ssl: () => ({ ca: readFileSync(tls.caFile, 'utf8'), cert: readFileSync(tls.certFile, 'utf8'), key: readFileSync(tls.keyFile, 'utf8') }),
    });
    try {
      expect(await sources.timelineHistory({ id: 'h', pgUrl: pgUrlOf(h), apiUrl: 'http://unused', host: '127.0.0.1' })).toEqual(history);
      // h is a primary waiting for its sync: read-only; a (one-node-write mode) takes writes.
      expect(await sources.readOnly({ id: 'h', pgUrl: pgUrlOf(h), apiUrl: 'http://unused', host: '127.0.0.1' })).toBe(true);
      expect(await sources.readOnly({ id: 'a', pgUrl: pgUrlOf(a), apiUrl: 'http://unused', host: '127.0.0.1' })).toBe(false);
      // a never promoted: timeline 1, which has no history file and no switch.
      expect(await sources.timelineHistory({ id: 'a', pgUrl: pgUrlOf(a), apiUrl: 'http://unused', host: '127.0.0.1' })).toEqual({ timeline: 1, switches: [] });
    } finally {
      sources.close('test done');
    }
  });
});

describe('the health checks keep the timeline history of a server\'s WAL (what initWal is recorded with)', () => {
  it('follows a promotion, keeps the newest timeline seen while the postmaster runs, and keeps it when a history cannot be read', async () => {
    const m = await standbyOfA('m');
    const { logger, lines } = capturingLogger();
    const monitor = new PgMonitor({ postgres: m, intervalMs: 60_000, timeoutMs: 10_000, log: logger });
    expect(monitor.history()).toBeNull();
    const tl1 = { timeline: 1, switches: [] };
    expect(await monitor.readHistory(await m.walPositions())).toEqual(tl1);
    await m.detachFromUpstream();
    const replayed = (await m.walPositions()).replayLsn!;
    expect((await m.configure({ role: 'primary', syncId: 'peer-a' })).action).toBe('promoted');
    const pos = await m.walPositions();
    expect(pos.timeline).toBe(2);
    const tl2 = { timeline: 2, switches: [{ timeline: 1, switchLsn: replayed }] };
    expect(await monitor.readHistory(pos)).toEqual(tl2);
    // A standby's reported timeline lags behind (its last checkpoint's) once its WAL receiver stops:
    // an older timeline than one seen since the postmaster started changes nothing.
    expect(await monitor.readHistory({ ...pos, timeline: 1 })).toEqual(tl2);
    // A history that cannot be read (no such file) is logged once and leaves the last one.
    expect(await monitor.readHistory({ ...pos, timeline: 3 })).toEqual(tl2);
    expect(await monitor.readHistory({ ...pos, timeline: 3 })).toEqual(tl2);
    expect(lines().filter((l) => l['decision'] === 'timeline-history-unread')).toEqual([
      expect.objectContaining({ timeline: 3, err: expect.stringMatching(/00000003\.history/) as unknown }),
    ]);
    // Another postmaster: nothing is known until it is read again.
    await m.stop('fast');
    expect(monitor.history()).toBeNull();
    await m.configure({ role: 'primary', syncId: 'peer-a' });
    expect(monitor.history()).toBeNull();
    expect(await monitor.readHistory(await m.walPositions())).toEqual(tl2);
    await m.stop('immediate');
  });
});
