// Small pure helpers over peers and the cluster state: ordering, liveness, the chain.
import { type ClusterState, type Lsn, type PeerId, type PeerInfo, type PeerTags, compareLsn, isLsn } from '../../model/index.js';

/**
 * The order of peer ids used for initial setup and for placing new peers: plain code-unit
 * order, so that every peer computes the same order whatever its locale.
 */
export function compareIds(a: PeerId, b: PeerId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function sortById(peers: readonly PeerInfo[]): PeerInfo[] {
  return [...peers].sort((a, b) => compareIds(a.id, b.id));
}

const NO_TAGS: PeerTags = {};

/** The set of peers whose sessions exist, with the tags their sessions carry. Peers are compared by id alone. */
export class ActivePeers {
  private readonly byId: ReadonlyMap<PeerId, PeerInfo>;

  constructor(peers: readonly PeerInfo[], private readonly tagsById: Readonly<Record<PeerId, PeerTags>> = {}) {
    this.byId = new Map(peers.map((p) => [p.id, p]));
  }

  has(peer: PeerInfo | PeerId): boolean {
    return this.byId.has(typeof peer === 'string' ? peer : peer.id);
  }

  /** The tags of an active peer (none for a peer without a session). */
  tags(peer: PeerInfo | PeerId): PeerTags {
    const id = typeof peer === 'string' ? peer : peer.id;
    return (this.byId.has(id) ? this.tagsById[id] : undefined) ?? NO_TAGS;
  }

  /** The peer is tagged nofailover: it is never chosen as sync or primary. */
  noFailover(peer: PeerInfo | PeerId): boolean {
    return this.tags(peer).nofailover === true;
  }

  /**
   * The sync to choose among `candidates` (in their order, e.g. the async chain): the active ones
   * that are not tagged nofailover, highest priority first, ties by the candidates' order.
   */
  chooseSync(candidates: readonly PeerInfo[]): PeerInfo | undefined {
    let best: PeerInfo | undefined;
    let bestPriority = 0;
    for (const p of candidates) {
      if (!this.has(p) || this.noFailover(p)) continue;
      const priority = this.tags(p).priority ?? 0;
      if (best === undefined || priority > bestPriority) {
        best = p;
        bestPriority = priority;
      }
    }
    return best;
  }

  /**
   * Why no sync can be chosen among `candidates`, for reasons: none is active, or the active ones
   * are all tagged nofailover. `purpose` ends the clause ("become my sync").
   */
  noSyncBecause(candidates: readonly PeerInfo[], purpose?: string): string {
    const tagged = candidates.filter((p) => this.has(p) && this.noFailover(p));
    if (tagged.length === 0) return purpose === undefined ? 'no async is active' : `no async is active to ${purpose}`;
    return `no active async may ${purpose ?? 'become the sync'} (${names(tagged)} ${tagged.length === 1 ? 'is' : 'are'} tagged nofailover)`;
  }

  /** Active peers in id order. */
  sorted(): PeerInfo[] {
    return sortById([...this.byId.values()]);
  }

  get size(): number {
    return this.byId.size;
  }
}

/** Every peer that the state names (primary, sync, asyncs, deposed), by id. */
export function placedIds(state: ClusterState): Set<PeerId> {
  const ids = new Set<PeerId>([state.primary.id]);
  if (state.sync !== null) ids.add(state.sync.id);
  for (const p of state.async) ids.add(p.id);
  for (const p of state.deposed) ids.add(p.id);
  return ids;
}

/** How a peer reads in a reason or summary: its id in quotes. */
export function name(peer: PeerInfo | PeerId): string {
  return JSON.stringify(typeof peer === 'string' ? peer : peer.id);
}

export function names(peers: readonly PeerInfo[]): string {
  return `[${peers.map((p) => p.id).join(', ')}]`;
}

/** a >= b for well-formed LSNs; false when either is malformed (never throws). */
export function lsnAtLeast(a: Lsn, b: Lsn): boolean {
  return isLsn(a) && isLsn(b) && compareLsn(a, b) >= 0;
}

/** The larger of the well-formed LSNs given, or null if there is none. */
export function maxLsn(...lsns: readonly (Lsn | null)[]): Lsn | null {
  let best: Lsn | null = null;
  for (const l of lsns) {
    if (l === null || !isLsn(l)) continue;
    if (best === null || compareLsn(l, best) > 0) best = l;
  }
  return best;
}

/** The freeze, said in a few words for a reason sentence. */
export function frozenBecause(state: ClusterState): string {
  const f = state.freeze;
  return f === undefined ? 'not frozen' : `the cluster is frozen (${f.reason || 'no reason given'}, since ${f.date})`;
}
