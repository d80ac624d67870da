// The whole shard in one seeded simulation: three peers (sitter, Raft node, store, PostgreSQL),
// a client that writes, and a nemesis that crashes, restarts, pauses and partitions them and loses
// messages, for a while; then the faults stop and the shard must become whole again in time.
// Every random choice comes from one seed, and the invariants are checked after every step.
import { pino } from 'pino';
import { storeAdminOperations, type AdminOperations } from '../../src/api/index.js';
import type { Logger } from '../../src/log.js';
import type { ClusterStateMachine } from '../../src/store/state-machine.js';
import { Rng } from '../helpers/rng.js';
import { ShardChecker } from './invariants.js';
import { replicate, SimPostgres, type SimNetwork } from './pg.js';
import { SimRaft } from './raft.js';
import { ALL_FIXES, SimSitter, type LocalFacts, type SitterFixes } from './sitter.js';
import { drain, SimInvariantError, UNIT_MS, World } from './world.js';

export interface ShardSimOptions {
  readonly seed: number;
  readonly peers?: readonly string[];
  /** How long the nemesis acts (simulated ms, after the setup). */
  readonly faultMs?: number;
  /** The shard must be whole this long after the faults stop. */
  readonly healBoundMs?: number;
  readonly fixes?: SitterFixes;
  readonly trace?: boolean;
  /**
   * An operator acts too, from a random stream of its own: planned switchovers (promote requests
   * for the sync or an async) and freezes (lifted after a while, and when the faults stop).
   */
  readonly operator?: boolean;
  /**
   * A loaded machine, as on shards at load 40-57 on 2 cores: the primary's lease fence runs (on
   * acknowledged keepalives), and a second nemesis, from a random stream of its own, stalls
   * sitters' event loops (their PostgreSQL runs on) and hangs PostgreSQL servers, mostly the primary's.
   */
  readonly load?: boolean;
  /** A scripted nemesis in place of the random one (named scenarios). */
  readonly scenario?: (shard: SimShard) => Promise<void>;
}

export interface ShardSimResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly error: SimInvariantError | null;
  readonly simulatedMs: number;
  readonly faults: number;
  readonly stats: ShardChecker['stats'];
  readonly trace: readonly string[] | null;
}

/** The faults the nemesis chooses from. */
type FaultKind = 'killSitter' | 'killPeer' | 'killPostgres' | 'pause' | 'isolate' | 'split' | 'lossy' | 'restartAll';

const FAULTS: readonly FaultKind[] = ['killSitter', 'killPeer', 'killPostgres', 'pause', 'isolate', 'split', 'lossy', 'restartAll'];

export class SimShard {
  readonly world: World;
  readonly ids: readonly string[];
  readonly raft: SimRaft;
  readonly pgs = new Map<string, SimPostgres>();
  readonly sitters = new Map<string, SimSitter | null>();
  readonly disk = new Map<string, LocalFacts>();
  readonly checker: ShardChecker;
  readonly net: SimNetwork;
  readonly fixes: SitterFixes;
  private readonly incarnations = new Map<string, number>();
  /** The sitters' own log lines, into the trace (no times: the trace must replay exactly). */
  private readonly traceLog: Logger | undefined;
  private writeSeq = 0;
  faultCount = 0;
  /** Sitters whose event loop is stalled (in the Raft cluster's paused set too; their PostgreSQL runs on). */
  readonly stalled = new Set<string>();
  /** PostgreSQL servers that are hung (they answer nothing; their sitters run). */
  readonly hung = new Set<string>();

  constructor(readonly opts: ShardSimOptions) {
    this.world = new World(opts.seed, { trace: opts.trace === true });
    this.ids = opts.peers ?? ['a', 'b', 'c'];
    this.fixes = opts.fixes ?? ALL_FIXES;
    this.raft = new SimRaft(this.world, this.ids, { drop: 0, duplicate: 0.01, maxDelay: 3 });
    const cluster = this.raft.cluster;
    this.net = {
      canTalk: (a, b) => cluster.canTalk(a, b),
      paused: (id) => cluster.paused.has(id) && !this.stalled.has(id),
      pgHung: (id) => this.hung.has(id),
    };
    this.checker = new ShardChecker(this.world, this.pgs);
    const w = this.world;
    this.traceLog = w.trace === null ? undefined : pino({ level: 'info', timestamp: false, base: null }, {
      write: (line: string) => {
        const o = JSON.parse(line) as { peer?: string; msg?: string; decision?: string };
        w.log(() => `${o.peer ?? '?'} ${o.decision ?? 'log'}: ${o.msg ?? ''}`);
      },
    });
    this.world.onWritable = (id) => { this.checker.onWritable(id); };
    for (const id of this.ids) {
      const pg = new SimPostgres(id, this.world, this.net);
      pg.onAck = (w, p) => { this.checker.onAck(w, p); };
      this.pgs.set(id, pg);
    }
    for (const id of this.ids) this.startSitter(id);
  }

  private startSitter(id: string): void {
    const n = (this.incarnations.get(id) ?? 0) + 1;
    this.incarnations.set(id, n);
    const load = this.opts.load === true ? { lease: true, stalled: (p: string) => this.stalled.has(p) } : {};
    this.sitters.set(id, new SimSitter(id, n, { world: this.world, raft: this.raft, pg: this.pgs.get(id)!, pgs: this.pgs, net: this.net, disk: this.disk, fixes: this.fixes, ...load, ...(this.traceLog === undefined ? {} : { traceLog: this.traceLog }) }));
  }

  // ---- faults (also used by named scenarios) ----

  /** kill -9 of the sitter (its Raft node and store go with it); PostgreSQL runs on, orphaned. */
  killSitter(id: string): void {
    const s = this.sitters.get(id);
    if (s === null || s === undefined) return;
    s.kill();
    this.sitters.set(id, null);
    this.raft.cluster.crash(id);
    this.world.log(() => `NEMESIS kills the sitter of ${id}`);
  }

  /** kill -9 of the whole peer: sitter and PostgreSQL. */
  killPeer(id: string): void {
    this.killSitter(id);
    this.pgs.get(id)!.kill();
  }

  /** A new sitter process: its Raft node restarts from its disk and replays its log. */
  restartSitter(id: string): void {
    if (this.sitters.get(id) !== null) return;
    this.world.log(() => `NEMESIS restarts the sitter of ${id}`);
    this.raft.cluster.restart(id);
    this.startSitter(id);
  }

  pause(id: string): void {
    this.stalled.delete(id);
    this.raft.cluster.paused.add(id);
    this.world.log(() => `NEMESIS pauses ${id}`);
  }

  resume(id: string): void {
    this.stalled.delete(id);
    this.raft.cluster.paused.delete(id);
    this.world.log(() => `NEMESIS resumes ${id}`);
  }

  /** The sitter's event loop stalls (a loaded machine): its timers, Raft node and calls wait; its PostgreSQL runs on. */
  stallSitter(id: string): void {
    if (this.raft.cluster.paused.has(id)) return;
    this.stalled.add(id);
    this.raft.cluster.paused.add(id);
    this.world.log(() => `NEMESIS stalls the sitter of ${id}`);
  }

  unstallSitter(id: string): void {
    if (!this.stalled.delete(id)) return;
    this.raft.cluster.paused.delete(id);
    this.world.log(() => `NEMESIS: the sitter of ${id} runs again`);
  }

  /** The PostgreSQL server hangs (SIGSTOP of the postmaster): it answers nothing, replicates nothing. */
  hangPostgres(id: string): void {
    this.hung.add(id);
    this.world.log(() => `NEMESIS hangs PostgreSQL of ${id}`);
  }

  /** It runs again; an immediate shutdown signalled meanwhile takes effect now. */
  unhangPostgres(id: string): void {
    if (!this.hung.delete(id)) return;
    const pg = this.pgs.get(id)!;
    this.world.log(() => `NEMESIS: PostgreSQL of ${id} runs again${pg.stopPending ? ' and exits (the immediate shutdown signalled while it hung)' : ''}`);
    if (pg.stopPending) pg.stop('immediate');
  }

  partition(...groups: string[][]): void {
    this.raft.cluster.partition(...groups);
    this.world.log(() => `NEMESIS partitions ${groups.map((g) => `[${g.join(',')}]`).join(' ')}`);
  }

  /** Every fault ends: the network heals, paused peers resume, dead ones restart. */
  healAll(): void {
    this.raft.cluster.heal();
    this.raft.cluster.faults.drop = 0;
    for (const id of this.ids) {
      this.unhangPostgres(id);
      this.unstallSitter(id);
      if (this.raft.cluster.paused.has(id)) this.resume(id);
      this.restartSitter(id);
    }
    this.world.log(() => 'NEMESIS: every fault healed');
  }

  private async randomFault(): Promise<void> {
    const rng = this.world.rng;
    const kind = rng.pick(FAULTS);
    const id = rng.pick(this.ids);
    const holdMs = rng.int(300, 5000);
    this.faultCount++;
    switch (kind) {
      case 'killSitter':
      case 'killPeer':
        if (kind === 'killSitter') this.killSitter(id);
        else this.killPeer(id);
        this.world.after(holdMs, () => { this.restartSitter(id); });
        break;
      case 'killPostgres':
        this.world.log(() => `NEMESIS kills PostgreSQL of ${id}`);
        this.pgs.get(id)!.kill();
        break;
      case 'pause':
        this.pause(id);
        this.world.after(holdMs, () => { this.resume(id); });
        break;
      case 'isolate':
        this.partition([id]);
        this.world.after(holdMs, () => { this.raft.cluster.heal(); });
        break;
      case 'split': {
        const [x, ...rest] = rng.shuffle(this.ids);
        this.partition([x!, ...rest.slice(0, 1)], rest.slice(1));
        this.world.after(holdMs, () => { this.raft.cluster.heal(); });
        break;
      }
      case 'lossy':
        this.raft.cluster.faults.drop = rng.pick([0.05, 0.2, 0.5]);
        this.world.log(() => `NEMESIS drops ${this.raft.cluster.faults.drop * 100}% of messages`);
        this.world.after(holdMs, () => { this.raft.cluster.faults.drop = 0; });
        break;
      case 'restartAll':
        for (const p of this.ids) {
          if (rng.chance(0.5)) this.killPeer(p);
          else this.killSitter(p);
        }
        this.world.after(rng.int(100, 2000), () => { for (const p of this.ids) this.restartSitter(p); });
        break;
    }
    await Promise.resolve();
  }

  /** One fault of the loaded machine (the `load` option's nemesis), mostly on the current primary. */
  loadFault(rng: Rng): void {
    const primary = this.checker.committed.state?.primary.id;
    const id = primary !== undefined && rng.chance(0.7) ? primary : rng.pick(this.ids);
    if (rng.chance(0.5)) {
      this.stallSitter(id);
      this.world.after(rng.int(300, 4000), () => { this.unstallSitter(id); });
    } else {
      this.hangPostgres(id);
      this.world.after(rng.int(500, 12_000), () => { this.unhangPostgres(id); });
    }
  }

  // ---- the operator ----

  /** manatee-adm's operations through a live peer's store (null when no sitter runs). */
  admin(rng: Rng): AdminOperations | null {
    const live = [...this.sitters.values()].filter((x) => x !== null);
    if (live.length === 0) return null;
    const s = rng.pick(live);
    return storeAdminOperations({
      store: s.store,
      peerId: s.id,
      startRebuild: () => Promise.reject(new Error('not simulated')),
      now: () => new Date(this.world.wallMs()),
    });
  }

  /** One operator action; refusals (no leader, a check that fails) are what an operator sees too. */
  operatorAct(rng: Rng): void {
    const admin = this.admin(rng);
    const st = this.checker.committed.state;
    if (admin === null || st === null) return;
    const what = rng.int(0, 9);
    let op: Promise<unknown>;
    let text: string;
    if (what < 5 && st.sync !== null) {
      text = `promote the sync ${st.sync.id}`;
      op = admin.promote({ peerId: st.sync.id, expireMs: rng.int(1000, 10_000) });
    } else if (what < 7 && st.async.length > 0) {
      const target = rng.pick(st.async);
      text = `promote the async ${target.id}`;
      op = admin.promote({ peerId: target.id, expireMs: rng.int(1000, 10_000) });
    } else if (st.freeze === undefined) {
      text = 'freeze';
      op = admin.freeze('simulated operator');
      this.world.after(rng.int(500, 6000), () => { this.unfreeze(rng); });
    } else {
      return;
    }
    this.world.log(() => `OPERATOR: ${text}`);
    op.then(() => { this.world.log(() => `OPERATOR: ${text}: done`); }, (err: unknown) => {
      this.world.log(() => `OPERATOR: ${text}: refused (${err instanceof Error ? err.message : String(err)})`);
    });
  }

  unfreeze(rng: Rng): void {
    if (this.checker.committed.state?.freeze === undefined) return;
    const admin = this.admin(rng);
    if (admin === null) return;
    this.world.log(() => 'OPERATOR: unfreeze');
    admin.unfreeze().catch(() => undefined);
  }

  // ---- the client ----

  /** One write, sent to a peer picked at random: a writable primary takes it, then waits for its sync. */
  private clientWrite(): void {
    const id = this.world.rng.pick(this.ids);
    const w = ++this.writeSeq;
    if (this.pgs.get(id)!.write(w)) this.world.log(() => `client write ${w} taken by ${id}`);
  }

  // ---- time ----

  /** One step: Raft's time unit, due timers, replication, promise chains, invariants. */
  async step(): Promise<void> {
    const w = this.world;
    w.nowMs += UNIT_MS;
    this.raft.cluster.stepUnit();
    this.raft.afterStep();
    w.fireDue();
    replicate(this.pgs, this.net, 20);
    await drain();
    this.observeCommitted();
  }

  async runFor(ms: number): Promise<void> {
    const end = this.world.nowMs + ms;
    while (this.world.nowMs < end) await this.step();
  }

  private observeCommitted(): void {
    let best: ClusterStateMachine | null = null;
    for (const m of this.raft.machines.values()) if (best === null || m.version > best.version) best = m;
    if (best !== null && best.version > this.checker.committed.version) this.checker.onCommitted({ version: best.version, state: best.state });
  }

  /** Why the shard is not whole yet, or null when it is: one writable primary with its sync streaming, every peer placed and active. */
  notWhole(): string | null {
    const st = this.checker.committed.state;
    if (st === null) return 'no cluster state';
    if (st.deposed.length > 0) return `deposed [${st.deposed.map((p) => p.id).join(',')}]`;
    const placed = [st.primary.id, st.sync?.id, ...st.async.map((p) => p.id)];
    for (const id of this.ids) if (!placed.includes(id)) return `${id} is not in the chain`;
    const active = new Set(this.raft.machines.get(st.primary.id)!.activePeers().map((p) => p.id));
    for (const id of this.ids) if (!active.has(id)) return `${id} has no session`;
    const p = this.pgs.get(st.primary.id)!;
    if (!p.running || p.inRecovery || !p.writable) return `primary ${st.primary.id} is not writable`;
    const s = this.pgs.get(st.sync!.id)!;
    if (!s.streaming || s.upstream !== st.primary.id) return `sync ${st.sync!.id} does not stream from the primary`;
    for (const a of st.async) if (!this.pgs.get(a.id)!.streaming) return `async ${a.id} does not stream`;
    return null;
  }
}

export const DEFAULT_FAULT_MS = 20_000;
export const DEFAULT_HEAL_BOUND_MS = 45_000;

/** One seed: setup, faults, heal, then liveness (a whole shard that acknowledges a new write). */
export async function runShardSim(opts: ShardSimOptions): Promise<ShardSimResult> {
  // An untraced seed reads no stack: the sitter's jobs throw and catch errors all the time (Raft
  // timeouts, lost reads), and capturing their stacks cost about a tenth of the CPU (median
  // per-seed CPU 0.86x without, seeds 1..200). A failing seed is replayed with its trace, and stacks.
  const stackTraceLimit = Error.stackTraceLimit;
  if (opts.trace !== true) Error.stackTraceLimit = 0;
  try {
    return await runSeed(opts);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

async function runSeed(opts: ShardSimOptions): Promise<ShardSimResult> {
  const shard = new SimShard(opts);
  const w = shard.world;
  const rng = w.rng.fork();
  let error: SimInvariantError | null = null;
  try {
    // Setup: the cluster forms and takes writes.
    await shard.runFor(3000);
    let nextWriteMs = w.nowMs;
    const writes = (): void => {
      if (w.nowMs >= nextWriteMs) {
        (shard as unknown as { clientWrite(): void }).clientWrite();
        nextWriteMs = w.nowMs + rng.int(20, 200);
      }
    };
    if (opts.scenario !== undefined) {
      const done = { v: false };
      void opts.scenario(shard).finally(() => { done.v = true; });
      while (!done.v) {
        writes();
        await shard.step();
      }
    } else {
      const faultEnd = w.nowMs + (opts.faultMs ?? DEFAULT_FAULT_MS);
      let nextFaultMs = w.nowMs + rng.int(200, 2000);
      // Its own stream, so that switching the operator on leaves the other choices of a seed alone.
      const ops = new Rng((Math.imul(opts.seed, 0x9e3779b1) ^ 0x0badf00d) >>> 0);
      let nextOpMs = opts.operator === true ? w.nowMs + ops.int(200, 3000) : Infinity;
      const load = new Rng((Math.imul(opts.seed, 0x85ebca6b) ^ 0x10ad10ad) >>> 0);
      let nextLoadMs = opts.load === true ? w.nowMs + load.int(200, 3000) : Infinity;
      while (w.nowMs < faultEnd) {
        writes();
        if (w.nowMs >= nextLoadMs) {
          shard.loadFault(load);
          nextLoadMs = w.nowMs + load.int(500, 4000);
        }
        if (w.nowMs >= nextOpMs) {
          shard.operatorAct(ops);
          nextOpMs = w.nowMs + ops.int(500, 4000);
        }
        if (w.nowMs >= nextFaultMs) {
          await (shard as unknown as { randomFault(): Promise<void> }).randomFault();
          nextFaultMs = w.nowMs + rng.int(200, 3000);
        }
        await shard.step();
      }
    }
    shard.healAll();
    const healedAtMs = w.nowMs;
    const ackedBefore = shard.checker.stats.acks;
    const bound = opts.healBoundMs ?? DEFAULT_HEAL_BOUND_MS;
    const unfreezer = new Rng(opts.seed ^ 0x5eed);
    let nextUnfreezeMs = w.nowMs;
    for (;;) {
      writes();
      // The operator lifts a freeze left from the faulty period (until it sticks).
      if (opts.operator === true && w.nowMs >= nextUnfreezeMs) {
        shard.unfreeze(unfreezer);
        nextUnfreezeMs = w.nowMs + 1000;
      }
      await shard.step();
      if (shard.notWhole() === null && shard.checker.stats.acks > ackedBefore) break;
      if (w.nowMs - healedAtMs > bound) {
        shard.checker.fail('the shard is whole again after the faults stop', `not whole ${bound} ms after the faults stopped: ${shard.notWhole() ?? 'no write acknowledged since'}`);
      }
    }
    w.log(() => `whole again ${w.nowMs - healedAtMs} ms after the faults stopped`);
  } catch (err) {
    for (const s of shard.sitters.values()) if (s !== null) w.log(() => `at the end: ${s.describe()}`);
    w.log(() => `at the end: raft ${shard.raft.cluster.describe()}`);
    for (const pg of shard.pgs.values()) {
      w.log(() => `at the end: pg ${pg.peerId}: running=${String(pg.running)} recovery=${String(pg.inRecovery)} upstream=${pg.upstream ?? '-'} timeline ${pg.timeline}, ` +
        `${pg.wal.length} records, last [${pg.wal.slice(-4).map((r) => `${r.id}:${r.kind}`).join(' ')}]`);
    }
    if (err instanceof SimInvariantError) error = err;
    else if (err instanceof Error && err.message.includes('seed')) error = new SimInvariantError(opts.seed, 'raft safety', err.message);
    else throw err;
  } finally {
    for (const s of shard.sitters.values()) s?.kill();
  }
  return { seed: opts.seed, ok: error === null, error, simulatedMs: w.nowMs, faults: shard.faultCount, stats: shard.checker.stats, trace: w.trace };
}
