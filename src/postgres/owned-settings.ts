// The PostgreSQL settings that Manatee owns, read from config.ts (what it renders and why):
// an operator's shard-wide setting may not change them, because the sitter's safety or its own
// connections rely on their values. Most are refused whatever the value; a few take only the
// values Manatee can live with. Each carries the reason that the refusal prints.
//
// Free on purpose: archive_mode/archive_command/archive_library/archive_timeout (WAL archiving
// for backups does not touch Manatee's recovery, which streams from the upstream and uses
// pg_rewind / pg_basebackup), wal_keep_size, max_replication_slots, hot_standby_feedback, the
// wal_*_timeout settings, and the logging settings other than the log directory.

/** A value as checkSetting parsed it, for the restrictions below. */
export type ParsedSettingValue =
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'number'; readonly base: number }
  | { readonly type: 'text'; readonly value: string };

export type Ownership =
  | { readonly kind: 'owned'; readonly reason: string }
  | {
      readonly kind: 'restricted';
      readonly reason: string;
      /** What the operator may set, for the message. */
      readonly expected: string;
      readonly allows: (v: ParsedSettingValue) => boolean;
    };

const owned = (reason: string): Ownership => ({ kind: 'owned', reason });
const onlyOn = (reason: string): Ownership => ({ kind: 'restricted', reason, expected: 'on', allows: (v) => v.type === 'bool' && v.value });
const oneOf = (values: readonly string[], reason: string): Ownership => ({
  kind: 'restricted', reason, expected: `one of ${values.join(', ')}`, allows: (v) => v.type === 'text' && values.includes(v.value.toLowerCase()),
});

const ROLE = 'Manatee sets it for the peer\'s role at every role change (manatee-enforced.conf)';
const PATH = 'Manatee chooses the paths of the data directory and its files';
const TLS = 'Manatee configures TLS from the peer\'s certificate and the shard\'s CA';
const RECOVERY = 'a standby must replay everything its upstream streams, so that it can take over; ' +
  'Manatee rebuilds a standby with pg_rewind or pg_basebackup, never from an archive';

export const MANATEE_SETTINGS: ReadonlyMap<string, Ownership> = new Map<string, Ownership>([
  ['listen_addresses', owned('it is the peer\'s `host` in its configuration file, where the other peers and the clients reach PostgreSQL')],
  ['port', owned('it is the peer\'s `postgres.port` in its configuration file, and the cluster state\'s pgUrl names it')],
  ['unix_socket_directories', owned('the sitter\'s own connections go through this socket (its run directory)')],
  ['unix_socket_permissions', owned('the socket admits its superuser without a password, so only root and the PostgreSQL user may reach it')],
  ['hot_standby', owned(`${ROLE}: a standby must answer the sitter's queries (replay position, health)`)],
  ['recovery_target_timeline', owned(`${ROLE}: a standby follows its upstream across takeovers (latest)`)],
  ['default_transaction_read_only', owned(`${ROLE}: a primary is read-only until its sync has caught up, and Manatee switches it`)],
  ['transaction_read_only', owned(`${ROLE}: default_transaction_read_only is switched by Manatee`)],
  ['synchronous_standby_names', owned(`${ROLE}: it names the sync of the current generation, which changes at each takeover`)],
  ['primary_conninfo', owned(`${ROLE}: it points each standby at its upstream in the chain`)],
  ['primary_slot_name', owned('Manatee\'s standbys stream without replication slots (the primary keeps wal_keep_size of WAL)')],
  ['promote_trigger_file', owned('only the sitter promotes PostgreSQL (pg_promote), after the takeover is committed')],
  ['restore_command', owned(RECOVERY)],
  ['archive_cleanup_command', owned(RECOVERY)],
  ['recovery_end_command', owned(RECOVERY)],
  ['recovery_min_apply_delay', owned(`${RECOVERY}; a sync whose replay lags cannot reach initWal`)],
  ['recovery_target', owned(RECOVERY)],
  ['recovery_target_action', owned(RECOVERY)],
  ['recovery_target_inclusive', owned(RECOVERY)],
  ['recovery_target_lsn', owned(RECOVERY)],
  ['recovery_target_name', owned(RECOVERY)],
  ['recovery_target_time', owned(RECOVERY)],
  ['recovery_target_xid', owned(RECOVERY)],
  ['data_directory', owned(PATH)],
  ['config_file', owned(PATH)],
  ['hba_file', owned(`${PATH}; pg_hba.conf is rendered by Manatee`)],
  ['ident_file', owned(PATH)],
  ['external_pid_file', owned(PATH)],
  ['log_directory', owned(`${PATH}: the server log lives in the peer's run directory, where the sitter reads it`)],
  ['ssl', owned(TLS)],
  ['ssl_cert_file', owned(TLS)],
  ['ssl_key_file', owned(TLS)],
  ['ssl_ca_file', owned(TLS)],
  ['ssl_crl_file', owned(TLS)],
  ['ssl_crl_dir', owned(TLS)],
  ['ssl_passphrase_command', owned(TLS)],
  ['ssl_min_protocol_version', owned(`${TLS}, with TLS 1.3 as the floor`)],
  ['wal_level', oneOf(['replica', 'logical'], 'standbys need replication WAL (minimal writes none)')],
  ['synchronous_commit', oneOf(['on', 'remote_apply'],
    'a commit is acknowledged only once the sync has flushed it, so that a takeover loses no acknowledged commit; ' +
    'off, local and remote_write acknowledge commits the sync may not hold')],
  ['full_page_writes', onlyOn('pg_rewind of a deposed primary needs full-page writes')],
  ['wal_log_hints', onlyOn('pg_rewind of a deposed primary needs hint-bit changes in WAL')],
  ['max_wal_senders', {
    kind: 'restricted',
    reason: 'each peer feeds its downstream standby, and pg_basebackup takes two more senders while a peer is rebuilt from it',
    expected: 'at least 3',
    allows: (v) => v.type === 'number' && v.base >= 3,
  }],
]);
