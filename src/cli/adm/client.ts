// manatee-adm's HTTP client for a peer's API. Every failure becomes an AdmError with a stable
// code: the server's own code when it answered {error: {code, message}}, or one of ours when
// it could not be reached or answered something that is not the API.
import http from 'node:http';
import https from 'node:https';
import { ManateeError, certificateProblem, errorMessage } from '../../errors.js';
import type { SitterStatus, HistoryEntry, PeerInfo } from '../../model/index.js';
import type { AdminResult, MembershipResult, RaftMembers, RebuildResult, VersionedState } from '../../api/types.js';
import type { ShardReport } from '../../api/shard.js';
import type { OnwmMode } from '../../peer/admin.js';
import type { SettingsChangeInput } from '../../peer/settings-admin.js';
import type { SettingsResult } from '../../api/settings-ops.js';
import type { VersionedSettings } from '../../store/settings.js';
import type { PgOpResult } from '../../peer/pg-ops.js';

export class AdmError extends ManateeError {}

/** Largest answer read from a peer: a status or a full history page is far below it. */
const RESPONSE_BYTES_MAX = 16 * 1024 * 1024;
/** Errors that happen before anything is sent. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL']);
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

function causeText(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code; // ECONNREFUSED, ENOTFOUND, ECONNRESET...
  return errorMessage(err);
}

/**
 * One HTTP exchange with node:http rather than fetch(): fetch refuses the "bad ports" of the
 * browser world (6000, 6665-6669, 10080...), which a peer's API may well listen on.
 */
function send(
  method: string,
  target: string,
  headers: Record<string, string>,
  payload: string | undefined,
  timeoutMs: number,
  caPem: string | undefined,
): Promise<{ status: number; text: string } | 'timeout'> {
  return new Promise((resolve, reject) => {
    const u = new URL(target);
    const opts = { method, headers: payload === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(payload)) } };
    // https: the peer's certificate is checked (issuer and host) against the CA given, else the system's.
    const req = u.protocol === 'https:' ? https.request(u, caPem === undefined ? opts : { ...opts, ca: caPem }) : http.request(u, opts);
    const timer = setTimeout(() => {
      req.destroy();
      resolve('timeout');
    }, timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let sizeBytes = 0;
      res.on('data', (chunk: Buffer) => {
        sizeBytes += chunk.length;
        if (sizeBytes > RESPONSE_BYTES_MAX) {
          clearTimeout(timer);
          req.destroy();
          reject(new AdmError('MANATEE_ERR_BAD_RESPONSE', `the answer from ${target} is larger than ${RESPONSE_BYTES_MAX} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    req.end(payload);
  });
}

/** The body of an answer, or the AdmError it carries. */
function answer(target: string, res: { status: number; text: string }): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.text);
  } catch {
    throw new AdmError('MANATEE_ERR_BAD_RESPONSE', `${target} answered HTTP ${res.status} with something that is not JSON: is this a Manatee API?`);
  }
  if (res.status < 200 || res.status > 299) {
    const e = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (typeof e?.code === 'string' && typeof e.message === 'string') throw new AdmError(e.code, e.message);
    throw new AdmError('MANATEE_ERR_BAD_RESPONSE', `${target} answered HTTP ${res.status} without an error code`);
  }
  return parsed;
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

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, admin = false): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (admin) {
      if (this.opts.token === undefined || this.opts.token === '') {
        throw new AdmError('MANATEE_ERR_NO_TOKEN', 'this command needs the admin token: set MANATEE_ADMIN_TOKEN, or pass --token-file (or set MANATEE_ADMIN_TOKEN_FILE)');
      }
      headers['authorization'] = `Bearer ${this.opts.token}`;
      if (this.opts.operator !== undefined) headers['x-manatee-operator'] = this.opts.operator;
    }
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const unreachable: string[] = [];
    const untrusted: string[] = [];
    for (const base of this.urls) {
      const target = `${base}${path}`;
      let res: Awaited<ReturnType<typeof send>>;
      try {
        res = await send(method, target, headers, payload, this.opts.timeoutMs, this.opts.ca?.pem);
      } catch (err) {
        if (err instanceof AdmError) throw err;
        // A certificate refused in the handshake: nothing was sent, so another peer may be asked.
        const problem = certificateProblem(err);
        if (problem !== null) {
          untrusted.push(`${base}: ${problem}`);
          continue;
        }
        unreachable.push(`${base}: ${causeText(err)}`);
        // Only a failure to connect proves that the request was never delivered, so that another
        // peer may safely get it; after a reset, the change may have been made.
        if (CONNECT_ERRORS.has(causeText(err))) continue;
        break;
      }
      if (res === 'timeout') {
        // Delivered, maybe acted on: asking another peer could apply a change twice.
        throw new AdmError('MANATEE_ERR_TIMEOUT', `no answer from ${base} within ${this.opts.timeoutMs} ms (${method} ${path})`);
      }
      return answer(target, res) as T;
    }
    if (untrusted.length > 0) {
      const ca = this.opts.ca;
      const hint = ca === undefined
        ? "give the shard's CA certificate with --ca FILE (or MANATEE_CA=FILE)"
        : `checked against the CA in ${ca.source}: is it this shard's CA (ca.crt of manatee-adm certs init), and does the peer's certificate list the host in the URL?`;
      throw new AdmError('MANATEE_ERR_TLS_UNTRUSTED', `refused the certificate of ${[...untrusted, ...unreachable].join('; ')}: ${hint}`);
    }
    throw new AdmError('MANATEE_ERR_UNREACHABLE', `cannot reach the Manatee API at ${unreachable.join('; ')}`);
  }

  status(): Promise<SitterStatus> {
    return this.request('GET', '/status');
  }

  shard(): Promise<ShardReport> {
    return this.request('GET', '/shard');
  }

  members(): Promise<RaftMembers> {
    return this.request('GET', '/members');
  }

  addPeer(id: string, address: string): Promise<MembershipResult> {
    return this.request('POST', '/admin/peers', { id, address }, true);
  }

  removePeer(id: string): Promise<MembershipResult> {
    return this.request('POST', '/admin/peers/remove', { id }, true);
  }

  state(): Promise<VersionedState> {
    return this.request('GET', '/state');
  }

  async history(limit: number): Promise<readonly HistoryEntry[]> {
    return (await this.request<{ history: HistoryEntry[] }>('GET', `/history?limit=${limit}`)).history;
  }

  async peers(): Promise<readonly PeerInfo[]> {
    return (await this.request<{ peers: PeerInfo[] }>('GET', '/peers')).peers;
  }

  freeze(reason: string): Promise<AdminResult> {
    return this.request('POST', '/admin/freeze', { reason }, true);
  }

  unfreeze(): Promise<AdminResult> {
    return this.request('POST', '/admin/unfreeze', {}, true);
  }

  promote(peerId: string, expireMs?: number, at?: string): Promise<AdminResult> {
    return this.request('POST', '/admin/promote', { peerId, ...(expireMs === undefined ? {} : { expireMs }), ...(at === undefined ? {} : { at }) }, true);
  }

  clearPromote(): Promise<AdminResult> {
    return this.request('POST', '/admin/clear-promote', {}, true);
  }

  reap(peerId: string): Promise<AdminResult> {
    return this.request('POST', '/admin/reap', { peerId }, true);
  }

  rebuild(): Promise<RebuildResult> {
    return this.request('POST', '/admin/rebuild', {}, true);
  }

  /** The same client (token, timeout, operator) for one peer's API. */
  forPeer(apiUrl: string): AdmClient {
    return new AdmClient({ ...this.opts, url: apiUrl });
  }

  reloadPostgres(): Promise<PgOpResult> {
    return this.request('POST', '/admin/reload-postgres', {}, true);
  }

  restartPostgres(): Promise<PgOpResult> {
    return this.request('POST', '/admin/restart-postgres', {}, true);
  }

  config(): Promise<VersionedSettings> {
    return this.request('GET', '/config');
  }

  changeConfig(input: SettingsChangeInput): Promise<SettingsResult> {
    return this.request('POST', '/admin/config', input, true);
  }

  setOnwm(mode: OnwmMode): Promise<AdminResult> {
    return this.request('POST', '/admin/onwm', { mode }, true);
  }
}
