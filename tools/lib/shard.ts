// A shard of real `manatee-sitter` processes on 127.0.0.1 for integration tests and benchmarks:
// N peers with ephemeral ports (freePort), each with its own config file, data directory and log
// in one temporary directory. Helpers read each peer's GET /status, wait for topologies, kill
// parts of a peer with SIGKILL (sitter, PostgreSQL, or both), restart a peer, call the admin
// API, and run a writer that records the rows whose commit was acknowledged.
// teardown() stops every process this fixture started (by pid: sitters, and the postmasters they
// started, which outlive a SIGKILLed sitter) and removes the temporary directory, even after a
// failed test.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, writeFile, chmod, readFile, rm } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CA_CERT_FILE, initCa, issuePeerCertificate, peerCertFile, peerKeyFile } from '../../src/tls/index.js';
import pg from 'pg';
import { execa } from 'execa';
import type { SitterStatus, ClusterState } from '../../src/model/index.js';
import { makeTmpDir } from './tmp.js';
import { freePort } from './wait.js';
import { pidAlive } from './pid-alive.js';
import { findPostmaster } from './processes.js';
import { sitterBundle } from './sitter-bundle.js';
import { asError } from '../../src/errors.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The compiled sitter (`npm run build`), as a deployment runs it. */
export const DIST_SITTER_SCRIPT = join(repoRoot, 'dist/src/cli/manatee-sitter.js');

export interface ShardTimeouts {
  sessionTimeoutMs: number;
  keepaliveIntervalMs: number;
  pgHealthIntervalMs: number;
  pgHealthTimeoutMs: number;
  pgUnhealthyTimeoutMs: number;
  pgStartTimeoutMs: number;
}

export interface ShardRaft {
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
}

export interface ShardOptions {
  /** Number of peers (default 3). */
  readonly peers?: number;
  readonly backend?: 'basebackup' | 'zfs';
  /** With backend zfs: the pool; each peer gets the dataset `<pool>/manatee/<peer>`. */
  readonly zfsPool?: string;
  /** Overrides of the sitter's timeouts (defaults: the sitter's own, unless given). */
  readonly timeouts?: Partial<ShardTimeouts>;
  readonly raft?: Partial<ShardRaft>;
  /** Prefix of the temp directory and of the peer ids. */
  readonly prefix?: string;
  /** Start the sitters at once (default true). */
  readonly start?: boolean;
  readonly logLevel?: 'debug' | 'info' | 'warn';
  /**
   * TLS everywhere (API, Raft, PostgreSQL): a shard CA and a certificate per peer, made with
   * src/tls as `manatee-adm certs` makes them, in `<dir>/certs`. Default true, as a real shard
   * runs; false only for a test of the plain path itself (say why where it is set).
   */
  readonly tls?: boolean;
  /** More fields of a peer's configuration file, by its index (0-based), e.g. `tags`. */
  readonly peerConfig?: (index: number) => Readonly<Record<string, unknown>>;
  /**
   * Run the compiled sitter (dist/, from `npm run build`) instead of the bundle of src/
   * (tools/lib/sitter-bundle.ts). Default false.
   */
  readonly dist?: boolean;
}

export interface ShardPeer {
  readonly id: string;
  readonly index: number;
  readonly pgPort: number;
  readonly apiPort: number;
  readonly raftPort: number;
  readonly dataDir: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly apiUrl: string;
  /** The running sitter process, or null when it is not running (killed, exited, or not started). */
  child: ChildProcess | null;
}

export const SHARD_SUPERUSER_PASSWORD = 'shard-superuser-pw';

/** Whether pid is a PostgreSQL process (guards against a recycled pid before a kill). */
function isPostgres(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /postgres/.test(cmd);
  } catch {
    return false;
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function waitGone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(pidAlive)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/**
 * The sitters running in this process's shards. They run in sessions of their own (startSitter), so
 * a terminal's Ctrl-C or a worker ended by the test runner no longer reaches them through the
 * process group: the first start installs handlers that send each one SIGTERM (it then stops its
 * PostgreSQL) when this process exits or is told to stop.
 */
const liveSitters = new Set<number>();
let exitHandlersInstalled = false;

function stopLiveSitters(): void {
  for (const pid of liveSitters) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone meanwhile
    }
  }
  liveSitters.clear();
}

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  process.on('exit', stopLiveSitters);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      stopLiveSitters();
      // The signal's own effect, unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

/** CA certificates (PEM) of the TLS shards, by API origin: httpJson checks an https peer with its shard's CA. */
const trustedCas = new Map<string, string>();

/**
 * A raw request to a peer's API (for a test that reads headers or a stream): node:http, or
 * node:https checked against the shard CA of a TLS shard's peer. The caller ends it.
 */
export function apiRequest(url: string, opts: RequestOptions, onResponse: (res: IncomingMessage) => void): ClientRequest {
  const u = new URL(url);
  if (u.protocol !== 'https:') return request(u, opts, onResponse);
  const ca = trustedCas.get(u.origin);
  return httpsRequest(u, ca === undefined ? opts : { ...opts, ca }, onResponse);
}

/** One HTTP call to a peer's API; node:http (fetch refuses some ports). Rejects on any failure. */
export function httpJson(
  url: string,
  opts: { method?: string; body?: unknown; token?: string; timeoutMs?: number; /** The CA (PEM) an https peer is checked against; default: its Shard's. */ ca?: string } = {},
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolvePromise, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = {};
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
    const u = new URL(url);
    const ca = opts.ca ?? trustedCas.get(u.origin);
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolvePromise({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    };
    const reqOpts = { method: opts.method ?? 'GET', headers, timeout: opts.timeoutMs ?? 3000 };
    const req = u.protocol === 'https:' ? httpsRequest(u, { ...reqOpts, ...(ca !== undefined ? { ca } : {}) }, onResponse) : request(u, reqOpts, onResponse);
    req.on('timeout', () => req.destroy(new Error(`timeout calling ${url}`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export class Shard {
  readonly dir: string;
  readonly peers: ShardPeer[];
  readonly secret = randomBytes(16).toString('hex');
  readonly adminToken = randomBytes(16).toString('hex');
  readonly timeouts: ShardTimeouts;
  readonly raft: ShardRaft;
  private readonly cleanupDir: () => Promise<void>;
  /** Every postmaster pid seen: teardown stops those still running. */
  private readonly postgresPids = new Set<number>();
  private readonly writers: Writer[] = [];
  private tornDown = false;
  /** Sitters that exited by themselves (not killed by this fixture). */
  readonly crashes: string[] = [];
  private readonly stoppingPeers = new Set<string>();
  /** The shard CA's certificate (PEM) when the shard runs with TLS; its directory holds the peers' files too. */
  caPem: string | null = null;
  certsDir: string | null = null;

  /** The shard CA's certificate file (for MANATEE_CA, sslrootcert), or null without TLS. */
  get caFile(): string | null {
    return this.certsDir === null ? null : join(this.certsDir, CA_CERT_FILE);
  }

  /**
   * The environment that lets a process started by a test (manatee-adm, psql) check this shard's
   * peers: MANATEE_CA, and libpq's PGSSLMODE=verify-full with PGSSLROOTCERT. Empty without TLS.
   */
  tlsEnv(): Record<string, string> {
    const ca = this.caFile;
    return ca === null ? {} : { MANATEE_CA: ca, PGSSLMODE: 'verify-full', PGSSLROOTCERT: ca };
  }

  /**
   * A libpq URL of `peer`'s PostgreSQL for `user` (no password: give it apart), with
   * sslmode=verify-full against the shard CA when the shard runs with TLS.
   */
  pgUrl(peer: ShardPeer, user = 'postgres'): string {
    const ca = this.caFile;
    const tls = ca === null ? '' : `?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`;
    return `postgres://${user}@127.0.0.1:${peer.pgPort}/postgres${tls}`;
  }
  /** Data directories are zfs-fuse mounts: never read them synchronously (a hung mount would freeze the worker). */
  private dataOnZfs = false;
  /** The script the sitters run: the bundle of src/ (sitter-bundle.ts), or dist/'s (ShardOptions.dist). */
  private sitterScript = DIST_SITTER_SCRIPT;

  private constructor(dir: string, cleanup: () => Promise<void>, peers: ShardPeer[], timeouts: ShardTimeouts, raft: ShardRaft) {
    this.dir = dir;
    this.cleanupDir = cleanup;
    this.peers = peers;
    this.timeouts = timeouts;
    this.raft = raft;
  }

  static async create(opts: ShardOptions = {}): Promise<Shard> {
    const n = opts.peers ?? 3;
    const tls = opts.tls ?? true;
    const tmp = await makeTmpDir(opts.prefix ?? 'shard');
    const timeouts: ShardTimeouts = {
      sessionTimeoutMs: 2000,
      keepaliveIntervalMs: 400,
      pgHealthIntervalMs: 1000,
      pgHealthTimeoutMs: 3000,
      pgUnhealthyTimeoutMs: 15_000,
      pgStartTimeoutMs: 120_000,
      ...opts.timeouts,
    };
    const raft: ShardRaft = { tickMs: 50, electionTicks: 10, heartbeatTicks: 1, ...opts.raft };
    const peers: ShardPeer[] = [];
    const used = new Set<number>();
    const port = async (): Promise<number> => {
      for (;;) {
        const p = await freePort();
        if (!used.has(p)) {
          used.add(p);
          return p;
        }
      }
    };
    for (let i = 0; i < n; i++) {
      const id = `${opts.prefix ?? 'p'}${i + 1}`;
      const dataDir = join(tmp.path, id);
      peers.push({
        id,
        index: i,
        pgPort: await port(),
        apiPort: await port(),
        raftPort: await port(),
        dataDir,
        configPath: join(tmp.path, `${id}.json`),
        logPath: join(tmp.path, `${id}.log`),
        apiUrl: '',
        child: null,
      });
    }
    for (const p of peers) (p as { apiUrl: string }).apiUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${p.apiPort}`;
    const shard = new Shard(tmp.path, tmp.cleanup, peers, timeouts, raft);
    shard.dataOnZfs = opts.backend === 'zfs';
    if (opts.dist === true) {
      if (!existsSync(DIST_SITTER_SCRIPT)) {
        await tmp.cleanup();
        throw new Error(`${DIST_SITTER_SCRIPT} does not exist: run \`npm run build\` first`);
      }
    }
    try {
      // Not through tsx: it compiles every module at each start, seconds of CPU that a restarted
      // sitter spends before its first keepalive (sitter-bundle.ts).
      if (opts.dist !== true) shard.sitterScript = await sitterBundle();
      if (tls) {
        const certsDir = join(tmp.path, 'certs');
        await initCa({ dir: certsDir, name: 'Test shard CA' });
        for (const p of peers) await issuePeerCertificate({ dir: certsDir, peerId: p.id, hosts: ['127.0.0.1', 'localhost'] });
        shard.certsDir = certsDir;
        shard.caPem = await readFile(join(certsDir, CA_CERT_FILE), 'utf8');
        for (const p of peers) trustedCas.set(new URL(p.apiUrl).origin, shard.caPem);
      }
      const members = peers.map((p) => ({ id: p.id, address: `127.0.0.1:${p.raftPort}` }));
      for (const p of peers) {
        await mkdir(p.dataDir, { recursive: true });
        await chmod(p.dataDir, 0o755);
        const config = {
          peerId: p.id,
          host: '127.0.0.1',
          dataDir: p.dataDir,
          backend: opts.backend ?? 'basebackup',
          postgres: { port: p.pgPort, superuserPassword: SHARD_SUPERUSER_PASSWORD },
          ...(opts.backend === 'zfs'
            ? { zfs: { dataset: `${opts.zfsPool ?? 'missing-pool'}/manatee/${p.id}`, snapshotIntervalMs: 600_000, snapshotRetention: 5 } }
            : {}),
          api: { port: p.apiPort, listen: '127.0.0.1' },
          raft: { port: p.raftPort, listen: '127.0.0.1', members, ...raft },
          timeouts,
          secret: shard.secret,
          adminToken: shard.adminToken,
          ...(shard.certsDir !== null
            ? { tls: { caFile: join(shard.certsDir, CA_CERT_FILE), certFile: peerCertFile(shard.certsDir, p.id), keyFile: peerKeyFile(shard.certsDir, p.id) } }
            : {}),
          log: { level: opts.logLevel ?? 'info' },
          ...opts.peerConfig?.(p.index),
        };
        await writeFile(p.configPath, JSON.stringify(config, null, 2));
        await chmod(p.configPath, 0o600);
      }
      if (opts.start ?? true) for (const p of peers) shard.startSitter(p);
    } catch (err) {
      await shard.teardown();
      throw err;
    }
    return shard;
  }

  peer(id: string): ShardPeer {
    const p = this.peers.find((x) => x.id === id);
    if (p === undefined) throw new Error(`no peer ${id} in this shard`);
    return p;
  }

  // ------------------------------------------------------------ processes

  /** Starts the sitter of `peer` (its log is appended to peer.logPath). */
  startSitter(peer: ShardPeer): ChildProcess {
    if (this.tornDown) throw new Error('the shard was torn down');
    if (peer.child !== null && peer.child.exitCode === null && peer.child.signalCode === null) {
      throw new Error(`the sitter of ${peer.id} is already running (pid ${peer.child.pid ?? '?'})`);
    }
    const log = openSync(peer.logPath, 'a');
    // In a session of its own (setsid), as a service manager starts a deployed sitter. With the
    // kernel's autogroup scheduling (sched_autogroup_enabled, on here) CPU time is shared between
    // sessions first: in the test runner's session every sitter of every shard shared one slice with
    // the vitest workers and the manatee-adm processes, against one slice for each PostgreSQL process
    // (each calls setsid), and at load 30-40 a sitter waited up to 9.6 s for a CPU (its logged
    // loop-stall lines): 3.8x the lateness of sitters in sessions of their own in the same run.
    const child = spawn(process.execPath, [this.sitterScript, '-f', peer.configPath], {
      cwd: repoRoot,
      stdio: ['ignore', log, log],
      env: { ...process.env, NODE_OPTIONS: '' },
      detached: true,
    });
    closeSync(log);
    installExitHandlers();
    const pid = child.pid;
    if (pid !== undefined) liveSitters.add(pid);
    child.on('exit', (code, signal) => {
      if (pid !== undefined) liveSitters.delete(pid);
      if (peer.child === child) peer.child = null;
      // Our kills are SIGKILL/SIGTERM; any other end (a crash at start-up) fails the next wait at once.
      if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && !(code === 0 && this.stoppingPeers.has(peer.id))) {
        this.crashes.push(`the sitter of ${peer.id} (pid ${child.pid ?? '?'}) exited with ${signal ?? `code ${code ?? '?'}`}; see ${peer.logPath}`);
      }
    });
    peer.child = child;
    return child;
  }

  sitterPid(peer: ShardPeer): number | null {
    const c = peer.child;
    return c !== null && c.pid !== undefined && c.exitCode === null && c.signalCode === null ? c.pid : null;
  }

  /** The postmaster's pid: from the peer's postmaster.pid (fresh), else null. */
  postgresPid(peer: ShardPeer): number | null {
    const file = join(peer.dataDir, 'pgdata', 'postmaster.pid');
    if (this.dataOnZfs) {
      // From /proc, not from the zfs mount: the postmaster runs as `postgres -D <pgdata>`.
      const pid = findPostmaster(join(peer.dataDir, 'pgdata'))?.pid ?? null;
      if (pid !== null) this.postgresPids.add(pid);
      return pid;
    }
    if (!existsSync(file)) return null;
    try {
      const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid) && isPostgres(pid)) {
        this.postgresPids.add(pid);
        return pid;
      }
    } catch {
      // being rewritten: no pid now
    }
    return null;
  }

  /** SIGKILL of the sitter only (its PostgreSQL keeps running). Resolves once it is gone. */
  async killSitter(peer: ShardPeer): Promise<void> {
    const child = peer.child;
    const pid = this.sitterPid(peer);
    if (child === null || pid === null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => { r(); }));
    process.kill(pid, 'SIGKILL');
    await exited;
    peer.child = null;
  }

  /** SIGKILL of the postmaster only. Returns the pid killed (null when none ran). */
  async killPostgres(peer: ShardPeer, knownPid?: number | null): Promise<number | null> {
    const pid = knownPid ?? this.postgresPid(peer);
    if (pid === null || !pidAlive(pid) || !isPostgres(pid)) return null;
    process.kill(pid, 'SIGKILL');
    await waitGone([pid], 10_000);
    return pid;
  }

  /**
   * SIGKILL of the whole peer: the sitter and its PostgreSQL, as close together as possible
   * (the postmaster's pid is read first, so that both signals leave back to back).
   */
  async killPeer(peer: ShardPeer): Promise<{ atMs: number; sitterPid: number | null; postgresPid: number | null }> {
    const pgPid = this.postgresPid(peer);
    const sitterPid = this.sitterPid(peer);
    const child = peer.child;
    const exited = child !== null && sitterPid !== null ? new Promise<void>((r) => child.once('exit', () => { r(); })) : Promise.resolve();
    const atMs = Date.now();
    if (sitterPid !== null) process.kill(sitterPid, 'SIGKILL');
    if (pgPid !== null) process.kill(pgPid, 'SIGKILL');
    await exited;
    peer.child = null;
    if (pgPid !== null) await waitGone([pgPid], 10_000);
    // Backends of a killed postmaster exit by themselves once they notice; wait for the port's holders.
    return { atMs, sitterPid, postgresPid: pgPid };
  }

  /** Starts a killed peer again (its PostgreSQL is started by its sitter). */
  restartPeer(peer: ShardPeer): ChildProcess {
    return this.startSitter(peer);
  }

  /** SIGTERM to the sitter (it stops its PostgreSQL), SIGKILL after `timeoutMs`. */
  async stopPeer(peer: ShardPeer, timeoutMs = 30_000): Promise<void> {
    const child = peer.child;
    const pid = this.sitterPid(peer);
    if (child === null || pid === null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => { r(); }));
    this.stoppingPeers.add(peer.id);
    process.kill(pid, 'SIGTERM');
    const done = await Promise.race([exited.then(() => true), sleep(timeoutMs).then(() => false)]);
    if (!done) {
      process.kill(pid, 'SIGKILL');
      await exited;
    }
    peer.child = null;
  }

  // ------------------------------------------------------------ status and waits

  async statusOf(peer: ShardPeer): Promise<SitterStatus | null> {
    try {
      const r = await httpJson(`${peer.apiUrl}/status`, { timeoutMs: 3000 });
      if (r.status !== 200) return null;
      const s = r.body as SitterStatus;
      if (s.postgresPid !== null) this.postgresPids.add(s.postgresPid);
      return s;
    } catch {
      return null;
    }
  }

  /** The committed cluster state as `peer` reports it; throws when it answers none. */
  async stateOf(peer: ShardPeer): Promise<ClusterState> {
    const s = await this.statusOf(peer);
    if (s?.state === null || s?.state === undefined) throw new Error(`${peer.id} has no state`);
    return s.state;
  }

  async statuses(): Promise<Map<string, SitterStatus | null>> {
    const all = await Promise.all(this.peers.map(async (p) => [p.id, await this.statusOf(p)] as const));
    return new Map(all);
  }

  /** A one-line summary of the shard, for failure messages and progress logs. */
  async describe(): Promise<string> {
    const st = await this.statuses();
    return this.peers
      .map((p) => {
        const s = st.get(p.id) ?? null;
        if (s === null) return `${p.id}=${this.sitterPid(p) === null ? 'down' : 'no-api'}`;
        return `${p.id}=${s.role}${s.postgres.online ? '' : '(pg-off)'}${s.postgres.writable ? '(w)' : ''}@g${s.state?.generation ?? '-'}:${s.lastDecision?.kind ?? '-'}`;
      })
      .join(' ');
  }

  /** Waits until some peer is a primary whose PostgreSQL accepts writes; returns it and its status. */
  async waitForPrimaryWritable(opts: { timeoutMs?: number; not?: string } = {}): Promise<{ peer: ShardPeer; status: SitterStatus }> {
    return this.waitFor('a writable primary', async () => {
      for (const p of this.peers) {
        if (p.id === opts.not) continue;
        const s = await this.statusOf(p);
        if (s !== null && s.role === 'primary' && s.postgres.writable && s.state?.primary.id === p.id) return { peer: p, status: s };
      }
      return null;
    }, opts.timeoutMs ?? 120_000);
  }

  /** Runs the manatee-adm CLI (a real process) against the peer API at `url`, with this shard's admin token. */
  async adm(args: readonly string[], url: string, env: Readonly<Record<string, string>> = {}): Promise<{ code: number | undefined; stdout: string; stderr: string }> {
    const r = await execa('node', ['--import', 'tsx', 'src/cli/manatee-adm.ts', ...args], {
      cwd: repoRoot,
      reject: false,
      timeout: 60_000,
      // With TLS, manatee-adm checks the peers against the shard CA (MANATEE_CA), as an operator's does.
      env: { MANATEE_URL: url, MANATEE_ADMIN_TOKEN: this.adminToken, ...this.tlsEnv(), ...env },
    });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * Waits for the first peer to see a chain of a primary, a sync and one async, and for that
   * topology to be in place (every PostgreSQL online); returns the three peers by role.
   */
  async waitForChain(timeoutMs = 180_000): Promise<{ primary: ShardPeer; sync: ShardPeer; async0: ShardPeer }> {
    const first = this.peers[0];
    if (first === undefined) throw new Error('the shard has no peers');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await this.waitFor('a three-peer chain', async () => {
        const s = await this.statusOf(first);
        return s?.state !== null && s?.state !== undefined && s.state.sync !== null && s.state.async.length === 1 ? s.state : null;
      }, Math.max(1000, deadline - Date.now()));
      const chain = { primary: this.peer(st.primary.id), sync: this.peer(st.sync?.id ?? ''), async0: this.peer(st.async[0]?.id ?? '') };
      // The chain may still change while the shard settles (a sitter slow to start on a loaded
      // machine loses its session, and the primary replaces its sync): wait for this one a while,
      // then read the chain again.
      const roundMs = Math.min(30_000, deadline - Date.now());
      try {
        await this.waitForTopology({ primary: chain.primary.id, sync: chain.sync.id, async: [chain.async0.id] }, Math.max(1000, roundMs));
        return chain;
      } catch (err) {
        if (Date.now() >= deadline || this.crashes.length > 0) throw err;
      }
    }
  }

  /**
   * Waits until the committed state (as `via` sees it, or any peer) has this primary, sync and
   * asyncs (in order; `async` undefined: not checked), and every named peer's PostgreSQL is online.
   */
  async waitForTopology(
    want: { primary: string; sync: string | null; async?: readonly string[]; deposed?: readonly string[] },
    timeoutMs = 120_000,
  ): Promise<SitterStatus> {
    const what = `topology primary=${want.primary} sync=${want.sync ?? '-'} async=[${(want.async ?? ['?']).join(',')}]`;
    return this.waitFor(what, async () => {
      const ps = await this.statusOf(this.peer(want.primary));
      const st = ps?.state;
      if (ps === null || st === null || st === undefined) return null;
      if (st.primary.id !== want.primary || (st.sync?.id ?? null) !== want.sync) return null;
      if (want.async !== undefined && st.async.map((a) => a.id).join(',') !== want.async.join(',')) return null;
      if (want.deposed !== undefined && st.deposed.map((a) => a.id).join(',') !== want.deposed.join(',')) return null;
      if (!ps.postgres.writable) return null;
      // The sync streams to the primary with sync_state 'sync'.
      if (want.sync !== null && !ps.replication.some((r) => r.applicationName === want.sync && r.state === 'streaming' && r.syncState === 'sync')) return null;
      // Each async streams from its upstream.
      for (const [i, a] of (want.async ?? []).entries()) {
        const upstreamId = i === 0 ? (want.sync ?? want.primary) : want.async?.[i - 1];
        if (upstreamId === undefined) return null;
        // Read on PostgreSQL: a standby's /status carries no replication rows.
        const rows = await this.query<{ application_name: string; state: string }>(this.peer(upstreamId), 'SELECT application_name, state FROM pg_stat_replication');
        if (!rows.some((r) => r.application_name === a && r.state === 'streaming')) return null;
        const as = await this.statusOf(this.peer(a));
        if (as === null || as.role !== 'async' || !as.postgres.online) return null;
      }
      return ps;
    }, timeoutMs);
  }

  /**
   * waitFor with the shard's state in the timeout message, which also fails at once when a
   * sitter exited by itself (a crash would otherwise look like a slow shard until the deadline).
   */
  async waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 120_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    for (;;) {
      if (this.crashes.length > 0) throw new Error(`while waiting for ${what}: ${this.crashes.join('; ')}`);
      try {
        const v = await probe();
        if (v !== undefined && v !== null && v !== false) return v;
      } catch (err) {
        lastError = `; last error: ${(err as Error).message}`;
      }
      if (Date.now() > deadline) {
        const d = await this.describe().catch(() => '?');
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError}; shard: ${d}; logs in ${this.dir}`);
      }
      await sleep(200);
    }
  }

  /** POST /admin/<op> on `peer` with the admin token. */
  async admin(peer: ShardPeer, op: string, body: unknown = {}): Promise<{ status: number; body: unknown }> {
    return httpJson(`${peer.apiUrl}/admin/${op}`, { method: 'POST', body, token: this.adminToken, timeoutMs: 10_000 });
  }

  /** A superuser client on `peer`'s PostgreSQL over TCP. Caller ends it. */
  async client(peer: ShardPeer, timeoutMs = 5000, queryTimeoutMs = timeoutMs * 2): Promise<pg.Client> {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: peer.pgPort,
      user: 'postgres',
      password: SHARD_SUPERUSER_PASSWORD,
      database: 'postgres',
      connectionTimeoutMillis: timeoutMs,
      query_timeout: queryTimeoutMs,
      // With TLS the server takes hostssl connections only, and is checked against the shard CA.
      ...(this.caPem !== null ? { ssl: { ca: this.caPem, rejectUnauthorized: true } } : {}),
    });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  }

  async query<R extends pg.QueryResultRow>(peer: ShardPeer, sql: string, params: unknown[] = []): Promise<R[]> {
    const c = await this.client(peer);
    try {
      return (await c.query<R>(sql, params)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /** Lines of a peer's sitter log (pino JSON) that parse, newest last. */
  async logLines(peer: ShardPeer): Promise<Record<string, unknown>[]> {
    const text = await readFile(peer.logPath, 'utf8').catch(() => '');
    const out: Record<string, unknown>[] = [];
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a partial last line
      }
    }
    return out;
  }

  writer(opts: { intervalMs?: number; table?: string } = {}): Writer {
    const w = new Writer(this, opts.intervalMs ?? 5, opts.table ?? 'acked');
    this.writers.push(w);
    return w;
  }

  /** Pids of processes (other than this one) whose working directory or command line is in this shard's directory. */
  private processesInDir(): number[] {
    const pids: number[] = [];
    let entries: string[] = [];
    try {
      entries = readdirSync('/proc');
    } catch {
      return pids;
    }
    for (const e of entries) {
      if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
      try {
        const cwd = readlinkSync(`/proc/${e}/cwd`);
        const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
        if ((cwd === this.dir || cwd.startsWith(`${this.dir}/`) || cmd.includes(`${this.dir}/`)) && pidAlive(Number(e))) pids.push(Number(e));
      } catch {
        // gone, or not readable
      }
    }
    return pids;
  }

  /**
   * Stops every writer and process this fixture started, and removes the temp directory.
   * `beforeRemove` runs once nothing runs any more and before the directory goes: a zfs test
   * destroys its pool there, since the peers' datasets are mounted inside the directory.
   */
  async teardown(opts: { keepDir?: boolean; beforeRemove?: () => Promise<void> } = {}): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    for (const w of this.writers) await w.stop().catch(() => undefined);
    for (const p of this.peers) this.postgresPid(p);
    // SIGKILL: a test shard's data is thrown away, so no clean shutdown is owed to anyone.
    const sitters: number[] = [];
    for (const p of this.peers) {
      const pid = this.sitterPid(p);
      if (pid !== null) {
        sitters.push(pid);
        process.kill(pid, 'SIGKILL');
      }
    }
    await waitGone(sitters, 10_000);
    const pgs = [...this.postgresPids].filter((pid) => pidAlive(pid) && isPostgres(pid));
    for (const pid of pgs) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await waitGone(pgs, 10_000);
    // Then whatever else still runs in or on this shard's directory: a postmaster started between
    // the reads above and the sitters' end, backends of a killed postmaster, pg_basebackup or
    // pg_rewind children (they run in their own process groups and outlive a SIGKILLed sitter).
    // The directory is unique to this fixture, so these processes are its own.
    for (let attempt = 0; attempt < 50; attempt++) {
      const left = this.processesInDir();
      if (left.length === 0) break;
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await sleep(200);
    }
    let beforeRemoveError: Error | null = null;
    if (opts.beforeRemove !== undefined) {
      try {
        await opts.beforeRemove();
      } catch (err) {
        beforeRemoveError = asError(err);
      }
    }
    // MANATEE_KEEP_SHARD=1 keeps the directory (logs, data) for a post-mortem; a failed test sets it
    // (test/helpers/keep-on-failure.ts).
    if (process.env['MANATEE_KEEP_SHARD'] === '1') process.stderr.write(`shard: kept ${this.dir} for a post-mortem\n`);
    if (opts.keepDir !== true && process.env['MANATEE_KEEP_SHARD'] !== '1') {
      await this.cleanupDir().catch(async () => {
        await sleep(1000);
        await rm(this.dir, { recursive: true, force: true });
      });
    }
    if (beforeRemoveError !== null) throw beforeRemoveError;
  }
}

/** A row writer: one INSERT per commit, through whichever peer is the writable primary. */
export class Writer {
  /** ids whose COMMIT returned success, with the time of the acknowledgement. */
  readonly acked: { id: number; atMs: number; peer: string }[] = [];
  readonly errors: string[] = [];
  private nextId = 1;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private client: pg.Client | null = null;
  private clientPeer: string | null = null;

  constructor(
    private readonly shard: Shard,
    private readonly intervalMs: number,
    readonly table: string,
  ) {}

  get lastAck(): { id: number; atMs: number; peer: string } | undefined {
    return this.acked[this.acked.length - 1];
  }

  /** Creates the table on the current primary and starts writing. */
  async start(): Promise<void> {
    const { peer } = await this.shard.waitForPrimaryWritable();
    await this.shard.query(peer, `CREATE TABLE IF NOT EXISTS ${this.table} (id bigint PRIMARY KEY, peer text NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
    this.running = true;
    this.loopDone = this.loop();
  }

  /** The first acknowledgement at or after `sinceMs`. */
  firstAckAfter(sinceMs: number): { id: number; atMs: number; peer: string } | undefined {
    return this.acked.find((a) => a.atMs >= sinceMs);
  }

  async waitForAckAfter(sinceMs: number, timeoutMs = 120_000, onPeer?: string): Promise<{ id: number; atMs: number; peer: string }> {
    return this.shard.waitFor(`a commit acknowledged after ${new Date(sinceMs).toISOString()}${onPeer !== undefined ? ` on ${onPeer}` : ''}`, () => {
      const a = this.acked.find((x) => x.atMs >= sinceMs && (onPeer === undefined || x.peer === onPeer));
      return Promise.resolve(a ?? null);
    }, timeoutMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loopDone;
    await this.dropClient();
  }

  /** Ids of acknowledged rows missing on `peer` (which must be readable: a primary or a standby). */
  async missingOn(peer: ShardPeer): Promise<number[]> {
    // The acknowledgements known before the query: a row acknowledged while the SELECT runs may
    // be newer than its snapshot.
    const acked = [...this.acked];
    const rows = await this.shard.query<{ id: string }>(peer, `SELECT id FROM ${this.table}`);
    const found = new Set(rows.map((r) => Number(r.id)));
    return acked.filter((a) => !found.has(a.id)).map((a) => a.id);
  }

  /**
   * Waits until every row acknowledged so far is on `peer` (a standby replays them): proves that
   * replication to it works end to end, which a 'streaming' row alone does not.
   */
  async waitReplicatedTo(peer: ShardPeer, timeoutMs = 60_000): Promise<void> {
    const want = new Set(this.acked.map((a) => a.id));
    await this.shard.waitFor(`${peer.id} to replay the ${want.size} rows acknowledged so far`, async () => {
      const missing = await this.missingOn(peer);
      return !missing.some((id) => want.has(id));
    }, timeoutMs);
  }

  async countOn(peer: ShardPeer): Promise<number> {
    const rows = await this.shard.query<{ n: string }>(peer, `SELECT count(*) AS n FROM ${this.table}`);
    return Number(rows[0]?.n ?? 0);
  }

  private async dropClient(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.clientPeer = null;
    if (c !== null) await c.end().catch(() => undefined);
  }

  /**
   * The primary of the newest committed state any peer reports (not its `writable` flag, which
   * the sitter refreshes on a health-check interval): the writer then learns from PostgreSQL
   * itself when writes are enabled, so the times it measures are PostgreSQL's.
   */
  private async findPrimary(): Promise<ShardPeer | null> {
    const all = await this.shard.statuses();
    let best: { version: number; id: string } | null = null;
    for (const s of all.values()) {
      if (s?.state === null || s?.state === undefined) continue;
      if (best === null || s.stateVersion > best.version) best = { version: s.stateVersion, id: s.state.primary.id };
    }
    return best === null ? null : (this.shard.peers.find((p) => p.id === best.id) ?? null);
  }

  private async loop(): Promise<void> {
    let lastLookupMs = 0;
    while (this.running) {
      try {
        if (this.client === null) {
          const p = await this.findPrimary();
          lastLookupMs = Date.now();
          if (p === null) {
            await sleep(50);
            continue;
          }
          this.client = await this.shard.client(p, 2000, 30_000);
          this.clientPeer = p.id;
        }
        const id = this.nextId++;
        const peer = this.clientPeer ?? '?';
        await this.client.query(`INSERT INTO ${this.table} (id, peer) VALUES ($1, $2)`, [id, peer]);
        this.acked.push({ id, atMs: Date.now(), peer });
        if (this.intervalMs > 0) await sleep(this.intervalMs);
      } catch (err) {
        const msg = (err as Error).message;
        if (this.errors.length < 1000) this.errors.push(msg);
        // Read-only (writes not enabled yet): keep the connection while the state still names
        // this peer as primary, and look again at most every 200 ms.
        const readOnly = (err as { code?: string }).code === '25006';
        if (readOnly && Date.now() - lastLookupMs < 200) {
          await sleep(10);
          continue;
        }
        if (readOnly) {
          const p = await this.findPrimary().catch(() => null);
          lastLookupMs = Date.now();
          if (p !== null && p.id === this.clientPeer) continue;
        }
        await this.dropClient();
        await sleep(20);
      }
    }
  }
}
