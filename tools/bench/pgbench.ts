// pgbench as the benchmarks run it: one initialisation (pgbench -i, then CHECKPOINT) and one timed
// run, with TPS and the average latency parsed from pgbench's own summary, and the counters a round
// is judged by (new PostgreSQL sessions, WAL flushes) read before and after on held connections.
import { spawn } from 'node:child_process';
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
}

export async function runPgbench(t: PgTarget, o: RunOptions): Promise<PgbenchResult> {
  const args = ['-n', '-c', String(o.clients), '-j', String(o.jobs), '-T', String(o.durationS)];
  if (o.selectOnly) args.push('-S');
  return parsePgbench(await run(args, t, (o.durationS + 120) * 1000));
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
