// The running Raft node: the pure core (core/) driven by timers, fed by the transport, made
// durable by the storage, and applied to a StateMachine.
//
// The Ready loop (one iteration at a time, as etcd's raft node):
//   1. take core.ready();
//   2. as leader, send appends/heartbeats at once: the leader may replicate entries before its
//      own fsync (Raft thesis §10.2.1) because nothing it sends here claims its own durability;
//   3. persist snapshot + entries + hard state in one synced record (storage.save); a change of
//      the commit index alone is not written then, but with the next batch or at the next tick;
//   4. publish them to the MemoryLog the core reads, then send the remaining messages
//      (votes and acks must never outrun their persistence);
//   5. install a received snapshot; apply committed entries (conf changes via the core); those
//      already on disk before this Ready are applied during step 3's write;
//      resolve proposals and reads; advance; take a snapshot and compact when due.
// Proposals that arrive while a batch is being fsynced wait in the core and go out together
// in the next Ready: that is the group commit.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { ManateeError, asError, errorMessage } from '../errors.js';
import { RaftCore, type RaftStanding } from './core/raft.js';
import { MemoryLog } from './core/memory-log.js';
import { ConfChangeInvalidError, ProposalDroppedError, RaftInvariantError } from './core/errors.js';
import { decodeConfChange } from './core/confchange.js';
import { bootstrapSnapshot } from './core/bootstrap.js';
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, RaftRole, Ready, Snapshot } from './core/types.js';
import type { AppliedEntry, StateMachine } from './state-machine.js';
import { RaftStorage } from './storage/raft-storage.js';
import { KEEPALIVE_INTERVAL_MS, TcpTransport, type TransportStats, type TransportTls } from './transport/tcp-transport.js';
import { LEADER_MESSAGE_DATA_MAX, type PeerMessage } from './transport/messages.js';
import { RaftConfigError, RaftLeaderChangedError, RaftLeaderMessageTooLargeError, RaftNoLeaderError, RaftStoppedError, RaftTimeoutError } from './errors.js';

export interface RaftNodeOptions {
  readonly id: NodeId;
  /** Directory of this node's Raft state (storage/raft-storage.ts; created if missing). */
  readonly dataDir: string;
  /** NodeId -> "host:port" of the other members (this node's own entry is ignored). */
  readonly peers: Readonly<Record<NodeId, string>>;
  /** The voters of a new group. Used only when dataDir is empty; a restart uses what is on disk. */
  readonly initialVoters?: readonly NodeId[];
  /** The shard's shared secret; peers without it are refused. */
  readonly secret: string;
  /** More secrets accepted from peers during a rotation (setSecrets changes them). */
  readonly acceptedSecrets?: readonly string[];
  /** Mutual TLS between peers (the transport's TransportTls); absent: plain TCP. */
  readonly tls?: TransportTls;
  readonly listen: { readonly host: string; readonly port: number };
  readonly stateMachine: StateMachine;
  readonly logger: Logger;
  /** Length of one tick. Default 100 ms. */
  readonly tickMs?: number;
  /** Election timeout in ticks (randomized in [n, 2n)). Default 10. */
  readonly electionTicks?: number;
  /** Heartbeat interval in ticks. Default 1. */
  readonly heartbeatTicks?: number;
  /**
   * How long a leader waits before it sends a new commit index to followers on its own (an empty
   * append to each, and an answer from each). The next proposal's appends carry it anyway, so
   * under load it is never sent on its own: half the messages of a lone proposal. 0 sends it at
   * once. Followers (and proposals forwarded by them) learn of a commit at most this much later.
   * Default 2 ms.
   */
  readonly commitBroadcastDelayMs?: number;
  /** Take a snapshot after this many applied entries. Default 10000. */
  readonly snapshotEveryEntries?: number;
  /** Entries kept behind a snapshot for followers that lag a little. Default 1000. */
  readonly keepEntriesAfterSnapshot?: number;
  /** Default timeout of propose() and read(). Default 10000 ms. */
  readonly requestTimeoutMs?: number;
  /** Most proposals and reads waiting at once; past it, new ones are refused. Default 10000. */
  readonly maxPendingRequests?: number;
  readonly maxEntriesPerMessage?: number;
  readonly maxInflightMessages?: number;
  readonly maxUncommittedEntries?: number;
  /** Transport limits. */
  readonly maxFrameBytes?: number;
  readonly maxQueueMessages?: number;
  /** Random source for election timeouts; defaults to Math.random (the node is not the pure part). */
  readonly random?: () => number;
  /**
   * Called at each step of a write's path, with the log index concerned (tools/bench/raft-steps.ts
   * times them; nothing else sets it). Not called when absent.
   */
  readonly trace?: (step: RaftTraceStep, index: number) => void;
}

/**
 * The steps of one write, in order: propose (the leader appended it), send (the leader's appends
 * went on the socket), saveStart/saveEnd (around a Ready's synced write of its entries), recvAppend
 * (a follower got them), ack (the follower's acknowledgement went on the socket), recvAck (the
 * leader got one), commitReady (the leader's Ready that carries its commit), apply.
 */
export type RaftTraceStep = 'propose' | 'send' | 'saveStart' | 'saveEnd' | 'recvAppend' | 'ack' | 'recvAck' | 'commitReady' | 'apply';

export interface RaftNodeStatus {
  readonly id: NodeId;
  readonly term: number;
  readonly leader: NodeId | null;
  readonly role: RaftRole;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly members: ConfState;
  readonly addresses: Record<NodeId, string>;
  readonly pendingProposals: number;
  readonly pendingReads: number;
  readonly transport: TransportStats;
  /**
   * The clock since start: ticks run, and how many times the timer fired (about one per tick on a
   * leader; a follower that knows its leader ticks on its messages and its timer fires rarely).
   */
  readonly clock: { readonly ticks: number; readonly timerFires: number };
}

export interface RaftNodeEvents {
  leaderChange: [{ leader: NodeId | null; term: number }];
  applied: [AppliedEntry];
  confChange: [{ change: ConfChange; members: ConfState; index: number }];
  /** A message sent with sendToLeader() that reached this node while it led (its own included). */
  leaderMessage: [{ from: NodeId; data: string }];
  /** A message sent with replyFromLeader() to this node (by the leader it then had, or by itself). */
  leaderReply: [{ from: NodeId; data: string }];
  /** A dial to this member was refused (ECONNREFUSED): nothing listens at its address. */
  peerRefused: [NodeId];
  error: [Error];
}

/**
 * The proposal was appended by this node as leader, but a later leader replaced that log entry:
 * it was not applied and never will be. Safe to retry.
 */
export class RaftProposalLostError extends ManateeError {
  constructor(index: number) {
    super('MANATEE_ERR_RAFT_PROPOSAL_LOST', `the proposal at log index ${index} was replaced by a new leader's entry; it was not applied`);
  }
}

/** The node refused a request because too many are already waiting. */
export class RaftOverloadedError extends ManateeError {
  constructor(limit: number) {
    super('MANATEE_ERR_RAFT_OVERLOADED', `more than ${limit} proposals and reads are waiting; retry later`);
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  /** A proposal this node (a follower) forwarded: the leader it went to, and in which term. */
  forwardedTo?: { readonly leader: NodeId; readonly term: number };
}

interface PendingRead extends Pending {
  /** The read index once the leader confirmed it; null until then. */
  index: number | null;
}

/** What a snapshot's data holds: the state machine's data and the members' addresses. */
interface SnapshotEnvelope {
  readonly v: 1;
  readonly peers: Record<NodeId, string>;
  readonly sm: string;
}

// Proposed data is wrapped so that the proposer recognizes its own command when it is applied
// (it may have been forwarded to the leader): "m1~<request id>~<data>".
const ENVELOPE_PREFIX = 'm1~';

/**
 * The longest a follower that knows its leader goes without a tick when no message comes
 * (armTicker). Its pings ride the tick: KEEPALIVE_INTERVAL_MS plus this must stay well below the
 * transport's silence timeout (1 s), or its peers would drop its connections as silent.
 */
export const LAZY_TICKER_HORIZON_MS = 500;

/**
 * A periodic countdown that ran out (`left` <= 0) starts its next period: the ticks run past the
 * period count toward the next one (ticks come two at a time between a leader's heartbeats, and a
 * 3-tick period then alternates 4 and 2 ticks, 3 on average), unless a whole period or more passed
 * (a stall), which starts the next one afresh.
 */
function nextCountdown(left: number, period: number): number {
  return left + period > 0 ? left + period : period;
}

export function wrapCommand(rid: string, data: string): string {
  return `${ENVELOPE_PREFIX}${rid}~${data}`;
}

export function unwrapCommand(raw: string): { rid: string | null; data: string } {
  if (!raw.startsWith(ENVELOPE_PREFIX)) return { rid: null, data: raw };
  const end = raw.indexOf('~', ENVELOPE_PREFIX.length);
  if (end < 0) return { rid: null, data: raw };
  return { rid: raw.slice(ENVELOPE_PREFIX.length, end), data: raw.slice(end + 1) };
}


export class RaftNode extends EventEmitter<RaftNodeEvents> {
  readonly id: NodeId;
  private readonly opts: RaftNodeOptions;
  private readonly log: Logger;
  private readonly core: RaftCore;
  private readonly memLog: MemoryLog;
  private readonly storage: RaftStorage;
  private readonly transport: TcpTransport;
  private readonly sm: StateMachine;
  private readonly addresses = new Map<NodeId, string>();
  private readonly pending = new Map<string, Pending>();
  /** Log index -> request id of proposals appended by this node as leader (to detect overwrites). */
  private readonly proposedAt = new Map<number, string>();
  /** Snapshots being sent, for the progress log (one per destination at most). */
  private readonly snapshotSends = new Map<NodeId, { index: number; sizeBytes: number; atMs: number }>();
  /** Every read still waiting, whatever its stage. */
  private readonly pendingReads = new Set<PendingRead>();
  /** Reads that arrived while a ReadIndex request was in flight: they share the next one. */
  private readQueue: PendingRead[] = [];
  /** Reads that wait for the leader's next heartbeat to start their ReadIndex round (read's atHeartbeat). */
  private heartbeatReads: PendingRead[] = [];
  /** Replies from this leader that wait for its next heartbeat (replyFromLeader withNextHeartbeat). */
  private heartbeatReplies: PeerMessage[] = [];
  /** The one ReadIndex request in flight, and the reads it serves (etcd's linearizableReadLoop). */
  private readInflight: { ctx: string; waiters: PendingRead[]; sentAtMs: number } | null = null;
  private readonly bootId = randomBytes(6).toString('hex');
  private ridCounter = 0;
  private applied: number;
  private snapshotIndex: number;
  private members: ConfState;
  private leader: NodeId | null = null;
  private term = 0;
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';
  private loopRunning = false;
  private loopScheduled = false;
  private loopIdle: Promise<void> = Promise.resolve();
  private ticker: NodeJS.Timeout | null = null;
  /** The clock (armTicker): tick k is due at tickAnchorMs + k * tickMs; ticksRun ticks have run. */
  private tickAnchorMs = 0;
  private ticksRun = 0;
  /** When the armed ticker runs out (performance.now()). */
  private tickerExpiryMs = Number.POSITIVE_INFINITY;
  private tickLateMs = 0;
  private ticksTotal = 0;
  private timerFires = 0;
  /**
   * Every how many ticks the transport's keepalive check runs, from this node's ticker (its pings
   * then add no wake-up of their own); null when the tick does not divide its interval (the
   * transport keeps its own timer).
   */
  private readonly keepaliveTicks: number | null;
  /** Ticks left until the transport's next keepalive check (a countdown, as every()'s). */
  private keepaliveLeft: number;
  /** Callbacks run from the ticker every `ticks` ticks (every()). */
  private readonly periodic = new Set<{ readonly ticks: number; left: number; readonly fn: () => void }>();
  private commitTimer: NodeJS.Timeout | null = null;
  /**
   * A hard state whose only change is the commit index, not yet written: it goes to disk with the
   * next batch that must be written anyway, or at the next tick when none comes (hardStateFlushDue).
   */
  private unwrittenHardState: HardState | null = null;
  private hardStateFlushDue = false;
  private readonly commitBroadcastDelayMs: number;
  private readonly tickMs: number;
  private readonly electionTicks: number;
  private readonly snapshotEvery: number;
  private readonly keepEntries: number;
  private readonly requestTimeoutMs: number;
  private readonly maxPending: number;
  private readonly trace: ((step: RaftTraceStep, index: number) => void) | null;

  private constructor(opts: RaftNodeOptions, storage: RaftStorage, memLog: MemoryLog, snapshot: Snapshot) {
    super();
    this.id = opts.id;
    this.opts = opts;
    this.log = opts.logger;
    this.storage = storage;
    this.memLog = memLog;
    this.sm = opts.stateMachine;
    this.tickMs = opts.tickMs ?? 100;
    this.commitBroadcastDelayMs = opts.commitBroadcastDelayMs ?? 2;
    this.electionTicks = opts.electionTicks ?? 10;
    this.snapshotEvery = opts.snapshotEveryEntries ?? 10_000;
    this.keepEntries = opts.keepEntriesAfterSnapshot ?? 1000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.maxPending = opts.maxPendingRequests ?? 10_000;
    this.trace = opts.trace ?? null;
    this.applied = snapshot.metadata.index;
    this.snapshotIndex = snapshot.metadata.index;
    this.members = snapshot.metadata.confState;

    // Addresses: those remembered in the snapshot, overridden by the configuration.
    const env = snapshot.data === '' ? null : RaftNode.parseSnapshotData(snapshot.data);
    for (const [id, a] of Object.entries(env?.peers ?? {})) this.addresses.set(id, a);
    for (const [id, a] of Object.entries(opts.peers)) this.addresses.set(id, a);
    if (opts.listen.port !== 0) this.addresses.set(opts.id, `${opts.listen.host}:${opts.listen.port}`);
    if (env !== null) this.sm.restore(env.sm);

    this.core = new RaftCore({
      id: opts.id,
      electionTicks: this.electionTicks,
      heartbeatTicks: opts.heartbeatTicks ?? 1,
      preVote: true,
      checkQuorum: true,
      maxEntriesPerMessage: opts.maxEntriesPerMessage ?? 512,
      maxInflightMessages: opts.maxInflightMessages ?? 256,
      maxUncommittedEntries: opts.maxUncommittedEntries ?? 10_000,
      random: opts.random ?? Math.random,
      deferCommitBroadcast: this.commitBroadcastDelayMs > 0,
    }, memLog);
    const peers: Record<NodeId, string> = {};
    for (const [id, a] of this.addresses) if (id !== opts.id) peers[id] = a;
    this.keepaliveTicks = KEEPALIVE_INTERVAL_MS % this.tickMs === 0 ? KEEPALIVE_INTERVAL_MS / this.tickMs : null;
    this.keepaliveLeft = this.keepaliveTicks ?? 0;
    this.transport = new TcpTransport({
      id: opts.id,
      keepaliveClock: this.keepaliveTicks !== null ? 'caller' : 'timer',
      secret: opts.secret,
      ...(opts.acceptedSecrets !== undefined ? { acceptedSecrets: opts.acceptedSecrets } : {}),
      ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
      listen: opts.listen,
      peers,
      logger: opts.logger,
      ...(opts.maxFrameBytes !== undefined ? { maxFrameBytes: opts.maxFrameBytes } : {}),
      ...(opts.maxQueueMessages !== undefined ? { maxQueueMessages: opts.maxQueueMessages } : {}),
      handlers: {
        onMessages: (ms) => { this.onMessages(ms); },
        onUnreachable: (to) => { if (this.state === 'running') this.core.reportUnreachable(to); },
        onRefused: (to) => { this.onRefused(to); },
        onSnapshotSent: (to, ok) => {
          const started = this.snapshotSends.get(to);
          this.snapshotSends.delete(to);
          if (started !== undefined) {
            const elapsedMs = Date.now() - started.atMs;
            const rateBytesPerSec = elapsedMs > 0 ? Math.round((started.sizeBytes * 1000) / elapsedMs) : null;
            this.log.info({ id: this.id, to, ok, index: started.index, sizeBytes: started.sizeBytes, elapsedMs, rateBytesPerSec }, ok ? 'raft: snapshot sent' : 'raft: snapshot send failed');
          }
          if (this.state !== 'running') return;
          this.core.reportSnapshot(to, ok);
          this.kick();
        },
      },
    });
  }

  /**
   * Opens (or creates) the node's storage and checks it. Throws RaftStorageCorruptError if any
   * record is damaged: the node never starts on silently wrong state. Call start() to run.
   */
  static async open(opts: RaftNodeOptions): Promise<RaftNode> {
    if (opts.id === '') throw new RaftConfigError('node id must not be empty');
    if ((opts.tickMs ?? 100) <= 0) throw new RaftConfigError('tickMs must be positive');
    if ((opts.heartbeatTicks ?? 1) >= (opts.electionTicks ?? 10)) throw new RaftConfigError('heartbeatTicks must be below electionTicks');
    const cbd = opts.commitBroadcastDelayMs ?? 2;
    if (!Number.isFinite(cbd) || cbd < 0 || cbd >= (opts.tickMs ?? 100)) {
      throw new RaftConfigError(`commitBroadcastDelayMs must be at least 0 and below tickMs (${opts.tickMs ?? 100}), got ${cbd}`);
    }
    await mkdir(opts.dataDir, { recursive: true });
    const storage = await RaftStorage.open(opts.dataDir);
    for (const note of storage.openNotes) opts.logger.warn({ id: opts.id, dataDir: opts.dataDir, note }, 'raft: storage changed at open');
    try {
      const fresh = await storage.isEmpty();
      let memLog: MemoryLog;
      if (fresh && opts.initialVoters !== undefined && opts.initialVoters.length > 0) {
        // Every initial member starts from the same configuration; the snapshot's data carries the
        // empty state machine and the members' addresses, so that a member added later learns them.
        const peers: Record<NodeId, string> = { ...opts.peers, [opts.id]: `${opts.listen.host}:${opts.listen.port}` };
        const env: SnapshotEnvelope = { v: 1, peers, sm: opts.stateMachine.snapshot() };
        const { snapshot, hardState } = bootstrapSnapshot(opts.initialVoters, JSON.stringify(env));
        await storage.bootstrap(snapshot, hardState);
        opts.logger.info({ id: opts.id, voters: snapshot.metadata.confState.voters, dataDir: opts.dataDir }, 'raft: bootstrapped a new group');
        memLog = new MemoryLog({ snapshot, hardState });
      } else {
        const st = await storage.load();
        memLog = new MemoryLog({
          ...(st.hardState !== null ? { hardState: st.hardState } : {}),
          ...(st.snapshot !== null ? { snapshot: st.snapshot } : {}),
          entries: st.entries,
        });
        opts.logger.info({
          id: opts.id, dataDir: opts.dataDir, fresh, hardState: st.hardState,
          snapshotIndex: st.snapshot?.metadata.index ?? 0, lastIndex: memLog.lastIndex(),
        }, fresh ? 'raft: starting with an empty log, waiting to be added to a group' : 'raft: restarting from disk');
      }
      return new RaftNode(opts, storage, memLog, memLog.snapshot());
    } catch (err) {
      await storage.close();
      throw err;
    }
  }

  /**
   * Runs `fn` every `ms` from this node's ticker, for a caller whose own timer would wake the
   * process at other moments than the tick does (the store's keepalives and expiry loop); returns
   * the stop, or null when `ms` is shorter than a tick (the caller keeps its own timer). When the
   * tick does not divide `ms`, `fn` runs every floor(ms / tick) ticks: a little more often than
   * asked, never less (the store's follower loop of 750 ms runs every 700 ms at a 100 ms tick).
   * When ticks run several at a time (a lazy follower's at its leader's heartbeats, a leader's at
   * its own), the ticks run past a period count toward the next: at a heartbeat every 2 ticks a
   * 3-tick period runs after 4 ticks, then 2, at its rate on average (a single lost keepalive then
   * leaves the next one 6 ticks after the last, as on time). Runs while the node runs.
   */
  every(ms: number, fn: () => void): (() => void) | null {
    if (!(ms >= this.tickMs)) return null;
    const ticks = Math.floor(ms / this.tickMs);
    const p = { ticks, left: ticks, fn };
    this.periodic.add(p);
    return () => { this.periodic.delete(p); };
  }

  /** Binds the transport and starts the clock. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new RaftStoppedError(`node ${this.id} cannot start: it is ${this.state}`);
    await this.transport.start();
    this.state = 'running';
    // A node that starts hears of no leader yet: it campaigns within a few ticks rather than a full
    // election timeout (after every peer restarted, the first to be up need not wait 0.5-1 s).
    this.core.campaignSoon();
    this.tickAnchorMs = performance.now();
    this.armTicker();
    this.kick();
  }

  /**
   * The clock. Tick k is due at tickAnchorMs + k * tickMs. A candidate and a follower with no
   * leader tick on time, one timer per tick. A leader's timer runs out when its next heartbeat is
   * due (RaftCore.ticksUntilHeartbeat), and runs the ticks that came due meanwhile: the ticks
   * between heartbeats only counted, and woke it for nothing. A follower that knows its leader ticks when
   * messages come instead, running the ticks that came due since its last (runDueTicks from
   * onMessages): the leader's heartbeat wakes it every tick anyway, and a timer of its own woke
   * it a second time for each (issue #11). Its timer then only runs out when no message came for
   * LAZY_TICKER_HORIZON_MS or its election timeout, whichever is sooner; it is left armed when a
   * message pushes that moment later (moving a Node timer later still wakes the process at the
   * old time), and re-armed when it fires.
   */
  private armTicker(): void {
    if (this.state !== 'running') return;
    const ahead = this.core.ticksUntilElectionTimeout() ?? this.core.ticksUntilHeartbeat();
    const ticks = ahead === null ? 1 : Math.max(1, Math.min(ahead, Math.floor(LAZY_TICKER_HORIZON_MS / this.tickMs)));
    const wantMs = this.tickAnchorMs + (this.ticksRun + ticks) * this.tickMs;
    if (this.ticker !== null && this.tickerExpiryMs <= wantMs + 1) return;
    if (this.ticker !== null) clearTimeout(this.ticker);
    this.tickerExpiryMs = wantMs;
    this.ticker = setTimeout(() => {
      this.ticker = null;
      this.timerFires++;
      this.clockStep('timer');
    }, Math.max(1, wantMs - performance.now()));
  }

  /** Stops the ticker and the commit broadcast's timer (close, fatal). */
  private stopTimers(): void {
    if (this.ticker !== null) clearTimeout(this.ticker);
    this.ticker = null;
    if (this.commitTimer !== null) clearTimeout(this.commitTimer);
  }

  /** Runs the ticks due (runDueTicks) and arms the ticker for the next, while the node runs. */
  private clockStep(how: 'timer' | 'deferred'): void {
    if (this.state !== 'running') return;
    this.runDueTicks(how);
    this.armTicker();
  }

  /**
   * Runs the ticks due by now: from the timer ('timer'), or before the messages that just came
   * are stepped ('message': a follower's ticks then run in the wake-up its leader's heartbeat
   * caused). Every boundary passed counts for what rides the tick (every()'s callbacks, the
   * transport's keepalive check), as a timer of their own would. The core's clock is more careful:
   * - a leader runs the ticks due up to its next heartbeat, late or not (a late leader still
   *   sends its heartbeat);
   * - a candidate, a follower with no leader, or a lazy follower that ran late (its timer overdue
   *   by more than a tick: paused, starved), runs one tick of the core however many came due, as
   *   setInterval did: time it could not watch does not count against its leader;
   * - a lazy follower catches up, but never to its election timeout here: the timer's last tick
   *   waits for the end of this event-loop turn ('deferred', after the poll phase has read what
   *   its sockets hold, a heartbeat among them), and after messages the rest is left to them.
   */
  private runDueTicks(how: 'timer' | 'message' | 'deferred'): void {
    const nowMs = performance.now();
    // The timer may fire up to a millisecond before its moment by the monotonic clock (libuv's loop time is truncated).
    const passed = Math.floor((nowMs - this.tickAnchorMs + 1) / this.tickMs);
    const due = passed - this.ticksRun;
    if (due <= 0) {
      if (how === 'timer') this.tickLateMs = 0;
      return;
    }
    if (how !== 'deferred') this.tickLateMs = Math.max(0, nowMs - this.tickerExpiryMs);
    const untilTimeout = this.core.ticksUntilElectionTimeout();
    const untilHeartbeat = this.core.ticksUntilHeartbeat();
    const n = untilHeartbeat !== null ? Math.min(due, untilHeartbeat) : untilTimeout === null || this.tickLateMs > this.tickMs ? 1 : due;
    if (untilTimeout !== null && how !== 'deferred' && n >= untilTimeout) {
      const before = untilTimeout - 1;
      if (how === 'message') {
        this.ticksRun = passed;
        this.tick(before, due);
        return;
      }
      this.ticksRun += before;
      if (before > 0) this.tick(before, before);
      setImmediate(() => { this.clockStep('deferred'); });
      return;
    }
    this.ticksRun = passed;
    this.tick(n, due);
  }

  /**
   * `n` ticks of the core at once, then one round of what rides the tick (the transport's
   * keepalive check, every()'s callbacks), for which `elapsed` ticks passed.
   */
  private tick(n: number, elapsed: number): void {
    this.ticksTotal += n;
    let heartbeatSent = false;
    for (let i = 0; i < n; i++) {
      heartbeatSent ||= this.core.heartbeatDueAtNextTick();
      this.core.tick();
    }
    this.releaseHeartbeatReads(heartbeatSent);
    this.retryLostRead();
    if (this.unwrittenHardState !== null) this.hardStateFlushDue = true;
    // Most ticks (a follower's, a leader's between heartbeats) leave nothing to do: no Ready
    // loop then (an immediate and a pass of it, 20 a second per sitter).
    if (this.core.hasReady() || this.hardStateFlushDue || this.core.hasUnsentCommit()) this.kick();
    // After the kick: what is sent from here on (held replies, pings, a keepalive from every()'s
    // callbacks) goes out at the end of this turn, after the Ready loop's heartbeats, with them.
    this.releaseHeartbeatReplies(heartbeatSent);
    if (this.keepaliveTicks !== null && (this.keepaliveLeft -= elapsed) <= 0) {
      this.keepaliveLeft = nextCountdown(this.keepaliveLeft, this.keepaliveTicks);
      this.transport.keepaliveTick(this.tickLateMs);
    }
    for (const p of [...this.periodic]) {
      if ((p.left -= elapsed) > 0) continue;
      p.left = nextCountdown(p.left, p.ticks);
      try {
        p.fn();
      } catch (err) {
        // A caller's bug must not stop the tick (elections, heartbeats) nor the other callbacks.
        this.log.error({ id: this.id, err: err instanceof Error ? err.message : String(err) }, 'raft: a periodic callback threw');
      }
    }
  }

  /**
   * How late this process ran the current tick: by how much its timer was overdue (0 for ticks
   * run on a message before the timer was due). For callbacks of every() that watch the event
   * loop: a lazy follower's ticks come with its leader's messages, not on a schedule.
   */
  lastTickLateMs(): number {
    return this.tickLateMs;
  }

  /**
   * A dial to `to` was refused (its process is gone): said to listeners (peerRefused; the store's
   * leader expires a dead peer's session early on it). If it is our leader, the core forgets it and
   * campaigns within a few ticks instead of a full election timeout (RaftCore.reportRefused).
   */
  private onRefused(to: NodeId): void {
    if (this.state !== 'running' || to === this.id) return;
    this.emit('peerRefused', to);
    if (this.core.status(false).leader !== to) return;
    this.core.reportRefused(to);
    this.armTicker();
    if (this.core.status(false).leader === null) {
      this.log.info({ id: this.id, leader: to, reason: 'dial to the leader refused (ECONNREFUSED): its process is gone' }, 'raft: leader gone, campaigning within a few ticks');
    }
    this.kick();
  }

  /** A rotation of the shard secret (TcpTransport.setSecrets): the next connections use it. */
  setSecrets(secret: string, accepted: readonly string[] = []): void {
    this.transport.setSecrets(secret, accepted);
  }

  /** The transport's bound address (useful when listening on port 0). */
  address(): { host: string; port: number } {
    return this.transport.address();
  }

  /** Starts an election now (tests and operators; normally the election timer does it). */
  campaign(): void {
    this.assertRunning();
    this.core.campaign();
    this.kick();
  }

  /** Its term, leader and role, without the rest of status() (built on every call). */
  standing(): RaftStanding {
    return this.core.standing();
  }

  status(): RaftNodeStatus {
    const st = this.core.status();
    return {
      id: this.id,
      term: st.term,
      leader: st.leader,
      role: st.role,
      commit: st.commit,
      applied: this.applied,
      lastIndex: st.lastIndex,
      snapshotIndex: this.snapshotIndex,
      members: this.members,
      addresses: Object.fromEntries(this.addresses),
      pendingProposals: this.pending.size,
      pendingReads: this.pendingReads.size,
      transport: this.transport.stats(),
      clock: { ticks: this.ticksTotal, timerFires: this.timerFires },
    };
  }

  /**
   * Proposes a command. Resolves with the state machine's result once it is committed and
   * applied on this node. Rejects with RaftNoLeaderError, RaftTimeoutError or
   * RaftLeaderChangedError (the command may still be applied later), RaftStoppedError,
   * RaftOverloadedError or the core's ProposalDroppedError.
   */
  propose(data: string, opts: { timeoutMs?: number } = {}): Promise<unknown> {
    return this.request('proposal', (rid) => { this.core.propose(wrapCommand(rid, data)); }, opts.timeoutMs, true);
  }

  /**
   * Sends `data` to the current leader outside the log, fire and forget (at most once: a message
   * lost on the way is not retried). On the leader itself it is delivered locally. The leader
   * emits 'leaderMessage' with the sender's authenticated id. It travels as the transport's own
   * message type (transport/messages.ts), never through the core. Throws RaftNoLeaderError,
   * RaftStoppedError, or RaftLeaderMessageTooLargeError past LEADER_MESSAGE_DATA_MAX characters.
   */
  sendToLeader(data: string): void {
    this.assertRunning();
    if (data.length > LEADER_MESSAGE_DATA_MAX) throw new RaftLeaderMessageTooLargeError(data.length, LEADER_MESSAGE_DATA_MAX);
    const { leader, term } = this.core.standing();
    if (leader === null) throw new RaftNoLeaderError(`node ${this.id} knows no leader (term ${term})`);
    if (leader === this.id) {
      queueMicrotask(() => { this.deliverLeaderMessage(this.id, data); });
      return;
    }
    // At the end of this turn, with whatever else goes to the leader in it (a follower's keepalive
    // rides the tick run on the leader's heartbeat, and goes out with the heartbeat's answer).
    this.transport.sendSoon([{ type: 'leaderMessage', from: this.id, to: leader, term, data }]);
  }

  /**
   * Answers the sender of a leaderMessage, outside the log, fire and forget (e.g. a keepalive's
   * acknowledgement). To itself it is delivered locally. The receiver emits 'leaderReply' with
   * the sender's authenticated id. Throws RaftStoppedError, or RaftLeaderMessageTooLargeError.
   * With withNextHeartbeat, on a leader, the reply waits for this node's next heartbeat and goes
   * out in its frame (the receiver is woken once for both); it is dropped if this node no longer
   * leads in the same term by then.
   */
  replyFromLeader(to: NodeId, data: string, opts: { withNextHeartbeat?: boolean } = {}): void {
    this.assertRunning();
    if (data.length > LEADER_MESSAGE_DATA_MAX) throw new RaftLeaderMessageTooLargeError(data.length, LEADER_MESSAGE_DATA_MAX);
    if (to === this.id) {
      queueMicrotask(() => { if (this.state === 'running') this.emit('leaderReply', { from: this.id, data }); });
      return;
    }
    const { term, role } = this.core.status(false);
    const m: PeerMessage = { type: 'leaderReply', from: this.id, to, term, data };
    if (opts.withNextHeartbeat === true && role === 'leader') this.heartbeatReplies.push(m);
    else this.transport.send([m]);
  }

  /** After a tick that sent a heartbeat: the replies that waited for it join its frames (see replyFromLeader). */
  private releaseHeartbeatReplies(heartbeatSent: boolean): void {
    if (this.heartbeatReplies.length === 0) return;
    const { term, role } = this.core.status(false);
    if (role === 'leader' && !heartbeatSent) return;
    const replies = this.heartbeatReplies;
    this.heartbeatReplies = [];
    if (role === 'leader') this.transport.sendSoon(replies.filter((m) => m.term === term));
  }

  private deliverLeaderMessage(from: NodeId, data: string): void {
    // A node that is not (or no longer) the leader drops it: the sender's view was stale.
    if (this.state !== 'running' || this.core.standing().role !== 'leader') return;
    this.emit('leaderMessage', { from, data });
  }

  /**
   * Resolves once this node has applied everything committed before the call (ReadIndex).
   * Concurrent reads share one ReadIndex round: a read joins the next request issued after it
   * arrived (never one already in flight, which could predate it). A request lost on the way
   * (leader change, dropped message) is re-issued after an election timeout. With atHeartbeat, on
   * the leader, the round starts with the next heartbeat (at most heartbeatTicks later) instead of
   * at once, and costs the followers no message of its own: for reads that can wait that long.
   */
  async read(opts: { timeoutMs?: number; atHeartbeat?: boolean } = {}): Promise<void> {
    this.assertRunning();
    if (this.pending.size + this.pendingReads.size >= this.maxPending) throw new RaftOverloadedError(this.maxPending);
    this.assertLeaderKnown();
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    await new Promise<unknown>((resolve, reject) => {
      const p: PendingRead = {
        resolve, reject, index: null,
        timer: setTimeout(() => {
          this.pendingReads.delete(p);
          reject(new RaftTimeoutError(`read not confirmed within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.pendingReads.add(p);
      if (opts.atHeartbeat === true && this.core.standing().role === 'leader') {
        this.heartbeatReads.push(p);
        return;
      }
      this.readQueue.push(p);
      if (this.readInflight === null) this.issueReadIndex();
    });
  }

  /**
   * After a tick: the reads that waited for the heartbeat start their round now, in the same Ready
   * as the heartbeat, so that a follower gets both in one frame and answers both in one (one
   * wake-up of each process, not two). A node that no longer leads starts them at once.
   */
  private releaseHeartbeatReads(heartbeatSent: boolean): void {
    if (this.heartbeatReads.length === 0 || (!heartbeatSent && this.core.standing().role === 'leader')) return;
    this.readQueue.push(...this.heartbeatReads);
    this.heartbeatReads = [];
    if (this.readInflight === null) this.issueReadIndex();
  }

  private issueReadIndex(): void {
    const waiters = this.readQueue.filter((p) => this.pendingReads.has(p));
    this.readQueue = [];
    if (waiters.length === 0) return;
    const ctx = this.nextRid();
    try {
      this.core.readIndex(ctx);
    } catch (err) {
      const e = this.mapDropped(err);
      for (const p of waiters) {
        this.pendingReads.delete(p);
        clearTimeout(p.timer);
        p.reject(e);
      }
      return;
    }
    this.readInflight = { ctx, waiters, sentAtMs: Date.now() };
    this.kick();
  }

  /** On every tick: re-issue a ReadIndex request that got no answer within an election timeout. */
  private retryLostRead(): void {
    const inflight = this.readInflight;
    if (inflight === null || Date.now() - inflight.sentAtMs < this.electionTicks * this.tickMs) return;
    if (this.core.standing().leader === null) return; // wait for the election to end
    this.readInflight = null;
    this.readQueue = [...inflight.waiters, ...this.readQueue];
    this.log.debug({ id: this.id, waiters: inflight.waiters.length }, 'raft: ReadIndex request unanswered, re-issuing');
    this.issueReadIndex();
  }

  /** Adds a non-voting member that will receive the log. Resolves when the change is applied. */
  async addLearner(nodeId: NodeId, address: string, opts: { timeoutMs?: number } = {}): Promise<ConfState> {
    this.setAddress(nodeId, address);
    return this.changeMembers({ type: 'addLearner', nodeId }, address, opts.timeoutMs);
  }

  /** Makes a learner a voter. */
  async promote(nodeId: NodeId, opts: { timeoutMs?: number } = {}): Promise<ConfState> {
    return this.changeMembers({ type: 'promote', nodeId }, undefined, opts.timeoutMs);
  }

  /** Removes a member (voter or learner), possibly the leader itself. */
  async remove(nodeId: NodeId, opts: { timeoutMs?: number } = {}): Promise<ConfState> {
    return this.changeMembers({ type: 'remove', nodeId }, undefined, opts.timeoutMs);
  }

  /**
   * Asks the leader to hand leadership to `to`. Resolves when `to` is the leader this node knows.
   * The request is repeated every election timeout: the core aborts a transfer that did not finish
   * in one (e.g. the target had not yet applied its own promotion and ignored TimeoutNow).
   */
  async transferLeadership(to: NodeId, opts: { timeoutMs?: number } = {}): Promise<void> {
    this.assertRunning();
    this.assertLeaderKnown();
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    const ask = (): void => {
      if (this.state !== 'running' || this.leader === to) return;
      try {
        this.core.transferLeadership(to);
        this.kick();
      } catch (err) {
        this.log.debug({ id: this.id, to, reason: errorMessage(err) }, 'raft: leadership transfer request not sent');
      }
    };
    ask();
    if (this.leader === to) return;
    await new Promise<void>((resolve, reject) => {
      const retry = setInterval(ask, this.electionTicks * this.tickMs);
      const done = (): void => {
        clearTimeout(timer);
        clearInterval(retry);
        this.off('leaderChange', onChange);
      };
      const onChange = (e: { leader: NodeId | null }): void => {
        if (e.leader !== to) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new RaftTimeoutError(`leadership did not move to ${to} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('leaderChange', onChange);
    });
  }

  /**
   * Graceful shutdown: a leader first hands leadership to another voter (bounded by about two
   * election timeouts) so that the group does not wait for an election, then the node closes.
   */
  async stop(): Promise<void> {
    if (this.state === 'running' && this.leader === this.id) {
      const other = this.members.voters.find((v) => v !== this.id);
      if (other !== undefined) {
        this.log.info({ id: this.id, to: other }, 'raft: stopping, handing leadership over first');
        try {
          await this.transferLeadership(other, { timeoutMs: 2 * this.electionTicks * this.tickMs });
        } catch (err) {
          this.log.warn({ id: this.id, to: other, reason: errorMessage(err) }, 'raft: leadership hand-over before stop failed, closing anyway');
        }
      }
    }
    await this.close();
  }

  /** Stops at once: pending requests fail with RaftStoppedError, the transport and storage close. */
  async close(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return;
    const wasRunning = this.state === 'running';
    this.state = 'closing';
    this.stopTimers();
    this.failAll(new RaftStoppedError(`node ${this.id} is shutting down`));
    await this.loopIdle;
    // A graceful stop leaves the commit index it knew on disk (a crash may lose it: it is
    // learned again from the leader).
    await this.flushHardState().catch((err: unknown) => { this.log.warn({ id: this.id, reason: errorMessage(err) }, 'raft: commit index not written at close'); });
    await this.transport.close().catch(() => undefined);
    await this.storage.close().catch(() => undefined);
    this.state = 'closed';
    if (wasRunning) this.log.info({ id: this.id, applied: this.applied }, 'raft: node closed');
  }

  // ---- requests ----

  private nextRid(): string {
    this.ridCounter++;
    return `${this.bootId}${this.ridCounter.toString(36)}`;
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new RaftStoppedError(`node ${this.id} is ${this.state === 'new' ? 'not started' : 'stopped'}`);
  }

  private assertLeaderKnown(): void {
    const { leader, term } = this.core.standing();
    if (leader === null) throw new RaftNoLeaderError(`node ${this.id} knows no leader (term ${term})`);
  }

  private mapDropped(err: unknown): Error {
    if (err instanceof ProposalDroppedError && err.reason === 'noLeader') return new RaftNoLeaderError(err.message);
    return asError(err);
  }

  private request(what: string, submit: (rid: string) => void, timeoutMsOpt: number | undefined, endOnLeaderChange = false): Promise<unknown> {
    try {
      this.assertRunning();
      if (this.pending.size + this.pendingReads.size >= this.maxPending) throw new RaftOverloadedError(this.maxPending);
      this.assertLeaderKnown();
    } catch (err) {
      return Promise.reject(asError(err));
    }
    const rid = this.nextRid();
    const timeoutMs = timeoutMsOpt ?? this.requestTimeoutMs;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new RaftTimeoutError(`${what} not applied within ${timeoutMs} ms (it may still be applied later)`));
      }, timeoutMs);
      const p: Pending = { resolve, reject, timer };
      this.pending.set(rid, p);
      try {
        submit(rid);
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(rid);
        reject(this.mapDropped(err));
        return;
      }
      // As leader, the core appended the entry at once: remember where, so that if another
      // leader's entry is applied there instead, the proposer hears so now, not at its timeout.
      const st = this.core.status(false);
      if (st.role === 'leader') {
        this.proposedAt.set(st.lastIndex, rid);
        this.trace?.('propose', st.lastIndex);
      } else if (endOnLeaderChange && this.leader !== null) p.forwardedTo = { leader: this.leader, term: st.term };
      this.kick();
    });
  }

  /** Called for every applied index: fails a local proposal whose entry was replaced at `index`. */
  private checkReplaced(index: number, rid: string | null): void {
    if (this.proposedAt.size === 0) return;
    const mine = this.proposedAt.get(index);
    if (mine === undefined) return;
    this.proposedAt.delete(index);
    if (mine === rid) return;
    const p = this.pending.get(mine);
    if (p === undefined) return;
    this.pending.delete(mine);
    clearTimeout(p.timer);
    p.reject(new RaftProposalLostError(index));
  }

  /**
   * Membership changes go one at a time: while the previous one is not applied (including the
   * one a new leader conservatively assumes until it applied its first entry), the core refuses
   * with confChangePending, and this retries every tick until the timeout.
   */
  private async changeMembers(cc: ConfChange, address: string | undefined, timeoutMs: number | undefined): Promise<ConfState> {
    const deadline = Date.now() + (timeoutMs ?? this.requestTimeoutMs);
    for (;;) {
      try {
        const result = await this.request(`membership change ${cc.type} ${cc.nodeId}`, (rid) => {
          const context = JSON.stringify(address === undefined ? { rid } : { rid, address });
          this.core.proposeConfChange({ ...cc, context });
        }, Math.max(1, deadline - Date.now()));
        return result as ConfState;
      } catch (err) {
        const pendingChange = err instanceof ProposalDroppedError && err.reason === 'confChangePending';
        if (!pendingChange || Date.now() + this.tickMs > deadline) throw err;
        await new Promise((r) => setTimeout(r, this.tickMs));
      }
    }
  }

  private setAddress(nodeId: NodeId, address: string): void {
    this.addresses.set(nodeId, address);
    if (nodeId !== this.id) this.transport.setPeer(nodeId, address);
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.proposedAt.clear();
    for (const p of this.pendingReads) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pendingReads.clear();
    this.readQueue = [];
    this.heartbeatReads = [];
    this.heartbeatReplies = [];
    this.readInflight = null;
  }

  // ---- the Ready loop ----

  private onMessages(ms: readonly PeerMessage[]): void {
    if (this.state !== 'running') return;
    // The Ready loop is scheduled first (it runs after this turn, with the core's answers to these
    // messages): what the due ticks send (a keepalive, pings) then goes out with those answers, in
    // one frame. The ticks before the messages: they came due first.
    this.kick();
    this.runDueTicks('message');
    for (const m of ms) {
      if (m.to !== this.id) continue;
      if (this.trace !== null) this.traceReceived(m);
      if (m.type === 'leaderMessage') {
        this.deliverLeaderMessage(m.from, m.data);
        continue;
      }
      if (m.type === 'leaderReply') {
        this.emit('leaderReply', { from: m.from, data: m.data });
        continue;
      }
      try {
        this.core.step(m);
      } catch (err) {
        // A message the core refuses (e.g. from a removed node) must not stop the node.
        this.log.debug({ id: this.id, from: m.from, type: m.type, reason: errorMessage(err) }, 'raft: message ignored');
      }
    }
    this.armTicker();
  }

  private traceReceived(m: PeerMessage): void {
    if (m.type === 'append' && m.entries !== undefined && m.entries.length > 0) this.trace?.('recvAppend', m.entries[m.entries.length - 1]!.index);
    else if (m.type === 'appendResp' && m.reject !== true) this.trace?.('recvAck', m.index ?? 0);
  }

  /** Runs the Ready loop soon, once; further kicks while it runs are absorbed by its while-loop. */
  private kick(): void {
    if (this.loopRunning || this.loopScheduled || this.state !== 'running') return;
    this.loopScheduled = true;
    // setImmediate (not a microtask) lets the proposals and messages of this event-loop turn
    // join the same Ready, hence the same fsync.
    setImmediate(() => {
      this.loopScheduled = false;
      if (this.loopRunning || this.state !== 'running') return;
      this.loopRunning = true;
      this.loopIdle = this.runLoop().finally(() => { this.loopRunning = false; });
    });
  }

  private async runLoop(): Promise<void> {
    try {
      for (;;) {
        while (this.state === 'running' && this.core.hasReady()) {
          await this.handleReady(this.core.ready());
        }
        if (this.state !== 'running' || !this.hardStateFlushDue) break;
        await this.flushHardState();
      }
      this.scheduleCommitBroadcast();
    } catch (err) {
      await this.fatal(err);
    }
  }

  private scheduleCommitBroadcast(): void {
    if (this.state !== 'running') return;
    if (!this.core.hasUnsentCommit()) {
      // The commit went out meanwhile with the next proposal's appends (at concurrency 1, nearly
      // always within the delay): the timer would only wake the process for nothing.
      if (this.commitTimer !== null) clearTimeout(this.commitTimer);
      this.commitTimer = null;
      return;
    }
    if (this.commitTimer !== null) return;
    this.commitTimer = setTimeout(() => {
      this.commitTimer = null;
      if (this.state !== 'running') return;
      this.core.broadcastCommit();
      this.kick();
    }, this.commitBroadcastDelayMs);
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState !== null) {
      this.noteSoftState(rd.softState.leader, rd.softState.role);
      this.armTicker(); // a follower that lost its leader, or no longer a follower, ticks on time
    }
    if (rd.hardState !== null && rd.hardState.term !== this.term) {
      this.term = rd.hardState.term;
    }

    // Early sending is only for a leader whose term and vote are already on disk: its appends
    // then claim nothing that a crash could take back.
    const earlyOk = this.leader === this.id && (rd.hardState === null || !this.storage.hardStateNeedsSync(rd.hardState));
    const early: Message[] = [];
    const late: Message[] = [];
    for (const m of rd.messages) {
      if (m.type === 'snapshot' && m.snapshot !== undefined) {
        const sizeBytes = m.snapshot.data.length;
        this.snapshotSends.set(m.to, { index: m.snapshot.metadata.index, sizeBytes, atMs: Date.now() });
        this.log.info({ id: this.id, to: m.to, index: m.snapshot.metadata.index, sizeBytes }, 'raft: sending a snapshot to a lagging follower');
      }
      if (earlyOk && (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot')) early.push(m);
      else late.push(m);
    }
    if (this.trace !== null && rd.committedEntries.length > 0) this.trace('commitReady', rd.committedEntries[rd.committedEntries.length - 1]!.index);
    if (early.length > 0) this.transport.send(early);
    if (this.trace !== null && early.length > 0 && rd.entries.length > 0) this.trace('send', rd.entries[rd.entries.length - 1]!.index);

    // Committed entries that were on this node's disk before this Ready (below its first new
    // entry) are applied while the new entries are written, as etcd's server does: they are
    // durable on a quorum and here, so applying them first changes nothing a crash could take
    // back, and under load a batch's commit no longer waits for the next batch's fsync.
    // A snapshot, a conf change and everything after it wait for the write, as before.
    const applyFirst = rd.snapshot === null ? this.durablePrefix(rd) : 0;
    for (let i = 0; i < applyFirst; i++) this.applyEntry(rd.committedEntries[i]!);

    // A Ready whose only durable change is the commit index needs no fsync, and nothing waits
    // on it (the commit index can be learned again from a quorum, as in etcd): it is not written
    // now but with the next batch that must be written anyway, or at the next tick if none comes.
    // That keeps a storage round trip (a thread-pool hop) off the path of every proposal: the
    // leader's commit of one proposal no longer delays the Ready of the next.
    // Anything else is persisted before it is acted upon.
    const commitOnly = rd.snapshot === null && rd.entries.length === 0 && rd.hardState !== null && !this.storage.hardStateNeedsSync(rd.hardState);
    if (commitOnly) {
      this.unwrittenHardState = rd.hardState;
    } else if (rd.snapshot !== null || rd.entries.length > 0 || rd.hardState !== null) {
      const hardState = rd.hardState ?? this.unwrittenHardState;
      const traced = this.trace !== null && rd.entries.length > 0 ? rd.entries[rd.entries.length - 1]!.index : null;
      if (traced !== null) this.trace?.('saveStart', traced);
      await this.storage.save({ snapshot: rd.snapshot, entries: rd.entries, hardState });
      if (traced !== null) this.trace?.('saveEnd', traced);
      this.unwrittenHardState = null;
    }
    if (rd.snapshot !== null) this.memLog.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) this.memLog.append(rd.entries);
    if (rd.hardState !== null) this.memLog.setHardState(rd.hardState);
    if (late.length > 0) this.transport.send(late);
    if (this.trace !== null) for (const m of late) if (m.type === 'appendResp' && m.reject !== true) this.trace('ack', m.index ?? 0);

    if (rd.snapshot !== null) this.installSnapshot(rd.snapshot);
    for (let i = applyFirst; i < rd.committedEntries.length; i++) this.applyEntry(rd.committedEntries[i]!);
    // After applying: a forwarded proposal committed in this same Ready is answered, not ended.
    if (rd.softState !== null) this.endForwardedProposals(this.leader, this.core.standing().term);
    for (const rs of rd.readStates) {
      const inflight = this.readInflight;
      if (inflight === null || rs.context !== inflight.ctx) continue; // an abandoned request's answer
      for (const p of inflight.waiters) p.index = rs.index;
      this.readInflight = null;
    }
    this.resolveReads();
    if (this.readInflight === null && this.readQueue.length > 0) this.issueReadIndex();
    // Advance before the next await: proposers resumed by the resolutions above must see the
    // core with these entries applied (e.g. a conf change right after another one).
    this.core.advance(rd);
    await this.maybeSnapshot();
  }

  /** How many of the Ready's committed entries, from the first, were durable here before it and are not conf changes. */
  private durablePrefix(rd: Ready): number {
    const firstNew = rd.entries[0]?.index ?? Number.POSITIVE_INFINITY;
    let n = 0;
    for (const e of rd.committedEntries) {
      if (e.index >= firstNew || e.type === 'confChange') break;
      n++;
    }
    return n;
  }

  /** Writes a commit-only hard state left unwritten (without fsync). Only from the Ready loop. */
  private async flushHardState(): Promise<void> {
    this.hardStateFlushDue = false;
    const hs = this.unwrittenHardState;
    if (hs === null) return;
    this.unwrittenHardState = null;
    await this.storage.save({ snapshot: null, entries: [], hardState: hs });
  }

  private noteSoftState(leader: NodeId | null, role: RaftRole): void {
    const term = this.core.standing().term;
    if (leader === this.leader) return;
    this.log.info({ id: this.id, leader, previous: this.leader, term, role }, leader === null ? 'raft: leader lost' : 'raft: leader changed');
    this.leader = leader;
    this.emit('leaderChange', { leader, term });
  }

  /**
   * Ends the proposals this node forwarded to a leader that is no longer the leader. A leader
   * drops a forwarded proposal silently (during a leadership transfer, or when it steps down), so
   * without this its proposer would wait for its whole timeout: a restarted sitter whose session
   * open was dropped that way let its session expire behind it (restart-all in the chain test).
   */
  private endForwardedProposals(leader: NodeId | null, term: number): void {
    for (const [rid, p] of this.pending) {
      const to = p.forwardedTo;
      if (to === undefined || to.leader === leader) continue;
      this.pending.delete(rid);
      clearTimeout(p.timer);
      p.reject(new RaftLeaderChangedError(
        `the proposal went to leader ${to.leader} (term ${to.term}), and the leader is now ${leader ?? 'unknown'} (term ${term}) without it applied here; it may still be applied later`,
      ));
    }
  }

  private installSnapshot(snap: Snapshot): void {
    const env = snap.data === '' ? null : RaftNode.parseSnapshotData(snap.data);
    this.sm.restore(env?.sm ?? '');
    for (const [id, a] of Object.entries(env?.peers ?? {})) if (!this.addresses.has(id)) this.setAddress(id, a);
    this.applied = snap.metadata.index;
    this.snapshotIndex = snap.metadata.index;
    this.members = snap.metadata.confState;
    // Whether proposals at the indexes it covers made it is unknown here: they time out instead.
    for (const i of this.proposedAt.keys()) if (i <= snap.metadata.index) this.proposedAt.delete(i);
    this.log.info({ id: this.id, index: snap.metadata.index, term: snap.metadata.term, sizeBytes: snap.data.length, members: this.members }, 'raft: installed a snapshot from the leader');
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.applied) return; // covered by a snapshot installed in this Ready
    if (e.index !== this.applied + 1) {
      throw new RaftInvariantError(`applied index would jump from ${this.applied} to ${e.index}`);
    }
    this.applied = e.index;
    this.trace?.('apply', e.index);
    if (e.type === 'confChange') {
      this.applyConfEntry(e);
      return;
    }
    const { rid, data } = unwrapCommand(e.data);
    this.checkReplaced(e.index, rid);
    if (e.data === '') return; // a new leader's empty entry
    const entry: AppliedEntry = { index: e.index, term: e.term, data };
    let result: unknown;
    let failure: Error | null = null;
    try {
      result = this.sm.apply(entry);
    } catch (err) {
      // The state machine must be deterministic, so every node fails the same way: report, go on.
      failure = asError(err);
      this.log.error({ id: this.id, index: e.index, err: failure.message }, 'raft: state machine apply threw');
    }
    this.emit('applied', entry);
    if (rid === null) return;
    const p = this.pending.get(rid);
    if (p === undefined) return;
    this.pending.delete(rid);
    clearTimeout(p.timer);
    if (failure !== null) p.reject(failure);
    else p.resolve(result);
  }

  private applyConfEntry(e: Entry): void {
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch (err) {
      this.log.error({ id: this.id, index: e.index, err: errorMessage(err) }, 'raft: undecodable conf change entry skipped');
      return;
    }
    let ctx: { rid?: unknown; address?: unknown } = {};
    try {
      ctx = cc.context !== undefined ? (JSON.parse(cc.context) as { rid?: unknown; address?: unknown }) : {};
    } catch {
      // A context that is not ours: no proposer to answer, no address to learn.
    }
    const before = this.members;
    const after = this.core.applyConfChange(cc);
    this.members = after;
    const changed = JSON.stringify(before) !== JSON.stringify(after);
    if (changed) {
      if (cc.type === 'addLearner' && typeof ctx.address === 'string') this.setAddress(cc.nodeId, ctx.address);
      if (cc.type === 'remove' && cc.nodeId !== this.id) {
        this.transport.removePeer(cc.nodeId);
        this.addresses.delete(cc.nodeId);
      }
      this.log.info({ id: this.id, index: e.index, change: cc.type, nodeId: cc.nodeId, members: after }, 'raft: membership changed');
      this.emit('confChange', { change: cc, members: after, index: e.index });
    } else {
      this.log.warn({ id: this.id, index: e.index, change: cc.type, nodeId: cc.nodeId }, 'raft: conf change had no effect (invalid against the members at apply time)');
    }
    const rid = typeof ctx.rid === 'string' ? ctx.rid : null;
    this.checkReplaced(e.index, rid);
    const p = rid === null ? undefined : this.pending.get(rid);
    if (p === undefined || rid === null) return;
    this.pending.delete(rid);
    clearTimeout(p.timer);
    if (changed) p.resolve(after);
    else p.reject(new ConfChangeInvalidError(`${cc.type} ${cc.nodeId} did not apply to voters [${before.voters.join(',')}] learners [${before.learners.join(',')}]`));
  }

  private resolveReads(): void {
    for (const p of this.pendingReads) {
      if (p.index === null || p.index > this.applied) continue;
      this.pendingReads.delete(p);
      clearTimeout(p.timer);
      p.resolve(undefined);
    }
  }

  private async maybeSnapshot(): Promise<void> {
    if (this.applied - this.snapshotIndex < this.snapshotEvery) return;
    const env: SnapshotEnvelope = { v: 1, peers: Object.fromEntries(this.addresses), sm: this.sm.snapshot() };
    const snap = this.memLog.createSnapshot(this.applied, this.members, JSON.stringify(env));
    await this.storage.saveSnapshot(snap);
    this.snapshotIndex = this.applied;
    const compactTo = this.applied - this.keepEntries;
    let removed = 0;
    if (compactTo >= this.memLog.firstIndex()) {
      this.memLog.compact(compactTo);
      removed = await this.storage.compact(compactTo);
    }
    this.log.info({ id: this.id, index: this.applied, sizeBytes: snap.data.length, compactedThrough: compactTo, removedEntries: removed }, 'raft: snapshot taken, log compacted');
  }

  private async fatal(err: unknown): Promise<void> {
    const e = asError(err);
    this.log.fatal({ id: this.id, err: e.message, code: (e as { code?: unknown }).code }, 'raft: node stopped after a fatal error');
    if (this.listenerCount('error') > 0) this.emit('error', e);
    this.state = 'closing';
    this.stopTimers();
    this.failAll(new RaftStoppedError(`node ${this.id} stopped after a fatal error: ${e.message}`));
    await this.transport.close().catch(() => undefined);
    await this.storage.close().catch(() => undefined);
    this.state = 'closed';
  }

  private static parseSnapshotData(data: string): SnapshotEnvelope {
    const v = JSON.parse(data) as Partial<SnapshotEnvelope>;
    if (v.v !== 1 || typeof v.sm !== 'string' || typeof v.peers !== 'object') {
      throw new RaftConfigError('snapshot data is not a Raft node snapshot envelope');
    }
    return v as SnapshotEnvelope;
  }
}
