// The data-path bench's alternating windows (tools/bench/datapath.ts --alternate-ms) count each
// transaction by when pgbench says it ended: the transaction log of a real pgbench 15 against a
// real PostgreSQL is read back whole and in order, a log that does not parse is refused with the
// file and the line, and the pairing of windows counts what it should.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PostgresServer } from '../../src/postgres/index.js';
import { countIn, geometricInterval, initialise, readTransactionLog, runPgbench, windowPairs, type PgTarget, type Window } from '../../tools/bench/pgbench.js';
import { makePgSandbox, type PgSandbox } from '../helpers/pg.js';

let sandbox: PgSandbox;
let server: PostgresServer;
let dir: string;

beforeAll(async () => {
  sandbox = await makePgSandbox('pgbench-log');
  server = await sandbox.primary('p1');
  dir = mkdtempSync(join(tmpdir(), 'pgbench-log-'));
}, 120_000);

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await sandbox.cleanup();
}, 60_000);

describe('pgbench transaction log', () => {
  it('holds every transaction of a real pgbench run, by when it ended, in order', async () => {
    const cfg = server.clientConfig();
    const target: PgTarget = { host: String(cfg.host), port: Number(cfg.port), user: String(cfg.user), database: 'postgres' };
    await initialise(target, 1);
    const started = Date.now();
    const result = await runPgbench(target, { selectOnly: false, clients: 2, jobs: 2, durationS: 2, logPrefix: join(dir, 'tx') });
    const ended = Date.now();
    const ends = readTransactionLog(join(dir, 'tx'));
    expect(result.transactions).toBeGreaterThan(0);
    // Two jobs: two files (tx.<pid> and tx.<pid>.1), read together.
    expect(ends.length).toBe(result.transactions);
    for (let i = 1; i < ends.length; i++) expect(ends[i]!).toBeGreaterThanOrEqual(ends[i - 1]!);
    expect(ends[0]!).toBeGreaterThanOrEqual(started - 1000);
    expect(ends[ends.length - 1]!).toBeLessThanOrEqual(ended + 1000);
    expect(countIn(ends, started - 1000, ended + 1000)).toBe(result.transactions);
  }, 120_000);

  it('refuses a line that is not a transaction line, naming the file and the line', () => {
    const d = mkdtempSync(join(dir, 'bad-'));
    writeFileSync(join(d, 'tx.123'), '0 0 1520 0 1765000000 123456\n0 1 1500 0 garbage\n');
    expect(() => readTransactionLog(join(d, 'tx'))).toThrow(/tx\.123 line 2 is not a pgbench transaction line/);
    writeFileSync(join(d, 'tx.123'), '0 0 1520 0 1765000000 1234567\n');
    expect(() => readTransactionLog(join(d, 'tx'))).toThrow(/tx\.123 line 1 is not a pgbench transaction line/);
  });

  it('refuses a prefix with no log file behind it', () => {
    const d = mkdtempSync(join(dir, 'none-'));
    writeFileSync(join(d, 'tx.notapid'), '0 0 1520 0 1765000000 123456\n');
    expect(() => readTransactionLog(join(d, 'tx'))).toThrow(/pgbench wrote no transaction log .*tx\.<pid>/);
  });
});

describe('alternating windows', () => {
  // 100 ms windows from t=0, running first; a transaction every 10 ms while the sitters run and every
  // 20 ms while they are paused: each pair is 2.0, whatever the order of its windows.
  function run(firstMode: Window['mode'], count: number): { windows: Window[]; ends: Float64Array } {
    const windows: Window[] = [];
    const ends: number[] = [];
    let mode = firstMode;
    for (let k = 0; k < count; k++) {
      const w = { mode, startMs: k * 100, endMs: (k + 1) * 100 };
      windows.push(w);
      const step = mode === 'running' ? 10 : 20;
      for (let t = w.startMs + step / 2; t < w.endMs; t += step) ends.push(t);
      mode = mode === 'running' ? 'paused' : 'running';
    }
    return { windows, ends: Float64Array.from(ends) };
  }

  it('pairs neighbouring windows after the first second and counts each transaction once', () => {
    for (const first of ['running', 'paused'] as const) {
      const { windows, ends } = run(first, 40);
      const r = windowPairs(windows, ends);
      // The run's first transaction ends at 5 or 10 ms: windows from 1005/1010 ms on, so 11..38 are
      // wholly inside (the last window ends after the last transaction).
      expect(r.pairs.length).toBe(14);
      for (const p of r.pairs) expect(p).toBeCloseTo(2, 9);
      expect(r.running.tx / r.running.ms).toBeCloseTo(0.1, 9);
      expect(r.paused.tx / r.paused.ms).toBeCloseTo(0.05, 9);
    }
  });

  it('gives no pair when the run is shorter than its warm-up second', () => {
    const { windows, ends } = run('running', 8);
    expect(windowPairs(windows, ends).pairs).toEqual([]);
    expect(windowPairs(windows, new Float64Array(0)).pairs).toEqual([]);
  });

  it('geometric mean with its 95% interval', () => {
    const g = geometricInterval([0.9, 1.1, 1.0, 1.0]);
    expect(g.mean).toBeCloseTo(Math.exp((Math.log(0.9) + Math.log(1.1)) / 4), 9);
    expect(g.low).toBeLessThan(g.mean);
    expect(g.high).toBeGreaterThan(g.mean);
    const flat = geometricInterval([0.98, 0.98, 0.98]);
    expect(flat.low).toBeCloseTo(0.98, 9);
    expect(flat.high).toBeCloseTo(0.98, 9);
    expect(Number.isNaN(geometricInterval([1]).mean)).toBe(true);
  });
});
