// Glue between the rules and the sitter around them, kept pure: what the reconciler feeds the
// rules from its PostgreSQL status, and how it logs and reports each decision (one structured
// line per decision, Patroni-style, and the last decision for the status API).
import type { PeerId, DecisionRecord, PostgresStatus, TimelineHistory } from '../../model/index.js';
import type { Decision, RulesPgStatus } from './types.js';

/**
 * The rules' view of PostgreSQL from the sitter's health checks. On a standby the WAL position
 * that a new generation records is the last received one (everything received is replayed
 * before a promotion completes); on a primary it is pg_current_wal_lsn().
 */
export function rulesPgStatus(
  pg: PostgresStatus,
  data: {
    readonly hasPreviousData: boolean;
    readonly rebuiltFrom: { readonly primaryId: PeerId; readonly generation: number } | null;
    /** The timeline history of its WAL (the health checks keep it), null when unknown. */
    readonly history: TimelineHistory | null;
  },
): RulesPgStatus {
  const standby = pg.inRecovery === true;
  return {
    online: pg.online,
    replayLsn: pg.replayLsn,
    currentLsn: standby ? (pg.receiveLsn ?? pg.replayLsn) : pg.currentLsn,
    history: pg.online ? data.history : null,
    hasPreviousData: data.hasPreviousData,
    rebuiltFrom: data.rebuiltFrom,
  };
}

/** The fields of the one log line for a decision: `log.info(decisionLogFields(d), d.reason)`. */
export function decisionLogFields(d: Decision): Record<string, string | number | boolean | null> {
  return {
    decision: d.kind,
    reason: d.reason,
    generation: d.generation,
    position: d.position,
    role: d.role,
    upstream: d.upstream?.id ?? null,
    downstream: d.downstream?.id ?? null,
    needsRebuild: d.needsRebuild,
    write: d.write?.summary ?? null,
    expectVersion: d.write?.expectVersion ?? null,
  };
}

/** The decision as the status API shows it (SitterStatus.lastDecision). */
export function decisionRecord(d: Decision, nowMs: number): DecisionRecord {
  return { kind: d.kind, reason: d.reason, generation: d.generation, at: new Date(nowMs).toISOString() };
}
