// Every decision of the sitter, said once (Patroni-style: one structured line with the reason),
// counted in the metrics, and kept as the last decision that GET /status shows. The rules'
// evaluation is one source; the session, the Raft leader's placement and stalled streams are the
// others (src/peer/rules: session.ts, leader-placement.ts, stream-watch.ts).
import type { Logger } from '../log.js';
import type { DecisionRecord } from '../model/index.js';
import { decisionLogFields, decisionRecord, type Decision } from './rules/index.js';

export interface DecisionCounter {
  recordDecision(kind: string): void;
}

/** A decision made beside the rules' evaluation. */
export interface SideDecision {
  readonly kind: string;
  readonly reason: string;
  readonly generation: number | null;
  /** The `decision` field of the log line (kept as it was before these became rule outputs). */
  readonly logDecision: string;
  readonly level: 'info' | 'warn' | 'error';
  readonly message: string;
  readonly fields?: Readonly<Record<string, unknown>>;
}

/**
 * How long a decision of the other rules stays GET /status's last decision while the rules'
 * evaluation repeats its own: then the evaluation's (the peer's steady state) shows again.
 */
export const SIDE_DECISION_SHOWN_MS = 10_000;

export class DecisionLog {
  private lastDecision: Decision | null = null;
  private lastRecord: DecisionRecord | null = null;
  /** The rules' last record, and when the last decision of the other rules was made (null: none shown). */
  private rulesRecord: DecisionRecord | null = null;
  private sideAtMs: number | null = null;

  constructor(private readonly o: { readonly log: Logger; readonly metrics: DecisionCounter }) {}

  /** The rules' last decision (its role says whether PostgreSQL should run). */
  get last(): Decision | null {
    return this.lastDecision;
  }

  /** The last decision of any source, for GET /status. */
  get record(): DecisionRecord | null {
    return this.lastRecord;
  }

  /** One log line per distinct decision of the rules (the loop re-evaluates every second; repeats are not news). */
  rules(d: Decision, nowMs: number): void {
    const prev = this.lastDecision;
    this.lastDecision = d;
    this.o.metrics.recordDecision(d.kind);
    if (prev?.kind === d.kind && prev.reason === d.reason && prev.generation === d.generation) {
      if (this.sideAtMs !== null && nowMs - this.sideAtMs >= SIDE_DECISION_SHOWN_MS) {
        this.lastRecord = this.rulesRecord;
        this.sideAtMs = null;
      }
      return;
    }
    this.rulesRecord = decisionRecord(d, nowMs);
    this.lastRecord = this.rulesRecord;
    this.sideAtMs = null;
    this.o.log.info(decisionLogFields(d), d.reason);
  }

  side(d: SideDecision, nowMs: number): void {
    this.o.metrics.recordDecision(d.kind);
    this.lastRecord = { kind: d.kind, reason: d.reason, generation: d.generation, at: new Date(nowMs).toISOString() };
    this.sideAtMs = nowMs;
    this.o.log[d.level]({ decision: d.logDecision, reason: d.reason, ...d.fields }, d.message);
  }
}
