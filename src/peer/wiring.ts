// The sitter's wiring: builds its jobs (one file each) on the parts it is given (sitter-parts.ts:
// small interfaces over this peer's PostgreSQL, Raft node, other peers' PostgreSQL, backup
// backend, facts file and clock) and ties them to each other. Nothing runs here: sitter.ts starts
// and stops what this builds. The concrete parts are opened by src/cli/sitter-wiring.ts.
import { performance } from 'node:perf_hooks';
import type { RestoreResult } from '../backup/types.js';
import { roleIn, type PeerInfo } from '../model/index.js';
import { Snapshotter } from '../zfs/index.js';
import { everyFrom, systemClock, type Clock } from './clock.js';
import { peerInfoOf } from './config.js';
import { ShardCredentials } from './credentials.js';
import { DecisionLog } from './decision-log.js';
import { Evaluation } from './evaluation.js';
import { FactsKeeper, initdbAllowed } from './facts.js';
import { Heartbeat } from './heartbeat.js';
import { HookRunner } from './hook-runner.js';
import { HOOKS_CONFIG_DEFAULT } from './hooks.js';
import { LeaderPlacement } from './leader-placement.js';
import { LeaseClock, PrimaryLeaseFence } from './lease-fence.js';
import { EvaluationLoop } from './loop.js';
import { PgCredentials } from './pg-credentials.js';
import { PgMonitor } from './pg-monitor.js';
import { PostgresOps } from './pg-ops.js';
import { pgPeersOf, PgPeerHosts } from './pg-peers.js';
import { pgCredentialsTargetOf, standbyProbeOf } from './postgres-effects.js';
import { Reconciler } from './reconciler.js';
import { pgShouldRun } from './rules/index.js';
import { SessionKeeper } from './sessions.js';
import { ShardSettingsKeeper } from './shard-settings.js';
import { SitterHooks } from './sitter-hooks.js';
import type { SitterParts } from './sitter-parts.js';
import { prepareZfsStorage } from './storage.js';
import { StreamStallWatch } from './stream-stall.js';

/** The sitter's jobs, built and tied to each other (none runs yet). */
export interface SitterJobs {
  readonly self: PeerInfo;
  readonly clock: Clock;
  /** The shard secret and admin tokens in force (reloadCredentials on SIGHUP). */
  readonly credentials: ShardCredentials;
  readonly decisions: DecisionLog;
  readonly monitor: PgMonitor;
  /** The replication heartbeat: written on the writable primary, read on standbys. */
  readonly heartbeat: Heartbeat;
  /** Periodic zfs snapshots (null without zfs). */
  readonly snapshotter: Snapshotter | null;
  /** PostgreSQL's role passwords through a rotation of the shard secret. */
  readonly pgCredentials: PgCredentials;
  readonly reconciler: Reconciler;
  /** pg_hba.conf admits the replication role from the peers' hosts only: kept current. */
  readonly pgPeers: PgPeerHosts;
  /** The shard-wide PostgreSQL settings, applied to this peer's PostgreSQL (manatee-shard.conf). */
  readonly shardSettings: ShardSettingsKeeper;
  /** Operators' executables run on shard events (hooks.ts); they never block the loop. */
  readonly hooks: SitterHooks;
  /** An operator's reload or restart of this peer's PostgreSQL (manatee-adm reload / restart). */
  readonly pgOps: PostgresOps;
  readonly loop: EvaluationLoop;
  readonly lease: PrimaryLeaseFence;
  readonly evaluation: Evaluation;
}

/** Builds the jobs of one sitter on its parts. */
export function wireJobs(parts: SitterParts): SitterJobs {
  const { config, log, postgres, store, sources } = parts;
  const self = peerInfoOf(config);
  const clock = parts.clock ?? systemClock;
  const every = everyFrom(parts.node.every?.bind(parts.node));
  const facts = new FactsKeeper(parts.facts, parts.initialFacts);
  const hasPreviousData = parts.hasPreviousData;
  const decisions = new DecisionLog({ log, metrics: parts.metrics });
  const role = (): ReturnType<typeof roleIn> => roleIn(store.getState().state, self.id);
  const t = config.timeouts;
  const monitor = new PgMonitor({ postgres, intervalMs: t.pgHealthIntervalMs, timeoutMs: t.pgHealthTimeoutMs, log, every });
  const heartbeat = new Heartbeat({
    selfId: self.id,
    query: (sql, params, timeoutMs) => postgres.queryWithTimeout(sql, params, timeoutMs),
    role: () => {
      const state = store.getState().state;
      const pg = monitor.status();
      return {
        writablePrimary: roleIn(state, self.id).role === 'primary' && pg.writable,
        online: pg.online && pg.healthy,
        generation: state?.generation ?? null,
      };
    },
    log,
    every,
  });
  const zfs = parts.zfs;
  const zfsConfig = config.zfs;
  const snapshotter =
    zfs !== null && zfsConfig !== undefined
      ? new Snapshotter({
          zfs,
          dataset: zfsConfig.dataset,
          intervalMs: zfsConfig.snapshotIntervalMs,
          retentionCount: zfsConfig.snapshotRetention,
          isHealthy: () => monitor.status().healthy,
          log,
        })
      : null;
  const credentials = parts.credentials ?? new ShardCredentials(config);
  const pgCredentials = new PgCredentials({
    target: pgCredentialsTargetOf(postgres),
    credentials,
    role,
    writable: () => monitor.status().writable,
    upstreamAccepts: (upstream, password) => sources.acceptsPassword(upstream, password),
    tls: config.tls !== undefined,
    log,
    every,
  });
  const hooksConfig = config.hooks ?? HOOKS_CONFIG_DEFAULT;
  const hooks = new SitterHooks({
    runner: new HookRunner({ config: hooksConfig, log, observer: parts.metrics }),
    self,
    observe: () => {
      const { state, version } = store.getState();
      return { state, version, activePeers: store.activePeers(), role: roleIn(state, self.id).role };
    },
    heartbeatIntervalMs: hooksConfig.heartbeatIntervalMs,
    log,
  });
  const onRebuilt = async (from: PeerInfo, generation: number | null, result: RestoreResult): Promise<void> => {
    sources.close('the copy is done');
    if (generation !== null) await facts.update({ rebuiltFrom: { primaryId: from.id, generation } });
    log.info({ decision: 'rebuilt', from: from.id, generation, method: result.method }, `data rebuilt from ${from.id}`);
    hooks.rebuildDone({ source: from, generation, method: result.method });
  };
  const reconciler = new Reconciler({
    self,
    postgres,
    backend: parts.backend,
    log,
    prepareStorage: async () => {
      if (zfs === null || zfsConfig === undefined) return;
      await prepareZfsStorage({ zfs, dataset: zfsConfig.dataset, pgDataDir: postgres.dataDir, pgUser: config.postgres.user, log });
    },
    onRebuilt,
    sourcePromoted: (source) => sources.promoted(source),
    sourceOnline: (source) => sources.online(source),
    mayInitdb: () => initdbAllowed({ state: store.getState().state, selfId: self.id, hasPreviousData, facts }),
    onInitdb: () => facts.update({ initdbDone: true }),
  });
  const pgPeers = new PgPeerHosts({
    postgres,
    peers: () => pgPeersOf({ self, members: config.raft.members, state: store.getState().state, active: store.activePeers() }),
    log,
  });
  const shardSettings = new ShardSettingsKeeper({ target: postgres, settings: () => store.getSettings(), ready: () => evaluation.storeCaughtUp, log, every });
  postgres.useShardSettings(() => store.getSettings());
  const pgOps = new PostgresOps({ peerId: self.id, postgres, role: () => role().role, kick: () => { loop.kick(); }, log });
  // An operator's restart of PostgreSQL runs between two evaluations, never during one.
  const loop = new EvaluationLoop({ evaluate: async () => { await pgOps.runQueued(); await evaluation.evaluate(); }, clock, log, every });
  const kick = (): void => { loop.kick(); };
  const kickSoon = (): void => { loop.kickSoon(); };
  const sessions = new SessionKeeper({
    self,
    ...(config.tags === undefined ? {} : { tags: config.tags }),
    store,
    unhealthyForMs: (nowMs) => {
      const shouldRun = pgShouldRun({ role: decisions.last?.role, rebuilding: reconciler.rebuildStatus().running, leaseFenced: lease.holding });
      return monitor.unhealthyForMs(nowMs, shouldRun, reconciler.lastActivityMs());
    },
    unhealthyTimeoutMs: t.pgUnhealthyTimeoutMs,
    decisions,
    clock,
    log,
    retrySoon: kickSoon,
  });
  const leader = new LeaderPlacement({
    selfId: self.id, raft: parts.node, transferTimeoutMs: 4 * config.raft.electionTicks * config.raft.tickMs, decisions, log,
  });
  const streams = new StreamStallWatch({
    pg: standbyProbeOf(postgres, { timeoutMs: t.pgHealthTimeoutMs, log, healthy: () => monitor.status().healthy }),
    reconciler,
    active: () => store.activePeers(),
    state: () => store.getState().state,
    decisions,
    stallLimitMs: 10 * t.sessionTimeoutMs,
    retrySoon: kickSoon,
    primaryHistory: (upstream) => sources.timelineHistory(upstream),
    primaryReadOnly: (upstream) => sources.readOnly(upstream),
  });
  const lease = new PrimaryLeaseFence({
    leaseClock: new LeaseClock(t.sessionTimeoutMs),
    nowMs: () => performance.now(),
    renewedAtMs: () => store.leaseRenewedAtMs(),
    isPrimary: () => role().role === 'primary',
    subscribe: (changed) => {
      const offRenewed = store.onLeaseRenewed(changed);
      const offState = store.on('state', changed);
      return () => { offRenewed(); offState(); };
    },
    stopPostgres: () => postgres.stop('immediate'),
    invalidate: () => { reconciler.invalidate(); },
    kick,
    log,
  });
  const evaluation = new Evaluation({
    lease,
    self,
    config: { oneNodeWriteMode: config.oneNodeWriteMode, autoRebuild: config.rebuild.automatic },
    store,
    pgStatus: () => monitor.status(),
    postgres,
    history: { current: () => monitor.history(), read: (positions) => monitor.readHistory(positions) },
    hasPreviousData,
    facts,
    reconciler,
    sessions,
    leader,
    streams,
    decisions,
    clock,
    log,
    kick,
    kickSoon,
    onCaughtUp: () => { shardSettings.changed(); },
  });
  return {
    self, clock, credentials, decisions, monitor, heartbeat, snapshotter, pgCredentials, reconciler, pgPeers, shardSettings, hooks, pgOps, loop, lease, evaluation,
  };
}
