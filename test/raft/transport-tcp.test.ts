// The peer-to-peer transport on real sockets: authentication, refusal of bad frames, batching,
// bounded queues and reconnection.
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { TcpTransport, helloMac, encodeFrame, FrameDecoder, FRAME_CHALLENGE, FRAME_HELLO, FRAME_MESSAGES, FRAME_PING } from '../../src/raft/transport/index.js';
import type { Message } from '../../src/raft/core/types.js';
import type { PeerMessage } from '../../src/raft/transport/messages.js';
import { freePort, waitFor } from '../../tools/lib/wait.js';
import { startFlood } from './flood.js';

const SECRET = 'shard-secret-0123456789';
const open: TcpTransport[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const t of open.splice(0)) await t.close();
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s)); } });
  return { lines, logger };
}

async function node(id: string, port: number, peers: Record<string, string>, extra: Partial<ConstructorParameters<typeof TcpTransport>[0]> = {}) {
  const got: PeerMessage[] = [];
  const unreachable: string[] = [];
  const refused: string[] = [];
  const cap = capture();
  const t = new TcpTransport({
    id, secret: SECRET, listen: { host: '127.0.0.1', port }, peers, logger: cap.logger,
    handlers: {
      onMessages: (ms) => { got.push(...ms); },
      onUnreachable: (to) => { unreachable.push(to); },
      onRefused: (to) => { refused.push(to); },
    },
    reconnectMinMs: 20, reconnectMaxMs: 200, ...extra,
  });
  await t.start();
  open.push(t);
  return { t, got, unreachable, refused, lines: cap.lines };
}

function hb(from: string, to: string, term: number): Message {
  return { type: 'heartbeat', from, to, term, commit: term };
}

/** A raw client that speaks the protocol by hand, to send what a well-behaved transport never would. */
async function rawClient(port: number, opts: { from: string; to: string; secret: string | null }): Promise<{ sock: Socket; closed: Promise<void> }> {
  const sock = connect({ host: '127.0.0.1', port });
  sockets.push(sock);
  const closed = new Promise<void>((r) => { sock.on('close', () => { r(); }); });
  sock.on('error', () => {});
  const dec = new FrameDecoder(1024);
  const challenge = await new Promise<Buffer>((resolve) => {
    sock.on('data', (c: Buffer) => {
      const f = dec.push(c)[0];
      if (f?.kind === FRAME_CHALLENGE) resolve(f.payload);
    });
  });
  if (opts.secret !== null) {
    const mac = helloMac(opts.secret, challenge, opts.from, opts.to).toString('hex');
    sock.write(encodeFrame(FRAME_HELLO, JSON.stringify({ from: opts.from, to: opts.to, mac })));
  }
  return { sock, closed };
}

describe('TcpTransport', () => {
  it('sendSoon: what is sent to a peer in one event-loop turn goes out in one frame, in order', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` });
    const b = await node('b', pb, { a: `127.0.0.1:${pa}` });
    a.t.send([hb('a', 'b', 1)]);
    await waitFor('connected', () => b.got.length === 1);
    const frames = a.t.stats().framesSent;
    a.t.sendSoon([{ type: 'leaderMessage', from: 'a', to: 'b', term: 2, data: 'first' }]);
    // Written at once without sendSoon; here it joins the queued message.
    a.t.send([hb('a', 'b', 2)]);
    a.t.sendSoon([{ type: 'leaderMessage', from: 'a', to: 'b', term: 2, data: 'third' }, { type: 'leaderMessage', from: 'a', to: 'nobody', term: 2, data: 'lost' }]);
    expect(a.t.stats().framesSent).toBe(frames);
    await waitFor('three more delivered', () => b.got.length === 4);
    expect(a.t.stats().framesSent).toBe(frames + 1);
    expect(b.got.slice(1).map((m) => ('data' in m ? m.data : m.type))).toEqual(['first', 'heartbeat', 'third']);
    // A destination it does not know is counted as dropped.
    expect(a.t.stats().messagesDropped).toBe(1);
  });

  it('delivers messages both ways and batches a burst into few frames', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` });
    const b = await node('b', pb, { a: `127.0.0.1:${pa}` });
    a.t.send([hb('a', 'b', 1)]);
    await waitFor('first message', () => b.got.length === 1);
    const burst: Message[] = [];
    for (let i = 0; i < 200; i++) burst.push({ type: 'append', from: 'a', to: 'b', term: 2, index: i, logTerm: 1, commit: 0, entries: [{ term: 2, index: i + 1, type: 'normal', data: `x${i}` }] });
    a.t.send(burst);
    await waitFor('burst', () => b.got.length === 201);
    expect(b.got.slice(1).map((m) => (m as Message).index)).toEqual(burst.map((m) => m.index));
    // 200 messages queued in one turn go out as one frame (plus the first message's frame).
    expect(a.t.stats().framesSent).toBe(2);
    expect(b.t.stats().framesReceived).toBe(2);
    b.t.send([hb('b', 'a', 3)]);
    await waitFor('reply', () => a.got.length === 1);
    expect(a.got[0]).toEqual(hb('b', 'a', 3));
    expect(b.t.stats().authFailures).toBe(0);
  });

  it('refuses, logs and counts a peer with the wrong secret', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {});
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, { secret: 'another-secret-9876543210' });
    a.t.send([hb('a', 'b', 1)]);
    await waitFor('auth failure counted', () => b.t.stats().authFailures >= 1);
    const line = b.lines.find((l) => l['msg'] === 'raft transport refused connection');
    expect(line).toBeDefined();
    expect(String(line!['remote'])).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(String(line!['reason'])).toMatch(/wrong secret/);
    expect(b.got).toEqual([]);
    expect(b.t.stats().connectionsAuthenticated).toBe(0);
    // The refused side keeps retrying with backoff and is told the peer is unreachable.
    await waitFor('unreachable reported', () => a.unreachable.includes('b'));
  });

  it('closes a connection that never says hello', async () => {
    const pb = await freePort();
    const b = await node('b', pb, {}, { helloTimeoutMs: 200 });
    const { closed } = await rawClient(pb, { from: 'x', to: 'b', secret: null });
    await closed;
    expect(b.t.stats().authFailures).toBe(1);
    expect(b.lines.some((l) => String(l['reason']).includes('no hello within 200 ms'))).toBe(true);
  });

  it('does not refuse a hello that came while its own event loop was stalled past the hello deadline', async () => {
    const pb = await freePort();
    const b = await node('b', pb, {}, { helloTimeoutMs: 200 });
    const sock = connect({ host: '127.0.0.1', port: pb });
    sockets.push(sock);
    sock.on('error', () => {});
    const dec = new FrameDecoder(1024);
    await new Promise<void>((resolve) => {
      sock.on('data', (c: Buffer) => {
        const ch = dec.push(c).find((f) => f.kind === FRAME_CHALLENGE);
        if (ch === undefined) return;
        sock.write(encodeFrame(FRAME_HELLO, JSON.stringify({ from: 'a', to: 'b', mac: helloMac(SECRET, ch.payload, 'a', 'b').toString('hex') })));
        // The process (server included) stalls for 5 hello deadlines: its hello timer then fires
        // before the hello, already in the socket's buffer, is read.
        const until = Date.now() + 1000;
        while (Date.now() < until) { /* a stall */ }
        resolve();
      });
    });
    await waitFor('the hello admitted', () => b.t.stats().connectionsAuthenticated === 1, { timeoutMs: 10_000 });
    expect(b.t.stats().authFailures).toBe(0);
  });

  it('refuses a hello addressed to another node', async () => {
    const pb = await freePort();
    const b = await node('b', pb, {});
    const { closed } = await rawClient(pb, { from: 'a', to: 'c', secret: SECRET });
    await closed;
    expect(b.t.stats().authFailures).toBe(1);
    expect(b.lines.some((l) => String(l['reason']).includes('addressed to c'))).toBe(true);
  });

  it('refuses a huge frame before authentication without buffering it', async () => {
    const pb = await freePort();
    const b = await node('b', pb, {});
    const { sock, closed } = await rawClient(pb, { from: 'a', to: 'b', secret: null });
    const head = Buffer.alloc(5);
    head.writeUInt32BE(500_000_000, 0);
    head.writeUInt8(FRAME_HELLO, 4);
    sock.write(head);
    await closed;
    expect(b.t.stats().authFailures).toBe(1);
  });

  it('refuses an oversized frame from an authenticated peer, and keeps serving others', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {}, { maxFrameBytes: 10_000 });
    const { sock, closed } = await rawClient(pb, { from: 'a', to: 'b', secret: SECRET });
    sock.write(encodeFrame(FRAME_MESSAGES, JSON.stringify([{ type: 'heartbeat', from: 'a', to: 'b', term: 1, context: 'x'.repeat(20_000) }])));
    await closed;
    expect(b.t.stats().oversizedFrames).toBe(1);
    expect(b.lines.some((l) => String(l['reason']).includes('exceeds maxFrameBytes 10000'))).toBe(true);
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` });
    a.t.send([hb('a', 'b', 4)]);
    await waitFor('a normal peer is still served', () => b.got.length === 1);
  });

  it('a sender drops (and counts) a message larger than a frame instead of sending it', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {}, { maxFrameBytes: 10_000 });
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, { maxFrameBytes: 10_000 });
    a.t.send([{ type: 'heartbeat', from: 'a', to: 'b', term: 1, context: 'x'.repeat(20_000) }, hb('a', 'b', 2)]);
    await waitFor('the small one arrives', () => b.got.length === 1);
    expect(b.got[0]!.term).toBe(2);
    expect(a.t.stats().messagesDropped).toBe(1);
    expect(b.t.stats().oversizedFrames).toBe(0);
  });

  it.each([
    ['not JSON', Buffer.from('{nope'), /not JSON/],
    ['not an array', Buffer.from('{"a":1}'), /not an array/],
    ['unknown message type', Buffer.from(JSON.stringify([{ type: 'explode', from: 'a', to: 'b', term: 1 }])), /unknown message type/],
    ['a forged sender', Buffer.from(JSON.stringify([{ type: 'vote', from: 'c', to: 'b', term: 9 }])), /authenticated as a/],
    ['a bad entry', Buffer.from(JSON.stringify([{ type: 'append', from: 'a', to: 'b', term: 1, entries: [{ term: 1, index: 'x', type: 'normal', data: '' }] }])), /entry/],
    ['a leaderMessage without data', Buffer.from(JSON.stringify([{ type: 'leaderMessage', from: 'a', to: 'b', term: 1 }])), /leaderMessage data is not a string/],
    ['a leaderMessage with numeric data', Buffer.from(JSON.stringify([{ type: 'leaderMessage', from: 'a', to: 'b', term: 1, data: 7 }])), /leaderMessage data is not a string/],
    ['a leaderMessage with Raft fields', Buffer.from(JSON.stringify([{ type: 'leaderMessage', from: 'a', to: 'b', term: 1, data: 'k', entries: [] }])), /unexpected field "entries"/],
    ['a leaderMessage too long', Buffer.from(JSON.stringify([{ type: 'leaderMessage', from: 'a', to: 'b', term: 1, data: 'k'.repeat(4097) }])), /4097 characters, more than 4096/],
    ['a leaderMessage without a term', Buffer.from(JSON.stringify([{ type: 'leaderMessage', from: 'a', to: 'b', data: 'k' }])), /term is not a non-negative integer/],
  ])('refuses a malformed frame (%s) without crashing', async (_name, payload, reason) => {
    const pb = await freePort();
    const b = await node('b', pb, {});
    const { sock, closed } = await rawClient(pb, { from: 'a', to: 'b', secret: SECRET });
    sock.write(encodeFrame(FRAME_MESSAGES, payload));
    await closed;
    expect(b.t.stats().malformedFrames).toBe(1);
    expect(b.got).toEqual([]);
    const line = b.lines.find((l) => l['msg'] === 'raft transport refused frame, closing connection');
    expect(String(line?.['reason'])).toMatch(reason);
    // Still serving: a well-formed frame on a new connection is delivered.
    const again = await rawClient(pb, { from: 'a', to: 'b', secret: SECRET });
    again.sock.write(encodeFrame(FRAME_MESSAGES, JSON.stringify([hb('a', 'b', 1)])));
    await waitFor('delivery after refusal', () => b.got.length === 1);
  });

  it('carries a leaderMessage as its own type, with its data intact', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {});
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` });
    a.t.send([{ type: 'leaderMessage', from: 'a', to: 'b', term: 3, data: 'keepalive:42' }, hb('a', 'b', 3)]);
    await waitFor('both arrive', () => b.got.length === 2);
    expect(b.got[0]).toEqual({ type: 'leaderMessage', from: 'a', to: 'b', term: 3, data: 'keepalive:42' });
    expect(b.got[1]!.type).toBe('heartbeat');
    expect(b.t.stats().malformedFrames).toBe(0);
  });

  it('bounds the queue to an unreachable peer, dropping the oldest', async () => {
    const [pa, pdead] = [await freePort(), await freePort()];
    const a = await node('a', pa, { dead: `127.0.0.1:${pdead}` }, { maxQueueMessages: 5 });
    const ms: Message[] = [];
    for (let i = 0; i < 20; i++) ms.push(hb('a', 'dead', i));
    a.t.send(ms);
    expect(a.t.stats().messagesDropped).toBe(15);
    a.t.send([hb('a', 'nobody', 1)]);
    expect(a.t.stats().messagesDropped).toBe(16);
  });

  it('reconnects after the peer restarts, and delivers what was queued', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` });
    let b = await node('b', pb, {});
    a.t.send([hb('a', 'b', 1)]);
    await waitFor('first delivery', () => b.got.length === 1);
    await b.t.close();
    open.splice(open.indexOf(b.t), 1);
    await waitFor('loss noticed', () => a.unreachable.includes('b'));
    a.t.send([hb('a', 'b', 2)]);
    b = await node('b', pb, {});
    // Keep sending, as Raft does with heartbeats, until the new instance hears one.
    await waitFor('delivery after restart', () => {
      a.t.send([hb('a', 'b', 3)]);
      return b.got.some((m) => m.term >= 2);
    });
    expect(a.t.stats().reconnects).toBeGreaterThanOrEqual(1);
  });

  it('reports a dial refused (the peer\'s process gone, its port closed) apart from a lost connection', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` });
    const b = await node('b', pb, {});
    a.t.send([hb('a', 'b', 1)]);
    await waitFor('first delivery', () => b.got.length === 1);
    expect(a.refused).toEqual([]);
    await b.t.close();
    open.splice(open.indexOf(b.t), 1);
    // The open connection is lost first (unreachable, not refused); the redial finds the port closed.
    await waitFor('the redial refused', () => a.refused.includes('b'));
    expect(a.unreachable.filter((x) => x === 'b').length).toBeGreaterThanOrEqual(2);
  });

  it('follows an address change of a peer', async () => {
    const [pa, pb1, pb2] = [await freePort(), await freePort(), await freePort()];
    const a = await node('a', pa, { b: `127.0.0.1:${pb1}` });
    const b1 = await node('b', pb1, {});
    a.t.send([hb('a', 'b', 1)]);
    await waitFor('old address', () => b1.got.length === 1);
    const b2 = await node('b', pb2, {});
    a.t.setPeer('b', `127.0.0.1:${pb2}`);
    a.t.send([hb('a', 'b', 2)]);
    await waitFor('new address', () => b2.got.length === 1);
    expect(a.t.peers()).toEqual({ b: `127.0.0.1:${pb2}` });
    expect(() => { a.t.setPeer('c', 'nonsense'); }).toThrow(/host:port/);
  });

  it('caps authenticated connections, and a peer that authenticates again replaces its old connection', async () => {
    const pb = await freePort();
    const b = await node('b', pb, {}, { maxInboundConnections: 1 });
    const first = await rawClient(pb, { from: 'a', to: 'b', secret: SECRET });
    await waitFor('a authenticated', () => b.t.stats().connectionsAuthenticated === 1);
    // Another peer id finds the one authenticated slot taken.
    const other = await rawClient(pb, { from: 'c', to: 'b', secret: SECRET });
    await other.closed;
    expect(b.lines.some((l) => String(l['reason']).includes('1 authenticated connections already (too many inbound connections)'))).toBe(true);
    // The same peer again: its previous connection is closed and the new one is served.
    const again = await rawClient(pb, { from: 'a', to: 'b', secret: SECRET });
    await first.closed;
    expect(b.t.stats().connectionsReplaced).toBe(1);
    again.sock.write(encodeFrame(FRAME_MESSAGES, JSON.stringify([hb('a', 'b', 7)])));
    await waitFor('delivery on the new connection', () => b.got.length === 1);
  });

  it('a flood of half-open sockets from the peer\'s own address does not keep the peer out', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, {});
    const flood = startFlood(pb, { addresses: ['127.0.0.1'], socketsPerAddress: 200, reopen: false });
    await waitFor('flood connected', () => flood.opened() >= 200);
    // Eight per address: the rest were evicted as newer ones came.
    await waitFor('per-address cap held', () => b.t.stats().connectionsEvicted >= 192);
    const a = await node('a', pa, { b: `127.0.0.1:${pb}` });
    await waitFor('the peer gets through', () => {
      a.t.send([hb('a', 'b', 1)]);
      return b.got.length > 0;
    }, { timeoutMs: 30_000, intervalMs: 50 });
    flood.stop();
    expect(b.t.stats().connectionsAuthenticated).toBe(1);
    expect(b.lines.some((l) => l['msg'] === 'raft transport: unauthenticated connection evicted to make room for a newer one'
      && String(l['reason']).includes('8 unauthenticated connections from this address already'))).toBe(true);
  });

  it('closes half-open sockets at the default hello deadline of 1 s', async () => {
    const pb = await freePort();
    const b = await node('b', pb, {});
    const flood = startFlood(pb, { addresses: ['127.0.0.2'], socketsPerAddress: 5, reopen: false });
    try {
      await waitFor('flood opened', () => flood.opened() === 5);
      await waitFor('all closed by the server', () => flood.connected() === 0, { timeoutMs: 30_000 });
      expect(b.t.stats().authFailures).toBe(5);
      // Logged through the throttle: the first at once, the rest summed into one line at the end of its interval.
      const noHello = () => b.lines.filter((l) => String(l['reason']) === 'no hello within 1000 ms');
      await waitFor('every refusal counted in the log', () => noHello().reduce((n, l) => n + Number(l['count']), 0) === 5, { timeoutMs: 30_000 });
      expect(noHello().length).toBeLessThanOrEqual(2);
      expect(noHello()[0]).toMatchObject({ msg: 'raft transport refused connection', count: 1, code: 'MANATEE_ERR_RAFT_AUTH' });
    } finally {
      flood.stop();
    }
  });

  it('a flood from many addresses that keeps reopening does not keep the peer out', async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    // b lists a as a member (as every peer of a shard does): a's address has slots of its own.
    const b = await node('b', pb, { a: `127.0.0.1:${pa}` });
    // Six per address (under the per-address cap of 8), 480 in all: the pool of 32 is what holds.
    const addresses = Array.from({ length: 80 }, (_, i) => `127.0.0.${i + 2}`);
    const flood = startFlood(pb, { addresses, socketsPerAddress: 6, reopen: true });
    try {
      await waitFor('flood opened', () => flood.opened() >= 480);
      const a = await node('a', pa, { b: `127.0.0.1:${pb}` });
      await waitFor('the peer gets through', () => {
        a.t.send([hb('a', 'b', 1)]);
        return b.got.length > 0;
      }, { timeoutMs: 30_000, intervalMs: 50 });
      expect(b.t.stats().connectionsEvicted).toBeGreaterThan(0);
      expect(b.lines.some((l) => String(l['reason']).includes('32 unauthenticated connections already'))).toBe(true);
    } finally {
      flood.stop();
    }
  });

  /** A silent socket from `localAddress` on `port` (connected, never sends a byte unless told). */
  async function silent(port: number, localAddress: string): Promise<{ sock: Socket; closed: () => boolean }> {
    const sock = connect({ host: '127.0.0.1', port, localAddress });
    sockets.push(sock);
    let isClosed = false;
    sock.on('error', () => {});
    sock.on('close', () => { isClosed = true; });
    sock.resume();
    await new Promise<void>((r) => { sock.on('connect', () => { r(); }); });
    return { sock, closed: () => isClosed };
  }

  /** Resolves when the server's challenge frame has come on `sock`. */
  function challengeOn(sock: Socket): Promise<void> {
    const dec = new FrameDecoder(1024);
    return new Promise((resolve) => {
      sock.on('data', (c: Buffer) => { if (dec.push(c).some((f) => f.kind === FRAME_CHALLENGE)) resolve(); });
    });
  }

  it("a member's address has slots of its own: a flood from other addresses never evicts its connection", async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, { a: `127.0.0.1:${pa}` }, { helloTimeoutMs: 60_000 });
    const member = await silent(pb, '127.0.0.1');
    const stranger = await silent(pb, '127.0.0.200');
    // 40 addresses, 5 sockets each, none a member's: the pool of 32 evicts 169 of them, oldest first.
    const flood = startFlood(pb, { addresses: Array.from({ length: 40 }, (_, i) => `127.0.0.${i + 2}`), socketsPerAddress: 5, reopen: false });
    try {
      await waitFor('flood connected', () => flood.opened() >= 200, { timeoutMs: 30_000 });
      await waitFor('the pool evicted the flood past its cap', () => b.t.stats().connectionsEvicted >= 169, { timeoutMs: 30_000 });
      // The stranger's socket went in its turn (once no address of the pool held more); the member's stayed.
      await waitFor('the stranger evicted', () => stranger.closed(), { timeoutMs: 30_000 });
      expect(member.closed()).toBe(false);
      expect(b.t.stats().connectionsEvicted).toBe(169);
    } finally {
      flood.stop();
    }
  });

  it("a flood from a member's own address evicts its silent sockets before a connection that has spoken", async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    const b = await node('b', pb, { a: `127.0.0.1:${pa}` }, { helloTimeoutMs: 60_000 });
    // The oldest from 127.0.0.1, and it has sent part of a frame (as a peer's TLS ClientHello comes at once).
    const spoken = await silent(pb, '127.0.0.1');
    await challengeOn(spoken.sock);
    spoken.sock.write(Buffer.from([0, 0]));
    // A second socket's challenge: the server has read what came before it (on loopback, in order).
    const probe = await silent(pb, '127.0.0.1');
    await challengeOn(probe.sock);
    const flood = startFlood(pb, { addresses: ['127.0.0.1'], socketsPerAddress: 50, reopen: false });
    try {
      await waitFor('flood connected', () => flood.opened() >= 50, { timeoutMs: 30_000 });
      // 52 from one address against a cap of 8: 44 evicted, every one of them a silent socket.
      await waitFor('the per-address cap held', () => b.t.stats().connectionsEvicted >= 44, { timeoutMs: 30_000 });
      await waitFor('the evicted flood sockets closed', () => flood.connected() + (probe.closed() ? 0 : 1) === 7, { timeoutMs: 30_000 });
      expect(b.t.stats().connectionsEvicted).toBe(44);
      expect(spoken.closed()).toBe(false);
    } finally {
      flood.stop();
    }
  });

  it('rejects transport limits that are not whole numbers >= 1', () => {
    const base = { id: 'a', secret: SECRET, listen: { host: '127.0.0.1', port: 0 }, peers: {}, logger: capture().logger, handlers: { onMessages: () => {} } };
    expect(() => new TcpTransport({ ...base, maxUnauthenticated: 0 })).toThrow(/maxUnauthenticated must be a whole number >= 1, got 0/);
    expect(() => new TcpTransport({ ...base, maxUnauthenticatedPerAddress: 1.5 })).toThrow(/maxUnauthenticatedPerAddress/);
    expect(() => new TcpTransport({ ...base, helloTimeoutMs: -1 })).toThrow(/helloTimeoutMs/);
  });

  it('refuses an unexpected frame kind after authentication', async () => {
    const pb = await freePort();
    const b = await node('b', pb, {});
    const { sock, closed } = await rawClient(pb, { from: 'a', to: 'b', secret: SECRET });
    sock.write(encodeFrame(FRAME_HELLO, '{}'));
    await closed;
    expect(b.t.stats().malformedFrames).toBe(1);
    expect(b.lines.some((l) => String(l['reason']).includes('unexpected frame kind 2'))).toBe(true);
  });

  it('a client drops a server that does not send a proper challenge', async () => {
    const { createServer } = await import('node:net');
    const pb = await freePort();
    const conns = new Set<Socket>();
    const fake = createServer((s) => {
      conns.add(s);
      s.on('close', () => { conns.delete(s); });
      s.on('error', () => {});
      s.write(encodeFrame(FRAME_MESSAGES, '[]'));
    });
    await new Promise<void>((r) => fake.listen(pb, '127.0.0.1', r));
    try {
      const pa = await freePort();
      const a = await node('a', pa, { b: `127.0.0.1:${pb}` });
      a.t.send([hb('a', 'b', 1)]);
      await waitFor('client gave up on the fake server', () => a.lines.some((l) => l['msg'] === 'raft transport: peer did not send a challenge'));
      expect(a.t.stats().messagesSent).toBe(0);
    } finally {
      // close() waits for every accepted connection to end: end them (one the client had not yet
      // dropped kept the test waiting for its 180 s timeout on a loaded machine).
      const closed = new Promise<void>((r) => { fake.close(() => { r(); }); });
      for (const s of conns) s.destroy();
      await closed;
    }
  });

  it('rejects a short secret and a malformed peer address', () => {
    expect(() => new TcpTransport({ id: 'a', secret: 'short', listen: { host: '127.0.0.1', port: 0 }, peers: {}, logger: capture().logger, handlers: { onMessages: () => {} } })).toThrow(/at least 16/);
    expect(() => new TcpTransport({ id: 'a', secret: SECRET, listen: { host: '127.0.0.1', port: 0 }, peers: { b: 'nohost' }, logger: capture().logger, handlers: { onMessages: () => {} } })).toThrow(/host:port/);
  });

  it('backs off between reconnects to a dead peer even while messages keep coming', async () => {
    const [pa, pdead] = [await freePort(), await freePort()];
    const a = await node('a', pa, { dead: `127.0.0.1:${pdead}` }, { reconnectMinMs: 100, reconnectMaxMs: 400 });
    const t0 = Date.now();
    // A heartbeat every 10 ms for a second, as a busy leader would.
    while (Date.now() - t0 < 1000) {
      a.t.send([hb('a', 'dead', 1)]);
      await new Promise((r) => setTimeout(r, 10));
    }
    // 100 + 200 + 400 + 400 ms of backoff fit about 4-5 attempts in a second, not 100.
    expect(a.t.stats().reconnects).toBeLessThanOrEqual(6);
    expect(a.t.stats().reconnects).toBeGreaterThanOrEqual(2);
  });

  describe('silent connections', () => {
    const fast = { keepaliveIntervalMs: 50, silenceTimeoutMs: 300, connectTimeoutMs: 300 };

    /** A server that does `onConn` with each connection and never reads; counts connections. */
    async function fakeServer(onConn: (s: Socket) => void): Promise<{ port: number; conns: () => number; close: () => Promise<void> }> {
      const { createServer } = await import('node:net');
      const port = await freePort();
      let n = 0;
      const held: Socket[] = [];
      const srv = createServer((s) => { n++; held.push(s); s.on('error', () => {}); onConn(s); });
      await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
      return {
        port, conns: () => n,
        close: async () => {
          for (const s of held) s.destroy();
          await new Promise<void>((r) => { srv.close(() => { r(); }); });
        },
      };
    }

    it('drops an outbound connection that receives nothing after the challenge, and dials again', async () => {
      // The challenge is answered, then the server goes quiet for good, as a peer behind a
      // partition does: the TCP connection stays "open" but nothing comes back.
      const srv = await fakeServer((s) => { s.write(encodeFrame(FRAME_CHALLENGE, Buffer.alloc(32, 7))); });
      try {
        const a = await node('a', await freePort(), { b: `127.0.0.1:${srv.port}` }, fast);
        a.t.send([hb('a', 'b', 1)]);
        await waitFor('a second dial after the silence', () => srv.conns() >= 2, { timeoutMs: 20_000 });
        const line = a.lines.find((l) => l['msg'] === 'raft transport: connection to peer is silent, dropping it and dialling again');
        expect(line).toBeDefined();
        expect(String(line!['reason'])).toMatch(/nothing received for \d+ ms \(missed keepalives\)/);
        expect(a.t.stats().silentDrops).toBeGreaterThanOrEqual(1);
        expect(a.unreachable).toContain('b');
        // A silent peer is not a refusing one: its process may be alive behind a partition.
        expect(a.refused).toEqual([]);
      } finally {
        await srv.close();
      }
    });

    it('writes no pings on an outbound connection that carries messages, and still drops it when nothing comes back', async () => {
      // The server answers the challenge, then never writes again (a partition on its side), and
      // counts what it receives: messages every 10 ms, so the dialler has no ping to send.
      let pings = 0;
      let messageFrames = 0;
      const srv = await fakeServer((s) => {
        s.write(encodeFrame(FRAME_CHALLENGE, Buffer.alloc(32, 7)));
        const dec = new FrameDecoder(1 << 20);
        s.on('data', (c: Buffer) => {
          for (const f of dec.push(c)) {
            if (f.kind === FRAME_PING) pings++;
            else if (f.kind === FRAME_MESSAGES) messageFrames++;
          }
        });
      });
      let term = 1;
      let a: Awaited<ReturnType<typeof node>> | null = null;
      const busy = setInterval(() => { a?.t.send([hb('a', 'b', term++)]); }, 10);
      try {
        a = await node('a', await freePort(), { b: `127.0.0.1:${srv.port}` }, fast);
        // Silent drops are judged on what comes back, which the messages going out do not change.
        await waitFor('three dials, each dropped as silent', () => srv.conns() >= 3 && a!.t.stats().silentDrops >= 2, { timeoutMs: 30_000 });
        expect(messageFrames).toBeGreaterThan(20);
        expect(a.t.stats().pingsSkipped).toBeGreaterThan(0);
        // Before: a ping every 50 ms next to the messages (about one for every two frames). A late
        // timer on a loaded machine may still let one through.
        expect(pings * 10).toBeLessThan(messageFrames);
      } finally {
        clearInterval(busy);
        await srv.close();
      }
    });

    it('abandons a dial that gets no challenge and dials again at once', async () => {
      const srv = await fakeServer(() => { /* accepts at the TCP level, then says nothing */ });
      try {
        const a = await node('a', await freePort(), { b: `127.0.0.1:${srv.port}` }, fast);
        a.t.send([hb('a', 'b', 1)]);
        await waitFor('three dials', () => srv.conns() >= 3, { timeoutMs: 20_000 });
        expect(a.t.stats().connectTimeouts).toBeGreaterThanOrEqual(2);
        const lines = a.lines.filter((l) => l['msg'] === 'raft transport: dial to peer got no answer, dialling again');
        // One warning per outage, not one per dial.
        expect(lines).toHaveLength(1);
        expect(String(lines[0]!['reason'])).toBe('no challenge within 300 ms of dialling (connected, but no answer: the next dial waits 600 ms)');
      } finally {
        await srv.close();
      }
    });

    it('reaches a peer slow to send its challenge: each dial that runs out waits twice as long', async () => {
      // The server answers 1 s after each connection (a peer starved on a loaded machine, or busy
      // with a flood): dials waiting 300 and 600 ms give up before it, the one waiting 1200 ms does not.
      let hellos = 0;
      const srv = await fakeServer((s) => {
        const t = setTimeout(() => { if (!s.destroyed) s.write(encodeFrame(FRAME_CHALLENGE, Buffer.alloc(32, 7))); }, 1000);
        s.on('close', () => { clearTimeout(t); });
        const dec = new FrameDecoder(4096);
        s.on('data', (c: Buffer) => { if (dec.push(c).some((f) => f.kind === FRAME_HELLO)) hellos++; });
      });
      try {
        const a = await node('a', await freePort(), { b: `127.0.0.1:${srv.port}` }, { ...fast, silenceTimeoutMs: 5000 });
        a.t.send([hb('a', 'b', 1)]);
        await waitFor('a hello after a slow challenge', () => hellos > 0, { timeoutMs: 30_000 });
        expect(a.t.stats().connectTimeouts).toBeGreaterThanOrEqual(2);
        expect(srv.conns()).toBeGreaterThanOrEqual(3);
      } finally {
        await srv.close();
      }
    });

    it('closes an inbound connection that goes quiet after its hello', async () => {
      const pb = await freePort();
      const b = await node('b', pb, {}, fast);
      const { sock, closed } = await rawClient(pb, { from: 'a', to: 'b', secret: SECRET });
      // The server pings the client while the connection lives.
      let pings = 0;
      const dec = new FrameDecoder(1024);
      sock.on('data', (c: Buffer) => { for (const f of dec.push(c)) if (f.kind === FRAME_PING) pings++; });
      await closed;
      expect(pings).toBeGreaterThanOrEqual(1);
      expect(b.t.stats().silentDrops).toBe(1);
      const line = b.lines.find((l) => l['msg'] === 'raft transport: inbound connection is silent, closing it');
      expect(line?.['peer']).toBe('a');
    });

    it('keeps an idle but healthy pair connected: pings count as life', async () => {
      const [pa, pb] = [await freePort(), await freePort()];
      const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, fast);
      const b = await node('b', pb, { a: `127.0.0.1:${pa}` }, fast);
      a.t.send([hb('a', 'b', 1)]);
      b.t.send([hb('b', 'a', 1)]);
      await waitFor('both delivered', () => a.got.length === 1 && b.got.length === 1);
      // Idle for many silence timeouts: only pings flow.
      const until = Date.now() + 1500;
      await waitFor('1.5 s of idleness', () => Date.now() > until, { timeoutMs: 5000, intervalMs: 50 });
      expect(a.t.stats().silentDrops + b.t.stats().silentDrops).toBe(0);
      expect(a.t.stats().reconnects + b.t.stats().reconnects).toBe(0);
      // Idle: each end pings on both of its connections.
      expect(a.t.stats().pingsSent).toBeGreaterThan(10);
      expect(b.t.stats().pingsSent).toBeGreaterThan(10);
      a.t.send([hb('a', 'b', 2)]);
      await waitFor('still delivering on the same connection', () => b.got.length === 2);
      expect(b.t.stats().connectionsAccepted).toBe(1);
    });

    it('with keepaliveClock caller, checks and pings only when its owner calls keepaliveTick', async () => {
      const [pa, pb] = [await freePort(), await freePort()];
      const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, { ...fast, keepaliveClock: 'caller' });
      const b = await node('b', pb, { a: `127.0.0.1:${pa}` }, fast);
      a.t.send([hb('a', 'b', 1)]);
      b.t.send([hb('b', 'a', 1)]);
      await waitFor('both delivered', () => a.got.length === 1 && b.got.length === 1);
      const until = Date.now() + 400;
      await waitFor('400 ms', () => Date.now() > until, { timeoutMs: 5000, intervalMs: 50 });
      // No timer of its own: nothing pinged, and b, which heard nothing for more than the silence
      // timeout, dropped a's connection (as it must: the owner never called).
      expect(a.t.stats().pingsSent).toBe(0);
      await waitFor('b drops the silent inbound connection from a', () => b.t.stats().silentDrops >= 1, { timeoutMs: 10_000 });
      // The owner's calls ping every connection a has.
      const driver = setInterval(() => { a.t.keepaliveTick(); }, 50);
      try {
        await waitFor('a pings when called', () => a.t.stats().pingsSent >= 4, { timeoutMs: 10_000 });
      } finally {
        clearInterval(driver);
      }
    });

    it('keepaliveTick(callerLateMs): a caller that ran late judges no silence, one whose calls are merely irregular does', async () => {
      const [pa, pb] = [await freePort(), await freePort()];
      // Both on the caller's clock: nothing pings unless called, so a's connections fall silent.
      const a = await node('a', pa, { b: `127.0.0.1:${pb}` }, { ...fast, keepaliveClock: 'caller' });
      const b = await node('b', pb, { a: `127.0.0.1:${pa}` }, { ...fast, keepaliveClock: 'caller' });
      a.t.send([hb('a', 'b', 1)]);
      b.t.send([hb('b', 'a', 1)]);
      await waitFor('both delivered', () => a.got.length === 1 && b.got.length === 1);
      const until = Date.now() + 2 * fast.silenceTimeoutMs;
      await waitFor('two silence timeouts', () => Date.now() > until, { timeoutMs: 5000, intervalMs: 20 });
      // Without a figure, the long gap since the last call reads as this process running late.
      a.t.keepaliveTick();
      expect(a.t.stats().silentDrops).toBe(0);
      // Said late by the caller: not judged either.
      a.t.keepaliveTick(10_000);
      expect(a.t.stats().silentDrops).toBe(0);
      expect(a.lines.filter((l) => l['msg'] === 'raft transport: keepalive timer ran late, not judging silence this round')).toHaveLength(2);
      // On time by the caller's word (a Raft follower ticks when its leader's messages come):
      // the silence is judged, and both of a's connections to b are dropped.
      a.t.keepaliveTick(0);
      expect(a.t.stats().silentDrops).toBe(2);
    });

    it('rejects a silence timeout that is not more than two keepalive intervals', () => {
      expect(() => new TcpTransport({ id: 'a', secret: SECRET, listen: { host: '127.0.0.1', port: 0 }, peers: {}, logger: capture().logger, handlers: { onMessages: () => {} }, keepaliveIntervalMs: 200, silenceTimeoutMs: 300 }))
        .toThrow(/silenceTimeoutMs \(300\) must be more than twice keepaliveIntervalMs \(200\)/);
    });
  });
});
