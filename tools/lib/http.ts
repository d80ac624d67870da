// One JSON exchange with a peer's API, for the tools. node:http rather than fetch(): fetch
// refuses the browser's "bad ports" (6000, 6665-6669, 10080...), which a dev shard with its own
// port base may use.
import { request, type Agent, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface JsonAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** Rejects when the peer cannot be reached or does not answer within `timeoutMs`. */
export function httpJson(
  url: string,
  opts: { method?: 'GET' | 'POST'; body?: unknown; token?: string; timeoutMs?: number; /** The shard CA (PEM) an https peer is checked against. */ ca?: string } = {},
): Promise<JsonAnswer> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
    const reqOpts = { method: opts.method ?? 'GET', headers, timeout: opts.timeoutMs ?? 3000 };
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
        } catch {
          reject(new Error(`${url} answered HTTP ${res.statusCode ?? '?'} with something that is not JSON`));
        }
      });
      res.on('error', reject);
    };
    const req = url.startsWith('https:') ? httpsRequest(url, opts.ca === undefined ? reqOpts : { ...reqOpts, ca: opts.ca }, onResponse) : request(url, reqOpts, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${opts.timeoutMs ?? 3000} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The `{error: {code, message}}` of an API answer as one line, or the HTTP status. */
export function apiErrorText(a: JsonAnswer): string {
  const e = (a.body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return typeof e?.code === 'string' && typeof e.message === 'string' ? `${e.code}: ${e.message}` : `HTTP ${a.status}`;
}

/**
 * A POST of a ready-made body on `agent`'s kept-alive connections, answering the status and the body as
 * text: for benchmarks, where a request's own cost should stay small and JSON parsing is the caller's.
 */
export function bodyPoster(agent: Agent): (url: string, body: string) => Promise<{ status: number; body: string }> {
  return (url, body) => new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }); });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
