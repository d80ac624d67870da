// manatee-tls-relay (src/backup/relay/manatee-tls-relay.c) run directly, on real TLS over
// 127.0.0.1: the stream arrives whole, and each of its error paths ends it with exit 1 and an E
// line that says why. The checks it shares with socat (CA, peer ids, plain TCP) are tested through
// the backup server in zfs-restore-tls.test.ts, with both programs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { execa, type ResultPromise } from 'execa';
import { builtRelayPath } from '../../src/backup/tls-relay.js';
import { makeTestCa, type TestCa } from '../helpers/certs.js';
import { waitFor } from '../../tools/lib/wait.js';
import type { TlsFiles } from '../../src/tls/index.js';

const RELAY = builtRelayPath();
let dir: string;
let a: TlsFiles;
let b: TlsFiles;
let ca: TestCa;
const started: ResultPromise[] = [];

function run(args: string[], input?: Buffer): ResultPromise<{ reject: false; encoding: 'buffer' }> {
  const p = execa(RELAY, args, { reject: false, encoding: 'buffer', ...(input !== undefined ? { input } : { stdin: 'pipe' }), timeout: 120_000 });
  started.push(p);
  return p;
}

/** A listener for peer b (stdin -> TLS), and its port once it logged it. */
async function listener(input?: Buffer): Promise<{ p: ReturnType<typeof run>; port: number; log: () => string }> {
  const p = run(['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile], input);
  let text = '';
  p.stderr.on('data', (c: Buffer) => { text += c.toString('utf8'); });
  const port = await waitFor('the relay to listen', () => Promise.resolve(/listening on AF=2 127\.0\.0\.1:(\d+)/.exec(text)?.[1] ?? null), { timeoutMs: 30_000 });
  return { p, port: Number(port), log: () => text };
}

const errorLine = (stderr: Uint8Array | string): string => (typeof stderr === 'string' ? stderr : Buffer.from(stderr).toString('utf8')).split('\n').find((l) => / E /.test(l)) ?? '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'manatee-relay-test-'));
  ca = await makeTestCa(join(dir, 'ca'));
  a = await ca.peer('a');
  b = await ca.peer('b');
});
afterAll(async () => {
  for (const p of started) p.kill('SIGKILL');
  await Promise.allSettled(started);
  await rm(dir, { recursive: true, force: true });
});

describe('manatee-tls-relay', () => {
  it('carries a stream whole from stdin to stdout over TLS 1.3, and both ends exit 0', async () => {
    const data = randomBytes(24 * 1024 * 1024 + 12345);
    const l = await listener(data);
    const c = await run(['connect', '127.0.0.1', String(l.port), 'a', b.certFile, b.keyFile, b.caFile]);
    const s = await l.p;
    expect(c.exitCode, errorLine(c.stderr) + Buffer.from(c.stderr).toString()).toBe(0);
    expect(s.exitCode, Buffer.from(s.stderr).toString()).toBe(0);
    expect(createHash('sha256').update(c.stdout).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(errorLine(c.stderr) + Buffer.from(c.stderr).toString()).toMatch(/N SSL connection using TLS_AES_/);
    expect(Buffer.from(s.stderr).toString()).toMatch(/N accepting connection from AF=2 127\.0\.0\.1:\d+ on AF=2 127\.0\.0\.1:\d+/);
  });

  it('the listener counts the stream with `count`: its transfer lines add up to the bytes sent', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const p = run(['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile, 'count'], data);
    let text = '';
    p.stderr.on('data', (ch: Buffer) => { text += ch.toString('utf8'); });
    const port = await waitFor('the relay to listen', () => Promise.resolve(/listening on AF=2 127\.0\.0\.1:(\d+)/.exec(text)?.[1] ?? null), { timeoutMs: 30_000 });
    const c = await run(['connect', '127.0.0.1', port, 'a', b.certFile, b.keyFile, b.caFile]);
    await p;
    expect(c.stdout.length).toBe(data.length);
    const counted = [...text.matchAll(/ I transferred (\d+) bytes from /g)].reduce((n, m) => n + Number(m[1]), 0);
    expect(counted).toBe(data.length);
  });

  it('a connection that ends without close_notify (the source killed mid-stream) is an error of the receiving end', async () => {
    const l = await listener();
    l.p.stdin.write(randomBytes(1024 * 1024));
    const c = run(['connect', '127.0.0.1', String(l.port), 'a', b.certFile, b.keyFile, b.caFile]);
    let got = 0;
    c.stdout.on('data', (ch: Buffer) => { got += ch.length; });
    await waitFor('the first bytes through', () => Promise.resolve(got >= 512 * 1024 ? true : null), { timeoutMs: 30_000 });
    l.p.kill('SIGKILL');
    const r = await c;
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toMatch(/SSL_read\(\): (the connection ended without TLS's close_notify|.*unexpected eof)/);
  });

  it('a reader that goes away is an error of the receiving end (write fails, no SIGPIPE death)', async () => {
    const l = await listener();
    const big = randomBytes(8 * 1024 * 1024);
    l.p.stdin.write(big);
    const c = execa(RELAY, ['connect', '127.0.0.1', String(l.port), 'a', b.certFile, b.keyFile, b.caFile], { reject: false, stdout: 'pipe', timeout: 120_000 });
    started.push(c);
    await new Promise<void>((resolve) => { c.stdout.once('data', () => { resolve(); }); });
    c.stdout.destroy();
    const r = await c;
    expect(r.signal).toBeUndefined();
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toMatch(/write\(1, \d+\): (Broken pipe|Connection reset)/);
    l.p.kill('SIGKILL');
  });

  it('plain TCP to the listener fails its handshake: exit 1, SSL_accept() in the E line', async () => {
    const l = await listener();
    const sock = netConnect({ host: '127.0.0.1', port: l.port });
    sock.on('error', () => undefined);
    sock.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    const r = await l.p;
    sock.destroy();
    expect(r.exitCode).toBe(1);
    expect(errorLine(r.stderr)).toMatch(/SSL_accept\(\): .*http request|SSL_accept\(\): .*wrong version number/);
  });

  it('refuses its arguments when they are not its usage, a bind address that is no address, a host that does not resolve, a key of another certificate, a certificate file that is missing', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['listen', '127.0.0.1'], /usage: manatee-tls-relay listen/],
      [['nonsense', '1', '2', '3', '4', '5', '6'], /usage: manatee-tls-relay/],
      [['listen', 'not-an-address', 'b', a.certFile, a.keyFile, a.caFile], /bind address "not-an-address" is not an IPv4 or IPv6 address/],
      [['listen', '192.0.2.1', 'b', a.certFile, a.keyFile, a.caFile], /bind\(192\.0\.2\.1\): Cannot assign requested address/],
      [['connect', 'no-such-host.invalid', '1', 'a', b.certFile, b.keyFile, b.caFile], /getaddrinfo\("no-such-host\.invalid"\)/],
      [['connect', '127.0.0.1', '1', 'a', b.certFile, a.keyFile, b.caFile], /the key does not match the certificate|SSL_CTX_use_PrivateKey_file/],
      [['connect', '127.0.0.1', '1', 'a', join(dir, 'missing.crt'), b.keyFile, b.caFile], /SSL_CTX_use_certificate_chain_file\(".*missing\.crt"\)/],
      [['connect', '127.0.0.1', '1', 'a', b.certFile, b.keyFile, join(dir, 'missing-ca.crt')], /SSL_CTX_load_verify_locations\(".*missing-ca\.crt"\)/],
      [['connect', '127.0.0.1', '1', 'a', b.certFile, b.keyFile, b.caFile], /connect\(AF=2 127\.0\.0\.1:1\): Connection refused/],
    ];
    for (const [args, why] of cases) {
      const r = await run(args);
      expect(r.exitCode, args.join(' ')).toBe(1);
      expect(errorLine(r.stderr), args.join(' ')).toMatch(why);
    }
  });

  it('the client refuses a server whose certificate does not name the address dialled, even when it is the peer it expects', async () => {
    const x = await ca.peer('x', ['10.9.9.9']);
    const p = run(['listen', '127.0.0.1', 'b', x.certFile, x.keyFile, x.caFile]);
    let text = '';
    p.stderr.on('data', (ch: Buffer) => { text += ch.toString('utf8'); });
    const port = await waitFor('the relay to listen', () => Promise.resolve(/listening on AF=2 127\.0\.0\.1:(\d+)/.exec(text)?.[1] ?? null), { timeoutMs: 30_000 });
    const c = await run(['connect', '127.0.0.1', port, 'x', b.certFile, b.keyFile, b.caFile]);
    expect(c.exitCode).toBe(1);
    expect(c.stdout.length).toBe(0);
    expect(errorLine(c.stderr)).toMatch(/SSL_connect\(\): .*certificate verify failed \(the other side's certificate: IP address mismatch\)/);
    expect((await p).exitCode).toBe(1);
  });
});
