// The workload: concurrent clients that find the primary as an application would (through the
// status API of the peers), insert unique ids, and record every operation as invoke and then
// ok / fail / unknown. A timeout or a broken connection is unknown: the write may have committed.
// Reader clients read recent ids (failed ones included) from replicas.
import pg from 'pg';
import type { ClusterState } from '../../src/store/types.js';
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
  readonly connectTimeoutMs: number;
  /** A client re-reads the topology at least this often. */
  readonly topologyMaxAgeMs: number;
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
 * The topology as a client learns it: ask every peer's status API, and believe the committed state
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
function isDefiniteFailure(err: unknown): boolean {
  const e = err as { severity?: string; code?: string };
  return e.severity === 'ERROR' && typeof e.code === 'string';
}

function describeError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return `${e.code ?? 'error'}: ${e.message ?? String(err)}`.slice(0, 300);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
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

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
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

  /** Stops every client; an operation in flight ends (ok, fail, or unknown at its timeout) first. */
  async halt(): Promise<void> {
    this.stop.abort();
    await Promise.all(this.running);
    this.running = [];
  }

  private async topology(client: number, known: { generation: number }): Promise<Topology | null> {
    const t = await discover(this.cluster, 1000);
    if (t === null) return null;
    this.recorder.observeStatus(client, t.generation);
    // A client never follows an older topology than one it has seen (a restarted peer may report a stale one).
    if (t.generation < known.generation) return null;
    known.generation = t.generation;
    return t;
  }

  private remember(list: number[], id: number): void {
    list.push(id);
    if (list.length > RECENT_IDS) list.shift();
  }

  private async writer(client: number): Promise<void> {
    const rng = this.rngFor(client);
    const conn = new Conn(this.cluster, this.opts);
    const known = { generation: 0 };
    let topo: Topology | null = null;
    let topoAt = 0;
    let seq = 0;
    while (!this.stop.signal.aborted && !this.recorder.full) {
      if (topo === null || this.now() - topoAt > this.opts.topologyMaxAgeMs) {
        topo = await this.topology(client, known);
        topoAt = this.now();
        if (topo === null) {
          await sleep(250, this.stop.signal);
          continue;
        }
      }
      const id = client * ID_STRIDE + ++seq;
      const peer = topo.primary;
      const generation = topo.generation;
      const invokedAtMs = this.now();
      this.recorder.event({ type: 'invoke', f: 'write', client, id, peer, generation, atMs: invokedAtMs });
      this.remember(this.recentIds, id);
      let outcome: Outcome;
      let timeline: number | undefined;
      let error: string | undefined;
      conn.notices = [];
      let c: pg.Client | null = null;
      try {
        c = await conn.to(peer);
      } catch (err) {
        // No connection, so nothing was sent: the write cannot have happened.
        outcome = 'fail';
        error = `connect: ${describeError(err)}`;
      }
      if (c !== null) {
        try {
          const res = await withTimeout(
            c.query<{ timeline: number }>(
              `INSERT INTO ${TABLE} (id, client, peer, generation) VALUES ($1, $2, $3, $4)
               RETURNING ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline`,
              [id, client, peer, generation],
            ),
            this.opts.opTimeoutMs,
          );
          outcome = 'ok';
          timeline = res.rows[0]?.timeline;
        } catch (err) {
          outcome = isDefiniteFailure(err) ? 'fail' : 'unknown';
          error = describeError(err);
          if (outcome === 'unknown') conn.drop();
        }
      } else {
        outcome = 'fail';
      }
      const notice = conn.notices.length > 0 ? conn.notices.join(' | ').slice(0, 300) : undefined;
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
        topo = null; // look again: the primary may have changed
        await sleep(100 + rng.int(0, 200), this.stop.signal);
      } else {
        await sleep(this.opts.intervalMs + rng.int(0, this.opts.intervalMs), this.stop.signal);
      }
    }
    conn.drop();
  }

  private async reader(client: number): Promise<void> {
    const rng = this.rngFor(client);
    const conn = new Conn(this.cluster, this.opts);
    const known = { generation: 0 };
    while (!this.stop.signal.aborted && !this.recorder.full) {
      await sleep(this.opts.intervalMs * 4 + rng.int(0, this.opts.intervalMs * 4), this.stop.signal);
      if (this.isStopped()) break;
      const topo = await this.topology(client, known);
      const replicas = topo === null ? [] : [topo.sync, ...topo.asyncs].filter((x): x is string => x !== null);
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
    conn.drop();
  }
}
