// Health checks for load balancers, in Patroni's convention: each route answers 200 when this
// peer serves that role now, and 503 otherwise, with the same JSON body either way (HAProxy looks
// at the status; a person looks at the body). GET, HEAD and OPTIONS all work and answer the same
// status (HAProxy's httpchk sends any of them; fastify adds HEAD to every GET route). OPTIONS / is
// the primary check, as in Patroni, for HAProxy's bare `option httpchk`; GET / is the status page.
//
//   /primary, /read-write   the writable primary
//   /replica                a streaming standby (sync or async), optionally ?lag=<bytes|duration>
//   /sync, /async           that standby role (also with ?lag=)
//   /read-only              the primary, or a standby (within ?lag=)
//   /read-only-sync         the primary, or the sync standby (within ?lag=)
//   /health                 PostgreSQL is up, whatever the role
//   /readiness              Kubernetes' readinessProbe: the primary, or a standby whose WAL
//                           receiver streams and that is within ?lag= (default 1MB, Patroni's
//                           maximum_lag_on_failover), measured from its replayed WAL
//                           (?mode=apply, the default) or its received WAL (?mode=write)
//   /liveness               Kubernetes' livenessProbe: the sitter's evaluation loop runs,
//                           whatever PostgreSQL does (no SQL)
//
// ?replication_state=streaming on the standby checks (Patroni's) also asks that the standby's WAL
// receiver be in that state (pg_stat_wal_receiver.status; `stopped` when none runs), so that a
// standby that lost its upstream is left out even while its lag still looks small.
//
// ?lag= in bytes, as Patroni: the primary's current WAL position minus this standby's replayed
// position, so that a standby whose WAL receiver stalled or disconnected shows how far behind it
// is (its own received-minus-replayed backlog would be 0). The primary's position is asked from
// the primary's sitter (src/api/primary-position.ts); when it cannot be asked, the last value read
// is used, with its age in the body, for at most PRIMARY_POSITION_MAX_AGE_MS; older, or never
// read, the lag is unknown. Units are
// PostgreSQL's (and Patroni's): kB, MB, GB, TB are 1024-based; KiB, MiB... are accepted too.
// ?lag= as a duration (500ms, 5s, 2min, our extension) compares the heartbeat lag (src/peer/
// heartbeat.ts). A limit on an unknown lag fails: a load balancer must not send reads to a standby
// of unknown freshness. Without ?lag=, the standby checks pass whatever the lag, as Patroni's do.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { SitterStatus } from '../../model/index.js';
import { ApiError } from '../errors.js';
import { PrimaryPositionCache, type PrimaryPosition } from '../primary-position.js';
import { fetchPeerStatusHttp, lsnDiffBytes } from '../shard.js';
import { emptyQuerySchema, errorBodySchema, healthBodySchema, healthQuerySchema, readinessQuerySchema, REPLICATION_STATES } from '../schemas.js';
import type { ApiDeps, ApiLimits } from '../types.js';

export type HealthCheck = 'primary' | 'read-write' | 'replica' | 'sync' | 'async' | 'read-only' | 'read-only-sync' | 'health' | 'readiness' | 'liveness';

export type ReplicationState = (typeof REPLICATION_STATES)[number];

/** /readiness: which WAL position of a standby its lag is measured from (Patroni's mode). */
export type ReadinessMode = 'apply' | 'write';

/** /readiness's lag limit when none is given: Patroni's maximum_lag_on_failover default. */
export const READINESS_DEFAULT_LAG: LagLimit = { kind: 'bytes', bytes: 1024 * 1024 };

/**
 * /liveness: an idle loop must have ended an evaluation this recently (it runs every second). A
 * running evaluation may go `loop.stuckAfterMs` without progress (the sitter derives it from its
 * PostgreSQL start and stop timeouts); a restore's progress counts, so a rebuild of any length is
 * alive while it copies, and the start that follows it is measured from the copy's end.
 */
export const LIVENESS_MAX_IDLE_MS = 10_000;

export type LagLimit = { readonly kind: 'bytes'; readonly bytes: number } | { readonly kind: 'seconds'; readonly seconds: number };

/** PostgreSQL's memory units (1024-based, as Patroni reads ?lag=), and the IEC spellings. */
const BYTE_UNITS: Readonly<Record<string, number>> = {
  b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
};
const SECOND_UNITS: Readonly<Record<string, number>> = { ms: 0.001, s: 1, m: 60, min: 60, h: 3600 };

/** "1048576" (bytes), "1024kB", "10MB", "16MiB", "500ms", "5s", "2min" → a lag limit. Throws ApiError 400 otherwise. */
export function parseLag(text: string): LagLimit {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$/.exec(text.trim());
  const value = m === null ? NaN : Number(m[1]);
  const unit = (m?.[2] ?? '').toLowerCase();
  if (Number.isFinite(value)) {
    if (unit === '' || BYTE_UNITS[unit] !== undefined) return { kind: 'bytes', bytes: Math.round(value * (BYTE_UNITS[unit] ?? 1)) };
    const s = SECOND_UNITS[unit];
    if (s !== undefined) return { kind: 'seconds', seconds: value * s };
  }
  throw new ApiError('MANATEE_ERR_BAD_REQUEST', `querystring.lag: expected bytes (1048576, 1024kB, 10MB, 16MiB) or a duration (500ms, 5s, 2min), got ${JSON.stringify(text.slice(0, 32))}`);
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
  /** A standby's WAL receiver status (`stopped`: none runs); null on a primary or when PostgreSQL is down. */
  readonly replicationState: string | null;
  /**
   * The primary's WAL position minus this standby's replayed one (Patroni's lag), or its received
   * one for /readiness?mode=write; 0 on the primary.
   * Null when unknown, also when the primary's position is older than PRIMARY_POSITION_MAX_AGE_MS.
   */
  readonly lagBytes: number | null;
  readonly lagSeconds: number | null;
  /** The primary's WAL position that lagBytes was measured from (this peer's own on the primary). */
  readonly primaryLsn: string | null;
  /** How long ago primaryLsn was read from the primary (0 on the primary itself). */
  readonly primaryLsnAgeMs: number | null;
}

function article(role: string): string {
  return /^[aeiou]/.test(role) ? 'an' : 'a';
}

function describeAge(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * How old the primary's WAL position may be and still measure a standby's lag in bytes. A
 * reachable primary's position is at most about PRIMARY_POSITION_FRESH_MS plus one ask's deadline
 * old (1.5 s); a few times that lets one or two failed asks (a dropped packet, a busy sitter) pass
 * without flapping the check. Beyond it the position counts as unknown: a standby cut off from the
 * primary (its WAL receiver stopped, and the primary's sitter unreachable) would otherwise keep a
 * lag of about 0, measured from the position of the moment it was cut off, and pass `?lag=1MB`
 * forever while its data grows old.
 */
export const PRIMARY_POSITION_MAX_AGE_MS = 5000;

export interface HealthOptions {
  /** A position of the primary older than this counts as unknown (PRIMARY_POSITION_MAX_AGE_MS). */
  readonly maxPrimaryAgeMs?: number;
  /** ?replication_state= on the standby checks. */
  readonly replicationState?: ReplicationState | null;
  /** /readiness: measure a standby's lag from its replayed (apply) or received (write) WAL. */
  readonly mode?: ReadinessMode;
  /** The clock, for /liveness. */
  readonly nowMs?: number;
}

/**
 * The later of two WAL positions (null when both are unknown). After its WAL receiver restarts, a
 * standby's received position can be behind what it already replayed.
 */
function laterLsn(a: string | null, b: string | null): string | null {
  if (a === null || b === null) return a ?? b;
  return (lsnDiffBytes(a, b) ?? 0) > 0 ? a : b;
}

/** /liveness on a status: whether the sitter's evaluation loop still turns. */
function loopAlive(s: SitterStatus, nowMs: number): { ok: boolean; reason: string } {
  const since = s.loop.evaluatingSince === null ? null : Date.parse(s.loop.evaluatingSince);
  if (since !== null) {
    const runningMs = Math.max(0, nowMs - since);
    const progress = s.loop.lastProgressAt === null ? since : Math.max(since, Date.parse(s.loop.lastProgressAt));
    const quietMs = Math.max(0, nowMs - progress);
    const copying = s.rebuild.running ? `, copying data (${s.rebuild.reason ?? 'rebuild'} from ${s.rebuild.source ?? '?'})` : '';
    const what = `an evaluation has run for ${describeAge(runningMs)}${copying}, its last progress ${describeAge(quietMs)} ago`;
    return quietMs <= s.loop.stuckAfterMs
      ? { ok: true, reason: `the sitter's loop is alive: ${what}` }
      : { ok: false, reason: `the sitter's loop looks stuck: ${what}, more than ${describeAge(s.loop.stuckAfterMs)}` };
  }
  const last = s.loop.lastEvaluatedAt === null ? null : Date.parse(s.loop.lastEvaluatedAt);
  if (last === null) {
    const upMs = Math.max(0, nowMs - Date.parse(s.startedAt));
    return upMs <= LIVENESS_MAX_IDLE_MS
      ? { ok: true, reason: `the sitter started ${describeAge(upMs)} ago and has not ended an evaluation yet` }
      : { ok: false, reason: `the sitter's loop looks stuck: no evaluation has run in the ${describeAge(upMs)} since it started` };
  }
  const idleMs = Math.max(0, nowMs - last);
  return idleMs <= LIVENESS_MAX_IDLE_MS
    ? { ok: true, reason: `the sitter's loop is alive: its last evaluation ended ${describeAge(idleMs)} ago` }
    : { ok: false, reason: `the sitter's loop looks stuck: its last evaluation ended ${describeAge(idleMs)} ago, more than ${describeAge(LIVENESS_MAX_IDLE_MS)}` };
}

/**
 * The answer of one health check on a status: pure, so that every rule is tested without a
 * server. `primary`: what is known of the primary's WAL position (null: nothing); a position older
 * than `opts.maxPrimaryAgeMs` counts as unknown.
 */
export function evaluateHealth(
  s: SitterStatus, check: HealthCheck, lag: LagLimit | null, primary: PrimaryPosition | null = null, opts: HealthOptions = {},
): HealthBody {
  const maxPrimaryAgeMs = opts.maxPrimaryAgeMs ?? PRIMARY_POSITION_MAX_AGE_MS;
  const pg = s.postgres;
  const up = pg.online && pg.healthy;
  const standby = (s.role === 'sync' || s.role === 'async') && pg.inRecovery === true;
  const isPrimary = s.role === 'primary';
  const replicationState = up && pg.inRecovery === true ? (pg.walReceiver ?? 'stopped') : null;
  // /readiness?mode=write measures from the received WAL (a standby may not have replayed it yet).
  const ownLsn = check === 'readiness' && opts.mode === 'write' ? laterLsn(pg.receiveLsn, pg.replayLsn) : pg.replayLsn;
  const primaryLsn = isPrimary ? pg.currentLsn : (primary?.lsn ?? null);
  const primaryLsnAgeMs = isPrimary ? (pg.currentLsn === null ? null : 0) : primary?.lsn == null ? null : primary.ageMs;
  // The primary's position is still shown (primaryLsn, its age), but too old to measure from.
  const tooOld = !isPrimary && primaryLsn !== null && primaryLsnAgeMs !== null && primaryLsnAgeMs > maxPrimaryAgeMs;
  const lagBytes = isPrimary ? 0 : tooOld ? null : lsnDiffBytes(primaryLsn, ownLsn);
  const lagSeconds = s.heartbeat?.lagSeconds ?? null;
  // Patroni's noloadbalance: the reader checks (/replica, /read-only) leave this standby out.
  const noLoadBalance = s.tags?.noloadbalance === true;
  const body = (ok: boolean, reason: string): HealthBody => ({
    peerId: s.peer.id, role: s.role, check, ok, reason, pgOnline: pg.online, pgHealthy: pg.healthy, writable: pg.writable,
    inRecovery: pg.inRecovery, generation: s.state?.generation ?? null, replicationState, lagBytes, lagSeconds, primaryLsn, primaryLsnAgeMs,
  });
  if (check === 'liveness') {
    const alive = loopAlive(s, opts.nowMs ?? Date.now());
    return body(alive.ok, alive.reason);
  }
  // A primary that could not renew its lease has fenced itself (src/peer/lease-fence.ts): it
  // serves nothing from that moment, even before its PostgreSQL has finished stopping.
  if (isPrimary && s.lease?.fenced === true && check !== 'health') return body(false, `the primary, but fenced: ${s.lease.reason}`);
  // Nor does a primary whose lease was never renewed since its sitter started (a sitter restarted
  // while its PostgreSQL ran as the primary, cut off before its session's open committed): it has
  // no lease to fence by, and the shard may have replaced it meanwhile.
  if (isPrimary && s.lease !== undefined && s.lease.validForMs === null && check !== 'health') return body(false, `the primary, but without a lease: ${s.lease.reason}`);
  if (!up) return body(false, `PostgreSQL is not serving: ${pg.error ?? 'down'}`);
  const withinLag = (what: string): HealthBody => {
    const wanted = opts.replicationState ?? null;
    if (wanted !== null && replicationState !== wanted) {
      return body(false, `${what}, but its replication state is ${replicationState ?? 'unknown'}, not ${wanted}`);
    }
    if (lag === null) return body(true, what);
    if (lag.kind === 'bytes') {
      if (lagBytes === null) {
        const why = ownLsn === null
          ? `its ${check === 'readiness' && opts.mode === 'write' ? 'received' : 'replayed'} WAL position is unknown`
          : tooOld && primary !== null
            ? `the primary's WAL position is ${describeAge(primaryLsnAgeMs)} old, older than the limit of ${describeAge(maxPrimaryAgeMs)} (${primary.primaryId}: ${primary.error ?? 'not asked again yet'})`
            : `the primary's WAL position is unknown (${primary === null ? 'no primary in the state' : `${primary.primaryId}: ${primary.error ?? 'never read'}`})`;
        return body(false, `${what}, but its lag in bytes is unknown: ${why}`);
      }
      // A position read from the primary before its latest failed ask: say how old it is.
      const stale = primary?.error != null && primaryLsnAgeMs !== null ? `, measured from the primary's position of ${describeAge(primaryLsnAgeMs)} ago (${primary.error})` : '';
      return lagBytes <= lag.bytes
        ? body(true, `${what}, ${lagBytes} bytes behind the primary (limit ${lag.bytes})${stale}`)
        : body(false, `${what}, but ${lagBytes} bytes behind the primary (limit ${lag.bytes})${stale}`);
    }
    if (lagSeconds === null) return body(false, `${what}, but its lag in seconds is unknown (no heartbeat read yet)`);
    return lagSeconds <= lag.seconds ? body(true, `${what}, ${lagSeconds} s behind (limit ${lag.seconds} s)`) : body(false, `${what}, but ${lagSeconds} s behind (limit ${lag.seconds} s)`);
  };
  switch (check) {
    case 'primary':
    case 'read-write':
      if (!isPrimary) return body(false, `this peer is ${article(s.role)} ${s.role}, not the primary`);
      return pg.writable ? body(true, 'the writable primary') : body(false, 'the primary, but read-only (waiting for its sync)');
    case 'replica':
      if (standby && noLoadBalance) return body(false, `${article(s.role)} ${s.role} standby, but tagged noloadbalance: it takes no readers from load balancers`);
      return standby ? withinLag(`${article(s.role)} ${s.role} standby`) : body(false, `this peer is not a standby (role ${s.role})`);
    case 'sync':
    case 'async':
      return standby && s.role === check ? withinLag(check === 'sync' ? 'the sync standby' : 'an async standby') : body(false, `this peer is not ${check === 'sync' ? 'the sync' : 'an async'} (role ${s.role})`);
    case 'read-only':
      // Patroni: 200 on the primary whatever ?lag= says (it is never behind itself).
      if (isPrimary) return body(true, 'the primary (serves reads)');
      if (standby && noLoadBalance) return body(false, `${article(s.role)} ${s.role} standby, but tagged noloadbalance: it takes no readers from load balancers`);
      return standby ? withinLag(`${article(s.role)} ${s.role} standby`) : body(false, `this peer serves no reads (role ${s.role})`);
    case 'read-only-sync':
      if (isPrimary) return body(true, 'the primary (serves reads)');
      return standby && s.role === 'sync' ? withinLag('the sync standby') : body(false, `this peer is neither the primary nor the sync (role ${s.role})`);
    case 'health':
      return body(true, 'PostgreSQL is up');
    case 'readiness':
      if (isPrimary) return body(true, pg.writable ? 'the writable primary' : 'the primary (read-only until its sync catches up)');
      if (!standby) return body(false, `this peer is neither the primary nor a standby (role ${s.role})`);
      if (replicationState !== 'streaming') return body(false, `${article(s.role)} ${s.role} standby, but not streaming (its WAL receiver is ${replicationState ?? 'unknown'})`);
      return withinLag(`${article(s.role)} ${s.role} standby, streaming`);
  }
}

/** The checks that answer on every peer (GET/HEAD/OPTIONS /<check>). */
const CHECKS: readonly HealthCheck[] = ['primary', 'read-write', 'replica', 'sync', 'async', 'read-only', 'read-only-sync', 'health', 'readiness', 'liveness'];

/** Checks whose answer on a standby depends on how far behind it is. */
const LAG_CHECKS: ReadonlySet<HealthCheck> = new Set(['replica', 'sync', 'async', 'read-only', 'read-only-sync', 'readiness']);

interface HealthQuery { lag?: string; replication_state?: ReplicationState; mode?: ReadinessMode }

/** Deadline of one ask of the primary's position: below HAProxy's usual check timeouts (1-2 s). */
export const PRIMARY_POSITION_TIMEOUT_MS_MAX = 500;
/** The primary is asked at most this often by one peer's health checks. */
export const PRIMARY_POSITION_FRESH_MS = 1000;

export function healthRoutes(deps: ApiDeps, limits: Pick<ApiLimits, 'peerStatusTimeoutMs'>): FastifyPluginAsync {
  const positions = new PrimaryPositionCache({
    fetchStatus: deps.fetchPeerStatus ?? ((apiUrl: string, timeoutMs: number) => fetchPeerStatusHttp(apiUrl, timeoutMs)),
    timeoutMs: Math.min(limits.peerStatusTimeoutMs, PRIMARY_POSITION_TIMEOUT_MS_MAX),
    freshMs: PRIMARY_POSITION_FRESH_MS,
  });

  const answer = async (check: HealthCheck, req: FastifyRequest<{ Querystring: HealthQuery }>, reply: FastifyReply): Promise<FastifyReply> => {
    const given = req.query.lag === undefined ? null : parseLag(req.query.lag);
    const lag = check === 'readiness' ? (given ?? READINESS_DEFAULT_LAG) : given;
    const s = await deps.status();
    const primary = s.state?.primary ?? null;
    // Only a standby's lag needs the primary; only a byte limit waits for the answer.
    const position = primary !== null && s.role !== 'primary' && primary.id !== s.peer.id && LAG_CHECKS.has(check)
      ? await positions.get(primary, lag?.kind === 'bytes')
      : null;
    const body = evaluateHealth(s, check, lag, position, { replicationState: req.query.replication_state ?? null, mode: req.query.mode ?? 'apply' });
    return reply.code(body.ok ? 200 : 503).send(body);
  };

  const querystringOf = (check: HealthCheck): object =>
    check === 'liveness' ? emptyQuerySchema : check === 'readiness' ? readinessQuerySchema : healthQuerySchema;
  const schemaOf = (check: HealthCheck): object => ({
    querystring: querystringOf(check),
    // 503 is this check's answer, or the error body when the status itself cannot be had.
    response: { 200: healthBodySchema, 503: { anyOf: [healthBodySchema, errorBodySchema] }, '4xx': errorBodySchema, '5xx': errorBodySchema },
  });

  // eslint-disable-next-line @typescript-eslint/require-await -- fastify plugins are async functions
  return async (app) => {
    for (const check of CHECKS) {
      app.route<{ Querystring: HealthQuery }>({ method: ['GET', 'OPTIONS'], url: `/${check}`, schema: schemaOf(check), handler: (req, reply) => answer(check, req, reply) });
    }
    // HAProxy's bare `option httpchk` sends OPTIONS /: Patroni's / is its primary check. GET / is
    // the status page here, so GET checks must name their path.
    app.route<{ Querystring: HealthQuery }>({ method: 'OPTIONS', url: '/', schema: schemaOf('primary'), handler: (req, reply) => answer('primary', req, reply) });
  };
}
