// A model of one peer's PostgreSQL, enough for Manatee's rules: a WAL of records with global ids
// (the same record at the same position means the same history up to it, so a timeline fork is
// simply two WALs that disagree at some position), promotion (a new timeline: a record of its
// own), streaming replication from an upstream whose WAL extends the standby's, synchronous commit
// that waits for the standby named in synchronous_standby_names, and copies of another peer's
// data (pg_basebackup and pg_rewind both end with this peer's WAL equal to the source's).
//
// SimPostgres is the server (it outlives sitter restarts, as a postmaster and its data directory
// do). SimPgHandle is what one sitter incarnation holds: the reconciler's LocalPostgres, with the
// rendered role kept in memory as PostgresServer keeps it. Every operation takes simulated time.
import type { BackupBackend, RestoreOptions, RestoreResult } from '../../src/backup/types.js';
import type { FencePostgres } from '../../src/peer/fencing.js';
import type { LocalPostgres } from '../../src/peer/local-postgres.js';
import type { SourcePostgres } from '../../src/peer/source-postgres.js';
import type { StandbyProbe } from '../../src/peer/stream-stall.js';
import type { PostgresStatus } from '../../src/model/index.js';
import type { ConfigureResult, PgRole, RenderedRole, SyncCatchUp, WalPositions } from '../../src/postgres/index.js';
import { PgError } from '../../src/postgres/errors.js';
import { formatLsn, type PeerInfo, type TimelineHistory } from '../../src/model/index.js';
import type { World } from './world.js';

/** One WAL record. `id` is unique in the whole run. */
export interface WalRecord {
  readonly id: number;
  readonly kind: 'init' | 'write' | 'promote' | 'checkpoint';
  /** For 'write': the client's write id. */
  readonly writeId?: number;
}

/** The LSN after `n` records. */
export function lsnOf(n: number): string {
  return formatLsn(BigInt(n) * 64n);
}

/** True when `a` is a prefix of `b` (records are unique, so one position decides). */
export function isPrefix(a: readonly WalRecord[], b: readonly WalRecord[]): boolean {
  if (a.length > b.length) return false;
  if (a.length === 0) return true;
  return a[a.length - 1]!.id === b[a.length - 1]!.id;
}

/** A commit waiting for the sync. */
interface PendingCommit {
  readonly writeId: number;
  /** WAL length once this commit's record is in. */
  readonly end: number;
}

export interface SimNetwork {
  canTalk(a: string, b: string): boolean;
  /** The whole host is paused (SIGSTOP of the sitter and its PostgreSQL): nothing of it answers. */
  paused(id: string): boolean;
  /** This peer's PostgreSQL alone is hung (SIGSTOP of the postmaster, or a server too loaded to answer). */
  pgHung?(id: string): boolean;
}

/** This peer's PostgreSQL answers nothing now: its host is paused or the server is hung. */
export function pgFrozen(net: SimNetwork, id: string): boolean {
  return net.paused(id) || net.pgHung?.(id) === true;
}

/** How long the sitter waits for a hung PostgreSQL before its call fails (its query timeout). */
export const PG_QUERY_TIMEOUT_MS = 1000;

export class SimPostgres {
  hasData = false;
  wal: WalRecord[] = [];
  running = false;
  /** In recovery (standby.signal honoured). */
  inRecovery = false;
  /** primary_conninfo's peer (standbys), null when detached. */
  upstream: string | null = null;
  applicationName: string | null = null;
  /** default_transaction_read_only=off. */
  writable = false;
  /** synchronous_standby_names: the peer id whose flush releases commits (null: the placeholder). */
  syncName: string | null = null;
  /** Records replayed (standby). */
  replayed = 0;
  /** Is the WAL receiver streaming (computed at each replication step). */
  streaming = false;
  pending: PendingCommit[] = [];
  /** Raised by the world on every commit acknowledged to a client. */
  onAck: ((writeId: number, peerId: string) => void) | null = null;
  /**
   * An immediate shutdown signalled while the server was hung (SIGQUIT to a stopped process): it
   * takes effect when the server runs again (SimShard.unhangPostgres).
   */
  stopPending = false;

  constructor(readonly peerId: string, private readonly world: World, private readonly net: SimNetwork) {}

  nextId(): number {
    return this.world.nextRecordId();
  }

  append(kind: WalRecord['kind'], writeId?: number): void {
    this.wal.push(writeId === undefined ? { id: this.nextId(), kind } : { id: this.nextId(), kind, writeId });
  }

  /** A process crash of PostgreSQL (or of its host): commits in flight are never acknowledged. */
  kill(): void {
    this.stopPending = false;
    if (!this.running) return;
    this.running = false;
    this.streaming = false;
    this.pending = [];
    this.world.log(() => `pg ${this.peerId} killed`);
  }

  /** A clean shutdown ('fast'): a primary writes a checkpoint record that no standby receives. */
  stop(mode: 'fast' | 'immediate'): void {
    if (!this.running) return;
    if (mode === 'fast' && !this.inRecovery) this.append('checkpoint');
    this.kill();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.pending = [];
    this.replayed = Math.min(this.replayed, this.wal.length);
  }

  promote(): void {
    this.inRecovery = false;
    this.upstream = null;
    this.streaming = false;
    this.replayed = this.wal.length;
    this.append('promote');
    this.world.log(() => `pg ${this.peerId} promoted at ${lsnOf(this.wal.length)}`);
  }

  /** A client's write: accepted by a running, writable primary; acknowledged once the sync has it. */
  write(writeId: number): boolean {
    if (!this.running || this.inRecovery || !this.writable || pgFrozen(this.net, this.peerId)) return false;
    this.append('write', writeId);
    this.pending.push({ writeId, end: this.wal.length });
    return true;
  }

  /** The timeline of the last WAL record: one more than the promotions in this history. */
  get timeline(): number {
    let t = 1;
    for (const r of this.wal) if (r.kind === 'promote') t++;
    return t;
  }

  /**
   * The timeline's history, as its .history file has it: each promotion in this WAL ended the
   * timeline before it at the promotion's position. Two servers that promoted on their own to the
   * same number have the same timeline and, unless they promoted at the same position, different
   * histories (as with PostgreSQL).
   */
  get history(): TimelineHistory {
    const switches: { timeline: number; switchLsn: string }[] = [];
    for (let i = 0; i < this.wal.length; i++) {
      if (this.wal[i]!.kind === 'promote') switches.push({ timeline: switches.length + 1, switchLsn: lsnOf(i) });
    }
    return { timeline: switches.length + 1, switches };
  }

  walPositions(): WalPositions {
    const n = this.wal.length;
    const timeline = this.timeline;
    return this.inRecovery
      ? {
          inRecovery: true, timeline, currentLsn: null, flushLsn: null, receiveLsn: lsnOf(n), replayLsn: lsnOf(this.replayed),
          lastLsn: lsnOf(this.replayed), walReceiver: this.streaming ? 'streaming' : null,
        }
      : { inRecovery: false, timeline, currentLsn: lsnOf(n), flushLsn: lsnOf(n), receiveLsn: null, replayLsn: null, lastLsn: lsnOf(n), walReceiver: null };
  }

  /** What a health check sees now. */
  status(): PostgresStatus {
    const online = this.running && !pgFrozen(this.net, this.peerId);
    const p = online ? this.walPositions() : null;
    return {
      online,
      healthy: online,
      error: online ? null : 'not running',
      inRecovery: online ? this.inRecovery : null,
      writable: online && !this.inRecovery && this.writable,
      currentLsn: p?.currentLsn ?? null,
      receiveLsn: p?.receiveLsn ?? null,
      replayLsn: p?.replayLsn ?? null,
      walReceiver: online && this.inRecovery ? (this.streaming ? 'streaming' : null) : null,
      lastCheckAt: null,
      checkLatencyMs: null,
    };
  }

  /** Is `standby` (running, in recovery, named `appName`) streaming from this server and caught up? */
  syncCaughtUp(byId: ReadonlyMap<string, SimPostgres>, syncId: string): SyncCatchUp {
    const s = byId.get(syncId);
    const base = { primaryFlushLsn: lsnOf(this.wal.length), syncFlushLsn: s === undefined ? null : lsnOf(s.wal.length), state: null };
    if (s === undefined || !s.running || !s.streaming || s.upstream !== this.peerId || s.applicationName !== syncId) {
      return { ...base, caughtUp: false, reason: `${syncId} is not streaming from this server` };
    }
    if (s.wal.length < this.wal.length) return { ...base, caughtUp: false, reason: `${syncId} has flushed ${s.wal.length} of ${this.wal.length}` };
    return { ...base, caughtUp: true, reason: `${syncId} is streaming and caught up` };
  }
}

/** The replication step: every standby streams from its upstream, and primaries release commits. */
export function replicate(byId: ReadonlyMap<string, SimPostgres>, net: SimNetwork, recordsPerStep: number): void {
  for (const s of byId.values()) {
    if (!s.running || !s.inRecovery || pgFrozen(net, s.peerId)) continue;
    const u = s.upstream === null ? undefined : byId.get(s.upstream);
    const ok = u !== undefined && u.running && u.hasData && !pgFrozen(net, u.peerId) && net.canTalk(s.peerId, u.peerId) && isPrefix(s.wal, u.wal);
    s.streaming = ok;
    if (ok) {
      const end = Math.min(u.wal.length, s.wal.length + recordsPerStep);
      for (let i = s.wal.length; i < end; i++) s.wal.push(u.wal[i]!);
    }
    s.replayed = Math.min(s.wal.length, s.replayed + recordsPerStep);
  }
  for (const p of byId.values()) {
    if (!p.running || p.inRecovery || p.pending.length === 0 || p.syncName === null || pgFrozen(net, p.peerId)) continue;
    const s = byId.get(p.syncName);
    if (s === undefined || !s.running || !s.streaming || s.upstream !== p.peerId || s.applicationName !== p.syncName) continue;
    const flushed = s.wal.length;
    const keep: PendingCommit[] = [];
    for (const c of p.pending) {
      if (c.end <= flushed) p.onAck?.(c.writeId, p.peerId);
      else keep.push(c);
    }
    p.pending = keep;
  }
}

/**
 * One sitter incarnation's handle on its PostgreSQL, behind the interfaces that the sitter's jobs
 * ask of PostgresServer: LocalPostgres for the real reconciler, FencePostgres for the fence,
 * StandbyProbe for the stream-stall watch. A dead incarnation's calls never complete (its process
 * is gone).
 */
export class SimPgHandle implements LocalPostgres, FencePostgres, StandbyProbe {
  readonly replicationUser = 'repl';
  private rendered: RenderedRole | null = null;
  alive = true;

  constructor(
    readonly pg: SimPostgres, private readonly world: World, private readonly byId: ReadonlyMap<string, SimPostgres>, private readonly net: SimNetwork,
    private readonly opts: {
      /**
       * Report every timeline switch at 0/0, so that the sitter's history comparison sees the
       * timeline numbers only: the rule before seed 50019's fix (SitterFixes.timelineHistories off).
       */
      readonly timelineNumbersOnly?: boolean;
      /** The sitter's event loop is stalled: its calls complete only once it runs again. */
      readonly stalled?: () => boolean;
    } = {},
  ) {}

  /** What the sitter reads of a server's timeline history. */
  private historyOf(pg: SimPostgres): TimelineHistory {
    const h = pg.history;
    return this.opts.timelineNumbersOnly === true ? { timeline: h.timeline, switches: h.switches.map((s) => ({ timeline: s.timeline, switchLsn: '0/0' })) } : h;
  }

  /** Read after an await: the process may have died meanwhile. */
  isAlive(): boolean {
    return this.alive;
  }

  get running(): boolean {
    return this.pg.running;
  }

  get role(): RenderedRole | null {
    return this.rendered;
  }

  /**
   * Simulated latency, then (if this incarnation still lives) the operation. A hung server does not
   * answer: the call fails after the sitter's query timeout (`onTimeout` runs first: a signal sent
   * to a stopped process is delivered when it runs again).
   */
  private async op<T>(fn: () => T, lo = 5, hi = 60, onTimeout?: () => void): Promise<T> {
    await this.world.sleep(this.world.rng.int(lo, hi));
    // A paused host (or a stalled sitter) runs nothing until it is resumed.
    while (this.alive && (this.net.paused(this.pg.peerId) || this.opts.stalled?.() === true)) await this.world.sleep(50);
    if (!this.isAlive()) return new Promise<T>(() => undefined);
    if (this.net.pgHung?.(this.pg.peerId) === true) {
      const deadlineMs = this.world.nowMs + PG_QUERY_TIMEOUT_MS;
      while (this.alive && this.net.pgHung(this.pg.peerId) && this.world.nowMs < deadlineMs) await this.world.sleep(50);
      if (!this.isAlive()) return new Promise<T>(() => undefined);
      if (this.net.pgHung(this.pg.peerId)) {
        onTimeout?.();
        throw new PgError('MANATEE_ERR_PG_QUERY', `PostgreSQL of ${this.pg.peerId} did not answer within ${PG_QUERY_TIMEOUT_MS} ms`);
      }
    }
    return fn();
  }

  /** The lease fence's stop: an immediate shutdown, whatever the rendered role. */
  stopImmediate(): Promise<void> {
    return this.op(() => {
      this.pg.stop('immediate');
    }, 5, 30, () => { this.pg.stopPending = true; });
  }

  hasData(): Promise<boolean> {
    return this.op(() => this.pg.hasData, 1, 5);
  }

  initdb(): Promise<void> {
    return this.op(() => {
      if (this.pg.hasData) throw new PgError('MANATEE_ERR_PG_DATADIR_NOT_EMPTY', 'the data directory is not empty');
      this.pg.hasData = true;
      this.pg.wal = [{ id: this.pg.nextId(), kind: 'init' }];
      this.pg.replayed = 1;
    }, 100, 300);
  }

  configure(role: PgRole): Promise<ConfigureResult> {
    const immediateStop = role.role === 'stopped' && role.shutdown === 'immediate';
    return this.op(() => this.configureNow(role), 20, 200, immediateStop ? () => { this.pg.stopPending = true; } : undefined);
  }

  private configureNow(role: PgRole): ConfigureResult {
    const pg = this.pg;
    if (role.role === 'stopped') {
      const was = pg.running;
      pg.stop(role.shutdown ?? 'fast');
      this.rendered = { role: 'stopped' };
      return { action: was ? 'stopped' : 'none', role: this.rendered, restartedFor: [] };
    }
    if (!pg.hasData) throw new PgError('MANATEE_ERR_PG_NO_DATA', `configure ${role.role}: the data directory holds no database`);
    const running = pg.running;
    const recovering = running ? pg.inRecovery : null;
    let next: RenderedRole;
    if (role.role === 'primary') {
      const syncId = role.syncId ?? null;
      const prev = this.rendered;
      // As PostgresServer.configure: a writable primary stays writable (naming the new sync) only
      // when it ran as this very primary before; anything else starts read-only.
      const stayWritable = running && recovering === false && prev?.role === 'primary' && prev.writable && syncId !== null;
      next = { role: 'primary', writable: stayWritable, syncNames: stayWritable ? syncId : '!manatee-no-sync', oneNodeWriteMode: false, syncId };
    } else {
      next = { role: 'standby', upstreamHost: role.upstream.host, upstreamPort: role.upstream.port, applicationName: role.applicationName };
    }
    let action: ConfigureResult['action'];
    if (next.role === 'primary') {
      const wasStandby = pg.inRecovery;
      if (!running) pg.start();
      if (wasStandby) {
        pg.promote();
        action = 'promoted';
      } else action = running ? 'reloaded' : 'started';
      pg.writable = next.writable;
      pg.syncName = next.writable ? next.syncId : null;
    } else {
      if (!running) pg.start();
      action = running && recovering === false ? 'restarted' : running ? 'reloaded' : 'started';
      if (recovering === false) pg.pending = [];
      pg.inRecovery = true;
      pg.writable = false;
      pg.syncName = null;
      pg.upstream = next.upstreamHost;
      pg.applicationName = next.applicationName;
    }
    this.rendered = next;
    this.world.log(() => `pg ${pg.peerId} configured ${next.role}${next.role === 'standby' ? ` of ${next.upstreamHost}` : ` writable=${String(pg.writable)}`} (${action})`);
    return { action, role: next, restartedFor: [] };
  }

  // The real server's wait (waitMs) is not modelled: the simulated loop retries instead.
  syncCaughtUp(syncId: string): Promise<SyncCatchUp> {
    return this.op(() => this.pg.syncCaughtUp(this.byId, syncId), 2, 20);
  }

  enableWrites(syncId: string): Promise<SyncCatchUp> {
    return this.op(() => {
      const cur = this.rendered;
      if (cur?.role !== 'primary' || !this.pg.running || this.pg.inRecovery) {
        throw new PgError('MANATEE_ERR_PG_WRONG_ROLE', `enableWrites: PostgreSQL is not running as a primary (role ${cur?.role ?? 'unknown'})`);
      }
      const check = this.pg.syncCaughtUp(this.byId, syncId);
      if (!check.caughtUp) throw new PgError('MANATEE_ERR_PG_SYNC_NOT_CAUGHT_UP', `enableWrites refused: ${check.reason}`);
      this.rendered = { role: 'primary', writable: true, syncNames: syncId, oneNodeWriteMode: false, syncId };
      this.pg.writable = true;
      this.pg.syncName = syncId;
      this.world.log(() => `pg ${this.pg.peerId} writable, sync ${syncId}`);
      this.world.onWritable(this.pg.peerId);
      return check;
    }, 5, 30);
  }

  detachFromUpstream(): Promise<void> {
    return this.op(() => {
      if (!this.pg.running) throw new PgError('MANATEE_ERR_PG_QUERY', 'detachFromUpstream: PostgreSQL is not running');
      this.rendered = { role: 'primary', writable: false, syncNames: '!manatee-no-sync', oneNodeWriteMode: false, syncId: null };
      this.pg.upstream = null;
      this.pg.streaming = false;
      this.world.log(() => `pg ${this.pg.peerId} detached from its upstream at ${lsnOf(this.pg.wal.length)}`);
    }, 5, 30);
  }

  /** The primary's fence: read-only, and commits wait for a sync that is not named. */
  fenceWrites(): Promise<void> {
    return this.op(() => {
      if (!this.pg.running) throw new PgError('MANATEE_ERR_PG_QUERY', 'fenceWrites: PostgreSQL is not running');
      this.rendered = { role: 'primary', writable: false, syncNames: '!manatee-no-sync', oneNodeWriteMode: false, syncId: null };
      this.pg.writable = false;
      this.pg.syncName = null;
      this.world.log(() => `pg ${this.pg.peerId} fenced at ${lsnOf(this.pg.wal.length)}`);
    }, 5, 30);
  }

  /**
   * The timeline history of this server's WAL, as the sitter reads it after the fence's
   * walPositions (the takeover's check). Read at once, without a latency of its own, so that it
   * draws nothing from the seed's random numbers (seeds found before it keep their runs).
   */
  ownHistory(): Promise<TimelineHistory | null> {
    if (!this.isAlive()) return new Promise<TimelineHistory | null>(() => undefined);
    return Promise.resolve(this.pg.running && !pgFrozen(this.net, this.pg.peerId) ? this.pg.history : null);
  }

  walPositions(): Promise<WalPositions> {
    return this.op(() => {
      if (!this.pg.running) throw new PgError('MANATEE_ERR_PG_QUERY', 'PostgreSQL is not running');
      return this.pg.walPositions();
    }, 2, 10);
  }

  /** The WAL receiver's status and the replayed position (null when PostgreSQL does not answer). */
  receiver(): Promise<{ readonly streaming: boolean; readonly replayLsn: string | null } | null> {
    return this.op(() => (this.pg.running ? { streaming: this.pg.streaming, replayLsn: this.pg.walPositions().replayLsn } : null), 2, 10);
  }

  /** The timeline a primary writes, with its history (null when it is a standby or does not answer). */
  sourceHistory(sourceId: string): Promise<TimelineHistory | null> {
    return this.op(() => {
      const s = this.byId.get(sourceId);
      if (s === undefined || !s.running || s.inRecovery || pgFrozen(this.net, sourceId) || !this.net.canTalk(this.pg.peerId, sourceId)) return null;
      return this.historyOf(s);
    }, 2, 20);
  }

  /** Whether a primary is read-only (null when it is a standby or does not answer). */
  sourceReadOnly(sourceId: string): Promise<boolean | null> {
    return this.op(() => {
      const s = this.byId.get(sourceId);
      if (s === undefined || !s.running || s.inRecovery || pgFrozen(this.net, sourceId) || !this.net.canTalk(this.pg.peerId, sourceId)) return null;
      return !s.writable;
    }, 2, 20);
  }

  /** This standby's WAL positions and its timeline's history (the stream-stall watch's OwnWal). */
  ownWal(): Promise<{ replayLsn: string | null; receiveLsn: string | null; history: TimelineHistory | null }> {
    return this.op(() => {
      if (!this.pg.running) throw new PgError('MANATEE_ERR_PG_QUERY', 'PostgreSQL is not running');
      const p = this.pg.walPositions();
      return p.inRecovery ? { replayLsn: p.replayLsn, receiveLsn: p.receiveLsn, history: this.historyOf(this.pg) } : { replayLsn: null, receiveLsn: null, history: null };
    }, 2, 10);
  }

  /** pg_is_in_recovery() on another peer's server; throws when it does not answer. */
  askSource(sourceId: string): Promise<boolean> {
    return this.op(() => {
      const s = this.byId.get(sourceId);
      if (s === undefined || !s.running || pgFrozen(this.net, sourceId) || !this.net.canTalk(this.pg.peerId, sourceId)) {
        throw new PgError('MANATEE_ERR_PG_QUERY', `${sourceId}'s PostgreSQL does not answer`);
      }
      return s.inRecovery;
    }, 2, 20);
  }
}

/**
 * Other peers' PostgreSQL as one sitter incarnation asks it (src/peer/source-postgres.ts's
 * interface, which HeldSourcePostgres implements for real): through its handle, so that the
 * answers take simulated time and follow the network.
 */
export class SimSources implements SourcePostgres {
  constructor(private readonly handle: SimPgHandle) {}

  async promoted(source: PeerInfo): Promise<true | string> {
    return (await this.handle.askSource(source.id)) ? `${source.id} is still in recovery` : true;
  }

  async online(source: PeerInfo): Promise<true | string> {
    await this.handle.askSource(source.id);
    return true;
  }

  timelineHistory(source: PeerInfo): Promise<TimelineHistory | null> {
    return this.handle.sourceHistory(source.id);
  }

  readOnly(source: PeerInfo): Promise<boolean | null> {
    return this.handle.sourceReadOnly(source.id);
  }

  /** The simulation has no role passwords: every password is taken. */
  acceptsPassword(): Promise<boolean | null> {
    return Promise.resolve(true);
  }

  close(): void {
    // No connection is held.
  }
}

/**
 * pg_basebackup / pg_rewind from another peer: takes time, needs the source to answer, and ends
 * with this peer's WAL equal to the source's (a standby of it, not started).
 */
export class SimBackend implements BackupBackend {
  readonly kind = 'basebackup' as const;

  constructor(private readonly handle: SimPgHandle, private readonly world: World, private readonly byId: ReadonlyMap<string, SimPostgres>, private readonly net: SimNetwork) {}

  async restore(opts: RestoreOptions): Promise<RestoreResult> {
    const self = this.handle.pg;
    const sourceId = opts.source.peerId;
    const startMs = this.world.nowMs;
    const durationMs = this.world.rng.int(200, 1500);
    await this.world.sleep(durationMs);
    if (!this.handle.alive) return new Promise<RestoreResult>(() => undefined);
    const s = this.byId.get(sourceId);
    if (s === undefined || !s.running || !s.hasData || pgFrozen(this.net, sourceId) || !this.net.canTalk(self.peerId, sourceId)) {
      throw new PgError('MANATEE_ERR_PG_QUERY', `restore from ${sourceId}: its PostgreSQL does not answer`);
    }
    if (self.running) throw new PgError('MANATEE_ERR_PG_QUERY', 'restore: the local PostgreSQL runs');
    const rewind = self.hasData && !opts.cannotStream;
    self.hasData = true;
    self.wal = s.wal.slice();
    self.replayed = self.wal.length;
    self.inRecovery = true;
    self.upstream = null;
    self.writable = false;
    self.syncName = null;
    this.world.log(() => `pg ${self.peerId} restored from ${sourceId} (${rewind ? 'rewind' : 'full'}) at ${lsnOf(self.wal.length)}`);
    return { method: rewind ? 'rewind' : 'full', bytes: self.wal.length * 64, durationMs: this.world.nowMs - startMs };
  }
}
