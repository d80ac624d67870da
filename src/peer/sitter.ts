// The sitter: one per peer. Given this peer's Raft node, cluster store, PostgreSQL and backup
// backend (built by src/cli/sitter-wiring.ts, which also puts the HTTP API around it), it runs the loop that evaluates Manatee's rules on the
// committed state and acts on the decision:
//   - a decision with a state write is written (compare-and-set) and nothing else is done:
//     the role it gives this peer is applied once the write has committed and is seen;
//   - otherwise the reconciler makes PostgreSQL match the decision's role.
// The loop runs one evaluation at a time, woken by state and session changes, by PostgreSQL's
// health flips and exits, and by a timer.
import { createHmac } from 'node:crypto';
import { chmod, chown } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { hasCode, errorMessage } from '../errors.js';
import type { BackupBackend, RestoreResult } from '../backup/types.js';
import { DEFAULT_STOP_TIMEOUT_MS, HeldConnection, parsePgUrl, resolveOsUser, type PostgresServer } from '../postgres/index.js';
import type { RaftNode } from '../raft/node.js';
import type { ClusterStore } from '../store/index.js';
import { LSN_ZERO, type ClusterState, type PeerInfo, roleIn, type DecisionRecord, type LoopStatus, type SitterStatus } from '../model/index.js';
import { Snapshotter, type Zfs } from '../zfs/index.js';
import type { SitterConfig } from './config.js';
import { Heartbeat } from './heartbeat.js';
import type { FactsStore, LocalFacts } from './facts.js';
import { HOOKS_CONFIG_DEFAULT, HookRunner, SitterHooks, type HookObserver } from './hooks.js';
import { PgMonitor } from './pg-monitor.js';
import { peerHostsOf, PgPeerHosts } from './pg-peers.js';
import { RepeatFilter } from './repeat-log.js';
import { ShardSettingsKeeper } from './shard-settings.js';
import { INITDB_REFUSED, Reconciler } from './reconciler.js';
import { StreamWatch, syncCannotTakeOver } from './rules/stream-watch.js';
import { decide, decisionLogFields, decisionRecord, rulesPgStatus, type Decision, type DecisionKind, type RulesInput } from './rules/index.js';

const EVALUATE_INTERVAL_MS = 1000;
/** A reconcile action repeated every evaluation is logged at info again this often (see logReconcile). */
const RECONCILE_REPEAT_INFO_MS = 60_000;
/** Decisions that change the generation and record initWal: they fence first (fenceAndDecideAgain). */
const FENCED_KINDS: ReadonlySet<DecisionKind> = new Set<DecisionKind>(['takeover', 'promoteSync', 'replaceSync', 'promoteAsync', 'onwmUpgrade']);
const RETRY_SOON_MS = 200;
/** At most one Raft leadership move per this interval from one peer (no ping-pong). */
const LEADERSHIP_MOVE_INTERVAL_MS = 5000;

/** Passwords that all peers derive alike from the shard secret, when the configuration names none. */
export function derivedPassword(secret: string, purpose: string): string {
  return createHmac('sha256', secret).update(`manatee:${purpose}`).digest('hex').slice(0, 32);
}

export function peerInfoOf(config: SitterConfig): PeerInfo {
  return {
    id: config.peerId,
    host: config.host,
    pgUrl: `postgres://${config.host}:${config.postgres.port}/${config.postgres.database}`,
    apiUrl: `http://${config.host}:${config.api.port}`,
  };
}

/** Counts the loop's decisions and the hooks' outcomes (the API's metrics, built by the wiring). */
export interface SitterMetrics extends HookObserver {
  recordDecision(kind: string): void;
}

/** What faces the outside (the HTTP API, built by the wiring): opened at start, closed at stop. */
export interface SitterEdge {
  listen(): Promise<void>;
  close(): Promise<void>;
}

/** The parts a sitter runs (src/cli/sitter-wiring.ts opens them). */
export interface SitterParts {
  readonly config: SitterConfig;
  readonly log: Logger;
  readonly node: RaftNode;
  readonly store: ClusterStore;
  readonly postgres: PostgresServer;
  readonly backend: BackupBackend;
  readonly zfs: Zfs | null;
  readonly facts: FactsStore;
  /** What `facts` held when the sitter opened. */
  readonly initialFacts: LocalFacts;
  /** The data directory held a database when the sitter opened. */
  readonly hasPreviousData: boolean;
  readonly edge: SitterEdge;
  readonly metrics: SitterMetrics;
}

export class Sitter {
  readonly config: SitterConfig;
  readonly self: PeerInfo;
  readonly log: Logger;
  readonly node: RaftNode;
  readonly store: ClusterStore;
  readonly postgres: PostgresServer;
  readonly monitor: PgMonitor;
  readonly backend: BackupBackend;
  readonly reconciler: Reconciler;
  /** The HTTP API around this sitter. */
  private readonly edge: SitterEdge;
  /** The API's metrics: the loop counts its decisions into them. */
  private readonly metrics: SitterMetrics;
  /** The replication heartbeat: written on the writable primary, read on standbys. */
  readonly heartbeat: Heartbeat;
  /** Operators' executables run on shard events (src/peer/hooks.ts); they never block the loop. */
  readonly hooks: SitterHooks;
  /** The shard-wide PostgreSQL settings, applied to this peer's PostgreSQL (manatee-shard.conf). */
  readonly shardSettings: ShardSettingsKeeper;
  /** pg_hba.conf admits the replication role from the peers' hosts only: kept current here. */
  private readonly pgPeers: PgPeerHosts;
  private readonly snapshotter: Snapshotter | null;
  private readonly factsStore: FactsStore;
  private facts: LocalFacts;
  private readonly hasPreviousData: boolean;
  private readonly startedAt = new Date().toISOString();

  private lastDecision: Decision | null = null;
  private lastRecord: DecisionRecord | null = null;
  private lastError: string | null = null;
  private sessionClosedForHealth = false;
  private evaluating = false;
  /** False until one linearizable read succeeded since start-up (see evaluate). */
  private storeCaughtUp = false;
  private lastLeadershipMoveMs = 0;
  /** Standbys that cannot stream (see watchStreaming); limit: 10 session timeouts. */
  private readonly streamWatch: StreamWatch;
  /** A reconcile action repeated every evaluation is logged at info once, then once a minute. */
  private readonly reconcileRepeats = new RepeatFilter(RECONCILE_REPEAT_INFO_MS);
  /** When an evaluation last ended, and when the running one began (GET /liveness). */
  private lastEvaluatedAtMs: number | null = null;
  private evaluatingSinceMs: number | null = null;
  private dirty = false;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  private soonTimer: NodeJS.Timeout | null = null;
  private readonly unsubscribe: (() => void)[] = [];
  /** The connection to the PostgreSQL of the peer this one copies from (askSource). */
  private sourceConn: { readonly pgUrl: string; readonly conn: HeldConnection } | null = null;

  constructor(parts: SitterParts) {
    this.config = parts.config;
    this.self = peerInfoOf(parts.config);
    this.log = parts.log;
    this.node = parts.node;
    this.store = parts.store;
    this.postgres = parts.postgres;
    this.backend = parts.backend;
    this.factsStore = parts.facts;
    this.facts = parts.initialFacts;
    this.hasPreviousData = parts.hasPreviousData;
    this.streamWatch = new StreamWatch(10 * parts.config.timeouts.sessionTimeoutMs);
    this.edge = parts.edge;
    this.metrics = parts.metrics;
    const t = parts.config.timeouts;
    this.monitor = new PgMonitor({ postgres: parts.postgres, intervalMs: t.pgHealthIntervalMs, timeoutMs: t.pgHealthTimeoutMs, log: parts.log });
    this.heartbeat = new Heartbeat({
      selfId: this.self.id,
      query: (sql, params, timeoutMs) => parts.postgres.queryWithTimeout(sql, params, timeoutMs),
      role: () => {
        const state = this.store.getState().state;
        const pg = this.monitor.status();
        return {
          writablePrimary: roleIn(state, this.self.id).role === 'primary' && pg.writable,
          online: pg.online && pg.healthy,
          generation: state?.generation ?? null,
        };
      },
      log: parts.log,
    });
    const zfsConfig = parts.config.zfs;
    this.snapshotter =
      parts.zfs !== null && zfsConfig !== undefined
        ? new Snapshotter({
            zfs: parts.zfs,
            dataset: zfsConfig.dataset,
            intervalMs: zfsConfig.snapshotIntervalMs,
            retentionCount: zfsConfig.snapshotRetention,
            isHealthy: () => this.monitor.status().healthy,
            log: parts.log,
          })
        : null;
    this.reconciler = new Reconciler({
      self: this.self,
      postgres: parts.postgres,
      backend: parts.backend,
      log: parts.log,
      prepareStorage: () => this.prepareStorage(parts.zfs),
      onRebuilt: (from, generation, result) => this.onRebuilt(from, generation, result),
      sourcePromoted: (source) => this.sourcePromoted(source),
      sourceOnline: (source) => this.sourceOnline(source),
      mayInitdb: () => this.mayInitdb(),
      onInitdb: async () => {
        this.facts = { ...this.facts, initdbDone: true };
        await this.factsStore.write(this.facts);
      },
    });
    this.pgPeers = new PgPeerHosts({
      postgres: parts.postgres,
      hosts: () => peerHostsOf({
        self: this.self, memberAddresses: parts.config.raft.members.map((m) => m.address), state: this.store.getState().state, active: this.store.activePeers(),
      }),
      log: parts.log,
    });
    this.shardSettings = new ShardSettingsKeeper({ target: parts.postgres, settings: () => this.store.getSettings(), ready: () => this.storeCaughtUp, log: parts.log,
    });
    parts.postgres.useShardSettings(() => this.store.getSettings());
    const hooksConfig = parts.config.hooks ?? HOOKS_CONFIG_DEFAULT;
    this.hooks = new SitterHooks({
      runner: new HookRunner({ config: hooksConfig, log: parts.log, observer: parts.metrics }),
      self: this.self,
      observe: () => {
        const { state, version } = this.store.getState();
        return { state, version, activePeers: this.store.activePeers(), role: roleIn(state, this.self.id).role };
      },
      heartbeatIntervalMs: hooksConfig.heartbeatIntervalMs,
      log: parts.log,
    });
  }

  async start(): Promise<void> {
    await this.node.start();
    this.store.start();
    await this.edge.listen();
    this.monitor.start();
    this.heartbeat.start();
    this.snapshotter?.start();
    this.unsubscribe.push(
      this.store.on('state', () => { this.kick(); }),
      this.store.on('peers', () => { this.kick(); }),
    );
    this.unsubscribe.push(
      this.store.on('state', () => { this.hooks.changed(); }),
      this.store.on('peers', () => { this.hooks.changed(); }),
      this.store.on('state', () => { this.pgPeers.update(); }),
      this.store.on('peers', () => { this.pgPeers.update(); }),
      this.store.on('settings', () => { this.shardSettings.changed(); }),
    );
    this.postgres.on('started', () => { this.shardSettings.changed(); });
    this.shardSettings.start();
    this.monitor.on('change', () => { this.kick(); });
    this.postgres.on('exit', (e) => {
      if (!e.expected) {
        this.log.warn({ decision: 'pg-exited', pid: e.pid, code: e.code, signal: e.signal }, 'PostgreSQL exited unexpectedly; it will be restarted if its role needs it');
        this.reconciler.invalidate();
      }
      this.kick();
    });
    this.timer = setInterval(() => { this.kick(); }, EVALUATE_INTERVAL_MS);
    this.log.info({ api: this.self.apiUrl, raft: `${this.config.raft.listen}:${this.config.raft.port}` }, 'sitter started');
    this.hooks.start();
    this.kick();
  }

  /** Stops everything: the session first (so that the others act at once), then PostgreSQL, then Raft. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer !== null) clearInterval(this.timer);
    if (this.soonTimer !== null) clearTimeout(this.soonTimer);
    for (const u of this.unsubscribe) u();
    const deadline = Date.now() + 60_000;
    while (this.evaluating && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await this.snapshotter?.stop();
    this.heartbeat.stop();
    await this.hooks.stop();
    await this.pgPeers.settled();
    this.shardSettings.stop();
    await this.shardSettings.settled();
    this.monitor.stop();
    this.sourceConn?.conn.close('the sitter is stopping', true);
    const wasPrimary = roleIn(this.store.getState().state, this.self.id).role === 'primary';
    await Promise.race([this.store.closeSession().catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
    this.store.stop();
    await this.edge.close().catch(() => undefined);
    // A primary stops at once: a clean shutdown would write a checkpoint that its sync never receives.
    await this.postgres.stop(wasPrimary ? 'immediate' : 'fast').catch((err: unknown) => {
      this.log.error({ err: errorMessage(err) }, 'stopping PostgreSQL failed');
    });
    await this.node.stop().catch(() => undefined);
    await this.node.close().catch(() => undefined);
    this.log.info({ decision: 'stopped' }, 'sitter stopped');
  }

  /**
   * An operator's rebuild of this peer (manatee-adm rebuild, after checkRebuild). `asSync`: this
   * peer is the sync below initWal (checked again by the reconciler once cut off from the upstream).
   */
  requestRebuild(o: { asSync?: { generation: number; upstreamId: string; initWal: string } } = {}): { peerId: string; started: boolean; message: string } {
    if (o.asSync === undefined) this.reconciler.requestRebuild();
    else {
      const reason = `an operator's rebuild of the sync, below initWal ${o.asSync.initWal}`;
      this.log.warn({ decision: 'operator-rebuild-sync', ...o.asSync, reason }, `${reason}: it could not take over, so it copies the primary's data afresh`);
      this.reconciler.requestRebuild({ asSync: { ...o.asSync, reason } });
    }
    this.kick();
    return { peerId: this.self.id, started: true, message: `rebuild of ${this.self.id} requested; GET /status shows its progress` };
  }

  status(): SitterStatus {
    const { state, version } = this.store.getState();
    const raft = this.node.status();
    return {
      peer: this.self,
      role: roleIn(state, this.self.id).role,
      sitterPid: process.pid,
      postgresPid: this.postgres.postgresPid,
      backend: this.config.backend,
      postgres: this.monitor.status(),
      replication: this.monitor.replication(),
      raft: { id: raft.id, term: raft.term, leader: raft.leader, role: raft.role, commit: raft.commit, applied: raft.applied },
      state,
      stateVersion: version,
      activePeers: this.store.activePeers(),
      lastDecision: this.lastRecord,
      rebuild: this.reconciler.rebuildStatus(),
      startedAt: this.startedAt,
      loop: this.loopStatus(),
      heartbeat: this.heartbeat.status(),
      hooks: this.hooks.status(),
      settings: this.shardSettings.status(),
    };
  }

  // ---------------------------------------------------------------- the loop

  private logReconcile(action: string, role: string, generation: number | null, nowMs: number): void {
    const v = this.reconcileRepeats.next(action === 'none' ? null : action, nowMs);
    if (v === null) return;
    const fields = { decision: 'reconcile', role, action, generation };
    if (v.level === 'debug') this.log.debug(fields, action);
    else if (v.repeated === 0) this.log.info(fields, action);
    else this.log.info({ ...fields, repeated: v.repeated }, `${action} (repeated ${v.repeated} times since ${new Date(v.sinceMs).toISOString()})`);
  }

  private loopStatus(): LoopStatus {
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
    const since = this.evaluatingSinceMs;
    return {
      lastEvaluatedAt: iso(this.lastEvaluatedAtMs),
      evaluatingSince: iso(since),
      lastProgressAt: since === null ? null : iso(Math.max(since, this.reconciler.lastActivityMs())),
      // The longest step of one evaluation without progress: a stop escalated once (fast, then
      // immediate), then a start with crash recovery; at least 5 minutes.
      stuckAfterMs: Math.max(5 * 60_000, this.config.timeouts.pgStartTimeoutMs + 2 * DEFAULT_STOP_TIMEOUT_MS + 60_000),
    };
  }

  private kick(): void {
    if (this.stopping) return;
    this.dirty = true;
    if (!this.evaluating) void this.loop();
  }

  private kickSoon(): void {
    if (this.soonTimer !== null || this.stopping) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = null;
      this.kick();
    }, RETRY_SOON_MS);
  }

  private async loop(): Promise<void> {
    this.evaluating = true;
    try {
      while (this.dirty && !this.stopping) {
        this.dirty = false;
        this.evaluatingSinceMs = Date.now();
        try {
          await this.evaluate();
          this.lastError = null;
        } catch (err) {
          const message = err instanceof Error ? `${(err as { code?: string }).code ?? err.name}: ${err.message}` : String(err);
          if (message !== this.lastError) this.log.error({ decision: 'error', err: message }, `evaluation failed: ${message}`);
          this.lastError = message;
        }
        // An evaluation that failed still ran: the loop is alive (GET /liveness).
        this.evaluatingSinceMs = null;
        this.lastEvaluatedAtMs = Date.now();
      }
    } finally {
      this.evaluating = false;
    }
  }

  private async evaluate(): Promise<void> {
    await this.keepSession();
    if (!this.storeCaughtUp) {
      // After a restart the store holds the state replayed from the local log, possibly many
      // generations old, with sessions that look alive. Acting on it once made a restarted former
      // primary start as a writable primary of a stale generation, diverge, and stall the shard as
      // its sync (chaos harness, restart-all). One linearizable read first brings the applied state up
      // to everything the shard has committed.
      try {
        await this.store.readState();
      } catch (err) {
        this.kickSoon();
        throw new Error(`the store has not caught up with the shard yet: ${errorMessage(err)}`, { cause: err });
      }
      this.storeCaughtUp = true;
      this.shardSettings.changed();
      this.log.info({ decision: 'store-caught-up' }, 'the store has applied everything the shard committed; acting on its state from now on');
    }
    const { state, version } = this.store.getState();
    const nowMs = Date.now();
    const input = {
      state,
      version,
      active: this.store.activePeers(),
      self: this.self,
      pg: rulesPgStatus(this.monitor.status(), { hasPreviousData: this.hasPreviousData, rebuiltFrom: this.facts.rebuiltFrom }),
      nowMs,
      config: { oneNodeWriteMode: this.config.oneNodeWriteMode, autoRebuild: this.config.rebuild.automatic },
    };
    this.moveRaftLeadershipOffWritePath(state, input.active, nowMs);
    let d = decide(input);
    this.record(d, nowMs);
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
        this.log.info({ decision: `${d.kind}-committed`, generation: d.write.newState.generation, summary: d.write.summary }, `wrote: ${d.write.summary}`);
      } catch (err) {
        // Not committed (or not known to be): the next reconcile renders this peer's configuration
        // again, which lifts the fence if the role did not change after all.
        if (fenced) this.reconciler.invalidate();
        if (hasCode(err, 'MANATEE_ERR_STORE_VERSION_MISMATCH')) {
          this.log.info({ decision: `${d.kind}-lost-race`, reason: (err as Error).message }, 'the state changed meanwhile; evaluating again');
          this.kickSoon();
          return;
        }
        throw err;
      }
      this.kick();
      return;
    }
    if (d.kind === 'noSession' && state === null) {
      // Start-up: the store has not caught up with the shard yet, so the state is unknown rather
      // than empty. The rules make no change; neither does PostgreSQL: a postmaster left running by
      // the previous sitter (a sitter restart) keeps serving and is adopted once the role is known,
      // instead of being stopped as if this peer were unassigned.
      return;
    }
    if (d.role === 'primary' && this.facts.rebuiltFrom !== null) {
      // A rebuild made before this peer serves as primary says nothing about its data afterwards: as
      // primary it writes WAL that a later primary may never have had. Forget it before PostgreSQL is
      // promoted, so that a deposition means a new rebuild, not a rejoin with diverged WAL (found by the
      // chaos harness: a deposed primary left `deposed` on its bootstrap's fact and stalled as sync).
      this.log.info({ decision: 'forget-rebuild', rebuiltFrom: this.facts.rebuiltFrom }, 'serving as primary: the last rebuild no longer vouches for this data');
      this.facts = { ...this.facts, rebuiltFrom: null };
      await this.factsStore.write(this.facts);
    }
    let outcome;
    try {
      outcome = await this.reconciler.reconcile(d);
    } catch (err) {
      if (hasCode(err, INITDB_REFUSED) && this.store.session() !== null) {
        // A primary that lost its data must not serve an empty database: give up the session so
        // that the sync (which has the data) takes over. It stays closed while the role is primary.
        this.sessionClosedForHealth = true;
        this.log.error({ decision: 'closeSession', reason: 'primary without data' }, 'closing this peer\'s session: I am the primary but have no data; the sync takes over');
        await this.store.closeSession();
      }
      throw err;
    }
    this.logReconcile(outcome.action, d.role, d.generation, nowMs);
    if (outcome.retrySoon) this.kickSoon();
    await this.watchStreaming(d, nowMs);
  }

  /** A standby that cannot stream from its active upstream for long (StreamWatch): say so; an async rebuilds. */
  private async watchStreaming(d: Decision, nowMs: number): Promise<void> {
    const standby = (d.role === 'sync' || d.role === 'async') && this.postgres.running;
    let streaming: boolean | null = null;
    let replayLsn: string | null = null;
    if (standby) {
      const row = await this.postgres.query<{ status: string | null; replay: string | null }>(
        'SELECT (SELECT status FROM pg_stat_wal_receiver) AS status, pg_last_wal_replay_lsn()::text AS replay',
      ).then((rows) => rows[0] ?? null, () => null);
      if (row !== null) {
        streaming = row.status === 'streaming';
        replayLsn = row.replay;
      }
    }
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
    const why = `my WAL receiver has not streamed from ${upstream.id} for ${verdict.stalledForMs} ms while its session is active (a diverged timeline, or WAL it no longer has)`;
    if (verdict.action === 'rebuild') {
      this.log.warn({ decision: 'stream-stalled-rebuild', upstream: upstream.id, stalledForMs: verdict.stalledForMs }, `${why}; I am an async: rebuilding from it`);
      this.reconciler.requestRebuild({ cannotStream: true });
      this.kickSoon();
      return;
    }
    // The sync. It rebuilds itself only when it could not take over anyway (its replayed and received
    // WAL are below this generation's initWal): then its data holds nothing the primary lacks, and
    // a fresh copy loses no failover ability (the reasoning is at syncCannotTakeOver). Without this,
    // a sync that needs WAL the primary no longer keeps (after a long one-node-write period, or an
    // async promoted to sync far behind) never streams, and the primary stays read-only forever.
    const state = this.store.getState().state;
    // initWal of the generation this decision was made for (a newer state is judged at its own verdict).
    const initWal = state !== null && d.generation !== null && state.generation === d.generation ? state.initWal : null;
    const read = await this.postgres.walPositions().then(
      (p) => ({ replayLsn: p.inRecovery ? p.replayLsn : null, receiveLsn: p.inRecovery ? p.receiveLsn : null, error: null }),
      (err: unknown) => ({ replayLsn: null, receiveLsn: null, error: errorMessage(err) }),
    );
    const own = { replayLsn: read.replayLsn, receiveLsn: read.receiveLsn };
    const may = initWal === null
      ? `the committed state is not of generation ${d.generation ?? 'none'} any more`
      : read.error !== null ? `my WAL positions could not be read (${read.error})` : syncCannotTakeOver(initWal, own);
    const fields = { upstream: upstream.id, stalledForMs: verdict.stalledForMs, replayLsn: own.replayLsn, receiveLsn: own.receiveLsn, initWal };
    if (may !== true || d.generation === null) {
      const reason = may === true ? 'the generation is unknown' : may;
      this.log.error({ decision: 'stream-stalled', ...fields, reason },
        `${why}; I am the sync and keep my data (${reason}), so only an operator's action or a sync replacement helps`);
      return;
    }
    const reason = `replayed ${own.replayLsn ?? '?'} (received ${own.receiveLsn ?? 'nothing'}) is below initWal ${initWal ?? '?'}: I could not take over, and the primary has every acknowledged write`;
    this.log.warn({ decision: 'stream-stalled-rebuild-sync', ...fields, reason }, `${why}; I am the sync and ${reason}: rebuilding from it`);
    this.reconciler.requestRebuild({ asSync: { generation: d.generation, upstreamId: upstream.id, initWal: initWal ?? LSN_ZERO, reason } });
    this.kickSoon();
  }

  /**
   * The fence before a generation change (safety review): initWal must bound every commit that
   * the old generation acknowledged, but the health check's LSN is up to an interval old and the
   * old path keeps acknowledging commits until the new state is applied. So cut the old path
   * first (the sync detaches from its upstream; the primary stops acknowledging commits), read
   * a fresh LSN, and decide again with it. Returns the decision to write, or null when it is no
   * longer the same (the fence is then undone by the next reconcile).
   */
  private async fenceAndDecideAgain(d: Decision, input: RulesInput): Promise<Decision | null> {
    const asSync = d.kind === 'takeover' || d.kind === 'promoteSync';
    const before = input.pg.currentLsn;
    try {
      if (asSync) await this.postgres.detachFromUpstream();
      else await this.postgres.fenceWrites();
      const pos = await this.postgres.walPositions();
      const { state, version } = this.store.getState();
      const fresh = decide({
        ...input,
        state,
        version,
        active: this.store.activePeers(),
        pg: { ...input.pg, online: true, replayLsn: pos.replayLsn, currentLsn: pos.inRecovery ? (pos.receiveLsn ?? pos.replayLsn) : pos.currentLsn },
      });
      if (fresh.kind !== d.kind || fresh.write === null) {
        this.log.warn({ decision: `${d.kind}-abandoned`, now: fresh.kind, reason: fresh.reason },
          `fenced for ${d.kind}, but with a fresh WAL position the decision is ${fresh.kind}; lifting the fence`);
        this.reconciler.invalidate();
        this.kickSoon();
        return null;
      }
      this.log.info({ decision: `${d.kind}-fenced`, lsnBefore: before, lsnFenced: fresh.write.newState.initWal, how: asSync ? 'detached from upstream' : 'commits stopped' },
        `fenced for ${d.kind} (${asSync ? 'detached from the upstream' : 'commits no longer acknowledged'}); initWal ${fresh.write.newState.initWal}`);
      this.record(fresh, input.nowMs);
      return fresh;
    } catch (err) {
      this.reconciler.invalidate();
      this.kickSoon();
      throw err;
    }
  }

  /**
   * Keeps the Raft leader on an async when this peer (the leader) is the primary or the sync.
   * When the leader dies, the others first elect a new one, which then gives every session a
   * full sessionTimeoutMs of grace: a primary or sync that is also the leader fails over an
   * election plus a session timeout later (measured: ~4 s instead of ~2.5 s with the defaults).
   * An async's death blocks no commit, so it is the cheapest place for the leader.
   */
  private moveRaftLeadershipOffWritePath(state: ClusterState | null, active: readonly PeerInfo[], nowMs: number): void {
    if (state === null || nowMs - this.lastLeadershipMoveMs < LEADERSHIP_MOVE_INTERVAL_MS) return;
    const raft = this.node.status();
    if (raft.leader !== this.self.id || raft.role !== 'leader') return;
    if (state.primary.id !== this.self.id && state.sync?.id !== this.self.id) return;
    const target = state.async.find((a) => raft.members.voters.includes(a.id) && active.some((p) => p.id === a.id));
    if (target === undefined) return;
    this.lastLeadershipMoveMs = nowMs;
    const role = state.primary.id === this.self.id ? 'primary' : 'sync';
    this.log.info({ decision: 'moveRaftLeader', to: target.id, reason: `I am the ${role} and the Raft leader` },
      `moving Raft leadership to async ${target.id}: I am the ${role}, and a leader in the write path would add an election and a session grace to its failover`);
    const electionMs = this.config.raft.electionTicks * this.config.raft.tickMs;
    this.node.transferLeadership(target.id, { timeoutMs: 4 * electionMs }).catch((err: unknown) => {
      this.log.warn({ decision: 'moveRaftLeader-failed', to: target.id, err: errorMessage(err) }, `Raft leadership did not move to ${target.id}`);
    });
  }

  /** One log line per distinct decision (the loop re-evaluates every second; repeats are not news). */
  private record(d: Decision, nowMs: number): void {
    const prev = this.lastDecision;
    this.lastDecision = d;
    this.metrics.recordDecision(d.kind);
    if (prev?.kind === d.kind && prev.reason === d.reason && prev.generation === d.generation) return;
    this.lastRecord = decisionRecord(d, nowMs);
    this.log.info(decisionLogFields(d), d.reason);
  }

  /**
   * This peer's session: open while this peer can serve. A peer whose PostgreSQL has been
   * unhealthy for pgUnhealthyTimeoutMs while its role needs it closes its session, so that a
   * hung primary fails over (Joyent's Manatee never did); it reopens once healthy again.
   */
  private async keepSession(): Promise<void> {
    const role = this.lastDecision?.role;
    const shouldRun = role === 'primary' || role === 'sync' || role === 'async';
    const unhealthyForMs = this.monitor.unhealthyForMs(Date.now(), shouldRun && !this.reconciler.rebuildStatus().running);
    const open = this.store.session() !== null;
    if (open && unhealthyForMs > this.config.timeouts.pgUnhealthyTimeoutMs) {
      this.log.warn({ decision: 'closeSession', reason: `PostgreSQL unhealthy for ${unhealthyForMs} ms`, role }, `closing this peer's session: PostgreSQL unhealthy for ${unhealthyForMs} ms (limit ${this.config.timeouts.pgUnhealthyTimeoutMs} ms)`);
      // Set first: if closeSession throws (no leader), the flag still keeps the next evaluation
      // from reopening the session while PostgreSQL is hung (flapping).
      this.sessionClosedForHealth = true;
      await this.store.closeSession();
      return;
    }
    if (!open && (!this.sessionClosedForHealth || unhealthyForMs === 0)) {
      try {
        await this.store.openSession(this.self);
        this.sessionClosedForHealth = false;
        this.log.info({ decision: 'openSession', reason: 'this peer can serve' }, 'opened this peer\'s session');
      } catch (err) {
        // No leader yet (start-up, election): the loop tries again.
        this.log.debug({ err: errorMessage(err) }, 'could not open the session yet');
        this.kickSoon();
      }
    }
  }

  // ---------------------------------------------------------------- storage and facts

  /**
   * A primary with an empty data directory creates a database only at the cluster's setup:
   * generation 1, initWal 0/0, this peer its primary, no data before, and no initdb before.
   * Otherwise its data is lost, and the sync holds it.
   */
  private mayInitdb(): true | string {
    const state = this.store.getState().state;
    if (state === null) return 'the cluster state is unknown';
    if (state.primary.id !== this.self.id) return `${state.primary.id} is the primary, not me`;
    if (state.generation !== 1 || state.initWal !== LSN_ZERO) {
      return `generation ${state.generation} (initWal ${state.initWal}) is not the cluster's setup: my data was lost and the sync holds it`;
    }
    if (this.hasPreviousData) return 'this peer had a database when the sitter started, and it is gone';
    if (this.facts.initdbDone) return `this peer created its database before (${this.factsStore.where}), and it is gone`;
    return true;
  }

  private async prepareStorage(zfs: Zfs | null): Promise<void> {
    const pgDataDir = this.postgres.dataDir;
    if (zfs === null || this.config.zfs === undefined) return;
    const dataset = this.config.zfs.dataset;
    if (!(await zfs.exists(dataset))) {
      await zfs.createDataset(dataset, { mountpoint: pgDataDir, parents: true });
      const user = await resolveOsUser(this.config.postgres.user);
      if (user.switchUser) await chown(pgDataDir, user.uid, user.gid);
      await chmod(pgDataDir, 0o700);
      this.log.info({ decision: 'createDataset', dataset, mountpoint: pgDataDir }, 'created the dataset for PostgreSQL data');
    } else if (!(await zfs.isMounted(dataset))) {
      // An unmounted dataset shows its empty mountpoint: mount it before anyone calls the data missing.
      this.log.warn({ decision: 'mountDataset', dataset, mountpoint: pgDataDir }, 'the dataset for PostgreSQL data is not mounted; mounting it');
      await zfs.mount(dataset);
    }
  }

  /** Asks `source`'s PostgreSQL (as the replication role, which pg_rewind uses too) whether it is out of recovery. */
  private async sourcePromoted(source: PeerInfo): Promise<true | string> {
    const rec = await this.askSource(source);
    return rec === false ? true : `${source.id} is still in recovery`;
  }

  private async sourceOnline(source: PeerInfo): Promise<true | string> {
    await this.askSource(source);
    return true;
  }

  /**
   * pg_is_in_recovery() on `source`'s PostgreSQL; throws when it does not answer. The reconciler
   * asks every few hundred ms while it waits for a source: on one held connection, not a new
   * backend on the source's server each time (closed once the copy is done, or for another source).
   */
  private async askSource(source: PeerInfo): Promise<boolean | undefined> {
    const timeoutMs = this.config.timeouts.pgHealthTimeoutMs;
    if (this.sourceConn?.pgUrl !== source.pgUrl) {
      this.sourceConn?.conn.close('asking another source', true);
      const e = parsePgUrl(source.pgUrl, { user: this.postgres.replicationUser });
      const conn = new HeldConnection({
        config: () => ({
          host: e.host,
          port: e.port,
          user: this.postgres.replicationUser,
          password: this.config.postgres.replicationPassword ?? derivedPassword(this.config.secret, 'replication'),
          database: 'postgres',
          connectionTimeoutMillis: timeoutMs,
          statement_timeout: timeoutMs,
          application_name: `manatee-sitter-${this.self.id}`,
        }),
      });
      this.sourceConn = { pgUrl: source.pgUrl, conn };
    }
    const rows = await this.sourceConn.conn.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec', undefined, timeoutMs);
    return rows[0]?.rec;
  }

  private async onRebuilt(from: PeerInfo, generation: number | null, result: RestoreResult): Promise<void> {
    this.sourceConn?.conn.close('the copy is done', true);
    this.sourceConn = null;
    if (generation !== null) {
      this.facts = { ...this.facts, rebuiltFrom: { primaryId: from.id, generation } };
      await this.factsStore.write(this.facts);
    }
    this.log.info({ decision: 'rebuilt', from: from.id, generation, method: result.method }, `data rebuilt from ${from.id}`);
    this.hooks.rebuildDone({ source: from, generation, method: result.method });
  }
}
