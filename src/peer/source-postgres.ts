// Other peers' PostgreSQL, as the peer that copies from one sees it: is the source promoted (a
// deposed peer rebuilds only from a promoted primary), does it answer (a new standby copies only
// from a running upstream). Behind an interface so that a simulation answers instead.
import pg from 'pg';
import { closeClient, HeldConnection, parsePgUrl, readTimelineHistory } from '../postgres/index.js';
import type { PeerInfo, TimelineHistory } from '../model/index.js';
import { peerServerIdentity } from '../tls/index.js';

export interface SourcePostgres {
  /** True when `source` is out of recovery, else why not; throws when it does not answer. */
  promoted(source: PeerInfo): Promise<true | string>;
  /** True when `source` answers; throws when it does not. */
  online(source: PeerInfo): Promise<true | string>;
  /**
   * The timeline that `source` writes (a primary's) with its history, or null when it is a
   * standby, does not answer, or its history file cannot be read.
   */
  timelineHistory(source: PeerInfo): Promise<TimelineHistory | null>;
  /**
   * Whether `source` (a primary) is read-only (default_transaction_read_only on: it waits for its
   * sync before it takes a write), or null when it is a standby or does not answer.
   */
  readOnly(source: PeerInfo): Promise<boolean | null>;
  /**
   * Whether `source` accepts `password` for the replication role (a rotation of the shard secret):
   * true when it logs in, false when it refuses the password, null when it does not answer.
   */
  acceptsPassword(source: PeerInfo, password: string): Promise<boolean | null>;
  /** Drops the held connection (the copy is done, or the sitter stops). */
  close(why: string): void;
}

/**
 * pg_is_in_recovery() on the source's PostgreSQL, as the replication role (which pg_rewind uses
 * too). The reconciler asks every few hundred ms while it waits for a source: on one held
 * connection, not a new backend on the source's server each time (closed once the copy is done,
 * or for another source).
 */
export class HeldSourcePostgres implements SourcePostgres {
  /** The held connection, and the source it is to: its id (its certificate's) and its pgUrl. */
  private held: { readonly key: string; readonly conn: HeldConnection } | null = null;

  constructor(private readonly o: {
    readonly selfId: string;
    readonly replicationUser: string;
    /** Asked at each new connection: a rotation of the shard secret moves it (pg-credentials.ts). */
    readonly replicationPassword: string | (() => string);
    readonly timeoutMs: number;
    /** With TLS: the shard CA and this peer's certificate and key (the source admits hostssl only). */
    readonly ssl?: () => { readonly ca: string; readonly cert: string; readonly key: string };
  }) {}

  async promoted(source: PeerInfo): Promise<true | string> {
    const rec = await this.inRecovery(source);
    return rec === false ? true : `${source.id} is still in recovery`;
  }

  async online(source: PeerInfo): Promise<true | string> {
    await this.inRecovery(source);
    return true;
  }

  async timelineHistory(source: PeerInfo): Promise<TimelineHistory | null> {
    const rows = await this.query<{ tli: number | null }>(source,
      "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS tli",
    ).catch(() => null);
    const tli = rows?.[0]?.tli ?? null;
    if (tli === null) return null;
    return readTimelineHistory((sql, params) => this.query(source, sql, params), tli).catch(() => null);
  }

  async readOnly(source: PeerInfo): Promise<boolean | null> {
    const rows = await this.query<{ ro: boolean | null }>(source,
      "SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE current_setting('default_transaction_read_only')::bool END AS ro",
    ).catch(() => null);
    return rows?.[0]?.ro ?? null;
  }

  /**
   * With TLS: the shard CA, this peer's certificate, and the source's certificate checked against
   * the host and bound to the source's id (another peer's PostgreSQL found at that address, a stale
   * pgUrl, is refused: MANATEE_ERR_TLS_PEER_ID), as pg_basebackup and pg_rewind check only the host.
   */
  private sslTo(source: PeerInfo): { ssl?: pg.ClientConfig['ssl'] } {
    if (this.o.ssl === undefined) return {};
    return { ssl: { ...this.o.ssl(), rejectUnauthorized: true, minVersion: 'TLSv1.3', checkServerIdentity: peerServerIdentity(source.id) } };
  }

  close(why: string): void {
    this.held?.conn.close(why, true);
    this.held = null;
  }

  private async inRecovery(source: PeerInfo): Promise<boolean | undefined> {
    const rows = await this.query<{ rec: boolean }>(source, 'SELECT pg_is_in_recovery() AS rec');
    return rows[0]?.rec;
  }

  private async query<T extends Record<string, unknown>>(source: PeerInfo, sql: string, params?: readonly unknown[]): Promise<T[]> {
    const timeoutMs = this.o.timeoutMs;
    const key = `${source.id} ${source.pgUrl}`;
    if (this.held?.key !== key) {
      this.held?.conn.close('asking another source', true);
      const e = parsePgUrl(source.pgUrl, { user: this.o.replicationUser });
      const conn = new HeldConnection({
        config: () => ({
          host: e.host,
          port: e.port,
          user: this.o.replicationUser,
          password: typeof this.o.replicationPassword === 'string' ? this.o.replicationPassword : this.o.replicationPassword(),
          database: 'postgres',
          connectionTimeoutMillis: timeoutMs,
          statement_timeout: timeoutMs,
          application_name: `manatee-sitter-${this.o.selfId}`,
          ...this.sslTo(source),
        }),
      });
      this.held = { key, conn };
    }
    return this.held.conn.query<T>(sql, params, timeoutMs);
  }

  /**
   * Whether `source` accepts `password` for the replication role: a connection of its own, ended at
   * once. True when it logs in, false when the server says the password is wrong, null otherwise
   * (it does not answer: nothing is learnt).
   */
  async acceptsPassword(source: PeerInfo, password: string): Promise<boolean | null> {
    const e = parsePgUrl(source.pgUrl, { user: this.o.replicationUser });
    const client = new pg.Client({
      host: e.host, port: e.port, user: this.o.replicationUser, password, database: 'postgres',
      connectionTimeoutMillis: this.o.timeoutMs, application_name: `manatee-sitter-${this.o.selfId}-password`,
      ...this.sslTo(source),
    });
    client.on('error', () => { /* the connect's rejection says it */ });
    try {
      await client.connect();
      return true;
    } catch (err) {
      // invalid_password (28P01): the server refused this password.
      return (err as { code?: unknown }).code === '28P01' ? false : null;
    } finally {
      // Not end() alone: after a TLS refusal (our certificate refused) it never settles.
      await closeClient(client);
    }
  }
}
