// Bootstrap benchmark: how fast a new standby gets its data, by ZFS send/receive through the
// backup server and by pg_basebackup, next to raw baselines measured on the same disk in the
// same run (`zfs send > /dev/null`, `zfs send | zfs recv`, reading the data directory with tar,
// and a raw `pg_basebackup` with the flags Manatee uses). Prints each run's times, MB/s and ratios
// as soon as the run ends, then the medians. Run as root (zfs-fuse, PostgreSQL as `postgres`):
//
//   npx tsx tools/bench/bootstrap.ts [--size-mb 1024] [--runs 1]
//
// Both paths are the real Manatee code: PostgreSQL through src/postgres (PostgresServer), the
// ZFS path through backupRoutes + ZfsBackupBackend over HTTP on 127.0.0.1, and the
// pg_basebackup path through BasebackupBackend.
import { parseArgs } from 'node:util';
import { mkdir, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import Fastify from 'fastify';
import { createLogger, silentLogger } from '../../src/log.js';
import { Zfs, ZfsBusyError } from '../../src/zfs/index.js';
import { backupRoutes, ZfsBackupBackend } from '../../src/backup/index.js';
import { BasebackupBackend } from '../../src/backup/basebackup.js';
import { PostgresServer } from '../../src/postgres/index.js';
import { createTestPool, type TestPool } from '../lib/zfs-pool.js';
import { freePort } from '../lib/wait.js';

const BIN = '/usr/lib/postgresql/15/bin';
const SECRET = 'bench-secret';
const REPL_PASSWORD = 'bench-repl';
const SUPER_PASSWORD = 'bench-super';
const MB = 1024 * 1024;

const { values } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '1024' },
    runs: { type: 'string', default: '1' },
    // Manatee's JSON log lines (restore progress, phases) to stderr.
    log: { type: 'boolean', default: false },
  },
});
const sizeMb = Number(values['size-mb']);
const runs = Number(values.runs);
if (!Number.isFinite(sizeMb) || sizeMb < 16) throw new Error('--size-mb must be a number >= 16');
if (!Number.isInteger(runs) || runs < 1 || runs > 9) throw new Error('--runs must be 1..9');

function say(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Destroys a dataset once zfs-fuse lets go of it. Right after a step, its mount can stay busy for
 * a while on a loaded machine ("dataset is busy"); Zfs.destroy retries a few times, and this waits
 * longer, up to a deadline, saying so.
 */
async function destroyWhenFree(zfs: Zfs, dataset: string, deadlineMs = 180_000): Promise<void> {
  const t0 = performance.now();
  for (let attempt = 1; ; attempt++) {
    try {
      await zfs.destroy(dataset, { recursive: true });
      if (attempt > 1) say(`${dataset} destroyed after ${((performance.now() - t0) / 1000).toFixed(1)} s of waiting for it to be free`);
      return;
    } catch (err) {
      const waitedMs = performance.now() - t0;
      if (!(err instanceof ZfsBusyError) || waitedMs > deadlineMs) throw err;
      say(`${dataset} is still busy after ${(waitedMs / 1000).toFixed(1)} s (attempt ${attempt}), waiting (deadline ${deadlineMs / 1000} s)`);
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * attempt)));
    }
  }
}

async function dirBytes(path: string): Promise<number> {
  const { stdout } = await execa('du', ['-sb', path]);
  return Number(stdout.split('\t')[0]);
}

async function main(): Promise<void> {
  const log = values.log ? createLogger({ level: 'debug', destination: 2, name: 'bench' }) : silentLogger();
  const zfs = new Zfs({ log, commandTimeoutMs: 600_000 });
  // A, the ZFS copy and the pg_basebackup copy, plus zfs-fuse's reserve and WAL.
  const poolMb = Math.ceil(sizeMb * 4.8 + 1024);
  say(`creating a ${poolMb} MB file-backed pool`);
  const pool: TestPool = await createTestPool({ sizeMb: poolMb, prefix: 'bench' });
  const dsA = `${pool.name}/a`;
  const mpA = join(pool.dir, 'a');
  const runDir = join(pool.dir, 'run');
  const port = await freePort();
  const dataA = join(mpA, 'pgdata');
  let a: PostgresServer | null = null;
  const app = Fastify({ logger: false });
  const pgOpts = { listenAddress: '127.0.0.1', replicationPassword: REPL_PASSWORD, superuserPassword: SUPER_PASSWORD, clientCidrs: ['127.0.0.1/32'], walKeepSize: '64MB', logger: log, settings: { fsync: 'off', synchronous_commit: 'off', max_wal_size: '256MB', min_wal_size: '80MB' } };
  try {
    await zfs.createDataset(dsA, { mountpoint: mpA });
    await execa('chown', ['postgres:', mpA]);
    await mkdir(runDir, { recursive: true });
    await execa('chown', ['postgres:', runDir]);
    await chmod(runDir, 0o700);
    a = await PostgresServer.open({ ...pgOpts, dataDir: dataA, port });
    await a.initdb();
    await a.configure({ role: 'primary', oneNodeWriteMode: true });
    const pgEnv = { PGPASSWORD: SUPER_PASSWORD };

    // pgbench scale 1 is ~15 MB on disk (tables + indexes).
    const scale = Math.max(1, Math.round(sizeMb / 15));
    say(`pgbench -i -s ${scale} (about ${sizeMb} MB)`);
    const init = await timed(() => execa(`${BIN}/pgbench`, ['-i', '-s', String(scale), '-q', '-h', '127.0.0.1', '-p', String(port), '-U', a!.superuser, 'postgres'], { env: pgEnv, timeout: 3_600_000 }));
    // Two checkpoints let PostgreSQL remove the WAL of the load beyond min_wal_size: the copies then
    // carry the database, not gigabytes of old WAL.
    await a.query('CHECKPOINT');
    await a.query('SELECT pg_switch_wal()');
    await a.query('CHECKPOINT');
    const dataBytes = await dirBytes(dataA);
    say(`database built in ${(init.ms / 1000).toFixed(1)} s; data directory ${(dataBytes / MB).toFixed(0)} MB`);
    const snap = await zfs.createSnapshot(dsA);

    await app.register(backupRoutes, { zfs, dataset: dsA, secret: SECRET, log });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const addr = app.server.address();
    const backupUrl = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;

    const rows: { name: string; ms: number[]; bytes: number }[] = [];
    const add = (name: string, bytes: number): { name: string; ms: number[]; bytes: number } => {
      const r = { name, ms: [] as number[], bytes };
      rows.push(r);
      return r;
    };

    // Raw baselines. tar's archive goes through a pipe to wc: GNU tar skips reading file data
    // when its archive is literally /dev/null.
    const tarRow = add('raw: tar of the data directory | wc -c', dataBytes);
    const sendRow = add('raw: zfs send > /dev/null', 0);
    const sendPipeRow = add('raw: zfs send | wc -c', 0);
    const sendRecvRow = add('raw: zfs send | zfs recv (same pool)', 0);
    const rawBbRow = add('raw: pg_basebackup (same flags, no Manatee)', 0);
    const zfsRow = add('bootstrap: ZFS send/recv via backup server (HTTP)', 0);
    const bbRow = add('bootstrap: pg_basebackup (BasebackupBackend)', 0);
    const rate1 = (bytes: number, ms: number): number => bytes / MB / (ms / 1000);

    for (let run = 1; run <= runs; run++) {
      // Each step as a function, so that the order alternates between runs: zfs-fuse's cache
      // favours whatever runs second, and a fixed order would bias every ratio the same way.
      const steps: Array<[string, () => Promise<void>]> = [
        ['tar', async () => {
          const tar = await timed(() => execa('tar', ['-cf', '-', '-C', dataA, '.'], { buffer: false }).pipe('wc', ['-c']));
          tarRow.ms.push(tar.ms);
          tarRow.bytes = Number(tar.value.stdout.trim());
        }],
        ['zfs send', async () => {
          const raw = await timed(() => execa(zfs.cmd.zfsPath, ['send', snap.name], { stdout: 'ignore' }));
          sendRow.ms.push(raw.ms);
          // zfs-fuse's send to /dev/null finishes suspiciously fast (far above the disk's read
          // rate): through a pipe every byte of the stream is produced and read.
          const piped = await timed(() => execa(zfs.cmd.zfsPath, ['send', snap.name], { buffer: false }).pipe('wc', ['-c']));
          sendPipeRow.ms.push(piped.ms);
          sendPipeRow.bytes = Number(piped.value.stdout.trim());
        }],
        ['zfs send | zfs recv', async () => {
          const dsRaw = `${pool.name}/raw`;
          const sr = await timed(async () => {
            const send = zfs.send(snap.name);
            let n = 0;
            send.stdout.on('data', (c: Buffer) => (n += c.length));
            await Promise.all([zfs.receive(dsRaw, send.stdout), send.done]);
            return n;
          });
          sendRecvRow.ms.push(sr.ms);
          sendRecvRow.bytes = sr.value;
          sendRow.bytes = sr.value;
          await destroyWhenFree(zfs, dsRaw);
        }],
        ['ZFS bootstrap', async () => {
          const dsB = `${pool.name}/peers/b`;
          const mpB = join(pool.dir, 'b');
          const backend = new ZfsBackupBackend({ zfs, dataset: dsB, mountpoint: mpB, dataDir: join(mpB, 'pgdata'), peerId: 'b', secret: SECRET, log, pgUser: 'postgres' });
          const z = await timed(() => backend.restore({ source: { peerId: 'a', pgUrl: '', backupUrl }, reason: 'bootstrap' }));
          zfsRow.ms.push(z.ms);
          zfsRow.bytes = z.value.bytes;
          await destroyWhenFree(zfs, dsB);
        }],
        ['pg_basebackup', async () => {
          const dsC = `${pool.name}/c`;
          const mpC = join(pool.dir, 'c');
          await zfs.createDataset(dsC, { mountpoint: mpC });
          await execa('chown', ['postgres:', mpC]);
          const target = await PostgresServer.open({ ...pgOpts, dataDir: join(mpC, 'pgdata'), runDir: join(pool.dir, 'run-c'), port: await freePort() });
          const bbBackend = new BasebackupBackend({ postgres: target, logger: log });
          const bb = await timed(() => bbBackend.restore({ source: { peerId: 'a', pgUrl: `postgres://${a!.replicationUser}:${REPL_PASSWORD}@127.0.0.1:${port}/postgres`, backupUrl: '' }, reason: 'bootstrap' }));
          bbRow.ms.push(bb.ms);
          bbRow.bytes = bb.value.bytes > 0 ? bb.value.bytes : await dirBytes(target.dataDir);
          target.detach();
          await destroyWhenFree(zfs, dsC);
        }],
        ['raw pg_basebackup', async () => {
          const dsD = `${pool.name}/d`;
          const mpD = join(pool.dir, 'd');
          await zfs.createDataset(dsD, { mountpoint: mpD });
          await execa('chown', ['postgres:', mpD]);
          const into = join(mpD, 'pgdata');
          const raw = await timed(() => execa('runuser', ['-u', 'postgres', '--', `${BIN}/pg_basebackup`,
            '-D', into, '-X', 'stream', '--progress', '--checkpoint=fast', '--no-password', '--no-manifest',
            '-d', `host=127.0.0.1 port=${port} user=${a!.replicationUser} dbname=postgres application_name=bench-raw-basebackup`,
          ], { env: { PGPASSWORD: REPL_PASSWORD }, timeout: 3_600_000 }));
          rawBbRow.ms.push(raw.ms);
          rawBbRow.bytes = await dirBytes(into);
          await destroyWhenFree(zfs, dsD);
        }],
      ];
      const order = run % 2 === 1 ? steps : [...steps].reverse();
      say(`run ${run}/${runs}: ${order.map(([name]) => name).join(', ')}`);
      for (const [, step] of order) await step();
      // This run's figures now: a crash in a later run must not take them with it.
      const i = run - 1;
      const lines = rows.map((r) => `  ${r.name.padEnd(52)} ${((r.ms[i] ?? NaN) / 1000).toFixed(2).padStart(8)} s ${rate1(r.bytes, r.ms[i] ?? NaN).toFixed(1).padStart(8)} MB/s`);
      const ratio = (x: number[], base: number[]): string => ((base[i] ?? NaN) / (x[i] ?? NaN)).toFixed(2);
      process.stdout.write(`run ${run}/${runs}:\n${lines.join('\n')}\n` +
        `  ratios: ZFS bootstrap / zfs send | zfs recv ${ratio(zfsRow.ms, sendRecvRow.ms)}; pg_basebackup bootstrap / raw pg_basebackup ${ratio(bbRow.ms, rawBbRow.ms)} (time of the baseline / time of the bootstrap)\n`);
    }

    // Ratios per run (each against the baseline measured in the same run), then their median.
    const perRun = (x: number[], y: number[]): string => {
      const ratios = x.map((ms, i) => (y[i] ?? NaN) / ms);
      return `${median(ratios).toFixed(2)} (runs: ${ratios.map((r) => r.toFixed(2)).join(', ')})`;
    };
    const rate = (r: { ms: number[]; bytes: number }): number => r.bytes / MB / (median(r.ms) / 1000);
    const out: string[] = [];
    out.push(`bootstrap benchmark: data directory ${(dataBytes / MB).toFixed(0)} MB (pgbench scale ${scale}), ${runs} run(s), medians; zfs-fuse pool on a file, 127.0.0.1`);
    out.push(`${'what'.padEnd(52)} ${'MB'.padStart(8)} ${'seconds'.padStart(9)} ${'MB/s'.padStart(8)}`);
    for (const r of rows) {
      out.push(`${r.name.padEnd(52)} ${(r.bytes / MB).toFixed(0).padStart(8)} ${(median(r.ms) / 1000).toFixed(2).padStart(9)} ${rate(r).toFixed(1).padStart(8)}`);
    }
    out.push(`ratio ZFS bootstrap / zfs send > /dev/null:      ${(rate(zfsRow) / rate(sendRow)).toFixed(2)}`);
    out.push(`ratio ZFS bootstrap / zfs send | wc -c:          ${(rate(zfsRow) / rate(sendPipeRow)).toFixed(2)}`);
    out.push(`ratio ZFS bootstrap / zfs send | zfs recv:       ${(rate(zfsRow) / rate(sendRecvRow)).toFixed(2)}`);
    out.push(`ratio pg_basebackup / tar read of data dir:      ${(rate(bbRow) / rate(tarRow)).toFixed(2)}`);
    out.push(`ratio pg_basebackup bootstrap / raw pg_basebackup: ${(median(rawBbRow.ms) / median(bbRow.ms)).toFixed(2)} (goal >= 0.9)`);
    out.push(`ratio ZFS bootstrap time / pg_basebackup time:   ${(median(zfsRow.ms) / median(bbRow.ms)).toFixed(2)}`);
    // Same bytes on both sides of these ratios: time(baseline) / time(bootstrap) = rate ratio.
    out.push(`per run, median: ZFS bootstrap / zfs send | zfs recv: ${perRun(zfsRow.ms, sendRecvRow.ms)} (goal >= 0.9)`);
    out.push(`per run, median: pg_basebackup bootstrap / raw pg_basebackup: ${perRun(bbRow.ms, rawBbRow.ms)} (goal >= 0.9)`);
    out.push(`per run, median: pg_basebackup time / ZFS bootstrap time: ${perRun(zfsRow.ms, bbRow.ms)}`);
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await app.close().catch(() => undefined);
    if (a !== null) {
      await a.stop('fast').catch((err: unknown) => { say(`stopping PostgreSQL: ${String(err)}`); });
      a.detach();
    }
    await pool.destroy();
  }
}

await main();
