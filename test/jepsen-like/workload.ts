// The workload: concurrent clients that find the primary as an application would, through the
// project's client library (src/client: createClient follows the peers' /watch, and its pool's
// connections go to the current primary), insert unique ids, and record every operation as invoke
// and then ok / fail / unknown. A timeout or a broken connection is unknown: the write may have
// committed. Only a definite server ERROR is fail, and so is a write that was never sent (no
// connection could be made). Reader clients read recent ids (failed ones included) from replicas.
//
// Each writer has its own client and its own pool (max: 1), as separate application instances
// would: its view of the topology is its own (the checker asks that each client's generations never
// go back, which says something only when the clients' views are independent), and one client
// following a stale or partitioned peer does not hold up every writer.
//
// The pool is used for connections only (pool.connect(), whose retries are of connecting: nothing
// has been sent then), never pool.query(): the workload must know which server a statement went
// to, and must time a statement out itself (an unanswered statement is unknown, and its connection
// is destroyed, not handed back).
import pg from 'pg';
import { connectionOf, createClient, releaseAfter, type ManateeClient, type PrimaryPool } from '../../src/client/index.js';
import type { ClusterState } from '../../src/model/index.js';
import type { Cluster } from './cluster.js';
import type { Op, Outcome, ReadOp, WriteOp } from './history.js';
import type { Rng } from './rng.js';

export const TABLE = 'jepsen_writes';

/** Ids: client * ID_STRIDE + sequence, unique across the run. */
const ID_STRIDE = 10_000_000;
/** Recent ids offered to readers. */
const RECENT_IDS = 200;

export interface WorkloadOptions {
  readonly writers: number;
  readonly readers: number;
  /** Pause between a client's operations. */
  readonly intervalMs: number;
  /** After this long without an answer, an operation is unknown and its connection is dropped. */
  readonly opTimeoutMs: number;
  /** Deadline of one connection attempt to PostgreSQL, and of a peer's API answering the client library. */
  readonly connectTimeoutMs: number;
  /** Connection attempts per write (the pool's retry.attempts); a write that got no connection is a fail. */
  readonly connectAttempts: number;
  /** How often each client library asks the peer it follows for a linearizable read of the state. */
  readonly checkIntervalMs: number;
  /** The run stops recording (and the clients stop) beyond this many operations. */
  readonly maxOps: number;
}

export interface Topology {
  readonly generation: number;
  readonly primary: string;
  readonly sync: string | null;
  readonly asyncs: readonly string[];
}

export interface Recorder {
  /** One line per event: invoke, then ok/fail/unknown. */
  event(e: Record<string, unknown>): void;
  complete(op: Op): void;
  observeStatus(client: number, generation: number): void;
  readonly full: boolean;
}

function topologyOf(state: ClusterState): Topology {
  return { generation: state.generation, primary: state.primary.id, sync: state.sync?.id ?? null, asyncs: state.async.map((p) => p.id) };
}

/**
 * The topology as the nemesis learns it (the workload's clients use the client library instead): ask every peer's status API, and believe the committed state
 * with the highest generation (a peer cut off from the majority can only report an older one).
 */
export async function discover(cluster: Cluster, timeoutMs: number): Promise<Topology | null> {
  const all = await cluster.statuses(timeoutMs);
  let best: ClusterState | null = null;
  for (const s of all.values()) {
    if (s?.state != null && (best === null || s.state.generation > best.generation)) best = s.state;
  }
  return best === null ? null : topologyOf(best);
}

/** An error from the server at severity ERROR aborts the statement's transaction: it did not commit. */
export function isDefiniteFailure(err: unknown): boolean {
  const e = err as { severity?: string; code?: string };
  return e.severity === 'ERROR' && typeof e.code === 'string';
}

export function describeError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return `${e.code ?? 'error'}: ${e.message ?? String(err)}`.slice(0, 300);
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

class TimeoutError extends Error {}

export async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => { reject(new TimeoutError(`no answer within ${ms} ms`)); }, ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

/** A connection to one peer, dropped (socket destroyed) after any doubt. */
class Conn {
  private client: pg.Client | null = null;
  private peer: string | null = null;
  notices: string[] = [];

  constructor(
    private readonly cluster: Cluster,
    private readonly opts: WorkloadOptions,
  ) {}

  async to(peer: string): Promise<pg.Client> {
    if (this.client !== null && this.peer === peer) return this.client;
    this.drop();
    const client = new pg.Client({ connectionString: this.cluster.pgUrl(peer), connectionTimeoutMillis: this.opts.connectTimeoutMs, keepAlive: true });
    client.on('error', () => { this.drop(); });
    client.on('notice', (n) => { if (this.notices.length < 8) this.notices.push(String(n.message)); });
    try {
      await withTimeout(client.connect(), this.opts.connectTimeoutMs + 500);
    } catch (err) {
      destroy(client);
      throw err;
    }
    this.client = client;
    this.peer = peer;
    return client;
  }

  drop(): void {
    if (this.client !== null) destroy(this.client);
    this.client = null;
    this.peer = null;
  }
}

function destroy(client: pg.Client): void {
  // end() waits for the server to answer; a paused or cut-off server never does.
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  stream?.destroy();
  client.end().catch(() => undefined);
}

/** A connection checked out of a writer's pool, and what the client library said when it was taken. */
export interface Checkout {
  readonly conn: pg.PoolClient;
  readonly peer: string;
  /** The generation of the newest committed state this client had seen, which names `peer` primary. */
  readonly generation: number;
}

/** How many times a writer takes a fresh connection when the topology moved while it connected. */
const CHECKOUT_ROUNDS = 3;

/**
 * A connection to the primary, taken when the client library's newest state names the server it
 * goes to, so that the recorded peer and generation are what the client knew when it sent the
 * statement. Throws when no connection could be made: nothing was sent.
 */
export async function checkoutPrimary(cluster: Cluster, mc: ManateeClient, pool: PrimaryPool): Promise<Checkout> {
  for (let round = 1; ; round++) {
    const conn = await pool.connect();
    const host = (conn as unknown as { host?: string }).host ?? '';
    const peer = cluster.peerOfPgHost(host);
    const st = mc.state()?.state ?? null;
    if (peer !== null && st !== null && connectionOf(st.primary.pgUrl).host === host) {
      return { conn, peer, generation: st.generation };
    }
    // The topology moved while the connection was made (it came from the old primary's pool).
    conn.release();
    if (round >= CHECKOUT_ROUNDS) throw new Error(`the primary changed ${round} times while connecting (last connection to ${peer ?? host})`);
  }
}

export class Workload {
  private readonly stop = new AbortController();
  private readonly recentIds: number[] = [];
  private readonly recentFailed: number[] = [];
  private running: Promise<void>[] = [];

  constructor(
    private readonly cluster: Cluster,
    private readonly opts: WorkloadOptions,
    private readonly rngFor: (client: number) => Rng,
    private readonly recorder: Recorder,
    private readonly now: () => number,
  ) {}

  private isStopped(): boolean {
    return this.stop.signal.aborted;
  }

  start(): void {
    for (let c = 0; c < this.opts.writers; c++) this.running.push(this.writer(c));
    for (let r = 0; r < this.opts.readers; r++) this.running.push(this.reader(this.opts.writers + r));
  }

  /**
   * Stops every client; an operation in flight ends (ok, fail, or unknown at its timeout) first,
   * and every client library and pool is closed. Safe to call more than once.
   */
  async halt(): Promise<void> {
    this.stop.abort();
    await Promise.all(this.running);
    this.running = [];
  }

  /** A client library instance following every peer's API; each committed state it delivers is an observation. */
  private follow(client: number): ManateeClient {
    const mc = createClient({
      peers: this.cluster.peers.map((p) => p.apiUrl),
      connectTimeoutMs: this.opts.connectTimeoutMs,
      checkIntervalMs: this.opts.checkIntervalMs,
      backoff: { initialMs: 100, maxMs: 1000 },
      // With TLS: the https peers and the pool's PostgreSQL connections are checked against the shard CA.
      ...(this.cluster.caPem !== undefined ? { ca: this.cluster.caPem } : {}),
    });
    // A round of unreachable peers: the writes' own outcomes record what it meant.
    mc.on('error', () => undefined);
    mc.on('state', (state) => { this.recorder.observeStatus(client, state.generation); });
    return mc;
  }

  /** The peer id of the server a pgUrl names (the topology's URLs carry the peers' addresses). */
  private peerOfUrl(pgUrl: string): string | null {
    return this.cluster.peerOfPgHost(connectionOf(pgUrl).host);
  }

  /**
   * A connection to the primary, taken when the client library's newest state names the server it
   * goes to, so that the recorded peer and generation are what the client knew when it sent the
   * write. Throws when no connection could be made: nothing was sent.
   */
  private checkout(mc: ManateeClient, pool: PrimaryPool): Promise<Checkout> {
    return checkoutPrimary(this.cluster, mc, pool);
  }

  private remember(list: number[], id: number): void {
    list.push(id);
    if (list.length > RECENT_IDS) list.shift();
  }

  private async writer(client: number): Promise<void> {
    const rng = this.rngFor(client);
    const mc = this.follow(client);
    const pool = mc.pool({
      ...this.cluster.pgCredentials(),
      max: 1,
      connectionTimeoutMillis: this.opts.connectTimeoutMs,
      keepAlive: true,
      // Retries of connecting only: PrimaryPool.connect() never sends a statement. A write that got
      // no connection after these attempts is recorded as fail (it was never sent).
      retry: { attempts: this.opts.connectAttempts, initialDelayMs: 100, maxDelayMs: 500 },
      waitForPrimaryMs: this.opts.opTimeoutMs,
    });
    // An idle connection whose server went away: the next checkout makes a new one.
    pool.on('error', () => undefined);
    const notices: string[] = [];
    const listening = new WeakSet<pg.PoolClient>();
    let seq = 0;
    try {
      while (!this.isStopped() && !this.recorder.full) {
        const named = mc.state()?.state ?? null;
        if (named === null) {
          // No topology yet: nothing to write to (as before, no operation is recorded).
          await sleep(250, this.stop.signal);
          continue;
        }
        const id = client * ID_STRIDE + ++seq;
        const startedAtMs = this.now();
        let checkout: Checkout | null = null;
        let connectError: string | null = null;
        try {
          checkout = await this.checkout(mc, pool);
        } catch (err) {
          connectError = `connect: ${describeError(err)}`;
        }
        // Invoked when the statement is sent (or, when no connection came, when the client started
        // trying): the checker's evidence of two primaries rests on when each write was sent.
        const invokedAtMs = checkout !== null ? this.now() : startedAtMs;
        const peer = checkout?.peer ?? this.peerOfUrl(named.primary.pgUrl) ?? named.primary.id;
        const generation = checkout?.generation ?? named.generation;
        this.recorder.event({ type: 'invoke', f: 'write', client, id, peer, generation, atMs: invokedAtMs });
        this.remember(this.recentIds, id);
        let outcome: Outcome;
        let timeline: number | undefined;
        let error: string | undefined;
        notices.length = 0;
        if (checkout === null) {
          // No connection, so nothing was sent: the write cannot have happened.
          outcome = 'fail';
          error = connectError ?? 'connect: no connection';
        } else {
          const { conn } = checkout;
          if (!listening.has(conn)) {
            listening.add(conn);
            conn.on('notice', (n) => { if (notices.length < 8) notices.push(String(n.message)); });
          }
          try {
            const res = await withTimeout(
              conn.query<{ timeline: number }>(
                `INSERT INTO ${TABLE} (id, client, peer, generation) VALUES ($1, $2, $3, $4)
                 RETURNING ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline`,
                [id, client, peer, generation],
              ),
              this.opts.opTimeoutMs,
            );
            outcome = 'ok';
            timeline = res.rows[0]?.timeline;
            conn.release();
          } catch (err) {
            outcome = isDefiniteFailure(err) ? 'fail' : 'unknown';
            error = describeError(err);
            // After an ERROR the session is usually fine (releaseAfter keeps it unless the error
            // ended it, e.g. class 08). After an unknown outcome it is never reused: an error with
            // no SQLSTATE makes releaseAfter destroy its socket at once.
            releaseAfter(conn, outcome === 'fail' ? err : new Error(error));
          }
        }
        const notice = notices.length > 0 ? notices.join(' | ').slice(0, 300) : undefined;
        const op: WriteOp = {
          f: 'write', client, id, peer, generation, invokedAtMs, completedAtMs: this.now(), outcome,
          ...(timeline !== undefined ? { timeline } : {}),
          ...(error !== undefined ? { error } : {}),
          ...(notice !== undefined ? { notice } : {}),
        };
        this.recorder.event({ type: outcome, ...op, atMs: op.completedAtMs });
        this.recorder.complete(op);
        if (outcome === 'fail') this.remember(this.recentFailed, id);
        if (outcome !== 'ok') {
          await sleep(100 + rng.int(0, 200), this.stop.signal);
        } else {
          await sleep(this.opts.intervalMs + rng.int(0, this.opts.intervalMs), this.stop.signal);
        }
      }
    } finally {
      await pool.end().catch(() => undefined);
      await mc.close();
    }
  }

  /**
   * Reads on replicas. The client library has no replica pool, but its topology names the
   * replicas ([primary, sync, ...asyncs]): the reader follows the shard with its own client
   * library instance and connects to a replica it names with a plain pg connection.
   */
  private async reader(client: number): Promise<void> {
    const rng = this.rngFor(client);
    const mc = this.follow(client);
    const conn = new Conn(this.cluster, this.opts);
    try {
      while (!this.isStopped() && !this.recorder.full) {
        await sleep(this.opts.intervalMs * 4 + rng.int(0, this.opts.intervalMs * 4), this.stop.signal);
        if (this.isStopped()) break;
        const replicas = (mc.topology() ?? []).slice(1).map((u) => this.peerOfUrl(u)).filter((x): x is string => x !== null);
        if (replicas.length === 0 || this.recentIds.length === 0) continue;
        const peer = rng.pick(replicas);
        const asked = [...new Set([...this.recentIds.slice(-10), ...this.recentFailed.slice(-10)])];
        const invokedAtMs = this.now();
        this.recorder.event({ type: 'invoke', f: 'read', client, peer, asked, atMs: invokedAtMs });
        let outcome: Outcome = 'unknown';
        let found: number[] | undefined;
        let error: string | undefined;
        try {
          const c = await conn.to(peer);
          const res = await withTimeout(c.query<{ id: string }>(`SELECT id FROM ${TABLE} WHERE id = ANY($1::bigint[])`, [asked]), this.opts.opTimeoutMs);
          outcome = 'ok';
          found = res.rows.map((r) => Number(r.id));
        } catch (err) {
          outcome = isDefiniteFailure(err) ? 'fail' : 'unknown';
          error = describeError(err);
          conn.drop();
        }
        const op: ReadOp = {
          f: 'read', client, peer, asked, invokedAtMs, completedAtMs: this.now(), outcome,
          ...(found !== undefined ? { found } : {}),
          ...(error !== undefined ? { error } : {}),
        };
        this.recorder.event({ type: outcome, ...op, atMs: op.completedAtMs });
        this.recorder.complete(op);
      }
    } finally {
      conn.drop();
      await mc.close();
    }
  }
}
