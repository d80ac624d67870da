// End to end on a real pool with real PostgreSQL 15: a primary on dataset A, its snapshot
// restored into dataset B through the HTTP backup server and the zfs restore client, B started
// as a standby of A, and a row written on A afterwards arriving on B. Then an incremental
// catch-up of B that sends only the increment.
//
// PostgreSQL is driven directly with its binaries here (src/postgres was being built at the
// same time); the sitter does these steps through src/postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFile, mkdir, rm, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import Fastify, { type FastifyInstance } from 'fastify';
import { silentLogger } from '../../src/log.js';
import { Zfs } from '../../src/zfs/index.js';
import { backupRoutes, ZfsBackupBackend } from '../../src/backup/index.js';
import { createTestPool, type TestPool } from '../helpers/zfs.js';
import { freePort, waitFor } from '../helpers/wait.js';

const BIN = '/usr/lib/postgresql/15/bin';
const SECRET = 'e2e-secret';
const log = silentLogger();

interface Pg { dataDir: string; port: number; runDir: string }

async function asPostgres(cmd: string, args: string[]): Promise<void> {
  await execa('runuser', ['-u', 'postgres', '--', cmd, ...args], { timeout: 120_000 });
}

async function pgStart(p: Pg): Promise<void> {
  await asPostgres(`${BIN}/pg_ctl`, ['-D', p.dataDir, '-w', '-t', '90', '-l', join(p.runDir, 'log'), '-o', `-p ${p.port} -k ${p.runDir} -c listen_addresses=127.0.0.1`, 'start']);
}

async function pgStop(p: Pg): Promise<void> {
  await execa('runuser', ['-u', 'postgres', '--', `${BIN}/pg_ctl`, '-D', p.dataDir, '-w', '-t', '60', '-m', 'fast', 'stop'], { reject: false, timeout: 90_000 });
}

async function query<T extends pg.QueryResultRow>(port: number, sql: string): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

async function runDir(base: string, name: string): Promise<string> {
  const d = join(base, `run-${name}`);
  await mkdir(d, { recursive: true });
  await execa('chown', ['postgres:', d]);
  await chmod(d, 0o700);
  return d;
}

/** Turns a restored copy of A's data into a standby of A (what the sitter's standby role does). */
async function makeStandby(b: Pg, primaryPort: number): Promise<void> {
  // The copy carries A's postmaster.pid, whose pid is alive (A's postmaster): PostgreSQL would refuse to start.
  await rm(join(b.dataDir, 'postmaster.pid'), { force: true });
  await writeFile(join(b.dataDir, 'standby.signal'), '');
  await appendFile(join(b.dataDir, 'postgresql.auto.conf'), `primary_conninfo = 'host=127.0.0.1 port=${primaryPort} user=postgres application_name=b'\n`);
  await execa('chown', ['postgres:', join(b.dataDir, 'standby.signal'), join(b.dataDir, 'postgresql.auto.conf')]);
}

let pool: TestPool;
let zfs: Zfs;
let app: FastifyInstance | null = null;
const started: Pg[] = [];
let a: Pg;
let b: Pg;
let dsA: string;
let dsB: string;
let mpB: string;
let baseUrl: string;

beforeAll(async () => {
  pool = await createTestPool({ sizeMb: 512, prefix: 'zfspg' });
  zfs = new Zfs({ log });
  dsA = `${pool.name}/a`;
  const mpA = join(pool.dir, 'a');
  await zfs.createDataset(dsA, { mountpoint: mpA });
  await execa('chown', ['postgres:', mpA]);
  a = { dataDir: join(mpA, 'pgdata'), port: await freePort(), runDir: await runDir(pool.dir, 'a') };
  await asPostgres(`${BIN}/initdb`, ['-D', a.dataDir, '-U', 'postgres', '--auth=trust', '--no-sync']);
  await appendFile(join(a.dataDir, 'postgresql.conf'), "wal_level = replica\nmax_wal_senders = 5\nwal_keep_size = '256MB'\nfsync = off\n");
  await pgStart(a);
  started.push(a);
  await query(a.port, 'CREATE TABLE t (id int primary key, note text)');
  await query(a.port, "INSERT INTO t VALUES (1, 'before the snapshot')");

  app = Fastify({ logger: false });
  await app.register(backupRoutes, { zfs, dataset: dsA, secret: SECRET, log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  baseUrl = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;

  dsB = `${pool.name}/peers/b`;
  mpB = join(pool.dir, 'b');
  b = { dataDir: join(mpB, 'pgdata'), port: await freePort(), runDir: await runDir(pool.dir, 'b') };
});

afterAll(async () => {
  for (const p of started.reverse()) await pgStop(p);
  if (app !== null) await app.close();
  await pool.destroy();
});

describe('ZFS bootstrap of a PostgreSQL standby', () => {
  let fullBytes = 0;
  const backend = (): ZfsBackupBackend => new ZfsBackupBackend({ zfs, dataset: dsB, mountpoint: mpB, peerId: 'b', secret: SECRET, log });
  const source = (): { peerId: string; pgUrl: string; backupUrl: string } => ({ peerId: 'a', pgUrl: `postgres://postgres@127.0.0.1:${a.port}/postgres`, backupUrl: baseUrl });

  it('restores A into B over HTTP, and B streams from A: a row written on A afterwards arrives on B', async () => {
    const r = await backend().restore({ source: source(), reason: 'bootstrap' });
    expect(r.method).toBe('full');
    fullBytes = r.bytes;
    const { stdout: owner } = await execa('stat', ['-c', '%U', b.dataDir]);
    expect(owner).toBe('postgres');
    await makeStandby(b, a.port);
    await pgStart(b);
    started.push(b);
    await query(a.port, "INSERT INTO t VALUES (2, 'after the snapshot')");
    const rows = await waitFor('row 2 on B', async () => {
      const r2 = await query<{ id: number; note: string }>(b.port, 'SELECT id, note FROM t ORDER BY id');
      return r2.length === 2 ? r2 : null;
    }, { timeoutMs: 90_000 });
    expect(rows[1]).toEqual({ id: 2, note: 'after the snapshot' });
    expect((await query<{ r: boolean }>(b.port, 'SELECT pg_is_in_recovery() AS r'))[0]!.r).toBe(true);
    const repl = await query<{ application_name: string; state: string }>(a.port, 'SELECT application_name, state FROM pg_stat_replication');
    expect(repl).toEqual([{ application_name: 'b', state: 'streaming' }]);
  });

  it('catches B up incrementally: only the increment is sent, and B streams again', async () => {
    await pgStop(b);
    started.pop();
    await query(a.port, "INSERT INTO t SELECT g, 'batch' FROM generate_series(3, 1002) g");
    const r = await backend().restore({ source: source(), reason: 'rebuild' });
    expect(r.method).toBe('incremental');
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.bytes).toBeLessThan(fullBytes / 3);
    await makeStandby(b, a.port);
    await pgStart(b);
    started.push(b);
    await query(a.port, "INSERT INTO t VALUES (5000, 'after the increment')");
    await waitFor('row 5000 on B', async () => {
      const n = await query<{ n: string }>(b.port, 'SELECT count(*) AS n FROM t');
      return n[0]!.n === '1003' ? true : null;
    }, { timeoutMs: 90_000 });
  });
});
