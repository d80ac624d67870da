// The PostgreSQL register workload: clients read, write and compare-and-set integer registers (rows
// of REGISTER_TABLE), always on the primary that the client library names, and the checker in
// test/lincheck judges whether the history is linearizable.
//
// Keys: a few registers are in use at a time (opts.keys); after about opts.opsPerKey operations per
// key, the clients move on to fresh keys, as Jepsen's independent keys do. Each key's history is
// checked on its own, so short histories per key keep the search small however long the run is.
// Values are unique per run (client and sequence), so that a read names the write it saw.
//
// Outcomes, as the register model reads them:
// - read: ok with the value (NULL or no row: nil); an ERROR or a timeout: it took no effect and is left out;
// - write (an upsert): ok; an ERROR: no effect (left out); a timeout or broken connection: unknown;
// - cas (UPDATE ... WHERE v = from): one row updated is ok, none is fail (the comparison failed);
//   an ERROR: no effect (left out, never read as a failed comparison); a timeout: unknown.
// An operation that got no connection was never sent and is left out too.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { createClient, releaseAfter, type ManateeClient } from '../../src/client/index.js';
import { checkOperations, describeCounterexample, partition } from '../lincheck/check.js';
import type { Operation, Verdict } from '../lincheck/model.js';
import { registerModel, type RegisterInput, type RegisterOutput } from '../lincheck/models.js';
import { registerOpJson } from '../lincheck/parse.js';
import { renderHistorySvg } from '../lincheck/svg.js';
import type { Cluster } from './cluster.js';
import type { Rng } from './rng.js';
import { checkoutPrimary, describeError, isDefiniteFailure, sleep, withTimeout, type Checkout } from './workload.js';

export const REGISTER_TABLE = 'jepsen_register';
export const REGISTER_TABLE_SQL = `CREATE TABLE IF NOT EXISTS ${REGISTER_TABLE} (k int PRIMARY KEY, v int)`;

export type RegisterOperation = Operation<RegisterInput, RegisterOutput>;

/** Values: (client + 1) * VALUE_STRIDE + sequence, unique across the run (and within int4). */
const VALUE_STRIDE = 1_000_000;

export interface RegisterOptions {
  readonly clients: number;
  /**
   * Of those, how many only read. A client that writes spends long stretches blocked on a write
   * its isolated primary cannot commit; one that only reads keeps asking whoever its client
   * library names primary, which is what finds stale reads from a deposed primary.
   */
  readonly readOnlyClients: number;
  /** Registers in use at a time. */
  readonly keys: number;
  /** Operations per register before the clients move to fresh ones. */
  readonly opsPerKey: number;
  /** Pause between a client's operations. */
  readonly intervalMs: number;
  readonly opTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly connectAttempts: number;
  readonly checkIntervalMs: number;
  /** The run stops recording beyond this many operations. */
  readonly maxOps: number;
}

/** Where an operation went: the peer its connection reached, and the generation its client library had seen naming it primary. */
export interface SentTo {
  readonly peer: string;
  readonly generation: number;
}

/** Operations are identified by client and call time (a client has one operation in flight). */
export function opKey(op: { readonly client: number; readonly callMs: number }): string {
  return `${op.client}@${op.callMs}`;
}

export interface RegisterRecorder {
  /** One line per event: invoke, then ok / fail / unknown / error. */
  event(e: Record<string, unknown>): void;
  /** An operation for the checker (operations that took no effect are never given). */
  complete(op: RegisterOperation, sentTo: SentTo): void;
  readonly full: boolean;
}

type Kind = RegisterInput['f'];

export class RegisterWorkload {
  private readonly stop = new AbortController();
  private running: Promise<void>[] = [];
  private started = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly opts: RegisterOptions,
    /** Client numbers start here (after the other workload's clients), so that logs stay unambiguous. */
    private readonly firstClient: number,
    private readonly rngFor: (client: number) => Rng,
    private readonly recorder: RegisterRecorder,
    private readonly now: () => number,
  ) {}

  start(): void {
    for (let i = 0; i < this.opts.clients; i++) this.running.push(this.client(this.firstClient + i));
  }

  /** Stops every client after its operation in flight ends. Safe to call more than once. */
  async halt(): Promise<void> {
    this.stop.abort();
    await Promise.all(this.running);
    this.running = [];
  }

  private follow(): ManateeClient {
    const mc = createClient({
      peers: this.cluster.peers.map((p) => p.apiUrl),
      connectTimeoutMs: this.opts.connectTimeoutMs,
      checkIntervalMs: this.opts.checkIntervalMs,
      backoff: { initialMs: 100, maxMs: 1000 },
      // With TLS: the https peers and the pool's PostgreSQL connections are checked against the shard CA.
      ...(this.cluster.caPem !== undefined ? { ca: this.cluster.caPem } : {}),
    });
    mc.on('error', () => undefined);
    return mc;
  }

  /** The key of the next operation: one of the registers in use now. */
  private nextKey(rng: Rng): number {
    const window = Math.floor(this.started / (this.opts.opsPerKey * this.opts.keys));
    this.started++;
    return window * this.opts.keys + rng.int(0, this.opts.keys - 1);
  }

  private async client(client: number): Promise<void> {
    const rng = this.rngFor(client);
    const mc = this.follow();
    const pool = mc.pool({
      ...this.cluster.pgCredentials(),
      max: 1,
      connectionTimeoutMillis: this.opts.connectTimeoutMs,
      keepAlive: true,
      retry: { attempts: this.opts.connectAttempts, initialDelayMs: 100, maxDelayMs: 500 },
      waitForPrimaryMs: this.opts.opTimeoutMs,
    });
    pool.on('error', () => undefined);
    /** The last value this client saw in each key: what its compare-and-sets expect. */
    const seen = new Map<number, number | null>();
    let seq = 0;
    try {
      while (!this.stop.signal.aborted && !this.recorder.full) {
        if (mc.state() === null) {
          await sleep(250, this.stop.signal);
          continue;
        }
        const key = this.nextKey(rng);
        const roll = rng.int(0, 99);
        const known = seen.get(key);
        const readOnly = client - this.firstClient < this.opts.readOnlyClients;
        const f: Kind = readOnly || roll < 50 ? 'read' : roll < 75 || known === undefined || known === null ? 'write' : 'cas';
        const value = (client + 1) * VALUE_STRIDE + ++seq;
        const input: RegisterInput = f === 'read' ? { key: String(key), f } : f === 'write' ? { key: String(key), f, value } : { key: String(key), f, from: known!, to: value };
        const outcome = await this.perform(client, mc, pool, key, input);
        if (outcome.seen !== undefined) seen.set(key, outcome.seen);
        await sleep(outcome.ok ? this.opts.intervalMs + rng.int(0, this.opts.intervalMs) : 100 + rng.int(0, 200), this.stop.signal);
      }
    } finally {
      await pool.end().catch(() => undefined);
      await mc.close();
    }
  }

  /** One operation, recorded; returns whether it succeeded and the value it leaves this client believing. */
  private async perform(
    client: number,
    mc: ManateeClient,
    pool: Parameters<typeof checkoutPrimary>[2],
    key: number,
    input: RegisterInput,
  ): Promise<{ ok: boolean; seen?: number | null }> {
    const args = input.f === 'write' ? { value: input.value } : input.f === 'cas' ? { from: input.from, to: input.to } : {};
    let checkout: Checkout;
    try {
      checkout = await checkoutPrimary(this.cluster, mc, pool);
    } catch (err) {
      // Never sent: no effect, and not an operation of the history.
      this.recorder.event({ type: 'not-sent', f: input.f, client, key, ...args, error: `connect: ${describeError(err)}`, atMs: this.now() });
      return { ok: false };
    }
    const { conn, peer, generation } = checkout;
    const callMs = this.now();
    this.recorder.event({ type: 'invoke', f: input.f, client, key, ...args, peer, generation, atMs: callMs });
    let output: RegisterOutput | null;
    let error: string | undefined;
    let seen: number | null | undefined;
    try {
      const res = await withTimeout(this.statement(conn, key, input), this.opts.opTimeoutMs);
      output = res;
      conn.release();
      if (input.f === 'read' && res.status === 'ok') seen = res.value ?? null;
      else if (input.f === 'write') seen = input.value;
      else if (input.f === 'cas') seen = res.status === 'ok' ? input.to : undefined;
    } catch (err) {
      const definite = isDefiniteFailure(err);
      error = describeError(err);
      // An ERROR took no effect: left out of the history. Anything else may have taken effect.
      output = definite ? null : { status: 'unknown' };
      releaseAfter(conn, definite ? err : new Error(error));
      if (!definite) seen = undefined;
    }
    const returnMs = this.now();
    const type = output === null ? 'error' : output.status;
    this.recorder.event({
      type, f: input.f, client, key, ...args, peer, generation, atMs: returnMs,
      ...(output?.status === 'ok' && input.f === 'read' ? { value: output.value ?? null } : {}),
      ...(error !== undefined ? { error } : {}),
    });
    if (output !== null && !(input.f === 'read' && output.status === 'unknown')) {
      this.recorder.complete({ client, input, output, callMs, returnMs: output.status === 'unknown' ? Infinity : returnMs }, { peer, generation });
    }
    return { ok: output !== null && output.status !== 'unknown', ...(seen !== undefined ? { seen } : {}) };
  }

  private async statement(conn: pg.PoolClient, key: number, input: RegisterInput): Promise<RegisterOutput> {
    switch (input.f) {
      case 'read': {
        const r = await conn.query<{ v: number | null }>(`SELECT v FROM ${REGISTER_TABLE} WHERE k = $1`, [key]);
        return { status: 'ok', value: r.rows[0]?.v ?? null };
      }
      case 'write':
        await conn.query(`INSERT INTO ${REGISTER_TABLE} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, [key, input.value]);
        return { status: 'ok' };
      case 'cas': {
        const r = await conn.query(`UPDATE ${REGISTER_TABLE} SET v = $3 WHERE k = $1 AND v = $2`, [key, input.from, input.to]);
        return r.rowCount === 1 ? { status: 'ok' } : { status: 'fail' };
      }
    }
  }
}

/** The linearizability verdict of one workload, as the chaos summary gives it. */
export interface LinearizabilityVerdict {
  readonly verdict: Verdict;
  readonly operations: number;
  readonly keys: number;
  readonly elapsedMs: number;
  /** Why the verdict is unknown; null otherwise. */
  readonly reason: string | null;
  /** For a violation: the operations that cannot be ordered (one line each), and the picture's file name. */
  readonly cannotBeOrdered: readonly string[];
  readonly picture: string | null;
}

/**
 * Judges a register history: writes it to <dir>/register.jsonl (the input of `npm run lincheck`),
 * checks it, and draws a violation to <dir>/register-violation.svg.
 */
export function judgeRegister(
  ops: readonly RegisterOperation[],
  dir: string,
  timeBudgetMs: number,
  sentTo: ReadonlyMap<string, SentTo> = new Map(),
): LinearizabilityVerdict {
  writeFileSync(join(dir, 'register.jsonl'), ops.map((o) => `${JSON.stringify(registerOpJson(o))}\n`).join(''));
  const report = checkOperations(registerModel, ops, { timeBudgetMs });
  let picture: string | null = null;
  const c = report.counterexample;
  if (c !== null) {
    picture = 'register-violation.svg';
    writeFileSync(join(dir, picture), renderHistorySvg(registerModel, c.operations, {
      title: `PostgreSQL register, key ${c.key}: ${c.operations.length} of its ${c.originalOperations} operations cannot be ordered`,
      verdict: report.verdict,
      notes: [c.prefixEndMs === null ? 'The whole history of this key.' : `The history up to ${new Date(c.prefixEndMs).toISOString()}: operations in flight then have an unknown outcome (dashed).`],
    }));
  }
  return {
    verdict: report.verdict,
    operations: ops.length,
    keys: partition(registerModel, ops).size,
    elapsedMs: Math.round(report.elapsedMs),
    reason: report.reason,
    cannotBeOrdered: c === null ? [] : describeCounterexample(registerModel, c).map((line, i) => {
      const to = sentTo.get(opKey(c.operations[i]!));
      return to === undefined ? line : `${line} on ${to.peer} (generation ${to.generation})`;
    }),
    picture,
  };
}
