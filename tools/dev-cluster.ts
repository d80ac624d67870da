// The local development shard: three peers on this machine with ports 10 apart
// (PostgreSQL 5432, 5442, 5452; API +1; Raft +2), as Joyent's mkdevsitters did. Each peer can be
// stopped, started, killed or restarted on its own, and a peer can be added. Every process it
// starts or finds is recorded with its start time in <dir>/cluster.json, so that `down` stops
// them all and never signals a process that merely got a recycled pid.
// Run through the `tools/dev-cluster` wrapper, which installs and builds first; under tsx
// (`npx tsx tools/dev-cluster.ts`, as the tests do) it runs the sitters from source.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ManateeError, errorMessage } from '../src/errors.js';
import { describePeerTags, type PeerTags } from '../src/model/index.js';
import { CA_CERT_FILE, initCa, issuePeerCertificate, peerCertFile, peerKeyFile } from '../src/tls/index.js';
import { apiErrorText, httpJson } from './lib/http.js';
import { isRunning, recordProcess, signalProcess, waitGone, type ProcessRecord } from './lib/processes.js';
import {
  caPemOf, DEFAULT_PORT_BASE, DevClusterError, HOST, PEERS_MAX, findPeer, parsePortBase, portsOf, readRecord, writeRecord, zpoolName,
  type ClusterRecord, type DevPeer,
  extraSitterConfig, mergeConfig,
} from './lib/dev-record.js';
import { fetchStatus, killPeer, postmasterOf, running, startSitter, stopPeer, waitForApi, type SitterLauncher } from './lib/dev-peers.js';

const selfPath = fileURLToPath(import.meta.url);
const fromSource = selfPath.endsWith('.ts');
const root = resolve(dirname(selfPath), fromSource ? '..' : '../..');
const launcher: SitterLauncher = { root, fromSource };
const PEER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const UP_TIMEOUT_MS = 180_000;
const API_TIMEOUT_MS = 120_000;

interface Globals {
  dir?: string;
  portBase?: string;
}

function clusterDir(g: Globals): string {
  return resolve(g.dir ?? process.env['MANATEE_DEV_DIR'] ?? join(root, '.dev-cluster'));
}

function portBase(g: Globals): number {
  if (g.portBase !== undefined) return parsePortBase(g.portBase, '--port-base');
  const env = process.env['MANATEE_DEV_PORT_BASE'];
  return env === undefined || env === '' ? DEFAULT_PORT_BASE : parsePortBase(env, 'MANATEE_DEV_PORT_BASE');
}

function mustRecord(dir: string): ClusterRecord {
  const r = readRecord(dir);
  if (r === null) throw new DevClusterError('MANATEE_ERR_DEV_NOT_UP', `no dev shard in ${dir} (run tools/dev-cluster up)`);
  return r;
}

const say = (line: string): void => { console.log(`dev-cluster: ${line}`); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function setupZfs(dir: string, pool: string): Promise<NonNullable<ClusterRecord['zfs']>> {
  let startedDaemon: ProcessRecord | null = null;
  let daemonRuns = true;
  try {
    execFileSync('pgrep', ['-x', 'zfs-fuse']);
  } catch {
    daemonRuns = false;
  }
  if (!daemonRuns) {
    const pidFile = join(dir, 'zfs-fuse.pid');
    execFileSync('zfs-fuse', ['--pidfile', pidFile]);
    for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(100);
    startedDaemon = recordProcess(Number(readFileSync(pidFile, 'utf8').trim()));
    say(`started zfs-fuse (pid ${startedDaemon?.pid ?? '?'})`);
  }
  const file = join(dir, 'zpool.img');
  execFileSync('truncate', ['-s', '2G', file]);
  execFileSync('zpool', ['create', '-m', join(dir, 'zfs'), pool, file], { stdio: 'inherit' });
  execFileSync('zfs', ['create', `${pool}/manatee`], { stdio: 'inherit' });
  return { pool, file, startedDaemon };
}

/** The shard's CA in <dir>/certs (as manatee-adm certs init makes it). */
async function makeCa(dir: string): Promise<NonNullable<ClusterRecord['tls']>> {
  const certsDir = join(dir, 'certs');
  await initCa({ dir: certsDir, name: 'Manatee dev shard CA' });
  return { certsDir, caFile: join(certsDir, CA_CERT_FILE) };
}

/** A peer's key and certificate (manatee-adm certs issue <id> --host 127.0.0.1,localhost), when the shard runs TLS. */
async function issueFor(r: ClusterRecord, id: string): Promise<void> {
  if (r.tls !== undefined) await issuePeerCertificate({ dir: r.tls.certsDir, peerId: id, hosts: [HOST, 'localhost'] });
}

/** Writes the configuration file of the peer at `index` (the Raft members given) and returns it. */
function makePeer(r: ClusterRecord, dir: string, id: string, index: number, members: { id: string; address: string }[]): DevPeer {
  const p = portsOf(r.portBase, index);
  const dataDir = join(dir, id);
  mkdirSync(dataDir, { recursive: true });
  chmodSync(dataDir, 0o755);
  const config = {
    peerId: id,
    host: HOST,
    dataDir,
    backend: r.backend,
    postgres: { port: p.pg, superuserPassword: r.superuserPassword },
    ...(r.zfs !== undefined ? { zfs: { dataset: `${r.zfs.pool}/manatee/${id}`, snapshotIntervalMs: 60_000, snapshotRetention: 20 } } : {}),
    api: { port: p.api, listen: HOST },
    raft: { port: p.raft, listen: HOST, members },
    secret: r.secret,
    adminToken: r.adminToken,
    ...(r.tls === undefined ? {} : { tls: { caFile: r.tls.caFile, certFile: peerCertFile(r.tls.certsDir, id), keyFile: peerKeyFile(r.tls.certsDir, id) } }),
    log: { level: 'info' },
  };
  mergeConfig(config, extraSitterConfig(process.env['MANATEE_DEV_SITTER_CONFIG']));
  const configPath = join(dataDir, 'config.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
  chmodSync(configPath, 0o600);
  return { id, index, configPath, apiUrl: `${r.tls === undefined ? 'http' : 'https'}://${HOST}:${p.api}`, pgPort: p.pg, apiPort: p.api, raftPort: p.raft, logPath: join(dataDir, 'sitter.log'), dataDir };
}

async function up(dir: string, base: number, useZfs: boolean, useTls: boolean): Promise<void> {
  const existing = readRecord(dir);
  if (existing !== null && existing.peers.some((p) => running(existing, p.id, 'sitter') !== null)) {
    say('already up');
    await status(dir, false);
    return;
  }
  if (existing !== null) await down(dir);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const r: ClusterRecord = {
    version: 2,
    backend: useZfs ? 'zfs' : 'basebackup',
    portBase: base,
    secret: randomBytes(24).toString('hex'),
    adminToken: randomBytes(24).toString('hex'),
    superuserPassword: randomBytes(12).toString('hex'),
    peers: [],
    processes: [],
  };
  writeRecord(dir, r);
  if (useZfs) {
    r.zfs = await setupZfs(dir, zpoolName(base));
    writeRecord(dir, r);
  }
  const ids = ['peer1', 'peer2', 'peer3'];
  if (useTls) {
    r.tls = await makeCa(dir);
    for (const id of ids) await issueFor(r, id);
    writeRecord(dir, r);
    say(`made the shard CA and the peers' certificates in ${r.tls.certsDir} (TLS everywhere; up --no-tls for none)`);
  }
  const members = ids.map((id, i) => ({ id, address: `${HOST}:${portsOf(base, i).raft}` }));
  ids.forEach((id, i) => r.peers.push(makePeer(r, dir, id, i, members)));
  for (const peer of r.peers) {
    const s = startSitter(r, peer, launcher);
    writeRecord(dir, r);
    say(`started ${peer.id} (sitter pid ${s.pid}, log ${peer.logPath})`);
  }
  await waitForWritablePrimary(r, dir);
  await status(dir, false);
}

async function waitForWritablePrimary(r: ClusterRecord, dir: string): Promise<void> {
  const deadline = Date.now() + UP_TIMEOUT_MS;
  let said = '';
  for (;;) {
    const statuses = await Promise.all(r.peers.map((p) => fetchStatus(r, p.apiUrl)));
    if (statuses.some((s) => s?.role === 'primary' && s.postgres.writable)) return;
    const line = statuses.map((s, i) => `${r.peers[i]?.id}=${s === null ? 'starting' : `${s.role}${s.postgres.online ? '' : '(pg down)'}`}`).join(' ');
    if (line !== said) say(`waiting for a writable primary: ${line}`);
    said = line;
    for (const p of r.peers) {
      if (running(r, p.id, 'sitter') === null) throw new DevClusterError('MANATEE_ERR_DEV_START_FAILED', `the sitter of ${p.id} exited; see ${p.logPath}`);
    }
    if (Date.now() > deadline) throw new DevClusterError('MANATEE_ERR_DEV_START_FAILED', `no writable primary after ${UP_TIMEOUT_MS / 1000} s; see the sitter logs in ${dir}/*/sitter.log`);
    await sleep(500);
  }
}

async function status(dir: string, json: boolean, showSecrets = false): Promise<void> {
  const r = readRecord(dir);
  if (r === null) {
    if (json) console.log('[]');
    else say(`not up in ${dir} (run tools/dev-cluster up)`);
    return;
  }
  const rows = await Promise.all(
    r.peers.map(async (p) => {
      const s = await fetchStatus(r, p.apiUrl);
      return {
        id: p.id,
        role: s?.role ?? 'unknown',
        pgUrl: `postgres://postgres@${HOST}:${p.pgPort}/postgres${pgTlsParams(r)}`,
        apiUrl: p.apiUrl,
        sitterPid: running(r, p.id, 'sitter')?.pid ?? null,
        postgresPid: postmasterOf(r, p)?.pid ?? null,
        online: s?.postgres.online ?? false,
        writable: s?.postgres.writable ?? false,
        generation: s?.state?.generation ?? null,
        /** Settings waiting for a restart of its PostgreSQL (manatee-adm restart --pending); null when unknown. */
        pendingRestart: s?.settings?.pendingRestart ?? null,
        /** Its tags (nofailover, noloadbalance, priority) as its configuration sets them; null when unknown. */
        tags: s === null ? null : (s.tags ?? {}),
      };
    }),
  );
  writeRecord(dir, r); // the postmasters seen are recorded for `down`
  if (json) {
    console.log(JSON.stringify(rows, null, 2));
    return;
  }
  const header = ['PEER', 'ROLE', 'PG', 'WRITABLE', 'SITTER PID', 'PG PID', 'PENDING RESTART', 'TAGS', 'API'];
  const tags = (x: { tags: PeerTags | null }): string => (x.tags === null ? '?' : describePeerTags(x.tags) || '-');
  const pending = (x: { pendingRestart: readonly string[] | null }): string => (x.pendingRestart === null ? '?' : x.pendingRestart.length === 0 ? '-' : x.pendingRestart.join(','));
  const table = [header, ...rows.map((x) => [x.id, x.role, x.online ? 'online' : 'offline', x.writable ? 'yes' : 'no', String(x.sitterPid ?? '-'), String(x.postgresPid ?? '-'), pending(x), tags(x), x.apiUrl])];
  const widths = header.map((_, c) => Math.max(...table.map((row) => (row[c] ?? '').length)));
  for (const row of table) console.log(row.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join('  '));
  const primary = rows.find((x) => x.role === 'primary');
  console.log(`generation: ${primary?.generation ?? '-'}   backend: ${r.backend}`);
  const files = writeSecretFiles(dir, r);
  const port = primary === undefined ? undefined : r.peers.find((p) => p.id === primary.id)?.pgPort;
  const urls = r.peers.map((p) => p.apiUrl).join(',');
  const ca = r.tls === undefined ? '' : ` MANATEE_CA=${r.tls.caFile}`;
  if (showSecrets) {
    if (port !== undefined) console.log(`\npsql 'postgres://postgres:${r.superuserPassword}@${HOST}:${port}/postgres${pgTlsParams(r)}'`);
    console.log(`manatee-adm: MANATEE_URL=${urls}${ca} MANATEE_ADMIN_TOKEN=${r.adminToken} node dist/src/cli/manatee-adm.js status`);
    return;
  }
  // The password and the token stay in files (mode 0600), out of terminals and scroll-back.
  if (port !== undefined) console.log(`\nPGPASSFILE=${files.pgpass} psql 'postgres://postgres@${HOST}:${port}/postgres${pgTlsParams(r)}'`);
  console.log(`manatee-adm: MANATEE_URL=${urls}${ca} MANATEE_ADMIN_TOKEN_FILE=${files.adminToken} node dist/src/cli/manatee-adm.js status`);
  if (r.tls !== undefined) console.log(`curl: curl --cacert ${r.tls.caFile} ${r.peers[0]?.apiUrl ?? ''}/status`);
  console.log('(passwords and tokens hidden: tools/dev-cluster status --show-secrets prints them)');
}

/** libpq URL parameters of a TLS shard: the server checked against the shard CA and the host (the server takes hostssl only). */
function pgTlsParams(r: ClusterRecord): string {
  return r.tls === undefined ? '' : `?sslmode=verify-full&sslrootcert=${encodeURIComponent(r.tls.caFile)}`;
}

/** The superuser's password (a libpq password file) and the admin token, each in a file only its owner reads. */
function writeSecretFiles(dir: string, r: ClusterRecord): { pgpass: string; adminToken: string } {
  const pgpass = join(dir, 'pgpass');
  const adminToken = join(dir, 'admin-token');
  writeFileSync(pgpass, `*:*:*:postgres:${r.superuserPassword}\n`, { mode: 0o600 });
  chmodSync(pgpass, 0o600);
  writeFileSync(adminToken, `${r.adminToken}\n`, { mode: 0o600 });
  chmodSync(adminToken, 0o600);
  return { pgpass, adminToken };
}

async function stop(dir: string, id: string): Promise<void> {
  const r = mustRecord(dir);
  const peer = findPeer(r, id);
  const res = await stopPeer(r, peer);
  writeRecord(dir, r);
  if (res.sitter === null && !res.forced) say(`${id} was not running`);
  else say(`stopped ${id}${res.sitter === null ? '' : ` (sitter pid ${res.sitter})`}${res.forced ? ' with SIGKILL: it did not stop by itself' : ''}`);
}

async function start(dir: string, id: string): Promise<void> {
  const r = mustRecord(dir);
  const peer = findPeer(r, id);
  const s = startSitter(r, peer, launcher);
  writeRecord(dir, r);
  await waitForApi(r, peer, s, API_TIMEOUT_MS);
  say(`started ${id} (sitter pid ${s.pid}, log ${peer.logPath}); it rejoins the shard by itself (tools/dev-cluster status)`);
}

async function kill(dir: string, id: string): Promise<void> {
  const r = mustRecord(dir);
  const peer = findPeer(r, id);
  const k = await killPeer(r, peer);
  writeRecord(dir, r);
  if (k.sitter === null && k.postmaster === null) say(`${id} was not running`);
  else say(`killed ${id} with SIGKILL (sitter pid ${k.sitter ?? '-'}, postmaster pid ${k.postmaster ?? '-'})`);
}

/** A new peer: its configuration names every member; it joins Raft (add-peer), then starts. */
async function add(dir: string, requested: string | undefined): Promise<void> {
  const r = mustRecord(dir);
  if (r.peers.length >= PEERS_MAX) throw new DevClusterError('MANATEE_ERR_DEV_USAGE', `a dev shard has at most ${PEERS_MAX} peers`);
  const index = r.peers.length;
  const id = requested ?? `peer${index + 1}`;
  if (!PEER_ID_RE.test(id)) throw new DevClusterError('MANATEE_ERR_DEV_USAGE', `peer id ${JSON.stringify(id)}: expected 1-63 characters of [A-Za-z0-9_.-], starting with a letter or digit`);
  if (r.peers.some((p) => p.id === id)) throw new DevClusterError('MANATEE_ERR_DEV_USAGE', `${id} is already a peer of this dev shard (peer ids are never reused)`);
  const address = `${HOST}:${portsOf(r.portBase, index).raft}`;
  const members = [...r.peers.map((p) => ({ id: p.id, address: `${HOST}:${p.raftPort}` })), { id, address }];
  await issueFor(r, id);
  const peer = makePeer(r, dir, id, index, members);
  r.peers.push(peer);
  writeRecord(dir, r);
  const errors: string[] = [];
  let added = false;
  for (const p of r.peers.filter((x) => x.id !== id && running(r, x.id, 'sitter') !== null)) {
    try {
      const ca = caPemOf(r);
      const a = await httpJson(`${p.apiUrl}/admin/peers`, { method: 'POST', body: { id, address }, token: r.adminToken, timeoutMs: 40_000, ...(ca === undefined ? {} : { ca }) });
      if (a.status === 200) {
        added = true;
        say(`${(a.body as { summary: string }).summary} through ${p.id}`);
        break;
      }
      errors.push(`${p.id}: ${apiErrorText(a)}`);
      if (a.status < 500) break; // refused for a reason that another peer would give too
    } catch (err) {
      errors.push(`${p.id}: ${(err as Error).message}`);
    }
  }
  if (!added) throw new DevClusterError('MANATEE_ERR_DEV_ADD_FAILED', `could not add ${id} to the Raft group: ${errors.join('; ') || 'no peer runs'}`);
  const s = startSitter(r, peer, launcher);
  writeRecord(dir, r);
  await waitForApi(r, peer, s, API_TIMEOUT_MS);
  say(`started ${id} (sitter pid ${s.pid}, log ${peer.logPath}); the primary adds it to the async chain once it has its data`);
}

async function down(dir: string): Promise<void> {
  const r = readRecord(dir);
  if (r === null) {
    say(`nothing to stop in ${dir}`);
    return;
  }
  // Sitters first (SIGTERM: each stops its PostgreSQL), then whatever still runs, by SIGKILL.
  const sitters = r.processes.filter((p) => p.kind === 'sitter' && signalProcess(p, 'SIGTERM'));
  await waitGone(sitters, 30_000);
  for (const p of sitters) signalProcess(p, 'SIGKILL');
  await waitGone(sitters, 10_000);
  for (const peer of r.peers) postmasterOf(r, peer);
  const postmasters = r.processes.filter((p) => p.kind === 'postmaster' && signalProcess(p, 'SIGQUIT'));
  if (!(await waitGone(postmasters, 15_000))) for (const p of postmasters) signalProcess(p, 'SIGKILL');
  const left = r.processes.filter(isRunning);
  if (left.length > 0) {
    writeRecord(dir, r);
    throw new DevClusterError('MANATEE_ERR_DEV_STOP_FAILED', `still running after SIGKILL: ${left.map((p) => `${p.peer}'s ${p.kind} (pid ${p.pid})`).join(', ')}; ${dir} is kept`);
  }
  if (r.zfs !== undefined) {
    try {
      execFileSync('zpool', ['destroy', '-f', r.zfs.pool], { stdio: 'inherit' });
    } catch (err) {
      console.error(`dev-cluster: zpool destroy ${r.zfs.pool} failed: ${(err as Error).message}`);
    }
    if (r.zfs.startedDaemon !== null) signalProcess(r.zfs.startedDaemon, 'SIGTERM');
  }
  rmSync(dir, { recursive: true, force: true });
  say(`stopped ${sitters.length} sitters and removed ${dir}`);
}

function program(): Command {
  const p = new Command('dev-cluster')
    .description('The local development shard: three peers on this machine, ports 10 apart')
    .option('--dir <path>', 'where the shard lives (env MANATEE_DEV_DIR, default .dev-cluster in the checkout)')
    .option('--port-base <port>', `PostgreSQL port of peer1 for up; peer i uses base+10i, API +1, Raft +2 (env MANATEE_DEV_PORT_BASE, default ${DEFAULT_PORT_BASE})`)
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({ outputError: () => undefined });
  const g = (cmd: Command): Globals => cmd.optsWithGlobals<Globals>();
  p.command('up').description('start three peers and wait for a writable primary (TLS everywhere: a shard CA and a certificate per peer in <dir>/certs)')
    .option('--zfs', "each peer's data on a dataset of a file-backed zfs-fuse pool")
    .option('--no-tls', 'plain TCP everywhere: no CA, no certificates, http:// APIs')
    .action(async (o: { zfs?: boolean; tls: boolean }, cmd: Command) => { await up(clusterDir(g(cmd)), portBase(g(cmd)), o.zfs === true, o.tls); });
  p.command('status').description("each peer's role, PostgreSQL, pids and API").option('--json', 'as JSON')
    .option('--show-secrets', 'print the superuser password and the admin token (by default they stay in files)')
    .action(async (o: { json?: boolean; showSecrets?: boolean }, cmd: Command) => { await status(clusterDir(g(cmd)), o.json === true, o.showSecrets === true); });
  p.command('stop').argument('<peer>').description('SIGTERM to the sitter: it stops its PostgreSQL and leaves (its session ends)')
    .action(async (id: string, _o: unknown, cmd: Command) => { await stop(clusterDir(g(cmd)), id); });
  p.command('start').argument('<peer>').description('start the sitter of a stopped or killed peer again')
    .action(async (id: string, _o: unknown, cmd: Command) => { await start(clusterDir(g(cmd)), id); });
  p.command('kill').argument('<peer>').description('SIGKILL of the sitter and its postmaster at once (a machine that loses power)')
    .action(async (id: string, _o: unknown, cmd: Command) => { await kill(clusterDir(g(cmd)), id); });
  p.command('restart').argument('<peer>').description('stop, then start')
    .action(async (id: string, _o: unknown, cmd: Command) => { await stop(clusterDir(g(cmd)), id); await start(clusterDir(g(cmd)), id); });
  p.command('add').argument('[peer]', 'its id (default peer<N+1>)').description('a new peer: joined to the Raft group (as manatee-adm add-peer), then started')
    .action(async (id: string | undefined, _o: unknown, cmd: Command) => { await add(clusterDir(g(cmd)), id); });
  p.command('down').description('stop every process it started (restarted and added peers too) and remove the directory')
    .action(async (_o: unknown, cmd: Command) => { await down(clusterDir(g(cmd))); });
  return p;
}

async function main(): Promise<void> {
  try {
    await program().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return;
      console.error(`dev-cluster: MANATEE_ERR_DEV_USAGE: ${err.message.replace(/^error: /, '')} (tools/dev-cluster --help)`);
      process.exitCode = 2;
      return;
    }
    const code = err instanceof ManateeError ? err.code : 'MANATEE_ERR_INTERNAL';
    console.error(`dev-cluster: ${code}: ${errorMessage(err)}`);
    process.exitCode = 1;
  }
}

await main();
