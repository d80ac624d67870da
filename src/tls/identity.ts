// How a peer's id is bound to its certificate: a URI subject alternative name
// `urn:manatee:peer:<id>` (checked by the other side of every peer-to-peer connection), and the
// same id as the subject's CN, for people reading the certificate. The hosts the peer is reached
// at are its DNS and IP alternative names, which TLS clients check against the address they dialled.
import { isIP } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { isPeerId, PEER_ID_EXPECTED } from '../model/index.js';
import { TLS_ERR, TlsError } from './errors.js';

export const PEER_URI_PREFIX = 'urn:manatee:peer:';

/** A DNS name of letters, digits and hyphens in dot-separated labels; no wildcards. */
const DNS_NAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function checkPeerId(id: string): void {
  if (!isPeerId(id)) {
    throw new TlsError(TLS_ERR.badArgument, `peer id ${JSON.stringify(id)}: ${PEER_ID_EXPECTED}`);
  }
}

export type HostName = { readonly kind: 'IP' | 'DNS'; readonly value: string };

/** A host for a certificate: an IPv4/IPv6 address or a DNS name. */
export function parseHost(host: string): HostName {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare) !== 0) return { kind: 'IP', value: bare };
  if (DNS_NAME_RE.test(host)) return { kind: 'DNS', value: host.toLowerCase() };
  throw new TlsError(TLS_ERR.badArgument, `host ${JSON.stringify(host)}: expected an IP address or a DNS name (no wildcards)`);
}

/** The entries of a certificate's subjectAltName, e.g. [["URI", "urn:..."], ["IP Address", "10.0.0.1"]]. */
export function altNames(cert: X509Certificate): [string, string][] {
  const san = cert.subjectAltName;
  if (san === undefined) return [];
  const out: [string, string][] = [];
  // Node joins entries with ", " and quotes (JSON) a value that holds a comma or a quote.
  for (const m of san.matchAll(/([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g)) {
    const raw = m[2] ?? '';
    out.push([m[1] ?? '', raw.startsWith('"') ? (JSON.parse(raw) as string) : raw]);
  }
  return out;
}

/**
 * The peer id a certificate is bound to, or null when it names none or several (a certificate
 * that could stand for two peers stands for none).
 */
export function peerIdOf(cert: X509Certificate): string | null {
  const ids = altNames(cert).filter(([k, v]) => k === 'URI' && v.startsWith(PEER_URI_PREFIX)).map(([, v]) => v.slice(PEER_URI_PREFIX.length));
  if (ids.length !== 1) return null;
  const id = ids[0]!;
  return isPeerId(id) ? id : null;
}

/**
 * A TLS client's server check when it dials peer `expectedPeerId` by host (a sitter asking another
 * peer's API): node's own host check first, then the peer id the certificate is bound to, so that
 * another peer's API found at that address (all on one host, a stale apiUrl) is refused.
 */
export function peerServerIdentity(expectedPeerId: string): (host: string, cert: PeerCertificate) => Error | undefined {
  // One function per peer id: the HTTP client keeps one connection pool per check (src/wire http.ts).
  let check = serverChecks.get(expectedPeerId);
  if (check !== undefined) return check;
  check = (host, cert) => {
    const hostProblem = checkServerIdentity(host, cert);
    if (hostProblem !== undefined) return hostProblem;
    const id = peerIdOf(new X509Certificate(cert.raw));
    if (id === expectedPeerId) return undefined;
    return new TlsError(TLS_ERR.peerId, `the server's certificate is bound to ${id === null ? 'no peer id' : `peer "${id}"`}, not to "${expectedPeerId}", the peer dialled`);
  };
  serverChecks.set(expectedPeerId, check);
  return check;
}

const serverChecks = new Map<string, (host: string, cert: PeerCertificate) => Error | undefined>();

/**
 * The peer id of the certificate the other end of an authorized TLS connection presented, or null
 * (no certificate, or one that names no single peer). The chain was checked by TLS already.
 */
export function peerIdOfSocket(socket: { authorized: boolean; getPeerX509Certificate(): X509Certificate | undefined }): string | null {
  if (!socket.authorized) return null;
  const cert = socket.getPeerX509Certificate();
  return cert === undefined ? null : peerIdOf(cert);
}
