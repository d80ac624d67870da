// manatee-tls-relay (src/backup/relay/manatee-tls-relay.c) run directly, the real binary on real
// TLS over 127.0.0.1, no zfs: the stream arrives whole; a stream cut without TLS's close_notify is a
// failure (exit 1, an E line), never a complete stream; plain TCP, garbage, TLS 1.2 and a client
// that hangs up mid-handshake are refused before a byte of the input is sent; and each other error
// path ends it with exit 1 and an E line that says why; a deadline that passes (a peer that never
// connects, never answers its TCP connection or never speaks TLS) with exit 3, and the Node side
// (tls-relay.ts) reports MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE. The connecting end tries each address
// of a name in turn (`localhost` made to resolve to ::1 and 127.0.0.1 by an /etc/hosts bound over
// the real one in a mount namespace of the relay's own). The checks it shares with socat (CA, peer
// ids, plain TCP) are also tested through the backup server in zfs-restore-tls.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect as netConnect, createServer as netServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as tlsServer } from 'node:tls';
import { execa } from 'execa';
import { acceptedConnection, builtRelayPath, connectRelay, listenRelay, type RelayProgram, type RelayTls } from '../../src/backup/tls-relay.js';
import { silentLogger } from '../../src/log.js';
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

/** Runs the relay with `args`; with `hosts`, in a mount namespace of its own where that file is /etc/hosts. */
function run(args: string[], o: { hosts?: string } = {}): Run {
  const child = o.hosts === undefined
    ? spawn(builtRelayPath(), args, { stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn('unshare', ['-m', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', o.hosts, builtRelayPath(), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
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

const program: RelayProgram = { kind: 'manatee-tls-relay', path: builtRelayPath() };
const log = silentLogger();
const pem = async (f: TlsFiles): Promise<RelayTls> => ({ ca: await readFile(f.caFile, 'utf8'), cert: await readFile(f.certFile, 'utf8'), key: await readFile(f.keyFile, 'utf8') });
const portOf = (s: Server): number => { const a = s.address(); return typeof a === 'object' && a !== null ? a.port : 0; };

/** A TCP server on 127.0.0.1 that accepts every connection and never says a word (no TLS). */
async function silentServer(): Promise<{ port: number; accepted: () => number; close: () => void }> {
  const held: Socket[] = [];
  const server = netServer((c) => { c.on('error', () => undefined); held.push(c); });
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  return { port: portOf(server), accepted: () => held.length, close: () => { for (const c of held) c.destroy(); server.close(); } };
}

/**
 * A port on `host` that never answers a TCP connection: a listener (backlog 1) in a child process
 * that stops itself (SIGSTOP) and so never accepts, its accept queue filled by connections of this
 * process; the kernel then drops every new SYN. close() kills the child (by pid) and the fillers.
 */
async function deafPort(host: string, port = 0): Promise<{ port: number; close: () => void }> {
  const script = `const s = require('node:net').createServer(); s.listen({ host: ${JSON.stringify(host)}, port: ${port}, backlog: 1 }, () => { process.stdout.write(s.address().port + '\\n'); process.kill(process.pid, 'SIGSTOP'); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(child);
  const fillers: Socket[] = [];
  const close = (): void => { for (const f of fillers) f.destroy(); if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); };
  try {
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString('utf8'); });
    const p = Number(await waitFor('the deaf listener\'s port', () => /^(\d+)\n/.exec(out)?.[1] ?? null, { timeoutMs: 30_000 }));
    await waitFor('the deaf listener to be stopped', () => (readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T') === true ? true : null), { timeoutMs: 30_000 });
    // Fill its accept queue until the kernel counts it full (ss: Recv-Q, the connections queued,
    // above Send-Q, the backlog), when it drops every new SYN; each filler connects first.
    const local = `${host.includes(':') ? `[${host}]` : host}:${p}`;
    const queue = async (): Promise<{ queued: number; backlog: number } | null> => {
      const r = await execa('ss', ['-ltnH', `sport = :${p}`], { reject: false });
      const m = /^LISTEN\s+(\d+)\s+(\d+)\s+(\S+)/m.exec(r.stdout.split('\n').filter((l) => l.split(/\s+/)[3] === local).join('\n'));
      return m === null ? null : { queued: Number(m[1]), backlog: Number(m[2]) };
    };
    for (let i = 1; i <= 8; i++) {
      const f = netConnect({ host, port: p });
      fillers.push(f);
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => { reject(new Error(`filler ${i} did not connect to ${local} within 30 s`)); }, 30_000);
        f.once('connect', () => { clearTimeout(t); resolve(); });
        f.once('error', (e) => { clearTimeout(t); reject(e); });
      });
      f.on('error', () => undefined);
      const q = await waitFor(`the accept queue of ${local} to hold ${i}`, async () => { const x = await queue(); return x !== null && x.queued >= i ? x : null; }, { timeoutMs: 30_000 });
      if (q.queued > q.backlog) return { port: p, close };
    }
    throw new Error(`the accept queue of ${host}:${p} never filled`);
  } catch (err) {
    close();
    throw err;
  }
}

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

  it('a client that connects and stays silent makes the listener exit 3 at its handshake deadline, naming it and the client', async () => {
    const { l, port } = await listener({ extra: ['handshake-timeout=2'] });
    const s = netConnect(port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => { s.on('connect', () => { resolve(); }); });
    const from = s.localPort;
    const t0 = Date.now();
    try {
      expect(await code(l)).toBe(3);
    } finally {
      s.destroy();
    }
    const took = Date.now() - t0;
    expect(errorLine(l)).toMatch(new RegExp(String.raw` E SSL_accept\(\): no TLS handshake within the handshake deadline of 2 s \(handshake-timeout\): the connection from AF=2 127\.0\.0\.1:${from}, for peer b$`));
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
      expect(await code(l)).toBe(3);
    } finally {
      clearInterval(trickle);
      s.destroy();
    }
    expect(i).toBeLessThan(hello.length); // it was cut while the client was still sending
    expect(errorLine(l)).toMatch(/no TLS handshake within the handshake deadline of 2 s/);
  }, 60_000);

  it('the connecting end gives up at its handshake deadline on a server that accepts TCP and never speaks TLS: exit 3, naming the step and the peer; connectRelay reports MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE', async () => {
    const silent = await silentServer();
    try {
      const t0 = Date.now();
      const c = run(['connect', '127.0.0.1', String(silent.port), 'a', b.certFile, b.keyFile, b.caFile, 'handshake-timeout=2']);
      expect(await code(c), c.log()).toBe(3);
      const took = Date.now() - t0;
      expect(errorLine(c)).toMatch(new RegExp(String.raw` E SSL_connect\(\): no TLS handshake within the handshake deadline of 2 s \(handshake-timeout\): peer a at AF=2 127\.0\.0\.1:${silent.port}$`));
      expect(took).toBeGreaterThanOrEqual(1500);
      expect(took).toBeLessThan(30_000); // 2 s, and generous room for a loaded machine
      expect(c.out().length).toBe(0);
      expect(silent.accepted()).toBe(1);
      // Through Node, with a wait of its own far longer than the relay's deadline: the relay's is what ends it.
      const tls = await pem(b);
      const err = await connectRelay({ program, tls, log, host: '127.0.0.1', port: silent.port, peerId: 'a', timeoutMs: 120_000, handshakeTimeoutS: 2 }).catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE',
        message: expect.stringMatching(new RegExp(String.raw`^TLS relay \(from 127\.0\.0\.1:${silent.port}\): manatee-tls-relay gave up at its deadline \(exit 3\) before a verified TLS connection: SSL_connect\(\): no TLS handshake within the handshake deadline of 2 s \(handshake-timeout\): peer a at AF=2 127\.0\.0\.1:${silent.port}$`)),
      });
      // Without the option, the relay's default: 10 s, as the listener's.
      const byDefault = await connectRelay({ program, tls, log, host: '127.0.0.1', port: silent.port, peerId: 'a', timeoutMs: 120_000 }).catch((e: unknown) => e);
      expect(byDefault).toMatchObject({ code: 'MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE', message: expect.stringMatching(/SSL_connect\(\): no TLS handshake within the handshake deadline of 10 s \(handshake-timeout\)/) });
    } finally {
      silent.close();
    }
  }, 120_000);

  it('the connecting end gives up at its handshake deadline on an address that never answers the TCP connection: exit 3, connect() in the E line; MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE through Node', async () => {
    const deaf = await deafPort('127.0.0.1');
    try {
      const c = run(['connect', '127.0.0.1', String(deaf.port), 'a', b.certFile, b.keyFile, b.caFile, 'handshake-timeout=2']);
      expect(await code(c), c.log()).toBe(3);
      expect(errorLine(c)).toMatch(new RegExp(String.raw` E connect\(\): no TCP connection within the handshake deadline of 2 s \(handshake-timeout\): peer a at 127\.0\.0\.1 port ${deaf.port} \(AF=2 127\.0\.0\.1:${deaf.port}: no answer within 2\.0 s\)$`));
      expect(c.log()).not.toMatch(/successfully connected/);
      const err = await connectRelay({ program, tls: await pem(b), log, host: '127.0.0.1', port: deaf.port, peerId: 'a', timeoutMs: 120_000, handshakeTimeoutS: 2 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE', message: expect.stringMatching(/manatee-tls-relay gave up at its deadline \(exit 3\) before its connection: connect\(\): no TCP connection within the handshake deadline of 2 s/) });
    } finally {
      deaf.close();
    }
  }, 120_000);

  it('a listener that no peer connects to gives up at its accept deadline: exit 3, naming the peer and the address; acceptedConnection reports MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE', async () => {
    const t0 = Date.now();
    const { l, port } = await listener({ extra: ['count', 'accept-timeout=2'] });
    expect(await code(l), l.log()).toBe(3);
    const took = Date.now() - t0;
    expect(errorLine(l)).toMatch(new RegExp(String.raw` E accept\(\): no connection within the accept deadline of 2 s \(accept-timeout\): peer b did not connect to AF=2 127\.0\.0\.1:${port}$`));
    expect(took).toBeGreaterThanOrEqual(1500);
    expect(took).toBeLessThan(30_000);
    // The port is closed with it.
    const s = netConnect(port, '127.0.0.1');
    expect(await new Promise<string>((resolve) => { s.once('error', (e: NodeJS.ErrnoException) => { resolve(e.code ?? e.message); }); s.once('connect', () => { resolve('connected'); }); })).toBe('ECONNREFUSED');
    s.destroy();
    const rl = await listenRelay({ program, tls: await pem(a), log, bindAddress: '127.0.0.1', peerId: 'b', timeoutMs: 30_000, acceptTimeoutS: 2 });
    const err = await acceptedConnection(rl, 120_000).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE',
      message: expect.stringMatching(new RegExp(String.raw`^TLS relay \(to peer b\): manatee-tls-relay gave up at its deadline \(exit 3\) before a verified TLS connection: accept\(\): no connection within the accept deadline of 2 s \(accept-timeout\): peer b did not connect to AF=2 127\.0\.0\.1:${rl.port}$`)),
    });
  }, 120_000);

  it('the connecting end tries every address of the name in turn: localhost as ::1 then 127.0.0.1, with the source on either', async () => {
    const hosts = join(dir, 'hosts-both');
    await writeFile(hosts, '::1 localhost\n127.0.0.1 localhost\n');
    for (const bind of ['127.0.0.1', '::1']) {
      const data = randomBytes(2 * 1024 * 1024 + 7);
      const l = run(['listen', bind, 'b', a.certFile, a.keyFile, a.caFile]);
      const port = Number(await waitFor('the relay to listen', () => /listening on AF=\d+ (?:127\.0\.0\.1|\[::1\]):(\d+)/.exec(l.log())?.[1] ?? null, { timeoutMs: 30_000 }));
      const c = run(['connect', 'localhost', String(port), 'a', b.certFile, b.keyFile, b.caFile], { hosts });
      l.child.stdin!.end(data);
      expect(await code(c), c.log()).toBe(0);
      expect(await code(l), l.log()).toBe(0);
      expect(createHash('sha256').update(c.out()).digest('hex'), bind).toBe(createHash('sha256').update(data).digest('hex'));
      const opened = [...c.log().matchAll(/ N opening connection to (AF=\d+ \S+)/g)].map((m) => m[1]);
      if (bind === '127.0.0.1') {
        expect(opened).toEqual([`AF=10 [::1]:${port}`, `AF=2 127.0.0.1:${port}`]);
        expect(c.log()).toContain(` W connect(AF=10 [::1]:${port}): Connection refused; trying the next address`);
      } else {
        expect(opened).toEqual([`AF=10 [::1]:${port}`]);
        expect(c.log()).not.toMatch(/ W /);
      }
    }
  }, 120_000);

  it('an address that never answers takes only its share of the deadline: ::1 deaf, then 127.0.0.1 (a Node TLS source) within the same handshake deadline', async () => {
    const hosts = join(dir, 'hosts-both');
    await writeFile(hosts, '::1 localhost\n127.0.0.1 localhost\n');
    const payload = randomBytes(64 * 1024);
    const server = tlsServer({ ca: readFileSync(a.caFile), cert: readFileSync(a.certFile), key: readFileSync(a.keyFile), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (s) => { s.on('error', () => undefined); s.end(payload); });
    await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve); });
    const port = portOf(server);
    const deaf = await deafPort('::1', port);
    try {
      const t0 = Date.now();
      const c = run(['connect', 'localhost', String(port), 'a', b.certFile, b.keyFile, b.caFile, 'handshake-timeout=8'], { hosts });
      expect(await code(c), c.log()).toBe(0);
      const took = Date.now() - t0;
      expect(c.out().equals(payload)).toBe(true);
      expect([...c.log().matchAll(/ N opening connection to (AF=\d+ \S+)/g)].map((m) => m[1])).toEqual([`AF=10 [::1]:${port}`, `AF=2 127.0.0.1:${port}`]);
      expect(c.log()).toContain(` W connect(AF=10 [::1]:${port}): no answer in its share of the deadline; trying the next address`);
      expect(took).toBeGreaterThanOrEqual(3500); // ::1 had half of the 8 s
      expect(took).toBeLessThan(60_000);
    } finally {
      deaf.close();
      server.close();
    }
  }, 120_000);

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
      [['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile, 'accept-timeout=3601'], /accept-timeout "3601" is not a whole number of seconds from 1 to 3600/],
      [['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile, 'accept-timeout='], /accept-timeout "" is not a whole number of seconds from 1 to 3600/],
      [['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile, 'accept-timeout=5', 'accept-timeout=5'], /usage: manatee-tls-relay listen/],
      [['listen', '127.0.0.1', 'b', a.certFile, a.keyFile, a.caFile, 'count', 'handshake-timeout=5', 'accept-timeout=5', 'x'], /usage: manatee-tls-relay listen/],
      [['connect', '127.0.0.1', '1', 'a', b.certFile, b.keyFile, b.caFile, 'handshake-timeout=-1'], /handshake-timeout "-1" is not a whole number of seconds from 1 to 3600/],
      [['connect', '127.0.0.1', '1', 'a', b.certFile, b.keyFile, b.caFile, 'accept-timeout=5'], /usage: manatee-tls-relay/],
      [['connect', '127.0.0.1', '1', 'a', b.certFile, b.keyFile, b.caFile, 'count'], /usage: manatee-tls-relay/],
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
