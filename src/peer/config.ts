// The sitter's configuration file (one JSON file per peer). Validated at start-up against a
// JSON schema (config-schema.ts) and the relations between fields (crossCheck); an error names
// the field, what was wrong and what is expected, and the process exits non-zero
// (src/cli/manatee-sitter.ts).
import { createHmac } from 'node:crypto';
import type { PeerInfo, PeerTags } from '../model/index.js';
import { readFile, stat } from 'node:fs/promises';
import { ManateeError } from '../errors.js';
import { schemaProblems } from './config-schema.js';
import { normalizeCidr } from '../postgres/networks.js';
import { type HooksConfig } from './hooks.js';

export type BackendKind = 'zfs' | 'basebackup';

export interface RaftMember {
  readonly id: string;
  /** host:port of the member's Raft transport. */
  readonly address: string;
}

export interface SitterConfig {
  /** This peer's id: unique in the shard and never reused. */
  readonly peerId: string;
  /** The address other peers and clients reach this peer at. */
  readonly host: string;
  /** Root of everything this peer keeps on disk (Raft log, PostgreSQL data unless dataset is used, logs). */
  readonly dataDir: string;
  readonly backend: BackendKind;
  readonly postgres: {
    readonly port: number;
    /** Directory of PostgreSQL's binaries; found automatically when absent. */
    readonly bindir?: string;
    /** The unprivileged OS user PostgreSQL runs as when the sitter runs as root. */
    readonly user: string;
    readonly database: string;
    /** Password of the replication role (scram); defaults to one derived from the shard secret. */
    readonly replicationPassword?: string;
    /** Password of the superuser for network connections (pg_rewind's source, operators); derived from the secret when absent. */
    readonly superuserPassword?: string;
    /** Networks clients may connect from (pg_hba.conf); default: the peers' subnets. Never the replication role. */
    readonly clientCidrs?: readonly string[];
  };
  readonly zfs?: {
    /** The dataset that holds this peer's PostgreSQL data, e.g. "pool/manatee/a". */
    readonly dataset: string;
    readonly snapshotIntervalMs: number;
    readonly snapshotRetention: number;
  };
  readonly api: { readonly port: number; readonly listen: string };
  readonly raft: {
    readonly port: number;
    readonly listen: string;
    /** The initial voters, this peer included. Used only when the Raft log is new. */
    readonly members: readonly RaftMember[];
    readonly tickMs: number;
    readonly electionTicks: number;
    readonly heartbeatTicks: number;
  };
  readonly timeouts: {
    readonly sessionTimeoutMs: number;
    readonly keepaliveIntervalMs: number;
    readonly pgHealthIntervalMs: number;
    readonly pgHealthTimeoutMs: number;
    readonly pgUnhealthyTimeoutMs: number;
    readonly pgStartTimeoutMs: number;
  };
  readonly rebuild: { readonly automatic: boolean };
  /** Start (or stay) in one-node-write mode: a writable primary with no sync. */
  readonly oneNodeWriteMode: boolean;
  /** This peer's tags (nofailover, noloadbalance, priority), carried in its session. */
  readonly tags?: PeerTags;
  /**
   * The shard's shared secret: required on all peer-to-peer traffic (Raft, backup streams). This
   * peer proves itself with it, and the derived PostgreSQL passwords come from it.
   */
  readonly secret: string;
  /**
   * Other shard secrets accepted from peers during a rotation (never sent): the new one before
   * the switch, the old one after it (README, "Security"). Reloaded on SIGHUP.
   */
  readonly acceptedSecrets?: readonly string[];
  /** Required on mutating API calls. */
  readonly adminToken: string;
  /** Other admin tokens accepted during a rotation (the new one, then the old one). Reloaded on SIGHUP. */
  readonly acceptedAdminTokens?: readonly string[];
  readonly log: { readonly level: string; readonly file?: string };
  /**
   * TLS for every listener and connection of this peer (src/tls): the shard CA's certificate,
   * this peer's certificate (bound to peerId) and its private key. Absent: plain TCP everywhere.
   */
  readonly tls?: { readonly caFile: string; readonly certFile: string; readonly keyFile: string };
  /** Executables run on shard events (src/peer/hooks.ts); filled with defaults by parseConfig. */
  readonly hooks?: HooksConfig;
}

/** The configuration file is readable by group or others (it holds the shard secret and the admin token). */
export const CONFIG_ERR_MODE = 'MANATEE_ERR_CONFIG_MODE';

export class ConfigError extends ManateeError {
  constructor(message: string, options?: { cause?: unknown; code?: string }) {
    super(options?.code ?? 'MANATEE_ERR_CONFIG', message, options?.cause === undefined ? undefined : { cause: options.cause });
  }
}

/** Rules that a schema cannot say: relations between fields. */
function crossCheck(c: SitterConfig): string[] {
  const problems: string[] = [];
  const ids = c.raft.members.map((m) => m.id);
  if (!ids.includes(c.peerId)) problems.push(`raft.members: must include this peer (peerId "${c.peerId}")`);
  if (new Set(ids).size !== ids.length) problems.push('raft.members: ids must be unique');
  if (c.backend === 'zfs' && c.zfs === undefined) problems.push('zfs: is missing (required when backend is "zfs")');
  const ports = [c.postgres.port, c.api.port, c.raft.port];
  if (new Set(ports).size !== ports.length) problems.push('postgres.port, api.port, raft.port: must be different ports');
  const t = c.timeouts;
  if (t.keepaliveIntervalMs * 2 > t.sessionTimeoutMs) {
    problems.push(`timeouts.keepaliveIntervalMs: must be at most half of timeouts.sessionTimeoutMs (${t.sessionTimeoutMs})`);
  }
  if (c.raft.heartbeatTicks >= c.raft.electionTicks) problems.push('raft.heartbeatTicks: must be less than raft.electionTicks');
  for (const [field, current, accepted] of [['acceptedSecrets', c.secret, c.acceptedSecrets], ['acceptedAdminTokens', c.adminToken, c.acceptedAdminTokens]] as const) {
    const list = accepted ?? [];
    if (list.includes(current)) problems.push(`${field}: must not repeat the current value (${field === 'acceptedSecrets' ? 'secret' : 'adminToken'})`);
    if (new Set(list).size !== list.length) problems.push(`${field}: lists the same value twice`);
  }
  for (const [i, cidr] of (c.postgres.clientCidrs ?? []).entries()) {
    try {
      normalizeCidr(cidr, `postgres.clientCidrs[${i}]`);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  const h = c.hooks;
  if (h !== undefined) {
    // Heartbeat runs faster than they may take would only fill the queue and drop runs.
    if ((h.events.heartbeat?.length ?? 0) > 0 && h.heartbeatIntervalMs < h.timeoutMs) {
      problems.push(`hooks.heartbeatIntervalMs: must be at least hooks.timeoutMs (${h.timeoutMs}) when heartbeat hooks are configured`);
    }
    for (const [event, commands] of Object.entries(h.events)) {
      if (new Set(commands).size !== commands.length) problems.push(`hooks.events.${event}: lists the same executable twice`);
    }
  }
  return problems;
}

/** The leader's heartbeat interval the default heartbeatTicks aims at (defaultHeartbeatTicks). */
export const HEARTBEAT_TARGET_MS = 200;

/**
 * A heartbeat about every HEARTBEAT_TARGET_MS (200 ms): every 2 ticks at the default 100 ms tick,
 * every 4 at a 50 ms tick; never fewer than 2.5 heartbeats per (shortest) election timeout, nor
 * more than electionTicks - 1 ticks apart. At the defaults (100 ms tick, 5 ticks of election
 * timeout, drawn from 500-1000 ms) a follower campaigns only when two heartbeats in a row are
 * lost or late by more than a tick. Each heartbeat wakes every sitter and each wake-up takes CPU
 * and cache from PostgreSQL on a small machine: the leader's heartbeats (and their answers) were
 * most of the idle sitters' wake-ups at 100 ms, etcd's default (see README, "A heartbeat every
 * 200 ms"). The tick is 100 ms, not 50: an idle dev shard's three sitters used 4.57 CPU s a
 * minute at 50 ms ticks and 2.97 at 100 ms with the same heartbeat and election timeout.
 */
export function defaultHeartbeatTicks(electionTicks: number, tickMs: number): number {
  return Math.max(1, Math.min(Math.round(HEARTBEAT_TARGET_MS / tickMs), Math.floor((electionTicks * 2) / 5), electionTicks - 1));
}

/** Validates a parsed configuration object and fills in defaults. Throws ConfigError naming every bad field. */
export function parseConfig(input: unknown, source = 'configuration'): SitterConfig {
  // ajv fills defaults in place: validate a copy so the caller's object is left alone.
  const copy: unknown = structuredClone(input);
  const shape = schemaProblems(copy);
  if (shape.length > 0) throw new ConfigError(`invalid ${source}:\n  ${shape.join('\n  ')}`);
  const config = copy as SitterConfig;
  const raft = config.raft as { heartbeatTicks?: number; electionTicks: number; tickMs: number };
  raft.heartbeatTicks ??= defaultHeartbeatTicks(raft.electionTicks, raft.tickMs);
  const problems = crossCheck(config);
  if (problems.length > 0) throw new ConfigError(`invalid ${source}:\n  ${problems.join('\n  ')}`);
  return config;
}

/**
 * The file holds the shard secret (the root credential: the database passwords derive from it)
 * and the admin token: a file that group or others can read is refused, not merely warned about.
 */
async function checkConfigMode(path: string): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    throw new ConfigError(`cannot read configuration file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    const octal = mode.toString(8).padStart(4, '0');
    throw new ConfigError(
      `configuration file ${path} has mode ${octal}: it holds the shard secret and the admin token, so it must not be readable by group or others (chmod 600 ${path})`,
      { code: CONFIG_ERR_MODE },
    );
  }
}

/** Reads and validates a configuration file (which must not be readable by group or others). */
export async function loadConfig(path: string): Promise<SitterConfig> {
  await checkConfigMode(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read configuration file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`configuration file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(parsed, `configuration file ${path}`);
}

/** Passwords that all peers derive alike from the shard secret, when the configuration names none. */
export function derivedPassword(secret: string, purpose: string): string {
  return createHmac('sha256', secret).update(`manatee:${purpose}`).digest('hex').slice(0, 32);
}

export function peerInfoOf(config: SitterConfig): PeerInfo {
  return {
    id: config.peerId,
    host: config.host,
    pgUrl: `postgres://${config.host}:${config.postgres.port}/${config.postgres.database}`,
    apiUrl: `${config.tls !== undefined ? 'https' : 'http'}://${config.host}:${config.api.port}`,
  };
}
