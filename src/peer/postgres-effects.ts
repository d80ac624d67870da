// This peer's own PostgreSQL (the sitter's SitterPostgres) seen through the small interfaces that
// the sitter's jobs ask for: what the stream-stall watch probes (stream-stall.ts StandbyProbe) and
// what the role password job changes (pg-credentials.ts PgCredentialsTarget). The jobs know only
// the interfaces; the simulator gives them its model of PostgreSQL instead (test/sim).
import { readTimelineHistory, type WalPositions } from '../postgres/index.js';
import type { QueryFn } from '../postgres/replication.js';
import type { PgCredentialsTarget } from './pg-credentials.js';
import type { StandbyProbe } from './stream-stall.js';

/** A PostgreSQL that answers queries on its held connection. */
interface QueriedPostgres {
  readonly running: boolean;
  readonly query: QueryFn;
}

/** The stream-stall watch's probe: the WAL receiver's status and this standby's own WAL. */
export function standbyProbeOf(postgres: QueriedPostgres & { walPositions(): Promise<WalPositions> }): StandbyProbe {
  return {
    get running() { return postgres.running; },
    receiver: () => postgres.query<{ status: string | null; replay: string | null }>(
      'SELECT (SELECT status FROM pg_stat_wal_receiver) AS status, pg_last_wal_replay_lsn()::text AS replay',
    ).then((rows) => {
      const row = rows[0];
      return row === undefined ? null : { streaming: row.status === 'streaming', replayLsn: row.replay };
    }, () => null),
    ownWal: async () => {
      const p = await postgres.walPositions();
      if (!p.inRecovery) return { replayLsn: null, receiveLsn: null, history: null };
      // The history of the timeline it receives (or last checkpointed on): where it switched, not only its number.
      const history = p.timeline === null ? null : await readTimelineHistory(postgres.query, p.timeline).catch(() => null);
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
