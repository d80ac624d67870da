// One sitter incarnation in the simulation: the sitter's own jobs from src/peer (Evaluation with
// the session keeper, leader placement, fencing, stream-stall watch and facts keeper), the real
// Reconciler and the real ClusterStore, on the simulated Raft, PostgreSQL, network and clock.
// What src/peer/sitter.ts wires from real processes (its timers, PostgresServer, the other peers'
// PostgreSQL) is wired here from the simulation.
// With a chaos bug's fix switched off (SitterFixes), the evaluation runs as this file's port of the
// loop as it was before the split (keepSession, catch-up read, decide, fence, write, forget the
// rebuild fact, reconcile, stream stalls), where each fix can be switched off; holdFenceUntilSettled
// is switched off on the real jobs (withoutUnknownWrites) unless another fix is off too.
import { hasCode, errorMessage, ManateeError } from '../../src/errors.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { DecisionLog } from '../../src/peer/decision-log.js';
import { Evaluation, type EvaluationStore } from '../../src/peer/evaluation.js';
import { resolveUnknownWrite, writeFailure, type UnresolvedWrite } from '../../src/peer/fencing.js';
import { FactsKeeper, NO_FACTS, type FactsStore, type LocalFacts } from '../../src/peer/facts.js';
import { LeaderPlacement, type RaftLeadership } from '../../src/peer/leader-placement.js';
import { LeaseClock, PrimaryLeaseFence } from '../../src/peer/lease-fence.js';
import { INITDB_REFUSED, Reconciler } from '../../src/peer/reconciler.js';
import { SessionKeeper } from '../../src/peer/sessions.js';
import { StreamStallWatch } from '../../src/peer/stream-stall.js';
import { decide, pgShouldRun, rulesPgStatus, type Decision, type DecisionKind, type RulesInput } from '../../src/peer/rules/index.js';
import { describeDivergence, StreamWatch, syncCannotTakeOver, syncDiverged } from '../../src/peer/rules/stream-watch.js';
import type { PostgresStatus, TimelineHistory } from '../../src/model/index.js';
import { LSN_ZERO, roleIn } from '../../src/model/index.js';
import { ClusterStore } from '../../src/store/store.js';
import type { PeerInfo } from '../../src/model/index.js';
import { SimBackend, SimPgHandle, SimSources, type SimNetwork, type SimPostgres } from './pg.js';
import type { SimConsensus, SimRaft } from './raft.js';
import type { World } from './world.js';

/** What a peer keeps on disk beside its PostgreSQL data (sitter-facts.json). */
export type { LocalFacts } from '../../src/peer/facts.js';

/**
 * The fixes of the two sitter bugs that the chaos harness found, switched off only to show that
 * the simulator finds each bug (test/sim/shard-sim.test.ts).
 */
export interface SitterFixes {
  /** 9415432: a restarted sitter acts only after one linearizable read (not on the state replayed from its own log). */
  readonly readBeforeActing: boolean;
  /** d68a9ea: serving as primary forgets the last rebuild's fact (a deposed primary must rebuild again). */
  readonly forgetRebuildAsPrimary: boolean;
  /**
   * 881ee1d: a deposed peer leaves `deposed` only on a rebuild made in the current generation. Off,
   * the rules see the fact as if made in the current generation whenever it names the current
   * primary: the rule as it was before (the primary's id alone).
   */
  readonly rebuildOfThisGeneration: boolean;
  /** e7ca34e: a stalled sync past initWal that diverged from its primary rebuilds (rules/stream-watch.ts syncDiverged). */
  readonly rebuildDivergedSync: boolean;
  /**
   * Divergence is judged on the timeline histories (where each timeline began), not the numbers.
   * Off: the rule as it was before (a sync diverged only when its timeline NUMBER is older than its
   * primary's), which stalls for good once two peers promoted to the same number on their own (seed 50019).
   */
  readonly timelineHistories: boolean;
  /**
   * A stalled sync past initWal on its primary's history rebuilds when the primary is read-only,
   * waiting for it (rules/stream-watch.ts SYNC_OF_READ_ONLY_PRIMARY). Off: it keeps its data, which
   * stalls for good once two peers promoted to the same timeline at the same position (seed 110731).
   */
  readonly rebuildSyncOfReadOnlyPrimary: boolean;
  /**
   * A sync takes over only when its timeline history holds initWal on the history recorded with it
   * (rules/init-wal.ts). Off: every history the rules see is the state's own, so that the LSN alone
   * decides, the rule as it was before (seed 136570 with --operator lost an acknowledged write).
   */
  readonly initWalOnHistory: boolean;
  /**
   * A fenced write without an answer (its proposal timed out) keeps the fence until the store shows
   * its outcome, proposing it again meanwhile (src/peer/fencing.ts resolveUnknownWrite). Off: the
   * fence lifts at once, as before (seed 19644 with --operator: the sync attached to the old primary
   * again, which acknowledged a write that the takeover, committed later, did not hold). Off with
   * the real jobs, a write without an answer is taken for one never proposed (withoutUnknownWrites):
   * the port alone, whose run draws its random numbers differently, no longer met seed 19644's bug.
   */
  readonly holdFenceUntilSettled: boolean;
  /**
   * The time the primary's lease fence holds PostgreSQL stopped does not count as unhealthy
   * (rules/session.ts pgShouldRun). Off: it counts, the rule as it was before: a loaded primary
   * closed its session, and then, with no keepalive to lift its fence, never restarted PostgreSQL
   * nor reopened its session (seed 23 with --load). Only with SitterParts.lease.
   */
  readonly fencedPrimaryRecovers: boolean;
}

export const ALL_FIXES: SitterFixes = { readBeforeActing: true, forgetRebuildAsPrimary: true, rebuildOfThisGeneration: true, rebuildDivergedSync: true, timelineHistories: true, rebuildSyncOfReadOnlyPrimary: true, initWalOnHistory: true, holdFenceUntilSettled: true, fencedPrimaryRecovers: true };

/** Fix names for the command line (npm run sim -- --without a,b). */
export const FIX_NAMES: readonly (keyof SitterFixes)[] = ['readBeforeActing', 'forgetRebuildAsPrimary', 'rebuildOfThisGeneration', 'rebuildDivergedSync', 'timelineHistories', 'rebuildSyncOfReadOnlyPrimary', 'initWalOnHistory', 'holdFenceUntilSettled', 'fencedPrimaryRecovers'];

export const SIM_TIMEOUTS = {
  sessionTimeoutMs: 1500,
  keepaliveIntervalMs: 300,
  pgHealthIntervalMs: 1000,
  pgUnhealthyTimeoutMs: 5000,
  evaluateIntervalMs: 1000,
  retrySoonMs: 200,
  leadershipMoveIntervalMs: 5000,
} as const;

const FENCED_KINDS: ReadonlySet<DecisionKind> = new Set<DecisionKind>(['takeover', 'promoteSync', 'replaceSync', 'promoteAsync', 'onwmUpgrade']);

const LOG: Logger = silentLogger();

export function peerInfo(id: string): PeerInfo {
  return { id, host: id, pgUrl: `postgres://${id}:5432/postgres`, apiUrl: `http://${id}:5433` };
}

export interface SitterParts {
  readonly world: World;
  readonly raft: SimRaft;
  readonly pg: SimPostgres;
  readonly pgs: ReadonlyMap<string, SimPostgres>;
  readonly net: SimNetwork;
  readonly disk: Map<string, LocalFacts>;
  /** Trace the real jobs' log lines (pino, without times). */
  readonly traceLog?: Logger;
  readonly fixes: SitterFixes;
  /**
   * The primary's lease fence (src/peer/lease-fence.ts) runs, on keepalives that the leader
   * acknowledges. Off by default: it draws random numbers, and seeds found before it keep their runs.
   */
  readonly lease?: boolean;
  /** This sitter's event loop is stalled (a loaded machine): it runs nothing, its PostgreSQL runs on. */
  readonly stalled?: (id: string) => boolean;
}

/**
 * The store as the sitter's evaluation saw it before the fix (SitterFixes.holdFenceUntilSettled
 * off, with the real jobs): a state write without an answer (a proposal timed out) reads as one
 * never proposed, so the fence lifts at once although the write may still commit, as before 820074c.
 */
function withoutUnknownWrites(store: ClusterStore): EvaluationStore {
  return {
    readState: () => store.readState(),
    getState: () => store.getState(),
    activePeers: () => store.activePeers(),
    activeTags: () => store.activeTags(),
    putState: async (state, expectVersion, summary) => {
      try {
        return await store.putState(state, expectVersion, summary);
      } catch (err) {
        if (writeFailure(err) !== 'unknown') throw err;
        throw new ManateeError('MANATEE_ERR_RAFT_NO_LEADER', `${errorMessage(err)} (taken for a write never proposed: --without holdFenceUntilSettled)`, { cause: err });
      }
    },
  };
}

/** How often the simulated primary checks its lease (the real one: LEASE_CHECK_INTERVAL_MS). */
const SIM_LEASE_CHECK_INTERVAL_MS = 50;

export class SimSitter {
  readonly self: PeerInfo;
  readonly store: ClusterStore;
  readonly consensus: SimConsensus;
  readonly handle: SimPgHandle;
  /** Other peers' PostgreSQL, as the real HeldSourcePostgres answers the sitter's jobs. */
  readonly sources: SimSources;
  readonly reconciler: Reconciler;
  alive = true;
  lastDecision: Decision | null = null;
  lastError: string | null = null;
  private readonly world: World;
  private readonly parts: SitterParts;
  private readonly hasPreviousData: boolean;
  private readonly streamWatch = new StreamWatch(10 * SIM_TIMEOUTS.sessionTimeoutMs);
  private monitor: PostgresStatus;
  /** The timeline history of its WAL as of the last health check (PgMonitor.history()). */
  private monitorHistory: TimelineHistory | null;
  private unhealthySinceMs: number | null = null;
  private sessionClosedForHealth = false;
  private storeCaughtUp = false;
  private evaluating = false;
  private dirty = false;
  private soon = false;
  private keepaliveInFlight = false;
  private checkInFlight = false;
  private lastLeadershipMoveMs = -1e9;
  /** The port's fenced write without an answer (see SitterFixes.holdFenceUntilSettled). */
  private unresolved: UnresolvedWrite | null = null;
  private readonly factsKeeper: FactsKeeper;
  /** The sitter's real evaluation and its jobs (src/peer), used when every fix is on; else this file's port. */
  private readonly evaluation: Evaluation | null;
  /** The lease fence holds PostgreSQL stopped (only with SitterParts.lease). */
  private leaseHolding: () => boolean = () => false;

  constructor(id: string, incarnation: number, parts: SitterParts) {
    this.parts = parts;
    this.world = parts.world;
    this.self = peerInfo(id);
    this.consensus = parts.raft.attach(id, incarnation);
    this.store = new ClusterStore({
      machine: parts.raft.machines.get(id)!,
      consensus: this.consensus,
      sessionTimeoutMs: SIM_TIMEOUTS.sessionTimeoutMs,
      keepaliveIntervalMs: SIM_TIMEOUTS.keepaliveIntervalMs,
      now: () => this.world.wallMs(),
      monoNowMs: () => this.world.nowMs,
      log: LOG,
    });
    this.handle = new SimPgHandle(parts.pg, parts.world, parts.pgs, parts.net, {
      timelineNumbersOnly: !parts.fixes.timelineHistories,
      ...(parts.stalled === undefined ? {} : { stalled: () => parts.stalled!(id) }),
    });
    this.sources = new SimSources(this.handle);
    const disk: FactsStore = {
      where: `${id}'s facts`,
      read: () => Promise.resolve(parts.disk.get(id) ?? NO_FACTS),
      write: (f) => {
        if (this.alive) parts.disk.set(id, f);
        return Promise.resolve();
      },
    };
    this.factsKeeper = new FactsKeeper(disk, parts.disk.get(id) ?? NO_FACTS);
    this.hasPreviousData = parts.pg.hasData;
    this.monitor = parts.pg.status();
    this.monitorHistory = this.monitor.online ? parts.pg.history : null;
    this.reconciler = new Reconciler({
      self: this.self,
      postgres: this.handle,
      backend: new SimBackend(this.handle, parts.world, parts.pgs, parts.net),
      log: LOG,
      now: () => this.world.wallMs(),
      prepareStorage: () => Promise.resolve(),
      onRebuilt: (from, generation) => {
        if (generation !== null) this.writeFacts({ ...this.facts(), rebuiltFrom: { primaryId: from.id, generation } });
        this.world.log(() => `${id} rebuilt from ${from.id} in generation ${generation ?? '-'}`);
        return Promise.resolve();
      },
      sourcePromoted: (source) => this.sources.promoted(source),
      sourceOnline: (source) => this.sources.online(source),
      mayInitdb: () => this.mayInitdb(),
      onInitdb: () => {
        this.writeFacts({ ...this.facts(), initdbDone: true });
        return Promise.resolve();
      },
      restoreBackoff: { initialMs: 500, maxMs: 5000 },
    });
    const f = parts.fixes;
    this.evaluation = f.readBeforeActing && f.forgetRebuildAsPrimary && f.rebuildOfThisGeneration && f.rebuildDivergedSync ? this.realJobs(parts) : null;
    this.store.on('state', () => { this.kick(); });
    this.store.on('peers', () => { this.kick(); });
    this.every(SIM_TIMEOUTS.evaluateIntervalMs, () => { this.kick(); });
    this.every(SIM_TIMEOUTS.keepaliveIntervalMs, () => { this.keepalive(); });
    this.every(this.store.expiryCheckIntervalMs, () => { this.checkSessions(); });
    this.every(SIM_TIMEOUTS.pgHealthIntervalMs, () => { this.healthCheck(); });
    this.kick();
  }

  get id(): string {
    return this.self.id;
  }

  /** The sitter's own jobs (src/peer: evaluation, sessions, leader placement, stream stalls, facts) on the simulated effects. */
  private realJobs(parts: SitterParts): Evaluation {
    const log = parts.traceLog?.child({ peer: this.id }) ?? LOG;
    const clock = { nowMs: () => this.world.wallMs() };
    const decisions = new DecisionLog({ log, metrics: { recordDecision: () => undefined } });
    const kickSoon = (): void => { this.kickSoon(); };
    const sessions = new SessionKeeper({
      self: this.self,
      store: this.store,
      unhealthyForMs: (nowMs) => {
        const shouldRun = pgShouldRun({ role: decisions.last?.role, rebuilding: this.reconciler.rebuildStatus().running, leaseFenced: parts.fixes.fencedPrimaryRecovers && this.leaseHolding() });
        if (!shouldRun || this.monitor.healthy) {
          this.unhealthySinceMs = null;
          return 0;
        }
        this.unhealthySinceMs ??= nowMs;
        return nowMs - this.unhealthySinceMs;
      },
      unhealthyTimeoutMs: SIM_TIMEOUTS.pgUnhealthyTimeoutMs,
      decisions,
      clock,
      log,
      retrySoon: kickSoon,
    });
    const raft = parts.raft;
    const leadership: RaftLeadership = {
      status: () => {
        const st = raft.status(this.id);
        return { leader: st?.leader ?? null, role: st?.role ?? 'follower', members: { voters: raft.ids } };
      },
      transferLeadership: (to) => {
        raft.cluster.transferLeadership(this.id, to);
        return Promise.resolve();
      },
    };
    const leader = new LeaderPlacement({
      selfId: this.id,
      raft: leadership,
      transferTimeoutMs: 2000,
      decisions,
      log,
    });
    const handle = this.handle;
    const sources = this.sources;
    const streams = new StreamStallWatch({
      pg: handle,
      reconciler: this.reconciler,
      active: () => this.store.activePeers(),
      state: () => this.store.getState().state,
      decisions,
      stallLimitMs: 10 * SIM_TIMEOUTS.sessionTimeoutMs,
      retrySoon: kickSoon,
      primaryHistory: (upstream) => sources.timelineHistory(upstream),
      ...(parts.fixes.rebuildSyncOfReadOnlyPrimary ? { primaryReadOnly: (upstream: PeerInfo) => sources.readOnly(upstream) } : {}),
    });
    const lease = parts.lease === true ? this.leaseFence(log) : undefined;
    return new Evaluation({
      ...(lease === undefined ? {} : { lease }),
      self: this.self,
      config: { oneNodeWriteMode: false, autoRebuild: true },
      store: parts.fixes.holdFenceUntilSettled ? this.store : withoutUnknownWrites(this.store),
      pgStatus: () => this.monitor,
      postgres: handle,
      history: { current: () => this.rulesHistory(this.monitorHistory), read: async () => this.rulesHistory(await handle.ownHistory()) },
      hasPreviousData: this.hasPreviousData,
      facts: this.factsKeeper,
      reconciler: this.reconciler,
      sessions,
      leader,
      streams,
      decisions,
      clock,
      log,
      kick: () => { this.kick(); },
      kickSoon,
    });
  }

  /** The primary's lease fence on the simulated clock, checked on a timer of the sitter's. */
  private leaseFence(log: Logger): PrimaryLeaseFence {
    this.consensus.acknowledged = true;
    const fence = new PrimaryLeaseFence({
      leaseClock: new LeaseClock(SIM_TIMEOUTS.sessionTimeoutMs),
      nowMs: () => this.world.nowMs,
      renewedAtMs: () => this.store.leaseRenewedAtMs(),
      isPrimary: () => roleIn(this.store.getState().state, this.id).role === 'primary',
      stopPostgres: async () => {
        this.world.log(() => `${this.id} lease fence: stopping PostgreSQL`);
        await this.handle.stopImmediate();
      },
      invalidate: () => { this.reconciler.invalidate(); },
      kick: () => { this.kick(); },
      log,
    });
    this.leaseHolding = () => fence.holding;
    this.every(SIM_LEASE_CHECK_INTERVAL_MS, () => { fence.check(); });
    return fence;
  }

  /** The timeline history the rules see: its own, or with initWalOnHistory off the state's (the LSN alone decides). */
  private rulesHistory(own: TimelineHistory | null): TimelineHistory | null {
    if (this.parts.fixes.initWalOnHistory || own === null) return own;
    return this.store.getState().state?.initWalHistory ?? own;
  }

  /** One line on this sitter for a failed seed's trace. */
  describe(): string {
    const st = this.store.getState();
    const machine = this.parts.raft.machines.get(this.id);
    return `${this.id}: evaluating=${String(this.evaluating)} last=${this.lastDecision?.kind ?? '-'} g${st.state?.generation ?? '-'} v${st.version} ` +
      `session=${this.store.session()?.openedIndex ?? 'none'} active=[${this.store.activePeers().map((p) => p.id).join(',')}] ` +
      `sameMachine=${String(machine === this.store.machine)} raft=${JSON.stringify(this.parts.raft.status(this.id))} error=${this.lastError ?? '-'}`;
  }

  /** Read after an await: the process may have died meanwhile. */
  isAlive(): boolean {
    return this.alive;
  }

  /** The process is killed: nothing of it runs any more. */
  kill(): void {
    this.alive = false;
    this.handle.alive = false;
    this.consensus.kill();
    this.store.stop();
  }

  /** The process runs nothing: its host is paused, or its event loop is stalled. */
  private paused(): boolean {
    return this.parts.raft.cluster.paused.has(this.id);
  }

  private every(intervalMs: number, fn: () => void): void {
    const tick = (): void => {
      if (!this.alive) return;
      if (!this.paused()) fn();
      this.world.after(intervalMs, tick);
    };
    this.world.after(this.world.rng.int(0, intervalMs), tick);
  }

  private facts(): LocalFacts {
    return this.factsKeeper.current;
  }

  private writeFacts(f: LocalFacts): void {
    void this.factsKeeper.update(f);
  }

  private keepalive(): void {
    if (this.keepaliveInFlight || this.store.session() === null) return;
    this.keepaliveInFlight = true;
    this.store.keepalive().catch(() => undefined).finally(() => { this.keepaliveInFlight = false; });
  }

  private checkSessions(): void {
    if (this.checkInFlight) return;
    this.checkInFlight = true;
    this.store.checkSessions().then((ids) => {
      if (ids.length > 0) this.world.log(() => `${this.id} (Raft leader) expired the sessions of ${ids.join(', ')}`);
    }, () => undefined).finally(() => { this.checkInFlight = false; });
  }

  private healthCheck(): void {
    const before = this.monitor;
    this.monitor = this.parts.pg.status();
    this.monitorHistory = this.monitor.online ? this.parts.pg.history : null;
    if (before.online !== this.monitor.online || before.writable !== this.monitor.writable) this.kick();
  }

  kick(): void {
    if (!this.alive) return;
    this.dirty = true;
    if (!this.evaluating) void this.loop();
  }

  private kickSoon(): void {
    if (this.soon || !this.alive) return;
    this.soon = true;
    this.world.after(SIM_TIMEOUTS.retrySoonMs, () => {
      this.soon = false;
      this.kick();
    });
  }

  private async loop(): Promise<void> {
    this.evaluating = true;
    try {
      while (this.dirty && this.isAlive()) {
        this.dirty = false;
        // A paused process evaluates nothing until it resumes.
        while (this.paused() && this.alive) await this.world.sleep(50);
        try {
          await this.evaluate();
          this.lastError = null;
        } catch (err) {
          const message = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
          if (message !== this.lastError) this.world.log(() => `${this.id} evaluation failed: ${message}`);
          this.lastError = message;
        }
      }
    } finally {
      this.evaluating = false;
    }
  }

  private record(d: Decision): void {
    const prev = this.lastDecision;
    this.lastDecision = d;
    if (prev?.kind === d.kind && prev.reason === d.reason && prev.generation === d.generation) return;
    this.world.log(() => `${this.id} decides ${d.kind} (g${d.generation ?? '-'}): ${d.reason}`);
  }

  private async keepSession(): Promise<void> {
    const role = this.lastDecision?.role;
    const shouldRun = role === 'primary' || role === 'sync' || role === 'async';
    const nowMs = this.world.nowMs;
    let unhealthyForMs = 0;
    if (!shouldRun || this.monitor.healthy || this.reconciler.rebuildStatus().running) this.unhealthySinceMs = null;
    else {
      this.unhealthySinceMs ??= nowMs;
      unhealthyForMs = nowMs - this.unhealthySinceMs;
    }
    const open = this.store.session() !== null;
    if (open && unhealthyForMs > SIM_TIMEOUTS.pgUnhealthyTimeoutMs) {
      this.world.log(() => `${this.id} closes its session: PostgreSQL unhealthy for ${unhealthyForMs} ms`);
      this.sessionClosedForHealth = true;
      await this.store.closeSession();
      return;
    }
    if (!open && (!this.sessionClosedForHealth || unhealthyForMs === 0)) {
      try {
        await this.store.openSession(this.self);
        this.sessionClosedForHealth = false;
        this.world.log(() => `${this.id} opened its session`);
      } catch {
        this.kickSoon();
      }
    }
  }

  private async evaluate(): Promise<void> {
    if (this.evaluation !== null) {
      await this.evaluation.evaluate();
      return;
    }
    await this.keepSession();
    if (!this.storeCaughtUp && this.parts.fixes.readBeforeActing) {
      try {
        await this.store.readState();
      } catch (err) {
        this.kickSoon();
        throw new Error(`the store has not caught up with the shard yet: ${errorMessage(err)}`, { cause: err });
      }
      this.storeCaughtUp = true;
    }
    if (this.unresolved !== null) {
      if ((await resolveUnknownWrite(this.store, this.unresolved)).resolution === 'unknown') {
        this.kickSoon();
        return;
      }
      this.unresolved = null;
      this.reconciler.invalidate();
    }
    const { state, version } = this.store.getState();
    const nowMs = this.world.wallMs();
    const facts = this.facts();
    let rebuiltFrom = facts.rebuiltFrom;
    if (!this.parts.fixes.rebuildOfThisGeneration && rebuiltFrom !== null && state !== null && rebuiltFrom.primaryId === state.primary.id) {
      rebuiltFrom = { primaryId: rebuiltFrom.primaryId, generation: state.generation };
    }
    const input: RulesInput = {
      state,
      version,
      active: this.store.activePeers(),
      self: this.self,
      pg: rulesPgStatus(this.monitor, { hasPreviousData: this.hasPreviousData, rebuiltFrom, history: this.rulesHistory(this.monitorHistory) }),
      nowMs,
      config: { oneNodeWriteMode: false, autoRebuild: true },
    };
    this.moveRaftLeadershipOffWritePath(input);
    let d = decide(input);
    this.record(d);
    let fenced = false;
    if (d.write !== null && FENCED_KINDS.has(d.kind)) {
      const again = await this.fenceAndDecideAgain(d, input);
      if (again === null) return;
      d = again;
      fenced = true;
    }
    if (d.write !== null) {
      try {
        await this.store.putState(d.write.newState, d.write.expectVersion, d.write.summary);
        this.world.log(() => `${this.id} wrote generation ${d.write!.newState.generation}: ${d.write!.summary}`);
      } catch (err) {
        if (fenced && this.parts.fixes.holdFenceUntilSettled && writeFailure(err) === 'unknown') {
          this.unresolved = { kind: d.kind, write: d.write };
          this.kickSoon();
          throw err;
        }
        if (fenced) this.reconciler.invalidate();
        if (hasCode(err, 'MANATEE_ERR_STORE_VERSION_MISMATCH')) {
          this.kickSoon();
          return;
        }
        throw err;
      }
      this.kick();
      return;
    }
    if (d.kind === 'noSession' && state === null) return;
    if (d.role === 'primary' && facts.rebuiltFrom !== null && this.parts.fixes.forgetRebuildAsPrimary) {
      this.world.log(() => `${this.id} forgets its rebuild from ${facts.rebuiltFrom!.primaryId}: serving as primary`);
      this.writeFacts({ ...facts, rebuiltFrom: null });
    }
    let outcome;
    try {
      outcome = await this.reconciler.reconcile(d);
    } catch (err) {
      if (hasCode(err, INITDB_REFUSED) && this.store.session() !== null) {
        this.sessionClosedForHealth = true;
        await this.store.closeSession();
      }
      throw err;
    }
    if (outcome.action !== 'none') this.world.log(() => `${this.id} reconcile ${d.role}: ${outcome.action}`);
    if (outcome.retrySoon) this.kickSoon();
    await this.watchStreaming(d, nowMs);
  }

  private async fenceAndDecideAgain(d: Decision, input: RulesInput): Promise<Decision | null> {
    const asSync = d.kind === 'takeover' || d.kind === 'promoteSync';
    try {
      if (asSync) await this.handle.detachFromUpstream();
      else await this.handle.fenceWrites();
      const pos = await this.handle.walPositions();
      const history = this.rulesHistory(await this.handle.ownHistory());
      const { state, version } = this.store.getState();
      const fresh = decide({
        ...input,
        state,
        version,
        active: this.store.activePeers(),
        pg: { ...input.pg, online: true, replayLsn: pos.replayLsn, currentLsn: pos.inRecovery ? (pos.receiveLsn ?? pos.replayLsn) : pos.currentLsn, history },
      });
      if (fresh.kind !== d.kind || fresh.write === null) {
        this.world.log(() => `${this.id} fenced for ${d.kind}, but now decides ${fresh.kind}; lifting the fence`);
        this.reconciler.invalidate();
        this.kickSoon();
        return null;
      }
      this.record(fresh);
      return fresh;
    } catch (err) {
      this.reconciler.invalidate();
      this.kickSoon();
      throw err;
    }
  }

  private moveRaftLeadershipOffWritePath(input: RulesInput): void {
    const state = input.state;
    const nowMs = this.world.nowMs;
    if (state === null || nowMs - this.lastLeadershipMoveMs < SIM_TIMEOUTS.leadershipMoveIntervalMs) return;
    if (!this.consensus.isLeader()) return;
    if (state.primary.id !== this.id && state.sync?.id !== this.id) return;
    const target = state.async.find((a) => input.active.some((p) => p.id === a.id));
    if (target === undefined) return;
    this.lastLeadershipMoveMs = nowMs;
    this.world.log(() => `${this.id} moves the Raft leadership to ${target.id}`);
    this.parts.raft.cluster.transferLeadership(this.id, target.id);
  }

  private async watchStreaming(d: Decision, nowMs: number): Promise<void> {
    const standby = (d.role === 'sync' || d.role === 'async') && this.handle.running;
    const pg = this.parts.pg;
    const streaming = standby && !this.paused() ? pg.streaming : null;
    const replayLsn = standby ? this.parts.pg.walPositions().replayLsn : null;
    const upstream = d.upstream;
    const verdict = this.streamWatch.observe({
      role: d.role,
      upstreamId: upstream?.id ?? null,
      upstreamActive: upstream !== null && this.store.activePeers().some((p) => p.id === upstream.id),
      streaming,
      replayLsn,
      nowMs,
    });
    if (verdict.action === 'none' || upstream === null) return;
    if (verdict.action === 'rebuild') {
      this.world.log(() => `${this.id} (async) has not streamed from ${upstream.id} for ${verdict.stalledForMs} ms: rebuilding`);
      this.reconciler.requestRebuild({ cannotStream: true });
      this.kickSoon();
      return;
    }
    const state = this.store.getState().state;
    const initWal = state !== null && d.generation !== null && state.generation === d.generation ? state.initWal : null;
    const p = await this.handle.walPositions().catch(() => null);
    const own = { replayLsn: p?.inRecovery === true ? p.replayLsn : null, receiveLsn: p?.inRecovery === true ? p.receiveLsn : null };
    const may = initWal === null || p === null ? 'unknown' : syncCannotTakeOver(initWal, own);
    if (may !== true && initWal !== null && p !== null && d.generation !== null && this.parts.fixes.rebuildDivergedSync) {
      const primaryHistory = await this.sources.timelineHistory(upstream);
      const mine = await this.handle.ownWal();
      const fork = syncDiverged(mine, primaryHistory);
      if (typeof fork !== 'string') {
        const reason = describeDivergence(mine, primaryHistory!, fork);
        this.world.log(() => `${this.id} (sync) has not streamed from ${upstream.id}: ${reason}; rebuilding`);
        this.reconciler.requestRebuild({ asSync: { generation: d.generation, upstreamId: upstream.id, initWal, reason, forkLsn: fork.lsn } });
        this.kickSoon();
        return;
      }
    }
    if (may !== true || d.generation === null) {
      this.world.log(() => `${this.id} (sync) has not streamed from ${upstream.id} for ${verdict.stalledForMs} ms and keeps its data (${may})`);
      return;
    }
    const reason = `replayed ${own.replayLsn ?? '?'} is below initWal ${initWal ?? '?'}`;
    this.world.log(() => `${this.id} (sync) has not streamed from ${upstream.id}: ${reason}; rebuilding`);
    this.reconciler.requestRebuild({ asSync: { generation: d.generation, upstreamId: upstream.id, initWal: initWal ?? LSN_ZERO, reason } });
    this.kickSoon();
  }

  private mayInitdb(): true | string {
    const state = this.store.getState().state;
    if (state === null) return 'the cluster state is unknown';
    if (state.primary.id !== this.id) return `${state.primary.id} is the primary, not me`;
    if (state.generation !== 1 || state.initWal !== LSN_ZERO) return `generation ${state.generation} is not the cluster's setup`;
    if (this.hasPreviousData) return 'this peer had a database when the sitter started';
    if (this.facts().initdbDone) return 'this peer created its database before';
    return true;
  }
}
