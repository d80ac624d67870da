// Bounds on the API's connections, so that a flood of sockets cannot starve the peers and clients
// that need the API (other sitters' /status, the client library's /watch, operators):
// - at most connectionsMax open at once. A new connection that finds them full is not refused: it
//   takes the slot of the oldest connection that has not sent a request yet, from the address
//   that holds the most of those (as the Raft transport does with its unauthenticated slots). A
//   real caller sends its request within a round trip (and a TLS handshake), so it is always among
//   the youngest, and a flood of half-open sockets cannot keep it out: when the slots are full of
//   sockets that never send anything, Node's own cap (maxConnections) would refuse every newcomer
//   until one timed out, and a flood reopens its sockets as soon as they are cut. Only when every
//   slot has carried a request is the newcomer closed;
// - a connection must send its first request's headers within headersTimeoutMs of being accepted,
//   TLS handshake included, or it is closed. Node's own headersTimeout only starts at the first
//   byte, and the TLS server's handshakeTimeout is 120 s by default, so a socket that never sends
//   anything would hold its slot far longer.
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import type { Logger } from '../log.js';

export interface ConnectionGuardOptions {
  readonly connectionsMax: number;
  readonly headersTimeoutMs: number;
  readonly log: Logger;
}

/** Sockets refused, evicted or cut are logged once per this many, not one line each (a flood would flood the log). */
const CUT_LOG_EVERY = 100;

/** The TCP socket under a TLS socket (the one the server accepted), or the socket itself. */
function rawSocketOf(sock: Socket): Socket {
  const parent = (sock as unknown as { _parent?: unknown })._parent;
  return parent instanceof Socket ? parent : sock;
}

export function guardConnections(server: HttpServer, opts: ConnectionGuardOptions): void {
  // The cap is kept here, not by Node's maxConnections (which refuses newcomers rather than evict idle sockets).
  /** Open connections (the accepted TCP sockets), oldest first. */
  const open = new Set<Socket>();
  /** Those that have carried a request. */
  const served = new WeakSet<Socket>();
  const counts = { cut: 0, dropped: 0, evicted: 0 };
  const note = (what: 'cut' | 'dropped' | 'evicted', fields: Record<string, unknown>, msg: string): void => {
    counts[what] += 1;
    if (counts[what] % CUT_LOG_EVERY === 1) opts.log.warn({ api: `connection-${what}`, ...fields, [`${what}SoFar`]: counts[what] }, msg);
  };
  server.on('request', (req: IncomingMessage) => { served.add(rawSocketOf(req.socket)); });

  /** Frees a slot for a newcomer: the oldest unserved socket of the address that holds the most. */
  const evictOne = (): boolean => {
    const unserved = new Map<string, number>();
    for (const s of open) {
      if (!served.has(s)) unserved.set(s.remoteAddress ?? '?', (unserved.get(s.remoteAddress ?? '?') ?? 0) + 1);
    }
    if (unserved.size === 0) return false;
    const most = Math.max(...unserved.values());
    for (const s of open) {
      if (served.has(s) || unserved.get(s.remoteAddress ?? '?') !== most) continue;
      open.delete(s);
      note('evicted', { reason: `${opts.connectionsMax} connections are open; the oldest that sent no request gives its slot to a newer one`, from: s.remoteAddress },
        'API connection closed: evicted for a newer one');
      s.destroy();
      return true;
    }
    return false;
  };

  // 'connection' carries the accepted TCP socket, for HTTPS too (before the handshake).
  server.on('connection', (socket: Socket) => {
    if (open.size >= opts.connectionsMax && !evictOne()) {
      note('dropped', { reason: `${opts.connectionsMax} connections are open and every one has carried a request` }, 'API connection refused: too many open');
      socket.destroy();
      return;
    }
    open.add(socket);
    const timer = setTimeout(() => {
      if (served.has(socket) || socket.destroyed) return;
      socket.destroy();
      note('cut', { reason: `no request within ${opts.headersTimeoutMs} ms`, from: socket.remoteAddress }, 'API connection closed: no request in time');
    }, opts.headersTimeoutMs);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      open.delete(socket);
    });
  });
}
