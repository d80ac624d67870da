// The shard's Raft group in the simulation: the Raft simulator's cluster (test/raft/sim, the real
// RaftCore on simulated disks and network), with the store's real ClusterStateMachine applied on
// every node, and a Consensus per sitter incarnation for the real ClusterStore. A node that
// restarts replays its own log from its disk into a fresh machine, as a restarted sitter does.
import { RaftNoLeaderError, RaftStoppedError, RaftTimeoutError } from '../../src/raft/errors.js';
import type { Entry, NodeId } from '../../src/raft/core/index.js';
import type { Consensus, LeaderChange, ProposeOptions, ReceivedKeepalive } from '../../src/store/consensus.js';
import { ClusterStateMachine } from '../../src/store/state-machine.js';
import { SimCluster, type Faults } from '../raft/sim/cluster.js';
import type { World } from './world.js';

interface PendingProposal {
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
}

/** One incarnation of a node's Consensus: dies with its sitter process. */
export class SimConsensus implements Consensus {
  alive = true;
  readonly pending = new Map<number, PendingProposal>();
  readonly reads = new Map<string, PendingProposal>();
  readonly leaderListeners = new Set<(c: LeaderChange) => void>();
  readonly keepaliveListeners = new Set<(k: ReceivedKeepalive) => void>();
  private seq = 0;
  /**
   * The leader acknowledges this node's keepalives (the lease of store/raft-consensus.ts). Off by
   * default: the acknowledgements draw random numbers, and seeds found before them keep their runs.
   */
  acknowledged = false;
  private renewedAtMs: number | null = null;
  /** The tag of this incarnation's proposals: `${id}.${incarnation}`. */
  readonly tag: string;

  constructor(readonly id: NodeId, incarnation: number, private readonly raft: SimRaft) {
    this.tag = `${id}.${incarnation}`;
  }

  propose(data: string, opts?: ProposeOptions): Promise<unknown> {
    if (!this.alive || !this.raft.up(this.id)) return Promise.reject(new RaftStoppedError());
    const n = ++this.seq;
    if (!this.raft.cluster.propose(this.id, `${this.tag}#${n}#${data}`)) return Promise.reject(new RaftNoLeaderError());
    return new Promise((resolve, reject) => {
      this.pending.set(n, { resolve, reject });
      this.raft.world.after(opts?.timeoutMs ?? 5000, () => {
        if (this.pending.delete(n)) reject(new RaftTimeoutError(`proposal ${n} not applied in time`));
      });
    });
  }

  read(): Promise<void> {
    if (!this.alive || !this.raft.up(this.id)) return Promise.reject(new RaftStoppedError());
    const ctx = this.raft.cluster.readIndex(this.id);
    if (ctx === null) return Promise.reject(new RaftNoLeaderError());
    return new Promise((resolve, reject) => {
      this.reads.set(ctx, { resolve: () => { resolve(); }, reject });
      this.raft.world.after(2000, () => {
        if (this.reads.delete(ctx)) reject(new RaftTimeoutError(`read ${ctx} not served in time`));
      });
    });
  }

  keepalive(openedIndex: number): Promise<void> {
    if (!this.alive || !this.raft.up(this.id)) return Promise.reject(new RaftStoppedError());
    const leader = this.leader();
    if (leader === null) return Promise.reject(new RaftNoLeaderError());
    if (!this.acknowledged) {
      this.raft.sendKeepalive(this.id, leader, { peerId: this.id, openedIndex });
      return Promise.resolve();
    }
    const sentAtMs = this.raft.world.nowMs;
    this.raft.sendKeepalive(this.id, leader, { peerId: this.id, openedIndex }, () => {
      if (this.alive && (this.renewedAtMs === null || sentAtMs > this.renewedAtMs)) this.renewedAtMs = sentAtMs;
    });
    return Promise.resolve();
  }

  /**
   * When this node sent its newest keepalive that a leader acknowledged (simulated ms; null: none
   * yet), as store/raft-consensus.ts keeps it for the primary's lease. Only with `acknowledged`.
   */
  leaseRenewedAtMs(): number | null {
    return this.renewedAtMs;
  }

  onKeepalive(listener: (k: ReceivedKeepalive) => void): () => void {
    this.keepaliveListeners.add(listener);
    return () => this.keepaliveListeners.delete(listener);
  }

  isLeader(): boolean {
    return this.alive && this.raft.status(this.id)?.role === 'leader';
  }

  leader(): NodeId | null {
    return this.raft.status(this.id)?.leader ?? null;
  }

  term(): number {
    return this.raft.status(this.id)?.term ?? 0;
  }

  onLeaderChange(listener: (change: LeaderChange) => void): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }

  /** The process died: nothing it waits for completes. */
  kill(): void {
    this.alive = false;
    this.pending.clear();
    this.reads.clear();
    this.leaderListeners.clear();
    this.keepaliveListeners.clear();
  }
}

export class SimRaft {
  readonly cluster: SimCluster;
  /** Each node's store machine, replaced at each (re)start of the node. */
  readonly machines = new Map<NodeId, ClusterStateMachine>();
  readonly consensus = new Map<NodeId, SimConsensus>();
  private readonly lastLeader = new Map<NodeId, string>();

  constructor(readonly world: World, readonly ids: readonly NodeId[], faults: Partial<Faults>) {
    this.cluster = new SimCluster({ seed: world.rng.int(0, 0x7fffffff), ids, faults, unitsPerTick: 5 });
    // The cluster started its nodes before the hooks existed: give them their machines now.
    for (const id of ids) this.machines.set(id, new ClusterStateMachine());
    this.cluster.hooks = {
      start: (id) => { this.machines.set(id, new ClusterStateMachine()); },
      apply: (id, e) => { this.apply(id, e); },
    };
  }

  up(id: NodeId): boolean {
    return this.cluster.node(id).up;
  }

  status(id: NodeId): { role: string; leader: NodeId | null; term: number } | null {
    const core = this.cluster.node(id).core;
    if (core === null) return null;
    const st = core.status(false);
    return { role: st.role, leader: st.leader, term: st.term };
  }

  /** A new incarnation's Consensus for node `id` (the old one must be dead). */
  attach(id: NodeId, incarnation: number): SimConsensus {
    const c = new SimConsensus(id, incarnation, this);
    this.consensus.set(id, c);
    this.lastLeader.delete(id);
    return c;
  }

  private apply(id: NodeId, e: Entry): void {
    const machine = this.machines.get(id)!;
    const first = e.data.indexOf('#');
    const second = e.data.indexOf('#', first + 1);
    const tag = e.data.slice(0, first);
    const n = Number(e.data.slice(first + 1, second));
    const result = machine.apply({ index: e.index, term: e.term, data: e.data.slice(second + 1) });
    const c = this.consensus.get(id);
    if (c !== undefined && c.alive && c.tag === tag) {
      const p = c.pending.get(n);
      if (p !== undefined) {
        c.pending.delete(n);
        p.resolve(result);
      }
    }
  }

  /**
   * A keepalive to the leader; with `onAck`, the leader acknowledges it when it still leads a
   * majority it can reach (its confirmation with a quorum), and the answer may be lost too.
   */
  sendKeepalive(from: NodeId, to: NodeId, k: ReceivedKeepalive, onAck?: () => void): void {
    if (!this.cluster.canTalk(from, to) || this.world.rng.chance(this.cluster.faults.drop)) return;
    this.world.after(this.world.rng.int(1, 4) * 10, () => {
      if (!this.cluster.canTalk(from, to) || this.cluster.paused.has(to)) return;
      const c = this.consensus.get(to);
      if (c === undefined || !c.isLeader()) return;
      for (const l of [...c.keepaliveListeners]) l(k);
      if (onAck === undefined) return;
      const reached = this.ids.filter((id) => id === to || (this.cluster.canTalk(to, id) && !this.cluster.paused.has(id) && this.up(id))).length;
      if (reached * 2 <= this.ids.length || this.world.rng.chance(this.cluster.faults.drop)) return;
      this.world.after(this.world.rng.int(1, 4) * 10, () => {
        if (!this.cluster.canTalk(to, from) || this.cluster.paused.has(from)) return;
        onAck();
      });
    });
  }

  /** After each step: reads that were served, and leader changes told to each node's listeners. */
  afterStep(): void {
    for (const [id, c] of this.consensus) {
      if (!c.alive) continue;
      for (const [ctx, p] of c.reads) {
        const r = this.cluster.reads.get(ctx);
        if (r === undefined) {
          c.reads.delete(ctx);
          p.reject(new RaftStoppedError('the read was lost'));
        } else if (r.result !== null) {
          c.reads.delete(ctx);
          this.cluster.reads.delete(ctx);
          p.resolve(undefined);
        }
      }
      const st = this.status(id);
      if (st === null) continue;
      const key = `${st.leader ?? '-'}@${st.term}`;
      if (this.lastLeader.get(id) !== key) {
        this.lastLeader.set(id, key);
        for (const l of [...c.leaderListeners]) l({ leader: st.leader, term: st.term });
      }
    }
  }
}
