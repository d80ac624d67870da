// A deterministic Raft cluster: N RaftCores over MemoryLogs (their disks), a virtual clock, and a
// network that drops, duplicates, delays, reorders and partitions. Nodes crash (losing everything
// their Ready handling had not yet persisted) and restart from their disks. Safety is checked after
// every event by SafetyChecker.
import {
  MemoryLog,
  ProposalDroppedError,
  RaftCore,
  bootstrapSnapshot,
  decodeConfChange,
  type ConfChange,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RaftConfig,
  type ReadState,
  type Ready,
  type Snapshot,
} from '../../../src/raft/core/index.js';
import { SafetyChecker } from './checker.js';
import { Rng } from '../../helpers/rng.js';

export interface Faults {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a message is delivered twice. */
  duplicate: number;
  /** Messages take 1..maxDelay time units (a tick is `unitsPerTick` units): reordering comes from this. */
  maxDelay: number;
  /** Probability that a node leaves its Ready unhandled for a while (a slow disk). */
  slowDisk: number;
  /**
   * Probability that a node takes a Ready and persists it later, stepping messages and ticks into
   * its core meanwhile (as node.ts does while it waits for fsync). A crash loses the whole Ready.
   */
  asyncDisk: number;
}

export const NO_FAULTS: Faults = { drop: 0, duplicate: 0, maxDelay: 1, slowDisk: 0, asyncDisk: 0 };

export interface SimOptions {
  seed: number;
  ids: readonly NodeId[];
  faults?: Partial<Faults>;
  raft?: Partial<Omit<RaftConfig, 'id' | 'random'>>;
  /** Time units per Raft tick. */
  unitsPerTick?: number;
  /** Record a human-readable trace of events (for debugging a seed). */
  trace?: boolean;
}

/** The replicated state machine of the simulation: the applied values and a running hash. */
interface SmState {
  index: number;
  hash: string;
  conf: ConfState;
  values: string[];
}

interface PendingRead {
  readonly node: NodeId;
  /** Highest committed index anywhere when the read began: the read must see at least this. */
  readonly mustSee: number;
  readIndex: number | null;
  result: { appliedIndex: number; values: readonly string[] } | null;
}

export class SimNode {
  readonly id: NodeId;
  readonly disk: MemoryLog;
  core: RaftCore | null = null;
  sm: SmState;
  /** Commit index seen in this incarnation (must never go back). */
  lastCommit = 0;
  /** Crash right after persisting the next Ready, before sending its messages. */
  crashAfterPersist = false;
  readStates: ReadState[] = [];
  /** A Ready taken from the core whose persistence is still "in progress" (asyncDisk). */
  pendingReady: Ready | null = null;

  constructor(id: NodeId, disk: MemoryLog) {
    this.id = id;
    this.disk = disk;
    this.sm = decodeSm(disk.snapshot());
  }

  get up(): boolean {
    return this.core !== null;
  }
}

function fnv(s: string): string {
  let h = 0x811c9dc5;
  for (let k = 0; k < s.length; k++) {
    h ^= s.charCodeAt(k);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16);
}

function decodeSm(snap: Snapshot): SmState {
  if (snap.data === '') return { index: snap.metadata.index, hash: '0', conf: snap.metadata.confState, values: [] };
  const v = JSON.parse(snap.data) as { index: number; hash: string; values: string[] };
  return { index: v.index, hash: v.hash, conf: snap.metadata.confState, values: v.values };
}

function encodeSm(sm: SmState): string {
  return JSON.stringify({ index: sm.index, hash: sm.hash, values: sm.values });
}

interface InFlight {
  readonly at: number;
  readonly seq: number;
  readonly m: Message;
}

export class SimCluster {
  readonly seed: number;
  readonly rng: Rng;
  readonly checker: SafetyChecker;
  readonly nodes = new Map<NodeId, SimNode>();
  faults: Faults;
  now = 0;
  readonly unitsPerTick: number;
  private readonly raftOpts: Partial<Omit<RaftConfig, 'id' | 'random'>>;
  private inflight: InFlight[] = [];
  private seq = 0;
  /** Node -> partition group. Nodes in different groups cannot talk. Unlisted nodes are in group 0. */
  private groups = new Map<NodeId, number>();
  /** Links cut one way: "from>to". */
  private readonly cutLinks = new Set<string>();
  readonly reads = new Map<string, PendingRead>();
  private readSeq = 0;
  readonly trace: string[] | null;
  stats = { delivered: 0, dropped: 0, elections: 0, applied: 0, readsDone: 0, snapshotsSent: 0 };
  private readonly leaderTerms = new Set<string>();
  /** A message hook for scenario tests: return false to drop the message. */
  filter: ((m: Message) => boolean) | null = null;
  /**
   * Hooks for a state machine that lives outside the cluster (the whole-shard simulator's store):
   * `apply` sees every committed normal entry with data as a node applies it, and `start` every
   * (re)start of a node, before it applies anything.
   */
  hooks: { apply?: (id: NodeId, e: Entry) => void; start?: (id: NodeId) => void } = {};
  /** Paused nodes (SIGSTOP): they do not tick, and messages to them wait until they resume. */
  readonly paused = new Set<NodeId>();

  constructor(opts: SimOptions) {
    this.seed = opts.seed;
    this.rng = new Rng(opts.seed);
    this.checker = new SafetyChecker(opts.seed);
    this.faults = { ...NO_FAULTS, ...opts.faults };
    this.unitsPerTick = opts.unitsPerTick ?? 4;
    this.raftOpts = opts.raft ?? {};
    this.trace = opts.trace === true ? [] : null;
    const boot = bootstrapSnapshot(opts.ids, JSON.stringify({ index: 1, hash: '0', values: [] }));
    this.checker.onApplied('bootstrap', 1, '0');
    this.checker.onCommitted('bootstrap', 1, 1);
    for (const id of opts.ids) {
      const node = new SimNode(id, new MemoryLog({ snapshot: boot.snapshot, hardState: boot.hardState }));
      this.nodes.set(id, node);
      this.start(node);
    }
  }

  /** Adds a line to the trace (built only when tracing). */
  log(line: () => string): void {
    if (this.trace !== null) this.trace.push(`[${this.now}] ${line()}`);
  }

  configFor(id: NodeId): RaftConfig {
    const rng = this.rng.fork();
    return {
      id,
      electionTicks: 10,
      heartbeatTicks: 2,
      preVote: true,
      checkQuorum: true,
      maxEntriesPerMessage: 4,
      maxInflightMessages: 4,
      maxUncommittedEntries: 64,
      ...this.raftOpts,
      random: () => rng.next(),
    };
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  core(id: NodeId): RaftCore {
    const c = this.node(id).core;
    if (c === null) throw new Error(`node ${id} is down`);
    return c;
  }

  /** A node that joins later: empty disk, no configuration; it learns everything from a snapshot. */
  addNode(id: NodeId): SimNode {
    const existing = this.nodes.get(id);
    if (existing !== undefined) return existing;
    const node = new SimNode(id, new MemoryLog());
    this.nodes.set(id, node);
    this.start(node);
    return node;
  }

  private start(node: SimNode): void {
    this.hooks.start?.(node.id);
    node.sm = decodeSm(node.disk.snapshot());
    node.core = new RaftCore({ ...this.configFor(node.id), applied: node.sm.index }, node.disk);
    node.lastCommit = node.core.status(false).commit;
    node.readStates = [];
    const term = node.core.status(false).term;
    this.log(() => `${node.id} starts: term ${term}, commit ${node.lastCommit}, applied ${node.sm.index}`);
  }

  crash(id: NodeId): void {
    const node = this.node(id);
    if (!node.up) return;
    node.core = null;
    node.crashAfterPersist = false;
    node.pendingReady = null;
    for (const [ctx, r] of this.reads) if (r.node === id && r.result === null) this.reads.delete(ctx);
    this.log(() => `${id} crashes`);
  }

  restart(id: NodeId): void {
    const node = this.node(id);
    if (node.up) return;
    this.start(node);
    this.afterEvent();
  }

  upIds(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.up).map((n) => n.id);
  }

  /** The live leader with the highest term, if any. */
  leader(): SimNode | null {
    let best: SimNode | null = null;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      if (n.core === null) continue;
      const st = n.core.status(false);
      if (st.role === 'leader' && st.term > bestTerm) {
        best = n;
        bestTerm = st.term;
      }
    }
    return best;
  }

  // --- network ---------------------------------------------------------------------------------

  partition(...groups: NodeId[][]): void {
    this.groups = new Map();
    groups.forEach((g, k) => { for (const id of g) this.groups.set(id, k + 1); });
    this.log(() => `partition ${groups.map((g) => `[${g.join(',')}]`).join(' ')}`);
  }

  isolate(id: NodeId): void {
    this.partition([id]);
  }

  /** Cut the link from `a` to `b` (one way). */
  cut(a: NodeId, b: NodeId): void {
    this.cutLinks.add(`${a}>${b}`);
  }

  heal(): void {
    this.groups = new Map();
    this.cutLinks.clear();
    this.log(() => 'network healed');
  }

  canTalk(a: NodeId, b: NodeId): boolean {
    if (this.cutLinks.has(`${a}>${b}`)) return false;
    return (this.groups.get(a) ?? 0) === (this.groups.get(b) ?? 0);
  }

  private send(m: Message): void {
    const lost = !this.canTalk(m.from, m.to) || this.rng.chance(this.faults.drop) || (this.filter !== null && !this.filter(m));
    if (m.type === 'snapshot') this.stats.snapshotsSent++;
    if (lost) {
      this.stats.dropped++;
      this.log(() => `${m.from}->${m.to} ${describe(m)} DROPPED`);
      // The transport tells the leader that a snapshot did not go through.
      if (m.type === 'snapshot') this.nodes.get(m.from)?.core?.reportSnapshot(m.to, false);
      return;
    }
    const copies = this.rng.chance(this.faults.duplicate) ? 2 : 1;
    for (let k = 0; k < copies; k++) {
      this.inflight.push({ at: this.now + this.rng.int(1, Math.max(1, this.faults.maxDelay)), seq: this.seq++, m });
    }
  }

  private deliverDue(): void {
    if (this.inflight.length === 0) return;
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.inflight) (f.at <= this.now && !this.paused.has(f.m.to) ? due : later).push(f);
    if (due.length === 0) return;
    this.inflight = later;
    due.sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const f of due) this.deliver(f.m);
  }

  private deliver(m: Message): void {
    const to = this.nodes.get(m.to) ?? null;
    if (to?.core == null || !this.canTalk(m.from, m.to)) {
      this.stats.dropped++;
      if (m.type === 'snapshot') this.nodes.get(m.from)?.core?.reportSnapshot(m.to, false);
      return;
    }
    this.stats.delivered++;
    this.log(() => `${m.from}->${m.to} ${describe(m)}`);
    to.core.step(m);
    if (m.type === 'snapshot') this.nodes.get(m.from)?.core?.reportSnapshot(m.to, true);
    this.processReady(to, false);
    this.afterEvent();
  }

  // --- the driver: Ready handling ----------------------------------------------------------------

  /** Handles a node's Ready batches as node.ts does: persist, send, apply, advance. */
  processReady(node: SimNode, force: boolean): void {
    if (node.pendingReady !== null) {
      if (!force && !this.rng.chance(0.3)) return;
      const rd = node.pendingReady;
      node.pendingReady = null;
      if (!this.completeReady(node, rd)) return;
    }
    for (let rounds = 0; node.core?.hasReady() === true; rounds++) {
      if (rounds > 1000) throw new Error(`${node.id}: Ready loop does not settle`);
      if (!force && this.rng.chance(this.faults.slowDisk)) return; // the disk is slow: handle it later
      const rd = node.core.ready();
      if (!force && this.rng.chance(this.faults.asyncDisk)) {
        node.pendingReady = rd; // fsync in progress: the core goes on meanwhile
        return;
      }
      if (!this.completeReady(node, rd)) return;
    }
  }

  /** Persist, send, apply, advance. Returns false if the node crashed on the way. */
  private completeReady(node: SimNode, rd: Ready): boolean {
    const core = node.core;
    if (core === null) return false;
    {
      this.persist(node, rd);
      if (node.crashAfterPersist) {
        this.crash(node.id);
        return false;
      }
      for (const m of rd.messages) this.send(m);
      this.apply(node, core, rd);
      core.advance(rd);
      if (rd.softState !== null) {
        if (rd.softState.role === 'leader') this.stats.elections++;
        const { role, leader } = rd.softState;
        this.log(() => `${node.id} is ${role} in term ${core.status(false).term}, leader ${leader ?? 'unknown'}`);
      }
    }
    return true;
  }

  private persist(node: SimNode, rd: Ready): void {
    if (rd.snapshot !== null) {
      node.disk.applySnapshot(rd.snapshot);
      node.sm = decodeSm(rd.snapshot);
      this.checker.onApplied(node.id, node.sm.index, node.sm.hash);
    }
    if (rd.entries.length > 0) {
      node.disk.append(rd.entries);
      for (const e of rd.entries) {
        let prevTerm: number | null = null;
        try {
          prevTerm = node.disk.term(e.index - 1);
        } catch {
          prevTerm = null;
        }
        this.checker.onPersist(node.id, e, prevTerm);
      }
    }
    if (rd.hardState !== null) node.disk.setHardState(rd.hardState);
  }

  private apply(node: SimNode, core: RaftCore, rd: Ready): void {
    for (const e of rd.committedEntries) {
      if (e.index !== node.sm.index + 1) this.checker.fail(`${node.id} applies ${e.index} after ${node.sm.index}`);
      if (e.type === 'confChange') {
        const cc = decodeConfChange(e.data);
        node.sm.conf = core.applyConfChange(cc);
        this.log(() => `${node.id} applies conf change ${cc.type} ${cc.nodeId} -> voters [${node.sm.conf.voters.join(',')}] learners [${node.sm.conf.learners.join(',')}]`);
      } else if (e.data !== '') {
        node.sm.values.push(e.data);
        this.hooks.apply?.(node.id, e);
        this.log(() => `${node.id} applies ${e.index}@${e.term} ${e.data}`);
      }
      node.sm.index = e.index;
      node.sm.hash = fnv(`${node.sm.hash}|${entryKey(e)}`);
      this.checker.onApplied(node.id, e.index, node.sm.hash);
      this.stats.applied++;
    }
    for (const rs of rd.readStates) {
      node.readStates.push(rs);
      this.log(() => `${node.id} gets ReadState ${rs.context} at index ${rs.index}`);
    }
  }

  // --- checks ----------------------------------------------------------------------------------

  /** After every event: the safety properties, and reads that can now be served. */
  afterEvent(): void {
    for (const node of this.nodes.values()) {
      const core = node.core;
      if (core === null) continue;
      const st = core.status(false);
      if (st.commit < node.lastCommit) this.checker.fail(`${node.id}: commit went back from ${node.lastCommit} to ${st.commit}`);
      for (let i = Math.max(node.lastCommit + 1, core.raftLog.firstIndex()); i <= st.commit; i++) {
        const t = core.raftLog.term(i);
        if (t === null) this.checker.fail(`${node.id}: committed index ${i} has no term`);
        this.checker.onCommitted(node.id, i, t, st.term);
      }
      node.lastCommit = st.commit;
      if (st.role === 'leader') {
        const key = `${node.id}@${st.term}`;
        if (!this.leaderTerms.has(key)) {
          this.leaderTerms.add(key);
          this.checker.onLeader(node.id, st.term);
          this.checker.checkLeaderCompleteness(node.id, st.term, (i) => core.raftLog.term(i), core.raftLog.firstIndex());
        }
      }
      this.serveReads(node);
    }
  }

  private serveReads(node: SimNode): void {
    if (node.readStates.length === 0) return;
    const keep: ReadState[] = [];
    for (const rs of node.readStates) {
      const r = this.reads.get(rs.context);
      if (r === undefined) continue;
      if (r.readIndex === null) {
        r.readIndex = rs.index;
        // Linearizability: the read index covers every write committed before the read began.
        if (rs.index < r.mustSee) {
          this.checker.fail(`stale read ${rs.context} on ${node.id}: read index ${rs.index} but ${r.mustSee} was committed before the read began`);
        }
      }
      if (node.sm.index >= rs.index) {
        r.result = { appliedIndex: node.sm.index, values: node.sm.values.slice() };
        this.log(() => `${node.id} serves read ${rs.context} at applied index ${node.sm.index}`);
        this.stats.readsDone++;
      } else keep.push(rs);
    }
    node.readStates = keep;
  }

  // --- time --------------------------------------------------------------------------------------

  /** One time unit: deliver what is due; on a tick boundary, tick every live node. */
  stepUnit(): void {
    this.now++;
    if (this.now % this.unitsPerTick === 0) {
      for (const node of this.nodes.values()) {
        if (node.core === null || this.paused.has(node.id)) continue;
        node.core.tick();
        // A deferred commit broadcast goes out within a tick, as node.ts's timer sends it.
        node.core.broadcastCommit();
        this.processReady(node, false);
      }
      this.afterEvent();
    }
    this.deliverDue();
    // Slow disks catch up eventually: force at each tick boundary for nodes that waited.
    if (this.now % this.unitsPerTick === 0) {
      for (const node of this.nodes.values()) if (!this.paused.has(node.id)) this.processReady(node, true);
      this.afterEvent();
    }
  }

  /** Delivers every message in flight (and what they cause) without ticking: time stands still for Raft. */
  settle(maxUnits = 10_000): void {
    for (let k = 0; k < maxUnits; k++) {
      if (this.inflight.length === 0) {
        let pending = false;
        for (const node of this.nodes.values()) if (node.core?.hasReady() === true || node.pendingReady !== null) pending = true;
        if (!pending) return;
        for (const node of this.nodes.values()) this.processReady(node, true);
        this.afterEvent();
        continue;
      }
      this.now++;
      this.deliverDue();
    }
    throw new Error(`seed ${this.seed}: network did not settle in ${maxUnits} units`);
  }

  /** Ticks one node's clock only (the others' stand still); handles its Ready. */
  tickNode(id: NodeId, n = 1): void {
    const node = this.node(id);
    for (let k = 0; k < n && node.core !== null; k++) {
      node.core.tick();
      node.core.broadcastCommit();
      this.processReady(node, true);
      this.afterEvent();
    }
  }

  ticks(n: number): void {
    for (let k = 0; k < n * this.unitsPerTick; k++) this.stepUnit();
  }

  /** Runs until `pred` holds, at most `maxTicks` ticks. Throws with a description on timeout. */
  runUntil(what: string, pred: () => boolean, maxTicks = 500): void {
    for (let k = 0; k < maxTicks * this.unitsPerTick; k++) {
      if (pred()) return;
      this.stepUnit();
    }
    if (pred()) return;
    throw new Error(`seed ${this.seed}: timed out after ${maxTicks} ticks waiting for ${what}; ${this.describe()}`);
  }

  waitForLeader(maxTicks = 500): SimNode {
    this.runUntil('a leader', () => this.stableLeader() !== null, maxTicks);
    return this.stableLeader()!;
  }

  /** A leader that every live node in its group that can reach it agrees on. */
  stableLeader(): SimNode | null {
    const l = this.leader();
    if (l === null) return null;
    const { term, confState } = l.core!.status(false);
    for (const id of confState.voters) {
      const n = this.nodes.get(id);
      if (n?.core == null || n === l || !this.canTalk(l.id, n.id)) continue;
      const st = n.core.status(false);
      if (st.term !== term || st.leader !== l.id) return null;
    }
    return l;
  }

  // --- client operations -----------------------------------------------------------------------

  /** Proposes at `id`. Returns false if the core dropped it. */
  propose(id: NodeId, data: string): boolean {
    const node = this.node(id);
    if (node.core === null) return false;
    try {
      node.core.propose(data);
    } catch (err) {
      if (err instanceof ProposalDroppedError) return false;
      throw err;
    }
    this.processReady(node, false);
    this.afterEvent();
    return true;
  }

  proposeConfChange(id: NodeId, cc: ConfChange): void {
    const node = this.node(id);
    if (node.core === null) throw new Error(`node ${id} is down`);
    node.core.proposeConfChange(cc);
    this.processReady(node, false);
    this.afterEvent();
  }

  /**
   * `at`'s driver reports that its dial to `gone` was refused (node.ts: the transport's onRefused).
   * The report may be false (a live node): the core must stay safe on any hint.
   */
  reportRefused(at: NodeId, gone: NodeId): void {
    const node = this.node(at);
    if (node.core === null) return;
    const before = node.core.status(false).leader;
    node.core.reportRefused(gone);
    if (before !== node.core.status(false).leader) this.log(() => `${at} hears ${gone} refused: forgets its leader`);
    this.processReady(node, false);
    this.afterEvent();
  }

  /** `id`'s driver has just started it (node.ts start): it campaigns soon if it knows no leader. */
  campaignSoon(id: NodeId): void {
    const node = this.node(id);
    if (node.core === null) return;
    node.core.campaignSoon();
    this.processReady(node, false);
    this.afterEvent();
  }

  transferLeadership(from: NodeId, to: NodeId): void {
    const node = this.node(from);
    if (node.core === null) return;
    node.core.transferLeadership(to);
    this.processReady(node, false);
    this.afterEvent();
  }

  /** Starts a ReadIndex read at `id`; returns its context (or null if dropped). */
  readIndex(id: NodeId): string | null {
    const node = this.node(id);
    if (node.core === null) return null;
    const ctx = `read-${this.readSeq++}`;
    this.reads.set(ctx, { node: id, mustSee: this.checker.maxCommitted, readIndex: null, result: null });
    try {
      node.core.readIndex(ctx);
    } catch (err) {
      this.reads.delete(ctx);
      if (err instanceof ProposalDroppedError) return null;
      throw err;
    }
    this.processReady(node, false);
    this.afterEvent();
    return ctx;
  }

  /** Takes a snapshot of node `id`'s state machine at its applied index and compacts its log up to `keep` entries before it. */
  compact(id: NodeId, keep = 0): boolean {
    const node = this.node(id);
    if (node.core === null) return false;
    const snapIndex = node.disk.snapshot().metadata.index;
    if (node.sm.index <= snapIndex || node.sm.index > node.disk.lastIndex()) return false;
    node.disk.createSnapshot(node.sm.index, node.sm.conf, encodeSm(node.sm));
    node.disk.compact(Math.max(node.disk.firstIndex() - 1, node.sm.index - keep));
    this.log(() => `${id} snapshots at ${node.sm.index}, log starts at ${node.disk.firstIndex()}`);
    return true;
  }

  /** Applied values of a node (its state machine). */
  values(id: NodeId): readonly string[] {
    return this.node(id).sm.values;
  }

  describe(): string {
    const parts: string[] = [];
    for (const n of this.nodes.values()) {
      if (n.core === null) {
        parts.push(`${n.id}: down`);
        continue;
      }
      const st = n.core.status(false);
      parts.push(`${n.id}: ${st.role} t${st.term} lead=${st.leader} commit=${st.commit} applied=${n.sm.index} last=${st.lastIndex} voters=[${st.confState.voters.join(',')}] learners=[${st.confState.learners.join(',')}]`);
    }
    return parts.join('; ');
  }
}

function entryKey(e: Entry): string {
  return `${e.index}:${e.term}:${e.type}:${e.data}`;
}

function describe(m: Message): string {
  const parts: string[] = [m.type, `t${m.term}`];
  if (m.index !== undefined) parts.push(`i${m.index}`);
  if (m.logTerm !== undefined) parts.push(`lt${m.logTerm}`);
  if (m.entries !== undefined && m.entries.length > 0) parts.push(`ents[${m.entries.map((e) => `${e.index}/${e.term}`).join(',')}]`);
  if (m.commit !== undefined) parts.push(`c${m.commit}`);
  if (m.reject === true) parts.push(`reject hint ${m.rejectHint}`);
  if (m.snapshot !== undefined) parts.push(`snap@${m.snapshot.metadata.index}`);
  if (m.context !== undefined) parts.push(`ctx ${m.context}`);
  return parts.join(' ');
}
