// PostgreSQL 15 as a managed child process of the sitter.
//
// One PostgresServer owns one data directory. It renders the configuration (config.ts), runs
// initdb, starts the postmaster as a child (as the unprivileged OS user when we are root),
// tells the caller when it exits, adopts or stops a postmaster left behind by a sitter that
// died, and switches roles. See configure() for which changes reload and which restart.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chown, mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import { basename, dirname, join } from 'node:path';
import pg from 'pg';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { findPgBinaries, type PgBinaries } from './binaries.js';
import {
  ENFORCED_KEYS, FILE_ENFORCED_CONF, FILE_HBA_CONF, FILE_IDENT_CONF, FILE_MANATEE_CONF, FILE_OVERRIDES_CONF, FILE_POSTGRESQL_CONF,
  FILE_STANDBY_SIGNAL, NO_SYNC_PLACEHOLDER, OVERRIDES_TEMPLATE, passfileLine, quoteStandbyName, renderEnforcedConf,
  libpqTls, renderHba, renderIdent, renderManateeConf, renderPostgresqlConf, validatePeerId, TLS_MIN_PROTOCOL, type ConfValue, type PgRole,
  type HbaPeerAddress, type PgTlsPaths, type RenderedRole,
} from './config.js';
import { closeClient, HeldConnection } from './connection.js';
import { readPgSettings } from './settings.js';
import { FILE_SHARD_CONF, mayHideBadValue, ownedPending, rejectedSettings, unmaskBadPendingValues, REJECTED_SETTINGS_QUERY, renderShardConf, settingsReport, SETTINGS_REPORT_QUERY, type PeerSettingReport, type RejectedSetting, type RejectedSettingRow, type SettingsReportRow } from './shard-conf.js';
import { hostAddress, normalizeCidr, peerSubnets } from './networks.js';
import { PgError } from './errors.js';
import { describeRun, runTool } from './exec.js';
import { ensureOwnedDir, resolveOsUser, spawnIdentity, type OsUser } from './os-user.js';
import { checkPostmaster, processAlive, processesInDataDir } from './postmaster-pid.js';
import { LineRing, lineSplitter } from './progress.js';
import {
  checkSyncCaughtUp, readReplication, readWalPositions, type QueryFn, type ReplicationRow, type SyncCatchUp, type WalPositions,
} from './replication.js';
import { errorMessage } from '../errors.js';

export type ShutdownMode = 'smart' | 'fast' | 'immediate';

/** How long one stop (fast, then immediate) may take before it is escalated or fails. */
export const DEFAULT_STOP_TIMEOUT_MS = 60_000;

export interface PostgresServerOptions {
  /** The data directory (PGDATA). Created by initdb() if missing; must belong to osUser. */
  readonly dataDir: string;
  /** Sockets, logs and the replication password file. Default `<dataDir>.run`. Kept short: socket paths are limited to 107 bytes. */
  readonly runDir?: string;
  /** Directory of the PostgreSQL 15 programs; default: pg_config --bindir, then /usr/lib/postgresql/15/bin. */
  readonly bindir?: string;
  /** OS user that runs PostgreSQL when the sitter runs as root. Default `postgres`. */
  readonly osUser?: string;
  /** listen_addresses, e.g. "127.0.0.1" or "*". */
  readonly listenAddress: string;
  readonly port: number;
  /** The database superuser that the sitter uses over the unix socket. Default `postgres`. */
  readonly superuser?: string;
  /** Optional password of the superuser (for network logins); the socket needs none. */
  readonly superuserPassword?: string;
  /** The role that standbys, pg_basebackup and pg_rewind use. Default `replicator`. */
  readonly replicationUser?: string;
  readonly replicationPassword: string;
  /**
   * The shard's CA, this peer's certificate and key (src/tls checks them). PostgreSQL serves TLS 1.3
   * only, every network line of pg_hba.conf is hostssl, and connections to other peers
   * (primary_conninfo, pg_basebackup, pg_rewind) check the server with sslmode=verify-full. Without
   * it, TLS is off: only for a server no other machine reaches.
   */
  readonly tls?: { readonly caFile: string; readonly certFile: string; readonly keyFile: string };
  /**
   * The peers (this one included): their hosts are the only addresses the replication role may
   * connect from, and with TLS only with the certificate of a peer at that address (its CN, the
   * peer id: pg_ident.conf). Kept current with setPeers(). Default: listenAddress, with no peer
   * (without TLS the replication role may connect from it; with TLS no certificate is admitted).
   */
  readonly peers?: readonly PgPeer[];
  /** Networks that clients may connect from (scram-sha-256 always). Default: the peers' subnets (networks.ts). */
  readonly clientCidrs?: readonly string[];
  /** Default 1GB: how much WAL a primary keeps for standbys that fall behind. */
  readonly walKeepSize?: string;
  readonly maxWalSenders?: number;
  /** Extra defaults rendered into manatee.conf (the operator's overrides still win). */
  readonly settings?: Readonly<Record<string, ConfValue>>;
  /** What to do with a postmaster found running on this data directory at start. Default `adopt`. */
  readonly orphanPolicy?: 'adopt' | 'stop';
  readonly startTimeoutMs?: number;
  readonly stopTimeoutMs?: number;
  /** statement_timeout and connect timeout of the sitter's own queries. Default 10 s. */
  readonly queryTimeoutMs?: number;
  /** How often an adopted postmaster (not our child, so no exit event) is checked. Default 500 ms. */
  readonly adoptedPollMs?: number;
  readonly logger?: Logger;
}

/** A peer as pg_hba.conf and pg_ident.conf know it: its id (its certificate's CN) and its host. */
export interface PgPeer {
  readonly id: string;
  readonly host: string;
}

/**
 * Each peer address once (sorted), with the ids of the peers at it (sorted). Throws
 * MANATEE_ERR_PG_INVALID_OPTION for a host that is not an address or DNS name, or an id that is not a peer id.
 */
export function peerAddressTable(peers: readonly PgPeer[]): HbaPeerAddress[] {
  const byAddress = new Map<string, Set<string>>();
  for (const p of peers) {
    validatePeerId(p.id, `peer ${JSON.stringify(p.host)}: id`);
    const address = hostAddress(p.host);
    byAddress.set(address, (byAddress.get(address) ?? new Set()).add(p.id));
  }
  return [...byAddress].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([address, ids]) => ({ address, ids: [...ids].sort() }));
}

export interface PgExit {
  readonly pid: number;
  readonly code: number | null;
  readonly signal: string | null;
  /** True when we asked it to stop. */
  readonly expected: boolean;
  /** True for a postmaster that we adopted (no exit code is known then). */
  readonly adopted: boolean;
}

export interface ConfigureResult {
  readonly action: 'started' | 'reloaded' | 'restarted' | 'promoted' | 'stopped' | 'none';
  readonly role: RenderedRole;
  /** postmaster-context settings that Manatee owns, which changed and forced a restart. */
  readonly restartedFor: readonly string[];
  /** The operator's postmaster-context settings that changed: they wait for a (rolling) restart. */
  readonly pendingRestart?: readonly string[];
}

/** What applyShardSettings() did. */
export interface ShardSettingsApplied {
  readonly version: number;
  /** PostgreSQL ran and reloaded its files. */
  readonly reloaded: boolean;
  /** Settings whose new value waits for a restart (empty when PostgreSQL is stopped: it starts with them). */
  readonly pendingRestart: readonly string[];
}

interface PgEvents {
  exit: [PgExit];
  started: [{ pid: number; adopted: boolean }];
}

const SIGNAL_FOR: Record<ShutdownMode, NodeJS.Signals> = { smart: 'SIGTERM', fast: 'SIGINT', immediate: 'SIGQUIT' };
const IDENT_RE = /^[a-z_][a-z0-9_]{0,62}$/;
const SOCKET_PATH_MAX = 100;
/** A fence's checkpoint (see fenceWrites) flushes every dirty buffer: allow a large database time for it. */
const FENCE_CHECKPOINT_TIMEOUT_MS = 300_000;
/** A query's client-side deadline is its statement_timeout plus this: the server's own error comes first. */
const QUERY_DEADLINE_MARGIN_MS = 1000;
/** How often a reload's effect is looked for (pg_conf_load_time). */
const RELOAD_POLL_MS = 5;
/** A reload not seen after this long is checked for a line that blocks it (normally it takes 1 or 2 ms). */
const RELOAD_BLOCK_CHECK_MS = 100;
/** How often a promotion's end, and a detached WAL receiver's exit, are looked for. */
const PROMOTE_POLL_MS = 5;
/** How often syncCaughtUp(syncId, waitMs) asks again (pg_stat_replication). */
const SYNC_POLL_MS = 10;


function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class PostgresServer extends EventEmitter<PgEvents> {
  readonly dataDir: string;
  readonly runDir: string;
  readonly logDir: string;
  readonly passfile: string;
  readonly superuser: string;
  readonly replicationUser: string;
  private readonly log: Logger;
  private readonly startTimeoutMs: number;
  private readonly stopTimeoutMs: number;
  private readonly queryTimeoutMs: number;
  private child: ChildProcess | null = null;
  private childExit: Promise<PgExit> | null = null;
  private adoptedPid: number | null = null;
  private adoptedPoll: NodeJS.Timeout | null = null;
  private stopping = false;
  private rendered: RenderedRole | null = null;
  /** The shard-wide settings rendered into manatee-shard.conf (applyShardSettings). */
  private shardSettings: { readonly settings: Readonly<Record<string, string>>; readonly version: number } = { settings: {}, version: 0 };
  private shardSource: (() => { readonly settings: Readonly<Record<string, string>>; readonly version: number }) | null = null;
  private readonly stderrTail = new LineRing(40);
  /** The sitter's own queries share this one connection (see query()). */
  private readonly held: HeldConnection;
  /** pg_hba.conf's peer addresses and pg_ident.conf's ids at each (setPeers). */
  private peerTable: readonly HbaPeerAddress[];
  /** The peers' hosts, sorted, each once: the default client networks are their subnets. */
  private peerHostList: readonly string[];
  /** Where PostgreSQL and its client tools find the TLS files (copies owned by the OS user), or null. */
  readonly tlsPaths: PgTlsPaths | null;
  /** The replication role's password in the passfile (setReplicationPassword: a rotation moves it). */
  private replicationPassword: string;

  private constructor(
    private readonly opts: PostgresServerOptions,
    readonly binaries: PgBinaries,
    readonly user: OsUser,
  ) {
    super();
    this.dataDir = opts.dataDir;
    this.runDir = opts.runDir ?? `${opts.dataDir}.run`;
    this.logDir = join(this.runDir, 'log');
    this.passfile = join(this.runDir, 'pgpass');
    this.superuser = opts.superuser ?? 'postgres';
    this.replicationUser = opts.replicationUser ?? 'replicator';
    this.replicationPassword = opts.replicationPassword;
    this.log = (opts.logger ?? silentLogger()).child({ room: 'postgres', dataDir: opts.dataDir, port: opts.port });
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
    this.stopTimeoutMs = opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.queryTimeoutMs = opts.queryTimeoutMs ?? 10_000;
    this.held = new HeldConnection({
      config: () => this.clientConfig(),
      onEvent: (e) => {
        if (e.kind === 'connected') this.log.debug({ decision: 'held-connection' }, 'connected the sitter\'s held connection');
        else this.log.debug({ decision: 'held-connection-dropped', reason: e.reason }, `dropped the sitter's held connection: ${e.reason}`);
      },
    });
    const peers = opts.peers ?? [];
    this.peerHostList = [...new Set(opts.peers === undefined ? [opts.listenAddress] : peers.map((p) => p.host))].sort();
    this.peerTable = opts.peers === undefined ? [{ address: hostAddress(opts.listenAddress), ids: [] }] : peerAddressTable(peers);
    const tlsDir = join(this.runDir, 'tls');
    this.tlsPaths = opts.tls === undefined ? null : { caFile: join(tlsDir, 'ca.crt'), certFile: join(tlsDir, 'peer.crt'), keyFile: join(tlsDir, 'peer.key') };
  }

  /**
   * Validate the options, find the binaries and the OS user. Touches nothing on disk.
   * Throws MANATEE_ERR_PG_BINARIES_NOT_FOUND, MANATEE_ERR_PG_OS_USER, MANATEE_ERR_PG_INVALID_OPTION.
   */
  static async open(opts: PostgresServerOptions): Promise<PostgresServer> {
    const superuser = opts.superuser ?? 'postgres';
    const repl = opts.replicationUser ?? 'replicator';
    for (const [what, v] of [['superuser', superuser], ['replicationUser', repl]] as const) {
      if (!IDENT_RE.test(v)) throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `${what} ${JSON.stringify(v)}: expected a lower-case identifier`);
    }
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
      throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `port ${opts.port}: expected an integer 1-65535`);
    }
    if (opts.replicationPassword.length === 0 || /[\n\r\0]/.test(opts.replicationPassword)) {
      throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', 'replicationPassword: expected a non-empty single line');
    }
    if (opts.superuserPassword !== undefined && /[\n\r\0]/.test(opts.superuserPassword)) {
      throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', 'superuserPassword: expected a single line');
    }
    if (opts.peers === undefined) hostAddress(opts.listenAddress);
    else peerAddressTable(opts.peers);
    for (const c of opts.clientCidrs ?? []) normalizeCidr(c);
    const runDir = opts.runDir ?? `${opts.dataDir}.run`;
    const socketPath = join(runDir, `.s.PGSQL.${opts.port}`);
    if (Buffer.byteLength(socketPath) > SOCKET_PATH_MAX) {
      throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `runDir ${runDir}: the socket path ${socketPath} is longer than ${SOCKET_PATH_MAX} bytes`);
    }
    const binaries = await findPgBinaries({ bindir: opts.bindir, logger: opts.logger });
    const user = await resolveOsUser(opts.osUser);
    return new PostgresServer(opts, binaries, user);
  }

  get port(): number {
    return this.opts.port;
  }

  /** The postmaster's pid (our child or an adopted one), or null when none is running. */
  get postgresPid(): number | null {
    return this.child?.pid ?? this.adoptedPid;
  }

  get running(): boolean {
    return this.postgresPid !== null;
  }

  /** The role last rendered, or null before configure(). */
  get role(): RenderedRole | null {
    return this.rendered;
  }

  /** Connection settings of the sitter's own superuser connection over the unix socket. */
  clientConfig(database = 'postgres'): pg.ClientConfig {
    return {
      host: this.runDir,
      port: this.opts.port,
      user: this.superuser,
      database,
      connectionTimeoutMillis: this.queryTimeoutMs,
      statement_timeout: this.queryTimeoutMs,
      query_timeout: this.queryTimeoutMs + 1000,
      application_name: 'manatee-sitter',
    };
  }

  /** libpq conninfo that another peer uses to reach this server as the replication role. */
  get replicationConninfo(): { host: string; port: number; user: string } {
    return { host: this.opts.listenAddress, port: this.opts.port, user: this.replicationUser };
  }

  /**
   * One query on the sitter's held connection (src/postgres/connection.ts): no new backend per
   * query. A hung or restarted server fails the query (deadline, broken socket) and the next one
   * connects afresh, so nothing is ever wedged.
   */
  readonly query: QueryFn = async <R extends Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]> =>
    this.queryWithTimeout<R>(sql, params, this.queryTimeoutMs);

  /**
   * A query with its own timeout. Up to the server's queryTimeoutMs (the held connection's
   * statement_timeout) it runs on the held connection, cut off by a client-side deadline; a longer
   * one (CHECKPOINT, pg_promote: rare) gets a fresh connection with its own statement_timeout.
   */
  async queryWithTimeout<R extends Record<string, unknown>>(sql: string, params: readonly unknown[] | undefined, timeoutMs: number): Promise<R[]> {
    if (timeoutMs <= this.queryTimeoutMs) return this.held.query<R>(sql, params, timeoutMs + QUERY_DEADLINE_MARGIN_MS);
    return this.queryOnNewConnection<R>(sql, params, timeoutMs);
  }

  /** A query on a connection of its own, closed afterwards. */
  private async queryOnNewConnection<R extends Record<string, unknown>>(sql: string, params: readonly unknown[] | undefined, timeoutMs: number): Promise<R[]> {
    const client = new pg.Client({
      ...this.clientConfig(), statement_timeout: timeoutMs, query_timeout: timeoutMs + QUERY_DEADLINE_MARGIN_MS, application_name: 'manatee-sitter-once',
    });
    client.on('error', () => { /* reported by the failing query */ });
    try {
      await client.connect();
      const res = await client.query<R>(sql, params === undefined ? undefined : [...params]);
      return res.rows;
    } catch (err) {
      throw new PgError('MANATEE_ERR_PG_QUERY', `query failed (${sql.slice(0, 60)}): ${errorMessage(err)}`, { cause: err });
    } finally {
      await closeClient(client);
    }
  }

  /**
   * Does PostgreSQL accept a NEW connection? The held connection keeps working when the server is
   * out of connection slots; the health check asks this too, at a much lower rate.
   * Throws MANATEE_ERR_PG_NEW_CONNECTION with the server's reason.
   */
  async checkNewConnection(timeoutMs = this.queryTimeoutMs): Promise<void> {
    try {
      await this.queryOnNewConnection('SELECT 1', undefined, timeoutMs);
    } catch (err) {
      const cause = err instanceof PgError && err.cause instanceof Error ? err.cause.message : errorMessage(err);
      throw new PgError('MANATEE_ERR_PG_NEW_CONNECTION', `PostgreSQL accepts no new connection: ${cause}`, { cause: err });
    }
  }

  /** How many times the held connection was opened (tests, status). */
  get heldConnectCount(): number {
    return this.held.connectCount;
  }

  /**
   * The data directory holds a database. A running postmaster holds its own: only a stopped one's
   * is looked at. The look is a stat through libuv's thread pool (a worker thread's wake-up and the
   * event loop's), which the reconciler asked for at every evaluation, once a second on every peer
   * (0.6 ms of CPU a second on an idle primary's sitter, in a V8 profile).
   */
  async hasData(): Promise<boolean> {
    if (this.running) return true;
    try {
      await stat(join(this.dataDir, 'PG_VERSION'));
      return true;
    } catch {
      return false;
    }
  }

  // ---------------------------------------------------------------- files

  /** Writes `content` to `path` (atomically, owned by the OS user). Resolves true when it differs from what the file held. */
  private async writeOwned(path: string, content: string, mode = 0o600): Promise<boolean> {
    const before = await readFile(path, 'utf8').catch(() => null);
    const tmp = `${path}.manatee-tmp`;
    await writeFile(tmp, content, { mode });
    if (this.user.switchUser) await chown(tmp, this.user.uid, this.user.gid);
    await rename(tmp, path);
    return before !== content;
  }

  /** Create the run directory (sockets, logs, passfile, TLS files) owned by the OS user. Idempotent. */
  async prepareRunDir(): Promise<void> {
    await ensureOwnedDir(this.runDir, this.user, 'run directory');
    await ensureOwnedDir(this.logDir, this.user, 'log directory');
    await this.writeOwned(this.passfile, passfileLine(this.replicationUser, this.replicationPassword));
    await this.installTlsFiles();
  }

  /**
   * The password this peer's libpq clients (the walreceiver, pg_basebackup, pg_rewind) give the
   * replication role from now on: the passfile is written again (libpq reads it at each
   * connection; open ones keep going). Resolves whether it changed.
   */
  async setReplicationPassword(password: string): Promise<boolean> {
    if (password.length === 0 || /[\n\r\0]/.test(password)) {
      throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', 'replicationPassword: expected a non-empty single line');
    }
    if (password === this.replicationPassword) return false;
    this.replicationPassword = password;
    await ensureOwnedDir(this.runDir, this.user, 'run directory');
    await this.writeOwned(this.passfile, passfileLine(this.replicationUser, password));
    return true;
  }

  /** The replication role's password in the passfile. */
  get currentReplicationPassword(): string {
    return this.replicationPassword;
  }

  /** The stored password verifier of each role (pg_authid, replicated to standbys), null for none. */
  async roleVerifiers(roles: readonly string[]): Promise<Map<string, string | null>> {
    const rows = await this.query<{ rolname: string; rolpassword: string | null }>(
      'SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1)', [[...roles]],
    );
    return new Map(rows.map((r) => [r.rolname, r.rolpassword]));
  }

  /**
   * ALTER ROLE ... PASSWORD with a SCRAM verifier (src/postgres/scram.ts), so no plain password is
   * in the statement. On the primary only: the change reaches the standbys through WAL.
   */
  async setRoleVerifier(role: string, verifier: string): Promise<void> {
    if (!IDENT_RE.test(role)) throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `role ${JSON.stringify(role)}: expected a lower-case identifier`);
    if (!/^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/.test(verifier)) {
      throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `the password of ${role} must be given as a SCRAM-SHA-256 verifier`);
    }
    // Its own connection: the commit waits for the sync, and must not hold up the health checks
    // that share the held connection when the sync is slow or gone.
    await this.queryOnNewConnection(`ALTER ROLE ${role} PASSWORD '${verifier}'`, undefined, this.queryTimeoutMs);
  }

  /**
   * Copies the TLS files where PostgreSQL (as its OS user) may read them: it refuses a key that
   * others can read, and the sitter's own copy may belong to root.
   */
  private async installTlsFiles(): Promise<void> {
    const src = this.opts.tls;
    const dst = this.tlsPaths;
    if (src === undefined || dst === null) return;
    await ensureOwnedDir(dirname(dst.caFile), this.user, 'TLS directory');
    const read = async (path: string, what: string): Promise<string> => {
      try {
        return await readFile(path, 'utf8');
      } catch (err) {
        throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `cannot read the ${what} ${path} for PostgreSQL: ${errorMessage(err)}`, { cause: err });
      }
    };
    await this.writeOwned(dst.caFile, await read(src.caFile, 'CA certificate'));
    await this.writeOwned(dst.certFile, await read(src.certFile, 'certificate'));
    await this.writeOwned(dst.keyFile, await read(src.keyFile, 'private key'));
  }

  /**
   * A certificate replaced on disk (the sitter's SIGHUP): copy the files again and reload, so
   * that new connections use it. Open replication connections keep their session.
   */
  async reloadTls(): Promise<void> {
    if (this.opts.tls === undefined) return;
    await this.prepareRunDir();
    if (this.running) await this.reload();
    this.log.info({ decision: 'tls-reloaded', reason: 'the TLS files were reloaded' }, 'PostgreSQL reloaded its TLS files');
  }

  /**
   * The peers changed (the configured members, the cluster state, the active peers): pg_hba.conf
   * admits the replication role from exactly their hosts, and with TLS pg_ident.conf only each
   * one's certificate from its own host; both are reloaded. Returns whether anything changed.
   * Throws MANATEE_ERR_PG_INVALID_OPTION (a bad host or id) before changing anything.
   */
  async setPeers(peers: readonly PgPeer[]): Promise<boolean> {
    const table = peerAddressTable(peers);
    const hosts = [...new Set(peers.map((p) => p.host))].sort();
    if (JSON.stringify(table) === JSON.stringify(this.peerTable) && hosts.join(' ') === this.peerHostList.join(' ')) return false;
    const before = { hosts: this.peerHostList, table: this.peerTable };
    this.peerHostList = hosts;
    this.peerTable = table;
    if (!(await this.hasData())) return true;
    try {
      await this.writeHba();
    } catch (err) {
      // Not taken: the next call with these peers writes the files again.
      this.peerHostList = before.hosts;
      this.peerTable = before.table;
      throw err;
    }
    this.log.info({
      decision: 'pg-hba-peers', peers: table.map((t) => `${t.address}: ${t.ids.join(' ') || '-'}`), clientCidrs: this.clientCidrs(),
      reason: 'the peers changed',
    }, 'pg_hba.conf and pg_ident.conf: the peers changed');
    if (this.running) await this.reload();
    return true;
  }

  /** The client networks: configured, or the peers' subnets. */
  clientCidrs(): string[] {
    return this.opts.clientCidrs !== undefined ? this.opts.clientCidrs.map((c) => normalizeCidr(c)) : peerSubnets(this.peerHostList);
  }

  /** pg_ident.conf, then pg_hba.conf (whose lines name its maps). Resolves true when either changed. */
  private async writeHba(): Promise<boolean> {
    const tls = this.tlsPaths !== null;
    const ident = await this.writeOwned(join(this.dataDir, FILE_IDENT_CONF), renderIdent({ replicationUser: this.replicationUser, peers: this.peerTable, tls }));
    const hba = await this.writeOwned(join(this.dataDir, FILE_HBA_CONF), renderHba({
      superuser: this.superuser,
      replicationUser: this.replicationUser,
      peers: this.peerTable,
      clientCidrs: this.clientCidrs(),
      tls,
    }));
    return ident || hba;
  }

  /** libpq settings for a connection to another peer's PostgreSQL (pg_basebackup, pg_rewind): TLS, verify-full. */
  peerConninfoTls(): Record<string, string> {
    return this.tlsPaths === null ? {} : libpqTls(this.tlsPaths);
  }

  /** node-postgres `ssl` for a connection to another peer's PostgreSQL: the CA checks it, this peer's certificate is shown. */
  async peerClientSsl(): Promise<ConnectionOptions | false> {
    const t = this.opts.tls;
    if (t === undefined) return false;
    const [ca, cert, key] = await Promise.all([readFile(t.caFile, 'utf8'), readFile(t.certFile, 'utf8'), readFile(t.keyFile, 'utf8')]);
    return { ca, cert, key, minVersion: TLS_MIN_PROTOCOL, rejectUnauthorized: true };
  }

  /** The data directory exists, belongs to the OS user and holds a cluster. */
  private async checkDataDir(): Promise<void> {
    try {
      await stat(this.dataDir);
    } catch {
      throw new PgError('MANATEE_ERR_PG_NO_DATA', `data directory ${this.dataDir} does not exist: run initdb or restore from a peer`);
    }
    await ensureOwnedDir(this.dataDir, this.user, 'data directory');
    if (!(await this.hasData())) {
      throw new PgError('MANATEE_ERR_PG_NO_DATA', `data directory ${this.dataDir} holds no PostgreSQL cluster (no PG_VERSION)`);
    }
  }

  /**
   * keepStandbySignal: when a running standby is about to be promoted, standby.signal must stay:
   * PostgreSQL removes it itself at promotion and fails (FATAL) if it is already gone.
   */
  /** Renders every file Manatee owns for `role`. Resolves true when any of them changed (a reload has something to do). */
  private async renderFiles(role: RenderedRole, keepStandbySignal = false): Promise<boolean> {
    const d = this.dataDir;
    let changed = await this.writeOwned(join(d, FILE_POSTGRESQL_CONF), renderPostgresqlConf());
    changed = await this.writeOwned(join(d, FILE_MANATEE_CONF), renderManateeConf({
      runDir: this.runDir,
      logDir: this.logDir,
      walKeepSize: this.opts.walKeepSize ?? '1GB',
      maxWalSenders: this.opts.maxWalSenders ?? 10,
      extra: this.opts.settings ?? {},
    })) || changed;
    try {
      await writeFile(join(d, FILE_OVERRIDES_CONF), OVERRIDES_TEMPLATE, { flag: 'wx', mode: 0o600 });
      if (this.user.switchUser) await chown(join(d, FILE_OVERRIDES_CONF), this.user.uid, this.user.gid);
      this.log.info({ decision: 'create-overrides', file: FILE_OVERRIDES_CONF }, 'created the empty operator overrides file');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const shard = this.shardSource?.() ?? this.shardSettings;
    changed = await this.writeOwned(join(d, FILE_SHARD_CONF), renderShardConf(shard.settings, shard.version)) || changed;
    changed = await this.writeOwned(join(d, FILE_ENFORCED_CONF), renderEnforcedConf({
      listenAddress: this.opts.listenAddress,
      port: this.opts.port,
      runDir: this.runDir,
      passfile: this.passfile,
      replicationUser: this.replicationUser,
      role,
      tls: this.tlsPaths,
    })) || changed;
    changed = await this.writeHba() || changed;
    const signal = join(d, FILE_STANDBY_SIGNAL);
    if (role.role === 'standby') {
      changed = await this.writeOwned(signal, '') || changed;
    } else if (!keepStandbySignal) {
      const had = await stat(signal).then(() => true, () => false);
      await rm(signal, { force: true });
      changed ||= had;
    }
    await this.warnAboutAutoConf();
    this.rendered = role;
    return changed;
  }

  /**
   * The shard-wide settings (manatee-adm config): written to manatee-shard.conf, then a reload
   * when PostgreSQL runs. A postmaster setting is not restarted for: it is reported as pending
   * until an operator's (rolling) restart. Without a data directory yet, the file is written by
   * the next render (configure, after a restore).
   */
  /**
   * Where renderFiles() reads the shard settings from (the sitter's store), so that a server
   * (re)started by configure() starts with the committed ones rather than the last applied.
   */
  useShardSettings(source: () => { readonly settings: Readonly<Record<string, string>>; readonly version: number }): void {
    this.shardSource = source;
  }

  async applyShardSettings(settings: Readonly<Record<string, string>>, version: number): Promise<ShardSettingsApplied> {
    this.shardSettings = { settings, version };
    if (!(await this.hasData())) return { version, reloaded: false, pendingRestart: [] };
    await this.writeOwned(join(this.dataDir, FILE_SHARD_CONF), renderShardConf(settings, version));
    if (!this.running) return { version, reloaded: false, pendingRestart: [] };
    const pendingRestart = await this.reload();
    this.log.info({ decision: 'shard-settings', version, pendingRestart }, pendingRestart.length === 0
      ? `shard settings version ${version} applied by reload`
      : `shard settings version ${version} applied by reload; waiting for a restart: ${pendingRestart.join(', ')}`);
    return { version, reloaded: true, pendingRestart };
  }

  /** Each shard setting and overrides-file setting: its value, where it comes from, and whether it waits for a restart. */
  async settingsReport(names: readonly string[]): Promise<PeerSettingReport[]> {
    return settingsReport(await this.query<SettingsReportRow>(SETTINGS_REPORT_QUERY, [[...names]]));
  }

  /** The lines of the configuration files that PostgreSQL refuses (not those merely pending a restart). */
  async rejectedSettings(): Promise<RejectedSetting[]> {
    const rows = await this.query<RejectedSettingRow>(REJECTED_SETTINGS_QUERY);
    if (!rows.some(mayHideBadValue)) return rejectedSettings(rows);
    const catalog = await readPgSettings((sql) => this.query(sql));
    return rejectedSettings(unmaskBadPendingValues(rows, catalog));
  }

  /** Settings whose changed value waits for a restart (pg_settings.pending_restart). */
  async pendingRestart(): Promise<string[]> {
    const rows = await this.query<{ name: string }>('SELECT name FROM pg_settings WHERE pending_restart ORDER BY name');
    return rows.map((r) => r.name);
  }

  private async warnAboutAutoConf(): Promise<void> {
    let text = '';
    try {
      text = await readFile(join(this.dataDir, 'postgresql.auto.conf'), 'utf8');
    } catch {
      return;
    }
    const keys = ENFORCED_KEYS.filter((k) => new RegExp(`^\\s*${k}\\s*=`, 'm').test(text));
    if (keys.length > 0) {
      this.log.warn({ keys }, 'postgresql.auto.conf (ALTER SYSTEM) overrides settings that Manatee enforces; remove them');
    }
  }

  // ---------------------------------------------------------------- initdb

  /**
   * Create a new cluster: initdb with data checksums, the superuser, scram for the network, then
   * the replication role (with the grants that pg_rewind needs, so that one role serves
   * pg_basebackup, streaming and pg_rewind). The data directory must be missing or empty.
   */
  async initdb(): Promise<void> {
    await ensureOwnedDir(this.dataDir, this.user, 'data directory');
    const entries = await readdir(this.dataDir);
    if (entries.length > 0) {
      throw new PgError('MANATEE_ERR_PG_DATADIR_NOT_EMPTY', `initdb refused: data directory ${this.dataDir} is not empty (${entries.length} entries); nothing was changed`);
    }
    await this.prepareRunDir();
    const args = ['-D', this.dataDir, '-U', this.superuser, '--data-checksums', '--auth-local=trust',
      '--auth-host=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-instructions'];
    const pwfile = join(this.runDir, 'initdb-pw');
    if (this.opts.superuserPassword !== undefined) {
      await this.writeOwned(pwfile, `${this.opts.superuserPassword}\n`);
      args.push(`--pwfile=${pwfile}`);
    }
    const started = Date.now();
    const r = await runTool(this.binaries.initdb, args, { user: this.user, timeoutMs: 300_000 });
    await rm(pwfile, { force: true });
    if (r.exitCode !== 0) {
      throw new PgError('MANATEE_ERR_PG_COMMAND_FAILED', `initdb ${describeRun(r)}:\n${r.outputTail}`);
    }
    await this.renderFiles({ role: 'stopped' });
    await this.createRoles();
    this.log.info({ decision: 'initdb', durationMs: Date.now() - started, superuser: this.superuser }, 'initialized a new cluster');
  }

  private async createRoles(): Promise<void> {
    const repl = this.replicationUser;
    const pw = this.replicationPassword.replace(/'/g, "''");
    // Single-user mode: one statement per line, before any network listener exists.
    const sql = [
      `CREATE ROLE ${repl} WITH LOGIN REPLICATION PASSWORD '${pw}';`,
      `GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO ${repl};`,
      `GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO ${repl};`,
      `GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO ${repl};`,
      `GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO ${repl};`,
      // pg_rewind reads the source's timeline from its control file, which a just-promoted
      // server updates only at its next checkpoint: the rebuilding peer asks for one first.
      `GRANT pg_checkpoint TO ${repl};`,
      '',
    ].join('\n');
    const r = await runTool(this.binaries.postgres, ['--single', '-D', this.dataDir, '-c', 'log_min_messages=warning', '-c', 'default_transaction_read_only=off', '-c', 'synchronous_commit=local', 'postgres'], {
      user: this.user, input: sql, timeoutMs: 120_000,
    });
    if (r.exitCode !== 0 || /\b(ERROR|FATAL):/.test(r.outputTail)) {
      throw new PgError('MANATEE_ERR_PG_COMMAND_FAILED', `creating the replication role ${describeRun(r)}:\n${r.outputTail}`);
    }
  }

  // ---------------------------------------------------------------- start / stop

  /**
   * Start the postmaster with the configuration last rendered (or as it is on disk), and wait
   * until it accepts connections. A postmaster already running on this data directory (left by
   * a sitter that died) is adopted or stopped, per orphanPolicy: a second one is never started.
   * Throws MANATEE_ERR_PG_START_FAILED (it exited; the message holds its output and the end of
   * the server log) or MANATEE_ERR_PG_START_TIMEOUT (it runs but refuses connections, e.g. a
   * standby not yet consistent: it is left running and tracked, and the caller decides).
   */
  async start(): Promise<void> {
    if (this.running) {
      this.log.debug({ pid: this.postgresPid }, 'start: already running');
      return;
    }
    await this.checkDataDir();
    await this.prepareRunDir();
    if (await this.handleOrphan()) return;
    await this.waitForLingeringBackends();

    this.stopping = false;
    const child = spawn(this.binaries.postgres, ['-D', this.dataDir], {
      ...spawnIdentity(this.user),
      cwd: '/',
      // Its own process group: a signal to the sitter's group (Ctrl-C) does not reach PostgreSQL.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' },
    });
    const split = lineSplitter((line) => { this.stderrTail.push(line); });
    child.stdout.on('data', split);
    child.stderr.on('data', split);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    this.child = child;
    this.childExit = new Promise<PgExit>((resolve) => {
      child.once('exit', (code, signal) => {
        const exit: PgExit = { pid: child.pid ?? -1, code, signal, expected: this.stopping, adopted: false };
        if (this.child === child) { this.child = null; }
        this.log[exit.expected ? 'info' : 'warn']({ ...exit, decision: 'postgres-exited' },
          exit.expected ? 'PostgreSQL stopped' : 'PostgreSQL exited unexpectedly');
        this.emit('exit', exit);
        resolve(exit);
      });
    });
    const first = await Promise.race([spawnError, sleep(50).then(() => null)]);
    if (first !== null || child.pid === undefined) {
      this.child = null;
      throw new PgError('MANATEE_ERR_PG_START_FAILED', `cannot spawn ${this.binaries.postgres}: ${first?.message ?? 'no pid'}`);
    }
    this.log.info({ decision: 'start', pid: child.pid, role: this.rendered?.role ?? 'as-on-disk' }, 'started PostgreSQL');
    await this.waitReady(child.pid);
    this.emit('started', { pid: child.pid, adopted: false });
  }

  /** Returns true if a running postmaster was adopted (and nothing more must be started). */
  private async handleOrphan(): Promise<boolean> {
    const found = await checkPostmaster(this.dataDir);
    if (found.kind === 'none') return false;
    if (found.kind === 'stale') {
      // PostgreSQL would refuse to start if the stale pid now belongs to a live process.
      this.log.info({ decision: 'remove-stale-pid-file', pid: found.pid, reason: found.reason }, 'removing a stale postmaster.pid');
      await rm(join(this.dataDir, 'postmaster.pid'), { force: true });
      return false;
    }
    if ((this.opts.orphanPolicy ?? 'adopt') === 'adopt') {
      this.adopt(found.pid);
      this.log.info({ decision: 'adopt-orphan', pid: found.pid, reason: 'postmaster.pid names a live postgres in this data directory' },
        'adopted a running PostgreSQL left by a previous sitter');
      await this.waitReady(found.pid);
      this.emit('started', { pid: found.pid, adopted: true });
      return true;
    }
    this.log.info({ decision: 'stop-orphan', pid: found.pid, reason: 'orphanPolicy is stop' }, 'stopping a PostgreSQL left by a previous sitter');
    this.adopt(found.pid);
    await this.stop('fast');
    return false;
  }

  private async waitForLingeringBackends(): Promise<void> {
    const deadline = Date.now() + this.stopTimeoutMs;
    let pids = await processesInDataDir(this.dataDir);
    if (pids.length === 0) return;
    this.log.info({ decision: 'wait-lingering-backends', pids }, 'waiting for backends of a dead postmaster to exit before starting');
    while (pids.length > 0) {
      if (Date.now() > deadline) {
        throw new PgError('MANATEE_ERR_PG_ALREADY_RUNNING', `processes ${pids.join(', ')} still run in ${this.dataDir} without a postmaster; not starting a second server over them`);
      }
      await sleep(100);
      pids = await processesInDataDir(this.dataDir);
    }
  }

  private adopt(pid: number): void {
    this.adoptedPid = pid;
    this.stopping = false;
    const pollMs = this.opts.adoptedPollMs ?? 500;
    // Not our child: no exit event from the kernel, so poll its liveness.
    this.adoptedPoll = setInterval(() => {
      void processAlive(pid).then((alive) => {
        if (alive || this.adoptedPid !== pid) return;
        this.clearAdopted();
        const exit: PgExit = { pid, code: null, signal: null, expected: this.stopping, adopted: true };
        this.log[exit.expected ? 'info' : 'warn']({ ...exit, decision: 'postgres-exited' },
          exit.expected ? 'adopted PostgreSQL stopped' : 'adopted PostgreSQL exited unexpectedly');
        this.emit('exit', exit);
      });
    }, pollMs);
    this.adoptedPoll.unref();
  }

  private clearAdopted(): void {
    if (this.adoptedPoll !== null) clearInterval(this.adoptedPoll);
    this.adoptedPoll = null;
    this.adoptedPid = null;
  }

  private async waitReady(pid: number): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (this.postgresPid !== pid) {
        const logTail = await this.serverLogTail();
        throw new PgError('MANATEE_ERR_PG_START_FAILED',
          `PostgreSQL (pid ${pid}) exited during start-up:\n${this.stderrTail.text()}${logTail === '' ? '' : `\n--- server log ---\n${logTail}`}`);
      }
      try {
        await this.query('SELECT 1');
        this.log.info({ decision: 'ready', pid }, 'PostgreSQL accepts connections');
        return;
      } catch (err) {
        last = errorMessage(err);
      }
      await sleep(100);
    }
    throw new PgError('MANATEE_ERR_PG_START_TIMEOUT', `PostgreSQL (pid ${pid}) did not accept connections within ${this.startTimeoutMs} ms; last error: ${last}`);
  }

  /** The end of the newest server log file (bounded), for error messages. */
  async serverLogTail(maxBytes = 4096): Promise<string> {
    try {
      const files = await readdir(this.logDir);
      let newest: { path: string; mtimeMs: number } | null = null;
      for (const f of files) {
        const p = join(this.logDir, f);
        const s = await stat(p);
        if (newest === null || s.mtimeMs > newest.mtimeMs) newest = { path: p, mtimeMs: s.mtimeMs };
      }
      if (newest === null) return '';
      const fh = await open(newest.path, 'r');
      try {
        const size = (await fh.stat()).size;
        const len = Math.min(size, maxBytes);
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, size - len);
        return buf.toString('utf8');
      } finally {
        await fh.close();
      }
    } catch {
      return '';
    }
  }

  /**
   * Stop PostgreSQL: smart (wait for clients), fast (disconnect clients, clean shutdown with a
   * checkpoint), or immediate (no checkpoint: used for a primary being deposed, so that it writes
   * no WAL that its sync never receives). A fast stop that outlasts stopTimeoutMs is escalated
   * to immediate. Also stops a postmaster left running on this data directory by a dead sitter.
   */
  async stop(mode: ShutdownMode = 'fast'): Promise<void> {
    let pid = this.postgresPid;
    if (pid === null) {
      const found = await checkPostmaster(this.dataDir).catch(() => ({ kind: 'none' as const }));
      if (found.kind !== 'running') return;
      this.log.info({ decision: 'adopt-to-stop', pid: found.pid }, 'stop: found a running postmaster on this data directory');
      this.adopt(found.pid);
      pid = found.pid;
    }
    this.stopping = true;
    // A smart shutdown waits for every session to end, the held one included.
    this.held.close('PostgreSQL is being stopped');
    const started = Date.now();
    this.log.info({ decision: 'stop', mode, pid }, `stopping PostgreSQL (${mode})`);
    const modes: ShutdownMode[] = mode === 'immediate' ? ['immediate'] : [mode, 'immediate'];
    for (const m of modes) {
      try {
        process.kill(pid, SIGNAL_FOR[m]);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
      if (await this.waitGone(pid, this.stopTimeoutMs)) {
        this.log.info({ decision: 'stopped', mode: m, pid, durationMs: Date.now() - started }, 'PostgreSQL is stopped');
        return;
      }
      this.log.warn({ decision: 'escalate-stop', mode: m, pid }, `PostgreSQL did not stop (${m}) within ${this.stopTimeoutMs} ms`);
    }
    throw new PgError('MANATEE_ERR_PG_STOP_TIMEOUT', `PostgreSQL (pid ${pid}) did not stop within ${this.stopTimeoutMs} ms even with an immediate shutdown`);
  }

  private async waitGone(pid: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    if (this.child?.pid === pid && this.childExit !== null) {
      let timer: NodeJS.Timeout | undefined;
      const exited = await Promise.race([
        this.childExit.then(() => true),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => { resolve(false); }, timeoutMs); }),
      ]);
      clearTimeout(timer);
      return exited;
    }
    while (Date.now() < deadline) {
      if (!(await processAlive(pid))) {
        if (this.adoptedPid === pid) {
          this.clearAdopted();
          const exit: PgExit = { pid, code: null, signal: null, expected: true, adopted: true };
          this.emit('exit', exit);
        }
        return true;
      }
      await sleep(100);
    }
    return false;
  }

  async restart(mode: ShutdownMode = 'fast'): Promise<void> {
    await this.stop(mode);
    await this.start();
  }

  /**
   * Reload the configuration files and wait until new connections see it (pg_conf_load_time
   * moves), so that a caller's next query runs with the new settings. Returns the names of
   * settings that need a restart to take effect (pending_restart).
   */
  async reload(): Promise<string[]> {
    const pid = this.postgresPid;
    if (pid === null) throw new PgError('MANATEE_ERR_PG_NOT_RUNNING', 'reload: PostgreSQL is not running');
    const [before] = await this.query<{ t: number }>('SELECT extract(epoch FROM pg_conf_load_time())::float8 AS t');
    process.kill(pid, 'SIGHUP');
    // Polled every few ms: a reload is on the path of every role change (a takeover reloads
    // three times), and the postmaster passes the signal on within a millisecond or two.
    const sent = Date.now();
    const deadline = sent + this.queryTimeoutMs;
    let checkedBlock = false;
    for (;;) {
      const [now] = await this.query<{ t: number }>('SELECT extract(epoch FROM pg_conf_load_time())::float8 AS t');
      if (before === undefined || now === undefined || now.t > before.t) break;
      if (!checkedBlock && Date.now() - sent >= RELOAD_BLOCK_CHECK_MS) {
        // An unknown name or a syntax error in any file: PostgreSQL applies nothing and its load
        // time stays, so this would wait out the deadline. Say which line, at once.
        checkedBlock = true;
        const blocking = (await this.rejectedSettings()).filter((r) => r.blocksReload);
        if (blocking.length > 0) throw new PgError('MANATEE_ERR_PG_RELOAD_BLOCKED', `reload: PostgreSQL applied no change: ${blocking.map((r) => r.reason).join('; ')}`);
      }
      if (Date.now() > deadline) throw new PgError('MANATEE_ERR_PG_QUERY', `reload: the configuration was not reloaded within ${this.queryTimeoutMs} ms`);
      await sleep(RELOAD_POLL_MS);
    }
    // One round trip for both: the file errors, and what waits for a restart.
    const [r] = await this.query<{ errors: { sourcefile: string; sourceline: number; error: string }[] | null; pending: string[] | null }>(
      'SELECT (SELECT json_agg(json_build_object(\'sourcefile\', sourcefile, \'sourceline\', sourceline, \'error\', error)) FROM pg_file_settings WHERE error IS NOT NULL) AS errors, ' +
      '(SELECT array_agg(name ORDER BY name) FROM pg_settings WHERE pending_restart) AS pending');
    const errors = r?.errors ?? [];
    const pending = r?.pending ?? [];
    if (errors.length > 0) this.log.warn({ errors }, 'configuration files have errors; PostgreSQL ignored those lines');
    this.log.info({ decision: 'reload', pendingRestart: pending }, 'reloaded the configuration');
    return pending;
  }

  async inRecovery(): Promise<boolean> {
    const [r] = await this.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec');
    return r?.rec === true;
  }

  // ---------------------------------------------------------------- roles

  /**
   * Make PostgreSQL match `role`, and return what was done. Which changes need what:
   * - stopped: a fast shutdown (or `shutdown: 'immediate'`).
   * - not running: render, start.
   * - primary on a running standby: render the read-only primary configuration, reload (so
   *   the server is read-only and waits for a sync from its first moment as a primary), then
   *   pg_promote and wait until recovery has ended. No restart.
   * - standby on a running primary: render, immediate restart (a clean shutdown would write a
   *   checkpoint that its new upstream never had; the sitter normally runs pg_rewind first).
   * - same role: render and reload. synchronous_standby_names, default_transaction_read_only,
   *   primary_conninfo and pg_hba.conf take effect on reload; if a postmaster-only setting changed
   *   (listen address, port, wal_level, max_wal_senders, an operator override of such a setting),
   *   pending_restart says so and we restart (fast).
   * A primary is rendered read-only unless it is in ONWM or it already was a writable primary
   * with a sync in this process (then only the named sync changes, and commits wait for the new
   * one). Leaving ONWM makes it read-only until enableWrites().
   * Writes are turned on by enableWrites() once the sync has caught up.
   */
  async configure(role: PgRole): Promise<ConfigureResult> {
    if (role.role === 'stopped') {
      const was = this.running;
      await this.stop(role.shutdown ?? 'fast');
      this.rendered = { role: 'stopped' };
      this.log.info({ decision: 'configure', role: 'stopped', action: was ? 'stopped' : 'none' }, 'PostgreSQL configured stopped');
      return { action: was ? 'stopped' : 'none', role: this.rendered, restartedFor: [] };
    }
    await this.checkDataDir();
    if (!this.running) {
      await this.prepareRunDir();
      await this.handleOrphan();
    }
    const running = this.running;
    const recovering = running ? await this.inRecovery() : null;
    let next: RenderedRole;
    if (role.role === 'primary') {
      const onwm = role.oneNodeWriteMode === true;
      const syncId = role.syncId ?? null;
      if (syncId !== null) validatePeerId(syncId, 'syncId');
      if (!onwm && syncId === null) {
        this.log.warn({ decision: 'primary-without-sync' }, 'primary has no sync and is not in ONWM: it stays read-only');
      }
      const prev = this.rendered;
      const stayWritable = running && recovering === false && prev?.role === 'primary' && prev.writable && !prev.oneNodeWriteMode && syncId !== null;
      const writable = onwm || stayWritable;
      const syncNames = onwm ? '' : writable && syncId !== null ? quoteStandbyName(syncId) : quoteStandbyName(NO_SYNC_PLACEHOLDER);
      next = { role: 'primary', writable, syncNames, oneNodeWriteMode: onwm, syncId };
    } else {
      validatePeerId(role.applicationName, 'applicationName');
      if (role.upstream.host.length === 0 || !Number.isInteger(role.upstream.port)) {
        throw new PgError('MANATEE_ERR_PG_INVALID_OPTION', `standby upstream ${JSON.stringify(role.upstream)}: expected a host and an integer port`);
      }
      next = { role: 'standby', upstreamHost: role.upstream.host, upstreamPort: role.upstream.port, applicationName: role.applicationName };
    }
    // A stopped standby's data directory asked to be a primary (the sync committed its takeover,
    // then died before promoting): starting it without standby.signal would end recovery by crash
    // recovery on the SAME timeline, with no promotion. The deposed primary's pg_rewind would then
    // say "no rewind required" and it would rejoin with diverged WAL. Start it as a standby with
    // no upstream (the primary rendering has primary_conninfo empty) and promote it.
    const standbyData = !running && next.role === 'primary' ? await this.standbyDataDir() : null;
    const changed = await this.renderFiles(next, next.role === 'primary' && (recovering === true || standbyData !== null));
    if (standbyData !== null) await this.writeOwned(join(this.dataDir, FILE_STANDBY_SIGNAL), '');

    let action: ConfigureResult['action'];
    let restartedFor: string[] = [];
    let pendingRestart: string[] = [];
    if (!running && standbyData !== null) {
      this.log.info({ decision: 'start-standby-to-promote', reason: standbyData },
        `the data directory is a standby's (${standbyData}): starting it in recovery, then promoting it to a new timeline`);
      await this.start();
      if (await this.inRecovery()) await this.promote();
      action = 'promoted';
    } else if (!running) {
      await this.start();
      action = 'started';
    } else if (next.role === 'primary' && recovering === true) {
      // After a takeover's fence (detachFromUpstream) the files already say this: no reload.
      if (changed) await this.reload();
      await this.promote();
      action = 'promoted';
    } else if (next.role === 'standby' && recovering === false) {
      await this.restart('immediate');
      action = 'restarted';
    } else {
      const pending = await this.reload();
      // Only what Manatee owns (its listen address, port, WAL settings) restarts here; the
      // operator's postmaster settings wait for manatee-adm restart, one peer at a time.
      restartedFor = ownedPending(pending, ENFORCED_KEYS);
      pendingRestart = pending.filter((n) => !restartedFor.includes(n));
      if (restartedFor.length > 0) {
        await this.restart('fast');
        action = 'restarted';
      } else {
        action = 'reloaded';
      }
    }
    this.log.info({ decision: 'configure', role: next, action, restartedFor, pendingRestart }, `PostgreSQL configured as ${next.role} (${action})`);
    return { action, role: next, restartedFor, pendingRestart };
  }

  /**
   * Why the (stopped) data directory is a standby's, or null when it is not: standby.signal is
   * there, or pg_control says it was in recovery (a signal lost by an earlier render).
   */
  async standbyDataDir(): Promise<string | null> {
    try {
      await stat(join(this.dataDir, FILE_STANDBY_SIGNAL));
      return `${FILE_STANDBY_SIGNAL} exists`;
    } catch {
      // fall through to pg_control
    }
    let state = '';
    const r = await runTool(this.binaries.pgControldata, ['-D', this.dataDir], {
      user: this.user,
      timeoutMs: 60_000,
      onLine: (line) => {
        const m = /^Database cluster state:\s*(.+)$/.exec(line);
        if (m?.[1] !== undefined) state = m[1].trim();
      },
    });
    if (r.exitCode !== 0) {
      throw new PgError('MANATEE_ERR_PG_COMMAND_FAILED', `pg_controldata ${describeRun(r)}:\n${r.outputTail}`);
    }
    return /recovery/.test(state) ? `pg_control says "${state}"` : null;
  }

  /**
   * Promote this standby: pg_promote(wait => true), then wait until pg_is_in_recovery() is false.
   * The standby configuration already makes a promoted server read-only with commits waiting for
   * a sync; configure({role:'primary'}) promotes and renders the primary configuration in one go.
   */
  async promote(timeoutMs = 60_000): Promise<void> {
    if (!this.running) throw new PgError('MANATEE_ERR_PG_NOT_RUNNING', 'promote: PostgreSQL is not running');
    if (!(await this.inRecovery())) {
      throw new PgError('MANATEE_ERR_PG_WRONG_ROLE', 'promote: this server is not a standby (not in recovery)');
    }
    const started = Date.now();
    // pg_promote(wait => false) and our own poll: with wait => true PostgreSQL looks only every
    // 100 ms whether recovery has ended, and a promotion is on the failover's critical path.
    const [r] = await this.query<{ ok: boolean }>('SELECT pg_promote(false) AS ok');
    if (r?.ok !== true) {
      throw new PgError('MANATEE_ERR_PG_PROMOTE_FAILED', 'pg_promote could not signal the startup process');
    }
    const deadline = Date.now() + timeoutMs;
    while (await this.inRecovery()) {
      if (Date.now() > deadline) throw new PgError('MANATEE_ERR_PG_PROMOTE_FAILED', `still in recovery ${timeoutMs} ms after pg_promote`);
      await sleep(PROMOTE_POLL_MS);
    }
    if (this.rendered?.role === 'standby') {
      this.rendered = { role: 'primary', writable: false, syncNames: quoteStandbyName(NO_SYNC_PLACEHOLDER), oneNodeWriteMode: false, syncId: null };
    }
    this.log.info({ decision: 'promoted', durationMs: Date.now() - started }, 'promoted to primary');
    // No CHECKPOINT here: until one, pg_control shows the old timeline, and PostgreSQL 15's
    // pg_rewind reads it there; but an immediate checkpoint competes with the new sync's catch-up
    // for the disk, on the failover's critical path. PostgreSQL requests a (spread) checkpoint
    // after a promotion itself, and pg_rewind's caller asks the source for an immediate one before
    // it runs, failing rather than running without it (rewind.ts, checkpointSource).
  }

  /**
   * Cut this standby off its upstream before it records its WAL position for a new generation
   * (the fence of a takeover): render the read-only primary settings (primary_conninfo empty)
   * while keeping standby.signal, reload, and wait until the WAL receiver is gone. It stays in
   * recovery: configure({role:'primary'}) then promotes it, and configure({role:'standby'})
   * undoes the fence. After this, pg_last_wal_receive_lsn() no longer moves.
   */
  async detachFromUpstream(timeoutMs = this.queryTimeoutMs): Promise<void> {
    if (!this.running) throw new PgError('MANATEE_ERR_PG_NOT_RUNNING', 'detachFromUpstream: PostgreSQL is not running');
    if (!(await this.inRecovery())) {
      throw new PgError('MANATEE_ERR_PG_WRONG_ROLE', 'detachFromUpstream: this server is not a standby (not in recovery)');
    }
    await this.renderFiles({ role: 'primary', writable: false, syncNames: quoteStandbyName(NO_SYNC_PLACEHOLDER), oneNodeWriteMode: false, syncId: null }, true);
    await this.reload();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.query<{ pid: number | null }>('SELECT pid FROM pg_stat_wal_receiver WHERE pid IS NOT NULL');
      if (rows.length === 0) break;
      if (Date.now() > deadline) {
        throw new PgError('MANATEE_ERR_PG_QUERY', `detachFromUpstream: the WAL receiver (pid ${String(rows[0]?.pid)}) still runs ${timeoutMs} ms after the reload`);
      }
      await sleep(PROMOTE_POLL_MS);
    }
    this.log.info({ decision: 'detach-from-upstream' }, 'cut off from the upstream: no more WAL is received');
  }

  /**
   * Stop acknowledging commits on this primary before it records its WAL position for a new
   * generation (the fence of a sync replacement or an ONWM upgrade): read-only, and
   * synchronous_standby_names naming the placeholder, so that no commit returns until the new
   * sync is named by enableWrites(). After this, pg_current_wal_flush_lsn() bounds every
   * acknowledged commit.
   *
   * Coming from one-node-write mode (synchronous_standby_names empty), the reload is not enough:
   * whether a commit waits for a standby is decided by a shared flag that only the checkpointer
   * sets when it processes the reload, and a busy checkpointer can be late. Until then, a commit
   * (of a transaction opened before the fence) is still acknowledged on this primary alone, past
   * the position the new generation records. A CHECKPOINT is the barrier: the checkpointer
   * handles a pending reload before it starts a requested checkpoint.
   */
  async fenceWrites(): Promise<void> {
    if (!this.running) throw new PgError('MANATEE_ERR_PG_NOT_RUNNING', 'fenceWrites: PostgreSQL is not running');
    if (await this.inRecovery()) throw new PgError('MANATEE_ERR_PG_WRONG_ROLE', 'fenceWrites: this server is a standby (in recovery)');
    const prev = this.rendered;
    const commitsWaited = prev?.role === 'primary' && prev.syncNames !== '';
    await this.renderFiles({ role: 'primary', writable: false, syncNames: quoteStandbyName(NO_SYNC_PLACEHOLDER), oneNodeWriteMode: false, syncId: null });
    await this.reload();
    if (!commitsWaited) {
      const started = Date.now();
      await this.queryWithTimeout('CHECKPOINT', undefined, FENCE_CHECKPOINT_TIMEOUT_MS);
      this.log.info(
        { decision: 'fence-barrier', durationMs: Date.now() - started },
        'commits did not wait for a standby before the fence: a checkpoint made the checkpointer apply the reload, so every commit from now on waits',
      );
    }
    this.log.info({ decision: 'fence-writes' }, 'fenced: read-only, and commits wait for a sync that is not named yet');
  }

  /** Has the sync (application_name = syncId) connected and caught up with this primary? */
  async syncCaughtUp(syncId: string, waitMs = 0): Promise<SyncCatchUp> {
    validatePeerId(syncId, 'syncId');
    const deadline = Date.now() + waitMs;
    for (;;) {
      const check = await checkSyncCaughtUp(this.query, syncId);
      if (check.caughtUp || Date.now() + SYNC_POLL_MS > deadline) return check;
      await sleep(SYNC_POLL_MS);
    }
  }

  /**
   * Name the sync in synchronous_standby_names and turn read-only off (reload). Refuses
   * (MANATEE_ERR_PG_SYNC_NOT_CAUGHT_UP) unless the sync is streaming and caught up, so that a
   * primary never takes writes before its sync has everything it has.
   */
  async enableWrites(syncId: string): Promise<SyncCatchUp> {
    validatePeerId(syncId, 'syncId');
    const cur = this.rendered;
    if (cur?.role !== 'primary' || !this.running) {
      throw new PgError('MANATEE_ERR_PG_WRONG_ROLE', `enableWrites: PostgreSQL is not running as a primary (role ${cur?.role ?? 'unknown'})`);
    }
    const check = await this.syncCaughtUp(syncId);
    if (!check.caughtUp) {
      this.log.info({ decision: 'keep-read-only', syncId, reason: check.reason }, 'not enabling writes: sync has not caught up');
      throw new PgError('MANATEE_ERR_PG_SYNC_NOT_CAUGHT_UP', `enableWrites refused: ${check.reason}`);
    }
    const next: RenderedRole = { role: 'primary', writable: true, syncNames: quoteStandbyName(syncId), oneNodeWriteMode: false, syncId };
    await this.renderFiles(next);
    await this.reload();
    this.log.info({ decision: 'enable-writes', syncId, reason: check.reason }, 'writes enabled: commits wait for the sync');
    return check;
  }

  async walPositions(): Promise<WalPositions> {
    return readWalPositions(this.query);
  }

  async replicationStatus(): Promise<ReplicationRow[]> {
    return readReplication(this.query);
  }

  /** SHOW a setting over the sitter's connection. */
  async show(name: string): Promise<string> {
    const [r] = await this.query<{ setting: string }>('SELECT current_setting($1) AS setting', [name]);
    return r?.setting ?? '';
  }

  /** Stop the adopted-process poller (the postmaster itself keeps running). For shutdown of the sitter. */
  detach(): void {
    this.held.close('the sitter is shutting down');
    this.clearAdopted();
    this.child = null;
  }

  /** Siblings of the data directory used by the restore code: `<parent>/<base>.<suffix>`. */
  siblingPath(suffix: string): string {
    return join(dirname(this.dataDir), `${basename(this.dataDir)}.${suffix}`);
  }

  /** Make a directory for the PostgreSQL OS user (mode 0700). */
  async makeOwnedDir(path: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    await ensureOwnedDir(path, this.user, 'directory');
  }
}
