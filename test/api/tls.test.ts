// The API over HTTPS (issue #14): TLS 1.3 with the peer's certificate. Clients check it against
// the shard's CA; plain HTTP and older TLS are refused. The backup routes (the streams of a
// peer's data) also require a client certificate of the shard's CA bound to the peer they serve.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type RequestOptions } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../../src/api/server.js';
import { fetchPeerStatusHttp } from '../../src/api/shard.js';
import { backupRoutes, SECRET_HEADER } from '../../src/backup/index.js';
import { peerServerIdentity, ReloadableTls, type TlsFiles } from '../../src/tls/index.js';
import { Zfs } from '../../src/zfs/index.js';
import { silentLogger } from '../../src/log.js';
import { MemoryStore, memoryDeps, peer, threePeerState } from '../../tools/lib/memory-peer.js';
import { expiredPeerCert, makeTestCa, type TestCa } from '../helpers/certs.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';

const SECRET = 'backup-secret-0123456789';
let tmp: { path: string; cleanup: () => Promise<void> };
let ca: TestCa;
let otherCa: TestCa;
let app: FastifyInstance;
let port: number;
let tlsSet: ReloadableTls;

beforeAll(async () => {
  tmp = await makeTmpDir('api-tls');
  [ca, otherCa] = await Promise.all([makeTestCa(join(tmp.path, 'ca')), makeTestCa(join(tmp.path, 'other'), 'Another CA')]);
  tlsSet = await ReloadableTls.open(await ca.peer('a'), { expectedPeerId: 'a', log: silentLogger() });
  const peers = ['a', 'b', 'c'].map((id) => peer(id));
  const store = new MemoryStore(threePeerState(peers), peers);
  const log = silentLogger();
  const base = memoryDeps({ self: peers[0]!, store });
  app = await createApi({
    ...base,
    // As the sitter does: its status carries the certificate's expiry.
    status: async () => ({ ...(await base.status()), tls: tlsSet.status() }),
    tls: tlsSet,
    extraPlugins: [async (a: FastifyInstance) => { await a.register(backupRoutes, { zfs: new Zfs({ log }), dataset: 'none/none', secret: SECRET, log, requirePeerCertificate: true }); }],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
});

afterAll(async () => {
  await app.close();
  await tmp.cleanup();
});

function clientOf(files: TlsFiles): { ca: string; cert: string; key: string } {
  return { ca: readFileSync(ca.caFile, 'utf8'), cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') };
}

type Answer = { status: number; body: { code?: string; message?: string }; protocol: string | null };

function call(path: string, opts: Omit<RequestOptions, 'headers'> & { headers?: Record<string, string>; body?: unknown } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const req = httpsRequest({
      host: '127.0.0.1', port, path, method: opts.method ?? 'GET', ca: readFileSync(ca.caFile, 'utf8'), timeout: 10_000, ...opts,
      headers: { ...(opts.headers ?? {}), ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
    }, (res) => {
      const protocol = (res.socket as unknown as TLSSocket).getProtocol();
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : JSON.parse(text) as Answer['body'], protocol }); });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(payload);
  });
}

describe('the API over HTTPS', () => {
  it('serves TLS 1.3 with the peer certificate, checked against the shard CA', async () => {
    const r = await call('/status');
    expect(r.status).toBe(200);
    expect(r.protocol).toBe('TLSv1.3');
    // The sitters' own client (GET /shard asks the others' /status) checks it the same way.
    const s = await fetchPeerStatusHttp(`https://127.0.0.1:${port}`, 10_000, clientOf(await ca.peer('b')));
    expect(s.peer.id).toBe('a');
  });

  it('shows the certificate\'s expiry in /status and /metrics', async () => {
    const r = await call('/status');
    const st = (r.body as { tls?: { peerId: string; expiresInSeconds: number; caExpiresInSeconds: number; reloadError: unknown } }).tls;
    expect(st?.peerId).toBe('a');
    expect(st?.reloadError).toBeNull();
    // Issued for 730 days a moment ago.
    expect(st!.expiresInSeconds).toBeGreaterThan(729 * 86_400);
    expect(st!.expiresInSeconds).toBeLessThanOrEqual(730 * 86_400);
    const text = await new Promise<string>((resolve, reject) => {
      httpsRequest({ host: '127.0.0.1', port, path: '/metrics', ca: readFileSync(ca.caFile, 'utf8') }, (res) => {
        let t = '';
        res.on('data', (c: Buffer) => { t += c.toString(); });
        res.on('end', () => { resolve(t); });
      }).on('error', reject).end();
    });
    const m = /^manatee_tls_certificate_expiry_seconds\{certificate="cert"\} (\d+)$/m.exec(text);
    expect(Number(m?.[1])).toBeGreaterThan(729 * 86_400);
    expect(text).toMatch(/^manatee_tls_certificate_expiry_seconds\{certificate="ca"\} \d+$/m);
    expect(text).toMatch(/^manatee_tls_reload_failed 0$/m);
  });

  it('refuses plain HTTP', async () => {
    const err = await new Promise<Error>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/status', timeout: 10_000 }, () => { resolve(new Error('answered over plain HTTP')); });
      req.on('error', resolve);
      req.end();
    });
    expect(err.message).toMatch(/socket hang up|ECONNRESET/);
  });

  it('a client that trusts another CA refuses the server', async () => {
    await expect(fetchPeerStatusHttp(`https://127.0.0.1:${port}`, 10_000, { ...clientOf(await otherCa.peer('b')), ca: readFileSync(otherCa.caFile, 'utf8') }))
      .rejects.toThrow(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to verify/);
  });

  it('a client refuses a server whose certificate has expired, or names another host than the one dialled', async () => {
    // A server as a peer's API would be with such a certificate (the sitter itself refuses to start with one).
    const serveWith = async (files: TlsFiles): Promise<{ url: string; close: () => Promise<void> }> => {
      const server = createHttpsServer({ cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8'), minVersion: 'TLSv1.3' }, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
      await new Promise<void>((r) => { server.listen(0, '127.0.0.1', r); });
      return { url: `https://127.0.0.1:${(server.address() as { port: number }).port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => { r(); }); }) };
    };
    const client = clientOf(await ca.peer('b'));
    const expired = await serveWith(await expiredPeerCert(ca, 'c', join(tmp.path, 'expired-server')));
    const elsewhere = await serveWith(await ca.peer('elsewhere', ['10.99.0.1', 'elsewhere.example.net']));
    try {
      await expect(fetchPeerStatusHttp(expired.url, 10_000, client)).rejects.toThrow(/certificate has expired \(CERT_HAS_EXPIRED\)/);
      await expect(fetchPeerStatusHttp(elsewhere.url, 10_000, client)).rejects.toThrow(/does not name the host dialled/);
      // The peer-id check keeps the host check: the right peer's certificate for another host is still refused.
      await expect(fetchPeerStatusHttp(elsewhere.url, 10_000, { ...client, checkServerIdentity: peerServerIdentity('elsewhere') })).rejects.toThrow(/does not name the host dialled/);
    } finally {
      await Promise.all([expired.close(), elsewhere.close()]);
    }
  });

  it('a sitter asking peer b refuses an API that shows another peer\'s certificate (a, on the same host), and takes a\'s as a\'s', async () => {
    const asking = clientOf(await ca.peer('b'));
    await expect(fetchPeerStatusHttp(`https://127.0.0.1:${port}`, 10_000, { ...asking, checkServerIdentity: peerServerIdentity('b') }))
      .rejects.toThrow(/its certificate is not the peer's it was asked for \(the server's certificate is bound to peer "a", not to "b", the peer dialled\)/);
    expect((await fetchPeerStatusHttp(`https://127.0.0.1:${port}`, 10_000, { ...asking, checkServerIdentity: peerServerIdentity('a') })).peer.id).toBe('a');
  });

  it('refuses TLS older than 1.3', async () => {
    await expect(call('/status', { maxVersion: 'TLSv1.2' })).rejects.toThrow(/protocol|version/i);
  });
});

describe('backup routes over HTTPS need a peer certificate', () => {
  const headers = { [SECRET_HEADER]: SECRET };

  it('without a client certificate: 403', async () => {
    const r = await call('/backup/jobs/00000000-0000-4000-8000-000000000000', { headers });
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('MANATEE_ERR_BACKUP_PEER_CERTIFICATE');
  });

  it('with a certificate of another CA: 403', async () => {
    const other = await otherCa.peer('b');
    const r = await call('/backup/jobs/00000000-0000-4000-8000-000000000000', { headers, cert: readFileSync(other.certFile, 'utf8'), key: readFileSync(other.keyFile, 'utf8') });
    expect(r.status).toBe(403);
    expect(r.body.message).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('with an expired certificate: 403', async () => {
    const expired = await expiredPeerCert(ca, 'b', join(tmp.path, 'expired'));
    const r = await call('/backup/jobs/00000000-0000-4000-8000-000000000000', { headers, cert: readFileSync(expired.certFile, 'utf8'), key: readFileSync(expired.keyFile, 'utf8') });
    expect(r.status).toBe(403);
    expect(r.body.message).toContain('CERT_HAS_EXPIRED');
  });

  it('a job for another peer than the certificate names: 403', async () => {
    const r = await call('/backup/jobs', { method: 'POST', headers, ...clientOf(await ca.peer('c')), body: { peerId: 'b', fromSnapshots: [] } });
    expect(r.status).toBe(403);
    expect(r.body).toEqual({ code: 'MANATEE_ERR_BACKUP_PEER_CERTIFICATE', message: 'a job for peer b asked with the certificate of peer c' });
  });

  it('a malformed job id: 400 naming the id and what is expected (not a 500)', async () => {
    for (const path of ['/backup/jobs/not-a-uuid', '/backup/jobs/not-a-uuid/stream']) {
      const r = await call(path, { headers, ...clientOf(await ca.peer('b')) });
      expect({ path, status: r.status, body: r.body }).toEqual({ path, status: 400, body: { code: 'MANATEE_ERR_BACKUP_BAD_REQUEST', message: expect.stringMatching(/^params\.id: must match format "uuid"$/) as unknown } });
    }
    const body = await call('/backup/jobs', { method: 'POST', headers, ...clientOf(await ca.peer('b')), body: { peerId: 'b', fromSnapshots: 'all' } });
    expect({ status: body.status, body: body.body }).toEqual({ status: 400, body: { code: 'MANATEE_ERR_BACKUP_BAD_REQUEST', message: 'body.fromSnapshots: must be array' } });
  });

  it('with the peer certificate: the request goes through to the route', async () => {
    const r = await call('/backup/jobs/00000000-0000-4000-8000-000000000000', { headers, ...clientOf(await ca.peer('b')) });
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('MANATEE_ERR_BACKUP_JOB_NOT_FOUND');
  });
});
