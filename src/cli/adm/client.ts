// manatee-adm's client of the shard: the typed API client (src/wire) on each of the peers' URLs
// in turn. Every failure has a stable code: the server's own code when it answered
// {error: {code, message}}, or one of src/wire's when it could not be reached, did not answer in
// time, or answered something that is not the API.
import { ManateeError, certificateProblem } from '../../errors.js';
import type { SitterStatus, HistoryEntry, PeerInfo } from '../../model/index.js';
import {
  ApiClient, WIRE_ERR, WireError, type AdminResult, type MembershipResult, type OnwmMode, type PgOpResult, type RaftMembers,
  type RebuildResult, type SettingsChangeBody, type ShardReport, type VersionedState, type WireSettingsResult, type WireVersionedSettings,
} from '../../wire/index.js';

export class AdmError extends ManateeError {}

/** A shard has a handful of peers; more URLs than this is a mistake. */
const URLS_MAX = 16;

export interface ClientOptions {
  /** One peer's API, or several separated by commas: the next is tried when one cannot be reached. */
  readonly url: string;
  readonly token?: string;
  readonly timeoutMs: number;
  /** Sent as X-Manatee-Operator, so that the sitter's log says who acted. */
  readonly operator?: string;
  /** The shard CA's certificate (PEM) that https peers must be signed by, and where it came from (for errors). */
  readonly ca?: { readonly pem: string; readonly source: string };
}

/** The base URL without a trailing slash; refuses what is not http(s). */
export function normalizeUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new AdmError('MANATEE_ERR_USAGE', `bad URL ${JSON.stringify(raw)}: expected http://host:port`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new AdmError('MANATEE_ERR_USAGE', `bad URL ${JSON.stringify(raw)}: expected http://host:port`);
  }
  return u.toString().replace(/\/+$/, '');
}

export class AdmClient {
  /** The peers' APIs in the order they are tried. */
  readonly urls: readonly string[];

  constructor(private readonly opts: ClientOptions) {
    const parts = opts.url.split(',').map((u) => u.trim()).filter((u) => u !== '');
    if (parts.length === 0) throw new AdmError('MANATEE_ERR_USAGE', 'no URL given: expected http://host:port');
    if (parts.length > URLS_MAX) throw new AdmError('MANATEE_ERR_USAGE', `at most ${URLS_MAX} URLs`);
    this.urls = parts.map(normalizeUrl);
  }

  /** The first URL, which answers unless it cannot be reached. */
  get url(): string {
    return this.urls[0]!;
  }

  /** `call` on the first peer that can be reached. */
  private async onAnyPeer<T>(call: (api: ApiClient) => Promise<T>, admin = false): Promise<T> {
    if (admin && (this.opts.token === undefined || this.opts.token === '')) {
      throw new AdmError('MANATEE_ERR_NO_TOKEN', 'this command needs the admin token: set MANATEE_ADMIN_TOKEN, or pass --token-file (or set MANATEE_ADMIN_TOKEN_FILE)');
    }
    const unreachable: string[] = [];
    const untrusted: string[] = [];
    for (const base of this.urls) {
      const api = new ApiClient({
        baseUrl: base, timeoutMs: this.opts.timeoutMs,
        // https: the peer's certificate is checked (issuer and host) against the CA given, else the system's.
        ...(this.opts.ca !== undefined ? { tls: { ca: this.opts.ca.pem } } : {}),
        ...(admin ? { token: this.opts.token } : {}),
        ...(admin && this.opts.operator !== undefined ? { operator: this.opts.operator } : {}),
      });
      try {
        return await call(api);
      } catch (err) {
        if (!(err instanceof WireError) || err.code !== WIRE_ERR.unreachable) throw err;
        // A certificate refused in the handshake: nothing was sent, so another peer may be asked.
        const problem = certificateProblem(err.cause);
        if (problem !== null) {
          untrusted.push(`${base}: ${problem}`);
          continue;
        }
        unreachable.push(`${base}: ${err.reason ?? err.message}`);
        // Only a failure to connect proves that the request was never delivered, so that another
        // peer may safely get it; after a reset, the change may have been made. (A timeout is
        // thrown as it is, for the same reason.)
        if (err.sent) break;
      }
    }
    if (untrusted.length > 0) {
      const ca = this.opts.ca;
      const hint = ca === undefined
        ? "give the shard's CA certificate with --ca FILE (or MANATEE_CA=FILE)"
        : `checked against the CA in ${ca.source}: is it this shard's CA (ca.crt of manatee-adm certs init), and does the peer's certificate list the host in the URL?`;
      throw new AdmError('MANATEE_ERR_TLS_UNTRUSTED', `refused the certificate of ${[...untrusted, ...unreachable].join('; ')}: ${hint}`);
    }
    throw new AdmError(WIRE_ERR.unreachable, `cannot reach the Manatee API at ${unreachable.join('; ')}`);
  }

  status(): Promise<SitterStatus> {
    return this.onAnyPeer((api) => api.status());
  }

  shard(): Promise<ShardReport> {
    return this.onAnyPeer((api) => api.shard());
  }

  members(): Promise<RaftMembers> {
    return this.onAnyPeer((api) => api.members());
  }

  addPeer(id: string, address: string): Promise<MembershipResult> {
    return this.onAnyPeer((api) => api.addPeer(id, address), true);
  }

  removePeer(id: string): Promise<MembershipResult> {
    return this.onAnyPeer((api) => api.removePeer(id), true);
  }

  state(): Promise<VersionedState> {
    return this.onAnyPeer((api) => api.state());
  }

  history(limit: number): Promise<readonly HistoryEntry[]> {
    return this.onAnyPeer((api) => api.history(limit));
  }

  peers(): Promise<readonly PeerInfo[]> {
    return this.onAnyPeer((api) => api.peers());
  }

  freeze(reason: string): Promise<AdminResult> {
    return this.onAnyPeer((api) => api.freeze(reason), true);
  }

  unfreeze(): Promise<AdminResult> {
    return this.onAnyPeer((api) => api.unfreeze(), true);
  }

  promote(peerId: string, expireMs?: number, at?: string): Promise<AdminResult> {
    return this.onAnyPeer((api) => api.promote(peerId, expireMs, at), true);
  }

  clearPromote(): Promise<AdminResult> {
    return this.onAnyPeer((api) => api.clearPromote(), true);
  }

  scheduleRestart(input: { at: string; pending: boolean; peer?: string }): Promise<AdminResult> {
    return this.onAnyPeer((api) => api.scheduleRestart(input), true);
  }

  clearRestart(): Promise<AdminResult> {
    return this.onAnyPeer((api) => api.clearRestart(), true);
  }

  reap(peerId: string): Promise<AdminResult> {
    return this.onAnyPeer((api) => api.reap(peerId), true);
  }

  rebuild(): Promise<RebuildResult> {
    return this.onAnyPeer((api) => api.rebuild(), true);
  }

  /** The same client (token, timeout, operator) for one peer's API. */
  forPeer(apiUrl: string): AdmClient {
    return new AdmClient({ ...this.opts, url: apiUrl });
  }

  reloadPostgres(): Promise<PgOpResult> {
    return this.onAnyPeer((api) => api.reloadPostgres(), true);
  }

  restartPostgres(): Promise<PgOpResult> {
    return this.onAnyPeer((api) => api.restartPostgres(), true);
  }

  /** Whether an admin token was given (changes need it; GET /config shows secret-looking values only with it). */
  get hasToken(): boolean {
    return this.opts.token !== undefined && this.opts.token !== '';
  }

  /**
   * The shard settings: with the token, every value whole (GET /admin/config); without, the public
   * GET /config, where a value that may hold a credential reads "[redacted]" (named in `redacted`).
   */
  config(): Promise<WireVersionedSettings> {
    return this.hasToken ? this.onAnyPeer((api) => api.adminConfig(), true) : this.onAnyPeer((api) => api.config());
  }

  changeConfig(input: SettingsChangeBody): Promise<WireSettingsResult> {
    return this.onAnyPeer((api) => api.changeConfig(input), true);
  }

  setOnwm(mode: OnwmMode): Promise<AdminResult> {
    return this.onAnyPeer((api) => api.setOnwm(mode), true);
  }
}
