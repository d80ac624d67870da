// Data-path benchmark: what the sitters cost PostgreSQL. pgbench against the dev shard's primary,
// read-write (TPC-B) and select-only, in interleaved rounds. In one kind of round the sitters run;
// in the other the same PostgreSQL processes run with every sitter paused by SIGSTOP, which shows
// the sitters' cost and nothing else. Each round starts from the same state (pgbench -i, CHECKPOINT).
//
//   npx tsx tools/bench/datapath.ts [--rounds 3] [--duration-s 15] [--clients 8] [--jobs 2] [--scale 10]
//        [--patroni] [--patroni-settings default|tuned]
//
// It uses a running dev shard (tools/dev-cluster up) or starts one, and stops what it started.
// Besides TPS and latency it prints, per round, what the sitters did meanwhile: new PostgreSQL
// connections a second on the three servers (pg_stat_database.sessions), WAL flushes a second on
// the primary (pg_stat_wal.wal_sync) and the sitters' CPU (utime + stime from /proc).
// With --patroni (Debian packages patroni and python3-pysyncobj) it then runs a Patroni cluster with
// synchronous_mode on the same machine the same way (Patroni running vs paused) and prints both ratios.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { SitterStatus } from '../../src/model/index.js';
import { readRecord, type ClusterRecord, type RecordedProcess } from '../lib/dev-record.js';
import { isRunning } from '../lib/processes.js';
import { PatroniCluster, patroniInstalled, type PatroniSettings } from './patroni.js';
import { CounterReader, initialise, median, runPgbench, type PgbenchResult, type PgTarget, type ServerCounters } from './pgbench.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    'duration-s': { type: 'string', default: '15' },
    clients: { type: 'string', default: '8' },
    jobs: { type: 'string', default: '2' },
    scale: { type: 'string', default: '10' },
    patroni: { type: 'boolean', default: false },
    'patroni-settings': { type: 'string', default: 'default' },
    'no-manatee': { type: 'boolean', default: false },
  },
});

function intArg(name: string, v: string | undefined, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in ${min}..${max} (got ${v ?? 'nothing'})`);
  return n;
}

const rounds = intArg('rounds', values.rounds, 1, 50);
const durationS = intArg('duration-s', values['duration-s'], 1, 3600);
const clients = intArg('clients', values.clients, 1, 100);
const jobs = intArg('jobs', values.jobs, 1, 100);
const scale = intArg('scale', values.scale, 1, 1000);
const patroniSettings: PatroniSettings = values['patroni-settings'] === 'tuned'
  ? { ttl: 10, loopWait: 1, retryTimeout: 3 }
  : values['patroni-settings'] === 'default' ? { ttl: 30, loopWait: 10, retryTimeout: 10 }
    : (() => { throw new Error('--patroni-settings must be default or tuned'); })();

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const clusterDir = join(root, '.dev-cluster');
const CLOCK_TICKS_PER_S = 100;

type Kind = 'read-write' | 'select-only';
type Mode = 'running' | 'paused';

interface Round {
  readonly kind: Kind;
  readonly mode: Mode;
  readonly result: PgbenchResult;
  readonly sessionsPerS: number;
  readonly walSyncPerS: number;
  readonly managerCpuPct: number;
  readonly load1: number;
}

/** One system under test: Manatee's dev shard or Patroni. */
interface System {
  readonly name: string;
  /** The primary now, after waiting for it to take writes. */
  primary(): Promise<PgTarget>;
  /** Every PostgreSQL server of the cluster (for the session counters). */
  servers(): PgTarget[];
  /** The manager processes paused in a paused round (and whose CPU is counted). */
  managerPids(): number[];
  /** After the managers resume: wait until the cluster takes writes again, and say what changed. */
  settle(): Promise<string | null>;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

function cpuTicks(pid: number): number {
  try {
    // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

function signalAll(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) process.kill(pid, sig);
}

async function countersOf(targets: readonly PgTarget[]): Promise<ServerCounters[]> {
  return Promise.all(targets.map(async (t) => {
    const r = await CounterReader.open(t);
    try {
      return await r.read();
    } finally {
      await r.close();
    }
  }));
}

/**
 * After the sitters resume: long enough for the primary's lease fence to act on the pause (at its
 * first check) and for the primary's next keepalive to be acknowledged; settle() then waits for a
 * writable primary again.
 */
const RESUME_SETTLE_MS = 3000;

async function oneRound(sys: System, kind: Kind, mode: Mode): Promise<Round> {
  const primary = await sys.primary();
  await initialise(primary, scale);
  const servers = sys.servers();
  const primaryIndex = servers.findIndex((s) => s.port === primary.port);
  const pids = sys.managerPids();
  const before = await countersOf(servers);
  const cpuBefore = pids.map(cpuTicks);
  const startedMs = Date.now();
  if (mode === 'paused') signalAll(pids, 'SIGSTOP');
  let result: PgbenchResult;
  let after: ServerCounters[];
  let cpuAfter: number[];
  let elapsedS: number;
  try {
    result = await runPgbench(primary, { selectOnly: kind === 'select-only', clients, jobs, durationS });
    // Read while the sitters are still paused: once resumed, a primary's sitter whose lease ran out
    // during the pause fences itself (stops its PostgreSQL until a keepalive is acknowledged), as it must.
    elapsedS = (Date.now() - startedMs) / 1000;
    cpuAfter = pids.map(cpuTicks);
    after = await countersOf(servers);
  } finally {
    if (mode === 'paused') signalAll(pids, 'SIGCONT');
  }
  if (mode === 'paused') await sleep(RESUME_SETTLE_MS);
  // The bench's own connection (one per server, above) is not the managers' doing.
  const sessions = after.reduce((a, c, i) => a + c.sessions - (before[i]?.sessions ?? 0) - 1, 0);
  const pb = before[primaryIndex];
  const pa = after[primaryIndex];
  const walSync = pa !== undefined && pb !== undefined ? pa.walSync - pb.walSync : NaN;
  const cpuS = cpuAfter.reduce((a, c, i) => a + c - (cpuBefore[i] ?? 0), 0) / CLOCK_TICKS_PER_S;
  const changed = await sys.settle();
  const round: Round = {
    kind, mode, result,
    // pgbench's own connections (one per client, and one that reads the scale) are not the managers' either.
    sessionsPerS: (sessions - clients - 1) / elapsedS,
    walSyncPerS: walSync / elapsedS,
    managerCpuPct: (100 * cpuS) / elapsedS,
    load1: loadavg()[0] ?? NaN,
  };
  console.log(`  ${sys.name} ${kind.padEnd(11)} ${mode.padEnd(7)} tps ${result.tps.toFixed(1).padStart(8)}  latency ${result.latencyMs.toFixed(3).padStart(7)} ms  ` +
    `new connections ${round.sessionsPerS.toFixed(2)}/s  primary WAL flushes ${round.walSyncPerS.toFixed(1)}/s  ` +
    `managers' CPU ${round.managerCpuPct.toFixed(1)}% of a core  load ${round.load1.toFixed(2)}` +
    (result.failed > 0 ? `  FAILED transactions ${result.failed}` : '') + (changed === null ? '' : `  (${changed})`));
  return round;
}

async function runRounds(sys: System): Promise<Round[]> {
  const out: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const kind of ['read-write', 'select-only'] as const) {
      // Alternate which mode goes first, so that neither always follows the other.
      const order: Mode[] = r % 2 === 0 ? ['running', 'paused'] : ['paused', 'running'];
      for (const mode of order) out.push(await oneRound(sys, kind, mode));
    }
  }
  return out;
}

interface Summary {
  readonly kind: Kind;
  readonly tps: Record<Mode, number>;
  readonly latencyMs: Record<Mode, number>;
}

function summarise(name: string, all: readonly Round[]): Summary[] {
  const out: Summary[] = [];
  console.log(`\n${name}: medians of ${rounds} rounds each (pgbench -n -c ${clients} -j ${jobs} -T ${durationS}, scale ${scale})`);
  for (const kind of ['read-write', 'select-only'] as const) {
    const of = (mode: Mode): Round[] => all.filter((x) => x.kind === kind && x.mode === mode);
    const tps = { running: median(of('running').map((x) => x.result.tps)), paused: median(of('paused').map((x) => x.result.tps)) };
    const lat = { running: median(of('running').map((x) => x.result.latencyMs)), paused: median(of('paused').map((x) => x.result.latencyMs)) };
    const conn = median(of('running').map((x) => x.sessionsPerS));
    const cpu = median(of('running').map((x) => x.managerCpuPct));
    console.log(`  ${kind.padEnd(11)} tps running ${tps.running.toFixed(1)}, paused ${tps.paused.toFixed(1)}: ratio ${(tps.running / tps.paused).toFixed(3)}x` +
      `   latency running ${lat.running.toFixed(3)} ms, paused ${lat.paused.toFixed(3)} ms: ratio ${(lat.running / lat.paused).toFixed(3)}x` +
      `   (running: ${conn.toFixed(2)} new connections/s, managers' CPU ${cpu.toFixed(1)}%)`);
    out.push({ kind, tps, latencyMs: lat });
  }
  return out;
}

// ---------------------------------------------------------------- Manatee's dev shard

function record(): ClusterRecord | null {
  return readRecord(clusterDir);
}

/** The dev shard's sitters that run now (the newest recorded one of each peer). */
function runningSitters(r: ClusterRecord): RecordedProcess[] {
  const out: RecordedProcess[] = [];
  for (const p of r.peers) {
    const s = r.processes.filter((x) => x.kind === 'sitter' && x.peer === p.id).at(-1);
    if (s !== undefined && isRunning(s)) out.push(s);
  }
  return out;
}

function devCluster(cmd: 'up' | 'down'): void {
  // Plain TCP: pgbench and the baselines it is compared with connect without TLS.
  const r = spawnSync('bash', [join(root, 'tools/dev-cluster'), cmd, ...(cmd === 'up' ? ['--no-tls'] : [])], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`tools/dev-cluster ${cmd} exited with ${r.status ?? r.signal ?? '?'}`);
}

async function fetchStatus(apiUrl: string): Promise<SitterStatus | null> {
  try {
    const res = await fetch(`${apiUrl}/status`, { signal: AbortSignal.timeout(3000) });
    return res.ok ? ((await res.json()) as SitterStatus) : null;
  } catch {
    return null;
  }
}

function manateeSystem(rec: ClusterRecord): System {
  const sitters = runningSitters(rec);
  if (sitters.length !== rec.peers.length) throw new Error(`only ${sitters.length} of the dev shard's ${rec.peers.length} sitters run`);
  const target = (port: number): PgTarget => ({ host: '127.0.0.1', port, user: 'postgres', password: rec.superuserPassword, database: 'postgres' });
  let generation: number | null = null;
  let primaryId: string | null = null;
  const writablePrimary = async (timeoutMs: number): Promise<SitterStatus> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const all = await Promise.all(rec.peers.map((p) => fetchStatus(p.apiUrl)));
      const p = all.find((s) => s?.role === 'primary' && s.postgres.writable);
      if (p !== undefined && p !== null) return p;
      if (Date.now() > deadline) throw new Error(`the dev shard has no writable primary after ${timeoutMs} ms`);
      await sleep(250);
    }
  };
  return {
    name: 'manatee',
    async primary() {
      const s = await writablePrimary(120_000);
      generation ??= s.state?.generation ?? null;
      primaryId ??= s.peer.id;
      const peer = rec.peers.find((p) => p.id === s.peer.id);
      if (peer === undefined) throw new Error(`primary ${s.peer.id} is not a dev-cluster peer`);
      return target(peer.pgPort);
    },
    servers: () => rec.peers.map((p) => target(p.pgPort)),
    managerPids: () => sitters.map((x) => x.pid),
    async settle() {
      const s = await writablePrimary(120_000);
      const g = s.state?.generation ?? null;
      const what = g !== generation || s.peer.id !== primaryId ? `generation ${generation ?? '-'} -> ${g ?? '-'}, primary ${primaryId ?? '-'} -> ${s.peer.id}` : null;
      generation = g;
      primaryId = s.peer.id;
      return what;
    },
  };
}

// ---------------------------------------------------------------- Patroni

function patroniSystem(c: PatroniCluster): System {
  const target = (port: number): PgTarget => ({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  let leader: string | null = null;
  return {
    name: 'patroni',
    async primary() {
      const n = await c.waitReady(120_000);
      leader ??= n.name;
      return target(n.pgPort);
    },
    servers: () => c.nodes.map((n) => target(n.pgPort)),
    managerPids: () => c.nodes.map((n) => n.pid),
    async settle() {
      const n = await c.waitReady(120_000);
      const what = n.name !== leader ? `leader ${leader ?? '-'} -> ${n.name}` : null;
      leader = n.name;
      return what;
    },
  };
}

async function main(): Promise<void> {
  console.log(`data-path benchmark: ${rounds} interleaved rounds per kind and mode; load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  let manatee: Summary[] | null = null;
  if (!values['no-manatee']) {
    let started = false;
    const existing = record();
    if (existing === null || runningSitters(existing).length !== existing.peers.length) {
      console.log('starting the dev shard (tools/dev-cluster up --no-tls)');
      devCluster('up');
      started = true;
    } else if (existing.tls !== undefined) {
      throw new Error('the running dev shard uses TLS; this benchmark measures the plain data path (as its baselines): run tools/dev-cluster down first, or up --no-tls');
    } else {
      console.log('using the running dev shard');
    }
    try {
      const rec = record();
      if (rec === null) throw new Error(`no ${clusterDir}/cluster.json after tools/dev-cluster up`);
      manatee = summarise('manatee (3 sitters, defaults)', await runRounds(manateeSystem(rec)));
    } finally {
      if (started) devCluster('down');
    }
  }
  if (values.patroni) {
    if (!patroniInstalled()) {
      console.log('\npatroni: not installed (apt-get install -y patroni python3-pysyncobj); skipped');
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'datapath-patroni-'));
      console.log(`\nstarting Patroni (synchronous_mode, ttl ${patroniSettings.ttl}, loop_wait ${patroniSettings.loopWait}, retry_timeout ${patroniSettings.retryTimeout}) in ${dir}`);
      const c = PatroniCluster.start(dir, patroniSettings);
      try {
        await c.waitReady(180_000);
        const patroni = summarise(`patroni (ttl ${patroniSettings.ttl}, loop_wait ${patroniSettings.loopWait})`, await runRounds(patroniSystem(c)));
        if (manatee !== null) {
          console.log('\nmanatee against patroni (each system running, against its own paused baseline):');
          for (const m of manatee) {
            const p = patroni.find((x) => x.kind === m.kind);
            if (p === undefined) continue;
            console.log(`  ${m.kind.padEnd(11)} manatee ${(m.tps.running / m.tps.paused).toFixed(3)}x, patroni ${(p.tps.running / p.tps.paused).toFixed(3)}x; ` +
              `running tps manatee ${m.tps.running.toFixed(1)} / patroni ${p.tps.running.toFixed(1)} = ${(m.tps.running / p.tps.running).toFixed(3)}x`);
          }
        }
      } finally {
        await c.stop();
      }
    }
  }
  console.log(`\nload average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(`datapath benchmark failed: ${(err as Error).message}`);
  process.exitCode = 1;
});
