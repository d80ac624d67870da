// A deterministic shard for testing Manatee's rules, in the spirit of Joyent's simulator
// (manatee-state-machine's lib/sim.js): peers with sessions and a PostgreSQL status, one
// cluster state with a version, and each peer's decisions applied as compare-and-set writes.
// No real store and no real PostgreSQL: the rules are pure, so scenarios are exact replays.
import { expect } from 'vitest';
import { type ClusterState, type PeerInfo, type PeerTags, type PromoteRequest, formatLsn, parseLsn } from '../../src/model/index.js';
import { decide, type Decision, type RulesConfig, type RulesPgStatus } from '../../src/peer/rules/index.js';
import { stateShapeProblems, transitionProblems } from '../../src/store/validate.js';
import { stateProblems } from './state-check.js';

export function peerInfo(id: string): PeerInfo {
  const n = /(\d+)$/.exec(id)?.[1] ?? '0';
  const host = `10.0.0.${n}`;
  return { id, host, pgUrl: `postgres://postgres@${host}:5432/postgres`, apiUrl: `http://${host}:5433` };
}

/** "0/A" for 10. */
export function lsn(n: number): string {
  return formatLsn(BigInt(n));
}

interface SimPeer {
  readonly info: PeerInfo;
  pg: RulesPgStatus;
  config: RulesConfig;
  /** The tags its session carries. */
  tags: PeerTags;
  last: Decision | null;
}

/** The state written as ids only, for compact expectations. */
export interface Topology {
  generation: number;
  primary: string;
  sync: string | null;
  async: string[];
  deposed: string[];
  initWal: string;
  frozen: boolean;
  oneNodeWriteMode: boolean;
  promote: boolean;
}

export class Shard {
  state: ClusterState | null = null;
  version = 0;
  readonly history: string[] = [];
  /** Every write applied: who wrote it, the decision's kind and the history summary. */
  readonly writes: { peer: string; kind: string; summary: string }[] = [];
  /** Ids of peers with a session, in the order the sessions were opened. */
  private readonly sessions: string[] = [];
  private readonly peers = new Map<string, SimPeer>();
  nowMs = Date.parse('2026-01-01T00:00:00.000Z');
  /** Bytes of WAL written by each generation's primary, to move LSNs along as Joyent's simulator did. */
  walStepBytes = 10;

  /** A new peer (or a known one) opens a session. */
  addPeer(id: string, opts: { pg?: Partial<RulesPgStatus>; config?: Partial<RulesConfig>; tags?: PeerTags } = {}): this {
    let peer = this.peers.get(id);
    if (peer === undefined) {
      peer = {
        info: peerInfo(id),
        pg: { online: true, replayLsn: lsn(0), currentLsn: lsn(0), history: { timeline: 1, switches: [] }, hasPreviousData: false, rebuiltFrom: null, ...opts.pg },
        config: { oneNodeWriteMode: false, autoRebuild: true, ...opts.config },
        tags: opts.tags ?? {},
        last: null,
      };
      this.peers.set(id, peer);
    } else {
      peer.pg = { ...peer.pg, ...opts.pg };
      peer.config = { ...peer.config, ...opts.config };
      if (opts.tags !== undefined) peer.tags = opts.tags;
    }
    if (!this.sessions.includes(id)) this.sessions.push(id);
    return this;
  }

  /** The peer's session ends (its sitter died, or its host is cut off). */
  rmPeer(id: string): this {
    const i = this.sessions.indexOf(id);
    if (i >= 0) this.sessions.splice(i, 1);
    return this;
  }

  isActive(id: string): boolean {
    return this.sessions.includes(id);
  }

  knows(id: string): boolean {
    return this.peers.has(id);
  }

  peer(id: string): SimPeer {
    const p = this.peers.get(id);
    if (p === undefined) throw new Error(`no peer ${id}`);
    return p;
  }

  setPg(id: string, pg: Partial<RulesPgStatus>): this {
    const p = this.peer(id);
    p.pg = { ...p.pg, ...pg };
    return this;
  }

  setConfig(id: string, config: Partial<RulesConfig>): this {
    const p = this.peer(id);
    p.config = { ...p.config, ...config };
    return this;
  }

  /** The peer replays everything its primary has written. */
  catchUp(id: string): this {
    const primary = this.state === null ? null : this.peer(this.state.primary.id);
    const at = primary?.pg.currentLsn ?? lsn(0);
    return this.setPg(id, { replayLsn: at, currentLsn: at });
  }

  /** The peer's data is rebuilt from the current primary (what the reconciler reports). */
  rebuild(id: string): this {
    const s = this.mustState();
    return this.setPg(id, { rebuiltFrom: { primaryId: s.primary.id, generation: s.generation }, hasPreviousData: true });
  }

  /** Replace the state as an operator (or a test's bootstrap) would. */
  setState(state: ClusterState): this {
    this.state = state;
    this.version += 1;
    return this;
  }

  /** Write generation 1 directly (Joyent's simulator's "bootstrap"); the primary's WAL moves on. */
  bootstrap(primary: string, sync: string, asyncs: string[] = []): this {
    const p = this.peers.get(primary);
    if (p !== undefined) p.pg = { ...p.pg, currentLsn: lsn(this.walStepBytes) };
    return this.setState({
      generation: 1,
      primary: peerInfo(primary),
      sync: peerInfo(sync),
      async: asyncs.map(peerInfo),
      deposed: [],
      initWal: lsn(0),
      initWalHistory: { timeline: 1, switches: [] },
    });
  }

  freeze(reason = 'frozen by test'): this {
    return this.setState({ ...this.mustState(), freeze: { date: new Date(this.nowMs).toISOString(), reason } });
  }

  unfreeze(): this {
    const { freeze: _f, ...rest } = this.mustState();
    return this.setState(rest);
  }

  promote(request: Omit<PromoteRequest, 'expireTime'> & { expireTime?: string; expireInMs?: number }): this {
    const { expireInMs, ...rest } = request;
    const expireTime = rest.expireTime ?? new Date(this.nowMs + (expireInMs ?? 60_000)).toISOString();
    return this.setState({ ...this.mustState(), promote: { ...rest, expireTime } });
  }

  /** One evaluation of the rules on peer `id`, without applying it. */
  decide(id: string): Decision {
    const p = this.peer(id);
    return decide({
      state: this.state,
      version: this.version,
      active: this.sessions.map((s) => this.peer(s).info),
      tags: Object.fromEntries(this.sessions.map((s) => [s, this.peer(s).tags])),
      self: p.info,
      pg: p.pg,
      nowMs: this.nowMs,
      config: p.config,
    });
  }

  /** Evaluate on `id` and apply its write, if any, as the store would (compare-and-set, validated). */
  step(id: string): Decision {
    const d = this.decide(id);
    this.peer(id).last = d;
    if (d.write === null) return d;
    expect(d.write.expectVersion, `${id}'s ${d.kind} is based on the current version`).toBe(this.version);
    expect(stateProblems(this.state, d.write.newState), `${id}'s ${d.kind} writes a valid state`).toEqual([]);
    expect(stateShapeProblems(d.write.newState), `the store accepts the shape of ${id}'s ${d.kind}`).toEqual([]);
    expect(transitionProblems(this.state, d.write.newState), `the store accepts ${id}'s ${d.kind} as a transition`).toEqual([]);
    const before = this.state;
    this.state = d.write.newState;
    this.version += 1;
    this.history.push(d.write.summary);
    this.writes.push({ peer: id, kind: d.kind, summary: d.write.summary });
    // A new primary's WAL moves on from where its generation began.
    if (before === null || before.generation !== this.state.generation) {
      const primary = this.peer(this.state.primary.id);
      const start = parseLsn(this.state.initWal) + BigInt(this.walStepBytes);
      primary.pg = { ...primary.pg, currentLsn: formatLsn(start) };
    }
    return d;
  }

  /**
   * Every active peer evaluates in turn (id order) until a whole round writes nothing.
   * Returns the summaries written. Fails if the shard never comes to rest.
   */
  settle(maxRounds = 20): string[] {
    const start = this.history.length;
    for (let round = 0; round < maxRounds; round++) {
      let wrote = false;
      for (const id of [...this.sessions].sort()) {
        if (this.step(id).write !== null) wrote = true;
      }
      if (!wrote) return this.history.slice(start);
    }
    throw new Error(`the shard did not come to rest in ${maxRounds} rounds: ${this.history.slice(start).join(' | ')}`);
  }

  mustState(): ClusterState {
    if (this.state === null) throw new Error('no cluster state');
    return this.state;
  }

  topology(): Topology {
    const s = this.mustState();
    return {
      generation: s.generation,
      primary: s.primary.id,
      sync: s.sync?.id ?? null,
      async: s.async.map((p) => p.id),
      deposed: s.deposed.map((p) => p.id),
      initWal: s.initWal,
      frozen: s.freeze !== undefined,
      oneNodeWriteMode: s.oneNodeWriteMode === true,
      promote: s.promote !== undefined,
    };
  }
}

/** A Topology with the usual defaults, for expectations: topo({generation: 2, primary: 'node1', ...}). */
export function topo(t: Partial<Topology> & Pick<Topology, 'generation' | 'primary' | 'sync'>): Topology {
  return { async: [], deposed: [], initWal: lsn(0), frozen: false, oneNodeWriteMode: false, promote: false, ...t };
}
