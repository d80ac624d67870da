// End to end on a real pool with real PostgreSQL 15 run by src/postgres: a primary on dataset
// A, its snapshot restored into dataset B through the HTTP backup server and the zfs restore
// client, B configured as a standby of A, and a row written on A afterwards arriving on B.
// Then an incremental catch-up of B that sends only the increment. And the check of a received
// copy: a snapshot holding no data directory is rejected (MANATEE_ERR_RESTORE_INVALID) with the
// old dataset put back, and so is an increment that removes pg_control.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import Fastify, { type FastifyInstance } from 'fastify';
import { silentLogger } from '../../src/log.js';
import { Zfs } from '../../src/zfs/index.js';
import { backupRoutes, RestoreInvalidError, ZfsBackupBackend } from '../../src/backup/index.js';
import { pino } from 'pino';
import { Reconciler } from '../../src/peer/reconciler.js';
import type { Decision } from '../../src/peer/rules/index.js';
import { PostgresServer, type PostgresServerOptions } from '../../src/postgres/index.js';
import { createTestPool, ZFS_HOOK_TIMEOUT_MS, type TestPool } from '../../tools/lib/zfs-pool.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';

const SECRET = 'e2e-secret';
const log = silentLogger();

let pool: TestPool;
let zfs: Zfs;
let app: FastifyInstance | null = null;
let appS: FastifyInstance | null = null;
const servers: PostgresServer[] = [];
let a: PostgresServer;
let dsA: string;
let dsB: string;
let mpB: string;
let portB: number;
let baseUrl: string;

async function runDir(name: string): Promise<string> {
  // Outside the datasets: sockets and logs must not travel inside the snapshot.
  const d = join(pool.dir, `run-${name}`);
  await mkdir(d, { recursive: true });
  await execa('chown', ['postgres:', d]);
  return d;
}

async function open(name: string, dataDir: string, port: number): Promise<PostgresServer> {
  const opts: PostgresServerOptions = {
    dataDir, runDir: await runDir(name), listenAddress: '127.0.0.1', port,
    replicationPassword: 'repl-secret', superuserPassword: 'super-secret', clientCidrs: ['127.0.0.1/32'],
    walKeepSize: '256MB', stopTimeoutMs: 30_000, logger: log,
  };
  const s = await PostgresServer.open(opts);
  servers.push(s);
  return s;
}

/** What the sitter does with a restored copy: drop the source's lock file, then start it as a standby of A. */
async function startStandbyB(): Promise<PostgresServer> {
  // The copy carries A's postmaster.pid, whose pid is alive here (A runs on the same host).
  await rm(join(mpB, 'pgdata', 'postmaster.pid'), { force: true });
  const b = await open('b', join(mpB, 'pgdata'), portB);
  await b.configure({ role: 'standby', upstream: { host: '127.0.0.1', port: a.port }, applicationName: 'b' });
  return b;
}

beforeAll(async () => {
  pool = await createTestPool({ sizeMb: 512, prefix: 'zfspg' });
  zfs = new Zfs({ log });
  dsA = `${pool.name}/a`;
  const mpA = join(pool.dir, 'a');
  await zfs.createDataset(dsA, { mountpoint: mpA });
  await execa('chown', ['postgres:', mpA]);
  a = await open('a', join(mpA, 'pgdata'), await freePort());
  await a.initdb();
  await a.configure({ role: 'primary', oneNodeWriteMode: true });
  await a.query('CREATE TABLE t (id int primary key, note text)');
  await a.query("INSERT INTO t VALUES (1, 'before the snapshot')");

  app = Fastify({ logger: false });
  await app.register(backupRoutes, { zfs, dataset: dsA, secret: SECRET, log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  baseUrl = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;

  dsB = `${pool.name}/peers/b`;
  mpB = join(pool.dir, 'b');
  portB = await freePort();
}, ZFS_HOOK_TIMEOUT_MS);

afterAll(async () => {
  for (const s of servers.reverse()) {
    await s.stop('immediate').catch(() => undefined);
    s.detach();
  }
  if (app !== null) await app.close();
  if (appS !== null) await appS.close();
  await pool.destroy();
});

describe('ZFS bootstrap of a PostgreSQL standby', () => {
  let fullBytes = 0;
  let b: PostgresServer;
  const backend = (): ZfsBackupBackend => new ZfsBackupBackend({ zfs, dataset: dsB, mountpoint: mpB, dataDir: join(mpB, 'pgdata'), peerId: 'b', secret: SECRET, log });
  const source = (): { peerId: string; pgUrl: string; backupUrl: string } => ({ peerId: 'a', pgUrl: `postgres://replicator@127.0.0.1:${a.port}/postgres`, backupUrl: baseUrl });

  it('restores A into B over HTTP, and B streams from A: a row written on A afterwards arrives on B', async () => {
    // A file of another owner on the source (root, say an operator's copy): the restore gives it
    // to the PostgreSQL user, as it does whatever the PostgreSQL user does not own yet.
    await writeFile(join(a.dataDir, 'operator-note.txt'), 'left by root\n');
    const r = await backend().restore({ source: source(), reason: 'bootstrap' });
    expect(r.method).toBe('full');
    fullBytes = r.bytes;
    const { stdout: owner } = await execa('stat', ['-c', '%U', join(mpB, 'pgdata')]);
    expect(owner).toBe('postgres');
    const { stdout: noteOwners } = await execa('stat', ['-c', '%U:%G', join(mpB, 'pgdata', 'operator-note.txt'), join(a.dataDir, 'operator-note.txt')]);
    const { stdout: pgGroup } = await execa('id', ['-gn', 'postgres']);
    expect(noteOwners.split('\n')).toEqual([`postgres:${pgGroup}`, 'root:root']);
    b = await startStandbyB();
    await a.query("INSERT INTO t VALUES (2, 'after the snapshot')");
    const rows = await waitFor('row 2 on B', async () => {
      const r2 = await b.query<{ id: number; note: string }>('SELECT id, note FROM t ORDER BY id');
      return r2.length === 2 ? r2 : null;
    }, { timeoutMs: 90_000 });
    expect(rows[1]).toEqual({ id: 2, note: 'after the snapshot' });
    expect(await b.inRecovery()).toBe(true);
    const repl = await a.replicationStatus();
    expect(repl.map((row) => [row.applicationName, row.state])).toEqual([['b', 'streaming']]);
  });

  it('catches B up incrementally: only the increment is sent, and B streams again', async () => {
    await b.stop('fast');
    b.detach();
    await a.query("INSERT INTO t SELECT g, 'batch' FROM generate_series(3, 1002) g");
    const r = await backend().restore({ source: source(), reason: 'rebuild' });
    expect(r.method).toBe('incremental');
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.bytes).toBeLessThan(fullBytes / 3);
    b = await startStandbyB();
    await a.query("INSERT INTO t VALUES (5000, 'after the increment')");
    await waitFor('all 1003 rows on B', async () => {
      const n = await b.query<{ n: string }>('SELECT count(*) AS n FROM t');
      return n[0]!.n === '1003' ? true : null;
    }, { timeoutMs: 90_000 });
  });
});

describe('a received copy that is not a PostgreSQL data directory', () => {
  // S: a source dataset that starts empty (as a primary still running initdb), later holds a
  // stopped cluster. T: the restoring peer, whose old dataset must survive a rejected copy.
  let dsS: string;
  let mpS: string;
  let urlS: string;
  const dsT = (): string => `${pool.name}/peers/t`;
  const mpT = (): string => join(pool.dir, 't');
  const logLines: string[] = [];
  const tLog = pino({ level: 'info' }, { write: (line: string) => { logLines.push(line); } });
  const backendT = (): ZfsBackupBackend => new ZfsBackupBackend({ zfs, dataset: dsT(), mountpoint: mpT(), dataDir: join(mpT(), 'pgdata'), peerId: 't', secret: SECRET, log: tLog });
  const sourceS = (): { peerId: string; pgUrl: string; backupUrl: string } => ({ peerId: 's', pgUrl: 'postgres://unused', backupUrl: urlS });

  beforeAll(async () => {
    dsS = `${pool.name}/s`;
    mpS = join(pool.dir, 's');
    await zfs.createDataset(dsS, { mountpoint: mpS });
    await mkdir(join(mpS, 'pgdata'));
    await writeFile(join(mpS, 'pgdata', 'not-postgres'), 'initdb has not written anything yet');
    appS = Fastify({ logger: false });
    await appS.register(backupRoutes, { zfs, dataset: dsS, secret: SECRET, log });
    await appS.listen({ port: 0, host: '127.0.0.1' });
    const addr = appS.server.address();
    urlS = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
    await zfs.createDataset(dsT(), { mountpoint: mpT(), parents: true });
    await mkdir(join(mpT(), 'pgdata'));
    await writeFile(join(mpT(), 'pgdata', 'marker'), 'old data');
    await zfs.createSnapshot(dsT(), 1_600_000_000_000);
  });

  it('rejects a snapshot holding no data directory, destroys the copy and puts the old dataset back', async () => {
    logLines.length = 0;
    const err = await backendT().restore({ source: sourceS(), reason: 'rebuild' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreInvalidError);
    const e = err as RestoreInvalidError;
    expect(e.code).toBe('MANATEE_ERR_RESTORE_INVALID');
    expect(e.restoredOld).toBe(true);
    expect(e.dataset).toBe(dsT());
    expect(e.problems).toEqual(['global/pg_control is missing', 'PG_VERSION is missing']);
    expect(e.message).toContain(`dataset ${dsT()}`);
    expect(e.message).toMatch(/the bad copy was destroyed; the previous dataset was put back/);
    // The old dataset, its data and its snapshots, as they were; nothing left aside.
    expect(await readFile(join(mpT(), 'pgdata', 'marker'), 'utf8')).toBe('old data');
    await expect(stat(join(mpT(), 'pgdata', 'not-postgres'))).rejects.toThrow(/ENOENT/);
    expect((await zfs.listSnapshots(dsT())).map((x) => x.short)).toEqual(['1600000000000']);
    expect(await zfs.listIsolated(`${pool.name}/peers`)).toEqual([]);
    expect(await zfs.getProperty(dsT(), 'mountpoint')).toBe(mpT());
    // One line says what was decided and why.
    const rejected = logLines.map((l) => JSON.parse(l) as { decision?: string; reason?: string }).filter((l) => l.decision === 'restore-rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]?.reason).toBe('global/pg_control is missing; PG_VERSION is missing');
  });

  it('a standby whose bootstrap copy is rejected backs off before copying again, and /status says why and when', async () => {
    logLines.length = 0;
    const t = await open('t', join(mpT(), 'pgdata'), await freePort());
    const r = new Reconciler({
      self: { id: 't', host: '127.0.0.1', pgUrl: `postgres://127.0.0.1:${t.port}/postgres`, apiUrl: 'http://127.0.0.1:1' },
      postgres: t, backend: backendT(), log: tLog,
      prepareStorage: () => Promise.resolve(),
      onRebuilt: () => Promise.resolve(),
      sourcePromoted: () => Promise.resolve(true),
      restoreBackoff: { initialMs: 500, maxMs: 1000 },
    });
    const upstream = { id: 's', host: '127.0.0.1', pgUrl: 'postgres://127.0.0.1:1/postgres', apiUrl: urlS };
    const asAsync: Decision = { kind: 'none', reason: 'test', position: 'async', role: 'async', upstream, downstream: null, writableWithoutSync: false, needsRebuild: false, generation: 2, write: null };
    const rejections = (): number => logLines.filter((l) => l.includes('"decision":"restore-rejected"')).length;

    await expect(r.reconcile(asAsync)).rejects.toMatchObject({ code: 'MANATEE_ERR_RESTORE_INVALID' });
    expect(rejections()).toBe(1);
    expect(r.rebuildStatus()).toMatchObject({ running: false, reason: 'bootstrap', source: 's' });
    expect(r.rebuildStatus().lastError).toMatch(/^MANATEE_ERR_RESTORE_INVALID: .*global\/pg_control is missing.*\[failure 1 in a row from s; next attempt from it not before \d{4}-.*Z\]$/);
    // Evaluated again at once (the sitter does, every second): no new copy, a sentence that says until when.
    const waiting = await r.reconcile(asAsync);
    expect(waiting.action).toMatch(/^bootstrap: waiting until \d{4}-.*Z before copying from s again \(1 failed in a row\)$/);
    expect(rejections()).toBe(1);
    // After the backoff it copies again, fails again, and waits longer.
    await waitFor('a second attempt', () => r.reconcile(asAsync).then(() => null, (e: unknown) => e), { timeoutMs: 60_000 });
    expect(rejections()).toBe(2);
    expect(r.rebuildStatus().lastError).toMatch(/\[failure 2 in a row from s;/);
    expect((await r.reconcile(asAsync)).action).toMatch(/\(2 failed in a row\)/);
    // The old data was put back every time.
    expect(await readFile(join(mpT(), 'pgdata', 'marker'), 'utf8')).toBe('old data');
    expect(t.running).toBe(false);
  });

  it('accepts the copy once the source holds a cluster, and rejects an increment that removes pg_control, rolling it back', async () => {
    await rm(join(mpS, 'pgdata'), { recursive: true });
    await execa('chown', ['postgres:', mpS]);
    const s = await open('s', join(mpS, 'pgdata'), await freePort());
    await s.initdb();
    logLines.length = 0;
    const full = await backendT().restore({ source: sourceS(), reason: 'rebuild' });
    expect(full.method).toBe('full');
    const accepted = logLines.map((l) => JSON.parse(l) as { decision?: string; clusterState?: string }).filter((l) => l.decision === 'restore-accepted');
    expect(accepted.map((l) => l.clusterState)).toEqual(['shut down']);
    const before = (await zfs.listSnapshots(dsT())).map((x) => x.short);

    await unlink(join(mpS, 'pgdata', 'global', 'pg_control'));
    const err = await backendT().restore({ source: sourceS(), reason: 'rebuild' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreInvalidError);
    const e = err as RestoreInvalidError;
    expect(e.code).toBe('MANATEE_ERR_RESTORE_INVALID');
    expect(e.problems).toEqual(['global/pg_control is missing']);
    expect(e.restoredOld).toBe(true);
    expect(e.message).toMatch(/increment was rolled back/);
    // Back at the common snapshot (the one received from S; T's own later snapshot went with the
    // rollback that precedes every increment): the full copy's pg_control is there again.
    expect(before).toHaveLength(2);
    expect((await stat(join(mpT(), 'pgdata', 'global', 'pg_control'))).size).toBe(8192);
    expect((await zfs.listSnapshots(dsT())).map((x) => x.short)).toEqual(before.slice(0, 1));
    expect(await zfs.listSnapshots(dsS)).toSatisfy((snaps: { short: string }[]) => snaps.some((x) => x.short === before[0]));
  });
});
