// One JSON exchange with a peer's API over node:http(s), bounded in time and size. node:http
// rather than fetch(): fetch refuses the "bad ports" of the browser world (6000, 6665-6669,
// 10080...), which a peer's API may well listen on. Every failure is a WireError.
import http from 'node:http';
import https from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { certificateProblem, errorMessage } from '../errors.js';
import { WIRE_ERR, WireError } from './errors.js';

/** TLS towards a peer: the CA that must have issued its certificate, and a client certificate to present. */
export interface WireTlsOptions {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  /** Replaces node's check of the server's certificate against the host dialled (src/tls peerServerIdentity adds the peer id). */
  readonly checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
}

export interface WireRequest {
  readonly method: 'GET' | 'POST';
  /** The API's base URL (http(s)://host:port). */
  readonly baseUrl: string;
  /** The route with its query string: /status, /history?limit=10. */
  readonly path: string;
  readonly timeoutMs: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** With an https URL: TLS 1.3, this CA and this client certificate (absent: the system's CAs, any TLS version node accepts). */
  readonly tls?: WireTlsOptions;
  /** Largest answer read. */
  readonly responseBytesMax: number;
}

type ServerCheck = NonNullable<WireTlsOptions['checkServerIdentity']>;
const checkedAgents = new WeakMap<ServerCheck, https.Agent>();

/** The keep-alive agent of the connections made under `check` (as node's global agent: keep-alive, lifo, 5 s). */
function agentFor(check: ServerCheck): https.Agent {
  let agent = checkedAgents.get(check);
  if (agent === undefined) {
    agent = new https.Agent({ keepAlive: true, scheduling: 'lifo', timeout: 5000 });
    checkedAgents.set(check, agent);
  }
  return agent;
}

/** Errors of a connection that was never made: the request was not delivered. */
const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

/** The system's word for a network error (ECONNREFUSED...), else its message. */
function reasonOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : errorMessage(err);
}

/** The base URL without a trailing slash; a WireError when it is not an http(s) URL. */
export function apiBaseUrl(raw: string): string {
  let u: URL | null = null;
  try {
    u = new URL(raw);
  } catch {
    // reported below
  }
  if (u === null || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
    throw new WireError(WIRE_ERR.badUrl, `bad API URL ${JSON.stringify(raw)}: expected http://host:port or https://host:port`, { sent: false });
  }
  return u.toString().replace(/\/+$/, '');
}

function exchange(r: WireRequest, target: URL, payload: string | undefined): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json', ...r.headers };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const req = target.protocol === 'https:'
      ? https.request(target, {
        method: r.method, headers, ...(r.tls !== undefined ? { ...r.tls, minVersion: 'TLSv1.3' as const } : {}),
        // An agent pools connections by CA and certificates, not by this check: a kept-alive
        // connection made under another check (another peer's) would be reused without it. So each
        // check has an agent of its own.
        ...(r.tls?.checkServerIdentity !== undefined ? { agent: agentFor(r.tls.checkServerIdentity) } : {}),
      })
      : http.request(target, { method: r.method, headers });
    const fail = (err: WireError): void => {
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(new WireError(WIRE_ERR.timeout, `no answer from ${r.baseUrl} within ${r.timeoutMs} ms (${r.method} ${r.path})`));
    }, r.timeoutMs);
    req.on('error', (err) => {
      const reason = reasonOf(err);
      // Only a failure to connect (or a certificate refused in the handshake) proves that the request was never delivered.
      const sent = !CONNECT_ERRORS.has(reason) && certificateProblem(err) === null;
      fail(new WireError(WIRE_ERR.unreachable, `cannot reach ${r.baseUrl}: ${certificateProblem(err) ?? reason}`, { sent, reason, cause: err }));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let sizeBytes = 0;
      res.on('data', (chunk: Buffer) => {
        sizeBytes += chunk.length;
        if (sizeBytes > r.responseBytesMax) {
          fail(new WireError(WIRE_ERR.badResponse, `the answer from ${target.href} is larger than ${r.responseBytesMax} bytes`, { status: res.statusCode ?? null }));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (err) => {
        fail(new WireError(WIRE_ERR.unreachable, `the answer from ${r.baseUrl} broke off: ${reasonOf(err)}`, { reason: reasonOf(err), cause: err }));
      });
    });
    req.end(payload);
  });
}

/**
 * The parsed body of a 2xx answer. A non-2xx answer is a WireError with the API's code and
 * message ({error: {code, message}}) and its status; anything else that goes wrong is a WireError
 * with a code of WIRE_ERR.
 */
export async function requestJson(r: WireRequest): Promise<unknown> {
  const target = new URL(`${apiBaseUrl(r.baseUrl)}${r.path}`);
  const res = await exchange(r, target, r.body === undefined ? undefined : JSON.stringify(r.body));
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.text);
  } catch {
    throw new WireError(WIRE_ERR.badResponse, `${target.href} answered HTTP ${res.status} with something that is not JSON: is this a Manatee API?`, { status: res.status });
  }
  if (res.status < 200 || res.status > 299) {
    const e = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (typeof e?.code === 'string' && typeof e.message === 'string') throw new WireError(e.code, e.message, { status: res.status });
    throw new WireError(WIRE_ERR.badResponse, `${target.href} answered HTTP ${res.status} without an error code`, { status: res.status });
  }
  return parsed;
}
