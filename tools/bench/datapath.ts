// Data-path benchmark: what the sitters cost PostgreSQL. pgbench against the dev shard's primary,
// read-write (TPC-B) and select-only, in interleaved rounds. In one kind of round the sitters run;
// in the other the same PostgreSQL processes run with every sitter paused by SIGSTOP, which shows
// the sitters' cost and nothing else. Each round starts from the same state (pgbench -i, CHECKPOINT).
//
//   npx tsx tools/bench/datapath.ts [--rounds 3] [--duration-s 15] [--clients 8] [--jobs 2] [--scale 10]
//        [--dir <dev shard dir> (default MANATEE_DEV_DIR or .dev-cluster, as tools/dev-cluster)] [--port-base <port>] [--kinds read-write,select-only]
//        [--modes running,paused[,batch]]
//        [--patroni] [--patroni-settings default|tuned] [--alternate-ms <ms>] [--warmup-s 30]
//
// It uses a running dev shard (tools/dev-cluster up) or starts one (then waits --warmup-s before the
// first round), and stops what it started. MANATEE_DEV_SITTER_CONFIG (tools/lib/dev-record.ts) sets
// the sitters' settings of a shard it starts.
// --modes attributes the cost: batch runs every sitter under SCHED_BATCH for the round (chrt: the same
// CPU share, but a sitter that wakes up no longer preempts the task on its CPU). Every mode is
// compared with `paused` (all sitters paused). Pausing one sitter alone is no baseline: its session
// expires within sessionTimeoutMs and the shard replaces that peer, as it must. Per round it also prints what the
// replication path's two processes waited for a CPU: the primary's walsender to the sync and the
// sync's walreceiver (/proc/<pid>/schedstat run delay, ms a second, and involuntary context
// switches a second from /proc/<pid>/status).
// Besides TPS and latency it prints, per round, what the sitters did meanwhile: new PostgreSQL
// connections a second on the three servers (pg_stat_database.sessions), WAL flushes a second on
// the primary (pg_stat_wal.wal_sync) and the sitters' CPU (utime + stime from /proc).
// With --alternate-ms W the two modes alternate within each pgbench run instead of between runs:
// every W ms all the sitters are paused (SIGSTOP) or resumed (SIGCONT), pgbench logs every
// transaction (-l), and each transaction counts for the window in which it ended. A running window
// and the paused window next to it form a pair; the figure is the ratio of their TPS, as a median
// and a geometric mean with its 95% interval over every pair of every round. Drifts that last longer
// than a window (the disk's flush latency, checkpoints, other work on the machine) hit both windows
// of a pair alike, which rounds minutes apart cannot promise. W stays below the primary's lease
// (sessionTimeoutMs less the drift and a margin, less a keepalive interval: 1335 - 300 ms at the
// defaults), so that no pause fences the primary; each running window then also holds the timers
// that came due during the pause before it, which counts against the sitters, not for them.
// With --patroni (Debian packages patroni and python3-pysyncobj) it then runs a Patroni cluster with
// synchronous_mode on the same machine the same way (Patroni running vs paused) and prints both ratios.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { SitterStatus } from '../../src/model/index.js';
import { pgdataOf, readRecord, type ClusterRecord, type RecordedProcess } from '../lib/dev-record.js';
import { isRunning } from '../lib/processes.js';
import { PatroniCluster, patroniInstalled, type PatroniSettings } from './patroni.js';
import { CounterReader, geometricInterval, initialise, median, readTransactionLog, runPgbench, windowPairs, type PgbenchResult, type PgTarget, type ServerCounters, type Window } from './pgbench.js';

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
    dir: { type: 'string' },
    'port-base': { type: 'string' },
    kinds: { type: 'string', default: 'read-write,select-only' },
    modes: { type: 'string', default: 'running,paused' },
    'alternate-ms': { type: 'string' },
    'warmup-s': { type: 'string', default: '30' },
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
const clusterDir = resolve(values.dir ?? process.env['MANATEE_DEV_DIR'] ?? join(root, '.dev-cluster'));
const portBase = values['port-base'] === undefined ? null : intArg('port-base', values['port-base'], 1024, 65000);
const CLOCK_TICKS_PER_S = 100;

const KINDS = ['read-write', 'select-only'] as const;
type Kind = typeof KINDS[number];
const MODES = ['running', 'paused', 'batch'] as const;
type Mode = typeof MODES[number];

function listArg<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T[] {
  const out = (v ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const x of out) if (!(allowed as readonly string[]).includes(x)) throw new Error(`--${name}: ${x} is not one of ${allowed.join(', ')}`);
  if (out.length === 0) throw new Error(`--${name} names nothing (one or more of ${allowed.join(', ')})`);
  return [...new Set(out)] as T[];
}
const kinds = listArg('kinds', values.kinds, KINDS);
const modes = listArg('modes', values.modes, MODES);
if (!modes.includes('paused')) modes.push('paused'); // the baseline every mode is compared with
const warmupS = intArg('warmup-s', values['warmup-s'], 0, 3600);
const alternateMs = values['alternate-ms'] === undefined ? null : intArg('alternate-ms', values['alternate-ms'], 100, 1000);
if (alternateMs !== null && modes.some((m) => m !== 'running' && m !== 'paused')) throw new Error('--alternate-ms alternates running and paused only (leave batch out of --modes)');
if (alternateMs !== null && alternateMs * 4 > durationS * 1000) throw new Error(`--duration-s ${durationS} holds fewer than 4 windows of --alternate-ms ${alternateMs}`);

interface Round {
  readonly kind: Kind;
  readonly mode: Mode;
  readonly result: PgbenchResult;
  readonly sessionsPerS: number;
  readonly walSyncPerS: number;
  readonly managerCpuPct: number;
  readonly load1: number;
  readonly path: PathWaits | null;
  /** CPU ms per pgbench transaction: all the servers' PostgreSQL processes, and the managers. */
  readonly pgCpuMsPerTx: number;
  readonly managerCpuMsPerTx: number;
}

interface ReplicationPids {
  readonly walsender: number | null;
  readonly walreceiver: number | null;
}

/** A process's CPU waits: run delay (ns waiting on a run queue) and involuntary context switches. */
interface Waits {
  readonly runDelayNs: number;
  readonly involuntary: number;
}

/** What the replication path's processes waited for a CPU during a round, per second. */
interface PathWaits {
  readonly walsenderDelayMsPerS: number;
  readonly walsenderInvPerS: number;
  readonly walreceiverDelayMsPerS: number;
  readonly walreceiverInvPerS: number;
}

function waitsOf(pid: number | null): Waits | null {
  if (pid === null) return null;
  try {
    // schedstat: time on the CPU (ns), time waiting on a run queue (ns), timeslices.
    const runDelayNs = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
    const involuntary = Number(/^nonvoluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return Number.isFinite(runDelayNs) && Number.isFinite(involuntary) ? { runDelayNs, involuntary } : null;
  } catch {
    return null;
  }
}

function pathWaits(before: readonly (Waits | null)[], after: readonly (Waits | null)[], elapsedS: number): PathWaits | null {
  const d = (i: number): { delay: number; inv: number } => {
    const b = before[i];
    const a = after[i];
    return b === null || a === null || b === undefined || a === undefined
      ? { delay: NaN, inv: NaN }
      : { delay: (a.runDelayNs - b.runDelayNs) / 1e6 / elapsedS, inv: (a.involuntary - b.involuntary) / elapsedS };
  };
  if (before.length < 2) return null;
  const s = d(0);
  const r = d(1);
  return { walsenderDelayMsPerS: s.delay, walsenderInvPerS: s.inv, walreceiverDelayMsPerS: r.delay, walreceiverInvPerS: r.inv };
}

const STAT_FIELDS_AFTER_COMM = (stat: string): string[] => stat.slice(stat.lastIndexOf(')') + 2).split(' ');

/**
 * CPU ticks of a postmaster's tree: its own, its reaped children's (cutime + cstime: the backends
 * that exited) and its live children's. null when the postmaster is gone (a restart in between).
 */
function treeTicks(postmaster: number): number | null {
  try {
    const f = STAT_FIELDS_AFTER_COMM(readFileSync(`/proc/${postmaster}/stat`, 'utf8'));
    let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const c = STAT_FIELDS_AFTER_COMM(readFileSync(`/proc/${d}/stat`, 'utf8'));
        if (Number(c[1]) === postmaster) ticks += Number(c[11]) + Number(c[12]);
      } catch {
        // exited meanwhile: its ticks are in the postmaster's cutime now or soon
      }
    }
    return ticks;
  } catch {
    return null;
  }
}

function sumTicks(pids: readonly number[]): number | null {
  let sum = 0;
  for (const pid of pids) {
    const t = treeTicks(pid);
    if (t === null) return null;
    sum += t;
  }
  return sum;
}

function chrtAll(pids: readonly number[], policy: '--batch' | '--other'): void {
  for (const pid of pids) {
    const r = spawnSync('chrt', ['--all-tasks', policy, '--pid', '0', String(pid)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`chrt ${policy} ${pid} failed: ${(r.stderr || r.error?.message) ?? r.status}`);
  }
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
  /** The primary's walsender to the sync and the sync's walreceiver now (Manatee only). */
  replicationPids?(): Promise<ReplicationPids>;
  /** The postmasters of every server now (Manatee only). */
  postmasterPids?(): number[];
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
  const paused = mode === 'paused' ? pids : [];
  const repl = sys.replicationPids === undefined ? null : await sys.replicationPids();
  const before = await countersOf(servers);
  const cpuBefore = pids.map(cpuTicks);
  const waitsBefore = repl === null ? [] : [waitsOf(repl.walsender), waitsOf(repl.walreceiver)];
  const postmasters = sys.postmasterPids?.() ?? [];
  const pgTicksBefore = sumTicks(postmasters);
  const startedMs = Date.now();
  if (mode === 'batch') chrtAll(pids, '--batch');
  signalAll(paused, 'SIGSTOP');
  let result: PgbenchResult;
  let after: ServerCounters[];
  let cpuAfter: number[];
  let waitsAfter: (Waits | null)[];
  let pgTicksAfter: number | null;
  let elapsedS: number;
  try {
    result = await runPgbench(primary, { selectOnly: kind === 'select-only', clients, jobs, durationS });
    // Read while the sitters are still paused: once resumed, a primary's sitter whose lease ran out
    // during the pause fences itself (stops its PostgreSQL until a keepalive is acknowledged), as it must.
    elapsedS = (Date.now() - startedMs) / 1000;
    cpuAfter = pids.map(cpuTicks);
    waitsAfter = repl === null ? [] : [waitsOf(repl.walsender), waitsOf(repl.walreceiver)];
    // pgbench has exited: its backends' CPU is in their postmaster's cutime + cstime.
    pgTicksAfter = sumTicks(postmasters);
    after = await countersOf(servers);
  } finally {
    signalAll(paused, 'SIGCONT');
    if (mode === 'batch') chrtAll(pids, '--other');
  }
  if (paused.length > 0) await sleep(RESUME_SETTLE_MS);
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
    path: pathWaits(waitsBefore, waitsAfter, elapsedS),
    pgCpuMsPerTx: pgTicksBefore === null || pgTicksAfter === null || postmasters.length === 0 ? NaN
      : ((pgTicksAfter - pgTicksBefore) * 1000) / CLOCK_TICKS_PER_S / result.transactions,
    managerCpuMsPerTx: (cpuS * 1000) / result.transactions,
  };
  const p = round.path;
  console.log(`  ${sys.name} ${kind.padEnd(11)} ${mode.padEnd(14)} tps ${result.tps.toFixed(1).padStart(8)}  latency ${result.latencyMs.toFixed(3).padStart(7)} ms  ` +
    `new connections ${round.sessionsPerS.toFixed(2)}/s  primary WAL flushes ${round.walSyncPerS.toFixed(1)}/s  ` +
    `managers' CPU ${round.managerCpuPct.toFixed(1)}% of a core  CPU ms a transaction: PostgreSQL ${round.pgCpuMsPerTx.toFixed(3)}, managers ${round.managerCpuMsPerTx.toFixed(3)}  load ${round.load1.toFixed(2)}` +
    (p === null ? '' : `  run delay walsender ${p.walsenderDelayMsPerS.toFixed(1)} ms/s (${p.walsenderInvPerS.toFixed(0)} preempted/s), ` +
      `walreceiver ${p.walreceiverDelayMsPerS.toFixed(1)} ms/s (${p.walreceiverInvPerS.toFixed(0)} preempted/s)`) +
    (result.failed > 0 ? `  FAILED transactions ${result.failed}` : '') + (changed === null ? '' : `  (${changed})`));
  return round;
}

async function runRounds(sys: System): Promise<Round[]> {
  const out: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const kind of kinds) {
      // Rotate the order of the modes each round, and reverse it every other cycle, so that no mode
      // always comes first or always follows another (two modes: RP, PR, PR, RP, ...).
      const rotated = modes.map((_, i) => modes[(i + r) % modes.length] as Mode);
      const order = Math.floor(r / modes.length) % 2 === 0 ? rotated : rotated.reverse();
      for (const mode of order) out.push(await oneRound(sys, kind, mode));
    }
  }
  return out;
}

interface Summary {
  readonly kind: Kind;
  readonly tps: Record<'running' | 'paused', number>;
  readonly latencyMs: Record<'running' | 'paused', number>;
}

function summarise(name: string, all: readonly Round[]): Summary[] {
  const out: Summary[] = [];
  console.log(`\n${name}: medians of ${rounds} rounds each (pgbench -n -c ${clients} -j ${jobs} -T ${durationS}, scale ${scale})`);
  for (const kind of kinds) {
    const of = (mode: Mode): Round[] => all.filter((x) => x.kind === kind && x.mode === mode);
    const med = (mode: Mode, f: (x: Round) => number): number => median(of(mode).map(f));
    const tps = { running: med('running', (x) => x.result.tps), paused: med('paused', (x) => x.result.tps) };
    const lat = { running: med('running', (x) => x.result.latencyMs), paused: med('paused', (x) => x.result.latencyMs) };
    const conn = med('running', (x) => x.sessionsPerS);
    const cpu = med('running', (x) => x.managerCpuPct);
    if (modes.includes('running')) {
      console.log(`  ${kind.padEnd(11)} tps running ${tps.running.toFixed(1)}, paused ${tps.paused.toFixed(1)}: ratio ${(tps.running / tps.paused).toFixed(3)}x` +
        `   latency running ${lat.running.toFixed(3)} ms, paused ${lat.paused.toFixed(3)} ms: ratio ${(lat.running / lat.paused).toFixed(3)}x` +
        `   (running: ${conn.toFixed(2)} new connections/s, managers' CPU ${cpu.toFixed(1)}%)`);
    }
    // Each round's own pair: the mode's TPS over the all-paused round of the same round number.
    const pausedByRound = of('paused').map((x) => x.result.tps);
    for (const mode of modes) {
      const rs = of(mode);
      const pairs = rs.map((x, i) => x.result.tps / (pausedByRound[i] ?? NaN));
      const p = rs.map((x) => x.path).filter((x): x is PathWaits => x !== null);
      console.log(`    ${mode.padEnd(14)} tps ${med(mode, (x) => x.result.tps).toFixed(1).padStart(8)}  ratio to paused ${(med(mode, (x) => x.result.tps) / tps.paused).toFixed(3)}x ` +
        `(pairs ${pairs.map((x) => x.toFixed(2)).join(', ')})  CPU ms a transaction: PostgreSQL ${med(mode, (x) => x.pgCpuMsPerTx).toFixed(3)}, ` +
        `managers ${med(mode, (x) => x.managerCpuMsPerTx).toFixed(3)}` +
        (p.length === 0 ? '' : `  run delay walsender ${median(p.map((x) => x.walsenderDelayMsPerS)).toFixed(1)} ms/s, ${median(p.map((x) => x.walsenderInvPerS)).toFixed(0)} preempted/s; ` +
          `walreceiver ${median(p.map((x) => x.walreceiverDelayMsPerS)).toFixed(1)} ms/s, ${median(p.map((x) => x.walreceiverInvPerS)).toFixed(0)} preempted/s`));
    }
    out.push({ kind, tps, latencyMs: lat });
  }
  return out;
}

// ---------------------------------------------------------------- alternating windows (--alternate-ms)

interface AltRound {
  readonly kind: Kind;
  /** TPS of the running window over the paused window next to it, for each pair. */
  readonly pairs: number[];
  readonly runningTps: number;
  readonly pausedTps: number;
  /** The sitters' CPU over the time they ran (the running windows), % of one core. */
  readonly managerCpuPctRunning: number;
  readonly failed: number;
}

async function alternatingRound(sys: System, kind: Kind, r: number, windowMs: number): Promise<AltRound> {
  const primary = await sys.primary();
  await initialise(primary, scale);
  const pids = sys.managerPids();
  const dir = mkdtempSync(join(tmpdir(), 'datapath-tx-'));
  const windows: Window[] = [];
  let mode: Window['mode'] = r % 2 === 0 ? 'running' : 'paused';
  const ctl = { stop: false };
  const cpuBefore = pids.map(cpuTicks);
  const t0 = Date.now();
  if (mode === 'paused') signalAll(pids, 'SIGSTOP');
  // Each switch is due at t0 + k·W (no drift from late timers); the windows record when it happened.
  const toggler = (async (): Promise<void> => {
    let start = t0;
    for (let k = 1; ; k++) {
      await sleep(Math.max(0, t0 + k * windowMs - Date.now()));
      if (ctl.stop) return;
      const now = Date.now();
      signalAll(pids, mode === 'paused' ? 'SIGCONT' : 'SIGSTOP');
      windows.push({ mode, startMs: start, endMs: now });
      mode = mode === 'paused' ? 'running' : 'paused';
      start = now;
    }
  })();
  let result: PgbenchResult;
  let cpuAfter: number[];
  try {
    result = await runPgbench(primary, { selectOnly: kind === 'select-only', clients, jobs, durationS, logPrefix: join(dir, 'tx') });
  } finally {
    ctl.stop = true;
    await toggler;
    signalAll(pids, 'SIGCONT');
    cpuAfter = pids.map(cpuTicks);
  }
  let ends: Float64Array;
  try {
    ends = readTransactionLog(join(dir, 'tx'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const { pairs, running, paused } = windowPairs(windows, ends);
  const cpuS = cpuAfter.reduce((a, c, i) => a + c - (cpuBefore[i] ?? 0), 0) / CLOCK_TICKS_PER_S;
  const runningMsAll = windows.filter((w) => w.mode === 'running').reduce((a, w) => a + w.endMs - w.startMs, 0);
  const changed = await sys.settle();
  const round: AltRound = {
    kind, pairs,
    runningTps: (1000 * running.tx) / running.ms,
    pausedTps: (1000 * paused.tx) / paused.ms,
    managerCpuPctRunning: runningMsAll > 0 ? (100 * cpuS * 1000) / runningMsAll : NaN,
    failed: result.failed,
  };
  console.log(`  ${sys.name} ${kind.padEnd(11)} round ${r + 1}: ${pairs.length} pairs of ${windowMs} ms windows  tps running ${round.runningTps.toFixed(1)}, paused ${round.pausedTps.toFixed(1)}: ` +
    `${(round.runningTps / round.pausedTps).toFixed(3)}x, pairs median ${median(pairs).toFixed(3)}x  managers' CPU ${round.managerCpuPctRunning.toFixed(1)}% of a core while running  ` +
    `load ${(loadavg()[0] ?? NaN).toFixed(2)}` + (result.failed > 0 ? `  FAILED transactions ${result.failed}` : '') + (changed === null ? '' : `  (${changed})`));
  return round;
}

async function runAlternating(sys: System, windowMs: number): Promise<Summary[]> {
  const all: AltRound[] = [];
  for (let r = 0; r < rounds; r++) for (const kind of kinds) all.push(await alternatingRound(sys, kind, r, windowMs));
  console.log(`\n${sys.name}: ${rounds} rounds per kind of pgbench -n -c ${clients} -j ${jobs} -T ${durationS} (scale ${scale}), the sitters paused and resumed every ${windowMs} ms`);
  const out: Summary[] = [];
  for (const kind of kinds) {
    const rs = all.filter((x) => x.kind === kind);
    const pairs = rs.flatMap((x) => x.pairs);
    const g = geometricInterval(pairs);
    const tps = { running: median(rs.map((x) => x.runningTps)), paused: median(rs.map((x) => x.pausedTps)) };
    console.log(`  ${kind.padEnd(11)} ${pairs.length} pairs: running over paused, median ${median(pairs).toFixed(3)}x, geometric mean ${g.mean.toFixed(3)}x (95% ${g.low.toFixed(3)}-${g.high.toFixed(3)}); ` +
      `rounds' tps running ${tps.running.toFixed(1)}, paused ${tps.paused.toFixed(1)} (rounds' ratios ${rs.map((x) => (x.runningTps / x.pausedTps).toFixed(3)).join(', ')}); ` +
      `managers' CPU ${median(rs.map((x) => x.managerCpuPctRunning)).toFixed(1)}% of a core while running; failed transactions ${rs.reduce((a, x) => a + x.failed, 0)}`);
    out.push({ kind, tps, latencyMs: { running: NaN, paused: NaN } });
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
  const args = [join(root, 'tools/dev-cluster'), cmd, '--dir', clusterDir, ...(cmd === 'up' ? ['--no-tls'] : []),
    ...(cmd === 'up' && portBase !== null ? ['--port-base', String(portBase)] : [])];
  const r = spawnSync('bash', args, { cwd: root, stdio: 'inherit' });
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
    postmasterPids() {
      const out: number[] = [];
      for (const p of rec.peers) {
        try {
          const pid = Number(readFileSync(join(pgdataOf(p), 'postmaster.pid'), 'utf8').split('\n')[0]);
          if (Number.isInteger(pid) && pid > 0) out.push(pid);
        } catch {
          // not running
        }
      }
      return out;
    },
    async replicationPids() {
      const s = await writablePrimary(120_000);
      const primaryPeer = rec.peers.find((p) => p.id === s.peer.id);
      if (primaryPeer === undefined) return { walsender: null, walreceiver: null };
      const one = async <R extends Record<string, unknown>>(port: number, sql: string): Promise<R | undefined> => {
        const c = new pg.Client({ ...target(port), connectionTimeoutMillis: 10_000, application_name: 'datapath-bench' });
        c.on('error', () => undefined);
        await c.connect();
        try {
          return (await c.query<R>(sql)).rows[0];
        } finally {
          await c.end().catch(() => undefined);
        }
      };
      const ws = await one<{ pid: number; application_name: string }>(primaryPeer.pgPort, "SELECT pid, application_name FROM pg_stat_replication WHERE sync_state = 'sync'");
      const syncPeer = rec.peers.find((p) => p.id === ws?.application_name);
      const wr = syncPeer === undefined ? undefined : await one<{ pid: number }>(syncPeer.pgPort, 'SELECT pid FROM pg_stat_wal_receiver');
      return { walsender: ws?.pid ?? null, walreceiver: wr?.pid ?? null };
    },
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
      // A shard just started is still settling (the async's copy, the sitters' code compiling): the
      // first round would count that against the sitters (7-8% of a core against 4-5% later).
      console.log(`warming up for ${warmupS} s (--warmup-s)`);
      await sleep(warmupS * 1000);
    } else if (existing.tls !== undefined) {
      throw new Error('the running dev shard uses TLS; this benchmark measures the plain data path (as its baselines): run tools/dev-cluster down first, or up --no-tls');
    } else {
      console.log('using the running dev shard');
    }
    try {
      const rec = record();
      if (rec === null) throw new Error(`no ${clusterDir}/cluster.json after tools/dev-cluster up`);
      const sys = manateeSystem(rec);
      manatee = alternateMs !== null ? await runAlternating(sys, alternateMs) : summarise('manatee (3 sitters, defaults)', await runRounds(sys));
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
        const psys = patroniSystem(c);
        const patroni = alternateMs !== null ? await runAlternating(psys, alternateMs)
          : summarise(`patroni (ttl ${patroniSettings.ttl}, loop_wait ${patroniSettings.loopWait})`, await runRounds(psys));
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
