// The peers of a chaos run: one manatee-sitter per namespace, started with `ip netns exec`, so that
// the sitter, its PostgreSQL and its backup traffic all live behind the namespace's address.
// Signals go to whole process groups: the sitter's (it and any pg_basebackup/pg_rewind it runs)
// and the postmaster's (PostgreSQL starts the postmaster in a process group of its own).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { CA_CERT_FILE, initCa, issuePeerCertificate, peerCertFile, peerKeyFile } from '../../src/tls/index.js';
import type { SitterStatus } from '../../src/model/index.js';
import type { Network } from './net.js';
import { pidAlive } from '../../tools/lib/pid-alive.js';
import { findPostmaster } from '../../tools/lib/processes.js';

export const PG_PORT = 25432;
export const API_PORT = 28080;
export const RAFT_PORT = 28090;

export interface ClusterOptions {
  readonly repoRoot: string;
  /**
   * The JavaScript file the sitters run: the bundle of src/ (tools/lib/sitter-bundle.ts), as a
   * compiled install runs dist/. Through tsx, every module was compiled at each start: after a
   * restart-all at load 30, a sitter's first log line came 7 s after its spawn.
   */
  readonly sitterScript: string;
  /** Where each peer's data lives: <workDir>/<id>. Removed by the harness unless kept. */
  readonly workDir: string;
  /** Where each peer's log goes: <logsDir>/<id>.log (appended across restarts). */
  readonly logsDir: string;
  readonly secret: string;
  readonly adminToken: string;
  readonly superuserPassword: string;
  readonly sessionTimeoutMs: number;
  readonly raftTickMs: number;
  readonly raftElectionTicks: number;
  /** `zfs`: each host's data lives in its own pool, `<pool>/manatee/<peer>` (the pools exist before the peers start). */
  readonly backend?: 'basebackup' | 'zfs';
  /** With zfs: the pool of a host (by host id). */
  readonly poolOf?: (hostId: string) => string;
  /** Peers at the start: the first `initialPeers` hosts; the other hosts are spare (membership changes). Default: all. */
  readonly initialPeers?: number;
  /**
   * TLS everywhere, as a real shard runs (default true): a shard CA in `<workDir>/certs` and a
   * certificate per peer for its namespace's address; the APIs are https, PostgreSQL takes TLS
   * only, and every client here (status, admin calls, the workloads' pools) checks the peers
   * against the CA. False: the plain path.
   */
  readonly tls?: boolean;
}

export interface Peer {
  readonly id: string;
  /** The host (namespace) it runs on: the same as its id, except for peers added later on a spare host. */
  readonly host: string;
  readonly ns: string;
  readonly address: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly apiUrl: string;
  sitterPid: number | null;
  /** SIGSTOPped by the nemesis: resumed before anything else is done to it. */
  paused: boolean;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Every process below `root` (PostgreSQL's backends call setsid(), so process groups do not cover them). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: the fields after the last ')' are fixed.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0 && out.length < 10_000) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function signalAll(roots: readonly number[], sig: NodeJS.Signals): void {
  const first = [...roots, ...roots.flatMap(descendants)];
  for (const pid of first) signal(pid, sig);
  for (const pid of roots.flatMap(descendants)) if (!first.includes(pid)) signal(pid, sig);
}

export class Cluster {
  /** The peers of the shard now (membership changes add and remove peers on the spare hosts). */
  peers: readonly Peer[];
  /** Ids given to peers so far: a peer id is never reused. */
  private readonly usedIds = new Set<string>();

  constructor(
    readonly net: Network,
    private readonly opts: ClusterOptions,
  ) {
    const n = opts.initialPeers ?? net.hosts.length;
    this.peers = net.hosts.slice(0, n).map((h) => this.makePeer(h.id, h.id));
  }

  private makePeer(id: string, hostId: string): Peer {
    const h = this.net.hosts.find((x) => x.id === hostId);
    if (h === undefined) throw new Error(`no host ${hostId}`);
    this.usedIds.add(id);
    const dataDir = join(this.opts.workDir, id);
    return {
      id,
      host: h.id,
      ns: h.ns,
      address: h.address,
      dataDir,
      configPath: join(dataDir, 'config.json'),
      logPath: join(this.opts.logsDir, `${id}.log`),
      apiUrl: `${this.tls ? 'https' : 'http'}://${h.address}:${API_PORT}`,
      sitterPid: null,
      paused: false,
    };
  }

  get tls(): boolean {
    return this.opts.tls ?? true;
  }

  /** The shard CA's certificate file (TLS only). */
  get caFile(): string | null {
    return this.tls ? join(this.opts.workDir, 'certs', CA_CERT_FILE) : null;
  }

  /** The shard CA's certificate (PEM): the client library's `ca`. Undefined without TLS. */
  get caPem(): string | undefined {
    const f = this.caFile;
    return f === null ? undefined : readFileSync(f, 'utf8');
  }

  get backend(): 'basebackup' | 'zfs' {
    return this.opts.backend ?? 'basebackup';
  }

  /** The hosts no peer runs on now. */
  spareHosts(): string[] {
    return this.net.hosts.map((h) => h.id).filter((h) => !this.peers.some((p) => p.host === h));
  }

  /** A new peer id (never used before in this run): peer<n>, n after every id so far. */
  nextPeerId(): string {
    for (let n = this.usedIds.size + 1; ; n++) if (!this.usedIds.has(`peer${n}`)) return `peer${n}`;
  }

  /** The Raft address of a peer-to-be on a host. */
  raftAddressOf(hostId: string): string {
    const h = this.net.hosts.find((x) => x.id === hostId);
    if (h === undefined) throw new Error(`no host ${hostId}`);
    return `${h.address}:${RAFT_PORT}`;
  }

  /** The zfs dataset of a peer (zfs backend only). */
  datasetOf(p: Peer): string | null {
    return this.opts.backend === 'zfs' && this.opts.poolOf !== undefined ? `${this.opts.poolOf(p.host)}/manatee/${p.id}` : null;
  }

  /**
   * A new peer on a spare host, with a configuration whose members are the shard's peers and
   * itself (as an operator grows the shard: add-peer first, then this). Not started.
   */
  async addPeer(id: string, hostId: string): Promise<Peer> {
    if (this.usedIds.has(id)) throw new Error(`peer id ${id} was used before in this run`);
    if (!this.spareHosts().includes(hostId)) throw new Error(`host ${hostId} is not spare`);
    const p = this.makePeer(id, hostId);
    const members = [...this.peers, p].map((x) => ({ id: x.id, address: `${x.address}:${RAFT_PORT}` }));
    mkdirSync(p.dataDir, { recursive: true, mode: 0o755 });
    await this.issueCertificate(p);
    this.writeConfig(p, members);
    this.peers = [...this.peers, p];
    return p;
  }

  /** Forgets a peer that was removed from the shard (its processes must be gone). */
  dropPeer(id: string): void {
    this.peers = this.peers.filter((p) => p.id !== id);
  }

  peer(id: string): Peer {
    const p = this.peers.find((x) => x.id === id);
    if (p === undefined) throw new Error(`no peer ${id}`);
    return p;
  }

  /** The superuser's URL of a peer's PostgreSQL; with TLS, sslmode=verify-full against the shard CA. */
  pgUrl(id: string): string {
    const ca = this.caFile;
    const tls = ca === null ? '' : `?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`;
    return `postgres://postgres:${encodeURIComponent(this.opts.superuserPassword)}@${this.peer(id).address}:${PG_PORT}/postgres${tls}`;
  }

  /** The superuser's credentials: the client library's pool takes host and port from the topology, and these from here. */
  pgCredentials(): { user: string; password: string } {
    return { user: 'postgres', password: this.opts.superuserPassword };
  }

  /** The peer whose PostgreSQL a pgUrl (or a bare host address) names, or null when none does. */
  peerOfPgHost(host: string): string | null {
    return this.peers.find((p) => p.address === host)?.id ?? null;
  }

  /**
   * The configuration of each peer (the secrets are the run's own random ones); with TLS, the
   * shard CA and each peer's certificate first (src/tls, as `manatee-adm certs` makes them).
   */
  async writeConfigs(): Promise<Record<string, unknown>[]> {
    mkdirSync(this.opts.workDir, { recursive: true, mode: 0o755 });
    mkdirSync(this.opts.logsDir, { recursive: true });
    if (this.tls) await initCa({ dir: this.certsDir(), name: 'Chaos shard CA' });
    const members = this.peers.map((p) => ({ id: p.id, address: `${p.address}:${RAFT_PORT}` }));
    const out: Record<string, unknown>[] = [];
    for (const p of this.peers) {
      mkdirSync(p.dataDir, { recursive: true, mode: 0o755 });
      await this.issueCertificate(p);
      out.push(this.writeConfig(p, members));
    }
    return out;
  }

  private certsDir(): string {
    return join(this.opts.workDir, 'certs');
  }

  /** A certificate for `p`, bound to its id, for its namespace's address (TLS only). */
  private async issueCertificate(p: Peer): Promise<void> {
    if (this.tls) await issuePeerCertificate({ dir: this.certsDir(), peerId: p.id, hosts: [p.address] });
  }

  private writeConfig(p: Peer, members: readonly { id: string; address: string }[]): Record<string, unknown> {
    const keepaliveIntervalMs = Math.max(100, Math.floor(this.opts.sessionTimeoutMs / 5));
    const dataset = this.datasetOf(p);
    {
      const config = {
        peerId: p.id,
        host: p.address,
        dataDir: p.dataDir,
        backend: this.backend,
        ...(dataset !== null ? { zfs: { dataset, snapshotIntervalMs: 120_000, snapshotRetention: 5 } } : {}),
        postgres: { port: PG_PORT, superuserPassword: this.opts.superuserPassword },
        api: { port: API_PORT, listen: p.address },
        raft: { port: RAFT_PORT, listen: p.address, members, tickMs: this.opts.raftTickMs, electionTicks: this.opts.raftElectionTicks, heartbeatTicks: 1 },
        timeouts: { sessionTimeoutMs: this.opts.sessionTimeoutMs, keepaliveIntervalMs },
        secret: this.opts.secret,
        adminToken: this.opts.adminToken,
        ...(this.tls ? { tls: { caFile: join(this.certsDir(), CA_CERT_FILE), certFile: peerCertFile(this.certsDir(), p.id), keyFile: peerKeyFile(this.certsDir(), p.id) } } : {}),
        log: { level: 'info' },
      };
      writeFileSync(p.configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
      return config;
    }
  }

  /** Starts the peer's sitter inside its namespace (a process group of its own). */
  start(id: string): void {
    const p = this.peer(id);
    if (p.sitterPid !== null && pidAlive(p.sitterPid)) return;
    const fd = openSync(p.logPath, 'a');
    writeFileSync(fd, `${JSON.stringify({ harness: 'start', at: new Date().toISOString() })}\n`);
    // `ip netns exec` execs the command in place: the child's pid is the sitter's. On zfs,
    // `nsenter --net` instead (it also execs in place): `ip netns exec` gives the sitter a mount
    // namespace of its own, where the zfs command's unmounts (zfs-fuse's CLI unmounts in the
    // caller's mount namespace, its daemon mounts in its own) never reach the daemon's mounts,
    // and every rename or rollback finds the dataset busy.
    const enter = this.backend === 'zfs' ? ['nsenter', `--net=/run/netns/${p.ns}`, '--'] : ['ip', 'netns', 'exec', p.ns];
    const child = spawn(enter[0]!, [...enter.slice(1), process.execPath, this.opts.sitterScript, '-f', p.configPath], {
      cwd: this.opts.repoRoot,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    child.unref();
    child.on('error', () => undefined);
    if (child.pid === undefined) throw new Error(`could not start the sitter of ${id}`);
    p.sitterPid = child.pid;
    p.paused = false;
  }

  /** The postmaster of the peer's data directory, when one runs. */
  postmasterPid(id: string): number | null {
    // On zfs the data directory is a zfs-fuse mount: /proc, never a read that could hang on it.
    if (this.opts.backend === 'zfs') return findPostmaster(join(this.peer(id).dataDir, 'pgdata'))?.pid ?? null;
    const file = join(this.peer(id).dataDir, 'pgdata', 'postmaster.pid');
    if (!existsSync(file)) return null;
    try {
      const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
      if (!Number.isInteger(pid) || pid <= 1 || !pidAlive(pid)) return null;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes('postgres') ? pid : null;
    } catch {
      return null;
    }
  }

  /** SIGKILL of the sitter process alone (its PostgreSQL goes on; the restarted sitter adopts it). */
  killSitter(id: string): void {
    const p = this.peer(id);
    if (p.sitterPid !== null) signal(p.sitterPid, 'SIGKILL');
    p.sitterPid = null;
  }

  /**
   * A signal to every process of the peer's PostgreSQL. The processes are listed before any is
   * signalled (a killed postmaster's children are re-parented at once), the postmaster goes first
   * (so that it forks no more), and a second listing catches a fork in between.
   */
  signalPostgres(id: string, sig: NodeJS.Signals): number | null {
    const pm = this.postmasterPid(id);
    if (pm === null) return null;
    signalAll([pm], sig);
    return pm;
  }

  /** A signal to everything the peer runs: the sitter, its children (pg_basebackup, pg_rewind), and PostgreSQL. */
  private signalPeer(id: string, sig: NodeJS.Signals): void {
    const roots = [this.peer(id).sitterPid, this.postmasterPid(id)].filter((x): x is number => x !== null);
    signalAll(roots, sig);
  }

  /** SIGKILL of everything the peer runs. */
  killPeer(id: string): void {
    const p = this.peer(id);
    this.signalPeer(id, 'SIGKILL');
    p.sitterPid = null;
    p.paused = false;
  }

  pause(id: string): void {
    this.signalPeer(id, 'SIGSTOP');
    this.peer(id).paused = true;
  }

  resume(id: string): void {
    this.signalPeer(id, 'SIGCONT');
    this.peer(id).paused = false;
  }

  sitterAlive(id: string): boolean {
    const pid = this.peer(id).sitterPid;
    return pid !== null && pidAlive(pid);
  }

  /**
   * One call to a peer's API: node:http, or node:https checked against the shard CA (fetch takes
   * no CA of its own). Rejects when the peer does not answer within `timeoutMs`.
   */
  private call(url: string, opts: { method: string; headers: Record<string, string>; body?: string; timeoutMs: number }): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const onResponse = (res: IncomingMessage): void => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }); });
        res.on('error', reject);
      };
      const base = { method: opts.method, headers: opts.headers };
      const ca = this.caPemCached();
      const req = url.startsWith('https:') ? httpsRequest(url, ca === undefined ? base : { ...base, ca }, onResponse) : request(url, base, onResponse);
      const timer = setTimeout(() => req.destroy(new Error(`no answer from ${url} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      req.on('close', () => { clearTimeout(timer); });
      req.on('error', reject);
      req.end(opts.body);
    });
  }

  private caPemMemo: string | undefined;

  private caPemCached(): string | undefined {
    if (this.caPemMemo === undefined && this.tls) this.caPemMemo = this.caPem;
    return this.caPemMemo;
  }

  async status(id: string, timeoutMs = 1500): Promise<SitterStatus | null> {
    try {
      const res = await this.call(`${this.peer(id).apiUrl}/status`, { method: 'GET', headers: {}, timeoutMs });
      if (res.status !== 200) return null;
      return JSON.parse(res.text) as SitterStatus;
    } catch {
      return null;
    }
  }

  /**
   * An admin API call (with the admin token) to one peer. Never throws: status 0 when the peer did
   * not answer; `body` is the parsed JSON answer, or its text.
   */
  async admin(id: string, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, timeoutMs = 30_000): Promise<{ status: number; body: unknown }> {
    try {
      const res = await this.call(`${this.peer(id).apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.opts.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), 'x-manatee-operator': 'chaos-nemesis' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        timeoutMs,
      });
      const text = res.text;
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: the text
      }
      return { status: res.status, body: parsed };
    } catch (err) {
      return { status: 0, body: String(err) };
    }
  }

  async statuses(timeoutMs = 1500): Promise<Map<string, SitterStatus | null>> {
    const all = await Promise.all(this.peers.map(async (p) => [p.id, await this.status(p.id, timeoutMs)] as const));
    return new Map(all);
  }

  /** Stops every peer: SIGCONT, SIGTERM to the sitters, then SIGKILL to whatever is left. */
  async stopAll(graceMs = 15_000): Promise<void> {
    for (const p of this.peers) this.resume(p.id);
    for (const p of this.peers) if (p.sitterPid !== null) signal(p.sitterPid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && this.peers.some((p) => p.sitterPid !== null && pidAlive(p.sitterPid))) {
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const p of this.peers) this.killPeer(p.id);
  }
}
