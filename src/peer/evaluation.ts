// One evaluation of Manatee's rules on the committed state, and acting on its decision:
//   - a decision with a state write is written (compare-and-set) and nothing else is done:
//     the role it gives this peer is applied once the write has committed and is seen;
//   - otherwise the reconciler makes PostgreSQL match the decision's role.
// Around it: the session first (sessions.ts), the Raft leader's placement (leader-placement.ts),
// the fence before a generation change (fencing.ts), and stalled standbys (stream-stall.ts).
import type { Logger } from '../log.js';
import { ManateeError, errorMessage, hasCode } from '../errors.js';
import type { PeerInfo, PostgresStatus } from '../model/index.js';
import type { ClusterStore } from '../store/index.js';
import type { Clock } from './clock.js';
import type { DecisionLog } from './decision-log.js';
import type { FactsKeeper } from './facts.js';
import { fenceAndDecideAgain, FENCED_KINDS, resolveUnknownWrite, writeFailure, type FencePostgres, type TimelineHistorySource, type UnresolvedWrite } from './fencing.js';
import type { LeaderPlacement } from './leader-placement.js';
import { INITDB_REFUSED, type Reconciler } from './reconciler.js';
import { RepeatFilter } from './repeat-log.js';
import { decide, rulesPgStatus, type RulesInput } from './rules/index.js';
import type { SessionKeeper } from './sessions.js';
import type { StreamStallWatch } from './stream-stall.js';

/** A reconcile action repeated every evaluation is logged at info again this often (see logReconcile). */
const RECONCILE_REPEAT_INFO_MS = 60_000;

/** What an evaluation reads from and writes to the cluster store. */
export type EvaluationStore = Pick<ClusterStore, 'readState' | 'getState' | 'activePeers' | 'activeTags' | 'putState'>;

export interface EvaluationOptions {
  readonly self: PeerInfo;
  readonly config: { readonly oneNodeWriteMode: boolean; readonly autoRebuild: boolean };
  readonly store: EvaluationStore;
  /** This peer's PostgreSQL as the last health check saw it. */
  readonly pgStatus: () => PostgresStatus;
  readonly postgres: FencePostgres;
  /** The timeline history of its WAL (kept by the health checks, read again at the fence). */
  readonly history: TimelineHistorySource;
  /** The data directory held a database when the sitter opened. */
  readonly hasPreviousData: boolean;
  readonly facts: FactsKeeper;
  readonly reconciler: Reconciler;
  readonly sessions: SessionKeeper;
  readonly leader: LeaderPlacement;
  readonly streams: StreamStallWatch;
  readonly decisions: DecisionLog;
  readonly clock: Clock;
  readonly log: Logger;
  /** Evaluate again now (a write committed) or soon (a race lost, a step to retry). */
  readonly kick: () => void;
  readonly kickSoon: () => void;
  /** The primary's lease fence (lease-fence.ts): while it holds, a primary's PostgreSQL stays stopped. */
  readonly lease?: { holdsPrimary(role: string): boolean };
  /** Told once when the store has caught up with the shard (the shard settings may apply then). */
  readonly onCaughtUp?: () => void;
}

export class Evaluation {
  /** False until one linearizable read succeeded since start-up (see evaluate). */
  private caughtUp = false;
  /** A reconcile action repeated every evaluation is logged at info once, then once a minute. */
  private readonly reconcileRepeats = new RepeatFilter(RECONCILE_REPEAT_INFO_MS);
  /**
   * A fenced write (a takeover, a new sync...) whose proposal failed without a definite answer:
   * it may still commit, so the fence holds and nothing else is done until it is settled
   * (fencing.ts resolveUnknownWrite).
   */
  private unresolved: UnresolvedWrite | null = null;
  /** The last "still unsettled" said of it: said again only when it changes (no leader for a minute is one line). */
  private unresolvedMessage: string | null = null;

  constructor(private readonly o: EvaluationOptions) {
    // Restarted while a fenced write had no answer: the fence holds, exactly as before the restart.
    const u = o.facts.current.unsettledWrite ?? null;
    if (u !== null) {
      this.unresolved = u;
      const message = `restarted with the ${u.kind} write of generation ${u.write.newState.generation} unsettled (recorded in ${o.facts.where}): ` +
        'it may still commit, so the fence holds and nothing else is done until the store shows its outcome';
      o.decisions.side({
        kind: 'fencedWriteUnknown', reason: message, generation: u.write.newState.generation, logDecision: `${u.kind}-unknown-at-start`, level: 'warn', message,
        fields: { expectVersion: u.write.expectVersion },
      }, o.clock.nowMs());
    }
  }

  /** The store has applied everything the shard committed since start-up. */
  get storeCaughtUp(): boolean {
    return this.caughtUp;
  }

  /** The fenced write whose outcome is not known yet, or null. */
  get unresolvedWrite(): UnresolvedWrite | null {
    return this.unresolved;
  }

  async evaluate(): Promise<void> {
    const o = this.o;
    await o.sessions.keep();
    if (!this.caughtUp) await this.catchUp();
    if (this.unresolved !== null && !(await this.settleUnresolved())) return;
    const { state, version } = o.store.getState();
    const nowMs = o.clock.nowMs();
    const input: RulesInput = {
      state,
      version,
      active: o.store.activePeers(),
      tags: o.store.activeTags(),
      self: o.self,
      pg: rulesPgStatus(o.pgStatus(), { hasPreviousData: o.hasPreviousData, rebuiltFrom: o.facts.current.rebuiltFrom, history: o.history.current() }),
      nowMs,
      config: o.config,
    };
    o.leader.check(state, input.active, nowMs);
    let d = decide(input);
    o.decisions.rules(d, nowMs);
    let fenced = false;
    if (d.write !== null && FENCED_KINDS.has(d.kind)) {
      const again = await fenceAndDecideAgain({
        postgres: o.postgres,
        history: o.history,
        fresh: () => ({ ...o.store.getState(), active: o.store.activePeers(), tags: o.store.activeTags() }),
        invalidate: () => { o.reconciler.invalidate(); },
        retrySoon: o.kickSoon,
        decisions: o.decisions,
        log: o.log,
      }, d, input);
      if (again === null) return;
      d = again;
      fenced = true;
    }
    if (d.write !== null) {
      try {
        await o.store.putState(d.write.newState, d.write.expectVersion, d.write.summary);
        o.log.info({ decision: `${d.kind}-committed`, generation: d.write.newState.generation, summary: d.write.summary }, `wrote: ${d.write.summary}`);
      } catch (err) {
        if (fenced && writeFailure(err) === 'unknown') {
          // It may still commit: the fence holds until the write is settled (see `unresolved`),
          // and across a restart (the facts file, fsynced before the next step).
          const u = { kind: d.kind, write: d.write };
          this.unresolved = u;
          this.unresolvedMessage = null;
          const message = `the ${d.kind} write of generation ${d.write.newState.generation} has no answer (${errorMessage(err)}); it may still commit, so the fence holds until the store shows its outcome`;
          o.decisions.side({
            kind: 'fencedWriteUnknown', reason: message, generation: d.write.newState.generation, logDecision: `${d.kind}-unknown`, level: 'warn', message,
            fields: { expectVersion: d.write.expectVersion },
          }, nowMs);
          o.kickSoon();
          await o.facts.update({ unsettledWrite: u });
          throw err;
        }
        // Not committed: the next reconcile renders this peer's configuration again, which lifts
        // the fence if the role did not change after all.
        if (fenced) o.reconciler.invalidate();
        if (hasCode(err, 'MANATEE_ERR_STORE_VERSION_MISMATCH')) {
          o.log.info({ decision: `${d.kind}-lost-race`, reason: errorMessage(err) }, 'the state changed meanwhile; evaluating again');
          o.kickSoon();
          return;
        }
        throw err;
      }
      o.kick();
      return;
    }
    if (d.kind === 'noSession' && state === null) {
      // Start-up: the store has not caught up with the shard yet, so the state is unknown rather
      // than empty. The rules make no change; neither does PostgreSQL: a postmaster left running by
      // the previous sitter (a sitter restart) keeps serving and is adopted once the role is known,
      // instead of being stopped as if this peer were unassigned.
      return;
    }
    if (o.lease?.holdsPrimary(d.role) === true) return; // fenced: PostgreSQL stays stopped until the lease is renewed
    const rebuiltFrom = o.facts.current.rebuiltFrom;
    if (d.role === 'primary' && rebuiltFrom !== null) {
      // A rebuild made before this peer serves as primary says nothing about its data afterwards: as
      // primary it writes WAL that a later primary may never have had. Forget it before PostgreSQL is
      // promoted, so that a deposition means a new rebuild, not a rejoin with diverged WAL (found by the
      // chaos harness: a deposed primary left `deposed` on its bootstrap's fact and stalled as sync).
      o.log.info({ decision: 'forget-rebuild', rebuiltFrom }, 'serving as primary: the last rebuild no longer vouches for this data');
      await o.facts.update({ rebuiltFrom: null });
    }
    let outcome;
    try {
      outcome = await o.reconciler.reconcile(d);
    } catch (err) {
      if (hasCode(err, INITDB_REFUSED)) await o.sessions.closeForLostData();
      throw err;
    }
    this.logReconcile(outcome.action, d.role, d.generation, nowMs);
    if (outcome.retrySoon) o.kickSoon();
    await o.streams.check(d, nowMs);
  }

  /**
   * Settles the fenced write whose outcome is unknown, or proposes it again (fencing.ts
   * resolveUnknownWrite). True when it is settled: the fence gives way to the role in the state
   * as it is now (the next reconcile renders it again).
   */
  private async settleUnresolved(): Promise<boolean> {
    const o = this.o;
    const u = this.unresolved;
    if (u === null) return true;
    const r = await resolveUnknownWrite(o.store, u);
    const generation = u.write.newState.generation;
    if (r.resolution === 'unknown') {
      if (r.message !== this.unresolvedMessage) {
        o.decisions.side({ kind: 'fencedWriteUnknown', reason: r.message, generation, logDecision: `${u.kind}-still-unknown`, level: 'warn', message: r.message }, o.clock.nowMs());
      }
      this.unresolvedMessage = r.message;
      o.kickSoon();
      return false;
    }
    this.unresolved = null;
    this.unresolvedMessage = null;
    // Cleared once settled (a crash before this only settles it again at start, by the version).
    await o.facts.update({ unsettledWrite: null });
    o.decisions.side({ kind: 'fencedWriteSettled', reason: r.message, generation, logDecision: `${u.kind}-${r.resolution}`, level: 'info', message: r.message,
      fields: { expectVersion: u.write.expectVersion, version: o.store.getState().version } }, o.clock.nowMs());
    o.reconciler.invalidate();
    return true;
  }

  /**
   * After a restart the store holds the state replayed from the local log, possibly many
   * generations old, with sessions that look alive. Acting on it once made a restarted former
   * primary start as a writable primary of a stale generation, diverge, and stall the shard as
   * its sync (chaos harness, restart-all). One linearizable read first brings the applied state up
   * to everything the shard has committed.
   */
  private async catchUp(): Promise<void> {
    try {
      await this.o.store.readState();
    } catch (err) {
      this.o.kickSoon();
      throw new ManateeError('MANATEE_ERR_STORE_BEHIND', `the store has not caught up with the shard yet: ${errorMessage(err)}`, { cause: err });
    }
    this.caughtUp = true;
    this.o.onCaughtUp?.();
    this.o.log.info({ decision: 'store-caught-up' }, 'the store has applied everything the shard committed; acting on its state from now on');
  }

  private logReconcile(action: string, role: string, generation: number | null, nowMs: number): void {
    const v = this.reconcileRepeats.next(action === 'none' ? null : action, nowMs);
    if (v === null) return;
    const fields = { decision: 'reconcile', role, action, generation };
    if (v.level === 'debug') this.o.log.debug(fields, action);
    else if (v.repeated === 0) this.o.log.info(fields, action);
    else this.o.log.info({ ...fields, repeated: v.repeated }, `${action} (repeated ${v.repeated} times since ${new Date(v.sinceMs).toISOString()})`);
  }
}
