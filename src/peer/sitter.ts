// The sitter: one per peer. Given this peer's Raft node, cluster store, PostgreSQL, other peers'
// PostgreSQL, backup backend and facts file, each behind a small interface (sitter-parts.ts; the
// cli opens the concrete ones in src/cli/sitter-wiring.ts, which also puts the HTTP API around
// it), it has wiring.ts build its jobs, one file each, and starts and stops them:
//   loop.ts              the evaluation loop (one evaluation at a time, woken by changes and a timer)
//   evaluation.ts        one evaluation of the rules (src/peer/rules) and acting on its decision
//   sessions.ts          this peer's session (closed while PostgreSQL is hung)
//   fencing.ts           the fence before a generation change
//   lease-fence.ts       the primary's lease: PostgreSQL stopped before the session can expire
//   leader-placement.ts  the Raft leader kept off the write path
//   stream-stall.ts      standbys that cannot stream
//   reconciler.ts        PostgreSQL made to match the decision (start, stop, promote, rebuild)
//   facts.ts             what this peer remembers across restarts (fsynced)
//   source-postgres.ts   other peers' PostgreSQL, for a rebuild
//   postgres-effects.ts  this peer's PostgreSQL behind the jobs' small interfaces
//   heartbeat.ts, hooks.ts, pg-monitor.ts, pg-peers.ts, pg-credentials.ts, shard-settings.ts
// Every decision goes through decision-log.ts: one log line, a metric, and GET /status's lastDecision.
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import type { BackupBackend } from '../backup/types.js';
import { DEFAULT_STOP_TIMEOUT_MS } from '../postgres/index.js';
import type { ClusterStore } from '../store/index.js';
import { roleIn, type PeerInfo, type SitterStatus } from '../model/index.js';
import type { ReloadableTls } from '../tls/index.js';
import type { SitterConfig } from './config.js';
import { credentialsLogFields, type ShardCredentials } from './credentials.js';
import type { SitterEdge, SitterParts, SitterPostgres, SitterRaft } from './sitter-parts.js';
import type { SourcePostgres } from './source-postgres.js';
import { wireJobs, type SitterJobs } from './wiring.js';

export class Sitter {
  readonly config: SitterConfig;
  readonly self: PeerInfo;
  readonly log: Logger;
  readonly node: SitterRaft;
  readonly store: ClusterStore;
  readonly postgres: SitterPostgres;
  readonly backend: BackupBackend;
  /** This peer's certificate for every listener and connection (config.tls); null without TLS. */
  readonly tls: ReloadableTls | null;
  /** The HTTP API around this sitter. */
  private readonly edge: SitterEdge;
  private readonly sources: SourcePostgres;
  private readonly jobs: SitterJobs;
  private readonly startedAt: string;
  private stopping = false;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(parts: SitterParts) {
    this.config = parts.config;
    this.log = parts.log;
    this.node = parts.node;
    this.store = parts.store;
    this.postgres = parts.postgres;
    this.backend = parts.backend;
    this.edge = parts.edge;
    this.sources = parts.sources;
    this.tls = parts.tls ?? null;
    this.jobs = wireJobs(parts);
    this.self = this.jobs.self;
    this.startedAt = new Date(this.jobs.clock.nowMs()).toISOString();
  }

  /** The shard secret and admin tokens in force (reloadCredentials on SIGHUP). */
  get credentials(): ShardCredentials {
    return this.jobs.credentials;
  }

  /** An operator's reload or restart of this peer's PostgreSQL (manatee-adm reload / restart). */
  get pgOps(): SitterJobs['pgOps'] {
    return this.jobs.pgOps;
  }

  async start(): Promise<void> {
    await this.edge.prepare?.();
    await this.node.start();
    this.store.start();
    await this.edge.listen();
    this.jobs.monitor.start();
    this.jobs.heartbeat.start();
    this.jobs.snapshotter?.start();
    this.unsubscribe.push(
      this.store.on('state', () => { this.jobs.loop.kick(); }),
      this.store.on('peers', () => { this.jobs.loop.kick(); }),
    );
    this.unsubscribe.push(
      this.store.on('state', () => { this.jobs.hooks.changed(); }),
      this.store.on('peers', () => { this.jobs.hooks.changed(); }),
      this.store.on('state', () => { this.jobs.pgPeers.update(); }),
      this.store.on('peers', () => { this.jobs.pgPeers.update(); }),
      this.store.on('settings', () => { this.jobs.shardSettings.changed(); }),
    );
    this.postgres.on('started', () => { this.jobs.shardSettings.changed(); });
    this.jobs.shardSettings.start();
    this.jobs.monitor.on('change', () => { this.jobs.loop.kick(); });
    this.postgres.on('exit', (e) => {
      if (!e.expected) {
        this.log.warn({ decision: 'pg-exited', pid: e.pid, code: e.code, signal: e.signal }, 'PostgreSQL exited unexpectedly; it will be restarted if its role needs it');
        this.jobs.reconciler.invalidate();
      }
      this.jobs.loop.kick();
    });
    this.log.info({ api: this.self.apiUrl, raft: `${this.config.raft.listen}:${this.config.raft.port}` }, 'sitter started');
    this.jobs.hooks.start();
    this.jobs.lease.start();
    this.jobs.loop.start();
    this.jobs.pgCredentials.start();
  }

  /**
   * SIGHUP: the credentials of the configuration file read again (`next`): the shard secrets and
   * admin tokens accepted, the secret this peer proves itself with. Raft, the backup routes and the
   * API read them at each new connection or request; PostgreSQL's role passwords follow
   * (pg-credentials.ts). Throws a ConfigError (and keeps the current set) for one that would cut
   * this peer off (credentials.ts).
   */
  reloadCredentials(next: SitterConfig): 'reloaded' | 'unchanged' {
    const changed = this.jobs.credentials.update(next);
    const summary = this.jobs.credentials.summary();
    if (!changed) {
      this.log.info({ decision: 'credentials-reload', outcome: 'unchanged', credentials: credentialsLogFields(summary), reason: 'the credentials did not change' }, 'SIGHUP: credentials unchanged');
      return 'unchanged';
    }
    this.node.setSecrets(next.secret, next.acceptedSecrets ?? []);
    this.log.info({ decision: 'credentials-reload', outcome: 'reloaded', credentials: credentialsLogFields(summary), reason: 'the configuration file changed' },
      `SIGHUP: credentials reloaded (shard secret ${summary.secret}, ${summary.acceptedSecrets.length} more accepted; admin token ${summary.adminToken}, ${summary.acceptedAdminTokens.length} more accepted)`);
    this.jobs.pgCredentials.changed();
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
    this.jobs.lease.stop();
    this.jobs.pgCredentials.stop();
    await this.jobs.loop.stop();
    await this.jobs.pgCredentials.settledRun();
    await this.jobs.snapshotter?.stop();
    this.jobs.heartbeat.stop();
    await this.jobs.hooks.stop();
    await this.jobs.pgPeers.settled();
    this.jobs.shardSettings.stop();
    await this.jobs.shardSettings.settled();
    this.jobs.monitor.stop();
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
    if (o.asSync === undefined) this.jobs.reconciler.requestRebuild();
    else {
      const reason = `an operator's rebuild of the sync, below initWal ${o.asSync.initWal}`;
      this.log.warn({ decision: 'operator-rebuild-sync', ...o.asSync, reason }, `${reason}: it could not take over, so it copies the primary's data afresh`);
      this.jobs.reconciler.requestRebuild({ asSync: { ...o.asSync, reason } });
    }
    this.jobs.loop.kick();
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
      postgres: this.jobs.monitor.status(),
      replication: this.jobs.monitor.replication(),
      raft: { id: raft.id, term: raft.term, leader: raft.leader, role: raft.role, commit: raft.commit, applied: raft.applied },
      state,
      stateVersion: version,
      activePeers: this.store.activePeers(),
      lastDecision: this.jobs.decisions.record,
      rebuild: this.jobs.reconciler.rebuildStatus(),
      startedAt: this.startedAt,
      // The longest step of one evaluation without progress: a stop escalated once (fast, then
      // immediate), then a start with crash recovery; at least 5 minutes.
      loop: this.jobs.loop.status(this.jobs.reconciler.lastActivityMs(), Math.max(5 * 60_000, this.config.timeouts.pgStartTimeoutMs + 2 * DEFAULT_STOP_TIMEOUT_MS + 60_000)),
      ...(roleIn(state, this.self.id).role === 'primary' ? { lease: this.jobs.lease.status() } : {}),
      heartbeat: this.jobs.heartbeat.status(),
      hooks: this.jobs.hooks.status(),
      settings: this.jobs.shardSettings.status(),
      ...(this.tls !== null ? { tls: this.tls.status() } : {}),
      credentials: this.jobs.credentials.summary(),
      ...(this.config.tags === undefined ? {} : { tags: this.config.tags }),
      peerTags: this.store.activeTags(),
    };
  }
}
