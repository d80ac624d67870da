// Raft messages between peers: one persistent TCP connection per destination (outbound only;
// replies come back over the peer's own connection to us, as in etcd's stream transport).
//
// Authentication: the server sends a random nonce; the client answers with
// HMAC-SHA256(secret, nonce, from, to). A wrong or late answer is refused, logged with the remote
// address and the reason, counted, and the connection is closed. After that, every frame must
// carry messages from the authenticated peer to this node, or the connection is closed.
//
// TLS (when `tls` is given): mutual TLS 1.3 under the challenge. Each side presents its
// certificate, issued by the shard's CA, and checks the other's: the server requires a client
// certificate bound to the peer id that the hello claims, and the client requires the server's to
// be bound to the peer id it dialled. The secret's HMAC still runs inside, so a stolen certificate
// alone is not enough (and the shard secret can be rotated apart from the certificates).
//
// Slots: a connection that has not authenticated yet holds one of a small number of slots
// (maxUnauthenticated, and maxUnauthenticatedPerAddress per remote address) for at most
// helloTimeoutMs. A new connection that finds them full is not refused: it takes the slot of the
// oldest unauthenticated connection of the address that holds the most. A member's address (the
// host of a peer this node dials) has its own slots, outside that pool: a flood from other
// addresses, however many, never evicts a peer's connection. Within one address, a connection
// that has sent nothing goes before one that has (a peer's TLS ClientHello comes at once), so a
// flood of half-open sockets from a member's own address does not take its peer's slot either.
// Authenticated connections have their own cap; a peer that authenticates again replaces its
// previous connection, so a peer with the secret always gets a slot.
//
// Batching: send() writes the messages of one call to a connected destination at once, as few
// frames as maxFrameBytes allows (the node sends each Ready's messages in one call: waiting for
// the next event-loop turn cost a loop hop on each side of every round trip). To a destination
// still connecting, messages queue and go out when it is ready. The queue is bounded: past the
// limit the oldest messages are dropped (Raft retransmits) and counted.
//
// Liveness: a TCP connection whose path goes silent (a partition, a peer that froze) does not fail
// by itself: queued bytes wait out TCP's retransmission back-off, which after a long partition is
// tens of seconds. So both ends send a small ping frame every keepaliveIntervalMs (the dialling
// end not when it wrote messages within that interval: a leader's heartbeats and the followers'
// answers already flow every 100 ms, and each ping wakes the process at the other end), and a
// connection that has received nothing for silenceTimeoutMs is dropped, logged with the reason,
// and dialled again. A dial that has not produced the peer's challenge within connectTimeoutMs is
// abandoned and dialled again after the shortest backoff, so that after a partition heals a peer
// is heard from within about connectTimeoutMs + reconnectMinMs (a dial that the peer accepted but did
// not answer in time doubles the next one's deadline, up to 8 times, so that a peer slow to answer
// is not abandoned just before it does; a dial with no TCP connection, as in a partition, does not). (TCP keepalive only probes an idle
// connection, and TCP_USER_TIMEOUT is not reachable from Node without a native addon; the pings
// cover both.) All of it is measured with the monotonic clock.
import { createHmac, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { createServer, connect, Socket, type Server } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect, Server as TlsServer, type ConnectionOptions, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import type { Logger } from '../../log.js';
import type { NodeId } from '../core/types.js';
import type { PeerMessage } from './messages.js';
import { RaftConfigError } from '../errors.js';
import { FRAME_CHALLENGE, FRAME_HELLO, FRAME_MESSAGES, FRAME_PING, FrameDecoder, FrameTooLargeError, encodeFrame, type Frame } from './frame.js';
import { parseMessages } from './validate.js';
import { ThrottledLog } from './throttled-log.js';
import { errorMessage } from '../../errors.js';

export interface TransportStats {
  /** Inbound connections accepted at the TCP level (before authentication). */
  connectionsAccepted: number;
  /** Inbound connections that authenticated. */
  connectionsAuthenticated: number;
  /** Inbound connections refused for a wrong, missing or late secret proof. */
  authFailures: number;
  /** Unauthenticated inbound connections closed to make room for a newer one (slots full). */
  connectionsEvicted: number;
  /** Authenticated inbound connections closed because the same peer authenticated again. */
  connectionsReplaced: number;
  /** Inbound frames refused for exceeding maxFrameBytes. */
  oversizedFrames: number;
  /** Inbound frames refused as malformed (bad JSON, bad message shape, wrong sender). */
  malformedFrames: number;
  framesReceived: number;
  messagesReceived: number;
  framesSent: number;
  messagesSent: number;
  /** Outbound messages dropped: queue full, unknown destination, or larger than a frame. */
  messagesDropped: number;
  /** Outbound connection attempts after the first one to a destination. */
  reconnects: number;
  /** Connections (either way) dropped because nothing came from the other end for silenceTimeoutMs. */
  silentDrops: number;
  /** Outbound dials abandoned because no challenge came within connectTimeoutMs. */
  connectTimeouts: number;
  /** Ping frames written (both ways). */
  pingsSent: number;
  /** Pings not written on an outbound connection because it carried messages within keepaliveIntervalMs. */
  pingsSkipped: number;
}

export interface TransportHandlers {
  /** Messages received for this node, already validated. */
  onMessages(messages: PeerMessage[]): void;
  /** A destination could not be reached (connection failed or was lost). */
  onUnreachable?(to: NodeId): void;
  /**
   * A dial to a destination was refused (ECONNREFUSED: nothing listens at its address, so its
   * process is gone or has not opened its port yet). Called after onUnreachable for that dial.
   */
  onRefused?(to: NodeId): void;
  /** A snapshot message was written to the socket (ok) or dropped (not ok). */
  onSnapshotSent?(to: NodeId, ok: boolean): void;
}

/** A peer's TLS set as the transport uses it (src/tls's TlsMaterial has this shape). */
export interface TransportTlsMaterial {
  /** The CA, this peer's certificate and key, TLS 1.3 at least. */
  readonly options: { readonly ca: string; readonly cert: string; readonly key: string; readonly minVersion: 'TLSv1.3' };
  readonly context: SecureContext;
}

export interface TransportTls {
  /** The current set: read at each new connection, so that a reloaded certificate serves the next ones. */
  current(): TransportTlsMaterial;
  /** Runs `listener` after each reload; returns the function that stops it. */
  onReload(listener: () => void): () => void;
  /** The peer id a certificate is bound to, or null (src/tls peerIdOf). */
  peerIdOf(cert: X509Certificate): NodeId | null;
}

export interface TransportOptions {
  readonly id: NodeId;
  /** The shard secret this node proves itself with (and accepts). */
  readonly secret: string;
  /** More secrets accepted from peers (a rotation's window); never sent. Changed with setSecrets(). */
  readonly acceptedSecrets?: readonly string[];
  readonly listen: { readonly host: string; readonly port: number };
  /** NodeId -> "host:port". May be changed later with setPeer/removePeer. */
  readonly peers: Readonly<Record<NodeId, string>>;
  readonly logger: Logger;
  readonly handlers: TransportHandlers;
  /** Largest frame accepted or sent; a snapshot must fit in one. Default 64 MiB. */
  readonly maxFrameBytes?: number;
  /** Most messages queued per destination before the oldest are dropped. Default 10000. */
  readonly maxQueueMessages?: number;
  /** Time an inbound connection has to authenticate. Default 1000 ms. */
  readonly helloTimeoutMs?: number;
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /** How long start() retries a listen port that is in use. Default 5000 ms. */
  readonly listenRetryMs?: number;
  /** Mutual TLS on every connection; absent: plain TCP (the HMAC challenge only). */
  readonly tls?: TransportTls;
  /** Most authenticated inbound connections at once. Default 256. */
  readonly maxInboundConnections?: number;
  /** Most inbound connections that have not authenticated yet. Default 32. */
  readonly maxUnauthenticated?: number;
  /** Most unauthenticated inbound connections from one remote address. Default 8. */
  readonly maxUnauthenticatedPerAddress?: number;
  /** How often each end of a connection sends a ping frame. Default 300 ms (KEEPALIVE_INTERVAL_MS). */
  readonly keepaliveIntervalMs?: number;
  /**
   * What runs the keepalive check (keepaliveTick) every keepaliveIntervalMs: the transport's own
   * timer ('timer', the default), or its owner ('caller'), from a timer it has anyway: the Raft
   * node calls it from its tick, so that the pings cost no wake-up of their own.
   */
  readonly keepaliveClock?: 'timer' | 'caller';
  /** A connection that received nothing (no frame, no ping) for this long is dropped. Default 1000 ms. */
  readonly silenceTimeoutMs?: number;
  /** An outbound dial that has not received the peer's challenge within this is abandoned. Default 500 ms. */
  readonly connectTimeoutMs?: number;
}

const HELLO_DOMAIN = 'manatee-raft-hello-v1';
/**
 * The default keepaliveIntervalMs: 3 pings per default silence timeout (1 s). Most of an idle
 * sitter's wake-ups are these pings (a connection between two followers carries nothing else, and
 * each end of it pings: each follower read 10 pings a second from the other at 200 ms), and each
 * wake-up takes CPU and cache from PostgreSQL on a small machine.
 */
export const KEEPALIVE_INTERVAL_MS = 300;
/** The code in the log line of a refused connection (no accepted secret, a bad certificate, a late hello). */
export const RAFT_ERR_AUTH = 'MANATEE_ERR_RAFT_AUTH';
const NONCE_BYTES = 32;
const HELLO_MAX_BYTES = 4096;
/** Evictions are summed into one log line per interval: a flood must not flood the log too. */
const EVICTION_LOG_INTERVAL_MS = 1000;
/**
 * Refusals of sockets that never identified themselves (no hello in time, a failed TLS handshake)
 * are what a flood makes, one per socket: at most one line per this interval, with the count.
 */
const UNIDENTIFIED_LOG_INTERVAL_MS = 5000;
/** How many times a hello deadline that fired late is extended (our stall, not the peer's delay). */
const HELLO_LATE_REARMS_MAX = 3;
/**
 * A dial whose challenge does not come within its deadline doubles the deadline for the next
 * dial, up to connectTimeoutMs times this: a peer that is slow to answer (its event loop starved
 * on a loaded machine, or busy with a flood) is not abandoned again and again just before it
 * answers. A challenge resets it.
 */
const CONNECT_TIMEOUT_GROWTH_MAX = 8;

/** An inbound connection, from accept to close. */
interface InboundConnection {
  /** The TCP socket (slots are counted on it). */
  readonly raw: Socket;
  /** What the protocol runs on: the TLS socket once its handshake is done, else `raw`. */
  sock: Socket;
  readonly address: string;
  /** address:port, for logs. */
  readonly remote: string;
  /** Set once the hello is accepted. */
  peer: NodeId | null;
  /** Refused, evicted or replaced: nothing more is read. */
  done: boolean;
  helloTimer: NodeJS.Timeout | null;
  /** performance.now() when it last received bytes. */
  lastHeardMs: number;
}

/** Why a TLS peer's certificate was not verified (CERT_HAS_EXPIRED...): node types it Error, but sets a code string. */
function authorizationErrorOf(sock: TLSSocket): string | null {
  const authz: unknown = (sock as { authorizationError?: unknown }).authorizationError;
  return typeof authz === 'string' ? authz : authz instanceof Error ? authz.message : null;
}

/** The TCP socket under a server-side TLS socket (node keeps it as `_parent`). */
function parentOf(sock: TLSSocket): Socket | null {
  const parent = (sock as unknown as { _parent?: unknown })._parent;
  return parent instanceof Socket ? parent : null;
}

export function helloMac(secret: string, nonce: Buffer, from: NodeId, to: NodeId): Buffer {
  return createHmac('sha256', secret).update(HELLO_DOMAIN).update('\0').update(nonce).update('\0').update(from).update('\0').update(to).digest();
}

/** An IPv4 address as a dual-stack socket shows it (::ffff:10.0.0.1), as written (10.0.0.1). */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address;
}

export function parseAddress(addr: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port <= 0 || port > 65535 || m[1] === '') {
    throw new RaftConfigError(`peer address ${JSON.stringify(addr)} is not host:port`);
  }
  return { host: m[1]!, port };
}


/** The outbound side for one destination: queue, connection, backoff. */
class PeerLink {
  queue: PeerMessage[] = [];
  socket: Socket | null = null;
  state: 'idle' | 'connecting' | 'ready' | 'closed' = 'idle';
  attempts = 0;
  backoffMs: number;
  reconnectTimer: NodeJS.Timeout | null = null;
  flushScheduled = false;
  everConnected = false;
  reportedDown = false;
  /** performance.now() when the current dial began, or when the connection last received bytes. */
  lastHeardMs = 0;
  /** performance.now() when messages were last written to the connection (-Infinity: none yet). */
  lastSentMs = -Infinity;
  /** Why the last connection failed (TLS), for the log. */
  lastError: string | null = null;
  /** The current dial failed with ECONNREFUSED. */
  refused = false;
  /** The current dial's deadline for the challenge: connectTimeoutMs, doubled after each dial that ran out after its TCP connection was made. */
  connectTimeoutMs = 0;
  /** The current dial's TCP connection is made (the peer accepted it). */
  tcpConnected = false;

  constructor(readonly id: NodeId, public address: string, minBackoffMs: number) {
    this.backoffMs = minBackoffMs;
  }
}

export class TcpTransport {
  private readonly opts: TransportOptions;
  private readonly log: Logger;
  private readonly maxFrameBytes: number;
  private readonly maxQueueMessages: number;
  private readonly helloTimeoutMs: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly maxInbound: number;
  private readonly maxUnauthenticated: number;
  private readonly maxUnauthenticatedPerAddress: number;
  /** Oldest first (a Set keeps insertion order). */
  private readonly pending = new Set<InboundConnection>();
  /** Connections in their TLS handshake, by TCP socket. */
  private readonly handshaking = new Map<Socket, InboundConnection>();
  /** Authenticated inbound connections by peer id. */
  private readonly authenticated = new Map<NodeId, InboundConnection>();
  /** With TLS: handshakes run on this server (never listening itself; accept() hands it sockets). */
  private tlsServer: TlsServer | null = null;
  private unsubscribeTls: (() => void) | null = null;
  private evictionLog = { sinceLine: 0, lastLineAtMs: 0 };
  /** Refusals of sockets that sent no hello in time, and of failed TLS handshakes (a flood's). */
  private readonly unidentifiedLogs: Record<'no-hello' | 'tls-handshake', ThrottledLog>;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly inbound = new Set<Socket>();
  private readonly keepaliveIntervalMs: number;
  private readonly silenceTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private lastKeepaliveTickMs = performance.now();
  private server: Server | null = null;
  private closed = false;
  private readonly counters: TransportStats = {
    connectionsAccepted: 0, connectionsAuthenticated: 0, authFailures: 0, connectionsEvicted: 0, connectionsReplaced: 0, oversizedFrames: 0, malformedFrames: 0,
    framesReceived: 0, messagesReceived: 0, framesSent: 0, messagesSent: 0, messagesDropped: 0, reconnects: 0,
    silentDrops: 0, connectTimeouts: 0, pingsSent: 0, pingsSkipped: 0,
  };

  /** The secret sent, then the others accepted (setSecrets). */
  private secrets: readonly string[];

  constructor(opts: TransportOptions) {
    this.secrets = TcpTransport.checkSecrets(opts.secret, opts.acceptedSecrets ?? []);
    this.opts = opts;
    this.log = opts.logger;
    const unidentified = (msg: string): ThrottledLog => new ThrottledLog({ log: this.log, msg, intervalMs: UNIDENTIFIED_LOG_INTERVAL_MS, nowMs: () => performance.now() });
    this.unidentifiedLogs = {
      'no-hello': unidentified('raft transport refused connection'),
      'tls-handshake': unidentified('raft transport refused connection'),
    };
    this.maxFrameBytes = opts.maxFrameBytes ?? 64 * 1024 * 1024;
    this.maxQueueMessages = opts.maxQueueMessages ?? 10_000;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 1000;
    this.reconnectMinMs = opts.reconnectMinMs ?? 50;
    this.reconnectMaxMs = opts.reconnectMaxMs ?? 500;
    this.keepaliveIntervalMs = opts.keepaliveIntervalMs ?? KEEPALIVE_INTERVAL_MS;
    this.silenceTimeoutMs = opts.silenceTimeoutMs ?? 1000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 500;
    if (!(this.keepaliveIntervalMs > 0) || !(this.silenceTimeoutMs > 2 * this.keepaliveIntervalMs) || !(this.connectTimeoutMs > 0)) {
      throw new RaftConfigError(`silenceTimeoutMs (${this.silenceTimeoutMs}) must be more than twice keepaliveIntervalMs (${this.keepaliveIntervalMs}), and connectTimeoutMs (${this.connectTimeoutMs}) positive`);
    }
    this.maxInbound = opts.maxInboundConnections ?? 256;
    this.maxUnauthenticated = opts.maxUnauthenticated ?? 32;
    this.maxUnauthenticatedPerAddress = opts.maxUnauthenticatedPerAddress ?? 8;
    for (const [name, v] of [['maxInboundConnections', this.maxInbound], ['maxUnauthenticated', this.maxUnauthenticated], ['maxUnauthenticatedPerAddress', this.maxUnauthenticatedPerAddress], ['helloTimeoutMs', this.helloTimeoutMs]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RaftConfigError(`transport ${name} must be a whole number >= 1, got ${v}`);
    }
    for (const [id, addr] of Object.entries(opts.peers)) this.setPeer(id, addr);
  }

  /**
   * Binds the listening socket. A port still held for a moment (by a previous instance, or by an
   * outbound connection that the OS gave that ephemeral port) is retried for up to listenRetryMs.
   */
  async start(): Promise<void> {
    if (this.opts.tls !== undefined && this.tlsServer === null) this.startTls(this.opts.tls);
    const deadline = Date.now() + (this.opts.listenRetryMs ?? 5000);
    for (let attempt = 1; ; attempt++) {
      const server = createServer({ noDelay: true }, (s) => { this.accept(s); });
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(this.opts.listen.port, this.opts.listen.host, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code !== 'EADDRINUSE' || Date.now() > deadline) throw err;
        this.log.warn({ listen: this.opts.listen, attempt }, 'raft transport: listen address in use, retrying');
        await new Promise((r) => setTimeout(r, Math.min(500, 50 * attempt)));
        continue;
      }
      this.server = server;
      server.on('error', (err) => { this.log.error({ err: errorMessage(err) }, 'raft transport server error'); });
      this.lastKeepaliveTickMs = performance.now();
      if (this.opts.keepaliveClock !== 'caller') {
        this.keepaliveTimer = setInterval(() => { this.keepaliveTick(); }, this.keepaliveIntervalMs);
        this.keepaliveTimer.unref();
      }
      return;
    }
  }

  private startTls(tls: TransportTls): void {
    // The client's certificate is checked in onSecure (authorized), so that a refusal is logged
    // with its reason: with rejectUnauthorized node would close the socket without saying why.
    const server = new TlsServer({ ...tls.current().options, requestCert: true, rejectUnauthorized: false });
    server.on('secureConnection', (sock: TLSSocket) => { this.onSecure(sock); });
    server.on('tlsClientError', (err: Error, sock: TLSSocket) => { this.onTlsError(err, sock); });
    this.unsubscribeTls = tls.onReload(() => { server.setSecureContext({ ...tls.current().options }); });
    this.tlsServer = server;
  }

  /** The bound address (useful with port 0). */
  address(): { host: string; port: number } {
    const a = this.server?.address();
    if (a === null || a === undefined || typeof a === 'string') throw new RaftConfigError('transport is not listening');
    return { host: a.address, port: a.port };
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  peers(): Record<NodeId, string> {
    const out: Record<NodeId, string> = {};
    for (const [id, l] of this.links) out[id] = l.address;
    return out;
  }

  /** Adds a destination or changes its address (the old connection is dropped). */
  setPeer(id: NodeId, address: string): void {
    if (id === this.opts.id) return;
    parseAddress(address);
    const link = this.links.get(id);
    if (link === undefined) {
      this.links.set(id, new PeerLink(id, address, this.reconnectMinMs));
      return;
    }
    if (link.address === address) return;
    this.log.info({ peer: id, from: link.address, to: address }, 'raft transport: peer address changed, reconnecting');
    link.address = address;
    this.dropConnection(link);
  }

  removePeer(id: NodeId): void {
    const link = this.links.get(id);
    if (link === undefined) return;
    this.links.delete(id);
    link.state = 'closed';
    this.counters.messagesDropped += link.queue.length;
    link.queue = [];
    if (link.reconnectTimer !== null) clearTimeout(link.reconnectTimer);
    link.socket?.destroy();
  }

  /**
   * Sends messages: written at once (one frame per destination where they fit) to connected
   * destinations, queued for the others.
   */
  send(messages: readonly PeerMessage[]): void {
    if (this.closed) return;
    const touched = new Set<PeerLink>();
    for (const m of messages) {
      const link = this.enqueue(m);
      if (link !== null) touched.add(link);
    }
    for (const link of touched) {
      if (link.state === 'ready' && !link.flushScheduled) this.flush(link);
      else this.scheduleFlush(link);
    }
  }

  /**
   * Sends messages with whatever else goes to their destinations in this event-loop turn: queued,
   * and written in one frame per destination at the end of the turn (setImmediate). For messages
   * that can wait that long, so that a peer is woken once for them and the turn's other messages.
   */
  sendSoon(messages: readonly PeerMessage[]): void {
    if (this.closed) return;
    for (const m of messages) {
      const link = this.enqueue(m);
      if (link !== null) this.scheduleFlush(link);
    }
  }

  /** Queues `m` on its destination's link (dropping the oldest past maxQueueMessages); null for an unknown destination. */
  private enqueue(m: PeerMessage): PeerLink | null {
    const link = this.links.get(m.to);
    if (link === undefined) {
      this.counters.messagesDropped++;
      if (m.type === 'snapshot') this.opts.handlers.onSnapshotSent?.(m.to, false);
      return null;
    }
    link.queue.push(m);
    if (link.queue.length > this.maxQueueMessages) {
      const dropped = link.queue.splice(0, link.queue.length - this.maxQueueMessages);
      this.counters.messagesDropped += dropped.length;
      for (const d of dropped) if (d.type === 'snapshot') this.opts.handlers.onSnapshotSent?.(d.to, false);
    }
    return link;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    for (const id of [...this.links.keys()]) this.removePeer(id);
    for (const s of this.inbound) s.destroy();
    this.inbound.clear();
    this.pending.clear();
    this.handshaking.clear();
    this.authenticated.clear();
    this.unsubscribeTls?.();
    this.unsubscribeTls = null;
    for (const l of Object.values(this.unidentifiedLogs)) l.flush();
    const server = this.server;
    if (server !== null) await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
  }

  // ---- outbound ----

  private scheduleFlush(link: PeerLink): void {
    if (link.state === 'idle') {
      // While a reconnect waits out its backoff, messages only queue: Raft sends every tick,
      // and must not turn the backoff into a reconnect per heartbeat.
      if (link.reconnectTimer === null) this.connectLink(link);
      return;
    }
    if (link.state !== 'ready' || link.flushScheduled) return;
    link.flushScheduled = true;
    setImmediate(() => {
      link.flushScheduled = false;
      this.flush(link);
    });
  }

  private connectLink(link: PeerLink): void {
    if (this.closed || link.state === 'closed') return;
    const { host, port } = parseAddress(link.address);
    if (link.attempts > 0) this.counters.reconnects++;
    link.attempts++;
    link.state = 'connecting';
    link.lastHeardMs = performance.now();
    link.lastSentMs = -Infinity;
    link.tcpConnected = false;
    const sock = this.dial(link, host, port);
    link.socket = sock;
    sock.once('connect', () => { if (link.socket === sock) link.tcpConnected = true; });
    const decoder = new FrameDecoder(1024);
    sock.on('data', (chunk: Buffer) => {
      if (link.socket !== sock) return;
      // After the challenge the peer sends only pings, so every byte is a sign of life, nothing to decode.
      if (link.state === 'ready') link.lastHeardMs = performance.now();
      if (link.state !== 'connecting') return;
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.log.warn({ peer: link.id, address: link.address, reason: errorMessage(err) }, 'raft transport: bad challenge from peer');
        sock.destroy();
        return;
      }
      const ch = frames[0];
      if (ch === undefined) return;
      if (ch.kind !== FRAME_CHALLENGE || ch.payload.length !== NONCE_BYTES) {
        this.log.warn({ peer: link.id, address: link.address }, 'raft transport: peer did not send a challenge');
        sock.destroy();
        return;
      }
      const mac = helloMac(this.secrets[0]!, ch.payload, this.opts.id, link.id).toString('hex');
      sock.write(encodeFrame(FRAME_HELLO, JSON.stringify({ from: this.opts.id, to: link.id, mac })));
      link.state = 'ready';
      link.lastHeardMs = performance.now();
      link.backoffMs = this.reconnectMinMs;
      link.connectTimeoutMs = this.connectTimeoutMs;
      if (link.reportedDown) this.log.info({ peer: link.id, address: link.address }, 'raft transport: connected to peer');
      link.everConnected = true;
      link.reportedDown = false;
      this.flush(link);
    });
    sock.on('drain', () => { if (link.socket === sock) this.flush(link); });
    // Otherwise reported through 'close'.
    sock.on('error', (err: NodeJS.ErrnoException) => { if (link.socket === sock && err.code === 'ECONNREFUSED') link.refused = true; });
    sock.on('close', () => {
      if (link.socket !== sock) return;
      link.socket = null;
      const refused = link.refused;
      link.refused = false;
      if (link.state === 'closed' || this.closed) return;
      if (!link.reportedDown) {
        this.log.warn({ peer: link.id, address: link.address, ...(link.lastError !== null ? { reason: link.lastError } : {}) }, 'raft transport: connection to peer lost or refused, retrying with backoff');
        link.reportedDown = true;
      }
      link.lastError = null;
      link.state = 'idle';
      this.opts.handlers.onUnreachable?.(link.id);
      if (refused) this.opts.handlers.onRefused?.(link.id);
      this.scheduleReconnect(link);
    });
  }

  /** A TCP connection, or with TLS one whose server certificate must be bound to the peer dialled. */
  private dial(link: PeerLink, host: string, port: number): Socket {
    const tls = this.opts.tls;
    if (tls === undefined) return connect({ host, port, noDelay: true });
    const options: ConnectionOptions = {
      host, port, secureContext: tls.current().context, rejectUnauthorized: true,
      // Peers are dialled by address; what must match is the id they are bound to, not a host name.
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const id = tls.peerIdOf(new X509Certificate(cert.raw));
        return id === link.id ? undefined : new RaftConfigError(`the server's certificate is bound to ${id === null ? 'no peer id' : `peer ${id}`}, not to ${link.id}`);
      },
    };
    const sock = tlsConnect(options);
    sock.setNoDelay(true);
    sock.on('error', (err: Error) => { if (link.socket === sock) link.lastError = err.message; });
    return sock;
  }

  private scheduleReconnect(link: PeerLink): void {
    if (link.reconnectTimer !== null || this.closed) return;
    const delayMs = link.backoffMs;
    link.backoffMs = Math.min(this.reconnectMaxMs, link.backoffMs * 2);
    link.reconnectTimer = setTimeout(() => {
      link.reconnectTimer = null;
      if (link.state === 'idle' && !this.closed) this.connectLink(link);
    }, delayMs);
    link.reconnectTimer.unref();
  }

  /**
   * Every keepaliveIntervalMs: pings every connection, drops the silent ones, abandons slow dials.
   * A tick that comes late (this process was paused or starved) checks nothing: the bytes that
   * arrived meanwhile are not read yet, and a silence measured across our own stall is not the peer's.
   * The transport's timer calls it, or with keepaliveClock 'caller' its owner, which says how late
   * it ran (callerLateMs); without it the lateness is the gap since the last call less the interval.
   */
  keepaliveTick(callerLateMs?: number): void {
    if (this.server === null || this.closed) return;
    const nowMs = performance.now();
    const gapMs = nowMs - this.lastKeepaliveTickMs;
    this.lastKeepaliveTickMs = nowMs;
    // The caller's clock may come at irregular moments (a Raft follower ticks on its leader's
    // messages): it says how late it ran, and a long gap is not lateness then.
    const lateMs = callerLateMs ?? gapMs - this.keepaliveIntervalMs;
    const judge = lateMs < this.silenceTimeoutMs / 2 - this.keepaliveIntervalMs;
    if (!judge) this.log.info({ gapMs: Math.round(gapMs), lateMs: Math.round(lateMs) }, 'raft transport: keepalive timer ran late, not judging silence this round');
    const ping = encodeFrame(FRAME_PING, Buffer.alloc(0));
    const toPing: Socket[] = [];
    for (const link of this.links.values()) {
      const sock = link.socket;
      if (sock === null) continue;
      const quietMs = nowMs - link.lastHeardMs;
      const connectTimeoutMs = Math.max(link.connectTimeoutMs, this.connectTimeoutMs);
      if (link.state === 'connecting' && judge && quietMs > connectTimeoutMs) {
        this.counters.connectTimeouts++;
        // Only a peer that accepted the TCP connection and then was slow is given longer: a dial
        // lost in a partition (no TCP connection at all) keeps the short deadline, so that a healed
        // path is found within about connectTimeoutMs.
        if (link.tcpConnected) link.connectTimeoutMs = Math.min(connectTimeoutMs * 2, this.connectTimeoutMs * CONNECT_TIMEOUT_GROWTH_MAX);
        this.abandonLink(link, sock, `no challenge within ${connectTimeoutMs} ms of dialling${link.tcpConnected ? ` (connected, but no answer: the next dial waits ${link.connectTimeoutMs} ms)` : ''}`, 'raft transport: dial to peer got no answer, dialling again');
      } else if (link.state === 'ready' && judge && quietMs > this.silenceTimeoutMs) {
        this.counters.silentDrops++;
        this.abandonLink(link, sock, `nothing received for ${Math.round(quietMs)} ms (missed keepalives)`, 'raft transport: connection to peer is silent, dropping it and dialling again');
      } else if (link.state === 'ready' && nowMs - link.lastSentMs < this.keepaliveIntervalMs) {
        // Messages went out within the interval: the peer heard from us, a ping would only wake it.
        this.counters.pingsSkipped++;
      } else if (link.state === 'ready') {
        toPing.push(sock);
      }
    }
    for (const [peer, conn] of this.authenticated) {
      const quietMs = nowMs - conn.lastHeardMs;
      if (judge && quietMs > this.silenceTimeoutMs) {
        this.counters.silentDrops++;
        this.log.warn({ peer, remote: conn.remote, reason: `nothing received for ${Math.round(quietMs)} ms (missed keepalives)` }, 'raft transport: inbound connection is silent, closing it');
        this.authenticated.delete(peer);
        conn.done = true;
        conn.sock.destroy();
        conn.raw.destroy();
      } else {
        // The only bytes this end writes on an inbound connection: the dialler judges it by them.
        toPing.push(conn.sock);
      }
    }
    if (toPing.length === 0) return;
    // Written after what this turn's caller sends (a Raft node ticks, then its Ready loop sends the
    // heartbeats): a peer then reads the ping and the messages in one wake-up, not two.
    setImmediate(() => {
      for (const sock of toPing) {
        if (sock.destroyed || sock.writableNeedDrain) continue;
        sock.write(ping);
        this.counters.pingsSent++;
      }
    });
  }

  /**
   * Drops a dial or connection that went silent and dials again after the shortest backoff: the
   * failure was a timeout, already a wait of its own, not a refusal to back off from.
   */
  private abandonLink(link: PeerLink, sock: Socket, reason: string, msg: string): void {
    if (!link.reportedDown) this.log.warn({ peer: link.id, address: link.address, reason }, msg);
    else this.log.debug({ peer: link.id, address: link.address, reason }, msg);
    link.reportedDown = true;
    link.socket = null;
    link.state = 'idle';
    link.backoffMs = this.reconnectMinMs;
    sock.destroy();
    this.opts.handlers.onUnreachable?.(link.id);
    this.scheduleReconnect(link);
  }

  private dropConnection(link: PeerLink): void {
    const s = link.socket;
    link.socket = null;
    link.state = 'idle';
    s?.destroy();
    if (link.queue.length > 0) this.connectLink(link);
  }

  /** Writes everything queued for `link`, packing as many messages per frame as fit. */
  private flush(link: PeerLink): void {
    const sock = link.socket;
    if (link.state !== 'ready' || sock === null || link.queue.length === 0) return;
    if (sock.writableNeedDrain) return; // the 'drain' handler comes back here
    const batch = link.queue;
    link.queue = [];
    let parts: string[] = [];
    let sizeBytes = 2;
    let snapshots: PeerMessage[] = [];
    const writeFrame = (): void => {
      if (parts.length === 0) return;
      const sent = snapshots;
      const n = parts.length;
      sock.write(encodeFrame(FRAME_MESSAGES, `[${parts.join(',')}]`), (err) => {
        for (const m of sent) this.opts.handlers.onSnapshotSent?.(m.to, err === undefined || err === null);
      });
      link.lastSentMs = performance.now();
      this.counters.framesSent++;
      this.counters.messagesSent += n;
      parts = [];
      snapshots = [];
      sizeBytes = 2;
    };
    for (const m of batch) {
      const json = JSON.stringify(m);
      const len = Buffer.byteLength(json) + 1;
      if (len + 2 > this.maxFrameBytes - 1) {
        this.counters.messagesDropped++;
        this.log.warn({ peer: link.id, type: m.type, sizeBytes: len, maxFrameBytes: this.maxFrameBytes }, 'raft transport: message larger than maxFrameBytes dropped');
        if (m.type === 'snapshot') this.opts.handlers.onSnapshotSent?.(m.to, false);
        continue;
      }
      if (sizeBytes + len > this.maxFrameBytes - 1) writeFrame();
      parts.push(json);
      sizeBytes += len;
      if (m.type === 'snapshot') snapshots.push(m);
    }
    writeFrame();
  }

  // ---- inbound ----

  /** The members' addresses (the hosts of the peers this node dials), as a socket's remoteAddress shows them. */
  private memberAddresses(): Set<string> {
    const out = new Set<string>();
    for (const link of this.links.values()) {
      try {
        out.add(plainAddress(parseAddress(link.address).host));
      } catch {
        // a malformed address is refused when dialled; it reserves nothing
      }
    }
    return out;
  }

  /**
   * Makes room for a new unauthenticated connection from `address`. The per-address cap holds for
   * every address; the pool's cap (maxUnauthenticated) only for addresses that are no member's:
   * a member's address has its own slots (reserved), so a flood from other addresses, however
   * many, never evicts a real peer's connection before its hello (with the pool shared, many
   * addresses holding one slot each made the eviction first-in-first-out, and a peer whose hello
   * took longer than the flood's next 32 sockets lost its slot: the transport test failed so at a
   * load of 27). Within an address, a connection that has sent nothing yet goes before one that
   * has (a real peer's TLS ClientHello comes at once; a half-open socket's never), so a flood
   * from a member's own address does not take the slot of the peer's connection either.
   */
  private makeRoom(address: string): void {
    const members = this.memberAddresses();
    const counts = new Map<string, number>();
    let pooled = 0;
    for (const p of this.pending) {
      counts.set(p.address, (counts.get(p.address) ?? 0) + 1);
      if (!members.has(p.address)) pooled++;
    }
    let victimAddress: string | null = null;
    let reason = '';
    if ((counts.get(address) ?? 0) >= this.maxUnauthenticatedPerAddress) {
      victimAddress = address;
      reason = `${this.maxUnauthenticatedPerAddress} unauthenticated connections from this address already`;
    } else if (!members.has(address) && pooled >= this.maxUnauthenticated) {
      const most = Math.max(...[...counts].filter(([a]) => !members.has(a)).map(([, n]) => n));
      victimAddress = [...this.pending].find((p) => !members.has(p.address) && counts.get(p.address) === most)!.address;
      reason = `${this.maxUnauthenticated} unauthenticated connections already; evicted from the address holding the most (${most})`;
    }
    if (victimAddress === null) return;
    const ofAddress = [...this.pending].filter((p) => p.address === victimAddress);
    const victim = ofAddress.find((p) => p.raw.bytesRead === 0) ?? ofAddress[0]!;
    victim.done = true;
    this.pending.delete(victim);
    this.noteEviction(victim.remote, reason);
    victim.sock.destroy();
    victim.raw.destroy();
  }

  private noteEviction(remote: string, reason: string): void {
    this.counters.connectionsEvicted++;
    this.evictionLog.sinceLine++;
    const nowMs = Date.now();
    if (nowMs - this.evictionLog.lastLineAtMs < EVICTION_LOG_INTERVAL_MS) return;
    this.log.warn({ remote, reason, evicted: this.evictionLog.sinceLine, evictedTotal: this.counters.connectionsEvicted }, 'raft transport: unauthenticated connection evicted to make room for a newer one');
    this.evictionLog = { sinceLine: 0, lastLineAtMs: nowMs };
  }

  /** Records `peer`'s new authenticated connection; false when it must be refused. */
  private admitAuthenticated(peer: NodeId, conn: InboundConnection): boolean {
    const previous = this.authenticated.get(peer);
    if (previous !== undefined && previous !== conn) {
      // A peer dials us once; a second connection means it reconnected and the old one is dead.
      this.counters.connectionsReplaced++;
      this.log.info({ peer, remote: conn.remote, previous: previous.remote, reason: 'the peer authenticated again on a new connection' }, 'raft transport: previous connection of peer closed');
      this.authenticated.delete(peer);
      previous.done = true;
      previous.sock.destroy();
      previous.raw.destroy();
    }
    if (this.authenticated.size >= this.maxInbound) return false;
    this.authenticated.set(peer, conn);
    return true;
  }

  private accept(raw: Socket): void {
    this.counters.connectionsAccepted++;
    const address = plainAddress(raw.remoteAddress ?? '?');
    const remote = `${address}:${raw.remotePort ?? '?'}`;
    if (this.closed) {
      raw.destroy();
      return;
    }
    this.makeRoom(address);
    this.inbound.add(raw);
    const conn: InboundConnection = { raw, sock: raw, address, remote, peer: null, done: false, helloTimer: null, lastHeardMs: performance.now() };
    this.pending.add(conn);
    // The deadline covers the TLS handshake too: a socket that never finishes it holds a slot no longer.
    this.armHelloTimer(conn, performance.now(), 0);
    raw.on('error', () => { /* 'close' follows */ });
    raw.on('close', () => {
      if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
      this.pending.delete(conn);
      this.inbound.delete(raw);
      this.handshaking.delete(raw);
      if (conn.peer !== null && this.authenticated.get(conn.peer) === conn) this.authenticated.delete(conn.peer);
    });
    if (this.tlsServer === null) {
      this.serve(conn, null);
      return;
    }
    this.handshaking.set(raw, conn);
    this.tlsServer.emit('connection', raw);
  }

  /**
   * The hello deadline. A timer that fires late (this process was starved or paused) judges
   * nothing: the timers run before the bytes that came meanwhile are read, so a peer whose hello
   * (or TLS handshake) arrived during our own stall would be refused for it. It waits one more
   * deadline instead, at most HELLO_LATE_REARMS_MAX times; the slot caps still bound what a flood holds.
   */
  private armHelloTimer(conn: InboundConnection, armedAtMs: number, rearms: number): void {
    conn.helloTimer = setTimeout(() => {
      const lateMs = performance.now() - armedAtMs - this.helloTimeoutMs;
      if (lateMs > this.helloTimeoutMs / 2 && rearms < HELLO_LATE_REARMS_MAX) {
        this.armHelloTimer(conn, performance.now(), rearms + 1);
        return;
      }
      this.refuse(conn, 'auth', `no hello within ${this.helloTimeoutMs} ms`, 'no-hello');
    }, this.helloTimeoutMs);
    conn.helloTimer.unref();
  }

  /** A TLS handshake that succeeded: the client's certificate was issued by the shard's CA. */
  private onSecure(sock: TLSSocket): void {
    const raw = parentOf(sock);
    const conn = raw === null ? undefined : this.handshaking.get(raw);
    if (raw !== null) this.handshaking.delete(raw);
    if (conn === undefined || conn.done) {
      sock.destroy();
      return;
    }
    conn.sock = sock;
    if (!sock.authorized) {
      this.refuse(conn, 'auth', `TLS: its certificate was refused: ${authorizationErrorOf(sock) ?? 'no certificate'}`);
      return;
    }
    const cert = sock.getPeerX509Certificate();
    const certPeer = cert === undefined ? null : this.opts.tls!.peerIdOf(cert);
    if (certPeer === null) {
      this.refuse(conn, 'auth', 'its certificate is bound to no peer id (no urn:manatee:peer: name)');
      return;
    }
    this.serve(conn, certPeer);
  }

  private onTlsError(err: Error & { code?: string }, sock: TLSSocket): void {
    const raw = parentOf(sock);
    const conn = raw === null ? undefined : this.handshaking.get(raw);
    if (conn === undefined) return;
    this.refuse(conn, 'auth', `TLS handshake failed: ${authorizationErrorOf(sock) ?? err.code ?? 'error'} (${err.message})`, 'tls-handshake');
  }

  /**
   * Closes `conn` and logs why. `unidentified`: the socket never said who it was (a flood's kind
   * of refusal): logged through its throttle, one line per interval with a count.
   */
  private refuse(conn: InboundConnection, kind: 'auth' | 'oversized' | 'malformed', reason: string, unidentified?: 'no-hello' | 'tls-handshake'): void {
    if (conn.done) return;
    conn.done = true;
    this.pending.delete(conn);
    if (kind === 'auth') this.counters.authFailures++;
    else if (kind === 'oversized') this.counters.oversizedFrames++;
    else this.counters.malformedFrames++;
    if (unidentified !== undefined) this.unidentifiedLogs[unidentified].note({ remote: conn.remote, reason, code: RAFT_ERR_AUTH });
    else this.log.warn({ remote: conn.remote, peer: conn.peer, reason, ...(kind === 'auth' ? { code: RAFT_ERR_AUTH } : {}) }, kind === 'auth' ? 'raft transport refused connection' : 'raft transport refused frame, closing connection');
    conn.sock.destroy();
    conn.raw.destroy();
  }

  /**
   * The challenge and hello on an accepted (and, with TLS, verified) connection, then its frames.
   * `certPeer`: the peer id the client's certificate is bound to (TLS), which the hello must claim.
   */
  private serve(conn: InboundConnection, certPeer: NodeId | null): void {
    const sock = conn.sock;
    const nonce = randomBytes(NONCE_BYTES);
    // Until the peer proves it knows the secret, only a small hello frame is accepted.
    const decoder = new FrameDecoder(HELLO_MAX_BYTES);
    sock.on('error', () => { /* 'close' follows */ });
    sock.write(encodeFrame(FRAME_CHALLENGE, nonce));
    sock.on('data', (chunk: Buffer) => {
      if (conn.done) return;
      conn.lastHeardMs = performance.now();
      decoder.append(chunk);
      for (;;) {
        let f: Frame | null;
        try {
          f = decoder.next();
        } catch (err) {
          if (conn.peer === null) this.refuse(conn, 'auth', `bad hello: ${errorMessage(err)}`);
          else if (err instanceof FrameTooLargeError) this.refuse(conn, 'oversized', err.message);
          else this.refuse(conn, 'malformed', errorMessage(err));
          return;
        }
        if (f === null) return;
        if (conn.peer === null) {
          if (!this.onHello(conn, f, nonce, certPeer)) return;
          decoder.maxFrameBytes = this.maxFrameBytes;
          continue;
        }
        if (!this.onFrame(conn, f)) return;
      }
    });
  }

  /** Checks the hello; false when the connection was refused. */
  private onHello(conn: InboundConnection, f: Frame, nonce: Buffer, certPeer: NodeId | null): boolean {
    const who = this.checkHello(f, nonce);
    if (who.startsWith('!')) {
      this.refuse(conn, 'auth', who.slice(1));
      return false;
    }
    if (certPeer !== null && who !== certPeer) {
      this.refuse(conn, 'auth', `hello claims peer ${who}, but its certificate is bound to peer ${certPeer}`);
      return false;
    }
    if (conn.helloTimer !== null) clearTimeout(conn.helloTimer);
    this.pending.delete(conn);
    if (!this.admitAuthenticated(who, conn)) {
      this.refuse(conn, 'auth', `${this.maxInbound} authenticated connections already (too many inbound connections)`);
      return false;
    }
    conn.peer = who;
    this.counters.connectionsAuthenticated++;
    return true;
  }

  /** Delivers one frame of an authenticated peer; false when the connection was refused. */
  private onFrame(conn: InboundConnection, f: Frame): boolean {
    const peer = conn.peer!;
    if (f.kind === FRAME_PING) return true;
    if (f.kind !== FRAME_MESSAGES) {
      this.refuse(conn, 'malformed', `unexpected frame kind ${f.kind}`);
      return false;
    }
    const msgs = parseMessages(f.payload, peer, this.opts.id);
    if (typeof msgs === 'string') {
      this.refuse(conn, 'malformed', msgs);
      return false;
    }
    this.counters.framesReceived++;
    this.counters.messagesReceived += msgs.length;
    try {
      this.opts.handlers.onMessages(msgs);
    } catch (err) {
      this.log.error({ peer, err: errorMessage(err) }, 'raft transport: message handler failed');
    }
    return true;
  }

  private static checkSecrets(secret: string, accepted: readonly string[]): readonly string[] {
    if ([secret, ...accepted].some((s) => s.length < 16)) throw new RaftConfigError('the shard secret must be at least 16 characters');
    return [secret, ...accepted];
  }

  /**
   * A rotation of the shard secret: `secret` proves this node from the next connection on, and
   * hellos made with any of `secret` and `accepted` are admitted. Open connections stay.
   */
  setSecrets(secret: string, accepted: readonly string[] = []): void {
    this.secrets = TcpTransport.checkSecrets(secret, accepted);
  }

  /** The authenticated peer id, or "!" + the reason for refusal. */
  private checkHello(f: Frame, nonce: Buffer): string {
    if (f.kind !== FRAME_HELLO) return `!first frame is kind ${f.kind}, expected a hello`;
    let v: unknown;
    try {
      v = JSON.parse(f.payload.toString('utf8'));
    } catch {
      return '!hello is not JSON';
    }
    if (typeof v !== 'object' || v === null) return '!hello is not an object';
    const { from, to, mac } = v as Record<string, unknown>;
    if (typeof from !== 'string' || from === '' || typeof to !== 'string' || typeof mac !== 'string') return '!hello lacks from/to/mac';
    if (to !== this.opts.id) return `!hello is addressed to ${to}, this node is ${this.opts.id}`;
    const given = Buffer.from(mac, 'hex');
    // Each accepted secret is tried (all of them, whichever matches: the time says nothing).
    let ok = false;
    for (const secret of this.secrets) {
      const expected = helloMac(secret, nonce, from, to);
      ok = (given.length === expected.length && timingSafeEqual(given, expected)) || ok;
    }
    if (!ok) return `!wrong secret (hello from ${from} failed HMAC check with each of the ${this.secrets.length} accepted secrets)`;
    return from;
  }
}
