// manatee-tls-relay (src/backup/relay/manatee-tls-relay.c) run directly, the real binary on real
// TLS over 127.0.0.1, no zfs: the stream arrives whole; a stream cut without TLS's close_notify is a
// failure (exit 1, an E line), never a complete stream; plain TCP, garbage, TLS 1.2 and a client
// that hangs up mid-handshake are refused before a byte of the input is sent; and each other error
// path ends it with exit 1 and an E line that says why. The checks it shares with socat (CA, peer
// ids, plain TCP) are also tested through the backup server in zfs-restore-tls.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { execa } from 'execa';
import { builtRelayPath } from '../../src/backup/tls-relay.js';
import { handMadePeerCert, makeTestCa, type TestCa } from '../helpers/certs.js';
import { waitFor } from '../../tools/lib/wait.js';
import type { TlsFiles } from '../../src/tls/index.js';

let dir: string;
let ca: TestCa;
let a: TlsFiles;
let b: TlsFiles;
const started: ChildProcess[] = [];

beforeAll(async () => {
  await execa('bash', [fileURLToPath(new URL('../../tools/build-tls-relay.sh', import.meta.url))]);
  dir = await mkdtemp(join(tmpdir(), 'manatee-relay-test-'));
  ca = await makeTestCa(join(dir, 'ca'));
  a = await ca.peer('a');
  b = await ca.peer('b');
}, 120_000);
afterAll(async () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** One run of the relay: its log (stderr), what it wrote (stdout), its exit code and signal. */
interface Run { child: ChildProcess; log: () => string; out: () => Buffer; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }

function run(args: string[]): Run {
  const child = spawn(builtRelayPath(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  started.push(child);
  let log = '';
  const out: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => { log += c.toString('utf8'); });
  child.stdout.on('data', (c: Buffer) => { out.push(c); });
  child.stdin.on('error', () => undefined);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => { child.once('close', (code, signal) => { resolve({ code, signal }); }); });
  return { child, log: () => log, out: () => Buffer.concat(out), exit };
}

const code = async (r: Run): Promise<number | null> => (await r.exit).code;
const errorLine = (r: Run): string => r.log().split('\n').find((l) => / E /.test(l)) ?? '';

/** The source's end (stdin -> TLS), for peer b with `files` (peer a's by default); its port once it listens. */
async function listener(o: { files?: TlsFiles; extra?: string[] } = {}): Promise<{ l: Run; port: number }> {
  const f = o.files ?? a;
  const l = run(['listen', '127.0.0.1', 'b', f.certFile, f.keyFile, f.caFile, ...(o.extra ?? [])]);
  const port = await waitFor('the relay to listen', () => Promise.resolve(/listening on AF=2 127\.0\.0\.1:(\d+)/.exec(l.log())?.[1] ?? null), { timeoutMs: 30_000 });
  return { l, port: Number(port) };
}

/** The receiving end (TLS -> stdout), with peer b's certificate, expecting the source to be `peer`. */
const connector = (port: number, peer = 'a'): Run => run(['connect', '127.0.0.1', String(port), peer, b.certFile, b.keyFile, b.caFile]);

describe('manatee-tls-relay', () => {
  it('carries a stream whole from stdin to stdout over TLS 1.3, and both ends exit 0', async () => {
    const data = randomBytes(24 * 1024 * 1024 + 12345);
    const { l, port } = await listener();
    const c = connector(port);
    l.child.stdin!.end(data);
    expect(await code(c), c.log()).toBe(0);
    expect(await code(l), l.log()).toBe(0);
    expect(createHash('sha256').update(c.out()).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(c.log()).toMatch(/N SSL connection using TLS_AES_/);
    expect(l.log()).toMatch(/N accepting connection from AF=2 127\.0\.0\.1:\d+ on AF=2 127\.0\.0\.1:\d+/);
  }, 120_000);

  it('the listener counts the stream with `count`: its transfer lines add up to the bytes sent', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const { l, port } = await listener({ extra: ['count'] });
    const c = connector(port);
    l.child.stdin!.end(data);
    expect(await code(c), c.log()).toBe(0);
    expect(await code(l), l.log()).toBe(0);
    expect(c.out().length).toBe(data.length);
    const counted = [...l.log().matchAll(/ I transferred (\d+) bytes from /g)].reduce((n, m) => n + Number(m[1]), 0);
    expect(counted).toBe(data.length);
  }, 60_000);

  it('the source\'s end killed mid-stream (no close_notify): the receiving end exits 1 saying the stream was cut, not 0', async () => {
    const { l, port } = await listener();
    const c = connector(port);
    l.child.stdin!.write(randomBytes(1024 * 1024));
    await waitFor('the first MiB through the relay', () => Promise.resolve(c.out().length >= 1024 * 1024 ? true : null), { timeoutMs: 60_000 });
    l.child.kill('SIGKILL');
    expect(await code(c)).toBe(1);
    expect(errorLine(c)).toMatch(/ E SSL_read\(\): .*(unexpected eof|without TLS's close_notify)/);
    expect(c.log()).not.toMatch(/exiting with status 0/);
  }, 90_000);

  it('the receiving end killed mid-stream: the source\'s end exits 1 (its write fails), not 0', async () => {
    const { l, port } = await listener();
    const c = connector(port);
    l.child.stdin!.write(randomBytes(1024 * 1024));
    await waitFor('the first MiB through the relay', () => Promise.resolve(c.out().length >= 1024 * 1024 ? true : null), { timeoutMs: 60_000 });
    c.child.kill('SIGKILL');
    // Keep feeding until the source's end notices the connection is gone.
    const feed = setInterval(() => { if (l.child.stdin!.writable) l.child.stdin!.write(randomBytes(256 * 1024)); }, 20);
    try {
      expect(await code(l)).toBe(1);
    } finally {
      clearInterval(feed);
    }
    expect(errorLine(l)).toMatch(/ E (SSL_write|sending)/);
  }, 90_000);

  it('a reader of the receiving end that goes away is its error (write fails, no SIGPIPE death)', async () => {
    const { l, port } = await listener();
    l.child.stdin!.write(randomBytes(8 * 1024 * 1024));
    const c = connector(port);
    await new Promise<void>((resolve) => { c.child.stdout!.once('data', () => { c.child.stdout!.destroy(); resolve(); }); });
    // Keep feeding the source so that the receiving end has more to write to its gone reader.
    const feed = setInterval(() => { if (l.child.stdin!.writable) l.child.stdin!.write(randomBytes(256 * 1024)); }, 20);
    const e = await c.exit.finally(() => { clearInterval(feed); });
    expect(e.signal).toBeNull();
    expect(e.code).toBe(1);
    expect(errorLine(c)).toMatch(/write\(1, \d+\): (Broken pipe|Connection reset)/);
  }, 90_000);

  it('plain TCP (an HTTP request) to the listener fails its handshake: exit 1, SSL_accept() in the E line', async () => {
    const { l, port } = await listener();
    const s = netConnect({ host: '127.0.0.1', port });
    s.on('error', () => undefined);
    s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    expect(await code(l)).toBe(1);
    s.destroy();
    expect(errorLine(l)).toMatch(/SSL_accept\(\): .*http request|SSL_accept\(\): .*wrong version number/);
    expect(l.log()).not.toMatch(/SSL connection using/);
  }, 60_000);

  it('a plain TCP client sending 16 MiB of garbage is refused in the handshake, exit 1, no TLS connection', async () => {
    const { l, port } = await listener();
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.on('connect', () => { s.write(randomBytes(16 * 1024 * 1024)); });
    expect(await code(l)).toBe(1);
    s.destroy();
    expect(errorLine(l)).toMatch(/ E SSL_accept\(\): /);
    expect(l.log()).not.toMatch(/SSL connection using/);
  }, 60_000);

  it('a client that hangs up mid-handshake is a failure of the listener, exit 1', async () => {
    const { l, port } = await listener();
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => { s.on('connect', () => { s.end(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])); resolve(); }); });
    expect(await code(l)).toBe(1);
    expect(errorLine(l)).toMatch(/ E SSL_accept\(\): /);
    expect(l.log()).not.toMatch(/SSL connection using/);
  }, 60_000);

  it('a client that connects and stays silent makes the listener exit 1 at its handshake deadline, naming it', async () => {
    const { l, port } = await listener({ extra: ['handshake-timeout=2'] });
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => { s.on('connect', () => { resolve(); }); });
    const t0 = Date.now();
    try {
      expect(await code(l)).toBe(1);
    } finally {
      s.destroy();
    }
    const took = Date.now() - t0;
    expect(errorLine(l)).toMatch(/ E SSL_accept\(\): no TLS handshake within the handshake deadline of 2 s \(handshake-timeout\)/);
    expect(took).toBeGreaterThanOrEqual(1500);
    expect(took).toBeLessThan(30_000); // 2 s, and generous room for a loaded machine
  }, 60_000);

  it('the handshake deadline is for the whole handshake: a client that trickles a byte every 300 ms is cut at it', async () => {
    const { l, port } = await listener({ extra: ['count', 'handshake-timeout=2'] });
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => undefined);
    // The first bytes of a ClientHello record, one at a time: each read alone is within the deadline.
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, ...randomBytes(64)]);
    let i = 0;
    const trickle = setInterval(() => { if (i < hello.length && s.writable) s.write(hello.subarray(i, ++i)); }, 300);
    try {
      expect(await code(l)).toBe(1);
    } finally {
      clearInterval(trickle);
      s.destroy();
    }
    expect(i).toBeLessThan(hello.length); // it was cut while the client was still sending
    expect(errorLine(l)).toMatch(/no TLS handshake within the handshake deadline of 2 s/);
  }, 60_000);

  it('a TLS 1.2 client with the right certificate is refused (TLS 1.3 only), exit 1', async () => {
    const { l, port } = await listener();
    const s = tlsConnect({ host: '127.0.0.1', port, maxVersion: 'TLSv1.2', ca: readFileSync(b.caFile), cert: readFileSync(b.certFile), key: readFileSync(b.keyFile) });
    const refused = new Promise<string>((resolve) => { s.on('error', (e) => { resolve(e.message); }); s.on('secureConnect', () => { resolve('connected'); }); });
    expect(await refused).not.toBe('connected');
    s.destroy();
    expect(await code(l)).toBe(1);
    expect(errorLine(l)).toMatch(/ E SSL_accept\(\): .*unsupported protocol/);
  }, 60_000);

  it('the client refuses a server whose certificate does not name the address dialled, even when it is the peer it expects', async () => {
    const x = await ca.peer('x', ['10.9.9.9']);
    const { l, port } = await listener({ files: x });
    const c = connector(port, 'x');
    expect(await code(c)).toBe(1);
    expect(c.out().length).toBe(0);
    expect(errorLine(c)).toMatch(/SSL_connect\(\): .*certificate verify failed \(the other side's certificate: IP address mismatch\)/);
    expect(await code(l)).toBe(1);
  }, 60_000);

  it('a certificate name with a newline cannot forge a log line: the E line shows its bytes escaped (\\xNN)', async () => {
    const forged = '2026/12/07 16:00:00 manatee-tls-relay[1] E forged'; // a CN has at most 64 bytes
    const evil = await handMadePeerCert(ca, 'b', join(dir, 'evil'), { cn: `b\n${forged.replaceAll('/', '\\/')}`, tag: 'newline-cn' }); // -subj: \/ is a / in the name
    const { l, port } = await listener();
    const c = run(['connect', '127.0.0.1', String(port), 'a', evil.certFile, evil.keyFile, evil.caFile]);
    expect(await code(l)).toBe(1);
    await c.exit;
    expect(errorLine(l)).toContain(`commonName does not match hostname "b" (it is "b\\x0a${forged}")`);
    // Every line of its log is one of its own: none begins with the forged text.
    for (const line of l.log().split('\n').filter((x) => x !== '')) expect(line).toMatch(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d manatee-tls-relay\[(?!1\])\d+\] [NIE] /);
  }, 60_000);

  it('refuses its arguments when they are not its usage, a bind address that is no address, a host that does not resolve, a key of another certificate, a certificate file that is missing', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['listen', '127.0.0.1'], /usage: manatee-tls-relay listen/],
      [['nonsense', '1', '2', '3', '4', '5', '6'], /usage: manatee-tls-relay/],
      [['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile, 'handshake-timeout=0'], /handshake-timeout "0" is not a whole number of seconds from 1 to 3600/],
      [['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile, 'handshake-timeout=5s'], /handshake-timeout "5s" is not a whole number of seconds from 1 to 3600/],
      [['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile, 'count', 'count'], /usage: manatee-tls-relay listen/],
      [['listen', 'not-an-address', 'b', a.certFile, a.keyFile, a.caFile], /bind address "not-an-address" is not an IPv4 or IPv6 address/],
      [['listen', '192.0.2.1', 'b', a.certFile, a.keyFile, a.caFile], /bind\(192\.0\.2\.1\): Cannot assign requested address/],
      [['connect', 'no-such-host.invalid', '1', 'a', b.certFile, b.keyFile, b.caFile], /getaddrinfo\("no-such-host\.invalid"\)/],
      [['connect', '127.0.0.1', '1', 'a', b.certFile, a.keyFile, b.caFile], /the key does not match the certificate|SSL_CTX_use_PrivateKey_file/],
      [['connect', '127.0.0.1', '1', 'a', join(dir, 'missing.crt'), b.keyFile, b.caFile], /SSL_CTX_use_certificate_chain_file\(".*missing\.crt"\)/],
      [['connect', '127.0.0.1', '1', 'a', b.certFile, b.keyFile, join(dir, 'missing-ca.crt')], /SSL_CTX_load_verify_locations\(".*missing-ca\.crt"\)/],
      [['connect', '127.0.0.1', '1', 'a', b.certFile, b.keyFile, b.caFile], /connect\(AF=2 127\.0\.0\.1:1\): Connection refused/],
    ];
    for (const [args, why] of cases) {
      const r = run(args);
      r.child.stdin!.end();
      expect(await code(r), args.join(' ')).toBe(1);
      expect(errorLine(r), args.join(' ')).toMatch(why);
    }
  }, 120_000);
});
