// A pg Pool whose connections always go to the shard's current primary.
//
// One pg.Pool per primary: when the client's topology names a new primary, new connections go to
// a new pool on it, and the old pool is drained (pg's Pool.end(): idle connections end now,
// checked-out ones end when released, so in-flight queries finish or fail on their own).
//
// Retries are bounded and only where nothing can have been executed: a connection that could not
// be made (the old primary is gone, the new one is starting), and a statement that PostgreSQL
// refused because the server is read-only (a new primary stays read-only until its sync has
// caught up: SQLSTATE 25006). A statement that failed after it was sent is never retried: it may
// have committed.
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from '../log.js';
import { CLIENT_ERR, ClientError } from './errors.js';
import type { ManateeClient } from './client.js';
import type { Topology } from './topology.js';
import { asError, errorMessage } from '../errors.js';

export interface PrimaryPoolOptions extends Omit<pg.PoolConfig, 'host' | 'port' | 'connectionString' | 'log'> {
  /** Connection attempts per query()/connect() while the topology settles. Defaults: 20 attempts, 100 ms doubling to 2000 ms. */
  readonly retry?: { readonly attempts?: number; readonly initialDelayMs?: number; readonly maxDelayMs?: number };
  /** How long query()/connect() wait for the first topology. Default 30000. */
  readonly waitForPrimaryMs?: number;
  /** Where the pool says what it does (pino); silent when absent. (pg's own `log` option is not used.) */
  readonly logger?: Logger;
}

export interface PrimaryPoolEvents {
  /** New connections now go to this pgUrl. */
  primary: [pgUrl: string];
  /** An idle connection failed (the server went away); emitted only when someone listens. */
  error: [err: Error];
}

/** SQLSTATEs after which a statement is known not to have run, so it may be sent again. */
const RETRY_AFTER_STATEMENT = new Set(['25006' /* read_only_sql_transaction */]);
/** Connection failures that no wait will cure: wrong credentials, missing database, bad options. */
const FATAL_CONNECT_CLASSES = ['28', '3D'];

function sqlState(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/**
 * Whether an error from the server also ended the session: FATAL or PANIC (e.g. 57P01 when the
 * backend was terminated, or the server shutting down), or a connection exception (class 08).
 * The socket closes right after, so such a connection must not go back to the pool, where the
 * next caller would get it before its close is noticed.
 */
function endsSession(err: unknown): boolean {
  const e = err as { severity?: unknown; code?: unknown } | null;
  return e?.severity === 'FATAL' || e?.severity === 'PANIC' || (typeof e?.code === 'string' && e.code.startsWith('08'));
}


/**
 * Gives back a connection taken with PrimaryPool.connect() after a statement on it failed with
 * `err`, by the rule query() follows: a server error that left the session usable (an SQL ERROR
 * with its SQLSTATE) returns it to the pool; any other failure destroys it (pg's release(err)):
 * one that ended the session (FATAL, PANIC, class 08: a terminated backend, a server shutting
 * down), and one that did not come from the server at all (no SQLSTATE: a broken socket, a
 * client-side timeout), after which the session's state is not known. For the latter the socket
 * is destroyed at once: pg's release(err) alone ends the session politely, which waits on a
 * server that does not answer. A plain release() would put a dead connection back, and the next
 * caller would get it before its close is noticed.
 */
export function releaseAfter(conn: pg.PoolClient, err: unknown): void {
  if (sqlState(err) === null) {
    (conn as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    conn.release(asError(err));
    return;
  }
  conn.release(endsSession(err) ? asError(err) : undefined);
}

/** host, port and database of a pgUrl (postgres://host:port/db) as pg's options. */
export function connectionOf(pgUrl: string): { host: string; port: number; database: string | undefined } {
  const u = new URL(pgUrl);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  return { host, port: u.port === '' ? 5432 : Number(u.port), database: database === '' ? undefined : database };
}

export class PrimaryPool extends EventEmitter<PrimaryPoolEvents> {
  private pool: pg.Pool | null = null;
  private readonly guarded = new WeakSet<pg.PoolClient>();
  private poolUrl: string | null = null;
  private readonly draining = new Set<Promise<void>>();
  private ended = false;
  private readonly attempts: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly waitForPrimaryMs: number;
  private readonly pgConfig: pg.PoolConfig;
  private readonly log: Logger | null;
  private readonly onTopology = (t: Topology): void => { this.switchTo(t[0] ?? null); };

  constructor(private readonly client: ManateeClient, options: PrimaryPoolOptions = {}) {
    super();
    const { retry, waitForPrimaryMs, logger, ...pgConfig } = options;
    this.attempts = retry?.attempts ?? 20;
    this.initialDelayMs = retry?.initialDelayMs ?? 100;
    this.maxDelayMs = retry?.maxDelayMs ?? 2000;
    this.waitForPrimaryMs = waitForPrimaryMs ?? 30_000;
    if (!Number.isInteger(this.attempts) || this.attempts < 1 || this.attempts > 1000) throw new ClientError(CLIENT_ERR.badOptions, 'retry.attempts: must be an integer from 1 to 1000');
    if (this.initialDelayMs < 0 || this.maxDelayMs < this.initialDelayMs) throw new ClientError(CLIENT_ERR.badOptions, 'retry: initialDelayMs must be >= 0 and maxDelayMs >= initialDelayMs');
    // The shard's PostgreSQL takes TLS connections only when the shard runs with TLS: with the
    // client's CA, connections are TLS and the server is checked (its certificate and host).
    this.pgConfig = pgConfig.ssl === undefined && client.ca !== undefined ? { ...pgConfig, ssl: { ca: client.ca, rejectUnauthorized: true } } : pgConfig;
    this.log = logger?.child({ room: 'client-pool' }) ?? null;
    client.on('topology', this.onTopology);
    this.switchTo(client.primaryUrl());
  }

  /** The pgUrl that new connections go to, or null before the topology is known. */
  get primaryUrl(): string | null {
    return this.poolUrl;
  }

  /** Connections of the current primary's pool: all, idle, and callers waiting for one. */
  get counts(): { total: number; idle: number; waiting: number; draining: number } {
    return { total: this.pool?.totalCount ?? 0, idle: this.pool?.idleCount ?? 0, waiting: this.pool?.waitingCount ?? 0, draining: this.draining.size };
  }

  /** One statement on the primary, with the bounded retries described above. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    let delayMs = this.initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      const conn = await this.connectOnce(attempt, delayMs);
      if (conn === null) {
        await sleep(delayMs);
        delayMs = Math.min(delayMs * 2, this.maxDelayMs);
        continue;
      }
      try {
        const result = await conn.query<R>(text, values);
        conn.release();
        return result;
      } catch (err) {
        const state = sqlState(err);
        // A connection that broke is not given back to the pool; one with an SQL error is fine.
        releaseAfter(conn, err);
        if (state !== null && RETRY_AFTER_STATEMENT.has(state) && attempt < this.attempts) {
          this.log?.info({ pool: 'retry', attempt, sqlState: state, primary: this.poolUrl }, `statement refused (${(err as Error).message}); retrying in ${delayMs} ms`);
          await sleep(delayMs);
          delayMs = Math.min(delayMs * 2, this.maxDelayMs);
          continue;
        }
        throw err;
      }
    }
  }

  /**
   * A connection to the primary for a transaction; connection failures are retried. The caller
   * must release it, and after an error must say so, as pg's contract asks: `release(err)`
   * destroys the connection, a plain `release()` returns it to the pool, even when the error ended
   * the session (a terminated backend: the next caller would then get a dead connection). Use
   * `releaseAfter(conn, err)`, which destroys it only when the session may be unusable (the rule
   * query() follows), and keeps it after an SQL error. An SQL error inside a transaction leaves
   * the session in that failed transaction: end it before the connection goes back (only after a
   * server's error: after a client-side timeout a ROLLBACK would queue behind the unanswered
   * statement and wait for ever; releaseAfter destroys that connection).
   *
   *   const conn = await pool.connect();
   *   try {
   *     await conn.query('BEGIN'); ...; await conn.query('COMMIT');
   *     conn.release();
   *   } catch (err) {
   *     const fromServer = typeof (err as { code?: unknown }).code === 'string';
   *     const rollback = fromServer ? await conn.query('ROLLBACK').then(() => null, (e: unknown) => e) : null;
   *     releaseAfter(conn, rollback ?? err);
   *     throw err;
   *   }
   */
  async connect(): Promise<pg.PoolClient> {
    let delayMs = this.initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      const conn = await this.connectOnce(attempt, delayMs);
      if (conn !== null) return conn;
      await sleep(delayMs);
      delayMs = Math.min(delayMs * 2, this.maxDelayMs);
    }
  }

  /** Stops following the topology and ends every connection (waits for checked-out ones to be released). */
  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.client.off('topology', this.onTopology);
    const p = this.pool;
    this.pool = null;
    if (p !== null) this.drain(p, this.poolUrl ?? '?');
    await Promise.all([...this.draining]);
  }

  /** One attempt: a connection, null when it is worth trying again, or a thrown error. */
  private async connectOnce(attempt: number, delayMs: number): Promise<pg.PoolClient | null> {
    if (this.ended) throw new ClientError(CLIENT_ERR.closed, 'the pool was ended');
    if (this.pool === null) {
      try {
        await this.client.whenReady(this.waitForPrimaryMs);
      } catch (err) {
        throw new ClientError(CLIENT_ERR.noPrimary, `no primary known: ${(err as Error).message}`, { cause: err });
      }
      // The topology event may not have reached this pool yet (listener order): take it now.
      this.switchTo(this.client.primaryUrl());
    }
    const pool = this.pool;
    const url = this.poolUrl;
    if (pool === null) throw new ClientError(CLIENT_ERR.noPrimary, 'no primary known');
    try {
      const conn = await pool.connect();
      this.guard(conn, url);
      return conn;
    } catch (err) {
      const state = sqlState(err);
      if (state !== null && FATAL_CONNECT_CLASSES.some((c) => state.startsWith(c))) throw err;
      if (attempt >= this.attempts) {
        throw new ClientError(CLIENT_ERR.noPrimary, `could not connect to the primary (${url ?? '?'}) in ${attempt} attempts: ${(err as Error).message}`, { cause: err });
      }
      this.log?.info({ pool: 'retry', attempt, primary: url, err: (err as Error).message }, `connecting to the primary ${url ?? '?'} failed; retrying in ${delayMs} ms`);
      return null;
    }
  }

  /**
   * pg-pool listens for errors on idle connections only. A checked-out connection whose server
   * dies (a failover) emits 'error' as well as failing its query; without a listener that
   * 'error' would crash the application. The query's own failure is what the caller sees.
   */
  private guard(conn: pg.PoolClient, url: string | null): void {
    if (this.guarded.has(conn)) return;
    this.guarded.add(conn);
    conn.on('error', (err: Error) => {
      this.log?.warn({ pool: 'connection-error', primary: url, err: err.message }, `a connection to ${url ?? '?'} failed: ${err.message}`);
    });
  }

  private switchTo(pgUrl: string | null): void {
    if (this.ended || pgUrl === null || pgUrl === this.poolUrl) return;
    const old = this.pool;
    const oldUrl = this.poolUrl;
    const { host, port, database } = connectionOf(pgUrl);
    const pool = new pg.Pool({ ...this.pgConfig, host, port, database: this.pgConfig.database ?? database });
    // An idle connection that the server closes emits 'error' on the pool: never let it crash the app.
    pool.on('error', (err) => {
      this.log?.warn({ pool: 'idle-error', primary: pgUrl, err: err.message }, `an idle connection to ${pgUrl} failed: ${err.message}`);
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    this.pool = pool;
    this.poolUrl = pgUrl;
    this.log?.info({ pool: 'primary', primary: pgUrl, previous: oldUrl }, `new connections go to ${pgUrl}${oldUrl !== null ? ` (was ${oldUrl})` : ''}`);
    if (old !== null) this.drain(old, oldUrl ?? '?');
    this.emit('primary', pgUrl);
  }

  private drain(pool: pg.Pool, url: string): void {
    const p = pool.end().then(
      () => { this.log?.info({ pool: 'drained', primary: url }, `every connection to ${url} ended`); },
      (err: unknown) => { this.log?.warn({ pool: 'drain-failed', primary: url, err: errorMessage(err) }, `ending the connections to ${url} failed`); },
    ).finally(() => { this.draining.delete(p); });
    this.draining.add(p);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A pg Pool whose connections always go to `client`'s current primary. */
export function createPool(client: ManateeClient, options: PrimaryPoolOptions = {}): PrimaryPool {
  return new PrimaryPool(client, options);
}
