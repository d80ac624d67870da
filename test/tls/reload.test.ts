// A peer's certificate replaced on disk is taken by reload() (SIGHUP in the sitter) without a
// restart: new TLS connections get the new certificate, open ones keep going, and a bad new set is
// refused while the current one stays. TLS 1.3 is the floor.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { issuePeerCertificate, ReloadableTls, TLS_ERR } from '../../src/tls/index.js';
import { silentLogger } from '../../src/log.js';
import { makeTestCa, type TestCa } from '../helpers/certs.js';
import { makeTmpDir } from '../../tools/lib/tmp.js';

let tmp: { path: string; cleanup: () => Promise<void> };
let ca: TestCa;
let server: Server;
let port: number;
let tlsSet: ReloadableTls;
const open: TLSSocket[] = [];

beforeAll(async () => {
  tmp = await makeTmpDir('tls-reload');
  ca = await makeTestCa(join(tmp.path, 'ca'));
  const files = await ca.peer('a');
  tlsSet = await ReloadableTls.open(files, { expectedPeerId: 'a', log: silentLogger() });
  server = createServer({ ...tlsSet.material.options }, (s) => { s.pipe(s); });
  tlsSet.attach(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of open) s.destroy();
  await new Promise((r) => server.close(r));
  await tmp.cleanup();
});

/** A new connection that checks the server against the CA; resolves with the server's certificate fingerprint. */
function dial(opts: { maxVersion?: 'TLSv1.2' } = {}): Promise<{ socket: TLSSocket; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: tlsSet.material.options.ca, ...opts }, () => {
      open.push(socket);
      resolve({ socket, fingerprint: socket.getPeerX509Certificate()?.fingerprint256 ?? '' });
    });
    socket.on('error', reject);
  });
}

function echo(socket: TLSSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    socket.once('data', (d: Buffer) => { resolve(d.toString()); });
    socket.write(text);
  });
}

describe('ReloadableTls', () => {
  it('a replaced certificate is used by new connections after reload; open ones keep going', async () => {
    const first = await dial();
    const before = tlsSet.material.certificate.fingerprint256;
    expect(first.fingerprint).toBe(before);
    expect(await tlsSet.reload()).toBe('unchanged');

    await issuePeerCertificate({ dir: ca.dir, peerId: 'a', hosts: ['127.0.0.1'], force: true });
    // Not yet reloaded: a new connection still gets the old certificate.
    expect((await dial()).fingerprint).toBe(before);
    expect(await tlsSet.reload()).toBe('reloaded');
    const after = tlsSet.material.certificate.fingerprint256;
    expect(after).not.toBe(before);
    expect((await dial()).fingerprint).toBe(after);
    expect(await echo(first.socket, 'still here')).toBe('still here');
  });

  it('a bad new set is refused and the current certificate stays; the next good one is taken', async () => {
    const current = tlsSet.material.certificate.fingerprint256;
    const certFile = tlsSet.material.files.certFile;
    const saved = join(tmp.path, 'saved.crt');
    await copyFile(certFile, saved);
    // The operator copied another peer's certificate by mistake.
    await copyFile((await ca.peer('b')).certFile, certFile);
    expect(await tlsSet.reload()).toBe('failed');
    expect(tlsSet.status().reloadError).toMatchObject({ code: TLS_ERR.keyMismatch });
    expect((await dial()).fingerprint).toBe(current);
    await writeFile(certFile, 'truncated');
    expect(await tlsSet.reload()).toBe('failed');
    expect(tlsSet.status().reloadError).toMatchObject({ code: TLS_ERR.invalid });
    await copyFile(saved, certFile);
    expect(await tlsSet.reload()).toBe('unchanged');
    expect(tlsSet.status().reloadError).toBeNull();
  });

  it('reports when the certificate and the CA expire', () => {
    const s = tlsSet.status();
    expect(s.peerId).toBe('a');
    expect(s.subject).toBe('CN=a');
    expect(s.expiresInSeconds).toBeGreaterThan(729 * 86_400);
    expect(s.expiresInSeconds).toBeLessThanOrEqual(730 * 86_400);
    expect(s.caExpiresInSeconds).toBeGreaterThan(3649 * 86_400);
    expect(new Date(s.notAfter).getTime()).toBe(tlsSet.material.notAfter.getTime());
  });

  it('refuses a client that offers at most TLS 1.2', async () => {
    const err = await dial({ maxVersion: 'TLSv1.2' }).then(() => null, (e: unknown) => e as Error & { code?: string });
    expect(err?.code).toMatch(/ERR_SSL_(TLSV1_ALERT_PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|NO_PROTOCOLS_AVAILABLE)/);
  });
});
