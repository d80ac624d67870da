// Mutual TLS on the Raft transport (issue #14): each peer presents a certificate of the shard's CA
// bound to its id, and checks the other's. Refused: plain TCP, a certificate of another CA, an
// expired certificate, a hello that claims another peer than its certificate, and a server whose
// certificate names another peer than the one dialled. A certificate reloaded from disk serves the
// next connections.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { pino } from 'pino';
import { TcpTransport, encodeFrame, FRAME_HELLO, type PeerMessage, type TransportTls } from '../../src/raft/transport/index.js';
import type { Message } from '../../src/raft/core/types.js';
import { peerIdOf, ReloadableTls, type TlsFiles } from '../../src/tls/index.js';
import { silentLogger } from '../../src/log.js';
import { expiredPeerCert, makeTestCa, type TestCa } from '../helpers/certs.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { startFlood } from './flood.js';

const SECRET = 'shard-secret-0123456789';
let tmp: { path: string; cleanup: () => Promise<void> };
let ca: TestCa;
let otherCa: TestCa;
const open: TcpTransport[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  tmp = await makeTmpDir('raft-tls');
  [ca, otherCa] = await Promise.all([makeTestCa(join(tmp.path, 'ca')), makeTestCa(join(tmp.path, 'other-ca'), 'Another CA')]);
});
afterAll(async () => { await tmp.cleanup(); });
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const t of open.splice(0)) await t.close();
});

/** TLS files as they are, without the checks the sitter makes at start-up (to present bad ones). */
function tlsOf(files: TlsFiles, caFile = files.caFile): TransportTls {
  const options = { ca: readFileSync(caFile, 'utf8'), cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8'), minVersion: 'TLSv1.3' as const };
  const material = { options, context: createSecureContext(options) };
  return { current: () => material, onReload: () => () => undefined, peerIdOf };
}

async function node(id: string, port: number, peers: Record<string, string>, tls: TransportTls | undefined) {
  const got: PeerMessage[] = [];
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  const t = new TcpTransport({
    // The dial deadline is longer than the hello deadline, so that what a test sees refused is the
    // server's decision, not a client giving up first.
    id, secret: SECRET, listen: { host: '127.0.0.1', port }, peers, logger, helloTimeoutMs: 1000, connectTimeoutMs: 3000,
    handlers: { onMessages: (ms) => { got.push(...ms); } }, reconnectMinMs: 20, reconnectMaxMs: 200, ...(tls ? { tls } : {}),
  });
  await t.start();
  open.push(t);
  return { t, got, lines };
}

const hb = (from: string, to: string, term: number): Message => ({ type: 'heartbeat', from, to, term, commit: term });

/** `a` keeps sending to `b` until `b` refuses it (the refusal reason is returned) or 10 s pass. */
async function refusedBy(b: Awaited<ReturnType<typeof node>>, a: Awaited<ReturnType<typeof node>>): Promise<string> {
  const line = await waitFor('b refuses a', () => {
    a.t.send([hb('a', 'b', 1)]);
    return b.lines.find((l) => l['msg'] === 'raft transport refused connection');
  }, { timeoutMs: 20_000, intervalMs: 50 });
  expect(b.got).toEqual([]);
  expect(b.t.stats().connectionsAuthenticated).toBe(0);
  return String(line['reason']);
}

describe('Raft transport with mutual TLS', () => {
  it('peers with certificates of the shard CA talk both ways', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, tlsOf(await ca.peer('a')));
    const b = await node('b', pb, { a: `127.0.0.1:${pa}` }, tlsOf(await ca.peer('b')));
    await waitFor('a to b', () => { a.t.send([hb('a', 'b', 1)]); return b.got.length > 0; }, { timeoutMs: 20_000, intervalMs: 50 });
    await waitFor('b to a', () => { b.t.send([hb('b', 'a', 2)]); return a.got.length > 0; }, { timeoutMs: 20_000, intervalMs: 50 });
    expect(b.t.stats().authFailures).toBe(0);
  });

  it('refuses plain TCP: a client without TLS, and one that sends a hello in clear', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {}, tlsOf(await ca.peer('b')));
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, undefined);
    // The plain transport waits for a challenge that never comes; the hello deadline closes it.
    expect(await refusedBy(b, a)).toBe('no hello within 1000 ms');
    await a.t.close();
    const raw = netConnect({ host: '127.0.0.1', port: pb });
    sockets.push(raw);
    raw.on('error', () => undefined);
    raw.write(encodeFrame(FRAME_HELLO, JSON.stringify({ from: 'a', to: 'b', mac: '00' })));
    await waitFor('clear-text hello refused', () => b.lines.some((l) => String(l['reason']).startsWith('TLS handshake failed')), { timeoutMs: 20_000 });
  });

  it('refuses a certificate of another CA', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {}, tlsOf(await ca.peer('b')));
    // a trusts b's CA (so it goes as far as showing its own certificate), but its certificate is another CA's.
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, tlsOf(await otherCa.peer('a'), ca.caFile));
    expect(await refusedBy(b, a)).toBe('TLS: its certificate was refused: UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('refuses an expired certificate', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {}, tlsOf(await ca.peer('b')));
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, tlsOf(await expiredPeerCert(ca, 'a', join(tmp.path, 'expired'))));
    expect(await refusedBy(b, a)).toBe('TLS: its certificate was refused: CERT_HAS_EXPIRED');
  });

  it('refuses a hello that claims another peer than the certificate', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {}, tlsOf(await ca.peer('b')));
    // Node "a" holds c's certificate.
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, tlsOf(await ca.peer('c')));
    expect(await refusedBy(b, a)).toBe('hello claims peer a, but its certificate is bound to peer c');
  });

  it('a client refuses a server whose certificate names another peer than the one dialled', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    // What listens at b's address holds c's certificate.
    const b = await node('b', pb, {}, tlsOf(await ca.peer('c')));
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, tlsOf(await ca.peer('a')));
    const line = await waitFor('a refuses the server', () => {
      a.t.send([hb('a', 'b', 1)]);
      return a.lines.find((l) => l['msg'] === 'raft transport: connection to peer lost or refused, retrying with backoff' && l['reason'] !== undefined);
    }, { timeoutMs: 20_000, intervalMs: 50 });
    expect(String(line['reason'])).toContain("the server's certificate is bound to peer c, not to b");
    expect(b.got).toEqual([]);
  });

  it("a peer gets through a flood from its own address that keeps reopening: its ClientHello spares its slot", async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, { a: `127.0.0.1:${pa}` }, tlsOf(await ca.peer('b')));
    // 40 half-open sockets from 127.0.0.1, a's own address, reopened as soon as they are evicted:
    // five times the per-address cap of 8, so each newcomer evicts one of that address.
    const flood = startFlood(pb, { addresses: ['127.0.0.1'], socketsPerAddress: 40, reopen: true, reopenDelayMs: 5 });
    try {
      await waitFor('flood evicting', () => b.t.stats().connectionsEvicted >= 100, { timeoutMs: 30_000 });
      const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, tlsOf(await ca.peer('a')));
      await waitFor('the peer gets through', () => {
        a.t.send([hb('a', 'b', 1)]);
        return b.got.length > 0;
      }, { timeoutMs: 30_000, intervalMs: 50 });
      expect(b.t.stats().connectionsAuthenticated).toBe(1);
    } finally {
      flood.stop();
    }
  });

  it('a reloaded certificate serves the next connections', async () => {
    const dir = join(tmp.path, 'reload');
    const rca = await makeTestCa(dir, 'Reload CA');
    const files = await rca.peer('b');
    const set = await ReloadableTls.open(files, { expectedPeerId: 'b', log: silentLogger() });
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {}, set.forTransport());
    const before = set.material.certificate.fingerprint256;
    // A new certificate for b, copied over the files b was started with.
    const next = await makeTestCa(join(tmp.path, 'reload-next'), 'Reload CA next');
    const nf = await next.peer('b');
    await Promise.all([copyFile(nf.caFile, files.caFile), copyFile(nf.certFile, files.certFile), copyFile(nf.keyFile, files.keyFile)]);
    expect(await set.reload()).toBe('reloaded');
    expect(set.material.certificate.fingerprint256).not.toBe(before);
    // A peer of the new CA gets in; the server showed it the new certificate (a checks it against the new CA).
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, tlsOf(await next.peer('a')));
    await waitFor('delivery with the new certificate', () => { a.t.send([hb('a', 'b', 1)]); return b.got.length > 0; }, { timeoutMs: 20_000, intervalMs: 50 });
  });
});
