// Three (or more) Raft nodes as separate OS processes on loopback, each with its Raft storage in a
// temp dir. Used by the real-process tests and by tools/bench/raft.ts. Processes are stopped by
// their own pids only.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './wait.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
export const REPO_ROOT = resolve(HERE, '../..');
const ENTRY = join(HERE, 'raft-node-main.ts');

export interface ProcNodeConfig {
  id: string;
  dataDir: string;
  logFile: string;
  peers: Record<string, string>;
  initialVoters?: string[];
  secret: string;
  raftPort: number;
  httpPort: number;
  /** The address it listens on (Raft and HTTP); default 127.0.0.1. */
  host?: string;
  /** The network namespace it runs in (`ip netns exec`); default none. */
  netns?: string;
  tickMs?: number;
  electionTicks?: number;
  heartbeatTicks?: number;
  snapshotEveryEntries?: number;
  keepEntriesAfterSnapshot?: number;
  /** "list" keeps every command (for agreement checks); "count" keeps a count and a hash chain; "register" runs integer registers; "store" the cluster store. */
  mode?: 'list' | 'count' | 'register' | 'store';
}

/** A host for a node: a network namespace and its address there (e.g. test/jepsen-like/net.ts's hosts). */
export interface ProcHost {
  readonly id: string;
  readonly ns: string;
  readonly address: string;
}

/** The ports inside a namespace (each node has its own address there). */
const NS_RAFT_PORT = 28190;
const NS_HTTP_PORT = 28191;

export interface ProcNode {
  readonly cfg: ProcNodeConfig;
  child: ChildProcess | null;
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null;
}

export interface NodeStatusView {
  id: string;
  term: number;
  leader: string | null;
  role: string;
  commit: number;
  applied: number;
  count: number;
  chain: number;
}

export class ProcCluster {
  readonly nodes = new Map<string, ProcNode>();
  private constructor(readonly dir: string) {}

  /**
   * Nodes with these ids, each on loopback with free ports, or, with `hosts` (one per id, by id),
   * each in its host's network namespace on its address there, so that partitions can be made
   * with iptables in the namespaces.
   */
  static async create(ids: string[], opts: Partial<Pick<ProcNodeConfig, 'tickMs' | 'electionTicks' | 'heartbeatTicks' | 'snapshotEveryEntries' | 'keepEntriesAfterSnapshot' | 'mode'>> & { hosts?: readonly ProcHost[] } = {}): Promise<ProcCluster> {
    const { hosts, ...nodeOpts } = opts;
    const dir = await mkdtemp(join(tmpdir(), 'manatee-raft-proc-'));
    const c = new ProcCluster(dir);
    const ports = new Map<string, { host: string; ns?: string; raft: number; http: number }>();
    for (const id of ids) {
      if (hosts === undefined) {
        ports.set(id, { host: '127.0.0.1', raft: await freePort(), http: await freePort() });
        continue;
      }
      const h = hosts.find((x) => x.id === id);
      if (h === undefined) throw new Error(`no host for node ${id}`);
      ports.set(id, { host: h.address, ns: h.ns, raft: NS_RAFT_PORT, http: NS_HTTP_PORT });
    }
    const peers = Object.fromEntries(ids.map((id) => [id, `${ports.get(id)!.host}:${ports.get(id)!.raft}`]));
    for (const id of ids) {
      const p = ports.get(id)!;
      c.nodes.set(id, {
        cfg: {
          id, dataDir: join(dir, id, 'raft'), logFile: join(dir, `${id}.log`), peers, initialVoters: ids,
          secret: 'process-test-secret-0123456789', raftPort: p.raft, httpPort: p.http, host: p.host, ...(p.ns !== undefined ? { netns: p.ns } : {}), ...nodeOpts,
        },
        child: null, stderr: '', exited: null,
      });
    }
    return c;
  }

  node(id: string): ProcNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  url(id: string, path: string): string {
    const cfg = this.node(id).cfg;
    return `http://${cfg.host ?? '127.0.0.1'}:${cfg.httpPort}${path}`;
  }

  /** Spawns the node's process (again). Does not wait for it to serve. */
  spawn(id: string): ProcNode {
    const n = this.node(id);
    if (n.child !== null && n.child.exitCode === null && n.child.signalCode === null) throw new Error(`node ${id} is running`);
    n.stderr = '';
    // MANATEE_RAFT_NODE_ARGS adds node flags (e.g. --cpu-prof) when profiling the benchmark.
    const extra = (process.env['MANATEE_RAFT_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
    // `ip netns exec` execs node in place: the child's pid is the node's, and signals reach it.
    const argv = [...extra, '--import', 'tsx', ENTRY, JSON.stringify(n.cfg)];
    const [cmd, args] = n.cfg.netns === undefined ? [process.execPath, argv] : ['ip', ['netns', 'exec', n.cfg.netns, process.execPath, ...argv]];
    const child = spawn(cmd, args, {
      cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s: string) => { if (n.stderr.length < 100_000) n.stderr += s; });
    n.child = child;
    n.exited = new Promise((r) => { child.on('exit', (code, signal) => { r({ code, signal }); }); });
    return n;
  }

  async start(id: string): Promise<void> {
    const n = this.spawn(id);
    await waitFor(`node ${id} to serve HTTP`, async () => {
      if (n.child?.exitCode !== null) throw new Error(`node ${id} exited: ${n.stderr}`);
      return (await this.status(id)) !== null;
    }, { timeoutMs: 60_000, intervalMs: 100 });
  }

  /** Sends a signal to the node's own pid and waits for it to exit. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const n = this.node(id);
    if (n.child === null || n.exited === null) return;
    if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill(signal);
    await n.exited;
  }

  async status(id: string): Promise<NodeStatusView | null> {
    try {
      const r = await fetch(this.url(id, '/status'), { signal: AbortSignal.timeout(2000) });
      return (await r.json()) as NodeStatusView;
    } catch {
      return null;
    }
  }

  /** Waits until the live nodes among `ids` agree on a leader, and returns its id. */
  async leader(ids = [...this.nodes.keys()], timeoutMs = 60_000): Promise<string> {
    return waitFor('processes to agree on a leader', async () => {
      const sts = await Promise.all(ids.map((id) => this.status(id)));
      const live = sts.filter((s): s is NodeStatusView => s !== null);
      const l = live.find((s) => s.role === 'leader');
      if (l === undefined) return null;
      return live.every((s) => s.leader === l.id) ? l.id : null;
    }, { timeoutMs, intervalMs: 100 });
  }

  async propose(id: string, data: string, signal?: AbortSignal): Promise<{ ok: true; result: unknown } | { ok: false; code: string }> {
    try {
      const r = await fetch(this.url(id, '/propose'), { method: 'POST', body: data, ...(signal ? { signal } : {}) });
      const v = (await r.json()) as { result?: unknown; code?: string };
      return r.status === 200 ? { ok: true, result: v.result } : { ok: false, code: v.code ?? String(r.status) };
    } catch (err) {
      return { ok: false, code: `HTTP: ${(err as Error).message}` };
    }
  }

  async applied(id: string): Promise<{ items: string[]; count: number; chain: number }> {
    const r = await fetch(this.url(id, '/applied'));
    return (await r.json()) as { items: string[]; count: number; chain: number };
  }

  /** Kills every process it started (by pid) and removes the temp dir. */
  async close(): Promise<void> {
    for (const id of this.nodes.keys()) await this.kill(id, 'SIGKILL');
    await rm(this.dir, { recursive: true, force: true });
  }
}
