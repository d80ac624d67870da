// The sitter's configuration file as a JSON schema (ajv, with defaults filled in), and ajv's
// errors as sentences that name the field, say what was wrong and what is expected. The rules a
// schema cannot say (relations between fields) are config.ts's crossCheck.
import { Ajv, type ErrorObject } from 'ajv';
import { HOOK_EVENTS, PEER_ID_PATTERN, PEER_TAG_PRIORITY_MAX, PEER_TAG_PRIORITY_MIN } from '../model/index.js';

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
        tickMs: { type: 'integer', minimum: 5, maximum: 10_000, default: 100 },
        electionTicks: { type: 'integer', minimum: 2, maximum: 1000, default: 5 },
        // No schema default: it follows tickMs and electionTicks (defaultHeartbeatTicks).
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

/**
 * The problems of a parsed configuration against the schema, one sentence each (none: valid).
 * Fills the defaults in `config` in place.
 */
export function schemaProblems(config: unknown): string[] {
  if (validate(config)) return [];
  return [...new Set((validate.errors ?? []).map(describe))];
}
