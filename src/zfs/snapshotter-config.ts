// The configuration file of the standalone `manatee-snapshotter`, validated with a JSON schema;
// an error names the field, what was wrong and what is expected.
import { readFile } from 'node:fs/promises';
import { Ajv, type ErrorObject } from 'ajv';
import { ManateeError } from '../errors.js';
import { validateDatasetName } from './names.js';
import { ZfsBadNameError } from './errors.js';

export const SNAPSHOTTER_ERR_CONFIG = 'MANATEE_ERR_SNAPSHOTTER_CONFIG';
export class SnapshotterConfigError extends ManateeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(SNAPSHOTTER_ERR_CONFIG, message, options);
  }
}

export interface SnapshotterConfig {
  /** The dataset to snapshot, e.g. "pool/manatee/a". */
  readonly dataset: string;
  readonly intervalMs: number;
  readonly retentionCount: number;
  readonly zfsPath?: string;
  /** When present, snapshots are skipped while `SELECT 1` on this PostgreSQL fails. */
  readonly health?: { readonly pgUrl: string; readonly timeoutMs: number };
  readonly logLevel: string;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['dataset', 'intervalMs', 'retentionCount'],
  properties: {
    dataset: { type: 'string', minLength: 1, maxLength: 255 },
    intervalMs: { type: 'integer', minimum: 1000, maximum: 7 * 24 * 3600 * 1000 },
    retentionCount: { type: 'integer', minimum: 1, maximum: 10000 },
    zfsPath: { type: 'string', minLength: 1 },
    health: {
      type: 'object',
      additionalProperties: false,
      required: ['pgUrl'],
      properties: {
        pgUrl: { type: 'string', pattern: '^postgres(ql)?://' },
        timeoutMs: { type: 'integer', minimum: 100, maximum: 600000, default: 5000 },
      },
    },
    logLevel: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
  },
} as const;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
const validate = ajv.compile(schema);

function describe(err: ErrorObject): string {
  let field = err.instancePath.split('/').slice(1).join('.');
  if (err.keyword === 'required') {
    const missing = (err.params as { missingProperty: string }).missingProperty;
    return `${field === '' ? missing : `${field}.${missing}`}: is missing (required)`;
  }
  if (err.keyword === 'additionalProperties') {
    const extra = (err.params as { additionalProperty: string }).additionalProperty;
    return `${field === '' ? extra : `${field}.${extra}`}: is not a known setting`;
  }
  if (field === '') field = '(root)';
  return `${field}: ${err.message ?? 'is invalid'}`;
}

export function parseSnapshotterConfig(input: unknown, source = 'configuration'): SnapshotterConfig {
  const copy: unknown = structuredClone(input);
  if (!validate(copy)) {
    const lines = [...new Set((validate.errors ?? []).map(describe))];
    throw new SnapshotterConfigError(`invalid ${source}:\n  ${lines.join('\n  ')}`);
  }
  const config = copy as unknown as SnapshotterConfig;
  try {
    validateDatasetName(config.dataset);
  } catch (err) {
    if (err instanceof ZfsBadNameError) throw new SnapshotterConfigError(`invalid ${source}:\n  dataset: ${err.rule}`, { cause: err });
    throw err;
  }
  return config;
}

export async function loadSnapshotterConfig(path: string): Promise<SnapshotterConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new SnapshotterConfigError(`cannot read configuration file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new SnapshotterConfigError(`configuration file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseSnapshotterConfig(parsed, `configuration file ${path}`);
}
