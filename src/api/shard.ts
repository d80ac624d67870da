// GET /shard (the successor of Joyent's manatee-stat): every peer of the committed state and
// every active peer, with its role, health and LSNs, and every replication link of the chain
// with its lag in bytes (the upstream's pg_stat_replication) and in seconds (the downstream's
// heartbeat). The peer asked reads its own status and asks each other peer's /status with a
// short deadline: a peer that does not answer is shown as unreachable, never waited for.
import { errorMessage } from '../errors.js';
import { roleIn, type SitterStatus, type ClusterState, type PeerInfo } from '../model/index.js';
import { ApiClient, WIRE_ERR, WireError, type ShardLink, type ShardPeer, type ShardReport, type WireTlsOptions } from '../wire/index.js';

/** Largest /status answer read from another peer. */
const PEER_STATUS_BYTES_MAX = 4 * 1024 * 1024;

// The report's types are the wire contract's, derived from GET /shard's schema (src/wire).
export type { ShardLink, ShardPeer, ShardReport };

/** Another peer's status, or why it could not be had. */
export type PeerStatusResult = { readonly ok: true; readonly status: SitterStatus } | { readonly ok: false; readonly error: string };

/** The peers of a state in chain order (primary, sync, asyncs, deposed), then active peers not placed yet. */
export function peersInOrder(state: ClusterState | null, active: readonly PeerInfo[]): PeerInfo[] {
  const out: PeerInfo[] = [];
  if (state !== null) {
    out.push(state.primary);
    if (state.sync !== null) out.push(state.sync);
    out.push(...state.async, ...state.deposed);
  }
  for (const p of active) if (!out.some((q) => q.id === p.id)) out.push(p);
  return out;
}

/** The links of the chain: primary → sync → async[0] → async[1]... (primary → async[0] in ONWM). */
export function chainLinks(state: ClusterState | null): { upstream: PeerInfo; downstream: PeerInfo; expected: 'sync' | 'async' }[] {
  if (state === null) return [];
  const out: { upstream: PeerInfo; downstream: PeerInfo; expected: 'sync' | 'async' }[] = [];
  if (state.sync !== null) out.push({ upstream: state.primary, downstream: state.sync, expected: 'sync' });
  let up = state.sync ?? state.primary;
  for (const a of state.async) {
    out.push({ upstream: up, downstream: a, expected: 'async' });
    up = a;
  }
  return out;
}

/** LSN "X/Y" as a number of bytes (exact below 2^53, which is 8 PiB of WAL). */
function lsnBytes(lsn: string | null): number | null {
  if (lsn === null) return null;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (m === null) return null;
  return parseInt(m[1]!, 16) * 2 ** 32 + parseInt(m[2]!, 16);
}

/** Bytes between two LSNs (a − b), never negative; null when either is unknown. */
export function lsnDiffBytes(a: string | null, b: string | null): number | null {
  const x = lsnBytes(a);
  const y = lsnBytes(b);
  return x === null || y === null ? null : Math.max(0, x - y);
}

/** Combine the asked peer's status with the other peers' (by id) into the report. */
export function buildShardReport(asked: SitterStatus, others: ReadonlyMap<string, PeerStatusResult>): ShardReport {
  const state = asked.state;
  const statusOf = (id: string): PeerStatusResult | undefined => (id === asked.peer.id ? { ok: true, status: asked } : others.get(id));
  const activeIds = new Set(asked.activePeers.map((p) => p.id));
  const peers = peersInOrder(state, asked.activePeers).map((p): ShardPeer => {
    const { role, upstream } = roleIn(state, p.id);
    const tags = asked.peerTags?.[p.id] ?? {};
    const base = { id: p.id, host: p.host, pgUrl: p.pgUrl, apiUrl: p.apiUrl, role, upstream: upstream?.id ?? null, tags, active: activeIds.has(p.id) };
    const own = statusOf(p.id);
    if (own?.ok !== true) {
      return {
        ...base, reachable: false, error: own?.error ?? 'not asked', sitterPid: null, postgresPid: null, tlsExpiresInSeconds: null,
        pgOnline: null, pgHealthy: null, writable: null, inRecovery: null, currentLsn: null, receiveLsn: null, replayLsn: null,
        lagSeconds: null, checkLatencyMs: null, lastDecision: null, rebuild: null, pendingRestart: null, settingsVersion: null, settings: null, credentials: null, rejectedSettings: null,
      };
    }
    const s = own.status;
    return {
      ...base, reachable: true, error: s.postgres.error, sitterPid: s.sitterPid, postgresPid: s.postgresPid,
      tlsExpiresInSeconds: s.tls?.expiresInSeconds ?? null,
      pgOnline: s.postgres.online, pgHealthy: s.postgres.healthy, writable: s.postgres.writable, inRecovery: s.postgres.inRecovery,
      currentLsn: s.postgres.currentLsn, receiveLsn: s.postgres.receiveLsn, replayLsn: s.postgres.replayLsn,
      lagSeconds: s.heartbeat?.lagSeconds ?? null, checkLatencyMs: s.postgres.checkLatencyMs,
      lastDecision: s.lastDecision, rebuild: s.rebuild,
      pendingRestart: s.settings?.pendingRestart ?? null, settingsVersion: s.settings?.appliedVersion ?? null,
      settings: s.settings?.settings ?? null,
      credentials: s.credentials ?? null,
      rejectedSettings: s.settings?.rejected ?? null,
    };
  });
  const links = chainLinks(state).map(({ upstream, downstream, expected }): ShardLink => {
    const up = statusOf(upstream.id);
    const down = statusOf(downstream.id);
    const row = up?.ok === true ? up.status.replication.find((r) => r.applicationName === downstream.id) : undefined;
    return {
      upstream: upstream.id,
      downstream: downstream.id,
      expected,
      state: row?.state ?? null,
      syncState: row?.syncState ?? null,
      streaming: row?.state === 'streaming',
      lagBytes: row?.replayLagBytes ?? null,
      lagSeconds: down?.ok === true ? (down.status.heartbeat?.lagSeconds ?? null) : null,
    };
  });
  return {
    answeredBy: asked.peer.id,
    stateVersion: asked.stateVersion,
    generation: state?.generation ?? null,
    initWal: state?.initWal ?? null,
    oneNodeWriteMode: state?.oneNodeWriteMode === true,
    freeze: state?.freeze ?? null,
    promote: state?.promote ?? null,
    raftLeader: asked.raft.leader,
    raftTerm: asked.raft.term,
    state,
    peers,
    links,
  };
}

/** The other peers' statuses, asked in parallel, each with its own deadline. */
export async function otherPeerStatuses(
  asked: SitterStatus,
  fetchStatus: (apiUrl: string, timeoutMs: number, peerId: string) => Promise<SitterStatus>,
  timeoutMs: number,
): Promise<Map<string, PeerStatusResult>> {
  const others = peersInOrder(asked.state, asked.activePeers).filter((p) => p.id !== asked.peer.id);
  const results = await Promise.all(
    others.map(async (p): Promise<[string, PeerStatusResult]> => {
      try {
        return [p.id, { ok: true, status: await fetchStatus(p.apiUrl, timeoutMs, p.id) }];
      } catch (err) {
        return [p.id, { ok: false, error: errorMessage(err) }];
      }
    }),
  );
  return new Map(results);
}

/**
 * GET <apiUrl>/status with the typed client (src/wire), bounded in time and size; refuses an
 * answer that is not a sitter status. `tls`: the shard CA, which must have issued the other
 * peer's certificate for the host in its apiUrl, and this peer's certificate.
 */
export async function fetchPeerStatusHttp(apiUrl: string, timeoutMs: number, tls?: WireTlsOptions): Promise<SitterStatus> {
  const api = new ApiClient({ baseUrl: apiUrl, timeoutMs, responseBytesMax: PEER_STATUS_BYTES_MAX, ...(tls !== undefined ? { tls } : {}) });
  try {
    return await api.status();
  } catch (err) {
    // The report shows the message alone: say where the peer's own refusal came from.
    if (err instanceof WireError && err.status !== null && !Object.values(WIRE_ERR).includes(err.code as never)) {
      throw new WireError(err.code, `HTTP ${err.status} from ${api.baseUrl}/status: ${err.code}: ${err.message}`, { status: err.status });
    }
    throw err;
  }
}
