// Benchmark: where one Raft write's time goes, step by step, at concurrency 1. Three Manatee Raft
// node processes on loopback (as tools/bench/raft.ts), traced (MANATEE_RAFT_TRACE=1: RaftNode's
// trace option, see tools/lib/raft-node-main.ts): each process records a timestamp at each step
// of each write, and this prints each step's median and p99 over the writes, with the load.
//
//   npx tsx tools/bench/raft-steps.ts [--writes 3000] [--warmup 300] [--strace <dir>]
//
// The path: client -> leader httpIn -> propose -> send (appends on the socket, before the
// leader's own fsync) -> leader saveStart..saveEnd | follower recvAppend -> saveStart..saveEnd ->
// ack -> leader recvAck -> commitReady -> apply -> httpOut -> client. Timestamps are the
// monotonic clock (CLOCK_MONOTONIC, one for all processes of the machine), in microseconds.
// With --strace, `strace -f -ttt -T` runs on the leader and on one follower during the measured
// writes (their output in <dir>), and it prints the median and p99 of each traced call's duration
// and the number of epoll_wait calls (event-loop turns that slept) per write.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'node:http';
import { bodyPoster } from '../lib/http.js';
import { ProcCluster } from '../lib/raft-cluster.js';
import { waitFor } from '../lib/wait.js';

interface Args { writes: number; warmup: number; strace: string | null }

function parseArgs(argv: string[]): Args {
  const a: Args = { writes: 3000, warmup: 300, strace: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--writes') a.writes = Number(argv[++i]);
    else if (k === '--warmup') a.warmup = Number(argv[++i]);
    else if (k === '--strace') a.strace = argv[++i] ?? null;
  }
  return a;
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });
const post = bodyPoster(agent);

/** The monotonic clock in microseconds: the same clock in every process of the machine. */
function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

type Steps = Map<string, Map<number, number>>; // step -> index -> first time (us)

async function fetchSteps(c: ProcCluster, id: string): Promise<Steps> {
  const r = await fetch(c.url(id, '/trace'));
  const rows = (await r.json()) as [string, number, number][];
  const out: Steps = new Map();
  for (const [step, index, us] of rows) {
    let m = out.get(step);
    if (m === undefined) out.set(step, m = new Map());
    if (!m.has(index)) m.set(index, us);
  }
  return out;
}

function pct(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function row(name: string, xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `  ${name.padEnd(44)} median ${pct(s, 50).toFixed(0).padStart(6)} us   p90 ${pct(s, 90).toFixed(0).padStart(6)} us   p99 ${pct(s, 99).toFixed(0).padStart(6)} us   (n=${s.length})`;
}

/** Each traced call's durations, and epoll_wait counts, from `strace -f -ttt -T` output. */
function straceSummary(file: string, writes: number): string[] {
  const durs = new Map<string, number[]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^(?:\[pid\s+\d+\]\s+|\d+\s+)?[\d.]+\s+(\w+)\(.*<([\d.]+)>$/.exec(line);
    if (m === null) continue;
    const list = durs.get(m[1]!) ?? [];
    list.push(Number(m[2]) * 1e6);
    durs.set(m[1]!, list);
  }
  const out: string[] = [];
  for (const [name, xs] of [...durs].sort((a, b) => b[1].length - a[1].length)) {
    out.push(row(`${name} (${(xs.length / writes).toFixed(2)} per write)`, xs));
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  process.env['MANATEE_RAFT_TRACE'] = '1';
  const ids = ['m1', 'm2', 'm3'];
  const c = await ProcCluster.create(ids, { mode: 'count', tickMs: 100, electionTicks: 10, snapshotEveryEntries: 10_000, keepEntriesAfterSnapshot: 1000 });
  const tracers: ChildProcess[] = [];
  try {
    await Promise.all(ids.map((id) => c.start(id)));
    const leader = await c.leader();
    const followers = ids.filter((id) => id !== leader);
    const url = c.url(leader, '/propose');
    let n = 0;
    const put = async (): Promise<number> => {
      const r = await post(url, JSON.stringify({ op: 'put', key: `k${n % 1000}`, value: `v${String(n).padStart(15, '0')}` }));
      n++;
      if (r.status !== 200) throw new Error(`put failed: ${r.status} ${r.body}`);
      return (JSON.parse(r.body) as { result: { index: number } }).result.index;
    };
    for (let i = 0; i < args.warmup; i++) await put();
    if (args.strace !== null) {
      mkdirSync(args.strace, { recursive: true });
      for (const [role, id] of [['leader', leader], ['follower', followers[0]!]] as const) {
        const out = join(args.strace, `${role}.strace`);
        const t = spawn('strace', ['-f', '-ttt', '-T', '-e', 'trace=fdatasync,fsync,write,writev,sendto,read,epoll_wait,epoll_pwait', '-o', out, '-p', String(c.node(id).child!.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
        tracers.push(t);
        let err = '';
        t.stderr.on('data', (d: Buffer) => { err += d.toString(); });
        await waitFor(`strace to attach to ${id}`, () => /attached/.test(err), { timeoutMs: 30_000, intervalMs: 50 });
      }
    }
    await Promise.all(ids.map((id) => fetchSteps(c, id)));
    const client = new Map<number, { sent: number; got: number }>();
    const load0 = loadavg()[0]!;
    for (let i = 0; i < args.writes; i++) {
      const sent = nowUs();
      const index = await put();
      client.set(index, { sent, got: nowUs() });
    }
    const load1 = loadavg()[0]!;
    for (const t of tracers) {
      const exited = new Promise((r) => t.on('exit', r));
      t.kill('SIGINT');
      await exited;
    }
    const L = await fetchSteps(c, leader);
    const F = await Promise.all(followers.map((id) => fetchSteps(c, id)));
    const at = (s: Steps, step: string, i: number): number | undefined => s.get(step)?.get(i);
    const seg = new Map<string, number[]>();
    const add = (name: string, a: number | undefined, b: number | undefined): void => {
      if (a === undefined || b === undefined) return;
      const l = seg.get(name) ?? [];
      l.push(b - a);
      seg.set(name, l);
    };
    let leaderSaveLast = 0;
    for (const [i, cl] of client) {
      add('client send -> leader httpIn', cl.sent, at(L, 'httpIn', i));
      add('leader httpIn -> propose', at(L, 'httpIn', i), at(L, 'propose', i));
      add('leader propose -> send (Ready, appends out)', at(L, 'propose', i), at(L, 'send', i));
      add('leader send -> saveStart', at(L, 'send', i), at(L, 'saveStart', i));
      add('leader save (write + fdatasync)', at(L, 'saveStart', i), at(L, 'saveEnd', i));
      // The follower whose acknowledgement reached the leader first commits the write.
      const acks = F.map((f) => ({ f, t: at(L, 'recvAck', i) === undefined ? undefined : at(f, 'ack', i) })).filter((x) => x.t !== undefined).sort((a, b) => a.t! - b.t!);
      const f = acks[0]?.f;
      if (f !== undefined) {
        add('leader send -> follower recvAppend', at(L, 'send', i), at(f, 'recvAppend', i));
        add('follower recvAppend -> saveStart', at(f, 'recvAppend', i), at(f, 'saveStart', i));
        add('follower save (write + fdatasync)', at(f, 'saveStart', i), at(f, 'saveEnd', i));
        add('follower saveEnd -> ack sent', at(f, 'saveEnd', i), at(f, 'ack', i));
        add('follower ack sent -> leader recvAck', at(f, 'ack', i), at(L, 'recvAck', i));
      }
      const saveEnd = at(L, 'saveEnd', i);
      const recvAck = at(L, 'recvAck', i);
      const ackSent = f === undefined ? undefined : at(f, 'ack', i);
      if (saveEnd !== undefined && ackSent !== undefined && saveEnd > ackSent) leaderSaveLast++;
      add('leader recvAck -> commitReady', recvAck, at(L, 'commitReady', i));
      add('leader max(saveEnd, recvAck) -> commitReady', saveEnd !== undefined && recvAck !== undefined ? Math.max(saveEnd, recvAck) : undefined, at(L, 'commitReady', i));
      add('leader commitReady -> apply', at(L, 'commitReady', i), at(L, 'apply', i));
      add('leader apply -> httpOut', at(L, 'apply', i), at(L, 'httpOut', i));
      add('leader httpOut -> client', at(L, 'httpOut', i), cl.got);
      add('client total', cl.sent, cl.got);
    }
    console.log(`raft steps: ${args.writes} writes at concurrency 1 (after ${args.warmup}), leader ${leader}; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}${args.strace !== null ? '; under strace' : ''}`);
    for (const [name, xs] of seg) console.log(row(name, xs));
    console.log(`  the leader's own save ended after the first follower had sent its ack in ${leaderSaveLast} of ${client.size} writes`);
    if (args.strace !== null) {
      for (const role of ['leader', 'follower']) {
        console.log(`strace -T of the ${role} (durations of the calls, per write):`);
        for (const l of straceSummary(join(args.strace, `${role}.strace`), args.writes)) console.log(l);
      }
    }
  } finally {
    for (const t of tracers) if (t.exitCode === null && t.signalCode === null) t.kill('SIGKILL');
    // SIGTERM first, so that a node run with MANATEE_RAFT_NODE_ARGS=--cpu-prof writes its profile.
    await Promise.all(ids.map((id) => c.kill(id, 'SIGTERM')));
    await c.close();
    agent.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
