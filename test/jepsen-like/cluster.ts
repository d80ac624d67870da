// The peers of a chaos run: one manatee-sitter per namespace, started with `ip netns exec`, so that
// the sitter, its PostgreSQL and its backup traffic all live behind the namespace's address.
// Signals go to whole process groups: the sitter's (it and any pg_basebackup/pg_rewind it runs)
// and the postmaster's (PostgreSQL starts the postmaster in a process group of its own).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SitterStatus } from '../../src/model/index.js';
import type { Network } from './net.js';
import { pidAlive } from '../../tools/lib/pid-alive.js';

export const PG_PORT = 25432;
export const API_PORT = 28080;
export const RAFT_PORT = 28090;

export interface ClusterOptions {
  readonly repoRoot: string;
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
}

export interface Peer {
  readonly id: string;
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
  readonly peers: readonly Peer[];

  constructor(
    readonly net: Network,
    private readonly opts: ClusterOptions,
  ) {
    this.peers = net.hosts.map((h) => {
      const dataDir = join(opts.workDir, h.id);
      return {
        id: h.id,
        ns: h.ns,
        address: h.address,
        dataDir,
        configPath: join(dataDir, 'config.json'),
        logPath: join(opts.logsDir, `${h.id}.log`),
        apiUrl: `http://${h.address}:${API_PORT}`,
        sitterPid: null,
        paused: false,
      };
    });
  }

  peer(id: string): Peer {
    const p = this.peers.find((x) => x.id === id);
    if (p === undefined) throw new Error(`no peer ${id}`);
    return p;
  }

  pgUrl(id: string): string {
    return `postgres://postgres:${encodeURIComponent(this.opts.superuserPassword)}@${this.peer(id).address}:${PG_PORT}/postgres`;
  }

  /** The superuser's credentials: the client library's pool takes host and port from the topology, and these from here. */
  pgCredentials(): { user: string; password: string } {
    return { user: 'postgres', password: this.opts.superuserPassword };
  }

  /** The peer whose PostgreSQL a pgUrl (or a bare host address) names, or null when none does. */
  peerOfPgHost(host: string): string | null {
    return this.peers.find((p) => p.address === host)?.id ?? null;
  }

  /** The configuration of each peer (the secrets are the run's own random ones). */
  writeConfigs(): Record<string, unknown>[] {
    mkdirSync(this.opts.workDir, { recursive: true, mode: 0o755 });
    mkdirSync(this.opts.logsDir, { recursive: true });
    const members = this.peers.map((p) => ({ id: p.id, address: `${p.address}:${RAFT_PORT}` }));
    const keepaliveIntervalMs = Math.max(100, Math.floor(this.opts.sessionTimeoutMs / 5));
    return this.peers.map((p) => {
      mkdirSync(p.dataDir, { recursive: true, mode: 0o755 });
      const config = {
        peerId: p.id,
        host: p.address,
        dataDir: p.dataDir,
        backend: 'basebackup',
        postgres: { port: PG_PORT, superuserPassword: this.opts.superuserPassword },
        api: { port: API_PORT, listen: p.address },
        raft: { port: RAFT_PORT, listen: p.address, members, tickMs: this.opts.raftTickMs, electionTicks: this.opts.raftElectionTicks, heartbeatTicks: 1 },
        timeouts: { sessionTimeoutMs: this.opts.sessionTimeoutMs, keepaliveIntervalMs },
        secret: this.opts.secret,
        adminToken: this.opts.adminToken,
        log: { level: 'info' },
      };
      writeFileSync(p.configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
      return config;
    });
  }

  /** Starts the peer's sitter inside its namespace (a process group of its own). */
  start(id: string): void {
    const p = this.peer(id);
    if (p.sitterPid !== null && pidAlive(p.sitterPid)) return;
    const fd = openSync(p.logPath, 'a');
    writeFileSync(fd, `${JSON.stringify({ harness: 'start', at: new Date().toISOString() })}\n`);
    // `ip netns exec` execs the command in place: the child's pid is the sitter's.
    const child = spawn('ip', ['netns', 'exec', p.ns, process.execPath, '--import', 'tsx', join(this.opts.repoRoot, 'src/cli/manatee-sitter.ts'), '-f', p.configPath], {
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

  async status(id: string, timeoutMs = 1500): Promise<SitterStatus | null> {
    try {
      const res = await fetch(`${this.peer(id).apiUrl}/status`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!res.ok) return null;
      return (await res.json()) as SitterStatus;
    } catch {
      return null;
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
