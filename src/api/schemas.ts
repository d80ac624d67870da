// JSON schemas of every route's input and output. Inputs are strict (unknown fields are an
// error); outputs are the contract that manatee-adm and outside tools read.
import { FREEZE_REASON_LENGTH_MAX, PROMOTE_EXPIRE_MS_MAX, PROMOTE_EXPIRE_MS_MIN } from '../peer/admin.js';

// The answers' schemas (and the request bodies the typed client sends) are the wire contract,
// written once in src/wire; the inputs below use the peer's limits, so they stay with the API.
export {
  adminResultSchema, clusterStateSchema, configBodySchema, errorBodySchema, healthBodySchema, historyEntrySchema, historySchema,
  membershipResultSchema, onwmBodySchema, peerIdSchema, peerInfoSchema, peersSchema, pgOpResultSchema, pgSettingsSchema,
  raftMembersSchema, rebuildResultSchema, settingsResultSchema, shardReportSchema, sitterStatusSchema, versionedSettingsSchema,
  versionedStateSchema,
} from '../wire/schemas.js';
import { peerIdSchema } from '../wire/schemas.js';

// ---- inputs -------------------------------------------------------------------------------

/** Routes that take no arguments still get a strict (empty) object, so that a typo is an error. */
export const emptyBodySchema = { type: 'object', additionalProperties: false, properties: {} } as const;

export const freezeBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['reason'],
  properties: { reason: { type: 'string', minLength: 1, maxLength: FREEZE_REASON_LENGTH_MAX, pattern: '^[^\\u0000-\\u001f\\u007f]*\\S[^\\u0000-\\u001f\\u007f]*$' } },
} as const;

export const promoteBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['peerId'],
  properties: {
    peerId: peerIdSchema,
    expireMs: { type: 'integer', minimum: PROMOTE_EXPIRE_MS_MIN, maximum: PROMOTE_EXPIRE_MS_MAX },
    at: { type: 'string', maxLength: 64 },
  },
} as const;

export const scheduleRestartBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['at'],
  properties: {
    at: { type: 'string', maxLength: 64 },
    pending: { type: 'boolean' },
    peer: peerIdSchema,
  },
} as const;

export const reapBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['peerId'],
  properties: { peerId: peerIdSchema },
} as const;

/** A Raft transport address: host:port, or [v6]:port. */
export const raftAddressSchema = { type: 'string', maxLength: 261, pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9][A-Za-z0-9.-]*):[0-9]{1,5}$' } as const;

export const addPeerBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'address'],
  properties: { id: peerIdSchema, address: raftAddressSchema },
} as const;

export const removePeerBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: peerIdSchema },
} as const;

export const peerIdParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: peerIdSchema },
} as const;

/**
 * ?lag=<bytes or duration>: 1048576, 1024kB, 10MB, 16MiB (kB, MB, GB, TB are 1024-based, as in
 * PostgreSQL and Patroni), or 500ms, 5s, 2min (the heartbeat lag, our extension).
 */
const lagQuerySchema = {
  type: 'string', maxLength: 32, pattern: '^[0-9]+(\\.[0-9]+)?\\s*([kKMGT]i?B|B|ms|s|min|m|h)?$',
  description: 'bytes behind the primary (1048576, 1024kB, 10MB, 16MiB; 1024-based units) or heartbeat lag (500ms, 5s, 2min)',
} as const;

/** A standby's replication state: its WAL receiver's status, or `stopped` when none runs. */
export const REPLICATION_STATES = ['streaming', 'starting', 'waiting', 'restarting', 'stopping', 'stopped'] as const;

export const healthQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    lag: lagQuerySchema,
    replication_state: {
      enum: REPLICATION_STATES,
      description: "a standby's WAL receiver must be in this state (pg_stat_wal_receiver.status; stopped: none runs)",
    },
  },
} as const;

export const readinessQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    lag: { ...lagQuerySchema, description: `${lagQuerySchema.description}; default 1MB` },
    mode: { enum: ['apply', 'write'], default: 'apply', description: "a standby's lag from its replayed (apply) or received (write) WAL" },
  },
} as const;

export function historyQuerySchema(limitMax: number, limitDefault: number) {
  return {
    type: 'object',
    additionalProperties: false,
    properties: { limit: { type: 'integer', minimum: 1, maximum: limitMax, default: limitDefault } },
  } as const;
}

export const emptyQuerySchema = { type: 'object', additionalProperties: false, properties: {} } as const;
