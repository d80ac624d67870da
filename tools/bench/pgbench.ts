// pgbench as the benchmarks run it: one initialisation (pgbench -i, then CHECKPOINT) and one timed
// run, with TPS and the average latency parsed from pgbench's own summary, and the counters a round
// is judged by (new PostgreSQL sessions, WAL flushes) read before and after on held connections.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import pg from 'pg';

export const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';

export interface PgTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  readonly database: string;
}

export interface PgbenchResult {
  readonly tps: number;
  readonly latencyMs: number;
  readonly transactions: number;
  readonly failed: number;
}

function pgEnv(t: PgTarget): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PGHOST: t.host, PGPORT: String(t.port), PGUSER: t.user, PGDATABASE: t.database, PGCONNECT_TIMEOUT: '10' };
  if (t.password !== undefined) env['PGPASSWORD'] = t.password;
  return env;
}

function run(args: readonly string[], t: PgTarget, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PGBENCH, [...args], { env: pgEnv(t), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`pgbench ${args.join(' ')} exited with ${code ?? signal ?? '?'}:\n${out.slice(-2000)}`));
    });
  });
}

/** The numbers of pgbench's summary ("tps = ... (without initial connection time)", "latency average = ... ms"). */
export function parsePgbench(out: string): PgbenchResult {
  const tps = /^tps = ([\d.]+) \(without initial connection time\)$/m.exec(out)?.[1];
  const lat = /^latency average = ([\d.]+) ms$/m.exec(out)?.[1];
  const tx = /^number of transactions actually processed: (\d+)/m.exec(out)?.[1];
  const failed = /^number of failed transactions: (\d+)/m.exec(out)?.[1];
  if (tps === undefined || lat === undefined || tx === undefined) throw new Error(`pgbench printed no summary:\n${out.slice(-2000)}`);
  return { tps: Number(tps), latencyMs: Number(lat), transactions: Number(tx), failed: failed === undefined ? 0 : Number(failed) };
}

/** pgbench -i (a fresh set of tables), then a CHECKPOINT: every round starts from the same state. */
export async function initialise(t: PgTarget, scale: number): Promise<void> {
  await run(['-i', '-q', '-s', String(scale)], t, 600_000);
  const c = new pg.Client({ ...t, connectionTimeoutMillis: 10_000 });
  await c.connect();
  try {
    await c.query('CHECKPOINT');
  } finally {
    await c.end();
  }
}

export interface RunOptions {
  readonly selectOnly: boolean;
  readonly clients: number;
  readonly jobs: number;
  readonly durationS: number;
  /** Log every transaction (pgbench -l) to files named <logPrefix>.<pid>[.<thread>] (read them with readTransactionLog). */
  readonly logPrefix?: string;
}

export async function runPgbench(t: PgTarget, o: RunOptions): Promise<PgbenchResult> {
  const args = ['-n', '-c', String(o.clients), '-j', String(o.jobs), '-T', String(o.durationS)];
  if (o.selectOnly) args.push('-S');
  if (o.logPrefix !== undefined) args.push('-l', `--log-prefix=${o.logPrefix}`);
  return parsePgbench(await run(args, t, (o.durationS + 120) * 1000));
}

/**
 * When each logged transaction ended (epoch ms, sorted), from the files of `pgbench -l
 * --log-prefix=<prefix>`. A line without aggregation is `client_id transaction_no time script_no
 * time_epoch time_us [...]`: time_epoch and time_us say when the transaction completed. A line that
 * does not parse is an error that names the file and the line: a wrong count would be a wrong figure.
 */
export function readTransactionLog(prefix: string): Float64Array {
  const dir = dirname(prefix);
  const base = basename(prefix);
  const files = readdirSync(dir).filter((f) => f.startsWith(`${base}.`) && /^\d+(\.\d+)?$/.test(f.slice(base.length + 1)));
  if (files.length === 0) throw new Error(`pgbench wrote no transaction log ${prefix}.<pid> in ${dir}`);
  const ends: number[] = [];
  for (const f of files) {
    const lines = readFileSync(join(dir, f), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (line === '') return;
      const parts = line.split(' ');
      const epoch = Number(parts[4]);
      const us = Number(parts[5]);
      if (parts.length < 6 || !Number.isInteger(epoch) || !Number.isInteger(us) || us < 0 || us >= 1e6) {
        throw new Error(`${join(dir, f)} line ${i + 1} is not a pgbench transaction line (client_id transaction_no time script_no time_epoch time_us): ${JSON.stringify(line.slice(0, 120))}`);
      }
      ends.push(epoch * 1000 + us / 1000);
    });
  }
  return Float64Array.from(ends).sort();
}

/** Counters of one server that say what happened around a round, read over one held connection. */
export interface ServerCounters {
  /** pg_stat_database.sessions summed over every database: connections ever opened. */
  readonly sessions: number;
  /** pg_stat_wal.wal_sync: WAL flushes (fdatasync) PostgreSQL made. */
  readonly walSync: number;
  readonly xactCommit: number;
}

export class CounterReader {
  private constructor(private readonly client: pg.Client) {}

  static async open(t: PgTarget): Promise<CounterReader> {
    const c = new pg.Client({ ...t, connectionTimeoutMillis: 10_000, application_name: 'datapath-bench' });
    c.on('error', () => undefined);
    await c.connect();
    return new CounterReader(c);
  }

  async read(): Promise<ServerCounters> {
    const r = await this.client.query<{ sessions: string; wal_sync: string; xact: string }>(
      'SELECT (SELECT sum(sessions) FROM pg_stat_database)::text AS sessions, (SELECT wal_sync FROM pg_stat_wal)::text AS wal_sync, ' +
      '(SELECT sum(xact_commit) FROM pg_stat_database)::text AS xact');
    const row = r.rows[0];
    return { sessions: Number(row?.sessions ?? NaN), walSync: Number(row?.wal_sync ?? NaN), xactCommit: Number(row?.xact ?? NaN) };
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/** A window of an alternating run: the sitters ran or were paused from startMs to endMs (epoch ms). */
export interface Window {
  readonly mode: 'running' | 'paused';
  readonly startMs: number;
  readonly endMs: number;
}

/** Transactions of `ends` (sorted) that ended in [from, to). */
export function countIn(ends: Float64Array, from: number, to: number): number {
  const lower = (x: number): number => {
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ends[mid] ?? Infinity) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return lower(to) - lower(from);
}

/** The windows that lie wholly inside the run after its first second (connections set up), paired. */
export function windowPairs(windows: readonly Window[], ends: Float64Array): { pairs: number[]; running: { tx: number; ms: number }; paused: { tx: number; ms: number } } {
  const first = ends[0];
  const last = ends[ends.length - 1];
  const running = { tx: 0, ms: 0 };
  const paused = { tx: 0, ms: 0 };
  const pairs: number[] = [];
  if (first === undefined || last === undefined) return { pairs, running, paused };
  const inside = windows.filter((w) => w.startMs >= first + 1000 && w.endMs <= last && w.endMs > w.startMs);
  for (let i = 0; i + 1 < inside.length; i += 2) {
    const a = inside[i];
    const b = inside[i + 1];
    if (a === undefined || b === undefined || a.mode === b.mode || a.endMs !== b.startMs) { i -= 1; continue; }
    const tps = (w: Window): number => countIn(ends, w.startMs, w.endMs) / (w.endMs - w.startMs);
    const [r, p] = a.mode === 'running' ? [a, b] : [b, a];
    pairs.push(tps(r) / tps(p));
  }
  for (const w of inside) {
    const acc = w.mode === 'running' ? running : paused;
    acc.tx += countIn(ends, w.startMs, w.endMs);
    acc.ms += w.endMs - w.startMs;
  }
  return { pairs, running, paused };
}

/** Geometric mean of the ratios and its 95% interval (normal approximation on their logarithms). */
export function geometricInterval(ratios: readonly number[]): { mean: number; low: number; high: number } {
  const logs = ratios.filter((x) => x > 0 && Number.isFinite(x)).map(Math.log);
  const n = logs.length;
  if (n < 2) return { mean: NaN, low: NaN, high: NaN };
  const m = logs.reduce((a, x) => a + x, 0) / n;
  const sd = Math.sqrt(logs.reduce((a, x) => a + (x - m) ** 2, 0) / (n - 1));
  const half = (1.96 * sd) / Math.sqrt(n);
  return { mean: Math.exp(m), low: Math.exp(m - half), high: Math.exp(m + half) };
}
