// Input validation for fastify with our own Ajv instances, because fastify's defaults would
// silently drop unknown fields (removeAdditional) and coerce "true" to true in bodies. Here:
// bodies are strict, query strings are coerced (they are strings on the wire), and every
// failure is an ApiError whose message names the field.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';
import { ApiError } from './errors.js';

/** At most this many problems in one message: enough to fix a request, bounded for a hostile one. */
const PROBLEMS_MAX = 5;

function fieldOf(part: string, e: ErrorObject): string {
  // "/promote/expireMs" → "body.promote.expireMs"
  const path = e.instancePath.split('/').filter((s) => s !== '').join('.');
  const base = path === '' ? part : `${part}.${path}`;
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'required' && typeof params['missingProperty'] === 'string') return `${base}.${params['missingProperty']}`;
  if (e.keyword === 'additionalProperties' && typeof params['additionalProperty'] === 'string') {
    return `${base}.${params['additionalProperty']}`;
  }
  return base;
}

function describeError(part: string, e: ErrorObject): string {
  const field = fieldOf(part, e);
  switch (e.keyword) {
    case 'required':
      return `${field}: is required`;
    case 'additionalProperties':
      return `${field}: is not a known field`;
    case 'pattern':
      return `${field}: has a bad format (must match ${String((e.params as Record<string, unknown>)['pattern'])})`;
    default:
      return `${field}: ${e.message ?? 'is invalid'}`;
  }
}

/** One line naming each bad field, e.g. "body.reason: is required; body.foo: is not a known field". */
export function describeErrors(part: string, errors: readonly ErrorObject[]): string {
  const lines = errors.slice(0, PROBLEMS_MAX).map((e) => describeError(part, e));
  const more = errors.length > PROBLEMS_MAX ? `; and ${errors.length - PROBLEMS_MAX} more` : '';
  return `${[...new Set(lines)].join('; ')}${more}`;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = new Ajv({ allErrors: true, coerceTypes: false, useDefaults: true, removeAdditional: false, strict: true });
  const coercing = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, removeAdditional: false, strict: true });
  // Formats used by routes that plugins add (the backup server's job ids): strict Ajv refuses
  // to compile a schema with an unknown format, which would stop the API from starting.
  for (const ajv of [strict, coercing]) ajv.addFormat('uuid', UUID_PATTERN);
  return ({ schema, httpPart }) => {
    const part = httpPart ?? 'body';
    const ajv = part === 'body' ? strict : coercing;
    const validate: ValidateFunction = ajv.compile(schema as object);
    return (data: unknown) => {
      // A POST with no body at all is an empty object: `curl -X POST .../admin/unfreeze` works.
      const value = part === 'body' && (data === undefined || data === null) ? {} : data;
      if (validate(value)) return { value };
      return { error: new ApiError('MANATEE_ERR_BAD_REQUEST', describeErrors(part, validate.errors ?? [])) };
    };
  };
}
