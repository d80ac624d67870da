// The local development shard: three peers on this machine with ports 10 apart
// (PostgreSQL 5432, 5442, 5452; API +1; Raft +2), as Joyent's mkdevsitters did.
// Run through the `tools/dev-cluster` wrapper, which installs and builds first.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, chmodSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SitterStatus } from '../src/peer/status.js';
import { pidAlive } from '../test/helpers/process.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), process.argv[1]?.includes('/dist/') === true ? '../..' : '..');
const clusterDir = join(root, '.dev-cluster');
const recordPath = join(clusterDir, 'cluster.json');
const peerIds = ['peer1', 'peer2', 'peer3'] as const;
const host = '127.0.0.1';
const zpoolName = 'manatee-dev';

interface ClusterRecord {
  readonly backend: 'zfs' | 'basebackup';
  readonly secret: string;
  readonly adminToken: string;
  readonly superuserPassword: string;
  readonly peers: { id: string; configPath: string; apiUrl: string; pgPort: number; logPath: string; dataDir: string }[];
  sitterPids: Record<string, number>;
  zfs?: { pool: string; file: string; startedDaemonPid: number | null };
}

function ports(i: number): { pg: number; api: number; raft: number } {
  return { pg: 5432 + 10 * i, api: 5433 + 10 * i, raft: 5434 + 10 * i };
}

function readRecord(): ClusterRecord | null {
  if (!existsSync(recordPath)) return null;
  return JSON.parse(readFileSync(recordPath, 'utf8')) as ClusterRecord;
}

function writeRecord(r: ClusterRecord): void {
  writeFileSync(recordPath, JSON.stringify(r, null, 2));
  chmodSync(recordPath, 0o600);
}

async function fetchStatus(apiUrl: string): Promise<SitterStatus | null> {
  try {
    const res = await fetch(`${apiUrl}/status`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return null;
    return (await res.json()) as SitterStatus;
  } catch {
    return null;
  }
}

function zfsDaemonPid(): number | null {
  try {
    const out = execFileSync('pgrep', ['-x', 'zfs-fuse'], { encoding: 'utf8' }).trim().split('\n')[0];
    return out === undefined || out === '' ? null : Number(out);
  } catch {
    return null;
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function setupZfs(): Promise<NonNullable<ClusterRecord['zfs']>> {
  let startedDaemonPid: number | null = null;
  if (zfsDaemonPid() === null) {
    const pidFile = join(clusterDir, 'zfs-fuse.pid');
    execFileSync('zfs-fuse', ['--pidfile', pidFile]);
    for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(100);
    startedDaemonPid = Number(readFileSync(pidFile, 'utf8').trim());
    console.log(`dev-cluster: started zfs-fuse (pid ${startedDaemonPid})`);
  }
  const file = join(clusterDir, 'zpool.img');
  execFileSync('truncate', ['-s', '2G', file]);
  const zfsFile = { pool: zpoolName, file, startedDaemonPid };
  execFileSync('zpool', ['create', '-m', join(clusterDir, 'zfs'), zpoolName, file], { stdio: 'inherit' });
  execFileSync('zfs', ['create', `${zpoolName}/manatee`], { stdio: 'inherit' });
  return zfsFile;
}

function startSitter(configPath: string, logPath: string): number {
  const log = openSync(logPath, 'a');
  const child = spawn(process.execPath, [join(root, 'dist/src/cli/manatee-sitter.js'), '-f', configPath], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start the sitter for ${configPath}`);
  return child.pid;
}

async function up(useZfs: boolean): Promise<void> {
  const existing = readRecord();
  if (existing !== null && Object.values(existing.sitterPids).some(pidAlive)) {
    console.log('dev-cluster: already up');
    await status(false);
    return;
  }
  if (existing !== null) await down();
  mkdirSync(clusterDir, { recursive: true });
  chmodSync(clusterDir, 0o755);
  const record: ClusterRecord = {
    backend: useZfs ? 'zfs' : 'basebackup',
    secret: randomBytes(24).toString('hex'),
    adminToken: randomBytes(24).toString('hex'),
    superuserPassword: randomBytes(12).toString('hex'),
    peers: [],
    sitterPids: {},
  };
  writeRecord(record);
  if (useZfs) {
    record.zfs = await setupZfs();
    writeRecord(record);
  }
  const members = peerIds.map((id, i) => ({ id, address: `${host}:${ports(i).raft}` }));
  peerIds.forEach((id, i) => {
    const p = ports(i);
    const dataDir = join(clusterDir, id);
    mkdirSync(dataDir, { recursive: true });
    chmodSync(dataDir, 0o755);
    const config = {
      peerId: id,
      host,
      dataDir,
      backend: record.backend,
      postgres: { port: p.pg, superuserPassword: record.superuserPassword },
      ...(useZfs ? { zfs: { dataset: `${zpoolName}/manatee/${id}`, snapshotIntervalMs: 60_000, snapshotRetention: 20 } } : {}),
      api: { port: p.api, listen: host },
      raft: { port: p.raft, listen: host, members },
      secret: record.secret,
      adminToken: record.adminToken,
      log: { level: 'info' },
    };
    const configPath = join(dataDir, 'config.json');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    chmodSync(configPath, 0o600);
    record.peers.push({ id, configPath, apiUrl: `http://${host}:${p.api}`, pgPort: p.pg, logPath: join(dataDir, 'sitter.log'), dataDir });
  });
  for (const peer of record.peers) {
    record.sitterPids[peer.id] = startSitter(peer.configPath, peer.logPath);
    console.log(`dev-cluster: started ${peer.id} (sitter pid ${record.sitterPids[peer.id]}, log ${peer.logPath})`);
  }
  writeRecord(record);

  const deadline = Date.now() + 180_000;
  let said = '';
  for (;;) {
    const statuses = await Promise.all(record.peers.map((p) => fetchStatus(p.apiUrl)));
    const primary = statuses.find((s) => s?.role === 'primary' && s.postgres.writable);
    if (primary !== undefined) break;
    const line = statuses.map((s, i) => `${record.peers[i]?.id}=${s === null ? 'starting' : `${s.role}${s.postgres.online ? '' : '(pg down)'}`}`).join(' ');
    if (line !== said) console.log(`dev-cluster: waiting for a writable primary: ${line}`);
    said = line;
    for (const [id, pid] of Object.entries(record.sitterPids)) {
      if (!pidAlive(pid)) throw new Error(`the sitter of ${id} exited; see ${join(clusterDir, id, 'sitter.log')}`);
    }
    if (Date.now() > deadline) throw new Error('no writable primary after 180 s; see the sitter logs in .dev-cluster/*/sitter.log');
    await sleep(500);
  }
  await status(false);
}

async function status(json: boolean): Promise<void> {
  const record = readRecord();
  if (record === null) {
    if (json) console.log('[]');
    else console.log('dev-cluster: not up (run tools/dev-cluster up)');
    return;
  }
  const rows = await Promise.all(
    record.peers.map(async (p) => {
      const s = await fetchStatus(p.apiUrl);
      const sitterPid = record.sitterPids[p.id] ?? null;
      return {
        id: p.id,
        role: s?.role ?? 'unknown',
        pgUrl: `postgres://postgres@${host}:${p.pgPort}/postgres`,
        apiUrl: p.apiUrl,
        sitterPid: sitterPid !== null && pidAlive(sitterPid) ? sitterPid : null,
        postgresPid: s?.postgresPid ?? null,
        online: s?.postgres.online ?? false,
        writable: s?.postgres.writable ?? false,
        generation: s?.state?.generation ?? null,
      };
    }),
  );
  if (json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  const header = ['PEER', 'ROLE', 'PG', 'WRITABLE', 'SITTER PID', 'PG PID', 'API'];
  const table = [header, ...rows.map((r) => [r.id, r.role, r.online ? 'online' : 'offline', r.writable ? 'yes' : 'no', String(r.sitterPid ?? '-'), String(r.postgresPid ?? '-'), r.apiUrl])];
  const widths = header.map((_, c) => Math.max(...table.map((row) => (row[c] ?? '').length)));
  for (const row of table) console.log(row.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  '));
  const primary = rows.find((r) => r.role === 'primary');
  console.log(`generation: ${primary?.generation ?? '-'}   backend: ${record.backend}`);
  if (primary !== undefined) {
    const port = record.peers.find((p) => p.id === primary.id)?.pgPort;
    console.log(`\npsql 'postgres://postgres:${record.superuserPassword}@${host}:${port}/postgres'`);
  }
  console.log(`manatee-adm: MANATEE_URL=${record.peers[0]?.apiUrl} MANATEE_ADMIN_TOKEN=${record.adminToken} node dist/src/cli/manatee-adm.js status`);
}

function postmasterPid(dataDir: string): number | null {
  for (const candidate of [join(dataDir, 'pgdata', 'postmaster.pid'), join(clusterDir, 'zfs', 'manatee', dataDir.split('/').pop() ?? '', 'data', 'postmaster.pid')]) {
    if (existsSync(candidate)) {
      const pid = Number(readFileSync(candidate, 'utf8').split('\n')[0]);
      if (Number.isInteger(pid) && pid > 0) return pid;
    }
  }
  return null;
}

async function waitGone(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(pidAlive) && Date.now() < deadline) await sleep(100);
}

async function down(): Promise<void> {
  const record = readRecord();
  if (record === null) {
    console.log('dev-cluster: nothing to stop');
    return;
  }
  // Sitters first (SIGTERM: they stop their PostgreSQL), then any postmaster a sitter left behind.
  const sitters = Object.values(record.sitterPids).filter(pidAlive);
  for (const pid of sitters) process.kill(pid, 'SIGTERM');
  await waitGone(sitters, 30_000);
  for (const pid of sitters.filter(pidAlive)) process.kill(pid, 'SIGKILL');
  const postmasters = record.peers.map((p) => postmasterPid(p.dataDir)).filter((pid): pid is number => pid !== null && pidAlive(pid));
  for (const pid of postmasters) process.kill(pid, 'SIGQUIT');
  await waitGone(postmasters, 15_000);
  for (const pid of postmasters.filter(pidAlive)) process.kill(pid, 'SIGKILL');
  if (record.zfs !== undefined) {
    try {
      execFileSync('zpool', ['destroy', '-f', record.zfs.pool], { stdio: 'inherit' });
    } catch (err) {
      console.error(`dev-cluster: zpool destroy ${record.zfs.pool} failed: ${(err as Error).message}`);
    }
    if (record.zfs.startedDaemonPid !== null && pidAlive(record.zfs.startedDaemonPid)) process.kill(record.zfs.startedDaemonPid, 'SIGTERM');
  }
  rmSync(clusterDir, { recursive: true, force: true });
  console.log(`dev-cluster: stopped ${sitters.length} sitters and removed ${clusterDir}`);
}

async function main(): Promise<void> {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'up':
      await up(rest.includes('--zfs'));
      return;
    case 'status':
      await status(rest.includes('--json'));
      return;
    case 'down':
      await down();
      return;
    default:
      console.error('usage: tools/dev-cluster up [--zfs] | status [--json] | down');
      process.exitCode = 2;
  }
}

main().catch((err: unknown) => {
  console.error(`dev-cluster: ${(err as Error).message}`);
  process.exitCode = 1;
});
