// Benchmark: how long a hung local PostgreSQL holds the sitter's evaluation loop. A three-peer test
// shard (tools/lib/shard.ts, ephemeral ports, pgUnhealthyTimeoutMs 5000) is started; the chosen
// peer's postmaster and backends are SIGSTOPped; its GET /status is polled every 250 ms for
// --seconds, and the longest evaluation seen in progress (loop.evaluatingSince) is printed with
// how long PostgreSQL had been unhealthy when the sitter closed its session (limit 5000 ms), and
// the sitter's decisions meanwhile. The processes are continued and the shard torn down at the end.
//
//   npx tsx tools/bench/hung-pg.ts [--role sync|primary] [--seconds 25]
//
// Wall-clock figures: say the load (printed) beside them; compare runs taken in the same period.
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Shard } from '../lib/shard.js';
import { postgresProcesses, signalPids } from '../lib/processes.js';

const { values } = parseArgs({ options: { role: { type: 'string', default: 'sync' }, seconds: { type: 'string', default: '25' } } });
const role = values.role;
const seconds = Number(values.seconds);
if (role !== 'sync' && role !== 'primary') throw new Error(`--role: expected sync or primary, not ${role}`);
if (!Number.isInteger(seconds) || seconds < 5 || seconds > 600) throw new Error(`--seconds: expected an integer from 5 to 600, not ${values.seconds}`);


const shard = await Shard.create({ peers: 3, prefix: 'hungpg', timeouts: { sessionTimeoutMs: 2000, keepaliveIntervalMs: 400, pgUnhealthyTimeoutMs: 5000 } });
let stopped: number[] = [];
try {
  const chain = await shard.waitForChain();
  const peer = role === 'primary' ? chain.primary : chain.sync;
  const postmaster = shard.postgresPid(peer);
  if (postmaster === null) throw new Error(`${peer.id}: no postmaster`);
  stopped = postgresProcesses(postmaster);
  console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; SIGSTOP of ${peer.id}'s (the ${role}'s) PostgreSQL: ${stopped.length} processes`);
  signalPids(stopped, 'SIGSTOP');
  const t0 = Date.now();
  /** Each poll: when, and since when an evaluation was in progress (null: none). */
  const samples: { atMs: number; sinceMs: number | null }[] = [];
  while (Date.now() - t0 < seconds * 1000) {
    const since = (await shard.statusOf(peer))?.loop.evaluatingSince ?? null;
    samples.push({ atMs: Date.now(), sinceMs: since === null ? null : Date.parse(since) });
    await new Promise((r) => setTimeout(r, 250));
  }
  const lines = (await shard.logLines(peer)).filter((l) => typeof l['time'] === 'number' && l['time'] >= t0 && typeof l['decision'] === 'string');
  const close = lines.find((l) => l['decision'] === 'closeSession');
  // Before the close: the evaluations that gather facts; after it, the sitter stops the hung server
  // (its role needs no PostgreSQL without a session), an action that waits for the stop's timeouts.
  const closeAtMs = close === undefined ? Infinity : (close['time'] as number);
  const longest = (from: (s: { atMs: number; sinceMs: number }) => boolean): number =>
    Math.max(0, ...samples.filter((s): s is { atMs: number; sinceMs: number } => s.sinceMs !== null).filter(from).map((s) => s.atMs - s.sinceMs));
  console.log(`longest evaluation seen in progress: ${longest((s) => s.sinceMs < closeAtMs)} ms begun before the session closed, ${longest((s) => s.sinceMs >= closeAtMs)} ms begun after`);
  console.log(`session closed: ${close === undefined ? 'no' : `${String(close['reason'])} (${(close['time'] as number) - t0} ms after the SIGSTOP)`}`);
  for (const l of lines) console.log(`  +${(l['time'] as number) - t0} ms ${String(l['decision'])}: ${String(l['msg']).slice(0, 140)}`);
  console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
} finally {
  signalPids(stopped, 'SIGCONT');
  await shard.teardown();
}
