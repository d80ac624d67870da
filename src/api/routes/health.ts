// Health checks for load balancers, in Patroni's convention: each route answers 200 when this
// peer serves that role now, and 503 otherwise, with the same JSON body either way (HAProxy looks
// at the status; a person looks at the body). GET and HEAD both work (HAProxy's httpchk uses
// either; fastify adds HEAD to every GET route).
//
//   /primary, /read-write   the writable primary
//   /replica                a streaming standby (sync or async), optionally ?lag=<bytes|duration>
//   /sync, /async           that standby role (also with ?lag=)
//   /read-only              any peer that serves reads: the primary or a standby
//   /health                 PostgreSQL is up, whatever the role
//
// A byte limit compares the standby's replay backlog (WAL received but not yet replayed), which
// it knows locally; a duration limit compares its heartbeat lag (src/peer/heartbeat.ts). A limit
// on an unknown lag fails: a load balancer must not send reads to a standby of unknown freshness.
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { SitterStatus } from '../../peer/status.js';
import { ApiError } from '../errors.js';
import { lsnDiffBytes } from '../shard.js';
import { errorBodySchema, healthBodySchema, healthQuerySchema } from '../schemas.js';
import type { ApiDeps } from '../types.js';

export type HealthCheck = 'primary' | 'read-write' | 'replica' | 'sync' | 'async' | 'read-only' | 'health';

export type LagLimit = { readonly kind: 'bytes'; readonly bytes: number } | { readonly kind: 'seconds'; readonly seconds: number };

const BYTE_UNITS: Readonly<Record<string, number>> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
};
const SECOND_UNITS: Readonly<Record<string, number>> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** "10MB", "16MiB", "1048576" (bytes), "500ms", "5s", "2m" → a lag limit. Throws ApiError 400 otherwise. */
export function parseLag(text: string): LagLimit {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$/.exec(text.trim());
  const value = m === null ? NaN : Number(m[1]);
  const unit = (m?.[2] ?? '').toLowerCase();
  if (Number.isFinite(value)) {
    if (unit === '' || BYTE_UNITS[unit] !== undefined) return { kind: 'bytes', bytes: Math.round(value * (BYTE_UNITS[unit] ?? 1)) };
    const s = SECOND_UNITS[unit];
    if (s !== undefined) return { kind: 'seconds', seconds: value * s };
  }
  throw new ApiError('MANATEE_ERR_BAD_REQUEST', `querystring.lag: expected bytes (1048576, 10MB, 16MiB) or a duration (500ms, 5s, 2m), got ${JSON.stringify(text.slice(0, 32))}`);
}

export interface HealthBody {
  readonly peerId: string;
  readonly role: SitterStatus['role'];
  readonly check: HealthCheck;
  readonly ok: boolean;
  readonly reason: string;
  readonly pgOnline: boolean;
  readonly pgHealthy: boolean;
  readonly writable: boolean;
  readonly inRecovery: boolean | null;
  readonly generation: number | null;
  /** Replay backlog on a standby (received − replayed), 0 on the primary. */
  readonly lagBytes: number | null;
  readonly lagSeconds: number | null;
}

/** The answer of one health check on a status: pure, so that every rule is tested without a server. */
export function evaluateHealth(s: SitterStatus, check: HealthCheck, lag: LagLimit | null): HealthBody {
  const pg = s.postgres;
  const up = pg.online && pg.healthy;
  const standby = (s.role === 'sync' || s.role === 'async') && pg.inRecovery === true;
  const lagBytes = s.role === 'primary' ? 0 : lsnDiffBytes(pg.receiveLsn, pg.replayLsn);
  const lagSeconds = s.heartbeat?.lagSeconds ?? null;
  const body = (ok: boolean, reason: string): HealthBody => ({
    peerId: s.peer.id, role: s.role, check, ok, reason, pgOnline: pg.online, pgHealthy: pg.healthy, writable: pg.writable,
    inRecovery: pg.inRecovery, generation: s.state?.generation ?? null, lagBytes, lagSeconds,
  });
  if (!up) return body(false, `PostgreSQL is not serving: ${pg.error ?? 'down'}`);
  const withinLag = (what: string): HealthBody => {
    if (lag === null) return body(true, what);
    if (lag.kind === 'bytes') {
      if (lagBytes === null) return body(false, `${what}, but its lag in bytes is unknown`);
      return lagBytes <= lag.bytes ? body(true, `${what}, ${lagBytes} bytes behind (limit ${lag.bytes})`) : body(false, `${what}, but ${lagBytes} bytes behind (limit ${lag.bytes})`);
    }
    if (lagSeconds === null) return body(false, `${what}, but its lag in seconds is unknown (no heartbeat read yet)`);
    return lagSeconds <= lag.seconds ? body(true, `${what}, ${lagSeconds} s behind (limit ${lag.seconds} s)`) : body(false, `${what}, but ${lagSeconds} s behind (limit ${lag.seconds} s)`);
  };
  switch (check) {
    case 'primary':
    case 'read-write':
      if (s.role !== 'primary') return body(false, `this peer is ${s.role === 'async' ? 'an' : 'a'} ${s.role}, not the primary`);
      return pg.writable ? body(true, 'the writable primary') : body(false, 'the primary, but read-only (waiting for its sync)');
    case 'replica':
      return standby ? withinLag(`a ${s.role} standby`) : body(false, `this peer is not a standby (role ${s.role})`);
    case 'sync':
    case 'async':
      return standby && s.role === check ? withinLag(check === 'sync' ? 'the sync standby' : 'an async standby') : body(false, `this peer is not ${check === 'sync' ? 'the sync' : 'an async'} (role ${s.role})`);
    case 'read-only':
      if (s.role === 'primary') return body(true, 'the primary (serves reads)');
      return standby ? withinLag(`a ${s.role} standby`) : body(false, `this peer serves no reads (role ${s.role})`);
    case 'health':
      return body(true, 'PostgreSQL is up');
  }
}

const CHECKS: readonly HealthCheck[] = ['primary', 'read-write', 'replica', 'sync', 'async', 'read-only', 'health'];

export function healthRoutes(deps: ApiDeps): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    for (const check of CHECKS) {
      app.get<{ Querystring: { lag?: string } }>(`/${check}`, {
        schema: {
          querystring: healthQuerySchema,
          // 503 is this check's answer, or the error body when the status itself cannot be had.
          response: { 200: healthBodySchema, 503: { anyOf: [healthBodySchema, errorBodySchema] }, '4xx': errorBodySchema, '5xx': errorBodySchema },
        },
      }, async (req, reply: FastifyReply) => {
        const lag = req.query.lag === undefined ? null : parseLag(req.query.lag);
        const body = evaluateHealth(await deps.status(), check, lag);
        return reply.code(body.ok ? 200 : 503).send(body);
      });
    }
  };
}
