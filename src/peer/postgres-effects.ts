// This peer's own PostgreSQL (the sitter's SitterPostgres) seen through the small interfaces that
// the sitter's jobs ask for: what the stream-stall watch probes (stream-stall.ts StandbyProbe) and
// what the role password job changes (pg-credentials.ts PgCredentialsTarget). The jobs know only
// the interfaces; the simulator gives them its model of PostgreSQL instead (test/sim).
import { ManateeError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { readTimelineHistory } from '../postgres/index.js';
import { readWalPositions, type QueryFn } from '../postgres/replication.js';
import type { PgCredentialsTarget } from './pg-credentials.js';
import type { StandbyProbe } from './stream-stall.js';

/** A PostgreSQL that answers queries on its held connection. */
interface QueriedPostgres {
  readonly running: boolean;
  readonly query: QueryFn;
}

/** The evaluation's probe of this peer's PostgreSQL is not sent: it did not answer, and the health check has not seen it answer since. */
export const PG_ERR_UNRESPONSIVE = 'MANATEE_ERR_PG_UNRESPONSIVE';

/**
 * The stream-stall watch's probe: the WAL receiver's status and this standby's own WAL. It runs
 * within an evaluation, so each query is given up after `timeoutMs` (the health check's timeout,
 * not the server's 10 s): a hung PostgreSQL (a SIGSTOPped postmaster or backend) counts as
 * unresponsive then, and the probe is not sent again until the health check (`healthy`) sees it
 * answer: the watch sees no answer (streaming unknown, which starts no stall), and the rules decide
 * on the health check's verdict without the evaluation waiting on the server. One log line when
 * it stops answering, one when it answers again.
 */
export function standbyProbeOf(postgres: Pick<QueriedPostgres, 'running'> & {
  queryWithTimeout<R extends Record<string, unknown>>(sql: string, params: readonly unknown[] | undefined, timeoutMs: number): Promise<R[]>;
}, o: { readonly timeoutMs: number; readonly log: Logger; readonly healthy: () => boolean }): StandbyProbe {
  const query: QueryFn = (sql, params) => postgres.queryWithTimeout(sql, params, o.timeoutMs);
  /** Why it last did not answer; null while it answers. */
  let unresponsive: string | null = null;
  const skip = (): boolean => unresponsive !== null && !o.healthy();
  const answered = <T>(v: T): T => {
    if (unresponsive !== null) o.log.info({ decision: 'pg-responsive', probe: 'stream-stall', reason: `it answered again after: ${unresponsive}` }, 'this peer\'s PostgreSQL answers the evaluation\'s probe again');
    unresponsive = null;
    return v;
  };
  const failed = (err: unknown): void => {
    const reason = errorMessage(err);
    if (unresponsive === null) {
      o.log.warn({ decision: 'pg-unresponsive', probe: 'stream-stall', timeoutMs: o.timeoutMs, reason },
        `this peer's PostgreSQL did not answer the evaluation's probe (${reason}): its WAL receiver counts as unknown until the health check sees it answer, and the rules decide on the health check's verdict`);
    }
    unresponsive = reason;
  };
  return {
    get running() { return postgres.running; },
    receiver: () => (skip() ? Promise.resolve(null) : query<{ status: string | null; replay: string | null }>(
      'SELECT (SELECT status FROM pg_stat_wal_receiver) AS status, pg_last_wal_replay_lsn()::text AS replay',
    ).then((rows) => {
      const row = answered(rows)[0];
      return row === undefined ? null : { streaming: row.status === 'streaming', replayLsn: row.replay };
    }, (err: unknown) => {
      failed(err);
      return null;
    })),
    ownWal: async () => {
      if (skip()) throw new ManateeError(PG_ERR_UNRESPONSIVE, `PostgreSQL did not answer within ${o.timeoutMs} ms (${unresponsive ?? ''}), and the health check has not seen it answer since`);
      const p = await readWalPositions(query).then(answered, (err: unknown) => {
        failed(err);
        throw err;
      });
      if (!p.inRecovery) return { replayLsn: null, receiveLsn: null, history: null };
      // The history of the timeline it receives (or last checkpointed on): where it switched, not only its number.
      const history = p.timeline === null ? null : await readTimelineHistory(query, p.timeline).catch(() => null);
      return { replayLsn: p.replayLsn, receiveLsn: p.receiveLsn, history };
    },
  };
}

/** The role password job's target: the roles' verifiers and the password this standby streams with. */
export function pgCredentialsTargetOf(postgres: QueriedPostgres & Omit<PgCredentialsTarget, 'streaming'>): PgCredentialsTarget {
  return {
    get running() { return postgres.running; },
    superuser: postgres.superuser,
    replicationUser: postgres.replicationUser,
    get currentReplicationPassword() { return postgres.currentReplicationPassword; },
    roleVerifiers: (roles) => postgres.roleVerifiers(roles),
    setRoleVerifier: (role, verifier) => postgres.setRoleVerifier(role, verifier),
    setReplicationPassword: (password) => postgres.setReplicationPassword(password),
    streaming: async () => (await postgres.query<{ status: string | null }>('SELECT status FROM pg_stat_wal_receiver'))[0]?.status === 'streaming',
  };
}
