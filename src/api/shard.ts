// GET /shard (the successor of Joyent's manatee-stat): every peer of the committed state and
// every active peer, with its role, health and LSNs, and every replication link of the chain
// with its lag in bytes (the upstream's pg_stat_replication) and in seconds (the downstream's
// heartbeat). The peer asked reads its own status and asks each other peer's /status with a
// short deadline: a peer that does not answer is shown as unreachable, never waited for.
import http from 'node:http';
import https from 'node:https';
import { ManateeError, errorMessage } from '../errors.js';
import { roleIn, type DecisionRecord, type PeerRole, type RebuildStatus, type SitterStatus, type ClusterState, type FreezeInfo, type PeerInfo, type PromoteRequest } from '../model/index.js';

/** Largest /status answer read from another peer. */
const PEER_STATUS_BYTES_MAX = 4 * 1024 * 1024;

export interface ShardPeer {
  readonly id: string;
  readonly host: string;
  readonly pgUrl: string;
  readonly apiUrl: string;
  /** Its place in the committed state as the answering peer sees it. */
  readonly role: PeerRole;
  /** The peer it replicates from, or null (primary, deposed, unassigned). */
  readonly upstream: string | null;
  /** Its session exists. */
  readonly active: boolean;
  /** Its sitter answered GET /status. */
  readonly reachable: boolean;
  /** Why it is unreachable, or its PostgreSQL's last health-check error; null when fine. */
  readonly error: string | null;
  readonly sitterPid: number | null;
  /** Seconds until its TLS certificate expires (negative: expired); null without TLS or unreachable. */
  readonly tlsExpiresInSeconds: number | null;
  readonly postgresPid: number | null;
  readonly pgOnline: boolean | null;
  readonly pgHealthy: boolean | null;
  readonly writable: boolean | null;
  readonly inRecovery: boolean | null;
  readonly currentLsn: string | null;
  readonly receiveLsn: string | null;
  readonly replayLsn: string | null;
  /** From its heartbeat reading: how old its newest replayed data is. */
  readonly lagSeconds: number | null;
  readonly checkLatencyMs: number | null;
  readonly lastDecision: DecisionRecord | null;
  readonly rebuild: RebuildStatus | null;
  /** Settings whose new value waits for a restart of its PostgreSQL (null: unknown). */
  readonly pendingRestart?: readonly string[] | null;
  /** The version of the shard settings written to its PostgreSQL's files (null: unknown or none yet). */
  readonly settingsVersion?: number | null;
  /** Each shard setting and overrides-file setting on it: value, source, pending restart (null: unknown). */
  readonly settings?: NonNullable<SitterStatus['settings']>['settings'] | null;
}

/** One replication link of the chain: upstream → downstream. */
export interface ShardLink {
  readonly upstream: string;
  readonly downstream: string;
  /** What the state says the link must be: 'sync' for primary → sync, 'async' otherwise. */
  readonly expected: 'sync' | 'async';
  /** pg_stat_replication.state on the upstream ('streaming', 'catchup'...), null when no row or unknown. */
  readonly state: string | null;
  readonly syncState: string | null;
  /** The upstream answered, and shows the downstream streaming. */
  readonly streaming: boolean;
  readonly lagBytes: number | null;
  readonly lagSeconds: number | null;
}

export interface ShardReport {
  readonly answeredBy: string;
  readonly stateVersion: number;
  readonly generation: number | null;
  readonly initWal: string | null;
  readonly oneNodeWriteMode: boolean;
  readonly freeze: FreezeInfo | null;
  readonly promote: PromoteRequest | null;
  readonly raftLeader: string | null;
  readonly raftTerm: number;
  readonly state: ClusterState | null;
  readonly peers: readonly ShardPeer[];
  readonly links: readonly ShardLink[];
}

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
    const base = { id: p.id, host: p.host, pgUrl: p.pgUrl, apiUrl: p.apiUrl, role, upstream: upstream?.id ?? null, active: activeIds.has(p.id) };
    const own = statusOf(p.id);
    if (own?.ok !== true) {
      return {
        ...base, reachable: false, error: own?.error ?? 'not asked', sitterPid: null, postgresPid: null, tlsExpiresInSeconds: null,
        pgOnline: null, pgHealthy: null, writable: null, inRecovery: null, currentLsn: null, receiveLsn: null, replayLsn: null,
        lagSeconds: null, checkLatencyMs: null, lastDecision: null, rebuild: null, pendingRestart: null, settingsVersion: null, settings: null,
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
  fetchStatus: (apiUrl: string, timeoutMs: number) => Promise<SitterStatus>,
  timeoutMs: number,
): Promise<Map<string, PeerStatusResult>> {
  const others = peersInOrder(asked.state, asked.activePeers).filter((p) => p.id !== asked.peer.id);
  const results = await Promise.all(
    others.map(async (p): Promise<[string, PeerStatusResult]> => {
      try {
        return [p.id, { ok: true, status: await fetchStatus(p.apiUrl, timeoutMs) }];
      } catch (err) {
        return [p.id, { ok: false, error: errorMessage(err) }];
      }
    }),
  );
  return new Map(results);
}

/** Enough of a SitterStatus's shape for the report to read it without tripping. */
function looksLikeStatus(v: unknown): v is SitterStatus {
  const s = v as Partial<Record<keyof SitterStatus, unknown>> | null;
  if (typeof s !== 'object' || s === null) return false;
  const peer = s.peer as { id?: unknown } | null | undefined;
  const pg = s.postgres as { online?: unknown } | null | undefined;
  return typeof peer?.id === 'string' && typeof pg?.online === 'boolean' && Array.isArray(s.replication) && typeof s.rebuild === 'object' && s.rebuild !== null;
}

/** GET <apiUrl>/status over node:http (fetch refuses some ports), bounded in time and size. */
export function fetchPeerStatusHttp(apiUrl: string, timeoutMs: number, tls?: { readonly ca: string; readonly cert: string; readonly key: string }): Promise<SitterStatus> {
  return new Promise((resolve, reject) => {
    let url: URL;
    try {
      url = new URL('/status', apiUrl);
    } catch {
      reject(new ManateeError('MANATEE_ERR_BAD_REQUEST', `bad API URL ${JSON.stringify(apiUrl)}`));
      return;
    }
    // With TLS the other peer's certificate must be the shard CA's, for the host in its apiUrl.
    const req = url.protocol === 'https:'
      ? https.request(url, { method: 'GET', headers: { accept: 'application/json' }, ...(tls !== undefined ? { ...tls, minVersion: 'TLSv1.3' as const } : {}) })
      : http.request(url, { method: 'GET', headers: { accept: 'application/json' } });
    const timer = setTimeout(() => { req.destroy(new Error(`no answer within ${timeoutMs} ms`)); }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      const code = (err as { code?: unknown }).code;
      reject(new Error(typeof code === 'string' ? `${code} (${apiUrl})` : `${err.message} (${apiUrl})`));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let sizeBytes = 0;
      res.on('data', (c: Buffer) => {
        sizeBytes += c.length;
        if (sizeBytes > PEER_STATUS_BYTES_MAX) {
          req.destroy(new Error(`answer larger than ${PEER_STATUS_BYTES_MAX} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => {
        clearTimeout(timer);
        if (res.statusCode !== 200) {
          reject(new Error(`HTTP ${res.statusCode ?? '?'} from ${apiUrl}/status`));
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new Error(`${apiUrl}/status answered something that is not JSON`));
          return;
        }
        if (!looksLikeStatus(parsed)) {
          reject(new Error(`${apiUrl}/status answered JSON that is not a sitter status`));
          return;
        }
        resolve(parsed);
      });
    });
    req.end();
  });
}
