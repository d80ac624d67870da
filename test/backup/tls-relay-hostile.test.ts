// manatee-tls-relay (src/backup/relay/manatee-tls-relay.c) against hostile or broken other ends,
// the real binary on real sockets, no zfs: a stream cut without TLS's close_notify is a failure
// (exit 1, an E line), never a complete stream; a plain TCP client, garbage, TLS 1.2 and a client
// that hangs up mid-handshake are refused before a byte of the input is read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { execa } from 'execa';
import { builtRelayPath } from '../../src/backup/tls-relay.js';
import { waitFor } from '../../tools/lib/wait.js';
import { makeTestCa } from '../helpers/certs.js';
import type { TlsFiles } from '../../src/tls/index.js';

let dir: string;
const files = new Map<string, TlsFiles>();
const started: ChildProcess[] = [];

beforeAll(async () => {
  await execa('bash', [fileURLToPath(new URL('../../tools/build-tls-relay.sh', import.meta.url))]);
  dir = await mkdtemp(join(tmpdir(), 'relay-hostile-'));
  const ca = await makeTestCa(join(dir, 'ca'));
  for (const id of ['a', 'b']) files.set(id, await ca.peer(id));
}, 120_000);
afterAll(async () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

interface Run { child: ChildProcess; log: () => string; out: () => Buffer; exit: Promise<number | null> }

function run(args: string[]): Run {
  const child = spawn(builtRelayPath(), args, { stdio: ['pipe', 'pipe', 'pipe'] });
  started.push(child);
  let log = '';
  const out: Buffer[] = [];
  child.stderr.on('data', (c: Buffer) => { log += c.toString('utf8'); });
  child.stdout.on('data', (c: Buffer) => { out.push(c); });
  child.stdin.on('error', () => undefined);
  const exit = new Promise<number | null>((resolve) => { child.once('close', (code) => { resolve(code); }); });
  return { child, log: () => log, out: () => Buffer.concat(out), exit };
}

/** The source's end, for peer b, with peer a's certificate; its port once it listens. */
async function listener(): Promise<{ r: Run; port: number }> {
  const a = files.get('a')!;
  const r = run(['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile, 'count']);
  await waitFor('the relay listening', () => /listening on AF=2 127\.0\.0\.1:\d+/.test(r.log()), { timeoutMs: 30_000 });
  return { r, port: Number(/listening on AF=2 127\.0\.0\.1:(\d+)/.exec(r.log())![1]) };
}

function connector(port: number): Run {
  const b = files.get('b')!;
  return run(['connect', '127.0.0.1', String(port), 'a', b.certFile, b.keyFile, b.caFile]);
}

describe('manatee-tls-relay against broken and hostile other ends', () => {
  it('a whole stream ends with close_notify: both ends exit 0 and the bytes arrive as sent', async () => {
    const { r: l, port } = await listener();
    const c = connector(port);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    l.child.stdin!.end(data);
    expect(await c.exit).toBe(0);
    expect(await l.exit).toBe(0);
    expect(c.out().equals(data)).toBe(true);
  }, 60_000);

  it('the source\'s end killed mid-stream: the receiving end exits 1 saying the stream was cut, not 0', async () => {
    const { r: l, port } = await listener();
    const c = connector(port);
    l.child.stdin!.write(randomBytes(1024 * 1024));
    await waitFor('the first MiB through the relay', () => c.out().length >= 1024 * 1024, { timeoutMs: 60_000 });
    l.child.kill('SIGKILL');
    expect(await c.exit).toBe(1);
    expect(c.log()).toMatch(/ E SSL_read\(\): .*(unexpected eof|without TLS's close_notify)/);
    expect(c.log()).not.toMatch(/exiting with status 0/);
  }, 90_000);

  it('the receiving end killed mid-stream: the source\'s end exits 1 (its write fails), not 0', async () => {
    const { r: l, port } = await listener();
    const c = connector(port);
    l.child.stdin!.write(randomBytes(1024 * 1024));
    await waitFor('the first MiB through the relay', () => c.out().length >= 1024 * 1024, { timeoutMs: 60_000 });
    c.child.kill('SIGKILL');
    // Keep feeding until the source's end notices the connection is gone.
    const feed = setInterval(() => { if (l.child.stdin!.writable) l.child.stdin!.write(randomBytes(256 * 1024)); }, 20);
    try {
      expect(await l.exit).toBe(1);
    } finally {
      clearInterval(feed);
    }
    expect(l.log()).toMatch(/ E (SSL_write|sending)/);
  }, 90_000);

  it('a plain TCP client sending 16 MiB of garbage is refused in the handshake, exit 1, no TLS connection', async () => {
    const { r: l, port } = await listener();
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => undefined);
    s.on('connect', () => { s.write(randomBytes(16 * 1024 * 1024)); });
    expect(await l.exit).toBe(1);
    s.destroy();
    expect(l.log()).toMatch(/ E SSL_accept\(\): /);
    expect(l.log()).not.toMatch(/SSL connection using/);
  }, 60_000);

  it('a client that hangs up mid-handshake is a failure of the listener, exit 1', async () => {
    const { r: l, port } = await listener();
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => { s.on('connect', () => { s.end(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])); resolve(); }); });
    expect(await l.exit).toBe(1);
    expect(l.log()).toMatch(/ E SSL_accept\(\): /);
    expect(l.log()).not.toMatch(/SSL connection using/);
  }, 60_000);

  it('a TLS 1.2 client with the right certificate is refused (TLS 1.3 only), exit 1', async () => {
    const { r: l, port } = await listener();
    const b = files.get('b')!;
    const s = tlsConnect({ host: '127.0.0.1', port, maxVersion: 'TLSv1.2', ca: readFileSync(b.caFile), cert: readFileSync(b.certFile), key: readFileSync(b.keyFile) });
    const refused = new Promise<string>((resolve) => { s.on('error', (e) => { resolve(e.message); }); s.on('secureConnect', () => { resolve('connected'); }); });
    expect(await refused).not.toBe('connected');
    expect(await l.exit).toBe(1);
    expect(l.log()).toMatch(/ E SSL_accept\(\): .*unsupported protocol/);
  }, 60_000);
});
