// The topology that applications follow: [primary, sync, ...asyncs] as PostgreSQL URLs, taken
// from the committed cluster state. Deposed peers are never in it (they are not in the chain, and
// are filtered again here in case a state ever named one in two places).
import type { ClusterState } from '../model/index.js';

/** pgUrls, primary first, then the sync (absent in one-node-write mode), then the asyncs in chain order. */
export type Topology = readonly string[];

export function topologyOf(state: ClusterState): Topology {
  const deposed = new Set(state.deposed.map((p) => p.id));
  const chain = [state.primary, ...(state.sync !== null ? [state.sync] : []), ...state.async];
  return chain.filter((p) => !deposed.has(p.id)).map((p) => p.pgUrl);
}

export function sameTopology(a: Topology | null, b: Topology | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((url, i) => url === b[i]);
}
