// One PostgreSQL connection that the sitter holds and reuses for its own small queries.
//
// Why held: a new connection forks a backend that starts, attaches shared memory, loads its
// caches and exits. At the sitter's rate (health check, WAL and replication polls, heartbeat:
// about 5 a second per peer) that churn took a third of the primary's pgbench throughput on a
// 2-core machine, while the same queries on a held connection cost nothing measurable
// (../shared/measurements/datapath-2026-12.md; tools/bench/datapath.ts measures it).
//
// What a held connection must still do, and how:
// - Notice a hung server: every query has a deadline on the client side; when it passes, the
//   connection is destroyed (its socket closed), never reused with a query still running on it.
//   The server's statement_timeout (set at connect) bounds what the backend goes on doing.
// - Notice a restarted or stopped server: a broken connection fails its query; the next query
//   connects afresh. Nothing is retried here: the caller sees the failure, as before.
// - Stay clean between callers: queries run one at a time, in order; after a server error a
//   ROLLBACK ends any transaction the failed string left open.
// Whether the server still accepts NEW connections (it may be out of connection slots while this
// one works) is not this class's business: PostgresServer.checkNewConnection() asks, at a much
// lower rate.
import pg from 'pg';
import { PgError } from './errors.js';
import { errorMessage } from '../errors.js';

/**
 * Closes a node-postgres client whatever became of its connection, within `graceMs`. pg's end()
 * waits for its socket's 'end', which never comes after a refusal that arrives once TLS 1.3's
 * handshake looks done to the client (the server refusing its certificate: an alert on the first
 * read), so end() never settles (pg 8.23) and would hang its caller for good. end() gets its
 * chance (a live session says goodbye), then the socket is destroyed in any case.
 */
export async function closeClient(client: pg.Client, graceMs = CLOSE_GRACE_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([client.end().catch(() => undefined), new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs); })]);
  } finally {
    clearTimeout(timer);
    client.connection.stream.destroy();
  }
}

/** How long closeClient lets end() say goodbye (a local or LAN round trip, with a margin). */
export const CLOSE_GRACE_MS = 2000;

export interface HeldConnectionOptions {
  /** Connection settings, read at each (re)connect (statement_timeout and connect timeout included). */
  readonly config: () => pg.ClientConfig;
  /** Called once for each new connection and each connection dropped, with the reason (for logs and counters). */
  readonly onEvent?: (e: { kind: 'connected' } | { kind: 'dropped'; reason: string }) => void;
}


/** A server's answer (it has a SQLSTATE and the connection is still in sync), not a broken connection. */
function isServerError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  // Class 08 (connection exception) and 57P0x (shutdown, crash) end the session on the server's side.
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08') && !code.startsWith('57P');
}

export class HeldConnection {
  private client: pg.Client | null = null;
  /** The queries run one after another: each waits for the previous one to end. */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private connects = 0;

  constructor(private readonly opts: HeldConnectionOptions) {}

  /** How many connections were opened so far (for tests and the status). */
  get connectCount(): number {
    return this.connects;
  }

  get connected(): boolean {
    return this.client !== null;
  }

  /**
   * Runs `sql` on the held connection (connecting first if there is none) and resolves with its
   * rows. `deadlineMs` counts from this call, waiting for earlier queries included: a caller
   * queued behind a query on a hung server is answered at its own deadline, not after the earlier
   * query's (a hung server held the sitter's evaluation for the 10 s of another job's query).
   * Rejects with MANATEE_ERR_PG_QUERY on any failure; after a deadline or a connection failure the
   * connection is dropped, so the next query connects afresh. A query whose caller gave up while
   * it waited is not sent.
   */
  query<R extends Record<string, unknown>>(sql: string, params: readonly unknown[] | undefined, deadlineMs: number): Promise<R[]> {
    const startedMs = Date.now();
    let gaveUp = false;
    let timer: NodeJS.Timeout | undefined;
    // While it waits its turn: once it runs, runOne's own deadline (the rest of deadlineMs) holds.
    const queued = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        gaveUp = true;
        reject(new PgError('MANATEE_ERR_PG_QUERY', `query failed (${sql.slice(0, 60)}): no answer within ${deadlineMs} ms: queued behind an earlier query on the held connection that has not ended`));
      }, deadlineMs);
    });
    const run = this.tail.then(() => {
      clearTimeout(timer);
      if (gaveUp) throw new PgError('MANATEE_ERR_PG_QUERY', `query failed (${sql.slice(0, 60)}): its deadline passed while earlier queries ran`);
      return this.runOne<R>(sql, params, deadlineMs - (Date.now() - startedMs));
    });
    this.tail = run.catch(() => undefined);
    return Promise.race([run, queued]);
  }

  /** Drops the connection (if any); later queries connect again unless `final`. */
  close(reason = 'closed by the sitter', final = false): void {
    if (final) this.closed = true;
    this.drop(reason);
  }

  private async runOne<R extends Record<string, unknown>>(sql: string, params: readonly unknown[] | undefined, remainingMs: number): Promise<R[]> {
    const what = sql.slice(0, 60);
    if (this.closed) throw new PgError('MANATEE_ERR_PG_QUERY', `query failed (${what}): the connection is closed`);
    if (remainingMs <= 0) throw new PgError('MANATEE_ERR_PG_QUERY', `query failed (${what}): its deadline passed while earlier queries ran`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => { reject(new PgError('MANATEE_ERR_PG_QUERY', `no answer within ${remainingMs} ms`)); }, remainingMs);
    });
    const startedMs = Date.now();
    let client: pg.Client | null = null;
    try {
      client = this.client ?? (await Promise.race([this.connect(remainingMs), deadline]));
      const res = await Promise.race([client.query<R>(sql, params === undefined ? undefined : [...params]), deadline]);
      return res.rows;
    } catch (err) {
      if (client !== null && client === this.client && isServerError(err)) {
        // The session is fine; end whatever transaction the failed string may have left open.
        const left = Math.max(100, remainingMs - (Date.now() - startedMs));
        await Promise.race([client.query('ROLLBACK'), new Promise((_, reject) => setTimeout(() => { reject(new PgError('MANATEE_ERR_PG_QUERY', 'ROLLBACK timed out')); }, left))])
          .catch((e: unknown) => { this.drop(`ROLLBACK after an error failed: ${errorMessage(e)}`); });
      } else {
        this.drop(`query failed: ${errorMessage(err)}`);
      }
      throw new PgError('MANATEE_ERR_PG_QUERY', `query failed (${what}): ${errorMessage(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  private async connect(timeoutMs: number): Promise<pg.Client> {
    const config = this.opts.config();
    const client = new pg.Client({ ...config, connectionTimeoutMillis: Math.min(timeoutMs, config.connectionTimeoutMillis ?? timeoutMs) });
    // A connection that breaks while idle (server restart, admin shutdown) is dropped at once.
    client.on('error', (err) => { if (this.client === client) this.drop(`connection error: ${errorMessage(err)}`); });
    client.on('end', () => { if (this.client === client) this.drop('the server closed the connection'); });
    try {
      await client.connect();
    } catch (err) {
      client.connection.stream.destroy();
      throw err;
    }
    if (this.closed) {
      client.connection.stream.destroy();
      throw new PgError('MANATEE_ERR_PG_NEW_CONNECTION', 'the connection was closed while it was being opened');
    }
    this.client = client;
    this.connects++;
    this.opts.onEvent?.({ kind: 'connected' });
    return client;
  }

  private drop(reason: string): void {
    const c = this.client;
    if (c === null) return;
    this.client = null;
    // Destroy, not end(): a hung server would never answer the goodbye.
    c.connection.stream.destroy();
    this.opts.onEvent?.({ kind: 'dropped', reason });
  }
}
