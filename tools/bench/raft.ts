// Benchmark: committed proposals per second and commit latency (p50/p99) of three Manatee Raft
// node processes on loopback with real fsync, against Debian's etcd (three members on loopback,
// default fsync) on the same work: small puts over HTTP/1.1 keep-alive, at concurrency 1 and 64.
//
//   npx tsx tools/bench/raft.ts [--seconds 4] [--rounds 3] [--concurrency 1,64] [--skip-etcd]
//
// Both systems get requests sent to their current leader through the same HTTP client (node:http
// with a keep-alive pool), so the difference is the replication path, not the client.
// Next to latency it prints each system's CPU (its three processes, user + system) and context
// switches (every thread) per committed op: on a loaded machine these move much less than
// latency does, and they show the cost of each thread hop and wakeup.
// Before each round it finds each Manatee group's leader again (a write sent to a follower would be
// forwarded: another path) and says when the leader moved.
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bodyPoster } from '../lib/http.js';
import { ProcCluster } from '../lib/raft-cluster.js';
import { freePort, waitFor } from '../lib/wait.js';

interface Args { seconds: number; warmupSeconds: number; rounds: number; concurrency: number[]; skipEtcd: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { seconds: 4, warmupSeconds: 1, rounds: 3, concurrency: [1, 64], skipEtcd: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--seconds') a.seconds = Number(argv[++i]);
    else if (k === '--warmup') a.warmupSeconds = Number(argv[++i]);
    else if (k === '--rounds') a.rounds = Number(argv[++i]);
    else if (k === '--concurrency') a.concurrency = (argv[++i] ?? '').split(',').map(Number);
    else if (k === '--skip-etcd') a.skipEtcd = true;
  }
  return a;
}

const agent = new Agent({ keepAlive: true, maxSockets: 256 });
const post = bodyPoster(agent);

interface Result {
  system: string; concurrency: number; ops: number; errors: number; opsPerSec: number; p50Ms: number; p99Ms: number;
  /** CPU (user + system) of the system's three processes per committed op, and their context switches (all threads) per op. */
  cpuUsPerOp: number; switchesPerOp: number;
}

/** CPU ms (utime + stime) and context switches (voluntary + involuntary, every thread) of the processes. */
function usage(pids: readonly number[]): { cpuMs: number; switches: number } {
  let cpuMs = 0;
  let switches = 0;
  for (const pid of pids) {
    try {
      // Fields after the command name: state is [0], utime [11], stime [12]; USER_HZ is 100.
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      cpuMs += (Number(f[11]) + Number(f[12])) * 10;
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        const st = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
        for (const m of st.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) switches += Number(m[1]);
      }
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return { cpuMs, switches };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `concurrency` closed-loop workers for warmup + seconds; counts only the measured window. */
async function measure(system: string, concurrency: number, args: Args, op: (n: number) => Promise<boolean>, pids: readonly number[]): Promise<Result> {
  let seq = 0;
  let phase: 'warmup' | 'measure' | 'done' = 'warmup';
  const lat: number[] = [];
  let errors = 0;
  const workers = Array.from({ length: concurrency }, async () => {
    while (phase !== 'done') {
      const t0 = performance.now();
      const ok = await op(seq++).catch(() => false);
      const dt = performance.now() - t0;
      if (phase !== 'measure') continue;
      if (ok) lat.push(dt);
      else errors++;
    }
  });
  await new Promise((r) => setTimeout(r, args.warmupSeconds * 1000));
  phase = 'measure';
  const u0 = usage(pids);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, args.seconds * 1000));
  const elapsedS = (performance.now() - t0) / 1000;
  const u1 = usage(pids);
  phase = 'done';
  const ops = lat.length;
  await Promise.all(workers);
  lat.sort((x, y) => x - y);
  return {
    system, concurrency, ops, errors, opsPerSec: ops / elapsedS, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99),
    cpuUsPerOp: ops > 0 ? ((u1.cpuMs - u0.cpuMs) * 1000) / ops : NaN, switchesPerOp: ops > 0 ? (u1.switches - u0.switches) / ops : NaN,
  };
}

function value16(n: number): string {
  return `v${String(n).padStart(15, '0')}`;
}

interface System {
  readonly name: string;
  /** The system's server processes, for CPU and context switches. */
  readonly pids: readonly number[];
  op(n: number): Promise<boolean>;
  /** Before a round: sends the next requests to the current leader; says whether it moved since the last call. */
  followLeader?(): Promise<string | null>;
  close(): Promise<void>;
}

async function startManatee(): Promise<System> {
  const c = await ProcCluster.create(['m1', 'm2', 'm3'], { mode: 'count', tickMs: 100, electionTicks: 10, snapshotEveryEntries: 10_000, keepEntriesAfterSnapshot: 1000 });
  try {
    await Promise.all(['m1', 'm2', 'm3'].map((id) => c.start(id)));
    let leader = await c.leader();
    let url = c.url(leader, '/propose');
    return {
      name: 'manatee',
      pids: ['m1', 'm2', 'm3'].map((id) => c.node(id).child!.pid!),
      op: async (n) => (await post(url, JSON.stringify({ op: 'put', key: `k${n % 1000}`, value: value16(n) }))).status === 200,
      // A write sent to a follower is forwarded to the leader: not the path this bench measures.
      followLeader: async () => {
        const now = await c.leader();
        if (now === leader) return null;
        const moved = `leader moved from ${leader} to ${now}`;
        leader = now;
        url = c.url(leader, '/propose');
        return moved;
      },
      close: () => c.close(),
    };
  } catch (err) {
    await c.close();
    throw err;
  }
}

async function startEtcd(): Promise<System> {
  const dir = await mkdtemp(join(tmpdir(), 'manatee-bench-etcd-'));
  const names = ['e1', 'e2', 'e3'];
  const ports = new Map<string, { client: number; peer: number }>();
  for (const n of names) ports.set(n, { client: await freePort(), peer: await freePort() });
  const initialCluster = names.map((n) => `${n}=http://127.0.0.1:${ports.get(n)!.peer}`).join(',');
  const children: ChildProcess[] = [];
  const close = async (): Promise<void> => {
    for (const ch of children) {
      if (ch.exitCode === null && ch.signalCode === null) {
        const exited = new Promise((r) => ch.on('exit', r));
        ch.kill('SIGKILL');
        await exited;
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const n of names) {
      const p = ports.get(n)!;
      children.push(spawn('/usr/bin/etcd', [
        '--name', n, '--data-dir', join(dir, n),
        '--listen-client-urls', `http://127.0.0.1:${p.client}`, '--advertise-client-urls', `http://127.0.0.1:${p.client}`,
        '--listen-peer-urls', `http://127.0.0.1:${p.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${p.peer}`,
        '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', 'manatee-bench',
        '--log-level', 'error',
      ], { stdio: ['ignore', 'ignore', 'ignore'] }));
    }
    const clientUrl = (n: string): string => `http://127.0.0.1:${ports.get(n)!.client}`;
    // The leader is the member whose own id equals the leader id in its status.
    const leader = await waitFor('etcd leader', async () => {
      for (const n of names) {
        try {
          const r = await post(`${clientUrl(n)}/v3/maintenance/status`, '{}');
          const v = JSON.parse(r.body) as { header?: { member_id?: string }; leader?: string };
          if (v.leader !== undefined && v.leader !== '0' && v.leader === v.header?.member_id) return n;
        } catch {
          // not up yet
        }
      }
      return null;
    }, { timeoutMs: 60_000, intervalMs: 200 });
    const url = `${clientUrl(leader)}/v3/kv/put`;
    return {
      name: 'etcd',
      pids: children.map((ch) => ch.pid!),
      op: async (n) => {
        const body = JSON.stringify({ key: Buffer.from(`k${n % 1000}`).toString('base64'), value: Buffer.from(value16(n)).toString('base64') });
        return (await post(url, body)).status === 200;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/** The median of each figure over the rounds. */
function summarize(rs: Result[]): Result {
  const r0 = rs[0]!;
  return {
    system: r0.system, concurrency: r0.concurrency,
    ops: rs.reduce((a, r) => a + r.ops, 0), errors: rs.reduce((a, r) => a + r.errors, 0),
    opsPerSec: median(rs.map((r) => r.opsPerSec)), p50Ms: median(rs.map((r) => r.p50Ms)), p99Ms: median(rs.map((r) => r.p99Ms)),
    cpuUsPerOp: median(rs.map((r) => r.cpuUsPerOp)), switchesPerOp: median(rs.map((r) => r.switchesPerOp)),
  };
}

function fmt(r: Result): string {
  return `${r.system.padEnd(8)} c=${String(r.concurrency).padStart(3)}  ${r.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${r.p50Ms.toFixed(2).padStart(7)} ms  p99 ${r.p99Ms.toFixed(2).padStart(7)} ms  cpu ${r.cpuUsPerOp.toFixed(0).padStart(5)} us/op  ${r.switchesPerOp.toFixed(1).padStart(5)} switches/op  (${r.ops} ok, ${r.errors} errors)`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(`raft bench: 3 nodes on loopback, fsync on, small puts; ${args.rounds} interleaved rounds of ${args.seconds}s (after ${args.warmupSeconds}s warm-up) per system and concurrency; medians over rounds`);
  const systems: System[] = [];
  try {
    systems.push(await startManatee());
    if (!args.skipEtcd) systems.push(await startEtcd());
    const results = new Map<string, Result[]>();
    // Interleaved, so that both systems see the same share of the machine's (shared) load.
    for (let round = 0; round < args.rounds; round++) {
      for (const conc of args.concurrency) {
        for (const sys of systems) {
          const moved = await sys.followLeader?.();
          if (moved !== null && moved !== undefined) console.log(`  round ${round + 1}: ${sys.name}: ${moved} since the last round (an election: the node stalled past its election timeout)`);
          const r = await measure(sys.name, conc, args, (n) => sys.op(n), sys.pids);
          console.log(`  round ${round + 1}: ${fmt(r)}`);
          const key = `${sys.name}/${conc}`;
          results.set(key, [...(results.get(key) ?? []), r]);
        }
      }
    }
    console.log('medians:');
    const med = new Map<string, Result>();
    for (const [k, rs] of results) med.set(k, summarize(rs));
    for (const r of med.values()) console.log(fmt(r));
    if (args.skipEtcd) return;
    console.log('ratios (manatee / etcd): throughput goal >= 0.5, p50 latency goal <= 2.0; at c=1 (issue 11) p50 <= 1.0 ms and p99 <= 1.0x etcd');
    for (const conc of args.concurrency) {
      const r = med.get(`manatee/${conc}`);
      const e = med.get(`etcd/${conc}`);
      if (r === undefined || e === undefined) continue;
      const tp = r.opsPerSec / e.opsPerSec;
      const p50 = r.p50Ms / e.p50Ms;
      const c1 = conc === 1 ? `   c=1 goals: p50 ${r.p50Ms.toFixed(2)} ms ${r.p50Ms <= 1 ? 'OK' : 'ABOVE GOAL'}, p99 ${r.p99Ms <= e.p99Ms ? 'OK' : 'ABOVE GOAL'}` : '';
      console.log(`c=${String(conc).padStart(3)}  throughput ${tp.toFixed(2)}x ${tp >= 0.5 ? 'OK' : 'BELOW GOAL'}   p50 ${p50.toFixed(2)}x ${p50 <= 2 ? 'OK' : 'ABOVE GOAL'}   p99 ${(r.p99Ms / e.p99Ms).toFixed(2)}x   cpu/op ${(r.cpuUsPerOp / e.cpuUsPerOp).toFixed(2)}x   switches/op ${(r.switchesPerOp / e.switchesPerOp).toFixed(2)}x${c1}`);
    }
  } finally {
    for (const sys of systems) await sys.close();
    agent.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
