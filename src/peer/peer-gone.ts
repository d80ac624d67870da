// Is a peer's process gone? The store's leader asks when its Raft dial to a peer with a session
// was refused (ClusterStore.confirmPeerGone): the peer's PostgreSQL port must refuse too. A
// sitter killed alone leaves its PostgreSQL listening, and a sitter that restarts leaves it
// running: neither is a dead peer, and their sessions expire (or not) by timeout.
import { connect } from 'node:net';
import type { PeerInfo } from '../model/index.js';

/** How long a probe waits for an answer; no answer (a dropped packet, a slow host) is not a refusal. */
export const PEER_GONE_PROBE_TIMEOUT_MS = 300;

/**
 * Resolves with a reason ("its PostgreSQL port 127.0.0.1:5432 refused") when a TCP connection to
 * the peer's PostgreSQL address is refused (ECONNREFUSED), else null: accepted, timed out, any
 * other error, or a pgUrl that names no address.
 */
export async function postgresPortRefused(peer: PeerInfo, timeoutMs = PEER_GONE_PROBE_TIMEOUT_MS): Promise<string | null> {
  let host: string;
  let port: number;
  try {
    const u = new URL(peer.pgUrl);
    host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    port = u.port === '' ? 5432 : Number(u.port);
  } catch {
    return null;
  }
  if (host === '' || !Number.isInteger(port) || port <= 0) return null;
  return await new Promise<string | null>((resolve) => {
    const sock = connect({ host, port });
    const done = (v: string | null): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => { done(null); }, timeoutMs);
    sock.once('connect', () => { done(null); });
    sock.once('error', (err: NodeJS.ErrnoException) => { done(err.code === 'ECONNREFUSED' ? `its PostgreSQL port ${host}:${port} refused` : null); });
  });
}
