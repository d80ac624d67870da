// The sitter: one per peer. Given this peer's Raft node, cluster store, PostgreSQL and backup
// backend (opened by src/cli/sitter-wiring.ts, which also puts the HTTP API around it), it builds
// the jobs, one file each, and starts and stops them:
//   loop.ts              the evaluation loop (one evaluation at a time, woken by changes and a timer)
//   evaluation.ts        one evaluation of the rules (src/peer/rules) and acting on its decision
//   sessions.ts          this peer's session (closed while PostgreSQL is hung)
//   fencing.ts           the fence before a generation change
//   leader-placement.ts  the Raft leader kept off the write path
//   stream-stall.ts      standbys that cannot stream
//   reconciler.ts        PostgreSQL made to match the decision (start, stop, promote, rebuild)
//   facts.ts             what this peer remembers across restarts (fsynced)
//   source-postgres.ts   other peers' PostgreSQL, for a rebuild
//   postgres-effects.ts  this peer's PostgreSQL behind the jobs' small interfaces
//   heartbeat.ts, hooks.ts, pg-monitor.ts, pg-peers.ts, shard-settings.ts
// Every decision goes through decision-log.ts: one log line, a metric, and GET /status's lastDecision.
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import type { BackupBackend, RestoreResult } from '../backup/types.js';
import { DEFAULT_STOP_TIMEOUT_MS, type PostgresServer } from '../postgres/index.js';
import type { RaftNode } from '../raft/node.js';
import type { ClusterStore } from '../store/index.js';
import { roleIn, type PeerInfo, type SitterStatus } from '../model/index.js';
import { Snapshotter } from '../zfs/index.js';
import { systemClock, type Clock } from './clock.js';
import type { ReloadableTls } from '../tls/index.js';
import { peerInfoOf, type SitterConfig } from './config.js';
import { credentialsLogFields, ShardCredentials } from './credentials.js';
import { PgCredentials } from './pg-credentials.js';
import { DecisionLog } from './decision-log.js';
import { Evaluation } from './evaluation.js';
import { FactsKeeper, initdbAllowed } from './facts.js';
import { Heartbeat } from './heartbeat.js';
import { HookRunner } from './hook-runner.js';
import { HOOKS_CONFIG_DEFAULT } from './hooks.js';
import { SitterHooks } from './sitter-hooks.js';
import { LeaderPlacement } from './leader-placement.js';
import { LeaseClock, PrimaryLeaseFence } from './lease-fence.js';
import { EvaluationLoop } from './loop.js';
import { PgMonitor } from './pg-monitor.js';
import { pgPeersOf, PgPeerHosts } from './pg-peers.js';
import { Reconciler } from './reconciler.js';
import { SessionKeeper } from './sessions.js';
import { ShardSettingsKeeper } from './shard-settings.js';
import { PostgresOps } from './pg-ops.js';
import { pgCredentialsTargetOf, standbyProbeOf } from './postgres-effects.js';
import { pgShouldRun } from './rules/index.js';
import { HeldSourcePostgres } from './source-postgres.js';
import { prepareZfsStorage } from './storage.js';
import { StreamStallWatch } from './stream-stall.js';
import type { SitterEdge, SitterParts } from './sitter-parts.js';

export type { SitterEdge, SitterMetrics, SitterParts } from './sitter-parts.js';

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
  /** The replication heartbeat: written on the writable primary, read on standbys. */
  readonly heartbeat: Heartbeat;
  /** Operators' executables run on shard events (src/peer/hooks.ts); they never block the loop. */
  readonly hooks: SitterHooks;
  /** The shard-wide PostgreSQL settings, applied to this peer's PostgreSQL (manatee-shard.conf). */
  readonly shardSettings: ShardSettingsKeeper;
  /** An operator's reload or restart of this peer's PostgreSQL (manatee-adm reload / restart). */
  readonly pgOps: PostgresOps;
  /** The HTTP API around this sitter. */
  private readonly edge: SitterEdge;
  /** This peer's certificate for every listener and connection (config.tls); null without TLS. */
  readonly tls: ReloadableTls | null;
  /** pg_hba.conf admits the replication role from the peers' hosts only: kept current here. */
  private readonly pgPeers: PgPeerHosts;
  private readonly snapshotter: Snapshotter | null;
  private readonly facts: FactsKeeper;
  private readonly hasPreviousData: boolean;
  private readonly sources: HeldSourcePostgres;
  /** The shard secret and admin tokens in force (reloadCredentials on SIGHUP). */
  readonly credentials: ShardCredentials;
  /** PostgreSQL's role passwords through a rotation of the shard secret. */
  private readonly pgCredentials: PgCredentials;
  private readonly decisions: DecisionLog;
  private readonly evaluation: Evaluation;
  private readonly loop: EvaluationLoop;
  private readonly lease: PrimaryLeaseFence;
  private readonly clock: Clock;
  private readonly startedAt: string;
  private stopping = false;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(parts: SitterParts) {
    const { config, log, postgres } = parts;
    this.config = config;
    this.self = peerInfoOf(config);
    this.log = log;
    this.node = parts.node;
    this.store = parts.store;
    this.postgres = postgres;
    this.backend = parts.backend;
    this.edge = parts.edge;
    this.tls = parts.tls ?? null;
    this.clock = parts.clock ?? systemClock;
    this.startedAt = new Date(this.clock.nowMs()).toISOString();
    this.facts = new FactsKeeper(parts.facts, parts.initialFacts);
    this.hasPreviousData = parts.hasPreviousData;
    this.decisions = new DecisionLog({ log, metrics: parts.metrics });
    const t = config.timeouts;
    this.monitor = new PgMonitor({ postgres, intervalMs: t.pgHealthIntervalMs, timeoutMs: t.pgHealthTimeoutMs, log });
    this.heartbeat = new Heartbeat({
      selfId: this.self.id,
      query: (sql, params, timeoutMs) => postgres.queryWithTimeout(sql, params, timeoutMs),
      role: () => {
        const state = this.store.getState().state;
        const pg = this.monitor.status();
        return {
          writablePrimary: roleIn(state, this.self.id).role === 'primary' && pg.writable,
          online: pg.online && pg.healthy,
          generation: state?.generation ?? null,
        };
      },
      log,
    });
    const zfs = parts.zfs;
    const zfsConfig = config.zfs;
    this.snapshotter =
      zfs !== null && zfsConfig !== undefined
        ? new Snapshotter({
            zfs,
            dataset: zfsConfig.dataset,
            intervalMs: zfsConfig.snapshotIntervalMs,
            retentionCount: zfsConfig.snapshotRetention,
            isHealthy: () => this.monitor.status().healthy,
            log,
          })
        : null;
    this.sources = new HeldSourcePostgres({
      selfId: this.self.id,
      replicationUser: postgres.replicationUser,
      replicationPassword: () => postgres.currentReplicationPassword,
      timeoutMs: t.pgHealthTimeoutMs,
      ...(parts.tls != null ? { ssl: ((tls: ReloadableTls) => () => tls.material.options)(parts.tls) } : {}),
    });
    this.credentials = parts.credentials ?? new ShardCredentials(config);
    this.pgCredentials = new PgCredentials({
      target: pgCredentialsTargetOf(postgres),
      credentials: this.credentials,
      role: () => roleIn(this.store.getState().state, this.self.id),
      writable: () => this.monitor.status().writable,
      upstreamAccepts: (upstream, password) => this.sources.acceptsPassword(upstream, password),
      log,
    });
    this.reconciler = new Reconciler({
      self: this.self,
      postgres,
      backend: parts.backend,
      log,
      prepareStorage: async () => {
        if (zfs === null || zfsConfig === undefined) return;
        await prepareZfsStorage({ zfs, dataset: zfsConfig.dataset, pgDataDir: postgres.dataDir, pgUser: config.postgres.user, log });
      },
      onRebuilt: (from, generation, result) => this.onRebuilt(from, generation, result),
      sourcePromoted: (source) => this.sources.promoted(source),
      sourceOnline: (source) => this.sources.online(source),
      mayInitdb: () => initdbAllowed({ state: this.store.getState().state, selfId: this.self.id, hasPreviousData: this.hasPreviousData, facts: this.facts }),
      onInitdb: () => this.facts.update({ initdbDone: true }),
    });
    this.pgPeers = new PgPeerHosts({
      postgres,
      peers: () => pgPeersOf({ self: this.self, members: config.raft.members, state: this.store.getState().state, active: this.store.activePeers() }),
      log,
    });
    this.shardSettings = new ShardSettingsKeeper({ target: postgres, settings: () => this.store.getSettings(), ready: () => this.evaluation.storeCaughtUp, log,
    });
    postgres.useShardSettings(() => this.store.getSettings());
    const hooksConfig = config.hooks ?? HOOKS_CONFIG_DEFAULT;
    this.hooks = new SitterHooks({
      runner: new HookRunner({ config: hooksConfig, log, observer: parts.metrics }),
      self: this.self,
      observe: () => {
        const { state, version } = this.store.getState();
        return { state, version, activePeers: this.store.activePeers(), role: roleIn(state, this.self.id).role };
      },
      heartbeatIntervalMs: hooksConfig.heartbeatIntervalMs,
      log,
    });
    this.pgOps = new PostgresOps({
      peerId: this.self.id, postgres, role: () => roleIn(this.store.getState().state, this.self.id).role, kick: () => { this.loop.kick(); }, log,
    });
    // An operator's restart of PostgreSQL runs between two evaluations, never during one.
    this.loop = new EvaluationLoop({ evaluate: async () => { await this.pgOps.runQueued(); await this.evaluation.evaluate(); }, clock: this.clock, log });
    const kick = (): void => { this.loop.kick(); };
    const kickSoon = (): void => { this.loop.kickSoon(); };
    const sessions = new SessionKeeper({
      self: this.self,
      ...(config.tags === undefined ? {} : { tags: config.tags }),
      store: this.store,
      unhealthyForMs: (nowMs) => {
        const shouldRun = pgShouldRun({ role: this.decisions.last?.role, rebuilding: this.reconciler.rebuildStatus().running, leaseFenced: this.lease.holding });
        return this.monitor.unhealthyForMs(nowMs, shouldRun, this.reconciler.lastActivityMs());
      },
      unhealthyTimeoutMs: t.pgUnhealthyTimeoutMs,
      decisions: this.decisions,
      clock: this.clock,
      log,
      retrySoon: kickSoon,
    });
    const leader = new LeaderPlacement({
      selfId: this.self.id, raft: this.node, transferTimeoutMs: 4 * config.raft.electionTicks * config.raft.tickMs, decisions: this.decisions, log,
    });
    const streams = new StreamStallWatch({
      pg: standbyProbeOf(postgres),
      reconciler: this.reconciler,
      active: () => this.store.activePeers(),
      state: () => this.store.getState().state,
      decisions: this.decisions,
      stallLimitMs: 10 * t.sessionTimeoutMs,
      retrySoon: kickSoon,
      primaryHistory: (upstream) => this.sources.timelineHistory(upstream),
      primaryReadOnly: (upstream) => this.sources.readOnly(upstream),
    });
    this.lease = new PrimaryLeaseFence({
      leaseClock: new LeaseClock(t.sessionTimeoutMs),
      nowMs: () => performance.now(),
      renewedAtMs: () => this.store.leaseRenewedAtMs(),
      isPrimary: () => roleIn(this.store.getState().state, this.self.id).role === 'primary',
      subscribe: (changed) => {
        const offRenewed = this.store.onLeaseRenewed(changed);
        const offState = this.store.on('state', changed);
        return () => { offRenewed(); offState(); };
      },
      stopPostgres: () => postgres.stop('immediate'),
      invalidate: () => { this.reconciler.invalidate(); },
      kick,
      log,
    });
    this.evaluation = new Evaluation({
      lease: this.lease,
      self: this.self,
      config: { oneNodeWriteMode: config.oneNodeWriteMode, autoRebuild: config.rebuild.automatic },
      store: this.store,
      pgStatus: () => this.monitor.status(),
      postgres,
      history: { current: () => this.monitor.history(), read: (positions) => this.monitor.readHistory(positions) },
      hasPreviousData: this.hasPreviousData,
      facts: this.facts,
      reconciler: this.reconciler,
      sessions,
      leader,
      streams,
      decisions: this.decisions,
      clock: this.clock,
      log,
      kick,
      kickSoon,
      onCaughtUp: () => { this.shardSettings.changed(); },
    });
  }

  async start(): Promise<void> {
    await this.edge.prepare?.();
    await this.node.start();
    this.store.start();
    await this.edge.listen();
    this.monitor.start();
    this.heartbeat.start();
    this.snapshotter?.start();
    this.unsubscribe.push(
      this.store.on('state', () => { this.loop.kick(); }),
      this.store.on('peers', () => { this.loop.kick(); }),
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
    this.monitor.on('change', () => { this.loop.kick(); });
    this.postgres.on('exit', (e) => {
      if (!e.expected) {
        this.log.warn({ decision: 'pg-exited', pid: e.pid, code: e.code, signal: e.signal }, 'PostgreSQL exited unexpectedly; it will be restarted if its role needs it');
        this.reconciler.invalidate();
      }
      this.loop.kick();
    });
    this.log.info({ api: this.self.apiUrl, raft: `${this.config.raft.listen}:${this.config.raft.port}` }, 'sitter started');
    this.hooks.start();
    this.lease.start();
    this.loop.start();
    this.pgCredentials.start();
  }

  /**
   * SIGHUP: the credentials of the configuration file read again (`next`): the shard secrets and
   * admin tokens accepted, the secret this peer proves itself with. Raft, the backup routes and the
   * API read them at each new connection or request; PostgreSQL's role passwords follow
   * (pg-credentials.ts). Throws a ConfigError (and keeps the current set) for one that would cut
   * this peer off (credentials.ts).
   */
  reloadCredentials(next: SitterConfig): 'reloaded' | 'unchanged' {
    const changed = this.credentials.update(next);
    const summary = this.credentials.summary();
    if (!changed) {
      this.log.info({ decision: 'credentials-reload', outcome: 'unchanged', credentials: credentialsLogFields(summary), reason: 'the credentials did not change' }, 'SIGHUP: credentials unchanged');
      return 'unchanged';
    }
    this.node.setSecrets(next.secret, next.acceptedSecrets ?? []);
    this.log.info({ decision: 'credentials-reload', outcome: 'reloaded', credentials: credentialsLogFields(summary), reason: 'the configuration file changed' },
      `SIGHUP: credentials reloaded (shard secret ${summary.secret}, ${summary.acceptedSecrets.length} more accepted; admin token ${summary.adminToken}, ${summary.acceptedAdminTokens.length} more accepted)`);
    this.pgCredentials.changed();
    return 'reloaded';
  }

  /**
   * SIGHUP: reads the certificate files again. A changed, valid set serves every new connection
   * (API, Raft, PostgreSQL); a bad one is refused and the current one stays (GET /status says why).
   */
  async reloadTls(): Promise<'reloaded' | 'unchanged' | 'failed' | 'no-tls'> {
    if (this.tls === null) {
      this.log.info({ decision: 'tls-reload', reason: 'no tls in the configuration' }, 'SIGHUP: nothing to reload');
      return 'no-tls';
    }
    const outcome = await this.tls.reload();
    if (outcome === 'reloaded') await this.postgres.reloadTls();
    return outcome;
  }

  /** Stops everything: the session first (so that the others act at once), then PostgreSQL, then Raft. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const u of this.unsubscribe) u();
    this.lease.stop();
    this.pgCredentials.stop();
    await this.loop.stop();
    await this.pgCredentials.settledRun();
    await this.snapshotter?.stop();
    this.heartbeat.stop();
    await this.hooks.stop();
    await this.pgPeers.settled();
    this.shardSettings.stop();
    await this.shardSettings.settled();
    this.monitor.stop();
    this.sources.close('the sitter is stopping');
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
    this.loop.kick();
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
      lastDecision: this.decisions.record,
      rebuild: this.reconciler.rebuildStatus(),
      startedAt: this.startedAt,
      // The longest step of one evaluation without progress: a stop escalated once (fast, then
      // immediate), then a start with crash recovery; at least 5 minutes.
      loop: this.loop.status(this.reconciler.lastActivityMs(), Math.max(5 * 60_000, this.config.timeouts.pgStartTimeoutMs + 2 * DEFAULT_STOP_TIMEOUT_MS + 60_000)),
      ...(roleIn(state, this.self.id).role === 'primary' ? { lease: this.lease.status() } : {}),
      heartbeat: this.heartbeat.status(),
      hooks: this.hooks.status(),
      settings: this.shardSettings.status(),
      ...(this.tls !== null ? { tls: this.tls.status() } : {}),
      credentials: this.credentials.summary(),
      ...(this.config.tags === undefined ? {} : { tags: this.config.tags }),
      peerTags: this.store.activeTags(),
    };
  }

  private async onRebuilt(from: PeerInfo, generation: number | null, result: RestoreResult): Promise<void> {
    this.sources.close('the copy is done');
    if (generation !== null) await this.facts.update({ rebuiltFrom: { primaryId: from.id, generation } });
    this.log.info({ decision: 'rebuilt', from: from.id, generation, method: result.method }, `data rebuilt from ${from.id}`);
    this.hooks.rebuildDone({ source: from, generation, method: result.method });
  }
}
