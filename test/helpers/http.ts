// HTTP exchanges of the API tests over node:http (every method, HEAD and OPTIONS included, raw
// bodies as sent), and the API's error contract.
import { request, type IncomingHttpHeaders } from 'node:http';
import { expect } from 'vitest';

export interface HttpAnswer {
  status: number;
  /** The parsed JSON body, or null when it is empty or not JSON. */
  body: any;
  text: string;
  headers: IncomingHttpHeaders;
}

export interface HttpCallOptions {
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Sent as is (malformed JSON, binary). */
  readonly raw?: string | Buffer;
  /** A bearer token; null or absent: no authorization header. */
  readonly token?: string | null;
  readonly headers?: Record<string, string>;
  readonly timeoutMs?: number;
}

/** One exchange. A JSON body gets content-type application/json unless a header says otherwise. */
export function httpCall(method: string, url: string, opts: HttpCallOptions = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token !== undefined && opts.token !== null) headers['authorization'] = `Bearer ${opts.token}`;
    const payload = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    if (payload !== undefined) headers['content-type'] ??= 'application/json';
    const req = request(url, { method, headers, timeout: opts.timeoutMs ?? 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = null;
        try {
          body = text === '' ? null : JSON.parse(text);
        } catch {
          body = null;
        }
        resolve({ status: res.statusCode ?? 0, body, text, headers: res.headers });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${opts.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** The API's error contract: the status, a stable code, and a non-empty message (matching `message` when given). */
export function expectApiError(a: { status: number; body: any }, status: number, code: string, message?: RegExp): void {
  expect({ status: a.status, code: a.body?.error?.code }).toEqual({ status, code });
  expect(typeof a.body.error.message).toBe('string');
  expect(a.body.error.message.length).toBeGreaterThan(0);
  if (message !== undefined) expect(a.body.error.message).toMatch(message);
}
