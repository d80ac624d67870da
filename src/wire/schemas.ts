// The wire contract of the HTTP API: the JSON schema of every answer that a caller reads (and of
// the request bodies that the typed client sends), written once, `as const`. The API registers
// them on its routes (fastify validates and serializes with them); src/wire/types.ts derives the
// TypeScript types that manatee-adm, GET /shard, the sitters and the client library read from them.
import { PEER_ID_PATTERN } from '../model/index.js';

const str = { type: 'string' } as const;
const nullableStr = { type: ['string', 'null'] } as const;
const nullableNum = { type: ['number', 'null'] } as const;
const int = { type: 'integer' } as const;

/** Peer ids as the configuration allows them (src/peer/config.ts). */
export const peerIdSchema = { type: 'string', pattern: PEER_ID_PATTERN } as const;

export const peerInfoSchema = {
  type: 'object',
  required: ['id', 'pgUrl', 'apiUrl', 'host'],
  properties: { id: str, pgUrl: str, apiUrl: str, host: str },
} as const;

/** A peer's tags (src/model/peer.ts PeerTags). */
export const peerTagsSchema = {
  type: 'object',
  properties: { nofailover: { type: 'boolean' }, noloadbalance: { type: 'boolean' }, priority: { type: 'integer' } },
} as const;

/** An active peer with the tags its session carries (GET /peers). */
export const activePeerSchema = {
  type: 'object',
  required: ['id', 'pgUrl', 'apiUrl', 'host'],
  properties: { ...peerInfoSchema.properties, tags: peerTagsSchema },
} as const;

export const clusterStateSchema = {
  type: 'object',
  required: ['generation', 'primary', 'sync', 'async', 'deposed', 'initWal'],
  properties: {
    generation: int,
    primary: peerInfoSchema,
    sync: { anyOf: [peerInfoSchema, { type: 'null' }] },
    async: { type: 'array', items: peerInfoSchema },
    deposed: { type: 'array', items: peerInfoSchema },
    initWal: str,
    /** The timeline history that initWal is a position in (absent in a state from before it was recorded). */
    initWalHistory: {
      type: 'object',
      required: ['timeline', 'switches'],
      properties: {
        timeline: int,
        switches: { type: 'array', items: { type: 'object', required: ['timeline', 'switchLsn'], properties: { timeline: int, switchLsn: str } } },
      },
    },
    freeze: { type: 'object', required: ['date', 'reason'], properties: { date: str, reason: str } },
    oneNodeWriteMode: { type: 'boolean' },
    /** The operator's one-node-write mode (set-onwm), overriding the peers' configuration; absent: none. */
    onwmOverride: { type: 'boolean' },
    promote: {
      type: 'object',
      required: ['id', 'role', 'generation', 'expireTime'],
      properties: { id: str, role: { enum: ['sync', 'async'] }, asyncIndex: int, generation: int, expireTime: str, at: str },
    },
    /** A scheduled rolling restart (manatee-adm restart --at): run by the primary's sitter when due. */
    restart: {
      type: 'object',
      required: ['at', 'pending'],
      properties: { at: str, pending: { type: 'boolean' }, peer: str },
    },
  },
} as const;

const nullableState = { anyOf: [clusterStateSchema, { type: 'null' }] } as const;

export const versionedStateSchema = {
  type: 'object',
  required: ['state', 'version'],
  properties: { state: nullableState, version: int },
} as const;

export const historyEntrySchema = {
  type: 'object',
  required: ['version', 'time', 'generation', 'summary', 'state'],
  properties: { version: int, time: str, generation: int, summary: str, state: clusterStateSchema },
} as const;

const decisionSchema = {
  type: 'object',
  required: ['kind', 'reason', 'generation', 'at'],
  properties: { kind: str, reason: str, generation: { type: ['integer', 'null'] }, at: str },
} as const;

const replicationRowSchema = {
  type: 'object',
  required: ['applicationName', 'clientAddr', 'state', 'syncState', 'sentLsn', 'writeLsn', 'flushLsn', 'replayLsn', 'replayLagBytes'],
  properties: {
    applicationName: str,
    clientAddr: nullableStr,
    state: str,
    syncState: str,
    sentLsn: nullableStr,
    writeLsn: nullableStr,
    flushLsn: nullableStr,
    replayLsn: nullableStr,
    replayLagBytes: nullableNum,
  },
} as const;

const postgresStatusSchema = {
  type: 'object',
  required: ['online', 'healthy', 'error', 'inRecovery', 'writable', 'currentLsn', 'receiveLsn', 'replayLsn', 'walReceiver', 'lastCheckAt', 'checkLatencyMs'],
  properties: {
    online: { type: 'boolean' },
    healthy: { type: 'boolean' },
    error: nullableStr,
    inRecovery: { type: ['boolean', 'null'] },
    writable: { type: 'boolean' },
    currentLsn: nullableStr,
    receiveLsn: nullableStr,
    replayLsn: nullableStr,
    walReceiver: nullableStr,
    lastCheckAt: nullableStr,
    checkLatencyMs: nullableNum,
  },
} as const;

const raftStatusSchema = {
  type: 'object',
  required: ['id', 'term', 'leader', 'role', 'commit', 'applied'],
  properties: { id: str, term: int, leader: nullableStr, role: str, commit: int, applied: int },
} as const;

const restoreProgressSchema = {
  type: 'object',
  required: ['phase', 'percent', 'bytesDone', 'bytesTotal', 'rateBytesPerSec', 'etaSec'],
  properties: {
    phase: str,
    percent: nullableNum,
    bytesDone: { type: 'number' },
    bytesTotal: nullableNum,
    rateBytesPerSec: nullableNum,
    etaSec: nullableNum,
  },
} as const;

const rebuildStatusSchema = {
  type: 'object',
  required: ['running', 'reason', 'source', 'progress', 'lastError', 'lastResult'],
  properties: {
    running: { type: 'boolean' },
    reason: nullableStr,
    source: nullableStr,
    progress: { anyOf: [restoreProgressSchema, { type: 'null' }] },
    lastError: nullableStr,
    lastResult: nullableStr,
  },
} as const;

const heartbeatStatusSchema = {
  type: 'object',
  required: ['primaryId', 'generation', 'writtenAt', 'lagSeconds', 'checkedAt', 'error'],
  properties: {
    primaryId: nullableStr,
    generation: { type: ['integer', 'null'] },
    writtenAt: nullableStr,
    lagSeconds: nullableNum,
    checkedAt: nullableStr,
    error: nullableStr,
  },
} as const;

const hookCountsSchema = {
  type: 'object',
  required: ['ok', 'failed', 'timedOut', 'dropped'],
  properties: { ok: int, failed: int, timedOut: int, dropped: int },
} as const;

/** src/peer/hooks.ts HooksStatus: counts per configured event (keys from HOOK_EVENTS) and the last failure. */
const hooksStatusSchema = {
  type: 'object',
  required: ['events', 'running', 'queued', 'lastFailure'],
  properties: {
    events: { type: 'object', additionalProperties: hookCountsSchema },
    running: int,
    queued: int,
    lastFailure: {
      anyOf: [
        {
          type: 'object',
          required: ['event', 'command', 'at', 'outcome', 'reason', 'exitCode', 'signal', 'durationMs'],
          properties: {
            event: str, command: str, at: str, outcome: { enum: ['failed', 'timedOut'] }, reason: str,
            exitCode: { type: ['integer', 'null'] }, signal: nullableStr, durationMs: { type: 'number' },
          },
        },
        { type: 'null' },
      ],
    },
  },
} as const;

/** src/model RejectedSetting: a line of a configuration file that PostgreSQL refuses. */
const rejectedSettingsSchema = {
  type: 'array',
  items: {
    type: 'object',
    required: ['name', 'value', 'file', 'source', 'line', 'error', 'blocksReload', 'reason'],
    properties: {
      name: nullableStr, value: nullableStr, file: nullableStr, source: str, line: { type: ['integer', 'null'] },
      error: str, blocksReload: { type: 'boolean' }, reason: str,
    },
  },
} as const;

/** src/peer/shard-settings.ts PeerSettingsStatus. */
const peerSettingsStatusSchema = {
  type: 'object',
  required: ['version', 'appliedVersion', 'pendingRestart', 'settings', 'rejected', 'error'],
  properties: {
    version: int,
    appliedVersion: { type: ['integer', 'null'] },
    pendingRestart: { type: 'array', items: str },
    settings: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'value', 'source', 'running', 'pendingRestart'],
        properties: { name: str, value: nullableStr, source: str, running: nullableStr, pendingRestart: { type: 'boolean' } },
      },
    },
    rejected: rejectedSettingsSchema,
    error: nullableStr,
  },
} as const;

/** src/model TlsCertificateStatus. */
const tlsStatusSchema = {
  type: 'object',
  required: ['certFile', 'subject', 'peerId', 'fingerprint256', 'notAfter', 'expiresInSeconds', 'caNotAfter', 'caExpiresInSeconds', 'loadedAt', 'reloadError'],
  properties: {
    certFile: str, subject: str, peerId: nullableStr, fingerprint256: str, notAfter: str, expiresInSeconds: int,
    caNotAfter: str, caExpiresInSeconds: int, loadedAt: str,
    reloadError: { anyOf: [{ type: 'object', required: ['at', 'code', 'message'], properties: { at: str, code: str, message: str } }, { type: 'null' }] },
  },
} as const;

/** src/model CredentialsStatus: fingerprints, never values. */
const credentialsStatusSchema = {
  type: 'object',
  required: ['secret', 'acceptedSecrets', 'adminToken', 'acceptedAdminTokens'],
  properties: {
    secret: str, acceptedSecrets: { type: 'array', items: str }, adminToken: str, acceptedAdminTokens: { type: 'array', items: str },
  },
} as const;

export const sitterStatusSchema = {
  type: 'object',
  required: [
    'peer', 'role', 'sitterPid', 'postgresPid', 'backend', 'postgres', 'replication', 'raft',
    'state', 'stateVersion', 'activePeers', 'lastDecision', 'rebuild', 'startedAt', 'loop',
  ],
  properties: {
    peer: peerInfoSchema,
    role: { enum: ['primary', 'sync', 'async', 'deposed', 'unassigned'] },
    sitterPid: int,
    postgresPid: { type: ['integer', 'null'] },
    backend: { enum: ['zfs', 'basebackup'] },
    postgres: postgresStatusSchema,
    replication: { type: 'array', items: replicationRowSchema },
    raft: raftStatusSchema,
    state: nullableState,
    stateVersion: int,
    activePeers: { type: 'array', items: peerInfoSchema },
    lastDecision: { anyOf: [decisionSchema, { type: 'null' }] },
    rebuild: rebuildStatusSchema,
    startedAt: str,
    loop: {
      type: 'object',
      required: ['lastEvaluatedAt', 'evaluatingSince', 'lastProgressAt', 'stuckAfterMs'],
      properties: { lastEvaluatedAt: nullableStr, evaluatingSince: nullableStr, lastProgressAt: nullableStr, stuckAfterMs: int },
    },
    /** The primary's lease (src/peer/lease-fence.ts): `fenced` while it could not renew its session in time and must not serve. */
    lease: {
      type: 'object',
      required: ['fenced', 'validForMs', 'reason'],
      properties: { fenced: { type: 'boolean' }, validForMs: nullableNum, reason: str },
    },
    heartbeat: heartbeatStatusSchema,
    hooks: hooksStatusSchema,
    settings: peerSettingsStatusSchema,
    tls: tlsStatusSchema,
    credentials: credentialsStatusSchema,
    tags: peerTagsSchema,
    peerTags: { type: 'object', additionalProperties: peerTagsSchema },
  },
} as const;

const nullableBool = { type: ['boolean', 'null'] } as const;
const roleSchema = { enum: ['primary', 'sync', 'async', 'deposed', 'unassigned'] } as const;

export const shardReportSchema = {
  type: 'object',
  required: ['answeredBy', 'stateVersion', 'generation', 'initWal', 'oneNodeWriteMode', 'freeze', 'promote', 'raftLeader', 'raftTerm', 'state', 'peers', 'links'],
  properties: {
    answeredBy: str,
    stateVersion: int,
    generation: { type: ['integer', 'null'] },
    initWal: nullableStr,
    oneNodeWriteMode: { type: 'boolean' },
    freeze: { anyOf: [clusterStateSchema.properties.freeze, { type: 'null' }] },
    promote: { anyOf: [clusterStateSchema.properties.promote, { type: 'null' }] },
    raftLeader: nullableStr,
    raftTerm: int,
    state: nullableState,
    peers: {
      type: 'array',
      items: {
        type: 'object',
        required: [
          'id', 'host', 'pgUrl', 'apiUrl', 'role', 'upstream', 'active', 'reachable', 'error', 'sitterPid', 'postgresPid', 'tlsExpiresInSeconds',
          'pgOnline', 'pgHealthy', 'writable', 'inRecovery', 'currentLsn', 'receiveLsn', 'replayLsn', 'lagSeconds', 'checkLatencyMs', 'lastDecision', 'rebuild',
        ],
        properties: {
          id: str, host: str, pgUrl: str, apiUrl: str, role: roleSchema, upstream: nullableStr, tags: peerTagsSchema,
          active: { type: 'boolean' }, reachable: { type: 'boolean' }, error: nullableStr,
          sitterPid: { type: ['integer', 'null'] }, postgresPid: { type: ['integer', 'null'] }, tlsExpiresInSeconds: { type: ['integer', 'null'] },
          pgOnline: nullableBool, pgHealthy: nullableBool, writable: nullableBool, inRecovery: nullableBool,
          currentLsn: nullableStr, receiveLsn: nullableStr, replayLsn: nullableStr,
          lagSeconds: nullableNum, checkLatencyMs: nullableNum,
          lastDecision: { anyOf: [decisionSchema, { type: 'null' }] },
          rebuild: { anyOf: [rebuildStatusSchema, { type: 'null' }] },
          pendingRestart: { anyOf: [{ type: 'array', items: str }, { type: 'null' }] },
          settingsVersion: { type: ['integer', 'null'] },
          settings: { anyOf: [peerSettingsStatusSchema.properties.settings, { type: 'null' }] },
          credentials: { anyOf: [credentialsStatusSchema, { type: 'null' }] },
          rejectedSettings: { anyOf: [rejectedSettingsSchema, { type: 'null' }] },
        },
      },
    },
    links: {
      type: 'array',
      items: {
        type: 'object',
        required: ['upstream', 'downstream', 'expected', 'state', 'syncState', 'streaming', 'lagBytes', 'lagSeconds'],
        properties: {
          upstream: str, downstream: str, expected: { enum: ['sync', 'async'] }, state: nullableStr, syncState: nullableStr,
          streaming: { type: 'boolean' }, lagBytes: nullableNum, lagSeconds: nullableNum,
        },
      },
    },
  },
} as const;

/** The body of every health-check answer, 200 or 503 alike (Patroni's convention). */
export const healthBodySchema = {
  type: 'object',
  required: ['peerId', 'role', 'check', 'ok', 'reason', 'pgOnline', 'pgHealthy', 'writable', 'inRecovery', 'generation', 'replicationState', 'lagBytes', 'lagSeconds', 'primaryLsn', 'primaryLsnAgeMs'],
  properties: {
    peerId: str,
    role: roleSchema,
    check: str,
    ok: { type: 'boolean' },
    reason: str,
    pgOnline: { type: 'boolean' },
    pgHealthy: { type: 'boolean' },
    writable: { type: 'boolean' },
    inRecovery: nullableBool,
    generation: { type: ['integer', 'null'] },
    replicationState: nullableStr,
    lagBytes: nullableNum,
    lagSeconds: nullableNum,
    primaryLsn: nullableStr,
    primaryLsnAgeMs: nullableNum,
  },
} as const;

export const raftMembersSchema = {
  type: 'object',
  required: ['voters', 'learners', 'addresses'],
  properties: {
    voters: { type: 'array', items: str },
    learners: { type: 'array', items: str },
    addresses: { type: 'object', additionalProperties: str },
  },
} as const;

export const membershipResultSchema = {
  type: 'object',
  required: ['summary', 'members'],
  properties: { summary: str, members: raftMembersSchema },
} as const;

export const errorBodySchema = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: str, message: str } } },
} as const;

export const adminResultSchema = {
  type: 'object',
  required: ['summary', 'state', 'version'],
  properties: { summary: str, state: clusterStateSchema, version: int },
} as const;

export const rebuildResultSchema = {
  type: 'object',
  required: ['peerId', 'started', 'message'],
  properties: { peerId: str, started: { type: 'boolean' }, message: str },
} as const;

/** The shard-wide PostgreSQL settings: name -> value. */
const settingsMap = { type: 'object', additionalProperties: { type: 'string', maxLength: 4096 }, maxProperties: 256 } as const;

export const versionedSettingsSchema = {
  type: 'object',
  required: ['settings', 'version'],
  properties: {
    settings: settingsMap,
    version: { type: 'integer' },
    /** GET /config without the token: the names whose values are shown as "[redacted]" (they may hold a credential). */
    redacted: { type: 'array', items: str },
  },
} as const;

export const settingsResultSchema = {
  type: 'object',
  required: ['summary', 'settings', 'version', 'restart'],
  properties: { summary: str, settings: settingsMap, version: { type: 'integer' }, restart: { type: 'array', items: str } },
} as const;

/** POST /admin/config: set and unset names, or replace the whole set; expectVersion makes it a compare-and-set. */
export const configBodySchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    set: settingsMap,
    unset: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 63 }, maxItems: 256 },
    replace: settingsMap,
    expectVersion: { type: 'integer', minimum: 0 },
  },
} as const;

/** One row of pg_settings (src/postgres/settings.ts PG_SETTINGS_QUERY). */
export const pgSettingRowSchema = {
  type: 'object',
  required: ['name', 'vartype', 'unit', 'minVal', 'maxVal', 'enumVals', 'context'],
  properties: {
    name: str, vartype: str, unit: { type: ['string', 'null'] }, minVal: { type: ['string', 'null'] }, maxVal: { type: ['string', 'null'] },
    enumVals: { anyOf: [{ type: 'array', items: str }, { type: 'null' }] }, context: str,
  },
} as const;

export const pgSettingsSchema = {
  type: 'object', required: ['rows'], properties: { rows: { type: 'array', items: pgSettingRowSchema } },
} as const;

export const pgOpResultSchema = {
  type: 'object',
  required: ['peerId', 'action', 'pendingRestart', 'message'],
  properties: { peerId: { type: 'string' }, action: { enum: ['reloaded', 'restarted'] }, pendingRestart: { type: 'array', items: { type: 'string' } }, message: { type: 'string' } },
} as const;

export const historySchema = {
  type: 'object', required: ['history'], properties: { history: { type: 'array', items: historyEntrySchema } },
} as const;

export const peersSchema = {
  type: 'object', required: ['peers'], properties: { peers: { type: 'array', items: activePeerSchema } },
} as const;

// ---- request bodies that the typed client sends and that need no rule of another room ----

/**
 * `{on: boolean}`, or `{mode: "on" | "off" | "config"}` where "config" removes the operator's
 * override (each sitter follows its configured oneNodeWriteMode again). Exactly one of the two.
 */
export const onwmBodySchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  maxProperties: 1,
  properties: { on: { type: 'boolean' }, mode: { enum: ['on', 'off', 'config'] } },
} as const;
