// A three-node Patroni cluster on loopback, for side-by-side benchmarks (the recipe of
// ../shared/anchors/patroni, carried here so that the bench does not depend on shared/): Patroni's
// own Raft as its DCS, synchronous_mode, PostgreSQL 15 on 25432/25442/25452, REST API on
// 28010/28020/28030, Raft on 22210/22220/22230. Connections from 127.0.0.1 are trusted, which
// suits a benchmark and nothing else. Needs the Debian packages `patroni` and `python3-pysyncobj`.
import { spawn, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';

export const PATRONI_BIN = '/usr/bin/patroni';
const PG_BINDIR = '/usr/lib/postgresql/15/bin';

export interface PatroniSettings {
  /** Patroni's defaults are 30 / 10 / 10; "tuned" (the second run) is 10 / 1 / 3. */
  readonly ttl: number;
  readonly loopWait: number;
  readonly retryTimeout: number;
}

export interface PatroniNode {
  readonly name: string;
  readonly pgPort: number;
  readonly apiPort: number;
  readonly dataDir: string;
  pid: number;
}

export function patroniInstalled(): boolean {
  if (!existsSync(PATRONI_BIN)) return false;
  try {
    // The interpreter patroni's own script names (#!/usr/bin/python3), not whatever python3 is first in PATH.
    execFileSync('/usr/bin/python3', ['-c', 'import pysyncobj'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function osUser(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function config(dir: string, i: number, s: PatroniSettings): string {
  const pg = 25422 + i * 10;
  const api = 28000 + i * 10;
  const raft = 22200 + i * 10;
  const partners = [1, 2, 3].filter((j) => j !== i).map((j) => `'127.0.0.1:${22200 + j * 10}'`).join(',');
  const d = join(dir, `p${i}`);
  return `scope: datapath-bench
name: p${i}
restapi: {listen: 127.0.0.1:${api}, connect_address: 127.0.0.1:${api}}
raft: {data_dir: ${d}/raft, self_addr: 127.0.0.1:${raft}, partner_addrs: [${partners}]}
bootstrap:
  dcs: {ttl: ${s.ttl}, loop_wait: ${s.loopWait}, retry_timeout: ${s.retryTimeout}, synchronous_mode: true, postgresql: {use_pg_rewind: true, parameters: {wal_level: replica, hot_standby: 'on', wal_log_hints: 'on'}}}
  initdb: [{encoding: UTF8}, data-checksums]
  pg_hba: [host replication repl 127.0.0.1/32 trust, host all all 127.0.0.1/32 trust, local all all trust]
postgresql:
  listen: 127.0.0.1:${pg}
  connect_address: 127.0.0.1:${pg}
  data_dir: ${d}/data
  bin_dir: ${PG_BINDIR}
  pgpass: ${d}/pgpass
  authentication: {replication: {username: repl, password: repl}, superuser: {username: postgres, password: postgres}, rewind: {username: postgres, password: postgres}}
  parameters: {unix_socket_directories: '${d}'}
`;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class PatroniCluster {
  private constructor(readonly dir: string, readonly nodes: PatroniNode[]) {}

  /** Writes the three configurations into `dir` (created) and starts the three nodes as the postgres user. */
  static start(dir: string, s: PatroniSettings): PatroniCluster {
    const user = osUser('postgres');
    mkdirSync(dir, { recursive: true });
    chownSync(dir, user.uid, user.gid);
    const nodes: PatroniNode[] = [];
    for (const i of [1, 2, 3]) {
      const d = join(dir, `p${i}`);
      mkdirSync(d, { recursive: true });
      chownSync(d, user.uid, user.gid);
      chmodSync(d, 0o700);
      const yml = join(dir, `p${i}.yml`);
      writeFileSync(yml, config(dir, i, s));
      chownSync(yml, user.uid, user.gid);
      const log = join(dir, `p${i}.log`);
      const child = spawn(PATRONI_BIN, [yml], {
        uid: user.uid,
        gid: user.gid,
        cwd: d,
        detached: true,
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: d, LANG: 'C.UTF-8' },
        stdio: ['ignore', 'ignore', 'ignore'],
      });
      child.unref();
      if (child.pid === undefined) throw new Error(`could not start patroni ${yml} (log ${log})`);
      nodes.push({ name: `p${i}`, pgPort: 25422 + i * 10, apiPort: 28000 + i * 10, dataDir: join(d, 'data'), pid: child.pid });
    }
    return new PatroniCluster(dir, nodes);
  }

  /** The leader, once the cluster has a leader and a streaming sync_standby. */
  async waitReady(timeoutMs: number): Promise<PatroniNode> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      for (const n of this.nodes) if (!alive(n.pid)) throw new Error(`patroni ${n.name} exited`);
      for (const n of this.nodes) {
        try {
          const res = await fetch(`http://127.0.0.1:${n.apiPort}/cluster`, { signal: AbortSignal.timeout(2000) });
          const body = (await res.json()) as { members?: { name: string; role: string; state: string }[] };
          const members = body.members ?? [];
          last = members.map((m) => `${m.name}=${m.role}/${m.state}`).join(' ');
          const leader = members.find((m) => m.role === 'leader' && m.state === 'running');
          // Patroni 3.0 says "running" for a replica that streams; later versions say "streaming".
          const sync = members.find((m) => m.role === 'sync_standby' && (m.state === 'streaming' || m.state === 'running'));
          if (leader !== undefined && sync !== undefined) {
            const node = this.nodes.find((x) => x.name === leader.name);
            if (node !== undefined) return node;
          }
          break;
        } catch {
          // not up yet: ask the next one
        }
      }
      await sleep(1000);
    }
    throw new Error(`Patroni had no leader with a streaming sync_standby after ${timeoutMs} ms (${last})`);
  }

  pause(): void {
    for (const n of this.nodes) process.kill(n.pid, 'SIGSTOP');
  }

  resume(): void {
    for (const n of this.nodes) process.kill(n.pid, 'SIGCONT');
  }

  /** SIGTERM to each patroni (it stops its PostgreSQL), then any postmaster left, then remove the directory. */
  async stop(): Promise<void> {
    for (const n of this.nodes) {
      try {
        process.kill(n.pid, 'SIGCONT');
        process.kill(n.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    const deadline = Date.now() + 60_000;
    while (this.nodes.some((n) => alive(n.pid)) && Date.now() < deadline) await sleep(200);
    for (const n of this.nodes.filter((x) => alive(x.pid))) process.kill(n.pid, 'SIGKILL');
    for (const n of this.nodes) {
      const pidFile = join(n.dataDir, 'postmaster.pid');
      if (!existsSync(pidFile)) continue;
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) continue;
      process.kill(pid, 'SIGQUIT');
      const until = Date.now() + 15_000;
      while (alive(pid) && Date.now() < until) await sleep(100);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
