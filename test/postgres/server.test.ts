// One real PostgreSQL 15 cluster, reused across the tests of this file: lifecycle, rendered
// configuration per role, the operator overrides file, health checks and exit events.
import { readFile, rename, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePgSandbox, connect, type PgSandbox } from '../helpers/pg.js';
import { waitFor } from '../../tools/lib/wait.js';
import { PgHealthChecker, PostgresServer, type PgExit, NO_SYNC_PLACEHOLDER } from '../../src/postgres/index.js';
import { hasCode } from '../../src/errors.js';

let sb: PgSandbox;
let pg: PostgresServer;

beforeAll(async () => {
  sb = await makePgSandbox('pgserver');
  pg = await sb.server('data');
  await pg.initdb();
});

afterAll(async () => {
  await sb.cleanup();
});

describe('PostgresServer lifecycle', () => {
  it('initdb creates a cluster with data checksums owned by the postgres user, mode 0700', async () => {
    expect(await pg.hasData()).toBe(true);
    const { stat } = await import('node:fs/promises');
    const st = await stat(pg.dataDir);
    expect(st.mode & 0o777).toBe(0o700);
    expect(st.uid).toBe(pg.user.uid);
    await pg.configure({ role: 'primary', oneNodeWriteMode: true });
    expect(await pg.show('data_checksums')).toBe('on');
    expect(await pg.show('wal_level')).toBe('replica');
    expect(await pg.show('wal_log_hints')).toBe('on');
    expect(await pg.show('hot_standby')).toBe('on');
    const [who] = await pg.query<{ u: string }>('SELECT current_user AS u');
    expect(who?.u).toBe('postgres');
    const roles = await pg.query<{ rolreplication: boolean }>("SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'");
    expect(roles[0]?.rolreplication).toBe(true);
  });

  it('initdb refuses a non-empty data directory and changes nothing', async () => {
    let caught: unknown = null;
    try { await pg.initdb(); } catch (err) { caught = err; }
    expect(hasCode(caught, 'MANATEE_ERR_PG_DATADIR_NOT_EMPTY')).toBe(true);
    expect(await pg.hasData()).toBe(true);
  });

  it('stops, starts and restarts; the pid changes and an exit event reports each stop', async () => {
    const exits: PgExit[] = [];
    pg.on('exit', (e) => exits.push(e));
    const pid1 = pg.postgresPid;
    expect(pid1).not.toBeNull();
    await pg.restart('fast');
    const pid2 = pg.postgresPid;
    expect(pid2).not.toBeNull();
    expect(pid2).not.toBe(pid1);
    await pg.stop('fast');
    expect(pg.postgresPid).toBeNull();
    await expect(pg.query('SELECT 1')).rejects.toThrow();
    await pg.start();
    expect((await pg.query<{ one: number }>('SELECT 1 AS one'))[0]?.one).toBe(1);
    expect(exits.map((e) => [e.pid, e.expected, e.code])).toEqual([[pid1, true, 0], [pid2, true, 0]]);
    pg.removeAllListeners('exit');
  });

  it('reports an unexpected death of PostgreSQL as an exit event with the signal', async () => {
    const pid = pg.postgresPid!;
    const exited = new Promise<PgExit>((resolve) => pg.once('exit', resolve));
    process.kill(pid, 'SIGKILL');
    const e = await exited;
    expect(e).toMatchObject({ pid, signal: 'SIGKILL', expected: false, adopted: false });
    expect(pg.postgresPid).toBeNull();
    await pg.start(); // crash recovery
    expect(await pg.inRecovery()).toBe(false);
  });

  it('renders the primary role read-only with a placeholder sync, then ONWM writable, and SHOW agrees', async () => {
    const r1 = await pg.configure({ role: 'primary', syncId: 'peer-b' });
    expect(r1.action).toBe('reloaded');
    expect(await pg.show('default_transaction_read_only')).toBe('on');
    expect(await pg.show('synchronous_standby_names')).toBe(`"${NO_SYNC_PLACEHOLDER}"`);
    const c = await connect(pg);
    try {
      await expect(c.query('CREATE TABLE t (x int)')).rejects.toThrow(/read-only transaction/);
    } finally {
      await c.end();
    }
    const r2 = await pg.configure({ role: 'primary', oneNodeWriteMode: true });
    expect(r2.action).toBe('reloaded');
    expect(await pg.show('default_transaction_read_only')).toBe('off');
    expect(await pg.show('synchronous_standby_names')).toBe('');
    await pg.query('CREATE TABLE t (x int)');
  });

  it('a client that bypasses read-only on a primary without a caught-up sync does not get its commit acknowledged', async () => {
    await pg.configure({ role: 'primary', syncId: 'peer-b' });
    const c = await connect(pg);
    try {
      await c.query('BEGIN READ WRITE');
      await c.query('INSERT INTO t VALUES (42)');
      let settled = false;
      const commit = c.query('COMMIT').then(() => { settled = true; });
      await waitFor('the commit to wait for a sync', async () =>
        (await pg.query("SELECT 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep'")).length === 1);
      expect(settled).toBe(false);
      // Leaving the sync requirement (ONWM) releases it.
      await pg.configure({ role: 'primary', oneNodeWriteMode: true });
      await commit;
      expect(settled).toBe(true);
    } finally {
      await c.end();
    }
  });

  it('enableWrites refuses while the sync is not connected', async () => {
    await pg.configure({ role: 'primary', syncId: 'peer-b' });
    const check = await pg.syncCaughtUp('peer-b');
    expect(check).toMatchObject({ caughtUp: false, reason: 'sync peer-b is not connected' });
    let caught: unknown = null;
    try { await pg.enableWrites('peer-b'); } catch (err) { caught = err; }
    expect(hasCode(caught, 'MANATEE_ERR_PG_SYNC_NOT_CAUGHT_UP')).toBe(true);
    expect(await pg.show('default_transaction_read_only')).toBe('on');
  });

  it('keeps the operator overrides file across re-renders, and overrides win over manatee.conf but not over the enforced role settings', async () => {
    const overrides = join(pg.dataDir, 'manatee-overrides.conf');
    const initial = await readFile(overrides, 'utf8');
    expect(initial).toMatch(/never edits it/);
    await appendFile(overrides, "work_mem = '7MB'\nwal_keep_size = '300MB'\ndefault_transaction_read_only = off\n");
    const r = await pg.configure({ role: 'primary', oneNodeWriteMode: true });
    expect(r.action).toBe('reloaded');
    await pg.configure({ role: 'primary', syncId: 'peer-b' });
    expect(await readFile(overrides, 'utf8')).toContain("work_mem = '7MB'");
    expect(await pg.show('work_mem')).toBe('7MB');
    expect(await pg.show('wal_keep_size')).toBe('300MB');
    // The operator's read-only override loses to the enforced file.
    expect(await pg.show('default_transaction_read_only')).toBe('on');
    await writeFile(overrides, initial);
  });

  it('restarts when a postmaster-only setting changes (pending_restart), and reloads otherwise', async () => {
    const overrides = join(pg.dataDir, 'manatee-overrides.conf');
    const initial = await readFile(overrides, 'utf8');
    const pidBefore = pg.postgresPid;
    await appendFile(overrides, 'max_wal_senders = 7\n');
    const r = await pg.configure({ role: 'primary', oneNodeWriteMode: true });
    expect(r.action).toBe('restarted');
    expect(r.restartedFor).toContain('max_wal_senders');
    expect(pg.postgresPid).not.toBe(pidBefore);
    expect(await pg.show('max_wal_senders')).toBe('7');
    await writeFile(overrides, initial);
    const r2 = await pg.configure({ role: 'primary', oneNodeWriteMode: true });
    expect(r2.action).toBe('restarted');
    expect(await pg.show('max_wal_senders')).toBe('10');
  });

  it('shard settings apply by reload; a postmaster one waits for a restart (configure does not restart for it); the overrides file wins', async () => {
    const overrides = join(pg.dataDir, 'manatee-overrides.conf');
    const initial = await readFile(overrides, 'utf8');
    await appendFile(overrides, "maintenance_work_mem = '99MB'\n");
    const pidBefore = pg.postgresPid;
    const a = await pg.applyShardSettings({ work_mem: '12MB', maintenance_work_mem: '20MB', shared_buffers: '48MB' }, 3);
    expect(a).toEqual({ version: 3, reloaded: true, pendingRestart: ['shared_buffers'] });
    expect(await readFile(join(pg.dataDir, 'manatee-shard.conf'), 'utf8')).toMatch(/version 3[\s\S]*work_mem = '12MB'/);
    expect(await pg.show('work_mem')).toBe('12MB');
    expect(await pg.show('maintenance_work_mem')).toBe('99MB');
    const r = await pg.configure({ role: 'primary', oneNodeWriteMode: true });
    expect(r).toMatchObject({ action: 'reloaded', restartedFor: [], pendingRestart: ['shared_buffers'] });
    expect(pg.postgresPid).toBe(pidBefore);
    const report = await pg.settingsReport(['work_mem', 'shared_buffers', 'maintenance_work_mem', 'temp_buffers']);
    const by = new Map(report.map((x) => [x.name, x]));
    expect(by.get('work_mem')).toMatchObject({ value: '12MB', source: 'shard', pendingRestart: false });
    expect(by.get('maintenance_work_mem')).toMatchObject({ value: '99MB', source: 'peer overrides file' });
    expect(by.get('shared_buffers')).toMatchObject({ value: '48MB', source: 'shard', pendingRestart: true, running: '128MB' });
    expect(by.get('temp_buffers')).toMatchObject({ value: null, source: 'default' });
    expect(await pg.pendingRestart()).toEqual(['shared_buffers']);
    await pg.restart('fast');
    expect(await pg.show('shared_buffers')).toBe('48MB');
    expect(await pg.pendingRestart()).toEqual([]);
    await writeFile(overrides, initial);
    expect(await pg.applyShardSettings({}, 4)).toEqual({ version: 4, reloaded: true, pendingRestart: ['shared_buffers'] });
    await pg.restart('fast');
    expect(await pg.show('work_mem')).toBe('4MB');
  });

  it('rejectedSettings: a refused value is told from a postmaster setting pending restart, and an unknown name in the overrides file blocks every change of a reload', async () => {
    const overrides = join(pg.dataDir, 'manatee-overrides.conf');
    const initial = await readFile(overrides, 'utf8');
    try {
      await appendFile(overrides, "maintenance_work_mem = 'lots'\n");
      await pg.applyShardSettings({ work_mem: '13MB', shared_buffers: '40MB' }, 10);
      // Both say "setting could not be applied" in pg_file_settings; only the bad value is refused.
      expect(await pg.pendingRestart()).toEqual(['shared_buffers']);
      expect(await pg.show('work_mem')).toBe('13MB');
      expect(await pg.rejectedSettings()).toEqual([expect.objectContaining({
        name: 'maintenance_work_mem', value: 'lots', file: 'manatee-overrides.conf', source: 'peer overrides file', error: 'setting could not be applied', blocksReload: false,
      })]);
      // A bad value of a setting already pending a restart: pending_restart stays set (one flag per
      // setting), yet PostgreSQL would not start with it. Checked against the catalog, it is refused.
      await appendFile(overrides, "shared_buffers = 'huge'\n");
      expect(await pg.reload()).toEqual(['shared_buffers']);
      expect((await pg.rejectedSettings()).map((r) => [r.name, r.value, r.file, r.blocksReload])).toEqual([
        ['maintenance_work_mem', 'lots', 'manatee-overrides.conf', false],
        ['shared_buffers', 'huge', 'manatee-overrides.conf', false],
      ]);
      await writeFile(overrides, `${initial}wrok_mem = '1MB'\n`);
      // The reload applies nothing (and pg_conf_load_time() stays): said at once, not after the reload's deadline.
      const t0 = Date.now();
      let caught: unknown = null;
      try { await pg.applyShardSettings({ work_mem: '14MB', shared_buffers: '40MB' }, 11); } catch (err) { caught = err; }
      expect(hasCode(caught, 'MANATEE_ERR_PG_RELOAD_BLOCKED')).toBe(true);
      expect((caught as Error).message).toMatch(/^reload: PostgreSQL applied no change: unknown setting "wrok_mem" in manatee-overrides\.conf line \d+/);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(await pg.show('work_mem')).toBe('13MB');
      const [r, ...more] = await pg.rejectedSettings();
      expect(more).toEqual([]);
      expect(r).toMatchObject({ name: 'wrok_mem', file: 'manatee-overrides.conf', error: 'unrecognized configuration parameter', blocksReload: true });
      expect(r!.reason).toMatch(/^unknown setting "wrok_mem" in manatee-overrides\.conf line \d+: PostgreSQL applies no change of any configuration file at a reload while it is there/);
    } finally {
      await writeFile(overrides, initial);
    }
    await pg.applyShardSettings({}, 12);
    expect(await pg.rejectedSettings()).toEqual([]);
    expect(await pg.show('work_mem')).toBe('4MB');
    // (A postmaster setting taken out of a file stays pending until a restart, even when the default is what runs.)
    await pg.restart('fast');
    expect(await pg.pendingRestart()).toEqual([]);
  });

  it('configure stopped stops it; configure primary starts it again; hasData looks at the disk only while it is stopped', async () => {
    const r = await pg.configure({ role: 'stopped' });
    expect(r.action).toBe('stopped');
    expect(pg.running).toBe(false);
    expect((await pg.configure({ role: 'stopped' })).action).toBe('none');
    const version = join(pg.dataDir, 'PG_VERSION');
    await rename(version, `${version}.aside`);
    try {
      expect(await pg.hasData()).toBe(false);
    } finally {
      await rename(`${version}.aside`, version);
    }
    expect(await pg.hasData()).toBe(true);
    const r2 = await pg.configure({ role: 'primary', oneNodeWriteMode: true });
    expect(r2.action).toBe('started');
    expect(await pg.show('default_transaction_read_only')).toBe('off');
    // A running postmaster holds its data directory: no stat (a thread-pool round trip) is made.
    await rename(version, `${version}.aside`);
    try {
      expect(await pg.hasData()).toBe(true);
    } finally {
      await rename(`${version}.aside`, version);
    }
  });

  it('a primary started fresh (not ONWM) is read-only', async () => {
    await pg.stop('fast');
    const r = await pg.configure({ role: 'primary', syncId: 'peer-b' });
    expect(r.action).toBe('started');
    expect(await pg.show('default_transaction_read_only')).toBe('on');
    await pg.configure({ role: 'primary', oneNodeWriteMode: true });
  });

  it('a start that fails (a bad operator override) is MANATEE_ERR_PG_START_FAILED with the server log', async () => {
    const overrides = join(pg.dataDir, 'manatee-overrides.conf');
    const initial = await readFile(overrides, 'utf8');
    await pg.stop('fast');
    await appendFile(overrides, "shared_buffers = 'lots'\n");
    try {
      let caught: unknown = null;
      try { await pg.start(); } catch (err) { caught = err; }
      expect(hasCode(caught, 'MANATEE_ERR_PG_START_FAILED')).toBe(true);
      expect((caught as Error).message).toMatch(/shared_buffers/);
      expect(pg.running).toBe(false);
    } finally {
      await writeFile(overrides, initial);
    }
    await pg.start();
  });

  it('a stop that does not finish is escalated to immediate, then MANATEE_ERR_PG_STOP_TIMEOUT', async () => {
    const impatient = await sb.server('data', { port: pg.port, stopTimeoutMs: 300 });
    await impatient.start(); // adopts the running postmaster
    const pid = pg.postgresPid!;
    expect(impatient.postgresPid).toBe(pid);
    process.kill(pid, 'SIGSTOP');
    let caught: unknown = null;
    try {
      await impatient.stop('fast');
    } catch (err) {
      caught = err;
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect(hasCode(caught, 'MANATEE_ERR_PG_STOP_TIMEOUT')).toBe(true);
    impatient.detach();
    // The pending shutdown signals are delivered once it runs again.
    await waitFor('the postmaster to exit', () => !pg.running);
    await pg.start();
  });

  it('pg_rewind refuses to run on a running server', async () => {
    const { pgRewind } = await import('../../src/postgres/index.js');
    const { silentLogger } = await import('../../src/log.js');
    let caught: unknown = null;
    try { await pgRewind(pg, { sourceConninfo: 'host=127.0.0.1', logger: silentLogger() }); } catch (err) { caught = err; }
    expect(hasCode(caught, 'MANATEE_ERR_PG_ALREADY_RUNNING')).toBe(true);
  });

  it('WAL positions of a primary move forward with writes', async () => {
    const a = await pg.walPositions();
    expect(a.inRecovery).toBe(false);
    expect(a.timeline).toBe(1);
    await pg.query('INSERT INTO t SELECT generate_series(1, 1000)');
    const b = await pg.walPositions();
    const { lsnDiffBytes } = await import('../../src/model/index.js');
    expect(lsnDiffBytes(b.currentLsn!, a.currentLsn!) > 0n).toBe(true);
    expect(await pg.replicationStatus()).toEqual([]);
  });

  it('promote refuses on a primary', async () => {
    let caught: unknown = null;
    try { await pg.promote(); } catch (err) { caught = err; }
    expect(hasCode(caught, 'MANATEE_ERR_PG_WRONG_ROLE')).toBe(true);
  });
});

describe('health checker', () => {
  it('emits healthy with latency, then unhealthy with the reason when PostgreSQL is stopped, then healthy again', async () => {
    const checker = new PgHealthChecker({
      probe: (timeoutMs) => pg.queryWithTimeout('SELECT 1', undefined, timeoutMs),
      intervalMs: 200,
      timeoutMs: 2000,
    });
    const seen: { healthy: boolean; reason: string | null; latencyMs: number }[] = [];
    checker.on('healthy', (r) => seen.push(r));
    checker.on('unhealthy', (r) => seen.push(r));
    checker.start();
    try {
      await waitFor('a healthy check', () => seen.some((r) => r.healthy));
      expect(seen[0]!.latencyMs).toBeGreaterThanOrEqual(0);
      await pg.stop('fast');
      const bad = await waitFor('an unhealthy check', () => seen.find((r) => !r.healthy));
      // ENOENT/ECONNREFUSED once it is gone; "shutting down", a terminated or reset connection on the way
      // (a fast shutdown may reset the held connection: "read ECONNRESET", seen in a full run at load 40).
      expect(bad.reason).toMatch(/ENOENT|ECONNREFUSED|ECONNRESET|shutting down|terminat/);
      seen.length = 0;
      await pg.start();
      await waitFor('healthy again', () => seen.some((r) => r.healthy));
      expect(checker.last?.healthy).toBe(true);
    } finally {
      checker.stop();
    }
  });

  it('reports a hung server as unhealthy by the timeout', async () => {
    await pg.start();
    const checker = new PgHealthChecker({ probe: () => pg.queryWithTimeout('SELECT pg_sleep(5)', undefined, 10_000), timeoutMs: 300 });
    const r = await checker.checkOnce();
    expect(r).toMatchObject({ healthy: false, reason: 'health check timed out after 300 ms' });
  });
});
