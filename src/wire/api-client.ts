// The typed client of one peer's HTTP API: a call per route, with the answer's type from
// src/wire/types.ts (the routes' schemas). manatee-adm, GET /shard (each other peer's /status),
// the sitter (the primary's /pg-settings) and the client library (/state) all call through it.
import type { HistoryEntry, PeerInfo, SitterStatus } from '../model/index.js';
import { WIRE_ERR, WireError } from './errors.js';
import { apiBaseUrl, requestJson, type WireTlsOptions } from './http.js';
import type {
  AdminResult, MembershipResult, OnwmMode, PgOpResult, RaftMembers, RebuildResult, SettingsChangeBody, ShardReport, VersionedState,
  WirePgSettingRow, WireSettingsResult, WireVersionedSettings,
} from './types.js';

/** Largest answer read by default: a status or a full history page is far below it. */
export const API_RESPONSE_BYTES_MAX = 16 * 1024 * 1024;

export interface ApiClientOptions {
  /** http(s)://host:port of the peer's API. */
  readonly baseUrl: string;
  /** Deadline of each call, from the request to the whole answer. */
  readonly timeoutMs: number;
  /** With an https URL: TLS 1.3 with this CA and client certificate. */
  readonly tls?: WireTlsOptions;
  /** The admin token, sent as `Authorization: Bearer` on /admin routes. */
  readonly token?: string;
  /** Sent as X-Manatee-Operator on /admin routes, so that the sitter's log says who acted. */
  readonly operator?: string;
  readonly responseBytesMax?: number;
}

/** Enough of a SitterStatus's shape for a reader (GET /shard's report) to read it without tripping. */
function looksLikeStatus(v: unknown): v is SitterStatus {
  const s = v as Partial<Record<keyof SitterStatus, unknown>> | null;
  if (typeof s !== 'object' || s === null) return false;
  const peer = s.peer as { id?: unknown } | null | undefined;
  const pg = s.postgres as { online?: unknown } | null | undefined;
  return typeof peer?.id === 'string' && typeof pg?.online === 'boolean' && Array.isArray(s.replication) && typeof s.rebuild === 'object' && s.rebuild !== null;
}

/** {state, version}, with a state that has the fields a follower of the topology reads. */
export function isVersionedState(x: unknown): x is VersionedState {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as { state?: unknown; version?: unknown };
  if (typeof o.version !== 'number' || !Number.isInteger(o.version)) return false;
  if (o.state === null) return true;
  if (typeof o.state !== 'object') return false;
  const s = o.state as { generation?: unknown; primary?: { pgUrl?: unknown }; async?: unknown; deposed?: unknown };
  return typeof s.generation === 'number' && typeof s.primary?.pgUrl === 'string' && Array.isArray(s.async) && Array.isArray(s.deposed);
}

export class ApiClient {
  /** The base URL, without a trailing slash. */
  readonly baseUrl: string;

  constructor(private readonly opts: ApiClientOptions) {
    this.baseUrl = apiBaseUrl(opts.baseUrl);
  }

  private call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (path.startsWith('/admin/')) {
      if (this.opts.token !== undefined) headers['authorization'] = `Bearer ${this.opts.token}`;
      if (this.opts.operator !== undefined) headers['x-manatee-operator'] = this.opts.operator;
    }
    return requestJson({
      method, baseUrl: this.baseUrl, path, headers, body, timeoutMs: this.opts.timeoutMs,
      responseBytesMax: this.opts.responseBytesMax ?? API_RESPONSE_BYTES_MAX,
      ...(this.opts.tls !== undefined ? { tls: this.opts.tls } : {}),
    });
  }

  /** A call whose answer is checked for `shape`: a WireError (MANATEE_ERR_BAD_RESPONSE) naming `what` when it fails. */
  private async checked<T>(path: string, what: string, shape: (v: unknown) => v is T): Promise<T> {
    const v = await this.call('GET', path);
    if (!shape(v)) throw new WireError(WIRE_ERR.badResponse, `${this.baseUrl}${path} answered JSON that is not ${what}`, { status: 200 });
    return v;
  }

  // ---- reads (no token) ----

  status(): Promise<SitterStatus> {
    return this.checked('/status', 'a sitter status', looksLikeStatus);
  }

  async shard(): Promise<ShardReport> {
    return (await this.call('GET', '/shard')) as ShardReport;
  }

  /** The committed state, a linearizable read (a peer without a Raft leader refuses it). */
  state(): Promise<VersionedState> {
    return this.checked('/state', '{state, version}', isVersionedState);
  }

  async history(limit: number): Promise<readonly HistoryEntry[]> {
    return ((await this.call('GET', `/history?limit=${limit}`)) as { history: HistoryEntry[] }).history;
  }

  async peers(): Promise<readonly PeerInfo[]> {
    return ((await this.call('GET', '/peers')) as { peers: PeerInfo[] }).peers;
  }

  async members(): Promise<RaftMembers> {
    return (await this.call('GET', '/members')) as RaftMembers;
  }

  async config(): Promise<WireVersionedSettings> {
    return (await this.call('GET', '/config')) as WireVersionedSettings;
  }

  /** The peer's pg_settings catalog (GET /pg-settings). */
  async pgSettings(): Promise<readonly WirePgSettingRow[]> {
    const isRows = (v: unknown): v is { rows: WirePgSettingRow[] } => Array.isArray((v as { rows?: unknown } | null)?.rows);
    return (await this.checked('/pg-settings', '{rows}', isRows)).rows;
  }

  // ---- admin writes (the token) ----

  async freeze(reason: string): Promise<AdminResult> {
    return (await this.call('POST', '/admin/freeze', { reason })) as AdminResult;
  }

  async unfreeze(): Promise<AdminResult> {
    return (await this.call('POST', '/admin/unfreeze', {})) as AdminResult;
  }

  async promote(peerId: string, expireMs?: number, at?: string): Promise<AdminResult> {
    const body = { peerId, ...(expireMs === undefined ? {} : { expireMs }), ...(at === undefined ? {} : { at }) };
    return (await this.call('POST', '/admin/promote', body)) as AdminResult;
  }

  async clearPromote(): Promise<AdminResult> {
    return (await this.call('POST', '/admin/clear-promote', {})) as AdminResult;
  }

  async scheduleRestart(input: { at: string; pending: boolean; peer?: string }): Promise<AdminResult> {
    return (await this.call('POST', '/admin/restart-schedule', input)) as AdminResult;
  }

  async clearRestart(): Promise<AdminResult> {
    return (await this.call('POST', '/admin/clear-restart', {})) as AdminResult;
  }

  async reap(peerId: string): Promise<AdminResult> {
    return (await this.call('POST', '/admin/reap', { peerId })) as AdminResult;
  }

  async rebuild(): Promise<RebuildResult> {
    return (await this.call('POST', '/admin/rebuild', {})) as RebuildResult;
  }

  async setOnwm(mode: OnwmMode): Promise<AdminResult> {
    return (await this.call('POST', '/admin/onwm', { mode })) as AdminResult;
  }

  async addPeer(id: string, address: string): Promise<MembershipResult> {
    return (await this.call('POST', '/admin/peers', { id, address })) as MembershipResult;
  }

  async removePeer(id: string): Promise<MembershipResult> {
    return (await this.call('POST', '/admin/peers/remove', { id })) as MembershipResult;
  }

  async reloadPostgres(): Promise<PgOpResult> {
    return (await this.call('POST', '/admin/reload-postgres', {})) as PgOpResult;
  }

  async restartPostgres(): Promise<PgOpResult> {
    return (await this.call('POST', '/admin/restart-postgres', {})) as PgOpResult;
  }

  /** The shard settings with every value whole, secret-looking ones too (GET /admin/config, the token). */
  async adminConfig(): Promise<WireVersionedSettings> {
    return (await this.call('GET', '/admin/config')) as WireVersionedSettings;
  }

  async changeConfig(input: SettingsChangeBody): Promise<WireSettingsResult> {
    return (await this.call('POST', '/admin/config', input)) as WireSettingsResult;
  }
}
