// Rendering PostgreSQL's configuration. Pure functions: they return file contents; server.ts
// writes them. The data directory holds:
//
//   postgresql.conf          Manatee-owned: only three include lines, in this order:
//   manatee.conf             Manatee-owned defaults (WAL, replication, logging). Rewritten by Manatee.
//   manatee-overrides.conf   the operator's file. Created empty if missing, never edited by Manatee.
//                            Settings here win over manatee.conf.
//   manatee-enforced.conf    Manatee-owned, included LAST: the settings that Manatee's safety and
//                            its own connections rely on (role, synchronous_standby_names,
//                            read-only, listen address, socket, TLS). An operator cannot override
//                            them by accident in the overrides file.
//   pg_hba.conf              Manatee-owned.
//   standby.signal           present only for the standby role.
//
// postgresql.auto.conf (ALTER SYSTEM) is still read after all of these by PostgreSQL itself;
// Manatee never uses ALTER SYSTEM and logs a warning when that file sets an enforced setting.
import { isPeerId, PEER_ID_EXPECTED } from '../model/index.js';
import { PgError } from './errors.js';

export const FILE_POSTGRESQL_CONF = 'postgresql.conf';
export const FILE_MANATEE_CONF = 'manatee.conf';
export const FILE_OVERRIDES_CONF = 'manatee-overrides.conf';
export const FILE_ENFORCED_CONF = 'manatee-enforced.conf';
export const FILE_HBA_CONF = 'pg_hba.conf';
/** The ident maps of pg_hba.conf's replication lines (with TLS): which peer certificates may log in from which address. */
export const FILE_IDENT_CONF = 'pg_ident.conf';
export const FILE_STANDBY_SIGNAL = 'standby.signal';

/**
 * synchronous_standby_names while a primary has no caught-up sync: a name that no peer can have
 * (peer ids cannot start with "!"), so that a commit that bypasses read-only waits instead of
 * being acknowledged without a sync.
 */
export const NO_SYNC_PLACEHOLDER = '!manatee-no-sync';

/** Peer ids become application_name (63 bytes at most in PostgreSQL) and standby names: the model's one rule. */
export function validatePeerId(id: string, what: string): void {
  if (!isPeerId(id)) {
    throw new PgError('MANATEE_ERR_PG_INVALID_OPTION',
      `${what} ${JSON.stringify(id)} is not a peer id (nor usable as a PostgreSQL application_name): ${PEER_ID_EXPECTED}`);
  }
}

export type ConfValue = string | number | boolean;

/** A value in postgresql.conf syntax: strings single-quoted with '' for a quote. */
export function confValue(v: ConfValue): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'number') return String(v);
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A value in libpq conninfo syntax. */
export function conninfoValue(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export function conninfo(fields: Readonly<Record<string, string | number | undefined>>): string {
  return Object.entries(fields)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${conninfoValue(String(v))}`)
    .join(' ');
}

/** A line of a libpq password file; ':' and '\' are escaped. */
export function passfileLine(user: string, password: string): string {
  const esc = (s: string): string => s.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return `*:*:*:${esc(user)}:${esc(password)}\n`;
}

function renderSettings(header: string, settings: Readonly<Record<string, ConfValue>>): string {
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${confValue(v)}`);
  return `${header}\n${lines.join('\n')}\n`;
}

export function renderPostgresqlConf(): string {
  return [
    '# Managed by Manatee: rewritten at each start. Put your settings in manatee-overrides.conf.',
    `include '${FILE_MANATEE_CONF}'`,
    // The shard-wide settings (manatee-adm config): after the defaults, before this peer's overrides.
    "include_if_exists 'manatee-shard.conf'",
    `include_if_exists '${FILE_OVERRIDES_CONF}'`,
    `include '${FILE_ENFORCED_CONF}'`,
    '',
  ].join('\n');
}

export const OVERRIDES_TEMPLATE =
  '# Operator settings for this peer. Manatee creates this file empty and never edits it.\n' +
  '# Settings here override manatee.conf, but not manatee-enforced.conf (role, sockets, listen address).\n';

export interface BaseConfigInput {
  readonly runDir: string;
  readonly logDir: string;
  readonly walKeepSize: string;
  readonly maxWalSenders: number;
  /** Extra defaults (from the sitter's configuration); the operator's overrides still win. */
  readonly extra: Readonly<Record<string, ConfValue>>;
}

export function renderManateeConf(input: BaseConfigInput): string {
  return renderSettings('# Managed by Manatee: defaults. Override them in manatee-overrides.conf.', {
    wal_level: 'replica',
    max_wal_senders: input.maxWalSenders,
    max_replication_slots: input.maxWalSenders,
    wal_keep_size: input.walKeepSize,
    // pg_rewind needs hint-bit changes in WAL (data checksums give it too; both are on).
    wal_log_hints: true,
    hot_standby_feedback: true,
    // A dead upstream or standby is noticed in seconds, not the default minute.
    wal_sender_timeout: '10s',
    wal_receiver_timeout: '10s',
    wal_retrieve_retry_interval: '1s',
    synchronous_commit: 'on',
    password_encryption: 'scram-sha-256',
    // Logs are bounded: one file per weekday, truncated when the week wraps around.
    logging_collector: true,
    log_directory: input.logDir,
    log_filename: 'postgresql-%a.log',
    log_rotation_age: '1d',
    log_rotation_size: 0,
    log_truncate_on_rotation: true,
    log_line_prefix: '%m [%p] %q%u@%d ',
    ...input.extra,
  });
}

/** What Manatee wants PostgreSQL to be, as the sitter asks for it. */
export type PgRole =
  | {
      readonly role: 'primary';
      /** One-node-write mode: writable with no sync. */
      readonly oneNodeWriteMode?: boolean;
      /** The sync's peer id, when known. Commits wait for it once it is named. */
      readonly syncId?: string | null;
    }
  | {
      readonly role: 'standby';
      readonly upstream: { readonly host: string; readonly port: number };
      /** This peer's id: the application_name the upstream sees. */
      readonly applicationName: string;
    }
  | { readonly role: 'stopped'; readonly shutdown?: 'fast' | 'immediate' };

/** The fully resolved role settings that are rendered into manatee-enforced.conf. */
export type RenderedRole =
  | { readonly role: 'primary'; readonly writable: boolean; readonly syncNames: string; readonly oneNodeWriteMode: boolean; readonly syncId: string | null }
  | { readonly role: 'standby'; readonly upstreamHost: string; readonly upstreamPort: number; readonly applicationName: string }
  | { readonly role: 'stopped' };

/** The TLS files PostgreSQL and its client tools use: copies in the run directory, readable by the OS user only. */
export interface PgTlsPaths {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export const TLS_MIN_PROTOCOL = 'TLSv1.3';

/**
 * libpq settings of a connection to another peer: TLS 1.3, the server's certificate checked
 * against the shard's CA and the host name dialled (verify-full), and this peer's certificate
 * presented (the peers' pg_hba lines ask for one).
 */
export function libpqTls(tls: PgTlsPaths): Record<string, string> {
  return {
    sslmode: 'verify-full',
    sslrootcert: tls.caFile,
    sslcert: tls.certFile,
    sslkey: tls.keyFile,
    ssl_min_protocol_version: TLS_MIN_PROTOCOL,
  };
}

export interface EnforcedConfigInput {
  readonly listenAddress: string;
  readonly port: number;
  readonly runDir: string;
  readonly passfile: string;
  readonly replicationUser: string;
  readonly role: RenderedRole;
  /** null: no TLS (ssl = off), only for a server that no other peer connects to. */
  readonly tls: PgTlsPaths | null;
}

/** `"peer-1"`: a standby name quoted for synchronous_standby_names. */
export function quoteStandbyName(id: string): string {
  return `"${id.replace(/"/g, '""')}"`;
}

export function renderEnforcedConf(input: EnforcedConfigInput): string {
  const r = input.role;
  const settings: Record<string, ConfValue> = {
    listen_addresses: input.listenAddress,
    port: input.port,
    unix_socket_directories: input.runDir,
    // Only root and the PostgreSQL OS user reach the socket, where the superuser needs no password.
    unix_socket_permissions: '0700',
    hot_standby: true,
    recovery_target_timeline: 'latest',
    ssl: input.tls !== null,
  };
  if (input.tls !== null) {
    settings['ssl_cert_file'] = input.tls.certFile;
    settings['ssl_key_file'] = input.tls.keyFile;
    // Clients that present a certificate (the peers) are checked against the shard's CA.
    settings['ssl_ca_file'] = input.tls.caFile;
    settings['ssl_min_protocol_version'] = TLS_MIN_PROTOCOL;
  }
  if (r.role === 'primary') {
    // default_transaction_read_only is only a default: a client can SET it off or BEGIN READ
    // WRITE. It makes ordinary writes fail fast before the sync has caught up. The guarantee that
    // no commit is acknowledged without the sync is synchronous_standby_names: before the sync
    // is named, it names a placeholder that no standby has, so such a commit waits.
    settings['default_transaction_read_only'] = !r.writable;
    settings['synchronous_standby_names'] = r.syncNames;
    settings['primary_conninfo'] = '';
  } else {
    // A standby renders the primary's safe state too: right after pg_promote it is a primary
    // that must stay read-only and wait for a sync until the sitter says otherwise.
    settings['default_transaction_read_only'] = true;
    settings['synchronous_standby_names'] = quoteStandbyName(NO_SYNC_PLACEHOLDER);
    if (r.role === 'standby') {
      settings['primary_conninfo'] = conninfo({
        host: r.upstreamHost,
        port: r.upstreamPort,
        user: input.replicationUser,
        passfile: input.passfile,
        application_name: r.applicationName,
        connect_timeout: 5,
        ...(input.tls === null ? {} : libpqTls(input.tls)),
      });
    } else {
      settings['primary_conninfo'] = '';
    }
  }
  return renderSettings(
    '# Managed by Manatee: role and connection settings, rewritten at each role change. Do not edit.',
    settings,
  );
}

/** One peer address of pg_hba.conf and the peers (ids: their certificates' CN) that may replicate from it. */
export interface HbaPeerAddress {
  /** As networks.ts hostAddress gives it: "10.0.0.1/32", "fd00::1/128" or a DNS name. */
  readonly address: string;
  readonly ids: readonly string[];
}

export interface HbaInput {
  readonly superuser: string;
  readonly replicationUser: string;
  /** The peers' own addresses: the only ones the replication role connects from; with TLS, each with the peers it admits. */
  readonly peers: readonly HbaPeerAddress[];
  /** Networks of clients (applications, operators), for every role but the replication role. */
  readonly clientCidrs: readonly string[];
  /** TLS on: every network line is hostssl, and the replication role logs in with a peer's certificate bound to its address. */
  readonly tls: boolean;
}

/** The pg_ident.conf map of one peer address: "peers@10.0.0.1/32" (a map name is one token; peer ids and addresses hold no space). */
export function identMapName(address: string): string {
  return `peers@${address}`;
}

export function renderHba(input: HbaInput): string {
  const host = input.tls ? 'hostssl' : 'host';
  // With TLS the replication role logs in with a certificate of the shard's CA (cert: verify-full)
  // whose CN, the peer id, the address's map lists: a certificate of another peer, or from another
  // address, is refused. PostgreSQL 15 allows map= only with cert (not with scram-sha-256), so the
  // certificate replaces the password there; its key never leaves the peer (mode 0600, as the
  // configuration that holds the shard secret the password derives from).
  const peerAuth = (address: string): string => (input.tls ? `cert  map=${identMapName(address)}` : 'scram-sha-256');
  const lines = [
    '# Managed by Manatee. Never "trust" for the network.',
    input.tls ? '# TLS only: there is no "host" line, so a connection without TLS matches nothing and is refused.' : '# TLS is off.',
    '# TYPE  DATABASE     USER   ADDRESS  METHOD',
    // The socket directory is mode 0700: only root (the sitter) and the PostgreSQL user reach it.
    `local   all          ${input.superuser}   trust`,
    `local   replication  ${input.superuser}   trust`,
    'local   all          all   scram-sha-256',
    "# The peers: streaming replication, pg_basebackup, pg_rewind and the sitters' checks, as the replication role.",
  ];
  for (const { address } of input.peers) {
    lines.push(`${host} replication  ${input.replicationUser}  ${address}  ${peerAuth(address)}`);
    lines.push(`${host} all          ${input.replicationUser}  ${address}  ${peerAuth(address)}`);
  }
  lines.push('# From anywhere else, not the replication role, and no replication connection at all.');
  lines.push(`${host} all          ${input.replicationUser}  all  reject`);
  lines.push(`${host} replication  all  all  reject`);
  lines.push('# Clients (postgres.clientCidrs; by default the peers\' subnets).');
  for (const cidr of input.clientCidrs) lines.push(`${host} all          all  ${cidr}  scram-sha-256`);
  return `${lines.join('\n')}\n`;
}

/**
 * pg_ident.conf: for each peer address, the peers whose certificate (CN = peer id, as `manatee-adm
 * certs issue` makes it) may log in from there as the replication role. Without TLS, no map.
 */
export function renderIdent(input: Pick<HbaInput, 'replicationUser' | 'peers' | 'tls'>): string {
  const lines = ['# Managed by Manatee: the peer certificates (CN, the peer id) admitted from each peer address as the replication role.'];
  if (!input.tls) lines.push('# TLS is off: the replication role logs in with its password, and no map is used.');
  else {
    lines.push('# MAPNAME  SYSTEM-USERNAME (certificate CN)  PG-USERNAME');
    for (const { address, ids } of input.peers) {
      for (const id of ids) lines.push(`${identMapName(address)}  ${id}  ${input.replicationUser}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Settings that manatee-enforced.conf sets; postgresql.auto.conf must not override them. */
export const ENFORCED_KEYS = [
  'listen_addresses', 'port', 'unix_socket_directories', 'unix_socket_permissions', 'hot_standby',
  'recovery_target_timeline', 'default_transaction_read_only', 'synchronous_standby_names', 'primary_conninfo',
  'ssl', 'ssl_cert_file', 'ssl_key_file', 'ssl_ca_file', 'ssl_min_protocol_version',
] as const;
