// The sitter's configuration file (one JSON file per peer). Validated at start-up against a
// JSON schema; an error names the field, what was wrong and what is expected, and the
// process exits non-zero (src/cli/manatee-sitter.ts).
import { createHmac } from 'node:crypto';
import { HOOK_EVENTS, PEER_ID_PATTERN, PEER_TAG_PRIORITY_MAX, PEER_TAG_PRIORITY_MIN, type PeerInfo, type PeerTags } from '../model/index.js';
import { readFile, stat } from 'node:fs/promises';
import { Ajv, type ErrorObject } from 'ajv';
import { ManateeError } from '../errors.js';
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

const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;
/** Most secrets (or admin tokens) accepted besides the current one: a rotation needs one. */
const ACCEPTED_MAX = 4;
const positiveMs = { type: 'integer', minimum: 1, maximum: 86_400_000 } as const;
const idPattern = PEER_ID_PATTERN;

// additionalProperties:false everywhere: a misspelt key is an error, not a silently ignored setting.
const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['peerId', 'host', 'dataDir', 'postgres', 'api', 'raft', 'secret', 'adminToken'],
  properties: {
    peerId: { type: 'string', pattern: idPattern },
    host: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:-]+$' },
    dataDir: { type: 'string', minLength: 1, pattern: '^/' },
    backend: { enum: ['zfs', 'basebackup'], default: 'basebackup' },
    postgres: {
      type: 'object',
      additionalProperties: false,
      required: ['port'],
      properties: {
        port,
        bindir: { type: 'string', pattern: '^/' },
        user: { type: 'string', pattern: '^[a-z_][a-z0-9_-]{0,31}$', default: 'postgres' },
        database: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}$', default: 'postgres' },
        replicationPassword: { type: 'string', minLength: 8 },
        superuserPassword: { type: 'string', minLength: 8 },
        clientCidrs: { type: 'array', minItems: 1, maxItems: 256, items: { type: 'string', minLength: 1, maxLength: 64 } },
      },
    },
    zfs: {
      type: 'object',
      additionalProperties: false,
      required: ['dataset'],
      properties: {
        dataset: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:/-]*$' },
        snapshotIntervalMs: { ...positiveMs, default: 3_600_000 },
        snapshotRetention: { type: 'integer', minimum: 1, maximum: 10_000, default: 50 },
      },
    },
    api: {
      type: 'object',
      additionalProperties: false,
      required: ['port'],
      properties: { port, listen: { type: 'string', minLength: 1, default: '0.0.0.0' } },
    },
    raft: {
      type: 'object',
      additionalProperties: false,
      required: ['port', 'members'],
      properties: {
        port,
        listen: { type: 'string', minLength: 1, default: '0.0.0.0' },
        members: {
          type: 'array',
          minItems: 1,
          maxItems: 15,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['id', 'address'],
            properties: {
              id: { type: 'string', pattern: idPattern },
              address: { type: 'string', pattern: '^[A-Za-z0-9.:-]+:[0-9]{1,5}$' },
            },
          },
        },
        tickMs: { type: 'integer', minimum: 5, maximum: 10_000, default: 50 },
        electionTicks: { type: 'integer', minimum: 2, maximum: 1000, default: 10 },
        // No schema default: it follows electionTicks (defaultHeartbeatTicks).
        heartbeatTicks: { type: 'integer', minimum: 1, maximum: 1000 },
      },
    },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        sessionTimeoutMs: { ...positiveMs, default: 1500 },
        keepaliveIntervalMs: { ...positiveMs, default: 300 },
        pgHealthIntervalMs: { ...positiveMs, default: 1000 },
        pgHealthTimeoutMs: { ...positiveMs, default: 3000 },
        pgUnhealthyTimeoutMs: { ...positiveMs, default: 15_000 },
        pgStartTimeoutMs: { ...positiveMs, default: 120_000 },
      },
    },
    rebuild: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { automatic: { type: 'boolean', default: true } },
    },
    oneNodeWriteMode: { type: 'boolean', default: false },
    tags: {
      type: 'object',
      additionalProperties: false,
      properties: {
        nofailover: { type: 'boolean' },
        noloadbalance: { type: 'boolean' },
        priority: { type: 'integer', minimum: PEER_TAG_PRIORITY_MIN, maximum: PEER_TAG_PRIORITY_MAX },
      },
    },
    tls: {
      type: 'object',
      additionalProperties: false,
      required: ['caFile', 'certFile', 'keyFile'],
      properties: {
        caFile: { type: 'string', pattern: '^/' },
        certFile: { type: 'string', pattern: '^/' },
        keyFile: { type: 'string', pattern: '^/' },
      },
    },
    secret: { type: 'string', minLength: 16, maxLength: 1024 },
    acceptedSecrets: { type: 'array', maxItems: ACCEPTED_MAX, items: { type: 'string', minLength: 16, maxLength: 1024 } },
    adminToken: { type: 'string', minLength: 16, maxLength: 1024 },
    acceptedAdminTokens: { type: 'array', maxItems: ACCEPTED_MAX, items: { type: 'string', minLength: 16, maxLength: 1024 } },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], default: 'info' },
        file: { type: 'string', pattern: '^/' },
      },
    },
    hooks: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        events: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: Object.fromEntries(
            HOOK_EVENTS.map((e) => [e, { type: 'array', maxItems: 16, items: { type: 'string', minLength: 2, maxLength: 4096, pattern: '^/' } }]),
          ),
        },
        timeoutMs: { ...positiveMs, default: 10_000 },
        killGraceMs: { type: 'integer', minimum: 0, maximum: 60_000, default: 1000 },
        queueMax: { type: 'integer', minimum: 0, maximum: 10_000, default: 16 },
        outputBytesMax: { type: 'integer', minimum: 0, maximum: 1_048_576, default: 4096 },
        heartbeatIntervalMs: { type: 'integer', minimum: 100, maximum: 86_400_000, default: 60_000 },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
const validate = ajv.compile(schema);

/** "raft.members[1].address" from ajv's "/raft/members/1/address". */
function fieldName(err: ErrorObject): string {
  const parts = err.instancePath.split('/').slice(1);
  let name = '';
  for (const p of parts) name += /^\d+$/.test(p) ? `[${p}]` : name === '' ? p : `.${p}`;
  if (err.keyword === 'required') {
    const missing = (err.params as { missingProperty: string }).missingProperty;
    return name === '' ? missing : `${name}.${missing}`;
  }
  if (err.keyword === 'additionalProperties') {
    const extra = (err.params as { additionalProperty: string }).additionalProperty;
    return name === '' ? extra : `${name}.${extra}`;
  }
  return name === '' ? '(root)' : name;
}

function describe(err: ErrorObject): string {
  const field = fieldName(err);
  switch (err.keyword) {
    case 'required':
      return `${field}: is missing (required)`;
    case 'additionalProperties':
      return `${field}: is not a known setting`;
    case 'enum':
      return `${field}: must be one of ${JSON.stringify((err.params as { allowedValues: unknown[] }).allowedValues)}`;
    default:
      return `${field}: ${err.message ?? 'is invalid'}`;
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

/** Validates a parsed configuration object and fills in defaults. Throws ConfigError naming every bad field. */
/**
 * Heartbeats every 2 ticks (100 ms at the default 50 ms tick, as etcd's default): five per
 * election timeout at the default 10 ticks, so a follower still hears the leader many times
 * before it would campaign, and failure detection (the election timeout) is unchanged. Every tick
 * cost each idle sitter about 0.5 ms of CPU per heartbeat round (tools/bench/raft-idle.ts).
 * 1 when electionTicks is 2.
 */
export function defaultHeartbeatTicks(electionTicks: number): number {
  return Math.max(1, Math.min(2, electionTicks - 1));
}

export function parseConfig(input: unknown, source = 'configuration'): SitterConfig {
  // ajv fills defaults in place: validate a copy so the caller's object is left alone.
  const copy: unknown = structuredClone(input);
  if (!validate(copy)) {
    const lines = (validate.errors ?? []).map(describe);
    throw new ConfigError(`invalid ${source}:\n  ${[...new Set(lines)].join('\n  ')}`);
  }
  const config = copy as unknown as SitterConfig;
  const raft = config.raft as { heartbeatTicks?: number; electionTicks: number };
  raft.heartbeatTicks ??= defaultHeartbeatTicks(raft.electionTicks);
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
