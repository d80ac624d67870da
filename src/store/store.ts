// ClusterStore: the client API that the sitter uses, on top of a Consensus (a RaftNode, or the
// in-process group in tests) and the ClusterStateMachine that the consensus applies entries to.
//   - reads: getState() (local, possibly stale), readState() (linearizable, ReadIndex);
//   - writes: putState() (compare-and-set; rejections become typed errors);
//   - this peer's session: openSession(), keepalive() (a message to the leader, on a timer once started),
//     closeSession(); if the session expires anyway, 'sessionExpired' fires and it is reopened;
//   - the leader's expiry loop (see sessions.ts for the design);
//   - watches: 'state', 'peers', 'sessionExpired'.
// Time comes from an injected clock (`now`), so tests drive it.
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import {
  COMMAND_BYTES_MAX,
  encodeCommand,
  isStoreResult,
  type StoreCommand,
  type StoreRejection,
  type StoreResult,
} from './commands.js';
import type { Consensus, LeaderChange } from './consensus.js';
import {
  InvalidStateError,
  STORE_ERR,
  StoreError,
  VersionMismatchError,
} from './errors.js';
import { Listeners } from './listeners.js';
import { SessionLiveness } from './sessions.js';
import type { ClusterStateMachine, PeersChange, SessionRecord, SettingsChange, StateChange } from './state-machine.js';
import type { ShardSettings, VersionedSettings } from './settings.js';
import type { ClusterState, HistoryEntry, PeerId, PeerInfo, PeerTags, Session } from '../model/index.js';
import { ManateeError } from '../errors.js';

/** A periodic callback that can be stopped (ClusterStore.every). */
interface Periodic {
  stop(): void;
}

export interface ClusterStoreOptions {
  readonly machine: ClusterStateMachine;
  readonly consensus: Consensus;
  /** A session silent this long is expired by the leader. */
  readonly sessionTimeoutMs: number;
  /** How often this peer sends a keepalive; default sessionTimeoutMs/3, at most sessionTimeoutMs/2. */
  readonly keepaliveIntervalMs?: number;
  /** How often the leader looks for silent sessions; default sessionTimeoutMs/10, between 10 and 100 ms. */
  readonly expiryCheckIntervalMs?: number;
  /** Timeout of state writes and session opens; default max(2 * sessionTimeoutMs, 5000). */
  readonly proposeTimeoutMs?: number;
  /** Reopen this peer's session when it expires (default true): a partitioned peer rejoins when healed. */
  readonly reopenExpiredSession?: boolean;
  /** Milliseconds since the epoch; default Date.now. */
  readonly now?: () => number;
  /**
   * The lease's monotonic clock, the one of Consensus.leaseRenewedAtMs (default performance.now):
   * when this peer sent its session's open (leaseRenewedAtMs).
   */
  readonly monoNowMs?: () => number;
  readonly log?: Logger;
  /**
   * Asked on the leader when its Raft dial to a peer that holds a session is refused: resolves
   * with what else shows that the peer's process is gone (the sitter's: its PostgreSQL port
   * refuses too), or null when nothing does. When it says gone, the session expires at once
   * instead of sessionTimeoutMs after its last keepalive (expireGone). Absent: by timeout only.
   */
  readonly confirmPeerGone?: (peer: PeerInfo) => Promise<string | null>;
}

export interface VersionedState {
  readonly state: ClusterState | null;
  readonly version: number;
}

export interface SessionExpiredEvent {
  readonly session: Session;
  /** Why this peer learned it: the leader's expiry reason, or a rejected keepalive. */
  readonly reason: string;
}

export interface StoreEvents {
  state: StateChange;
  peers: PeersChange;
  sessionExpired: SessionExpiredEvent;
  settings: SettingsChange;
}

export class ClusterStore {
  readonly machine: ClusterStateMachine;
  readonly consensus: Consensus;
  readonly sessionTimeoutMs: number;
  readonly keepaliveIntervalMs: number;
  readonly expiryCheckIntervalMs: number;
  readonly proposeTimeoutMs: number;

  private readonly now: () => number;
  private readonly monoNowMs: () => number;
  /** When this peer sent the open (monoNowMs) of the newest session of its own that committed; null: none yet. */
  private openRenewedAtMs: number | null = null;
  /** onLeaseRenewed's listeners, told of a committed open here (the consensus tells them of acknowledged keepalives). */
  private readonly leaseRenewedListeners = new Set<() => void>();
  private readonly log: Logger;
  private readonly reopenExpired: boolean;
  private readonly liveness: SessionLiveness;
  private readonly confirmPeerGone: ((peer: PeerInfo) => Promise<string | null>) | null;
  private readonly sessionExpiredListeners: Listeners<SessionExpiredEvent>;
  private readonly unsubscribe: (() => void)[] = [];

  /** The term in which this node last granted grace as leader; null while not leader. */
  private graceTerm: number | null = null;
  /** When this node last granted every session grace (this.now()), as leader. */
  private graceAtMs: number | null = null;
  /** When the expiry timer last fired (this.now()), to see that this process was stalled. */
  private lastExpiryTickMs: number | null = null;
  private readonly expiring = new Set<string>();
  /** Peers whose process expireGone is asking about (a keepalive meanwhile still counts). */
  private readonly probing = new Set<string>();
  private own: Session | null = null;
  /** The peer whose session this store keeps open (kept across an expiry, for the reopen). */
  private ownPeer: PeerInfo | null = null;
  /** The tags this peer's session carries (kept for a reopen after an expiry). */
  private ownTags: PeerTags | undefined = undefined;
  private keepaliveInFlight = false;
  private opening: { readonly peerId: string; readonly promise: Promise<Session> } | null = null;
  private reopening = false;
  private checkInFlight = false;
  private running = false;
  private stopped = false;
  private expiryTimer: Periodic | null = null;
  /** On a follower, in place of the expiry loop: a look every sessionTimeoutMs / 2 at whether it leads (syncExpiryLoop). */
  private followerTimer: Periodic | null = null;
  /** A one-shot check at the moment the next session falls due (armDueTimer). */
  private dueTimer: { readonly atMs: number; readonly timer: NodeJS.Timeout } | null = null;
  private keepaliveTimer: Periodic | null = null;

  constructor(opts: ClusterStoreOptions) {
    const t = opts.sessionTimeoutMs;
    if (!(Number.isFinite(t) && t >= 10)) throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `sessionTimeoutMs must be >= 10 (got ${t})`);
    const keepaliveIntervalMs = opts.keepaliveIntervalMs ?? Math.floor(t / 3);
    if (!(keepaliveIntervalMs > 0 && keepaliveIntervalMs * 2 <= t)) {
      throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `keepaliveIntervalMs must be > 0 and at most half of sessionTimeoutMs ${t} (got ${keepaliveIntervalMs})`);
    }
    const expiryCheckIntervalMs = opts.expiryCheckIntervalMs ?? Math.min(100, Math.max(10, Math.floor(t / 10)));
    if (!(expiryCheckIntervalMs > 0 && expiryCheckIntervalMs <= t)) {
      throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `expiryCheckIntervalMs must be in (0, sessionTimeoutMs] (got ${expiryCheckIntervalMs})`);
    }
    this.machine = opts.machine;
    this.consensus = opts.consensus;
    this.sessionTimeoutMs = t;
    this.keepaliveIntervalMs = keepaliveIntervalMs;
    this.expiryCheckIntervalMs = expiryCheckIntervalMs;
    this.proposeTimeoutMs = opts.proposeTimeoutMs ?? Math.max(2 * t, 5000);
    this.reopenExpired = opts.reopenExpiredSession ?? true;
    this.now = opts.now ?? Date.now;
    this.monoNowMs = opts.monoNowMs ?? (() => performance.now());
    this.log = opts.log ?? silentLogger();
    this.liveness = new SessionLiveness(t);
    this.confirmPeerGone = opts.confirmPeerGone ?? null;
    this.sessionExpiredListeners = new Listeners('sessionExpired', this.log);
    if (opts.log !== undefined) this.machine.setLogger(opts.log);

    // Liveness is fed by what this node applies, on every node, so that a new leader's tracker
    // knows every session (its times are reset anyway: grace).
    this.unsubscribe.push(
      // Keepalive entries of older versions, if any are still in the log.
      this.machine.onKeepalive((e) => {
        this.liveness.seen(e.peerId, e.openedIndex, this.now());
      }),
      // Keepalives are messages to the leader: only the leader's tracker decides, and only a
      // keepalive for the session it knows (same openedIndex) counts. One that arrives while the
      // session's expiry is being proposed does not: it must not renew the sender's lease (it is
      // acknowledged only when it counts), since the expiry, once committed, stands.
      this.consensus.onKeepalive((k) => {
        if (this.expiring.has(k.peerId) || this.machine.session(k.peerId)?.openedIndex !== k.openedIndex) return false;
        this.liveness.seen(k.peerId, k.openedIndex, this.now());
        return true;
      }),
      this.machine.onPeers((c) => {
        this.onPeersChange(c);
      }),
      this.consensus.onLeaderChange((c) => {
        this.onLeaderChange(c);
      }),
    );
    const now = this.now();
    for (const s of this.machine.sessions()) this.liveness.seen(s.peer.id, s.openedIndex, now);
    const offRefused = this.confirmPeerGone !== null ? this.consensus.onPeerRefused?.((peerId) => { void this.expireGone(peerId); }) : undefined;
    if (offRefused !== undefined) this.unsubscribe.push(offRefused);
  }

  // ---- lifecycle ----

  /** Starts the timers: the leader's expiry loop, and keepalives for this peer's session. */
  start(): void {
    if (this.stopped) throw new StoreError(STORE_ERR.stopped, 'the cluster store is stopped');
    if (this.running) return;
    this.running = true;
    this.syncExpiryLoop();
    if (this.own !== null) this.startKeepalives();
    this.log.info(
      { sessionTimeoutMs: this.sessionTimeoutMs, keepaliveIntervalMs: this.keepaliveIntervalMs, expiryCheckIntervalMs: this.expiryCheckIntervalMs },
      'cluster store started',
    );
  }

  /**
   * The expiry loop runs every expiryCheckIntervalMs on the leader only: on a follower a pass does
   * nothing, and each wake-up of a sitter costs its machine's PostgreSQL (issue #11: 10 a second on
   * every follower). A leader change starts or stops it at once; on a follower, a look every
   * sessionTimeoutMs / 2 starts it should leadership ever come without its event. A loop (re)started
   * measures a stall (noteExpiryTick) from its start, not from when this node last led.
   */
  private syncExpiryLoop(): void {
    if (!this.running) return;
    if (this.consensus.isLeader()) {
      this.followerTimer?.stop();
      this.followerTimer = null;
      if (this.expiryTimer !== null) return;
      this.lastExpiryTickMs = null;
      this.expiryTimer = this.every(this.expiryCheckIntervalMs, () => {
        this.noteExpiryTick(this.now());
        this.runExpiryCheck();
        if (!this.consensus.isLeader()) this.syncExpiryLoop();
      });
      return;
    }
    this.expiryTimer?.stop();
    this.expiryTimer = null;
    this.graceTerm = null;
    if (this.followerTimer !== null) return;
    this.followerTimer = this.every(Math.max(this.expiryCheckIntervalMs, Math.floor(this.sessionTimeoutMs / 2)), () => { this.syncExpiryLoop(); });
  }

  /**
   * A periodic callback: from the consensus's own clock where it has one that divides `ms` (a Raft
   * node's tick), so that the store's timers wake the process when its tick does and never on
   * their own (issue #11); otherwise an unref'd setInterval.
   */
  private every(ms: number, fn: () => void): Periodic {
    const shared = this.consensus.every?.(ms, fn) ?? null;
    if (shared !== null) return { stop: shared };
    const t = setInterval(fn, ms);
    t.unref();
    return { stop: () => { clearInterval(t); } };
  }

  /** One pass of the expiry loop unless one is running; then the timer for the next session due. */
  private runExpiryCheck(): void {
    if (this.checkInFlight || !this.running) return;
    this.checkInFlight = true;
    this.checkSessions()
      .catch((err: unknown) => {
        this.log.warn({ err }, 'session expiry check failed; retrying at the next interval');
      })
      .finally(() => {
        this.checkInFlight = false;
        this.armDueTimer();
      });
  }

  /**
   * The leader checks again at the moment the next session falls due when that comes before the
   * periodic check: a dead peer's session then expires sessionTimeoutMs after its last keepalive,
   * not up to one check interval later (the failover's critical path).
   */
  private armDueTimer(): void {
    if (!this.running || !this.consensus.isLeader()) return;
    const due = this.liveness.nextDueMs();
    if (due === null) return;
    const delayMs = Math.max(0, due - this.now());
    if (delayMs >= this.expiryCheckIntervalMs) return; // the periodic check comes first
    if (this.dueTimer !== null) {
      if (this.dueTimer.atMs <= due) return;
      clearTimeout(this.dueTimer.timer);
    }
    const timer = setTimeout(() => {
      this.dueTimer = null;
      this.runExpiryCheck();
    }, delayMs);
    timer.unref();
    this.dueTimer = { atMs: due, timer };
  }

  /** Stops the timers and detaches from the machine and consensus. The session is left to expire (or closed by the caller first). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    if (this.dueTimer !== null) clearTimeout(this.dueTimer.timer);
    this.dueTimer = null;
    this.expiryTimer?.stop();
    this.followerTimer?.stop();
    this.keepaliveTimer?.stop();
    this.expiryTimer = null;
    this.followerTimer = null;
    this.keepaliveTimer = null;
    for (const u of this.unsubscribe.splice(0)) u();
  }

  // ---- reads ----

  /** The state as this node has applied it: fast, possibly stale. */
  getState(): VersionedState {
    return { state: this.machine.state, version: this.machine.version };
  }

  /** The state as of now for the whole shard (linearizable: a ReadIndex round through the leader). */
  async readState(): Promise<VersionedState> {
    this.assertNotStopped();
    await this.consensus.read();
    return this.getState();
  }

  /** The shard-wide PostgreSQL settings as this node has applied them: fast, possibly stale. */
  getSettings(): VersionedSettings {
    return this.machine.settings;
  }

  /** The shard-wide PostgreSQL settings as of now for the whole shard (linearizable). */
  async readSettings(): Promise<VersionedSettings> {
    this.assertNotStopped();
    await this.consensus.read();
    return this.machine.settings;
  }

  /** The active peers (those with a session), in the order their sessions were opened. */
  activePeers(): PeerInfo[] {
    return this.machine.activePeers();
  }

  sessions(): Session[] {
    return this.machine.sessions().map((s) => ({ peer: s.peer, openedIndex: s.openedIndex, openedTime: s.openedTime, ...(s.tags === undefined ? {} : { tags: s.tags }) }));
  }

  /** The tags of the active peers that have any, by peer id. */
  activeTags(): Record<PeerId, PeerTags> {
    const out: Record<PeerId, PeerTags> = {};
    for (const s of this.machine.sessions()) if (s.tags !== undefined) out[s.peer.id] = s.tags;
    return out;
  }

  /** The last `limit` accepted state changes, oldest first. */
  history(limit?: number): HistoryEntry[] {
    return this.machine.history(limit);
  }

  /**
   * The primary's lease (peer/lease-fence.ts): when this peer (monoNowMs) sent the newest of its
   * renewals that the shard honoured, or null before the first. A renewal is a keepalive that a
   * leader acknowledged (Consensus.leaseRenewedAtMs), or an open of its own session that committed:
   * the open goes through the log, and every node starts counting the new session's silence when it
   * applies the open (or later, at a grace), so no leader can expire it sooner than sessionTimeoutMs
   * after it was sent. Without the open, a primary that restarted and was cut off before its first
   * acknowledged keepalive had no lease to run out and was never fenced.
   */
  leaseRenewedAtMs(): number | null {
    const acked = this.consensus.leaseRenewedAtMs?.() ?? null;
    if (acked === null) return this.openRenewedAtMs;
    return this.openRenewedAtMs === null ? acked : Math.max(acked, this.openRenewedAtMs);
  }

  /** Calls `listener` each time a renewal comes (a keepalive acknowledged, an open of its own session committed); returns the unsubscribe. */
  onLeaseRenewed(listener: () => void): () => void {
    this.leaseRenewedListeners.add(listener);
    const off = this.consensus.onLeaseRenewed?.(listener);
    return () => {
      this.leaseRenewedListeners.delete(listener);
      off?.();
    };
  }

  /** This peer's open session, or null. */
  session(): Session | null {
    return this.own;
  }

  /**
   * How long since this node last heard from each session (for status pages). Only the leader's
   * figures decide expiries; a follower's are its own applies, reset to now on becoming leader.
   */
  sessionsLiveness(): { readonly peerId: string; readonly openedIndex: number; readonly silentMs: number | null }[] {
    const nowMs = this.now();
    return this.machine.sessions().map((s) => {
      const seen = this.liveness.lastSeenMs(s.peer.id);
      return { peerId: s.peer.id, openedIndex: s.openedIndex, silentMs: seen === null ? null : nowMs - seen };
    });
  }

  leaderInfo(): { readonly leader: string | null; readonly term: number; readonly isLeader: boolean } {
    return { leader: this.consensus.leader(), term: this.consensus.term(), isLeader: this.consensus.isLeader() };
  }

  // ---- writes ----

  /**
   * Compare-and-set: writes `state` if the store's version is still `expectVersion` (0 when there
   * is no state yet). Resolves with the new version. Rejects with VersionMismatchError
   * (MANATEE_ERR_STORE_VERSION_MISMATCH, carrying currentVersion) or InvalidStateError
   * (MANATEE_ERR_STORE_INVALID_STATE, naming each problem), or a Raft error (no leader, timeout).
   */
  async putState(state: ClusterState, expectVersion: number, summary?: string): Promise<{ version: number }> {
    const time = this.isoNow();
    const cmd: StoreCommand =
      summary === undefined ? { op: 'putState', expectVersion, state, time } : { op: 'putState', expectVersion, state, summary, time };
    const res = await this.propose(cmd, this.proposeTimeoutMs);
    if (res.op !== 'putState') throw unexpected(res);
    this.log.info({ version: res.version, generation: state.generation, expectVersion }, 'cluster state written');
    return { version: res.version };
  }

  /**
   * Compare-and-set of the shard-wide PostgreSQL settings (their own version; 0 when never
   * written). Only their shape is checked here; the API checks them against pg_settings first.
   * Rejects with VersionMismatchError or a StoreError (MANATEE_ERR_STORE_INVALID_COMMAND).
   */
  async putSettings(settings: ShardSettings, expectVersion: number): Promise<{ version: number }> {
    const res = await this.propose({ op: 'putSettings', expectVersion, settings, time: this.isoNow() }, this.proposeTimeoutMs);
    if (res.op !== 'putSettings') throw unexpected(res);
    this.log.info({ settingsVersion: res.version, expectVersion, names: Object.keys(settings) }, 'shard settings written');
    return { version: res.version };
  }

  // ---- this peer's session ----

  /**
   * Opens this peer's session (replacing an older one of the same peer id, e.g. from before a
   * restart). Once start() has been called, keepalives are sent every keepaliveIntervalMs. Rejects
   * with MANATEE_ERR_STORE_SESSION_EXPIRED when the session ended before its open returned (the
   * caller opens again).
   */
  async openSession(peer: PeerInfo, tags?: PeerTags): Promise<Session> {
    if (tags !== undefined) this.ownTags = tags;
    // One open at a time: the sitter's loop and the reopen after an expiry may both ask; the
    // second caller shares the first one's result instead of replacing the session it opens.
    const inFlight = this.opening;
    if (inFlight !== null && inFlight.peerId === peer.id) return inFlight.promise;
    const promise = this.doOpenSession(peer);
    const entry = { peerId: peer.id, promise };
    this.opening = entry;
    try {
      return await promise;
    } finally {
      if (this.opening === entry) this.opening = null;
    }
  }

  /** False once closeSession() was called (read after an await: it may change meanwhile). */
  private sessionWanted(): boolean {
    return this.ownPeer !== null;
  }

  private async doOpenSession(peer: PeerInfo): Promise<Session> {
    this.ownPeer = peer;
    const tags = this.ownTags;
    // Taken before the proposal: an open that waited long to commit renews a lease that is short
    // or already over (the primary fences), never one that runs from when it committed.
    const sentAtMs = this.monoNowMs();
    const res = await this.propose({ op: 'openSession', peer, time: this.isoNow(), ...(tags === undefined ? {} : { tags }) }, this.proposeTimeoutMs);
    if (res.op !== 'openSession') throw unexpected(res);
    if (!this.sessionWanted()) {
      // closeSession() was called while this open was in flight: the caller wants no session.
      await this.propose(
        { op: 'closeSession', peerId: peer.id, openedIndex: res.session.openedIndex, time: this.isoNow() },
        this.proposeTimeoutMs,
      ).catch(() => undefined); // if this fails, the leader expires it after sessionTimeoutMs
      throw new StoreError(STORE_ERR.noSession, `the session of ${peer.id} was closed while it was being opened`);
    }
    const applied = this.machine.session(peer.id);
    if (applied?.openedIndex !== res.session.openedIndex) {
      // It ended (expired, or replaced by a newer open) in the same batch of applied entries as its
      // open, before this continuation ran: onPeersChange saw no own session to end then. Taking it
      // as ours would keep a session that the shard no longer has, with keepalives that the leader
      // ignores and no reopen: the peer would stay inactive for good (whole-shard simulator, seed 754).
      const message = `the session of ${peer.id} opened at index ${res.session.openedIndex} ended before its open returned` +
        (applied === undefined ? '' : ` (a newer one was opened at index ${applied.openedIndex})`);
      this.log.warn({ peerId: peer.id, openedIndex: res.session.openedIndex }, message);
      throw new StoreError(STORE_ERR.sessionExpired, message);
    }
    this.own = res.session;
    if (this.openRenewedAtMs === null || sentAtMs > this.openRenewedAtMs) {
      this.openRenewedAtMs = sentAtMs;
      for (const l of [...this.leaseRenewedListeners]) l();
    }
    const leaseSentAgoMs = Math.round(this.monoNowMs() - sentAtMs);
    this.log.info({ peerId: peer.id, openedIndex: res.session.openedIndex, leaseSentAgoMs }, `session opened: it renews this peer's lease from when the open was sent (${leaseSentAgoMs} ms ago)`);
    if (this.running) this.startKeepalives();
    return res.session;
  }

  /**
   * One keepalive for this peer's session: a message to the Raft leader, not a log entry (see
   * sessions.ts). Resolves once sent. Rejects with MANATEE_ERR_STORE_SESSION_EXPIRED when this
   * node has applied a newer session of this peer or its end (then 'sessionExpired' has fired,
   * and the session is being reopened when reopenExpiredSession is on), MANATEE_ERR_STORE_NO_SESSION
   * if none was opened, or a Raft error (no leader).
   */
  async keepalive(): Promise<void> {
    const own = this.own;
    if (own === null) throw new StoreError(STORE_ERR.noSession, 'no session is open: call openSession() first');
    const applied = this.machine.session(own.peer.id);
    if (applied?.openedIndex !== own.openedIndex && applied !== undefined) {
      // A newer session of this peer id was opened (a second sitter with our id, or a restart
      // that did not tell us): ours is gone, and keeping the newer one alive is not ours to do.
      const message = `the session of ${own.peer.id} opened at index ${own.openedIndex} no longer exists (a newer one was opened at index ${applied.openedIndex})`;
      this.ownSessionEnded(own, message);
      throw new StoreError(STORE_ERR.sessionExpired, message);
    }
    await this.consensus.keepalive(own.openedIndex);
  }

  /** Closes this peer's session: the peer stops being active at once (no wait for expiry). */
  async closeSession(): Promise<void> {
    const own = this.own;
    const wasOpening = this.opening !== null;
    this.ownPeer = null;
    this.stopKeepalives();
    if (own === null) {
      if (wasOpening) return; // the open in flight closes what it opens (see doOpenSession)
      throw new StoreError(STORE_ERR.noSession, 'no session is open');
    }
    this.own = null;
    await this.propose({ op: 'closeSession', peerId: own.peer.id, openedIndex: own.openedIndex, time: this.isoNow() }, this.proposeTimeoutMs);
    this.log.info({ peerId: own.peer.id, openedIndex: own.openedIndex }, 'session closed');
  }

  // ---- watches ----

  on<K extends keyof StoreEvents>(event: K, listener: (e: StoreEvents[K]) => void): () => void {
    switch (event) {
      case 'state':
        return this.machine.onState(listener as (e: StateChange) => void);
      case 'peers':
        return this.machine.onPeers(listener as (e: PeersChange) => void);
      case 'sessionExpired':
        return this.sessionExpiredListeners.add(listener as (e: SessionExpiredEvent) => void);
      case 'settings':
        return this.machine.onSettings(listener as (e: SettingsChange) => void);
      default:
        throw new ManateeError('MANATEE_ERR_INVALID_ARGUMENT', `unknown store event ${String(event)}`);
    }
  }

  // ---- the leader's expiry loop ----

  /**
   * The expiry timer calls this each time it fires. A gap of half a session timeout or more means
   * this process did not run meanwhile (SIGSTOP, a paused VM, a starved CPU): the keepalives that
   * arrived in that time still wait in its sockets, and after a stall Node runs timers before it
   * reads sockets, so the peers' silence says nothing. As after an election, every session then
   * gets a full timeout. Expiring later is safe: a primary fences itself by its own clock. Returns
   * true when it granted that grace.
   */
  noteExpiryTick(nowMs: number): boolean {
    const prev = this.lastExpiryTickMs;
    this.lastExpiryTickMs = nowMs;
    if (prev === null || nowMs - prev < this.sessionTimeoutMs / 2 || !this.consensus.isLeader()) return false;
    const sessions = this.machine.sessions();
    this.liveness.graceAll(sessions, nowMs);
    this.graceAtMs = nowMs;
    this.log.info(
      { decision: 'grace', reason: 'stalled', stalledMs: nowMs - prev, sessions: sessions.map((x) => x.peer.id), sessionTimeoutMs: this.sessionTimeoutMs },
      `the session expiry loop did not run for ${nowMs - prev} ms (this process was stalled): every session gets a full ${this.sessionTimeoutMs} ms of grace before any expiry`,
    );
    return true;
  }

  /**
   * One pass of the leader's expiry loop (the timer calls it every expiryCheckIntervalMs; tests
   * call it directly). On a node that is not the leader it does nothing. On the first pass of a
   * new term it grants grace. Resolves with the peer ids whose sessions it expired.
   */
  async checkSessions(): Promise<string[]> {
    if (!this.consensus.isLeader()) {
      this.graceTerm = null;
      return [];
    }
    const term = this.consensus.term();
    const nowMs = this.now();
    if (this.graceTerm !== term) {
      this.grantGrace(term, nowMs);
      return [];
    }
    const overdue = this.liveness.overdue(this.machine.sessions(), nowMs).filter((o) => !this.expiring.has(o.session.peer.id));
    const expired = await Promise.all(overdue.map(({ session, silentMs }) =>
      this.expire(session, `no keepalive for ${silentMs} ms (sessionTimeoutMs ${this.sessionTimeoutMs})`, silentMs, term, nowMs)));
    return expired.filter((id): id is string => id !== null);
  }

  /**
   * The leader's Raft dial to `peerId` was refused. When that peer holds a session, has not been
   * heard from since, and confirmPeerGone says its process is gone, its session expires now
   * instead of sessionTimeoutMs after its last keepalive. Only a session this leader has heard
   * since its last grace (an election, a stall): before that it cannot know the session's lease, and
   * the full timeout stands. Resolves with whether it expired.
   *
   * Why this is safe (DESIGN.md, Liveness; the takeover rules): an expiry lets the sync take over,
   * and the sync first stops replicating from the primary and records its position; the old
   * primary's commits wait for the sync (synchronous replication), so none is acknowledged after
   * that, whatever the old primary's state. What the full timeout adds is the old primary's lease:
   * a live primary cut off from the group stops serving (503 on /primary, PostgreSQL stopped)
   * before its session can expire. A peer whose Raft port and PostgreSQL port both refuse has
   * nothing that could serve: its sitter (which answers /primary) and its postmaster are gone.
   * The evidence is the kernel's answer at the peer's address: a firewall that REJECTs with a
   * reset would forge it (partitions DROP in this project's tests); see README, Failover timing.
   */
  async expireGone(peerId: string): Promise<boolean> {
    if (this.confirmPeerGone === null || !this.consensus.isLeader() || this.expiring.has(peerId) || this.probing.has(peerId)) return false;
    const term = this.consensus.term();
    if (this.graceTerm !== term) return false;
    const session = this.machine.sessions().find((s) => s.peer.id === peerId);
    const seenMs = this.liveness.lastSeenMs(peerId);
    if (session === undefined || seenMs === null || this.graceAtMs === null || seenMs <= this.graceAtMs) return false;
    this.probing.add(peerId);
    let evidence: string | null;
    try {
      evidence = await this.confirmPeerGone(session.peer);
    } catch (err) {
      this.log.warn({ err, peerId }, `could not check whether ${peerId}'s process is gone; its session expires by timeout`);
      evidence = null;
    } finally {
      this.probing.delete(peerId);
    }
    if (evidence === null) {
      this.log.info({ decision: 'keepSession', peerId, reason: 'Raft port refused, but not confirmed gone' }, `${peerId}'s Raft port refused, but nothing else says its process is gone: its session expires by timeout`);
      return false;
    }
    // Still the leader of that term, the same session, and no keepalive from it meanwhile.
    const now = this.machine.sessions().find((s) => s.peer.id === peerId);
    if (!this.consensus.isLeader() || this.consensus.term() !== term || now?.openedIndex !== session.openedIndex || this.liveness.lastSeenMs(peerId) !== seenMs) return false;
    const nowMs = this.now();
    const reason = `its process is gone: its Raft port refused and ${evidence} (no keepalive for ${nowMs - seenMs} ms)`;
    return (await this.expire(session, reason, nowMs - seenMs, term, nowMs)) !== null;
  }

  /** Proposes the expiry of `session`; resolves with the peer id if it expired, else null. */
  private async expire(session: SessionRecord, reason: string, silentMs: number, term: number, nowMs: number): Promise<string | null> {
    const peerId = session.peer.id;
    if (this.expiring.has(peerId)) return null;
    this.expiring.add(peerId);
    try {
      const res = await this.propose(
        {
          op: 'expireSession',
          peerId,
          openedIndex: session.openedIndex,
          keepaliveIndex: session.keepaliveIndex,
          reason,
          time: new Date(nowMs).toISOString(),
        },
        this.proposeTimeoutMs,
      );
      if (res.op !== 'expireSession') throw unexpected(res);
      if (res.expired) {
        this.log.info({ decision: 'expireSession', peerId, openedIndex: session.openedIndex, silentMs, term, reason }, `expired the session of ${peerId}: ${reason}`);
        return peerId;
      }
      this.log.info({ decision: 'keepSession', peerId, openedIndex: session.openedIndex, term }, `did not expire the session of ${peerId}: ${res.why ?? 'void'}`);
      return null;
    } catch (err) {
      this.log.warn({ err, peerId, term }, `could not expire the session of ${peerId}; retrying at the next check`);
      return null;
    } finally {
      this.expiring.delete(peerId);
    }
  }

  private grantGrace(term: number, nowMs: number): void {
    this.graceTerm = term;
    this.graceAtMs = nowMs;
    const sessions = this.machine.sessions();
    this.liveness.graceAll(sessions, nowMs);
    this.log.info(
      { decision: 'grace', term, sessions: sessions.map((s) => s.peer.id), sessionTimeoutMs: this.sessionTimeoutMs },
      `became Raft leader in term ${term}: every session gets a full ${this.sessionTimeoutMs} ms of grace before any expiry`,
    );
  }

  private onLeaderChange(c: LeaderChange): void {
    if (c.leader === this.consensus.id) {
      if (this.graceTerm !== c.term) this.grantGrace(c.term, this.now());
    } else {
      this.graceTerm = null;
    }
    this.syncExpiryLoop();
    // A new leader: renew at once rather than at the next beat. No keepalive was acknowledged
    // during the election, and a primary's lease (lease-fence.ts) runs out sessionTimeoutMs less a
    // margin after the last one: an election must not cost the primary its lease.
    if (c.leader !== null) this.sendKeepalive();
  }

  private onPeersChange(c: PeersChange): void {
    const nowMs = this.now();
    if (c.cause === 'restore') {
      this.liveness.graceAll(this.machine.sessions(), nowMs);
    } else if (c.cause === 'open' && c.peerId !== undefined) {
      const s = this.machine.session(c.peerId);
      if (s !== undefined) this.liveness.seen(c.peerId, s.openedIndex, nowMs);
    } else if (c.peerId !== undefined) {
      this.liveness.forget(c.peerId);
    }
    // Did this peer's own session end without closeSession()? ('open' is skipped: a re-open of
    // our own id is our own openSession() in flight.)
    const own = this.own;
    if (own !== null && c.cause !== 'open' && this.machine.session(own.peer.id)?.openedIndex !== own.openedIndex) {
      this.ownSessionEnded(own, c.reason ?? `session ${c.cause === 'restore' ? 'absent after a snapshot restore' : `${c.cause}d`}`);
    }
  }

  private ownSessionEnded(session: Session, reason: string): void {
    if (this.own?.openedIndex !== session.openedIndex) return; // already handled
    this.own = null;
    this.stopKeepalives();
    this.log.warn({ peerId: session.peer.id, openedIndex: session.openedIndex, reason }, 'this peer\'s session expired');
    this.sessionExpiredListeners.emit({ session, reason });
    if (this.reopenExpired && this.running) void this.reopen();
  }

  /** Reopens this peer's session after an expiry, retrying every keepalive interval until it works. */
  private async reopen(): Promise<void> {
    if (this.reopening) return;
    this.reopening = true;
    try {
      while (this.running && this.own === null && this.ownPeer !== null) {
        try {
          await this.openSession(this.ownPeer);
          return;
        } catch (err) {
          this.log.warn({ err }, 'could not reopen this peer\'s session; retrying');
          await new Promise((r) => setTimeout(r, this.keepaliveIntervalMs).unref());
        }
      }
    } finally {
      this.reopening = false;
    }
  }

  private startKeepalives(): void {
    if (this.keepaliveTimer !== null) return;
    this.keepaliveTimer = this.every(this.keepaliveIntervalMs, () => { this.sendKeepalive(); });
  }

  /** One keepalive now, unless one is in flight, the session is not ours, or the keepalives are stopped. */
  private sendKeepalive(): void {
    if (this.keepaliveInFlight || this.own === null || this.keepaliveTimer === null) return;
    this.keepaliveInFlight = true;
    this.keepalive()
      .catch((err: unknown) => {
        // No leader or a timeout during an election: the next beat retries, and the new
        // leader's grace covers the gap. An expiry is handled by ownSessionEnded().
        this.log.debug({ err }, 'keepalive failed');
      })
      .finally(() => {
        this.keepaliveInFlight = false;
      });
  }

  private stopKeepalives(): void {
    this.keepaliveTimer?.stop();
    this.keepaliveTimer = null;
  }

  // ---- plumbing ----

  private async propose(cmd: StoreCommand, timeoutMs: number): Promise<Exclude<StoreResult, StoreRejection>> {
    this.assertNotStopped();
    const data = encodeCommand(cmd);
    if (data.length > COMMAND_BYTES_MAX) {
      throw new StoreError(STORE_ERR.invalidCommand, `${cmd.op} command is ${data.length} bytes, more than the limit of ${COMMAND_BYTES_MAX}`);
    }
    const res = await this.consensus.propose(data, { timeoutMs });
    if (!isStoreResult(res)) throw unexpected(res);
    if (!res.ok) throw rejectionToError(res, cmd);
    return res;
  }

  private assertNotStopped(): void {
    if (this.stopped) throw new StoreError(STORE_ERR.stopped, 'the cluster store is stopped');
  }

  private isoNow(): string {
    return new Date(this.now()).toISOString();
  }
}

function rejectionToError(r: StoreRejection, cmd: StoreCommand): StoreError {
  switch (r.code) {
    case STORE_ERR.versionMismatch:
      return new VersionMismatchError(cmd.op === 'putState' || cmd.op === 'putSettings' ? cmd.expectVersion : -1, r.currentVersion ?? -1);
    case STORE_ERR.invalidState:
      return new InvalidStateError(r.problems ?? [r.message]);
    default:
      return new StoreError(r.code, r.message);
  }
}

function unexpected(res: unknown): StoreError {
  return new StoreError(STORE_ERR.unexpectedResult, `unexpected result from the state machine: ${(JSON.stringify(res) as string | undefined ?? String(res)).slice(0, 200)}`);
}
