// The nemesis: injects one fault at a time from a seeded schedule, holds it, heals it, and waits
// for the shard to come back before the next one. Each fault is recorded with its start and heal.
import type { Cluster } from './cluster.js';
import { FAULT_KINDS, type FaultKind, type FaultRecord } from './history.js';
import { cut, cutClients, healNetwork, isolate } from './net.js';
import type { Rng } from './rng.js';
import { discover } from './workload.js';

export interface NemesisOptions {
  readonly kinds: readonly FaultKind[];
  readonly sessionTimeoutMs: number;
  /** Quiet time between a recovery and the next fault. */
  readonly quietMs: readonly [number, number];
  /** How long a partition or a crash lasts before it is healed. */
  readonly holdMs: readonly [number, number];
  /** The longest wait for the shard to be whole again after a heal; past it the shard is reported stuck. */
  readonly recoveryTimeoutMs: number;
}

export interface NemesisEvents {
  fault(f: FaultRecord): void;
  note(e: Record<string, unknown>): void;
}

export function parseFaultKinds(list: string): FaultKind[] {
  if (list === 'all') return [...FAULT_KINDS];
  const kinds = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`unknown fault kind "${k}"; known: ${FAULT_KINDS.join(', ')}`);
  }
  if (kinds.length === 0) throw new Error('no fault kinds given');
  return kinds as FaultKind[];
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The shard is whole: a writable primary, and every peer online in the chain of the newest generation. */
export async function shardWhole(cluster: Cluster): Promise<{ whole: boolean; why: string; primary: string | null }> {
  const all = await cluster.statuses(1500);
  const states = [...all.values()].filter((s) => s !== null);
  if (states.length < cluster.peers.length) return { whole: false, why: `${cluster.peers.length - states.length} peers do not answer`, primary: null };
  const gens = new Set(states.map((s) => s.state?.generation ?? -1));
  if (gens.size !== 1) return { whole: false, why: `peers disagree on the generation (${[...gens].join(', ')})`, primary: null };
  const primary = states.find((s) => s.role === 'primary');
  if (primary === undefined) return { whole: false, why: 'no primary', primary: null };
  if (!primary.postgres.writable) return { whole: false, why: `primary ${primary.peer.id} is not writable`, primary: null };
  const off = states.filter((s) => !['primary', 'sync', 'async'].includes(s.role) || !s.postgres.online);
  if (off.length > 0) return { whole: false, why: `not in the chain or offline: ${off.map((s) => `${s.peer.id}(${s.role})`).join(', ')}`, primary: primary.peer.id };
  return { whole: true, why: 'whole', primary: primary.peer.id };
}

export class Nemesis {
  private readonly stopping = new AbortController();
  private seq = 0;
  /** Peers killed whose sitter must be started at the heal. */
  private readonly down = new Set<string>();
  private readonly paused = new Set<string>();
  private partitioned = false;
  private halted = false;
  readonly done: FaultKind[] = [];
  stuck = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly opts: NemesisOptions,
    private readonly rng: Rng,
    private readonly events: NemesisEvents,
    private readonly now: () => number,
  ) {}

  private isStopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Asks the loop to end after the current fault (which is healed). */
  stop(): void {
    this.stopping.abort();
  }

  private isHalted(): boolean {
    return this.halted;
  }

  /** The run is being torn down: no more waiting, and no more restarts of sitters. */
  halt(): void {
    this.halted = true;
    this.stopping.abort();
  }

  /** Injects faults until `until()` says stop. Each round of faults covers every kind in a seeded order. */
  async run(until: () => boolean): Promise<void> {
    let order: FaultKind[] = [];
    while (!this.isStopped() && !until()) {
      await sleep(this.rng.int(this.opts.quietMs[0], this.opts.quietMs[1]), this.stopping.signal);
      if (this.isStopped() || until()) break;
      await this.awaitWhole();
      if (this.isStopped() || until()) break;
      if (order.length === 0) order = this.rng.shuffle(this.opts.kinds);
      const kind = order.shift()!;
      await this.inject(kind);
    }
  }

  /** Waits until the shard is whole; counts and reports it stuck when it is not within the recovery timeout. */
  async awaitWhole(timeoutMs = this.opts.recoveryTimeoutMs): Promise<boolean> {
    const started = this.now();
    let last = '';
    while (this.now() - started < timeoutMs) {
      if (this.isHalted()) return false;
      const w = await shardWhole(this.cluster);
      if (w.whole) {
        if (this.now() - started > 1000) this.events.note({ event: 'recovered', afterMs: this.now() - started });
        return true;
      }
      if (w.why !== last) this.events.note({ event: 'waiting', why: w.why });
      last = w.why;
      // A sitter may have died on its own (a crash is a finding): start it again, and say so.
      for (const p of this.cluster.peers) {
        if (!this.isHalted() && !this.cluster.sitterAlive(p.id) && !this.down.has(p.id)) {
          this.events.note({ event: 'sitter-exited', peer: p.id, note: 'exited without a fault; restarted (see its log)' });
          this.cluster.start(p.id);
        }
      }
      await sleep(500);
    }
    this.stuck++;
    this.events.note({ event: 'stuck', why: last, waitedMs: this.now() - started });
    return false;
  }

  private hold(): Promise<void> {
    return sleep(this.rng.int(this.opts.holdMs[0], this.opts.holdMs[1]));
  }

  /** Heals whatever is still broken: network, pauses, stopped sitters. Safe to call at any time. */
  async healAll(): Promise<void> {
    if (this.isHalted()) return;
    if (this.partitioned) await healNetwork(this.cluster.net);
    this.partitioned = false;
    for (const id of this.paused) this.cluster.resume(id);
    this.paused.clear();
    for (const id of this.down) this.cluster.start(id);
    this.down.clear();
  }

  private async roles(): Promise<{ primary: string | null; sync: string | null }> {
    const t = await discover(this.cluster, 1500);
    return { primary: t?.primary ?? null, sync: t?.sync ?? null };
  }

  /** The kinds that an overlapping fault combines: any two different ones but restart-all (which is every peer at once). */
  static readonly OVERLAPPABLE: readonly FaultKind[] = FAULT_KINDS.filter((k) => k !== 'restart-all' && k !== 'overlap');

  private async inject(kind: FaultKind): Promise<void> {
    const roles = await this.roles();
    const seq = ++this.seq;
    const startedAtMs = this.now();
    let record: Omit<FaultRecord, 'healedAtMs'>;
    if (kind === 'overlap') {
      // Two faults at once: the second starts while the first holds (e.g. a partition during a pause).
      const [k1, k2] = this.rng.shuffle(Nemesis.OVERLAPPABLE).slice(0, 2) as [FaultKind, FaultKind];
      const first = await this.begin(k1, roles);
      const lagMs = this.rng.int(0, Math.floor(first.holdMs / 2));
      await sleep(lagMs);
      const second = await this.begin(k2, await this.roles());
      const targets = [...new Set([...first.targets, ...second.targets])];
      record = { seq, kind, parts: [k1, k2], targets, startedAtMs, detail: `${k1}: ${first.detail}; ${lagMs} ms later, ${k2}: ${second.detail}` };
      this.events.note({ event: 'inject', seq, kind, parts: [k1, k2], targets, atMs: startedAtMs });
      await sleep(Math.max(first.holdMs - lagMs, second.holdMs));
    } else {
      const one = await this.begin(kind, roles);
      record = { seq, kind, targets: one.targets, startedAtMs, detail: one.detail };
      this.events.note({ event: 'inject', seq, kind, targets: one.targets, atMs: startedAtMs });
      await sleep(one.holdMs);
    }
    await this.healAll();
    this.done.push(kind);
    this.events.fault({ ...record, healedAtMs: this.now() });
  }

  /** Starts one fault; returns what it hit and how long to hold it before healing. */
  private async begin(kind: FaultKind, roles: { primary: string | null; sync: string | null }): Promise<{ targets: string[]; detail: string; holdMs: number }> {
    const ids = this.cluster.peers.map((p) => p.id);
    const { primary, sync } = roles;
    const holdMs = (): number => this.rng.int(this.opts.holdMs[0], this.opts.holdMs[1]);
    const crashTarget = (): string => (this.rng.next() < 0.5 && primary !== null ? primary : this.rng.pick(ids));
    const role = (t: string): string => (t === primary ? ' (the primary)' : '');
    switch (kind) {
      case 'kill-peer': {
        const t = crashTarget();
        this.cluster.killPeer(t);
        this.down.add(t);
        return { targets: [t], detail: `SIGKILL of the sitter and PostgreSQL of ${t}${role(t)}, restart after the hold`, holdMs: holdMs() };
      }
      case 'kill-sitter': {
        const t = crashTarget();
        this.cluster.killSitter(t);
        this.down.add(t);
        return { targets: [t], detail: `SIGKILL of the sitter of ${t}${role(t)} (its PostgreSQL goes on), restart after the hold`, holdMs: holdMs() };
      }
      case 'kill-postgres': {
        const t = crashTarget();
        const pm = this.cluster.signalPostgres(t, 'SIGKILL');
        const detail = pm === null ? `no PostgreSQL ran on ${t}` : `SIGKILL of PostgreSQL (postmaster ${pm} and its children) on ${t}${role(t)}; the sitter restarts it`;
        return { targets: [t], detail, holdMs: this.opts.sessionTimeoutMs };
      }
      case 'pause-short':
      case 'pause-long': {
        const t = crashTarget();
        const ms = kind === 'pause-short'
          ? Math.floor(this.opts.sessionTimeoutMs * (0.3 + 0.3 * this.rng.next()))
          : Math.floor(this.opts.sessionTimeoutMs * (2 + 2 * this.rng.next()));
        if (!this.paused.has(t)) {
          this.cluster.pause(t);
          this.paused.add(t);
        }
        return { targets: [t], detail: `SIGSTOP of the sitter and PostgreSQL of ${t}${role(t)} for ${ms} ms (session timeout ${this.opts.sessionTimeoutMs} ms)`, holdMs: ms };
      }
      case 'partition-primary':
      case 'partition-sync':
      case 'partition-minority': {
        let side: string[];
        if (kind === 'partition-primary') side = [primary ?? this.rng.pick(ids)];
        else if (kind === 'partition-sync') side = [sync ?? this.rng.pick(ids)];
        else side = this.rng.shuffle(ids).slice(0, Math.max(1, Math.floor((ids.length - 1) / 2)));
        this.partitioned = true;
        await isolate(this.cluster.net, side);
        return { targets: side, detail: `isolated ${side.join(', ')} from the other peers (primary ${primary}, sync ${sync})`, holdMs: holdMs() };
      }
      case 'partition-oneway': {
        const [from, to] = this.rng.shuffle(ids) as [string, string];
        this.partitioned = true;
        await cut(this.cluster.net, from, to);
        return { targets: [from, to], detail: `dropped every packet from ${from} to ${to} (one way; primary ${primary}, sync ${sync})`, holdMs: holdMs() };
      }
      case 'partition-clients': {
        const t = crashTarget();
        this.partitioned = true;
        await cutClients(this.cluster.net, t);
        return { targets: [t], detail: `cut the clients off from ${t}${role(t)} (the peers still reach it)`, holdMs: holdMs() };
      }
      case 'restart-all': {
        for (const id of ids) {
          this.cluster.killPeer(id);
          this.down.add(id);
        }
        return { targets: [...ids], detail: 'SIGKILL of every peer, then all restarted together', holdMs: this.rng.int(1000, 3000) };
      }
      case 'overlap':
        throw new Error('an overlapping fault is made of two others, not begun by itself');
    }
  }
}
