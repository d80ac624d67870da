// Bootstrap benchmark: how fast a new standby gets its data, by ZFS send/receive through the
// backup server and by pg_basebackup, next to raw baselines measured on the same disk in the
// same run (`zfs send > /dev/null`, a shell's `zfs send | zfs recv` with no Node process in the
// path, the same pipe through one Node process, reading the data directory with tar, and a raw
// `pg_basebackup` with the flags Manatee uses). Prints each run's times, MB/s, CPU seconds (this
// process, which holds both ends of the HTTP stream, and the zfs-fuse daemon) and ratios as soon as
// the run ends, then the medians. Run as root (zfs-fuse, PostgreSQL as `postgres`):
//
//   npx tsx tools/bench/bootstrap.ts [--size-mb 1024] [--runs 1] [--tls] [--node-path] [--tls-node-path] [--zfs-only] [--basebackup-only]
//       [--relay socat|manatee-tls-relay] [--compare-relays] [--socat <path>] [--relay-path <path>] [--log]
//
// Over HTTP the stream is direct (zfs send and zfs recv on the connection, no byte through Node);
// over HTTPS it goes through the TLS relay (src/backup/tls-relay.ts): manatee-tls-relay at both
// ends when it is built (tools/build-tls-relay.sh), else socat; --relay picks one, --compare-relays
// adds a row for the other one, in the same runs. --socat and --relay-path run either program
// through a wrapper (e.g. one that runs it under strace -c or /usr/bin/time).
// --node-path adds the same bootstraps through Node (directStream: false, tlsRelay: false);
// --tls-node-path only the HTTPS one.
// --zfs-only leaves out the rows that are not about zfs send/recv (tar, the Node hop, pg_basebackup).
// --basebackup-only runs only the two pg_basebackup rows (Manatee's and the raw one), alternating their order.
// With --tls, the fair baseline of the HTTPS path: a shell's `zfs send | socat | socat | zfs recv`
// over TLS 1.3 with the same certificates, socat's defaults (the relay's cipher) and its transfer
// size, no Manatee; the HTTPS bootstrap's ratio is printed against it and against the plain pipe.
// CPU columns: this Node process, its child processes that ended during the step (zfs, socat:
// /proc/self/stat cutime+cstime), and the zfs-fuse daemon.
//
// Both paths are the real Manatee code: PostgreSQL through src/postgres (PostgresServer), the
// ZFS path through backupRoutes + ZfsBackupBackend over HTTP on 127.0.0.1 (and with --tls also over
// HTTPS with the shard's CA and peer certificates, as a shard runs by default), and the
// pg_basebackup path through BasebackupBackend.
import { parseArgs } from 'node:util';
import { mkdir, chmod, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import Fastify, { type FastifyInstance } from 'fastify';
import { createLogger, silentLogger } from '../../src/log.js';
import { Zfs, ZfsBusyError } from '../../src/zfs/index.js';
import { backupRoutes, ZfsBackupBackend } from '../../src/backup/index.js';
import { builtRelayPath, defaultRelayProgram, RELAY_BLOCK_BYTES, type RelayProgram } from '../../src/backup/tls-relay.js';
import { BasebackupBackend } from '../../src/backup/basebackup.js';
import { PostgresServer } from '../../src/postgres/index.js';
import { CA_CERT_FILE, initCa, issuePeerCertificate, peerCertFile, peerKeyFile } from '../../src/tls/index.js';
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
    // Also the ZFS bootstrap over HTTPS (TLS 1.3, peer certificates), as a shard runs by default.
    tls: { type: 'boolean', default: false },
    // Also the ZFS bootstrap over HTTP through Node (directStream: false), the path before the direct stream.
    'node-path': { type: 'boolean', default: false },
    'zfs-only': { type: 'boolean', default: false },
    'basebackup-only': { type: 'boolean', default: false },
    // Only the HTTPS bootstrap through Node (the TLS path before the relay), not the HTTP one.
    'tls-node-path': { type: 'boolean', default: false },
    // The socat of the TLS relay (both ends) when the relay is socat: e.g. a wrapper that runs it under strace -c.
    socat: { type: 'string', default: 'socat' },
    // The TLS relay's program: socat or manatee-tls-relay (default: manatee-tls-relay when built).
    relay: { type: 'string' },
    // manatee-tls-relay's path (or a wrapper's), when the relay is manatee-tls-relay.
    'relay-path': { type: 'string' },
    // Also the HTTPS bootstrap through the other relay program, in the same runs.
    'compare-relays': { type: 'boolean', default: false },
  },
});
const socatRelay: RelayProgram = { kind: 'socat', path: values.socat };
const nativeRelay: RelayProgram = { kind: 'manatee-tls-relay', path: values['relay-path'] ?? builtRelayPath() };
if (values.relay !== undefined && values.relay !== 'socat' && values.relay !== 'manatee-tls-relay') throw new Error('--relay must be socat or manatee-tls-relay');
const mainRelay: RelayProgram = (values.relay ?? defaultRelayProgram().kind) === 'socat' ? socatRelay : nativeRelay;
const otherRelay: RelayProgram | null = values['compare-relays'] ? (mainRelay.kind === 'socat' ? nativeRelay : socatRelay) : null;
const sizeMb = Number(values['size-mb']);
const bbOnly = values['basebackup-only'];
if (bbOnly && (values['zfs-only'] || values.tls || values['node-path'] || values['tls-node-path'])) throw new Error('--basebackup-only runs the pg_basebackup rows alone: leave out --zfs-only, --tls, --node-path and --tls-node-path');
const runs = Number(values.runs);
if (!Number.isFinite(sizeMb) || sizeMb < 16) throw new Error('--size-mb must be a number >= 16');
if (!Number.isInteger(runs) || runs < 1 || runs > 9) throw new Error('--runs must be 1..9');

function say(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN when it is gone. */
async function processCpuS(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime and stime, fields 14 and 15, in clock ticks
  } catch {
    return NaN;
  }
}

/** The zfs-fuse daemon, which does the work of every zfs send and recv (the zfs processes only ask it). */
async function zfsDaemonPid(): Promise<number> {
  const r = await execa('pgrep', ['-x', 'zfs-fuse'], { reject: false });
  return Number(r.stdout.split('\n')[0] ?? NaN);
}

/** CPU seconds of this process's children that ended and were waited for (zfs, socat). */
async function childrenCpuS(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / 100; // cutime and cstime, fields 16 and 17
}

async function loadAverage(): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
}

interface Timed<T> {
  readonly ms: number;
  readonly value: T;
  /** CPU seconds of this process (both ends of the HTTP stream, and the Node pipe). */
  readonly nodeCpuS: number;
  /** CPU seconds of the zfs-fuse daemon. */
  readonly zfsCpuS: number;
  /** CPU seconds of this process's children (zfs commands, socat). */
  readonly childCpuS: number;
}

async function timed<T>(fn: () => Promise<T>): Promise<Timed<T>> {
  const daemon = await zfsDaemonPid();
  const z0 = await processCpuS(daemon);
  const k0 = await childrenCpuS();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { ms, value, nodeCpuS: (c.user + c.system) / 1e6, zfsCpuS: (await processCpuS(daemon)) - z0, childCpuS: (await childrenCpuS()) - k0 };
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
  const tlsApps: FastifyInstance[] = [];
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

    // With --tls, a second backup server over HTTPS as a sitter's API serves it (TLS 1.3, a client
    // certificate of the shard's CA required and bound to the job's peer), and the restoring peer's
    // certificate for the client.
    let tlsSource: { url: string; client: () => { ca: string; cert: string; key: string } } | null = null;
    let otherTlsUrl: string | null = null;
    // The certificate files of the raw TLS baseline (socat at both ends of a shell pipe, no Manatee).
    let tlsFiles: { ca: string; a: { cert: string; key: string }; b: { cert: string; key: string } } | null = null;
    if (values.tls) {
      const certDir = join(pool.dir, 'certs');
      await mkdir(certDir, { recursive: true, mode: 0o700 });
      await initCa({ dir: certDir, name: 'bench shard CA' });
      for (const id of ['a', 'b']) await issuePeerCertificate({ dir: certDir, peerId: id, hosts: ['127.0.0.1'] });
      const files = async (id: string): Promise<{ ca: string; cert: string; key: string }> => ({
        ca: await readFile(join(certDir, CA_CERT_FILE), 'utf8'), cert: await readFile(peerCertFile(certDir, id), 'utf8'), key: await readFile(peerKeyFile(certDir, id), 'utf8'),
      });
      tlsFiles = { ca: join(certDir, CA_CERT_FILE), a: { cert: peerCertFile(certDir, 'a'), key: peerKeyFile(certDir, 'a') }, b: { cert: peerCertFile(certDir, 'b'), key: peerKeyFile(certDir, 'b') } };
      const clientTls = await files('b');
      const serverTls = await files('a');
      // One source per relay program (the source's end runs the program its server was given).
      const tlsServer = async (relayProgram: RelayProgram): Promise<string> => {
        const tlsApp = Fastify({ logger: false, https: { ...serverTls, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false } });
        tlsApps.push(tlsApp);
        await tlsApp.register(backupRoutes, { zfs, dataset: dsA, secret: SECRET, log, requirePeerCertificate: true, tlsRelay: () => serverTls, relayProgram });
        await tlsApp.listen({ port: 0, host: '127.0.0.1' });
        const tlsAddr = tlsApp.server.address();
        return `https://127.0.0.1:${typeof tlsAddr === 'object' && tlsAddr !== null ? tlsAddr.port : 0}`;
      };
      tlsSource = { url: await tlsServer(mainRelay), client: () => clientTls };
      if (otherRelay !== null) otherTlsUrl = await tlsServer(otherRelay);
      say(`TLS relay: ${mainRelay.kind} (${mainRelay.path})${otherRelay !== null ? `, compared with ${otherRelay.kind} (${otherRelay.path})` : ''}`);
    }

    interface Row { name: string; ms: number[]; nodeCpuS: number[]; zfsCpuS: number[]; childCpuS: number[]; bytes: number }
    const rows: Row[] = [];
    const add = (name: string, bytes: number): Row => {
      const r: Row = { name, ms: [], nodeCpuS: [], zfsCpuS: [], childCpuS: [], bytes };
      rows.push(r);
      return r;
    };
    const record = (row: Row, t: Timed<unknown>): void => {
      row.ms.push(t.ms);
      row.nodeCpuS.push(t.nodeCpuS);
      row.zfsCpuS.push(t.zfsCpuS);
      row.childCpuS.push(t.childCpuS);
    };

    // Raw baselines, in shell pipes (no Node process between the two commands). tar's archive goes
    // through a pipe to wc: GNU tar skips reading file data when its archive is literally /dev/null.
    const tarRow = add('raw: tar of the data directory | wc -c', dataBytes);
    const sendRow = add('raw: zfs send > /dev/null', 0);
    const sendPipeRow = add('raw: zfs send | wc -c', 0);
    const sendRecvRow = add('raw: zfs send | zfs recv (shell pipe)', 0);
    const sendRecvTlsRow = tlsFiles === null ? null : add('raw: zfs send | socat =TLS 1.3= socat | zfs recv', 0);
    const nodePipeRow = add('raw: zfs send | node | zfs recv (one Node hop)', 0);
    const rawBbRow = add('raw: pg_basebackup (same flags, no Manatee)', 0);
    const zfsRow = add('bootstrap: ZFS via backup server (HTTP, direct)', 0);
    const zfsNodeRow = values['node-path'] ? add('bootstrap: ZFS via backup server (HTTP, via Node)', 0) : null;
    const zfsTlsRow = tlsSource === null ? null : add(`bootstrap: ZFS via backup server (HTTPS, ${mainRelay.kind})`, 0);
    const zfsTlsOtherRow = otherTlsUrl === null || otherRelay === null ? null : add(`bootstrap: ZFS via backup server (HTTPS, ${otherRelay.kind})`, 0);
    const zfsTlsNodeRow = tlsSource === null || !(values['node-path'] || values['tls-node-path']) ? null : add('bootstrap: ZFS via backup server (HTTPS, via Node)', 0);
    const bbRow = add('bootstrap: pg_basebackup (BasebackupBackend)', 0);
    const rate1 = (bytes: number, ms: number): number => bytes / MB / (ms / 1000);

    const zfsBootstrap = async (row: Row, url: string, tls?: () => { ca: string; cert: string; key: string }, directStream = true, relayProgram = mainRelay): Promise<void> => {
      const dsB = `${pool.name}/peers/b`;
      const mpB = join(pool.dir, 'b');
      const backend = new ZfsBackupBackend({ zfs, dataset: dsB, mountpoint: mpB, dataDir: join(mpB, 'pgdata'), peerId: 'b', secret: SECRET, log, pgUser: 'postgres', directStream, tlsRelay: directStream, relayProgram, ...(tls !== undefined ? { tls } : {}) });
      const z = await timed(() => backend.restore({ source: { peerId: 'a', pgUrl: '', backupUrl: url }, reason: 'bootstrap' }));
      record(row, z);
      row.bytes = z.value.bytes;
      await destroyWhenFree(zfs, dsB);
    };

    for (let run = 1; run <= runs; run++) {
      // Each step as a function, so that the order alternates between runs: zfs-fuse's cache
      // favours whatever runs second, and a fixed order would bias every ratio the same way.
      const steps: Array<[string, () => Promise<void>]> = [
        ['tar', async () => {
          const tar = await timed(() => execa('bash', ['-c', 'set -o pipefail; tar -cf - -C "$0" . | wc -c', dataA], { timeout: 3_600_000 }));
          record(tarRow, tar);
          tarRow.bytes = Number(tar.value.stdout.trim());
        }],
        ['zfs send', async () => {
          const raw = await timed(() => execa(zfs.cmd.zfsPath, ['send', snap.name], { stdout: 'ignore' }));
          record(sendRow, raw);
          // zfs-fuse's send to /dev/null finishes suspiciously fast (far above the disk's read
          // rate): through a pipe every byte of the stream is produced and read.
          const piped = await timed(() => execa('bash', ['-c', 'set -o pipefail; "$0" send "$1" | wc -c', zfs.cmd.zfsPath, snap.name], { timeout: 3_600_000 }));
          record(sendPipeRow, piped);
          sendPipeRow.bytes = Number(piped.value.stdout.trim());
          sendRow.bytes = sendPipeRow.bytes;
          sendRecvRow.bytes = sendPipeRow.bytes;
        }],
        ['zfs send | zfs recv', async () => {
          // The baseline of the goal: what an operator's shell pipe does, no Node process in between.
          const dsRaw = `${pool.name}/raw`;
          const sr = await timed(() => execa('bash', ['-c', 'set -o pipefail; "$0" send "$1" | "$0" recv "$2"', zfs.cmd.zfsPath, snap.name, dsRaw], { timeout: 3_600_000 }));
          record(sendRecvRow, sr);
          await destroyWhenFree(zfs, dsRaw);
        }],
        ...(tlsFiles !== null && sendRecvTlsRow !== null ? [['zfs send | socat TLS socat | zfs recv', async () => {
          // The fair baseline over TLS: what an operator's shell does with socat at both ends (TLS 1.3,
          // both certificates checked against the shard CA, the same socat defaults and so the same
          // cipher as the relay, its transfer size), no Manatee.
          const dsRaw = `${pool.name}/rawtls`;
          const f = tlsFiles;
          const tlsPort = await freePort();
          const opts = `cafile=${f.ca},verify=1,min-version=TLS1.3`;
          const script = 'set -o pipefail; "$0" send "$1" | socat -b "$3" -u STDIN "OPENSSL-LISTEN:$4,bind=127.0.0.1,reuseaddr,cert=$5,key=$6,$7,commonname=b" & ' +
            'socat -b "$3" -u "OPENSSL:127.0.0.1:$4,cert=$8,key=$9,$7,retry=100,interval=0.1" STDOUT | "$0" recv "$2"; r=$?; wait $! || r=$?; exit $r';
          const sr = await timed(() => execa('bash', ['-c', script, zfs.cmd.zfsPath, snap.name, dsRaw, String(RELAY_BLOCK_BYTES), String(tlsPort), f.a.cert, f.a.key, opts, f.b.cert, f.b.key], { timeout: 3_600_000 }));
          record(sendRecvTlsRow, sr);
          sendRecvTlsRow.bytes = sendRecvRow.bytes;
          await destroyWhenFree(zfs, dsRaw);
        }] as [string, () => Promise<void>]] : []),
        ['zfs send | node | zfs recv', async () => {
          // The same through one Node process (Manatee's Zfs.send and Zfs.receive): the cost of a hop.
          const dsRaw = `${pool.name}/rawnode`;
          const sr = await timed(async () => {
            const send = zfs.send(snap.name);
            let n = 0;
            send.stdout.on('data', (c: Buffer) => (n += c.length));
            await Promise.all([zfs.receive(dsRaw, send.stdout), send.done]);
            return n;
          });
          record(nodePipeRow, sr);
          nodePipeRow.bytes = sr.value;
          await destroyWhenFree(zfs, dsRaw);
        }],
        ['ZFS bootstrap', () => zfsBootstrap(zfsRow, backupUrl)],
        ...(zfsNodeRow !== null ? [['ZFS bootstrap via Node', () => zfsBootstrap(zfsNodeRow, backupUrl, undefined, false)] as [string, () => Promise<void>]] : []),
        ...(tlsSource !== null && zfsTlsRow !== null ? [['ZFS bootstrap over TLS', () => zfsBootstrap(zfsTlsRow, tlsSource.url, tlsSource.client)] as [string, () => Promise<void>]] : []),
        ...(tlsSource !== null && otherTlsUrl !== null && zfsTlsOtherRow !== null && otherRelay !== null ? [['ZFS bootstrap over TLS, other relay', () => zfsBootstrap(zfsTlsOtherRow, otherTlsUrl, tlsSource.client, true, otherRelay)] as [string, () => Promise<void>]] : []),
        ...(tlsSource !== null && zfsTlsNodeRow !== null ? [['ZFS bootstrap over TLS via Node', () => zfsBootstrap(zfsTlsNodeRow, tlsSource.url, tlsSource.client, false)] as [string, () => Promise<void>]] : []),
        ['pg_basebackup', async () => {
          const dsC = `${pool.name}/c`;
          const mpC = join(pool.dir, 'c');
          await zfs.createDataset(dsC, { mountpoint: mpC });
          await execa('chown', ['postgres:', mpC]);
          const target = await PostgresServer.open({ ...pgOpts, dataDir: join(mpC, 'pgdata'), runDir: join(pool.dir, 'run-c'), port: await freePort() });
          const bbBackend = new BasebackupBackend({ postgres: target, logger: log });
          const bb = await timed(() => bbBackend.restore({ source: { peerId: 'a', pgUrl: `postgres://${a!.replicationUser}:${REPL_PASSWORD}@127.0.0.1:${port}/postgres`, backupUrl: '' }, reason: 'bootstrap' }));
          record(bbRow, bb);
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
          record(rawBbRow, raw);
          rawBbRow.bytes = await dirBytes(into);
          await destroyWhenFree(zfs, dsD);
        }],
      ];
      const notZfs = new Set(['tar', 'zfs send | node | zfs recv', 'pg_basebackup', 'raw pg_basebackup']);
      const chosen = values['basebackup-only'] ? steps.filter(([name]) => name === 'pg_basebackup' || name === 'raw pg_basebackup')
        : values['zfs-only'] ? steps.filter(([name]) => !notZfs.has(name)) : steps;
      const order = run % 2 === 1 ? chosen : [...chosen].reverse();
      say(`run ${run}/${runs}: ${order.map(([name]) => name).join(', ')}`);
      const loadBefore = await loadAverage();
      for (const [, step] of order) await step();
      // This run's figures now: a crash in a later run must not take them with it.
      const i = run - 1;
      const lines = rows.filter((r) => r.ms.length > 0).map((r) => `  ${r.name.padEnd(52)} ${((r.ms[i] ?? NaN) / 1000).toFixed(2).padStart(8)} s ${rate1(r.bytes, r.ms[i] ?? NaN).toFixed(1).padStart(8)} MB/s` +
        `   cpu: node ${(r.nodeCpuS[i] ?? NaN).toFixed(2).padStart(6)} s, children ${(r.childCpuS[i] ?? NaN).toFixed(2).padStart(6)} s, zfs-fuse ${(r.zfsCpuS[i] ?? NaN).toFixed(2).padStart(6)} s`);
      const ratio = (x: number[], base: number[]): string => ((base[i] ?? NaN) / (x[i] ?? NaN)).toFixed(2);
      process.stdout.write(`run ${run}/${runs} (load average ${loadBefore} before, ${await loadAverage()} after):\n${lines.join('\n')}\n` + (bbOnly
        ? `  ratio (time of the baseline / time of the bootstrap): pg_basebackup bootstrap / raw pg_basebackup ${ratio(bbRow.ms, rawBbRow.ms)}\n` : '') + (bbOnly ? '' :
        `  ratios (time of the baseline / time of the bootstrap): ZFS bootstrap / zfs send | zfs recv ${ratio(zfsRow.ms, sendRecvRow.ms)}` +
        `${zfsTlsRow !== null ? `, over TLS ${ratio(zfsTlsRow.ms, sendRecvRow.ms)}` : ''}${zfsTlsRow !== null && sendRecvTlsRow !== null ? ` (over TLS / raw over TLS ${ratio(zfsTlsRow.ms, sendRecvTlsRow.ms)}; raw over TLS / raw ${ratio(sendRecvTlsRow.ms, sendRecvRow.ms)})` : ''}${zfsTlsOtherRow !== null && otherRelay !== null ? `, over TLS with ${otherRelay.kind} ${ratio(zfsTlsOtherRow.ms, sendRecvRow.ms)}` : ''}${zfsTlsNodeRow !== null ? `, over TLS via Node ${ratio(zfsTlsNodeRow.ms, sendRecvRow.ms)}` : ''}${zfsNodeRow !== null ? `, via Node ${ratio(zfsNodeRow.ms, sendRecvRow.ms)}` : ''}; ZFS bootstrap / one Node hop ${ratio(zfsRow.ms, nodePipeRow.ms)}` +
        `; pg_basebackup bootstrap / raw pg_basebackup ${ratio(bbRow.ms, rawBbRow.ms)}\n`));
    }

    // Ratios per run (each against the baseline measured in the same run), then their median.
    const perRun = (x: number[], y: number[]): string => {
      const ratios = x.map((ms, i) => (y[i] ?? NaN) / ms);
      return `${median(ratios).toFixed(2)} (runs: ${ratios.map((r) => r.toFixed(2)).join(', ')})`;
    };
    const rate = (r: { ms: number[]; bytes: number }): number => r.bytes / MB / (median(r.ms) / 1000);
    const out: string[] = [];
    out.push(`bootstrap benchmark: data directory ${(dataBytes / MB).toFixed(0)} MB (pgbench scale ${scale}), ${runs} run(s), medians; zfs-fuse pool on a file, 127.0.0.1; load average now ${await loadAverage()}`);
    out.push(`${'what'.padEnd(52)} ${'MB'.padStart(8)} ${'seconds'.padStart(9)} ${'MB/s'.padStart(8)} ${'node cpu s'.padStart(11)} ${'children cpu s'.padStart(15)} ${'zfs-fuse cpu s'.padStart(15)}`);
    for (const r of rows.filter((x) => x.ms.length > 0)) {
      out.push(`${r.name.padEnd(52)} ${(r.bytes / MB).toFixed(0).padStart(8)} ${(median(r.ms) / 1000).toFixed(2).padStart(9)} ${rate(r).toFixed(1).padStart(8)} ${median(r.nodeCpuS).toFixed(2).padStart(11)} ${median(r.childCpuS).toFixed(2).padStart(15)} ${median(r.zfsCpuS).toFixed(2).padStart(15)}`);
    }
    const all = !values['zfs-only'] && !bbOnly;
    if (bbOnly) out.push(`per run, median: pg_basebackup bootstrap / raw pg_basebackup: ${perRun(bbRow.ms, rawBbRow.ms)} (goal >= 0.9)`);
    else out.push(`ratio ZFS bootstrap / zfs send | wc -c:          ${(rate(zfsRow) / rate(sendPipeRow)).toFixed(2)}`);
    if (all) out.push(`ratio pg_basebackup / tar read of data dir:      ${(rate(bbRow) / rate(tarRow)).toFixed(2)}`);
    // Same bytes on both sides of these ratios: time(baseline) / time(bootstrap) = rate ratio.
    if (!bbOnly) out.push(`per run, median: ZFS bootstrap (HTTP) / zfs send | zfs recv: ${perRun(zfsRow.ms, sendRecvRow.ms)} (goal >= 0.9)`);
    if (zfsTlsRow !== null && !bbOnly) out.push(`per run, median: ZFS bootstrap (HTTPS, ${mainRelay.kind}) / zfs send | zfs recv: ${perRun(zfsTlsRow.ms, sendRecvRow.ms)} (goal >= 0.9)`);
    if (zfsTlsOtherRow !== null && otherRelay !== null) out.push(`per run, median: ZFS bootstrap (HTTPS, ${otherRelay.kind}) / zfs send | zfs recv: ${perRun(zfsTlsOtherRow.ms, sendRecvRow.ms)}`);
    if (zfsTlsRow !== null && sendRecvTlsRow !== null && !bbOnly) {
      out.push(`per run, median: ZFS bootstrap (HTTPS, ${mainRelay.kind}) / zfs send | socat =TLS= socat | zfs recv: ${perRun(zfsTlsRow.ms, sendRecvTlsRow.ms)}`);
      if (zfsTlsOtherRow !== null && otherRelay !== null) out.push(`per run, median: ZFS bootstrap (HTTPS, ${otherRelay.kind}) / zfs send | socat =TLS= socat | zfs recv: ${perRun(zfsTlsOtherRow.ms, sendRecvTlsRow.ms)}`);
      if (zfsTlsOtherRow !== null && otherRelay !== null) out.push(`per run, median: time with ${otherRelay.kind} / time with ${mainRelay.kind}: ${perRun(zfsTlsRow.ms, zfsTlsOtherRow.ms)}`);
      out.push(`per run, median: zfs send | socat =TLS= socat | zfs recv / zfs send | zfs recv: ${perRun(sendRecvTlsRow.ms, sendRecvRow.ms)}`);
    }
    if (zfsTlsNodeRow !== null) out.push(`per run, median: ZFS bootstrap (HTTPS, via Node) / zfs send | zfs recv: ${perRun(zfsTlsNodeRow.ms, sendRecvRow.ms)}`);
    if (zfsNodeRow !== null) out.push(`per run, median: ZFS bootstrap (HTTP, via Node) / zfs send | zfs recv: ${perRun(zfsNodeRow.ms, sendRecvRow.ms)}`);
    if (all) {
      out.push(`per run, median: ZFS bootstrap (HTTP) / zfs send | node | zfs recv: ${perRun(zfsRow.ms, nodePipeRow.ms)}`);
      out.push(`per run, median: zfs send | node | zfs recv / zfs send | zfs recv: ${perRun(nodePipeRow.ms, sendRecvRow.ms)}`);
      out.push(`per run, median: pg_basebackup bootstrap / raw pg_basebackup: ${perRun(bbRow.ms, rawBbRow.ms)} (goal >= 0.9)`);
      out.push(`per run, median: pg_basebackup time / ZFS bootstrap time: ${perRun(zfsRow.ms, bbRow.ms)}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await app.close().catch(() => undefined);
    for (const t of tlsApps) await t.close().catch(() => undefined);
    if (a !== null) {
      await a.stop('fast').catch((err: unknown) => { say(`stopping PostgreSQL: ${String(err)}`); });
      a.detach();
    }
    await pool.destroy();
  }
}

await main();
