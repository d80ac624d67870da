// Bounds on the API's connections, so that a flood of sockets cannot starve the peers and clients
// that need the API (other sitters' /status, the client library's /watch, operators):
// - at most connectionsMax open at once: more are closed as they are accepted;
// - a connection must send its first request's headers within headersTimeoutMs, or it is closed.
//   Node's own headersTimeout only starts at the first byte, so a socket that never sends
//   anything would hold its slot until the idle timeout; this closes it.
// With TLS the clock starts once the handshake is done (the TLS server's handshakeTimeout bounds
// the handshake itself).
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import type { Logger } from '../log.js';

export interface ConnectionGuardOptions {
  readonly connectionsMax: number;
  readonly headersTimeoutMs: number;
  readonly log: Logger;
}

/** Sockets refused or cut are logged once per this many, not one line each (a flood would flood the log). */
const CUT_LOG_EVERY = 100;

export function guardConnections(server: HttpServer, opts: ConnectionGuardOptions): void {
  server.maxConnections = opts.connectionsMax;
  const served = new WeakSet<Socket>();
  let cut = 0;
  let dropped = 0;
  server.on('request', (req: IncomingMessage) => { served.add(req.socket); });
  server.on('drop', () => {
    dropped += 1;
    if (dropped % CUT_LOG_EVERY === 1) {
      opts.log.warn({ api: 'connection-dropped', reason: `${opts.connectionsMax} connections are open`, droppedSoFar: dropped }, 'API connection refused: too many open');
    }
  });
  const event = server instanceof TlsServer ? 'secureConnection' : 'connection';
  server.on(event, (socket: Socket) => {
    const timer = setTimeout(() => {
      if (served.has(socket) || socket.destroyed) return;
      socket.destroy();
      cut += 1;
      if (cut % CUT_LOG_EVERY === 1) {
        opts.log.warn({ api: 'connection-cut', reason: `no request within ${opts.headersTimeoutMs} ms`, from: socket.remoteAddress, cutSoFar: cut },
          'API connection closed: no request in time');
      }
    }, opts.headersTimeoutMs);
    timer.unref();
    socket.once('close', () => { clearTimeout(timer); });
  });
}
