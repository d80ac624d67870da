// The typed API client (src/wire) against real HTTP servers on 127.0.0.1 that misbehave: every
// failure is a WireError with a stable code, and the API's own code when it answered one.
import { afterEach, describe, expect, it } from 'vitest';
import { closeTestServer, serveTest as serve } from '../helpers/http-server.js';
import { ApiClient, WIRE_ERR, WireError, requestJson } from '../../src/wire/index.js';

afterEach(closeTestServer);

async function failure(p: Promise<unknown>): Promise<WireError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(WireError);
  return err as WireError;
}

describe('the typed API client', () => {
  it('sends the admin token and the operator on /admin routes only, with the body as JSON', async () => {
    const seen: { url: string | undefined; auth: string | undefined; operator: string | undefined; body: string }[] = [];
    const url = await serve((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        seen.push({ url: req.url, auth: req.headers.authorization, operator: req.headers['x-manatee-operator'] as string | undefined, body });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ voters: ['a'], learners: [], addresses: {}, summary: 'frozen', state: null, version: 3 }));
      });
    });
    const api = new ApiClient({ baseUrl: `${url}/`, timeoutMs: 5000, token: 'tok', operator: 'alice' });
    expect((await api.members()).voters).toEqual(['a']);
    expect((await api.freeze('maintenance')).version).toBe(3);
    expect(seen).toEqual([
      { url: '/members', auth: undefined, operator: undefined, body: '' },
      { url: '/admin/freeze', auth: 'Bearer tok', operator: 'alice', body: '{"reason":"maintenance"}' },
    ]);
  });

  it('a non-2xx answer with the API\'s error is a WireError with its code, message and status', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(409, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'MANATEE_ERR_FROZEN', message: 'the cluster is frozen' } }));
    });
    const err = await failure(new ApiClient({ baseUrl: url, timeoutMs: 5000 }).unfreeze());
    expect(err).toMatchObject({ code: 'MANATEE_ERR_FROZEN', message: 'the cluster is frozen', status: 409 });
  });

  it('a non-2xx answer without a code, something that is not JSON, and JSON of the wrong shape are MANATEE_ERR_BAD_RESPONSE', async () => {
    let mode = 'no-code';
    const url = await serve((_req, res) => {
      if (mode === 'no-code') res.writeHead(503).end('{}');
      else if (mode === 'html') res.writeHead(200).end('<html></html>');
      else res.writeHead(200).end('{"peer": 1}');
    });
    const api = new ApiClient({ baseUrl: url, timeoutMs: 5000 });
    expect(await failure(api.status())).toMatchObject({ code: WIRE_ERR.badResponse, status: 503, message: `${url}/status answered HTTP 503 without an error code` });
    mode = 'html';
    expect(await failure(api.status())).toMatchObject({ code: WIRE_ERR.badResponse, message: expect.stringMatching(/answered HTTP 200 with something that is not JSON/) });
    mode = 'shape';
    expect(await failure(api.status())).toMatchObject({ code: WIRE_ERR.badResponse, message: `${url}/status answered JSON that is not a sitter status` });
    expect(await failure(api.state())).toMatchObject({ code: WIRE_ERR.badResponse, message: `${url}/state answered JSON that is not {state, version}` });
    expect(await failure(api.pgSettings())).toMatchObject({ code: WIRE_ERR.badResponse, message: `${url}/pg-settings answered JSON that is not {rows}` });
  });

  it('an answer larger than the limit is MANATEE_ERR_BAD_RESPONSE, not a growing buffer', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      for (let i = 0; i < 8; i++) res.write(chunk);
      res.end();
    });
    const err = await failure(new ApiClient({ baseUrl: url, timeoutMs: 10_000, responseBytesMax: 100 * 1024 }).shard());
    expect(err).toMatchObject({ code: WIRE_ERR.badResponse, message: `the answer from ${url}/shard is larger than ${100 * 1024} bytes` });
  });

  it('a peer that never answers is MANATEE_ERR_TIMEOUT after the deadline, and the request counts as sent', async () => {
    const url = await serve(() => { /* never answers */ });
    const err = await failure(new ApiClient({ baseUrl: url, timeoutMs: 300 }).status());
    expect(err).toMatchObject({ code: WIRE_ERR.timeout, sent: true, status: null, message: `no answer from ${url} within 300 ms (GET /status)` });
  });

  it('a refused connection is MANATEE_ERR_UNREACHABLE and not sent; a connection closed after the request is sent', async () => {
    const refused = await failure(new ApiClient({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 5000 }).status());
    expect(refused).toMatchObject({ code: WIRE_ERR.unreachable, sent: false, reason: 'ECONNREFUSED', message: 'cannot reach http://127.0.0.1:1: ECONNREFUSED' });
    const url = await serve((req) => { req.socket.destroy(); });
    const reset = await failure(new ApiClient({ baseUrl: url, timeoutMs: 5000 }).rebuild());
    expect(reset).toMatchObject({ code: WIRE_ERR.unreachable, sent: true, reason: 'ECONNRESET' });
  });

  it('a URL that is not http(s) is MANATEE_ERR_BAD_URL, before anything is sent', async () => {
    expect(() => new ApiClient({ baseUrl: 'ftp://x', timeoutMs: 1000 })).toThrow(expect.objectContaining({ code: WIRE_ERR.badUrl, message: 'bad API URL "ftp://x": expected http://host:port or https://host:port' }));
    expect(await failure(requestJson({ method: 'GET', baseUrl: 'not a url', path: '/status', timeoutMs: 1000, responseBytesMax: 1024 }))).toMatchObject({ code: WIRE_ERR.badUrl, sent: false });
  });
});
