// Prometheus metrics of one sitter (GET /metrics), in a Registry of its own: several sitters in
// one process (tests) must not mix their figures, as they would in prom-client's global registry.
// Gauges are set from the sitter's status at each scrape (collect); counters count events as they
// happen (decisions from the sitter's loop, primary changes seen on the committed state).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { type HookObserver } from '../peer/hooks.js';
import { HOOK_EVENTS, HOOK_OUTCOMES, type HookEvent, type HookOutcome, roleIn, type PeerRole, type SitterStatus, type ClusterState } from '../model/index.js';

const ROLES: readonly PeerRole[] = ['primary', 'sync', 'async', 'deposed', 'unassigned'];
/** Decision kinds are a closed set in the rules; a bound anyway, so that a bug cannot grow the label set without limit. */
const DECISION_KINDS_MAX = 64;

export class ApiMetrics implements HookObserver {
  readonly registry = new Registry();
  private readonly role = new Gauge({ name: 'manatee_role', help: 'This peer\'s role in the committed state (1 for the current role, 0 for the others)', labelNames: ['role'] as const, registers: [this.registry] });
  private readonly generation = new Gauge({ name: 'manatee_generation', help: 'The committed generation (-1 before initial setup)', registers: [this.registry] });
  private readonly stateVersion = new Gauge({ name: 'manatee_state_version', help: 'The store version of the committed cluster state', registers: [this.registry] });
  private readonly frozen = new Gauge({ name: 'manatee_frozen', help: '1 when the shard is frozen', registers: [this.registry] });
  private readonly raftTerm = new Gauge({ name: 'manatee_raft_term', help: 'Raft term as this peer knows it', registers: [this.registry] });
  private readonly raftCommit = new Gauge({ name: 'manatee_raft_commit_index', help: 'Raft commit index on this peer', registers: [this.registry] });
  private readonly raftApplied = new Gauge({ name: 'manatee_raft_applied_index', help: 'Raft applied index on this peer', registers: [this.registry] });
  private readonly raftLeader = new Gauge({ name: 'manatee_raft_is_leader', help: '1 when this peer is the Raft leader', registers: [this.registry] });
  private readonly raftLeaderInfo = new Gauge({ name: 'manatee_raft_leader', help: 'The Raft leader this peer knows (one series, value 1, labelled with its id; none when no leader is known)', labelNames: ['leader'] as const, registers: [this.registry] });
  private readonly raftHasLeader = new Gauge({ name: 'manatee_raft_has_leader', help: '1 when this peer knows a Raft leader', registers: [this.registry] });
  private readonly sessions = new Gauge({ name: 'manatee_sessions', help: 'Active peers (open sessions) in the store', registers: [this.registry] });
  private readonly pgUp = new Gauge({ name: 'manatee_postgres_up', help: '1 when this peer\'s PostgreSQL is online', registers: [this.registry] });
  private readonly pgHealthy = new Gauge({ name: 'manatee_postgres_healthy', help: '1 when this peer\'s PostgreSQL passed its last health check', registers: [this.registry] });
  private readonly pgWritable = new Gauge({ name: 'manatee_postgres_writable', help: '1 when this peer\'s PostgreSQL accepts writes', registers: [this.registry] });
  private readonly checkLatency = new Gauge({ name: 'manatee_health_check_latency_seconds', help: 'Duration of the last PostgreSQL health check', registers: [this.registry] });
  private readonly checkLatencyHist = new Histogram({
    name: 'manatee_health_check_duration_seconds',
    help: 'PostgreSQL health check durations (one observation per check seen at a scrape)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  private readonly lagBytes = new Gauge({ name: 'manatee_replication_lag_bytes', help: 'Replay lag of each standby that replicates from this peer (pg_stat_replication)', labelNames: ['upstream', 'downstream', 'state'] as const, registers: [this.registry] });
  private readonly lagSeconds = new Gauge({ name: 'manatee_replication_lag_seconds', help: 'Age of this peer\'s newest replayed data, from the heartbeat row (0 on the primary)', labelNames: ['peer', 'upstream'] as const, registers: [this.registry] });
  private readonly decisions = new Counter({ name: 'manatee_decisions_total', help: 'Evaluations of Manatee\'s rules on this peer, by decision kind', labelNames: ['kind'] as const, registers: [this.registry] });
  private readonly failovers = new Counter({ name: 'manatee_failovers_total', help: 'Primary changes seen in the committed state since this sitter started (takeovers and switchovers)', registers: [this.registry] });
  private readonly pendingRestart = new Gauge({ name: 'manatee_postgres_pending_restart', help: 'Settings whose new value waits for a restart of this peer\'s PostgreSQL (1 per setting)', labelNames: ['setting'] as const, registers: [this.registry] });
  private readonly pendingRestartCount = new Gauge({ name: 'manatee_postgres_pending_restart_settings', help: 'How many settings wait for a restart of this peer\'s PostgreSQL', registers: [this.registry] });
  private readonly rejectedSetting = new Gauge({ name: 'manatee_postgres_rejected_setting', help: 'Lines of this peer\'s PostgreSQL configuration files that it refuses (1 per setting and file; blocks_reload="true": an unknown name or a syntax error, which makes a reload apply no change at all); PostgreSQL would not start with them', labelNames: ['setting', 'file', 'blocks_reload'] as const, registers: [this.registry] });
  private readonly rejectedCount = new Gauge({ name: 'manatee_postgres_rejected_settings', help: 'How many lines of this peer\'s PostgreSQL configuration files it refuses', registers: [this.registry] });
  private readonly settingsVersion = new Gauge({ name: 'manatee_shard_settings_applied_version', help: 'The version of the shard-wide settings written to this peer\'s PostgreSQL (-1: none yet)', registers: [this.registry] });
  private readonly rebuildRunning = new Gauge({ name: 'manatee_rebuild_running', help: '1 while this peer rebuilds its data', registers: [this.registry] });
  private readonly rebuildPercent = new Gauge({ name: 'manatee_rebuild_progress_percent', help: 'Progress of the running rebuild (-1 when unknown or none)', registers: [this.registry] });
  private readonly rebuildBytes = new Gauge({ name: 'manatee_rebuild_bytes_done', help: 'Bytes copied by the running rebuild', registers: [this.registry] });

  private readonly tlsExpiry = new Gauge({ name: 'manatee_tls_certificate_expiry_seconds', help: 'Seconds until this peer\'s TLS certificate (cert) or the shard CA\'s (ca) expires; negative once expired; absent without TLS', labelNames: ['certificate'] as const, registers: [this.registry] });
  private readonly credentialsInfo = new Gauge({
    name: 'manatee_credentials_info',
    help: 'The shard secrets and admin tokens this peer holds, as the fingerprints of GET /status credentials (never the values): one series per value, 1; kind: secret or admin_token; use: current (the secret it proves itself with, its configured token) or accepted (also accepted, during a rotation)',
    labelNames: ['kind', 'use', 'fingerprint'] as const,
    registers: [this.registry],
  });
  private readonly tlsReloadFailed = new Gauge({ name: 'manatee_tls_reload_failed', help: '1 when the last TLS reload (SIGHUP) was refused and the previous certificate stays', registers: [this.registry] });

  // Hooks: event and outcome are closed sets (HOOK_EVENTS × HOOK_OUTCOMES), so the label set is bounded.
  private readonly hookRuns = new Counter({ name: 'manatee_hook_runs_total', help: 'Hook runs on this peer by event and outcome (ok, failed, timedOut, dropped: not run because its queue was full or the sitter stopped)', labelNames: ['event', 'outcome'] as const, registers: [this.registry] });
  private readonly hookDuration = new Histogram({
    name: 'manatee_hook_duration_seconds',
    help: 'Duration of hook runs that started (timed-out runs included), by event',
    labelNames: ['event'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  private readonly kinds = new Set<string>();
  private lastPrimaryId: string | null = null;
  private lastCheckAt: string | null = null;

  /** One evaluation of the rules ended in this decision kind. */
  recordDecision(kind: string): void {
    if (!this.kinds.has(kind)) {
      if (this.kinds.size >= DECISION_KINDS_MAX) return;
      this.kinds.add(kind);
    }
    this.decisions.inc({ kind });
  }

  /** HookObserver: one hook run ended (or was dropped, with no duration). */
  hookOutcome(event: HookEvent, outcome: HookOutcome, durationMs: number | null): void {
    // The hook module's closed sets; a check anyway, since the labels come from outside this file.
    if (!HOOK_EVENTS.includes(event) || !HOOK_OUTCOMES.includes(outcome)) return;
    this.hookRuns.inc({ event, outcome });
    if (durationMs !== null) this.hookDuration.observe({ event }, durationMs / 1000);
  }

  /** A committed state was seen: a change of primary counts as a failover. */
  observeState(state: ClusterState | null): void {
    if (state === null) return;
    if (this.lastPrimaryId !== null && state.primary.id !== this.lastPrimaryId) this.failovers.inc();
    this.lastPrimaryId = state.primary.id;
  }

  failoverCount(): Promise<number> {
    return this.failovers.get().then((m) => m.values[0]?.value ?? 0);
  }

  /** Sets every gauge from a fresh status, then renders the registry. */
  async render(status: SitterStatus): Promise<string> {
    this.collect(status);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  collect(s: SitterStatus): void {
    this.observeState(s.state);
    for (const r of ROLES) this.role.set({ role: r }, r === s.role ? 1 : 0);
    this.generation.set(s.state?.generation ?? -1);
    this.stateVersion.set(s.stateVersion);
    this.frozen.set(s.state?.freeze !== undefined ? 1 : 0);
    this.raftTerm.set(s.raft.term);
    this.raftCommit.set(s.raft.commit);
    this.raftApplied.set(s.raft.applied);
    this.raftLeader.set(s.raft.leader === s.raft.id ? 1 : 0);
    this.raftHasLeader.set(s.raft.leader === null ? 0 : 1);
    // One series at most: the old leader's goes when the leader changes.
    this.raftLeaderInfo.reset();
    if (s.raft.leader !== null) this.raftLeaderInfo.set({ leader: s.raft.leader }, 1);
    this.sessions.set(s.activePeers.length);
    this.pgUp.set(s.postgres.online ? 1 : 0);
    this.pgHealthy.set(s.postgres.healthy ? 1 : 0);
    this.pgWritable.set(s.postgres.writable ? 1 : 0);
    if (s.postgres.checkLatencyMs !== null) {
      this.checkLatency.set(s.postgres.checkLatencyMs / 1000);
      if (s.postgres.lastCheckAt !== this.lastCheckAt) this.checkLatencyHist.observe(s.postgres.checkLatencyMs / 1000);
      this.lastCheckAt = s.postgres.lastCheckAt;
    }
    // Links come and go with the topology: only the current ones are exported.
    this.lagBytes.reset();
    for (const r of s.replication) {
      if (r.replayLagBytes !== null) this.lagBytes.set({ upstream: s.peer.id, downstream: r.applicationName, state: r.state }, r.replayLagBytes);
    }
    this.lagSeconds.reset();
    const lag = s.heartbeat?.lagSeconds ?? null;
    if (lag !== null) this.lagSeconds.set({ peer: s.peer.id, upstream: roleIn(s.state, s.peer.id).upstream?.id ?? '' }, lag);
    // Configured events show zeros before their first run, so that rate() and alerts see them from the start.
    for (const event of Object.keys(s.hooks?.events ?? {})) {
      if (!(HOOK_EVENTS as readonly string[]).includes(event)) continue;
      for (const outcome of HOOK_OUTCOMES) this.hookRuns.inc({ event, outcome }, 0);
    }
    this.pendingRestart.reset();
    for (const name of s.settings?.pendingRestart ?? []) this.pendingRestart.set({ setting: name }, 1);
    this.pendingRestartCount.set(s.settings?.pendingRestart.length ?? 0);
    this.settingsVersion.set(s.settings?.appliedVersion ?? -1);
    this.rejectedSetting.reset();
    for (const r of s.settings?.rejected ?? []) this.rejectedSetting.set({ setting: r.name ?? '', file: r.file ?? '', blocks_reload: String(r.blocksReload) }, 1);
    this.rejectedCount.set(s.settings?.rejected.length ?? 0);
    this.tlsExpiry.reset();
    if (s.tls !== undefined) {
      this.tlsExpiry.set({ certificate: 'cert' }, s.tls.expiresInSeconds);
      this.tlsExpiry.set({ certificate: 'ca' }, s.tls.caExpiresInSeconds);
    }
    this.tlsReloadFailed.set(s.tls?.reloadError != null ? 1 : 0);
    // Rebuilt at each scrape: a value dropped after a rotation leaves no series. Bounded by the configuration's lists.
    this.credentialsInfo.reset();
    const c = s.credentials;
    if (c !== undefined) {
      this.credentialsInfo.set({ kind: 'secret', use: 'current', fingerprint: c.secret }, 1);
      for (const f of c.acceptedSecrets) this.credentialsInfo.set({ kind: 'secret', use: 'accepted', fingerprint: f }, 1);
      this.credentialsInfo.set({ kind: 'admin_token', use: 'current', fingerprint: c.adminToken }, 1);
      for (const f of c.acceptedAdminTokens) this.credentialsInfo.set({ kind: 'admin_token', use: 'accepted', fingerprint: f }, 1);
    }
    this.rebuildRunning.set(s.rebuild.running ? 1 : 0);
    this.rebuildPercent.set(s.rebuild.running ? (s.rebuild.progress?.percent ?? -1) : -1);
    this.rebuildBytes.set(s.rebuild.running ? (s.rebuild.progress?.bytesDone ?? 0) : 0);
  }
}
