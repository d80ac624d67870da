// GET /shard's fetch of another peer's /status: bounded in time and size, and refusing answers
// that are not a sitter status, against real HTTP servers on 127.0.0.1 that misbehave.
import { afterEach, describe, expect, it } from 'vitest';
import { closeTestServer, serveTest as serve } from '../helpers/http-server.js';
import { fetchPeerStatusHttp } from '../../src/api/shard.js';
import { MemoryStore, peer, statusOf, threePeerState } from '../../tools/lib/memory-peer.js';

afterEach(closeTestServer);

describe('fetchPeerStatusHttp', () => {
  it('reads a sitter status', async () => {
    const status = statusOf(peer('b'), new MemoryStore(threePeerState([peer('a'), peer('b'), peer('c')]), []));
    const url = await serve((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(status)));
    expect((await fetchPeerStatusHttp(url, 2000)).peer.id).toBe('b');
  });

  it('gives up after its deadline on a peer that never answers', async () => {
    const url = await serve(() => { /* never answers */ });
    const t0 = Date.now();
    await expect(fetchPeerStatusHttp(url, 300)).rejects.toThrow(/no answer from http:\/\/127\.0\.0\.1:\d+ within 300 ms/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('refuses a non-200, something that is not JSON, JSON that is not a status, and a huge answer', async () => {
    let mode = 'error';
    const url = await serve((_req, res) => {
      if (mode === 'error') res.writeHead(503).end('{}');
      else if (mode === 'html') res.writeHead(200).end('<html></html>');
      else if (mode === 'other') res.writeHead(200).end('{"peer": 1}');
      else {
        res.writeHead(200);
        const chunk = Buffer.alloc(1024 * 1024, 'x');
        for (let i = 0; i < 6; i++) res.write(chunk);
        res.end();
      }
    });
    await expect(fetchPeerStatusHttp(url, 2000)).rejects.toThrow(/HTTP 503/);
    mode = 'html';
    await expect(fetchPeerStatusHttp(url, 2000)).rejects.toThrow(/not JSON/);
    mode = 'other';
    await expect(fetchPeerStatusHttp(url, 2000)).rejects.toThrow(/not a sitter status/);
    mode = 'huge';
    await expect(fetchPeerStatusHttp(url, 5000)).rejects.toThrow(/larger than/);
  });

  it('an unreachable peer and a bad URL are errors naming them', async () => {
    await expect(fetchPeerStatusHttp('http://127.0.0.1:1', 2000)).rejects.toThrow('cannot reach http://127.0.0.1:1: ECONNREFUSED');
    await expect(fetchPeerStatusHttp('not a url', 2000)).rejects.toThrow(/bad API URL/);
  });
});
